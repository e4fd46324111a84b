import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { codingDefine, shownDefine } from './define-names.js';
import { displayDecimals, EXTRA_DECIMALS } from '../policies/display-precision.js';
import { ICD10CM_NO_DISEASE_LETTERS } from '../fhir/value-sets.js';
import { UNPLACED_ONSET } from '../fhir/fhirpath.js';
import type { FactDefinition } from '../policies/policy-schema.js';
import { factBounds } from '../policies/evaluate-policy.js';
import { FhirPathToCql, Untranslatable, cqlType } from './fhirpath-to-cql.js';
import type { CqlNode, Ty } from './fhirpath-to-cql.js';
import type { FhirModel } from './model-info.js';

/**
 * CQL for a policy's Questionnaire, generated from the same facts whose FHIRPath CRD evaluates (design.md §7: DTR
 * 2.0.1 clients pre-populate with CQL). Every fact becomes a define of the same name, translated from its FHIRPath by
 * {@link FhirPathToCql}; a fact the CQL cannot say (it reads `%user`, or a fact that is not expressed) is reported with
 * the reason, never approximated.
 *
 * The evaluation variables (cds-services/README.md "Variables") are defines whose meaning mirrors
 * src/policies/evaluation-data.ts: `%order` is the parameter `medication_request` (the name the DTR reference app gives
 * a MedicationRequest order), `%conditions` the qualifying Conditions, `%observations` the Observations oldest first
 * without entered-in-error or cancelled ones, `%diagnoses` the order's disease reasons else the qualifying Conditions'
 * codes, `%orderDate` the planned start. A fact's define is empty (null) exactly when its FHIRPath value is unknown,
 * implausible values included (evaluate-policy.ts `plausible`).
 */
export interface CqlLibrarySource {
  /** Library name (unique within a package): `PriorPath` + the policy id in PascalCase. */
  name: string;
  version: string;
  cql: string;
  /** Fact name → define name, for the facts expressed. */
  defines: Map<string, string>;
  /** Fact name → why it is not expressed in CQL. */
  notExpressed: Map<string, string>;
  /** Fact name → its "<fact>AsShown" define: the amount as the form shows it, rounded (display-precision.ts). */
  shown: Map<string, string>;
  /** Value sets the CQL names: CQL name → canonical. */
  valueSets: Map<string, string>;
  /** FHIR resource types the CQL retrieves (Library.dataRequirement, what the DTR reference app fetches). */
  dataTypes: string[];
  /**
   * The Libraries the main one includes (design.md §7 "Libraries in parts"), oldest first: each holds a
   * dependency-closed share of the definitions, so no Library's ELM nears the 1 MiB of one FHIR string. Empty when
   * the whole CQL fits one Library.
   */
  parts: CqlLibraryPart[];
}

/** One included Library of a policy's CQL: `<main name>Part<n>`, included by the main Library as `Part<n>`. */
export interface CqlLibraryPart {
  name: string;
  /** The include alias the other Libraries qualify its definitions with (`Part1."Order Date"`). */
  alias: string;
  /** 1, 2, …: the Library id is `<policy id>-part<n>`. */
  index: number;
  cql: string;
  /** The definitions it holds, in order. */
  defines: string[];
  /** The resource types its own definitions retrieve. */
  dataTypes: string[];
}

/**
 * The most CQL text of definitions one Library holds. The ELM of the generated CQL is 5.5 to 5.8 times its CQL in
 * base64 characters (s51, every policy), so a Library of this much CQL has ELM of about 600,000 base64 characters:
 * well under the 1,048,576 of one FHIR string (the limit test/dtr/questionnaires.test.ts guards), with room for a
 * denser translation. Text, not ELM, decides the split so that it is known before translation and the same on
 * every run.
 */
export const LIBRARY_CQL_BUDGET = 100_000;

export interface CqlLibraryOptions {
  canonicalBase: string;
  /** The FHIR 4.0.1 model info (src/cql/model-info.ts). */
  model: FhirModel;
  /** The drug names a value set also matches by (ValueSetIndex.namesOf), by canonical. */
  namesOf(url: string): string[];
  /** The codings of an answer value set (its expansion), by canonical: what a choice item may be answered with. */
  answerCodings?(url: string): { system?: string; code?: string; display?: string }[];
}

const pascal = (id: string) =>
  id
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join('');

const cqlString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

const ASKED_ONLY = 'asked in the form: the record cannot answer it (its FHIRPath is the empty collection)';

/** Definitions the translated facts call, each with the helpers it needs and the resource types it retrieves. */
interface Helper {
  cql: string;
  needs?: string[];
  retrieves?: string[];
}

const ICD10CM = 'http://hl7.org/fhir/sid/icd-10-cm';

const HELPERS: Record<string, Helper> = {
  'Day Of': {
    cql: `// The calendar date of a dateTime written to at least the day (evaluation-data.ts orderDateOf skips shorter ones).
define function "Day Of"(value System.DateTime):
  if day from value is null then null else date from value`,
  },
  'Order Date': {
    needs: ['Day Of'],
    cql: `// %orderDate: the planned start (the earliest start of any dosage instruction), else the validity start, else
// authoredOn, else today (design.md §6; evaluation-data.ts orderStartOf).
define "Order Date":
  Coalesce(
    Min(medication_request.dosageInstruction D return "Day Of"((D.timing.repeat.bounds as FHIR.Period).start.value)),
    "Day Of"(medication_request.dispenseRequest.validityPeriod.start.value),
    "Day Of"(medication_request.authoredOn.value),
    Today()
  )`,
  },
  'Order Start': {
    needs: ['Day Of'],
    cql: `// %orderStart: the start the order states (the earliest start of any dosage instruction, else the validity
// start), never authoredOn; null when it states none. The recency windows end on it (design.md §6; evaluation-data.ts
// statedStartOf).
define "Order Start":
  Coalesce(
    Min(medication_request.dosageInstruction D return "Day Of"((D.timing.repeat.bounds as FHIR.Period).start.value)),
    "Day Of"(medication_request.dispenseRequest.validityPeriod.start.value)
  )`,
  },
  'Order DateTime': {
    needs: ['Order Date'],
    cql: `// %orderDateTime: the order date at 00:00 UTC.
define "Order DateTime":
  DateTime(year from "Order Date", month from "Order Date", day from "Order Date", 0, 0, 0, 0, 0)`,
  },
  'Latest Plausible Date': {
    needs: ['Order Date'],
    cql: `// A date the record states is not after the order date or today (evaluate-policy.ts plausible).
define "Latest Plausible Date":
  if "Order Date" <= Today() then "Order Date" else Today()`,
  },
  Qualifies: {
    cql: `// A Condition that counts as a diagnosis: not refuted, entered in error or only suspected (unconfirmed,
// provisional, differential); clinical status active, recurrence, relapse or remission, or none stated
// (evaluation-data.ts isQualifyingCondition).
define function "Qualifies"(C FHIR.Condition):
  not exists (C.verificationStatus.coding V where V.code.value in { 'refuted', 'entered-in-error', 'unconfirmed', 'provisional', 'differential' })
    and (not exists (C.clinicalStatus.coding)
      or exists (C.clinicalStatus.coding S where S.code.value in { 'active', 'recurrence', 'relapse', 'remission' }))`,
  },
  'Diagnoses Complete': {
    needs: ['Names Disease', 'Diagnoses'],
    retrieves: ['Condition'],
    cql: `// %diagnosesComplete: the Conditions are the whole problem list (a DTR client reads the EHR's), unless one of them is a
// current diagnosis only suspected (evaluation-data.ts isSuspectedDiagnosis), or none is there at all (an empty list
// proves no diagnosis absent): then a diagnosis missing is unknown.
define "Diagnoses Complete":
  diagnoses_complete and exists "Diagnoses" and not exists ([Condition] C
    where exists (C.verificationStatus.coding V where V.code.value in { 'unconfirmed', 'provisional', 'differential' })
      and not exists (C.verificationStatus.coding V where V.code.value in { 'refuted', 'entered-in-error' })
      and (not exists (C.clinicalStatus.coding)
        or exists (C.clinicalStatus.coding S where S.code.value in { 'active', 'recurrence', 'relapse', 'remission' }))
      and C.code is not null and "Names Disease"(C.code))`,
  },
  'Qualifying Conditions': {
    needs: ['Qualifies'],
    retrieves: ['Condition'],
    cql: `// %conditions
define "Qualifying Conditions":
  [Condition] C where "Qualifies"(C)`,
  },
  'Names Disease': {
    cql: `// A reason that names a disease: a coded concept, not only ICD-10-CM codes of the chapters that name none (symptoms R,
// external causes V-Y, encounters and long-term drug therapy Z: value-sets.ts ICD10CM_NO_DISEASE_LETTERS).
define function "Names Disease"(C FHIR.CodeableConcept):
  exists (C.coding X where Length(X.code.value) > 0
    and not (Coalesce(X.system.value = ${cqlString(ICD10CM)}, false) and Matches(Upper(X.code.value), '\\s*[${ICD10CM_NO_DISEASE_LETTERS}].*')))`,
  },
  Diagnoses: {
    needs: ['Qualifying Conditions', 'Qualifies', 'Names Disease'],
    retrieves: ['Condition'],
    cql: `// %diagnoses: the order's reasons when one names a disease (a referenced qualifying Condition, or a reason code),
// else the codes of the qualifying Conditions (design.md §6 "Clinical readings").
define "Order Reason Conditions":
  [Condition] C
    where exists (medication_request.reasonReference R where EndsWith(R.reference.value, 'Condition/' + C.id.value))
      and "Qualifies"(C) and C.code is not null and "Names Disease"(C.code)

define "Order Reason Codes":
  (medication_request.reasonCode C) R where "Names Disease"(R)

// A reason in words only (evaluation-data.ts isTextOnly): read beside a problem list that decides, never alone.
define "Order Reason Texts":
  (medication_request.reasonCode C) R
    where not exists (R.coding X where Length(X.code.value) > 0) and Matches(R.text.value, '[\\s\\S]*\\S[\\s\\S]*')

define "Diagnoses":
  if exists "Order Reason Conditions" or exists "Order Reason Codes"
    then Flatten({
      Coalesce("Order Reason Conditions" C return all C.code, List<FHIR.CodeableConcept>{}),
      Coalesce("Order Reason Codes", List<FHIR.CodeableConcept>{})
    })
    else if exists ("Qualifying Conditions" C where C.code is not null and not "Encounter Codes Only"(C.code))
      then Flatten({
        "Qualifying Conditions" C where C.code is not null return all C.code,
        Coalesce("Order Reason Texts", List<FHIR.CodeableConcept>{})
      })
    else List<FHIR.CodeableConcept>{}

// A concept coded only with ICD-10-CM codes that name no disease (R, V-Y, Z: evaluation-data.ts encounterCodesOnly): a problem list of them alone
// names no disease, so it is no diagnosis.
define function "Encounter Codes Only"(C FHIR.CodeableConcept):
  exists (C.coding X where Length(X.code.value) > 0) and not "Names Disease"(C)`,
  },
  'Observation Instant': {
    cql: `// The instant an Observation speaks for, for ordering (evaluation-data.ts observationDate, fhir-instant.ts): its
// effective[x] or issued; a value without a time (a date, or a partial date) stands for the start of its day in UTC.
define function "Observation Instant"(O FHIR.Observation):
  "Start Of Day If Dated Only"(Coalesce((O.effective as FHIR.dateTime).value, (O.effective as FHIR.Period).start.value,
    (O.effective as FHIR.instant).value, O.issued.value))

define function "Start Of Day If Dated Only"(X DateTime):
  if X is null then null
  else if hour from X is null then DateTime(year from X, Coalesce(month from X, 1), Coalesce(day from X, 1), 0, 0, 0, 0, 0.0)
  else X

// Whole minutes since 1970 and milliseconds within the minute: the two sort keys order by the instant, whatever
// time-zone offset each result is written in (every offset is whole minutes). Not one key in milliseconds or seconds:
// CQL's Integer is 32 bits in other engines.
define function "Instant Minutes"(X DateTime):
  if X is null then null else duration in minutes between @1970-01-01T00:00:00.000Z and X

define function "Instant Milliseconds In Minute"(X DateTime):
  if X is null then null else Coalesce(second from X, 0) * 1000 + Coalesce(millisecond from X, 0)`,
  },
  Observations: {
    needs: ['Observation Instant'],
    retrieves: ['Observation'],
    cql: `// %observations: oldest first by the instant each was taken (so Last() is the latest), entered-in-error and
// cancelled ones dropped; one with no date first, as on the server.
define "Observations":
  (([Observation] O
    let I: "Observation Instant"(O)
    where not (Coalesce(O.status.value, '') in { 'entered-in-error', 'cancelled' })
    return all Tuple { resource: O, minuteKey: "Instant Minutes"(I), msKey: "Instant Milliseconds In Minute"(I) }
    sort by minuteKey, msKey) T return all T.resource)`,
  },
  'Medication Concept': {
    // Not a dataRequirement: Medication has no patient search, and a DTR client fetches each listed type by patient
    // (the reference app does); a client that has the referenced Medications may still supply them.
    cql: `// The drug of a MedicationRequest: its code, or the code of the Medication it references, else the reference's
// display as the drug's name (evaluation-data.ts withMedicationCode).
define function "Medication Concept"(M FHIR.MedicationRequest):
  if M.medication is FHIR.CodeableConcept then M.medication as FHIR.CodeableConcept
  else Coalesce(
    First([Medication] D
      where EndsWith((M.medication as FHIR.Reference).reference.value, 'Medication/' + D.id.value)
      return all D.code),
    if (M.medication as FHIR.Reference).display.value is null then null
    else FHIR.CodeableConcept { text: FHIR.string { value: (M.medication as FHIR.Reference).display.value } })`,
  },
  'Other Medication Requests': {
    retrieves: ['MedicationRequest'],
    cql: `// %medications: the patient's MedicationRequests other than this order.
define "Other Medication Requests":
  [MedicationRequest] M
    where not (if M.id.value is null then medication_request.id.value is null
      else Coalesce(M.id.value = medication_request.id.value, false))`,
  },
  'Request Orders Before': {
    cql: `// %requestOrdersBefore: the orders signed or claimed with this one that come before it in the same request
// (design.md §6 "Orders signed or claimed together"). A DTR client judges one order alone, with the orders signed with
// it already in the record: none.
define "Request Orders Before":
  List<FHIR.MedicationRequest>{}`,
  },
  'Request Orders Before Any': {
    cql: `// %requestOrdersBeforeAny: those orders whatever their status (review-diff s43 F3). A DTR client judges one order
// alone: none.
define "Request Orders Before Any":
  List<FHIR.MedicationRequest>{}`,
  },
  'Completed Immunizations': {
    retrieves: ['Immunization'],
    cql: `// %immunizations
define "Completed Immunizations":
  [Immunization] I where I.status.value = 'completed'`,
  },
  'Normal System': {
    cql: `// The code system URI a value set stores: HCPCS arrives under three URIs (value-sets.ts normalizeSystem).
define function "Normal System"(system System.String):
  case system
    when 'http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets' then 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets'
    when 'https://bluebutton.cms.gov/resources/codesystem/hcpcs' then 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets'
    when 'http://bluebutton.cms.gov/resources/codesystem/hcpcs' then 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets'
    else system
  end`,
  },
  'NDC Readings': {
    cql: `// The 11-digit forms an NDC may stand for (value-sets.ts normalizeNdc, tenDigitNdcReadings): 11 digits as written,
// 5-4-2 joined, a 10-digit hyphenated form padded, and the three readings of 10 digits without hyphens.
define function "NDC Readings"(code System.String):
  if Matches(code, '\\\\d{11}') then { code }
  else if Matches(code, '\\\\d+-\\\\d+-\\\\d+') then
    (({ Split(code, '-') }) P
      let a: P[0], b: P[1], c: P[2]
      return all if Length(a) = 5 and Length(b) = 4 and Length(c) = 2 then a + b + c
        else if Length(a) + Length(b) + Length(c) = 10
          then Substring('00000' + a, Length(a)) + Substring('0000' + b, Length(b)) + Substring('00' + c, Length(c))
        else code)
  else if Matches(code, '\\\\d{10}')
    then { code, '0' + code, Substring(code, 0, 5) + '0' + Substring(code, 5), Substring(code, 0, 9) + '0' + Substring(code, 9) }
  else { code }`,
  },
  'ICD10 Spelling': {
    cql: `// An ICD-10(-CM) code as FHIR spells it: trimmed, upper case, the dot after the category (value-sets.ts
// canonicalIcd10Code): C9101 and c91.01 are C91.01.
define function "ICD10 Spelling"(code System.String):
  (Upper(ReplaceMatches(code, '^\\s+|\\s+$', ''))) T
    return if Matches(T, '[A-Z][0-9][0-9A-Z][0-9A-Z]{1,4}') then Substring(T, 0, 3) + '.' + Substring(T, 3) else T`,
  },
  'Coding Code': {
    needs: ['ICD10 Spelling'],
    cql: `// A Coding's code as facts compare it: ICD-10 codes in FHIR's spelling, as the server reads a diagnosis
// (evaluation-data.ts canonicalConcept), other codes as written.
define function "Coding Code"(X FHIR.Coding):
  if X.system.value in { ${cqlString(ICD10CM)}, 'http://hl7.org/fhir/sid/icd-10' } and X.code.value is not null
    then "ICD10 Spelling"(X.code.value)
    else X.code.value`,
  },
  'Coding Codes': {
    needs: ['Normal System', 'NDC Readings', 'ICD10 Spelling'],
    cql: `// A Coding as the codes a value set is searched for (value-sets.ts codingKey: system aliases, trimmed code, NDC forms,
// ICD-10 spelling).
define function "Coding Codes"(X FHIR.Coding):
  (ReplaceMatches(Coalesce(X.code.value, ''), '^\\\\s+|\\\\s+$', '')) K
    let system: "Normal System"(X.system.value)
    return if system = 'http://hl7.org/fhir/sid/ndc'
      then (("NDC Readings"(K)) R return all System.Code { code: R, system: system })
      else if system in { ${cqlString(ICD10CM)}, 'http://hl7.org/fhir/sid/icd-10' }
      then { System.Code { code: "ICD10 Spelling"(K), system: system } }
      else { System.Code { code: K, system: system } }`,
  },
  'Concept Texts': {
    cql: `define function "Concept Texts"(C FHIR.CodeableConcept):
  ({ C.text.value } union (C.coding X return all X.display.value)) T where T is not null`,
  },
  'Names Match': {
    needs: ['Concept Texts'],
    cql: `// A drug set's listed name in a concept's text or displays, case-insensitive (value-sets.ts nameIn).
define function "Names Match"(C FHIR.CodeableConcept, names List<System.String>):
  exists (names N where exists (("Concept Texts"(C)) T where PositionOf(N, Lower(T)) >= 0))`,
  },
  // The date a resource speaks for (fhirpath.ts resourceDate), per type, for recent().
  'Observation Date': {
    needs: ['Day Of'],
    cql: `define function "Observation Date"(R FHIR.Observation):
  "Day Of"(Coalesce((R.effective as FHIR.dateTime).value, (R.effective as FHIR.instant).value,
    (R.effective as FHIR.Period).start.value, R.issued.value))`,
  },
  // fhirpath.ts statedDay: the date an Observation states, as written, up to the day (a partial one stays partial):
  // when it was taken, else when it was issued (design.md §6 "A date not to the day").
  'Observation Stated Day': {
    cql: `define function "Observation Stated Day"(R FHIR.Observation):
  Substring(ToString(Coalesce((R.effective as FHIR.dateTime).value, (R.effective as FHIR.instant).value,
    (R.effective as FHIR.Period).start.value, R.issued.value)), 0, 10)`,
  },
  // fhirpath.ts statedDay of a Condition: onset dateTime, else onsetPeriod.start, else with no onset its recordedDate;
  // an onset in another form (an age, a range, words) is UNPLACED_ONSET, not a date (design.md §6 "A Condition's date").
  'Condition Stated Day': {
    cql: `define function "Condition Stated Day"(R FHIR.Condition):
  if R.onset is null then Substring(ToString(R.recordedDate.value), 0, 10)
  else Coalesce(Substring(ToString(Coalesce((R.onset as FHIR.dateTime).value, (R.onset as FHIR.Period).start.value)), 0, 10), ${cqlString(UNPLACED_ONSET)})`,
  },
  'Immunization Date': {
    needs: ['Day Of'],
    cql: `define function "Immunization Date"(R FHIR.Immunization):
  "Day Of"((R.occurrence as FHIR.dateTime).value)`,
  },
  // fhirpath.ts maybeRecent: the resources not dated to the day (D: the date as written, of any precision, or null)
  // that may fall in [F, U] and may be later than the latest dated in it (T). A comparison of a partial date that
  // cannot tell is null, so Coalesce(…, false) keeps the resource, as fhirpath.ts keeps it.
  'Observation Maybe Recent': {
    needs: ['Observation Date'],
    cql: `define function "Observation Maybe Recent"(L List<FHIR.Observation>, F System.Date, U System.Date):
  (L R where "Observation Date"(R) is null) R
    let D: date from Coalesce((R.effective as FHIR.dateTime).value, (R.effective as FHIR.instant).value,
        (R.effective as FHIR.Period).start.value, R.issued.value),
      T: Max(L X let Y: "Observation Date"(X) where Y >= F and (U is null or Y <= U) return Y)
    where not Coalesce(D < F, false) and not Coalesce(D > U, false) and not Coalesce(D < T, false)`,
  },
  'Immunization Maybe Recent': {
    needs: ['Immunization Date'],
    cql: `// One with no date at all was given on or before the day it was recorded.
define function "Immunization Maybe Recent"(L List<FHIR.Immunization>, F System.Date, U System.Date):
  (L R where "Immunization Date"(R) is null) R
    let D: date from (R.occurrence as FHIR.dateTime).value,
      E: Coalesce(D, "Day Of"(R.recorded.value)),
      T: Max(L X let Y: "Immunization Date"(X) where Y >= F and (U is null or Y <= U) return Y)
    where not Coalesce(E < F, false) and not Coalesce(D > U, false) and not Coalesce(E < T, false)`,
  },
  'Condition Date': {
    needs: ['Day Of'],
    cql: `define function "Condition Date"(R FHIR.Condition):
  "Day Of"(Coalesce((R.onset as FHIR.Period).start.value, (R.onset as FHIR.dateTime).value))`,
  },
  'MedicationRequest Start': {
    cql: `// An order's start as the course facts read it (fhirpath-to-cql.ts ORDER_START): the first dosage's planned start,
// else the validity start, else authoredOn, as written.
define function "MedicationRequest Start"(R FHIR.MedicationRequest):
  First(((({ ((First(R.dosageInstruction)).timing.repeat.bounds as FHIR.Period).start.value }) S1 where S1 is not null)
    union (({ R.dispenseRequest.validityPeriod.start.value }) S2 where S2 is not null))
    union (({ R.authoredOn.value }) S3 where S3 is not null))`,
  },
  'MedicationRequest Date': {
    needs: ['Day Of'],
    cql: `define function "MedicationRequest Date"(R FHIR.MedicationRequest):
  "Day Of"(R.authoredOn.value)`,
  },
};

const FACT_TYPES: Record<FactDefinition['type'], string[]> = {
  boolean: ['Boolean'],
  integer: ['Integer'],
  decimal: ['Decimal', 'Integer'],
  code: ['String'],
  string: ['String'],
  date: ['String'],
};

const factTy = (type: FactDefinition['type']): Ty => ({ k: 'sys', name: FACT_TYPES[type][0] });

/** Builds the CQL of one policy's Library from its facts (pure: no translation, no I/O). */
export function cqlLibrarySource(policy: CompiledPolicy, opts: CqlLibraryOptions): CqlLibrarySource {
  const name = `PriorPath${pascal(policy.file.id)}`;
  const version = policy.file.version;
  const defines = new Map<string, string>();
  const notExpressed = new Map<string, string>();
  const shown = new Map<string, string>();
  const valueSets = new Map<string, string>();
  const usedHelpers = new Set<string>();
  const shared = new Map<string, string>();
  const types = new Set<string>(['Patient']);
  const body: { name: string; cql: string }[] = [];

  const useHelper = (h: string): string => {
    const helper = HELPERS[h];
    if (!helper) throw new Untranslatable(`no CQL helper ${h}`);
    if (!usedHelpers.has(h)) {
      usedHelpers.add(h);
      helper.needs?.forEach(useHelper);
      helper.retrieves?.forEach((t) => types.add(t));
    }
    return `"${h}"`;
  };
  const v = (cql: string, ty: Ty, many = false): CqlNode => ({ cql, ty, many });
  const fhir = (n: string): Ty => ({ k: 'fhir', name: n });
  const sys = (n: string): Ty => ({ k: 'sys', name: n });

  for (const f of policy.facts) {
    const text = (f.def.fhirpath ?? '').trim();
    if (text === '{}') {
      notExpressed.set(f.name, ASKED_ONLY);
      continue;
    }
    // Helpers and value sets are committed only when the whole fact translates.
    const pendingHelpers: string[] = [];
    const pendingSets = new Map<string, string>();
    const pendingShared = new Map<string, string>();
    const variable = (vname: string): CqlNode => {
      const helper = (h: string, ty: Ty, many = false) => {
        pendingHelpers.push(h);
        return v(`"${h}"`, ty, many);
      };
      switch (vname) {
        case 'order':
          return v('medication_request', fhir('MedicationRequest'));
        case 'patient':
          return v('Patient', fhir('Patient'));
        case 'conditions':
          return helper('Qualifying Conditions', fhir('Condition'), true);
        case 'observations':
          return helper('Observations', fhir('Observation'), true);
        case 'medications':
          return helper('Other Medication Requests', fhir('MedicationRequest'), true);
        case 'immunizations':
          return helper('Completed Immunizations', fhir('Immunization'), true);
        case 'requestOrdersBefore':
          return helper('Request Orders Before', fhir('MedicationRequest'), true);
        case 'requestOrdersBeforeAny':
          return helper('Request Orders Before Any', fhir('MedicationRequest'), true);
        case 'diagnoses':
          return helper('Diagnoses', fhir('CodeableConcept'), true);
        case 'diagnosesComplete':
          return helper('Diagnoses Complete', sys('Boolean'));
        case 'orderDate':
          return helper('Order Date', sys('Date'));
        case 'orderDateTime':
          return helper('Order DateTime', sys('DateTime'));
        case 'orderStart':
          return helper('Order Start', sys('Date'));
        case 'policyDrug':
          return { ...v(cqlString(policy.file.drug), sys('String')), literal: policy.file.drug };
        case 'user':
          throw new Untranslatable('it reads the ordering clinician (%user), who is not in the CQL Patient context a DTR client evaluates');
        case 'coverage':
          throw new Untranslatable('it reads the Coverage (%coverage), which the DTR client does not give the CQL');
      }
      const dep = policy.factsByName.get(vname);
      if (!dep) throw new Untranslatable(`%${vname} is not a variable or fact`);
      if (defines.has(vname)) return v(`"${vname}"`, factTy(dep.def.type));
      // A fact the record never answers is empty here too.
      if (notExpressed.get(vname) === ASKED_ONLY) return v(`null as ${cqlType(factTy(dep.def.type))}`, factTy(dep.def.type));
      throw new Untranslatable(`it reads %${vname}, which is not expressed`);
    };
    const translator = new FhirPathToCql({
      model: opts.model,
      variable,
      valueSet: (ref) => {
        const url = ref.includes('/') ? ref : `${opts.canonicalBase}/ValueSet/${ref}`;
        const id = ref.includes('/') ? ref.slice(ref.lastIndexOf('/') + 1) : ref;
        pendingSets.set(id, url);
        return { identifier: `"${id}"`, names: opts.namesOf(url) };
      },
      helper: (h) => {
        if (!HELPERS[h]) throw new Untranslatable(`no CQL helper ${h}`);
        pendingHelpers.push(h);
        return `"${h}"`;
      },
      shared: (sname, cql) => {
        const known = shared.get(sname) ?? pendingShared.get(sname);
        if (known !== undefined && known !== cql) throw new Error(`two meanings for the shared define ${sname}`);
        pendingShared.set(sname, cql);
        return `"${sname}"`;
      },
    });
    try {
      const out = translator.translate(text, v('medication_request', fhir('MedicationRequest')));
      const value = factValue(f.def, out, (name) => pendingHelpers.push(name));
      pendingHelpers.forEach(useHelper);
      for (const [id, url] of pendingSets) valueSets.set(id, url);
      for (const [sname, cql] of pendingShared) shared.set(sname, cql);
      defines.set(f.name, f.name);
      const label = f.def.linkId ? `${f.def.linkId}${f.def.cite ? ` (${f.def.cite})` : ''}` : `derived${f.def.cite ? ` (${f.def.cite})` : ''}`;
      body.push({ name: f.name, cql: `// ${label}\ndefine "${f.name}":\n  ${value.replace(/\n/g, '\n  ')}` });
    } catch (err) {
      if (!(err instanceof Untranslatable)) throw err;
      notExpressed.set(f.name, err.message);
    }
  }

  // A choice item is answered with a Coding. A DTR client turns a CQL string into a Coding only by finding it in a
  // contained ValueSet or the item's answerOption (the DTR reference app's getDisplayCoding); our items bind a
  // canonical answerValueSet, so a code string became a Coding with a display and no code. So a code fact with an
  // answer value set also gets "<fact>Coding": the same answer as a System Code of that set (code, system, display),
  // which the DTR 2.0.1 form names on the choice item (src/dtr/cql-questionnaire.ts).
  for (const f of policy.facts) {
    if (f.def.type !== 'code' || !f.def.answerValueSet || !defines.has(f.name) || !opts.answerCodings) continue;
    const url = f.def.answerValueSet.includes('/') ? f.def.answerValueSet : `${opts.canonicalBase}/ValueSet/${f.def.answerValueSet}`;
    const codings = opts.answerCodings(url).filter((c) => c.system && c.code);
    if (codings.length === 0) continue;
    const whens = codings.map(
      (c) =>
        `when ${cqlString(c.code!)} then Code { code: ${cqlString(c.code!)}, system: ${cqlString(c.system!)}${c.display ? `, display: ${cqlString(c.display)}` : ''} }`,
    );
    body.push({
      name: codingDefine(f.name),
      cql: `// ${f.def.linkId ?? f.name} as a Coding of its answer value set\ndefine "${codingDefine(f.name)}":\n  case "${f.name}"\n    ${whens.join('\n    ')}\n    else null\n  end`,
    });
  }

  // A computed amount (a dose from the body surface area, Besponsa's mg/m² or Blincyto's mcg/day from mcg/m²/day; a
  // weight or height converted from pounds or inches; OHSU's billable units) is pre-filled as a clinician reads it,
  // rounded to its unit's display decimals as the FHIRPath form and the payer's pre-filled response round it
  // (display-precision.ts, src/dtr/expressions.ts): "<fact>AsShown" rounds it, and the DTR 2.0.1 form names that define
  // on the item (src/dtr/cql-questionnaire.ts). Every item with display decimals, as in the FHIRPath form: the Libraries
  // in parts (design.md §7) leave room for them.
  for (const f of policy.facts) {
    const decimals = displayDecimals(f.def);
    if (decimals === undefined || !f.def.askable || !f.def.linkId || !defines.has(f.name)) continue;
    shown.set(f.name, shownDefine(f.name));
    body.push({ name: shownDefine(f.name), cql: `// ${f.def.linkId} as the form shows it\ndefine "${shownDefine(f.name)}":\n  ${shownCql(`"${f.name}"`, decimals)}` });
  }

  const groups: Group[] = [
    ...Object.keys(HELPERS)
      .filter((h) => usedHelpers.has(h))
      .map((h) => ({ names: [...HELPERS[h].cql.matchAll(/^define (?:function )?"([^"]+)"/gm)].map((m) => m[1]), cql: HELPERS[h].cql, forward: false })),
    ...[...shared].map(([sname, cql]) => ({ names: [sname], cql: `define "${sname}":\n  ${cql}`, forward: false })),
    ...body.map((b) => ({ names: [b.name], cql: b.cql, forward: true })),
  ];
  const notes: string[] = [];
  if (notExpressed.size > 0) {
    notes.push('// Facts not expressed in CQL (asked in the form, or pre-filled by the payer from what CRD read):');
    for (const [fact, why] of notExpressed) notes.push(`//   ${fact}: ${why}`);
  }
  const header = (libName: string, purpose: string[], includes: CqlLibraryPart[], sets: Set<string>) => [
    `library ${libName} version '${version}'`,
    '',
    `// Generated from PriorPath policy ${policy.file.id} version ${version} by npm run libraries; do not edit.`,
    ...purpose,
    "using FHIR version '4.0.1'",
    "include FHIRHelpers version '4.0.1' called FHIRHelpers",
    ...includes.map((p) => `include ${p.name} version '${version}' called ${p.alias}`),
    '',
    ...[...valueSets]
      .filter(([id]) => sets.has(id))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([id, url]) => `valueset "${id}": ${cqlString(url)}`),
    ...(sets.size > 0 ? [''] : []),
    '// The order under review (the DTR reference app passes a MedicationRequest order as medication_request).',
    'parameter medication_request FHIR.MedicationRequest',
    '// %diagnosesComplete: the Conditions are the whole problem list (true for a DTR client reading the EHR).',
    'parameter diagnoses_complete System.Boolean default true',
    '',
    'context Patient',
    '',
  ];
  const mainPurpose = [
    '// Each define is the policy fact of the same name, translated from its FHIRPath (src/cql/fhirpath-to-cql.ts);',
    '// null is unknown, as an empty FHIRPath result is.',
  ];

  const packed = packGroups(groups, new Set(valueSets.keys()));
  const parts: CqlLibraryPart[] = [];
  const partOf = new Map<string, CqlLibraryPart>();
  for (const [n, pack] of packed.slice(0, -1).entries()) {
    const part: CqlLibraryPart = { name: `${name}Part${n + 1}`, alias: `Part${n + 1}`, index: n + 1, cql: '', defines: [], dataTypes: [] };
    const texts = pack.map((g) => qualify(g.cql, (ref) => partOf.get(ref)?.alias));
    const sets = new Set(texts.flatMap((t) => [...t.refs]).filter((r) => valueSets.has(r)));
    const purpose = [
      `// Part ${n + 1} of the CQL of ${name}, which includes it: definitions its defines read, split off so that each`,
      '// Library fits one FHIR string (design.md §7 "Libraries in parts"). Facts are defined by name in the main Library.',
    ];
    part.cql = `${[...header(part.name, purpose, parts, sets), ...texts.flatMap((t) => [t.text, ''])].join('\n').trimEnd()}\n`;
    part.defines = pack.flatMap((g) => g.names);
    part.dataTypes = [...types].filter((t) => t === 'Patient' || new RegExp(`\\[${t}[\\]:\\s]`).test(part.cql));
    for (const d of part.defines) partOf.set(d, part);
    parts.push(part);
  }
  const mainTexts = packed[packed.length - 1].map((g) => qualify(g.cql, (ref) => partOf.get(ref)?.alias));
  // Every fact (and its Coding and AsShown define) stays a define of the main Library under its own name: the form's
  // initialExpressions name them there ("PriorPathX".fact), and a client's results are the main Library's.
  const forwards = groups.filter((g) => g.forward && partOf.has(g.names[0])).map((g) => `define "${g.names[0]}":\n  ${partOf.get(g.names[0])!.alias}."${g.names[0]}"`);
  const mainSets = new Set(mainTexts.flatMap((t) => [...t.refs]).filter((r) => valueSets.has(r)));
  const lines = [
    ...header(name, mainPurpose, parts, mainSets),
    ...mainTexts.flatMap((t) => [t.text, '']),
    ...(forwards.length > 0 ? ['// The facts defined in the included parts, by name.', ...forwards.flatMap((f) => [f, ''])] : []),
    ...notes,
  ];
  return { name, version, cql: `${lines.join('\n').trimEnd()}\n`, defines, notExpressed, shown, valueSets, dataTypes: [...types], parts };
}

/** A unit of the generated CQL: a define (or a helper's defines and functions) with its comments. */
interface Group {
  names: string[];
  cql: string;
  /** A define the main Library must define by name (a fact, its Coding, its AsShown). */
  forward: boolean;
}

/**
 * The groups in Libraries: each group after every group it reads (a stable topological order), then packed in that
 * order, each Library up to {@link LIBRARY_CQL_BUDGET} characters; the last Library is the main one. A Library so
 * reads only itself and the ones before it, which it includes.
 */
function packGroups(groups: Group[], valueSetIds: Set<string>): Group[][] {
  const owner = new Map<string, Group>();
  for (const g of groups) for (const n of g.names) {
    if (owner.has(n) || valueSetIds.has(n)) throw new Error(`the CQL name ${n} is defined twice`);
    owner.set(n, g);
  }
  const deps = new Map(groups.map((g) => [g, [...qualify(g.cql, () => undefined).refs].map((r) => owner.get(r)).filter((d): d is Group => !!d && d !== g)]));
  const ordered: Group[] = [];
  const done = new Set<Group>();
  while (ordered.length < groups.length) {
    const next = groups.find((g) => !done.has(g) && deps.get(g)!.every((d) => done.has(d)));
    if (!next) throw new Error('the generated CQL definitions read each other in a cycle');
    ordered.push(next);
    done.add(next);
  }
  const packs: Group[][] = [[]];
  let size = 0;
  for (const g of ordered) {
    if (size > 0 && size + g.cql.length > LIBRARY_CQL_BUDGET) {
      packs.push([]);
      size = 0;
    }
    packs[packs.length - 1].push(g);
    size += g.cql.length + 2;
  }
  return packs;
}

/**
 * The quoted identifiers a CQL text reads (outside strings and comments, and not a member after a dot), and the text
 * with each one another Library defines qualified by that Library's include alias (`Part1."Order Date"`).
 */
function qualify(cql: string, aliasOf: (name: string) => string | undefined): { text: string; refs: Set<string> } {
  const refs = new Set<string>();
  let out = '';
  let i = 0;
  while (i < cql.length) {
    const c = cql[i];
    if (c === '/' && cql[i + 1] === '/') {
      const end = cql.indexOf('\n', i);
      const stop = end < 0 ? cql.length : end;
      out += cql.slice(i, stop);
      i = stop;
    } else if (c === '/' && cql[i + 1] === '*') {
      const stop = cql.indexOf('*/', i + 2) + 2;
      out += cql.slice(i, stop);
      i = stop;
    } else if (c === "'") {
      let j = i + 1;
      while (j < cql.length && cql[j] !== "'") j += cql[j] === '\\' ? 2 : 1;
      out += cql.slice(i, j + 1);
      i = j + 1;
    } else if (c === '"') {
      const j = cql.indexOf('"', i + 1);
      const ref = cql.slice(i + 1, j);
      const member = /\.\s*$/.test(out);
      const alias = member ? undefined : aliasOf(ref);
      if (!member) refs.add(ref);
      out += alias ? `${alias}."${ref}"` : cql.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return { text: out, refs };
}

/**
 * The define's value: one value of the fact's type, empty when implausible (evaluate-policy.ts `factBounds`, as
 * `plausible` reads them: a measured amount is positive, a percentage 0 to 100, a count never negative; a stated date is
 * not after the order date or today, a planned one unbounded).
 */
function factValue(def: FactDefinition, out: CqlNode, needHelper: (name: 'Order Date' | 'Latest Plausible Date') => void): string {
  if (out.ty.k === 'null') return `null as ${cqlType(factTy(def.type))}`;
  if (out.ty.k !== 'sys' || !FACT_TYPES[def.type].includes(out.ty.name)) {
    throw new Untranslatable(`its FHIRPath gives ${out.ty.k === 'sys' ? out.ty.name : 'a FHIR element'}, not a ${def.type}`);
  }
  const one = out.many ? `singleton from (${out.cql})` : out.cql;
  const b = factBounds(def);
  if (!b) return one;
  if (b.min !== undefined || b.max !== undefined) {
    const conds = [
      ...(b.min !== undefined ? [`V ${b.minExcluded ? '>' : '>='} ${b.min}`] : []),
      ...(b.max !== undefined ? [`V <= ${b.max}`] : []),
    ];
    return `(${one}) V where ${conds.join(' and ')}`;
  }
  if (b.notAfter === 'order') {
    needHelper('Order Date');
    return `(${one}) V where Substring(V, 0, 10) <= ToString("Order Date")`;
  }
  if (b.notAfter === 'latest') {
    needHelper('Latest Plausible Date');
    return `(${one}) V where Substring(V, 0, 10) <= ToString("Latest Plausible Date")`;
  }
  return one;
}


/**
 * CQL that rounds an amount as the form shows it: to `decimals`, with one more while the value so rounded is not the
 * value and lands on the step one decimal coarser, up to EXTRA_DECIMALS more (display-precision.ts `shownDecimals`;
 * design.md §7 "Pre-filled amounts"). Null stays null: every comparison with it is null, so the last branch rounds it.
 */
function shownCql(value: string, decimals: number): string {
  let body = `Round(${value}, ${decimals + EXTRA_DECIMALS})`;
  for (let d = decimals + EXTRA_DECIMALS - 1; d >= decimals; d--) {
    body = `if Round(${value}, ${d}) != ${value} and Round(${value}, ${d}) = Round(${value}, ${d - 1}) then (${body}) else Round(${value}, ${d})`;
  }
  return body;
}
