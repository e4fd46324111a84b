import type {
  CodeableConcept,
  Condition,
  Coverage,
  Immunization,
  MedicationRequest,
  Observation,
  Patient,
  Practitioner,
  PractitionerRole,
  Resource,
} from '@medplum/fhirtypes';
import { ICD10_SYSTEMS, ICD10CM_NO_DISEASE_LETTERS, canonicalIcd10Code } from '../fhir/value-sets.js';
import type { EvaluationData } from './evaluate-policy.js';
import { FactMemo } from './evaluate-policy.js';
import { localReference } from '../fhir/references.js';
import { instantOf } from '../fhir/fhir-instant.js';

/** The patient's record as resolved from prefetch or EHR queries, before it is narrowed to one order. */
export interface PatientRecord {
  patient?: Patient;
  coverage?: Coverage;
  /** The `user` prefetch: a PractitionerRole or Practitioner; PractitionerRoles found by reference are added. */
  users: (PractitionerRole | Practitioner)[];
  conditions: Condition[];
  observations: Observation[];
  medications: MedicationRequest[];
  immunizations: Immunization[];
  /** Every draft order of this hook call (order-sign/select) or the dispatched orders. */
  orders: MedicationRequest[];
  /**
   * The orders one request asks a decision for together, as listed: an order-sign or order-select call's draft orders
   * someone will act on, the orders a PAS request's Claim items ask for. Each is judged with the ones before it in the
   * request's own sequence, not the listing (`%requestOrdersBefore`, requestPlace below): a course limit
   * counts them (docs/design.md §6 "Orders signed or claimed together"). Unset: the order is judged alone.
   */
  requestOrders?: MedicationRequest[];
  /** Resources found anywhere (prefetch, contained), for resolving references such as requester. */
  byReference: Map<string, Resource>;
  /**
   * false when `conditions` is not the patient's whole problem list (a PAS Bundle carries what the provider chose to
   * send): then no diagnosis at all is unknown, never "another diagnosis" (design.md §6 "Clinical readings").
   */
  diagnosesComplete?: boolean;
  /**
   * A digest of the bytes this record was built from (a hook's request body and the EHR's answers), when known:
   * records with equal digests are equal, so the evaluation cache keys on it instead of serialising the record.
   */
  sourceDigest?: string;
}

const CLINICAL_ACTIVE = new Set(['active', 'recurrence', 'relapse', 'remission']);
const VERIFICATION_EXCLUDED = new Set(['refuted', 'entered-in-error']);
/**
 * Verification statuses of a diagnosis not yet established (FHIR condition-ver-status): suspected, a working
 * diagnosis, or one of several under consideration. Such a Condition proves neither that the patient has the disease
 * nor that they have another one (design.md §6 "Clinical readings").
 */
const VERIFICATION_SUSPECTED = new Set(['unconfirmed', 'provisional', 'differential']);

const verificationCodes = (c: Condition) => c.verificationStatus?.coding?.map((x) => x.code) ?? [];
const clinicallyCurrent = (c: Condition) => {
  const clinical = c.clinicalStatus?.coding?.map((x) => x.code) ?? [];
  // US Core allows a missing clinicalStatus only for entered-in-error; a record without one is taken as current.
  return clinical.length === 0 || clinical.some((v) => v !== undefined && CLINICAL_ACTIVE.has(v));
};

/**
 * A current Condition naming a disease whose diagnosis is only suspected (unconfirmed, provisional, differential):
 * while the problem list holds one, it is not a complete account of the patient's diagnoses, so a diagnosis it lacks
 * is unknown (asked), never absent (design.md §6 "Clinical readings": a denial never rests on what the record cannot
 * prove).
 */
export function isSuspectedDiagnosis(c: Condition): boolean {
  const verification = verificationCodes(c);
  return (
    verification.some((v) => v !== undefined && VERIFICATION_SUSPECTED.has(v)) &&
    !verification.some((v) => v !== undefined && VERIFICATION_EXCLUDED.has(v)) &&
    clinicallyCurrent(c) &&
    namesDisease(c.code)
  );
}

/**
 * design.md §6: Conditions that count as diagnoses (active, recurrence, relapse or remission; not refuted, entered
 * in error, or only suspected).
 */
export function isQualifyingCondition(c: Condition): boolean {
  if (verificationCodes(c).some((v) => v && (VERIFICATION_EXCLUDED.has(v) || VERIFICATION_SUSPECTED.has(v)))) return false;
  return clinicallyCurrent(c);
}

/** The date an observation speaks for, for ordering: effective[x] or issued. */
function observationDate(o: Observation): string | undefined {
  return o.effectiveDateTime ?? o.effectivePeriod?.start ?? o.effectiveInstant ?? o.issued;
}

/**
 * The order date every recency window counts from (design.md §6): the planned start, else the validity start, else
 * authoredOn, else today.
 */
export function orderDateOf(order: MedicationRequest, today: string): string {
  return orderStartOf(order) ?? today;
}

const toTheDay = (c: unknown): string | undefined => (typeof c === 'string' && /^\d{4}-\d{2}-\d{2}/.test(c) ? c.slice(0, 10) : undefined);

/**
 * The date an order states for itself, as {@link orderDateOf} reads it (planned start, validity start, authoredOn,
 * each written to at least the day), or undefined when it states none. DTR pre-fills the form's order-date item with
 * it, so the form judges the order on the date CRD did (design.md §8). The planned start is the earliest start of any
 * dosage instruction: FHIR orders instructions by `sequence`, not by their place in the array, so a step-dosed cycle
 * may list its days 8-28 before its days 1-7.
 */
export function orderStartOf(order: MedicationRequest): string | undefined {
  return statedStartOf(order) ?? toTheDay(order.authoredOn);
}

/**
 * The start an order states for its therapy: the planned start (the earliest `boundsPeriod.start` of its dosage
 * instructions), else its validity start; undefined when it states neither. Unlike {@link orderStartOf} it never
 * falls back to `authoredOn`: an order is often written before its pre-treatment work-up, so the day it was written
 * says nothing of when the therapy begins. The recency windows end here (`%orderStart`, docs/design.md §6
 * "Recency"): a result taken after the stated start (a retrospective request) describes the patient on the therapy
 * being authorized, not the indication it was started for.
 */
export function statedStartOf(order: MedicationRequest): string | undefined {
  const planned = (order.dosageInstruction ?? [])
    .map((i) => toTheDay(i.timing?.repeat?.boundsPeriod?.start))
    .filter((d): d is string => d !== undefined)
    .sort()[0];
  return planned ?? toTheDay(order.dispenseRequest?.validityPeriod?.start);
}

const refKey = (ref: string | undefined): string | undefined => localReference(ref) ?? ref;

/**
 * Indexes a patient record once per request: conditions filtered, observations sorted oldest first by the instant
 * they were taken, whatever time-zone offset each is written in (so `.last()` is the latest; fhir-instant.ts), and
 * the other orders of the same call counted as concurrent therapy.
 */
export function indexRecord(record: PatientRecord): PatientRecord {
  return {
    ...record,
    conditions: record.conditions.filter(isQualifyingCondition).map(withCanonicalCode),
    diagnosesComplete: (record.diagnosesComplete ?? true) && !record.conditions.some(isSuspectedDiagnosis),
    observations: byTimeTaken(record.observations.filter((o) => o.status !== 'entered-in-error' && o.status !== 'cancelled')),
    immunizations: record.immunizations.filter((i) => i.status === 'completed'),
  };
}

/**
 * Observations oldest first by the instant each was taken ({@link instantOf}); each date is parsed once, not once per
 * comparison (a record of a few hundred results is sorted on every hook). Undated results come first; equal instants
 * keep their order (the order `byInstant` in fhir-instant.ts gives).
 */
function byTimeTaken(observations: Observation[]): Observation[] {
  const keyed = observations.map((o, i) => ({ o, i, at: instantOf(observationDate(o)) ?? -Infinity }));
  keyed.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.i - b.i));
  return keyed.map((k) => k.o);
}

/**
 * Narrows an indexed record to the FHIRPath variables of one order (see cds-services/README.md "Variables"), with an
 * empty fact memo: every policy evaluated over the result shares the facts they define alike.
 * `%diagnoses` is the order's own reasons when it has any, else the codes of the patient's qualifying Conditions.
 * `assertedStart`: the start CRD read off this order when it was signed (`AssertionRecord.orderStart`), for a copy of
 * the order that states none (a PAS Bundle's slimmed MedicationRequest): the order is judged on it, its order date and
 * `%orderStart` both, as signing judged it, not on the copy's authoredOn with no upper end to its windows (design.md §6
 * "Order date"; review-diff s44 D5). A copy that states a start of its own is judged on that.
 */
export function evaluationDataFor(record: PatientRecord, order: MedicationRequest, today: string, assertedStart?: string): EvaluationData {
  const users: Resource[] = [...record.users];
  const requester = refKey(order.requester?.reference);
  const requesterResource = requester ? (record.byReference.get(requester) ?? containedOf(order, order.requester?.reference)) : undefined;
  if (requesterResource && !users.some((u) => u.resourceType === requesterResource.resourceType && u.id === requesterResource.id)) {
    users.push(requesterResource);
  }

  const reasonConditions = (order.reasonReference ?? [])
    .map((r) => record.byReference.get(refKey(r.reference) ?? '') ?? containedOf(order, r.reference))
    .filter((r): r is Condition => r?.resourceType === 'Condition' && isQualifyingCondition(r) && namesDisease(r.code))
    .map(withCanonicalCode);
  // design.md §6 "Clinical readings": encounter and procedure reasons (ICD-10-CM Z51.x chemotherapy encounter, Z09,
  // Z79.x long-term drug therapy, any Z code), symptoms (R50.9 fever: any R code), external causes (V-Y) and text-only
  // reasons are not diagnoses; the order's reason decides only when it names a disease, otherwise the problem list does.
  const reasonCodes = (order.reasonCode ?? []).filter(namesDisease).map(canonicalConcept);
  // A problem list of encounter or symptom codes alone (Z51.11, Z79.x, R53.83, R50.9: every code an ICD-10-CM R, V-Y
  // or Z code) names no disease: like an empty one it says nothing of the diagnosis, so it is no diagnosis (asked),
  // never "another diagnosis".
  const listed = record.conditions.map((c) => c.code).filter((c): c is CodeableConcept => !!c);
  // A reason written in words only ("relapsed B-ALL", no code) cannot decide the diagnosis, but it is the order's own
  // statement of it: beside a problem list that decides, it is read with the list, so words naming a leukemia keep the
  // question open (leukemiaTypeUnrecorded) instead of the list's other diseases denying it (design.md §6 "Clinical
  // readings": a denial never rests on what the record cannot prove). Beside no diagnosis at all it adds nothing: the
  // diagnosis stays unknown, asked.
  const reasonTexts = (order.reasonCode ?? []).filter(isTextOnly);
  const diagnoses: CodeableConcept[] =
    reasonConditions.length > 0 || reasonCodes.length > 0
      ? [...reasonConditions.map((c) => c.code).filter((c): c is CodeableConcept => !!c), ...reasonCodes]
      : listed.some((c) => !encounterCodesOnly(c))
        ? [...listed, ...reasonTexts]
        : [];

  const others = record.orders.filter((o) => o !== order && o.id !== order.id);
  const place = requestPlace(record, order, today);
  // The request's orders of this drug under way after this one are read as not signed yet (requestPlace), so each
  // cycle is counted once: by the order after it.
  const later = (m: MedicationRequest) => place.laterUnderWay.some((o) => o === m || (o.id !== undefined && o.id === m.id));
  const medications = [...record.medications.filter((m) => m.id !== order.id), ...others].map((m) =>
    withMedicationCode(place.laterUnderWay.length > 0 && later(m) ? { ...m, status: 'draft' } : m, record),
  );

  return {
    order,
    patient: record.patient,
    coverage: record.coverage,
    user: users,
    conditions: record.conditions,
    observations: record.observations,
    medications,
    immunizations: record.immunizations,
    diagnoses,
    // An empty list proves no diagnosis absent: a drug for a disease is ordered, so a record naming none (no problem
    // list, no reason) is one that does not say which, and the diagnosis is asked (design.md §6 "How absence reads").
    diagnosesComplete: (record.diagnosesComplete ?? true) && diagnoses.length > 0,
    ...datesOf(order, today, assertedStart),
    requestOrdersBefore: place.before,
    requestOrdersBeforeAny: place.beforeAny,
    memo: new FactMemo(),
  };
}

/** The order date and `%orderStart` of an order ({@link evaluationDataFor}). */
function datesOf(order: MedicationRequest, today: string, assertedStart: string | undefined): { orderDate: string; orderStart?: string } {
  const stated = statedStartOf(order) ?? assertedStart;
  return stated !== undefined ? { orderDate: stated, orderStart: stated } : { orderDate: orderDateOf(order, today) };
}

/** Statuses of an order already given or under way: the record's cycle counts read these orders themselves. */
const UNDER_WAY = new Set(['active', 'on-hold', 'completed', 'stopped']);

/** Where one order stands in its request's sequence ({@link requestPlace}). */
interface RequestPlace {
  /** `%requestOrdersBefore`: the request's other orders before this one that are not under way yet. */
  before: MedicationRequest[];
  /**
   * `%requestOrdersBeforeAny`: the request's other orders before this one whatever their status, for a limit per
   * request that does not count the cycles given (Centene's one consolidation cycle per request): an order under way
   * is left out of `before` because the record's facts count it as given, which such a limit does not read.
   */
  beforeAny: MedicationRequest[];
  /** The request's other orders of this order's drug after this one that are under way: read here as not signed yet. */
  laterUnderWay: MedicationRequest[];
}

const NOT_IN_A_REQUEST: RequestPlace = { before: [], beforeAny: [], laterUnderWay: [] };

/**
 * Where an order stands among the other orders of its request (PatientRecord.requestOrders), as though the request's
 * orders were signed one after another (docs/design.md §6 "Orders signed or claimed together"). The sequence is the
 * orders' own, never the listing's, so the same orders signed or claimed again in another order get the same
 * decisions and an approval already given to one of them stands (§8, one decision per order): first the orders
 * already under way (active, on-hold, completed or stopped, as sent or as the record holds them: signed before the
 * others), then by planned start (orderDateOf), then by id; the place in the request decides only between orders
 * without an id. An entry that repeats this order (same id) or an earlier entry is not another order.
 * - `before`: the orders before this one, left out those under way (the record's own facts count them as given) and
 *   repeats, so no cycle counts twice. What counts is the policies' to say (the shared fact requestCyclesBefore: the
 *   drug, the phase, a separate first-week order that is part of its cycle).
 * - `beforeAny`: the orders before this one, repeats left out, under way or not: for a limit on the request itself,
 *   which counts no cycles given (review-diff s43 F3: two active orders claimed or dispatched together).
 * - `laterUnderWay`: the orders of the same drug after this one that are under way. As the sequence has it, they were
 *   not yet signed when this one was, so this order reads them as drafts, as it reads the request's later drafts:
 *   otherwise two orders under way claimed or signed together would each count the other's cycles as given, and
 *   each cycle is counted once, by the order after it.
 */
function requestPlace(record: PatientRecord, order: MedicationRequest, today: string): RequestPlace {
  const list = record.requestOrders ?? [];
  if (list.length < 2) return NOT_IN_A_REQUEST;
  const recordUnderWay = new Set(record.medications.filter((m) => m.id !== undefined && UNDER_WAY.has(String(m.status))).map((m) => m.id));
  const underWay = (o: MedicationRequest) => UNDER_WAY.has(String(o.status)) || (o.id !== undefined && recordUnderWay.has(o.id));
  const seen = new Set<string>();
  const entries: { o: MedicationRequest; place: number }[] = [];
  let self = -1;
  list.forEach((o, place) => {
    if (o === order || (order.id !== undefined && o.id === order.id)) {
      if (self < 0) self = entries.push({ o: order, place }) - 1;
      return;
    }
    if (o.id !== undefined) {
      if (seen.has(o.id)) return;
      seen.add(o.id);
    }
    entries.push({ o, place });
  });
  if (self < 0) self = entries.push({ o: order, place: list.length }) - 1;
  const keyed = entries.map((e) => ({ ...e, underWay: underWay(e.o), start: orderDateOf(e.o, today) }));
  const compare = (a: (typeof keyed)[number], b: (typeof keyed)[number]) =>
    Number(b.underWay) - Number(a.underWay) ||
    (a.start < b.start ? -1 : a.start > b.start ? 1 : 0) ||
    (a.o.id !== undefined && b.o.id !== undefined ? (a.o.id < b.o.id ? -1 : a.o.id > b.o.id ? 1 : 0) : Number(a.o.id === undefined) - Number(b.o.id === undefined)) ||
    a.place - b.place;
  const me = keyed[self];
  const before: MedicationRequest[] = [];
  const beforeAny: MedicationRequest[] = [];
  const laterUnderWay: MedicationRequest[] = [];
  const drug = withMedicationCode(order, record).medicationCodeableConcept;
  for (const e of keyed) {
    if (e === me) continue;
    if (compare(e, me) < 0) {
      const coded = withMedicationCode(e.o, record);
      beforeAny.push(coded);
      if (!e.underWay) before.push(coded);
    } else if (e.underWay && sameDrug(drug, withMedicationCode(e.o, record).medicationCodeableConcept)) {
      laterUnderWay.push(e.o);
    }
  }
  return { before, beforeAny, laterUnderWay };
}

/**
 * Whether two drug concepts name the same drug: a coding (system and code) in common, or the same text when neither
 * names it by a code both share. Orders of one drug coded differently (one by its product, the other by its
 * ingredient) are not matched: their cycles are then counted as before, in full (reviewed, never denied).
 */
function sameDrug(a: CodeableConcept | undefined, b: CodeableConcept | undefined): boolean {
  const codes = new Set((a?.coding ?? []).filter((c) => c.code).map((c) => `${c.system ?? ''}|${c.code}`));
  if ((b?.coding ?? []).some((c) => c.code && codes.has(`${c.system ?? ''}|${c.code}`))) return true;
  const text = (c: CodeableConcept | undefined) => c?.text?.trim().toLowerCase();
  return !!text(a) && text(a) === text(b);
}

const ICD10CM = 'http://hl7.org/fhir/sid/icd-10-cm';

/**
 * A concept whose ICD-10(-CM) codings are spelled as FHIR spells them (C91.00, not C9100 or c91.00), so that facts
 * comparing codes (`code = 'C91.02'`) and value sets read a diagnosis the same however the EHR wrote it. The same
 * object when nothing changes (nearly always): the hook path allocates nothing for it.
 */
export function canonicalConcept(c: CodeableConcept): CodeableConcept {
  const codings = c.coding;
  if (!codings?.some((x) => x.system !== undefined && ICD10_SYSTEMS.has(x.system) && typeof x.code === 'string' && canonicalIcd10Code(x.code) !== x.code)) {
    return c;
  }
  return {
    ...c,
    coding: codings.map((x) => (x.system !== undefined && ICD10_SYSTEMS.has(x.system) && typeof x.code === 'string' ? { ...x, code: canonicalIcd10Code(x.code) } : x)),
  };
}

/** A Condition with its code in canonical form ({@link canonicalConcept}); the same object when it already is. */
function withCanonicalCode(c: Condition): Condition {
  if (!c.code) return c;
  const code = canonicalConcept(c.code);
  return code === c.code ? c : { ...c, code };
}

/**
 * A concept coded only with ICD-10-CM codes that name no disease (symptoms R, external causes V-Y, encounters, status
 * and history Z): it names no disease by itself.
 */
function encounterCodesOnly(c: CodeableConcept): boolean {
  const codings = (c.coding ?? []).filter((x) => x.code);
  return codings.length > 0 && !namesDisease(c);
}

/** A concept written in words only: text, and no coding with a code. */
function isTextOnly(c: CodeableConcept): boolean {
  return !(c.coding ?? []).some((x) => x.code) && typeof c.text === 'string' && c.text.trim() !== '';
}

const NO_DISEASE = new RegExp(`^[${ICD10CM_NO_DISEASE_LETTERS}]`, 'i');

/**
 * A reason concept that names a disease: it has a coding, and not only ICD-10-CM codes of the chapters that name none
 * (symptoms R, external causes V-Y, encounters and history Z: {@link ICD10CM_NO_DISEASE_LETTERS}).
 */
function namesDisease(c: CodeableConcept | undefined): boolean {
  const codings = (c?.coding ?? []).filter((x) => x.code);
  return codings.length > 0 && codings.some((x) => !(x.system === ICD10CM && NO_DISEASE.test(x.code!.trim())));
}

function containedOf(order: MedicationRequest, ref: string | undefined): Resource | undefined {
  if (!ref?.startsWith('#')) return undefined;
  return order.contained?.find((c) => c.id === ref.slice(1));
}

/**
 * A copy of a MedicationRequest whose medicationReference is replaced by the referenced Medication's code, so that
 * fact expressions read `medication.memberOf(...)` the same way for coded and referenced drugs. A Medication the
 * record does not hold (EHRs such as Epic write every order as a reference with the drug's name as its `display`, and
 * the MedicationRequest search does not return the Medications) leaves the display as the concept's text, so the drug
 * is still known by its name (design.md §6 "Clinical readings": match by ingredient name as a fallback): an earlier
 * Blincyto cycle written that way is an earlier cycle, not a first request.
 */
export function withMedicationCode(m: MedicationRequest, record: Pick<PatientRecord, 'byReference'>): MedicationRequest {
  if (m.medicationCodeableConcept || !m.medicationReference) return m;
  const { reference: ref, display } = m.medicationReference;
  const med = !ref ? undefined : ref.startsWith('#') ? containedOf(m, ref) : record.byReference.get(refKey(ref) ?? '');
  const named = typeof display === 'string' && display.trim() !== '' ? display : undefined;
  const code = med?.resourceType === 'Medication' && med.code ? med.code : named ? { text: named } : undefined;
  if (!code) return m;
  const { medicationReference: _drop, ...rest } = m;
  return { ...rest, medicationCodeableConcept: code };
}
