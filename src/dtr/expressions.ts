import type { ValueSetIndex } from '../fhir/value-sets.js';
import { HCPCS_SYSTEM, ICD10CM_NO_DISEASE_LETTERS, ICD10_SYSTEMS } from '../fhir/value-sets.js';
import { resolveValueSetUrl, UNPLACED_ONSET } from '../fhir/fhirpath.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import type { FactType } from '../policies/policy-schema.js';
import { tokenize } from '../fhir/fhirpath-tokens.js';
import type { Token } from '../fhir/fhirpath-tokens.js';
import { ORDER_DATE_LINK_ID, ORDER_START_LINK_ID } from '../policies/questionnaire-names.js';
import { readsRecord, SERVER_FUNCTIONS } from '../policies/reads-record.js';
import { displayDecimals, EXTRA_DECIMALS } from '../policies/display-precision.js';

/**
 * Turns policy FHIRPath (design.md §5) into the FHIRPath an SDC renderer runs in the browser:
 * - `initialExpression`s: a fact's expression over the EHR data, rewritten to read the Questionnaire's launch contexts
 *   and `x-fhir-query` variables (SDC §Expression-based population);
 * - `enableWhenExpression`s: a rule's condition over the answers given so far (`%resource` = the
 *   QuestionnaireResponse), used to hide questions for a covered use the answers already rule out.
 *
 * Only the text is rewritten; nothing here evaluates. The translations are checked by running them through fhirpath.js
 * (the engine LHC-Forms and Smart Forms use) against the server's own results in test/dtr.
 */



function significant(tokens: Token[], from: number, step: 1 | -1): Token | undefined {
  for (let i = from + step; i >= 0 && i < tokens.length; i += step) if (tokens[i].kind !== 'space') return tokens[i];
  return undefined;
}

/** An identifier that is neither a member (`.x`) nor a function call (`x(`): a fact name in a rule. */
function isBare(tokens: Token[], i: number): boolean {
  return significant(tokens, i, -1)?.text !== '.' && significant(tokens, i, 1)?.text !== '(';
}

const quote = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

// ---------------------------------------------------------------------------------------------------------------
// Client-side population (initialExpression)

/** How faithfully a renderer reproduces the server's value of a fact. */
export type Portability = 'portable' | 'approximate' | 'none';

export interface ClientExpression {
  /** FHIRPath for `sdc-questionnaire-initialExpression`; absent when the fact cannot be read by a renderer. */
  expression?: string;
  portability: Portability;
  /** Why the expression is approximate or absent (goes into the item's designNote). */
  notes: string[];
}

/** The x-fhir-query variables every generated Questionnaire declares (searchset Bundles in the renderer). */
export const CLIENT_QUERIES = [
  {
    name: 'conditions',
    query: 'Condition?patient={{%patient.id}}',
    description: "The patient's Conditions (all of them, as the CRD prefetch)",
  },
  {
    name: 'observations',
    query: 'Observation?patient={{%patient.id}}&_sort=date&_count=1000',
    description: "The patient's Observations, oldest first, so that .last() is the latest result as on the server",
  },
  {
    name: 'medications',
    query: 'MedicationRequest?patient={{%patient.id}}',
    description: "The patient's MedicationRequests",
  },
  { name: 'immunizations', query: 'Immunization?patient={{%patient.id}}', description: "The patient's Immunizations" },
] as const;

const QUALIFYING_CONDITION =
  "(clinicalStatus.coding.empty() or clinicalStatus.coding.where(code in ('active' | 'recurrence' | 'relapse' | 'remission')).exists())" +
  " and verificationStatus.coding.where(code in ('refuted' | 'entered-in-error' | 'unconfirmed' | 'provisional' | 'differential')).empty()";

/** The codes of the qualifying Conditions on the problem list. */
const PROBLEM_LIST_CODES = `%conditions.entry.resource.where(${QUALIFYING_CONDITION}).code`;

/** value-sets.ts ICD10CM_NO_DISEASE_LETTERS: an ICD-10-CM code of a chapter that names no disease (R, V-Y, Z). */
const NO_DISEASE_ICD10CM = `(system = 'http://hl7.org/fhir/sid/icd-10-cm' and code.trim().upper().matches('^[${ICD10CM_NO_DISEASE_LETTERS}]'))`;

/**
 * evaluation-data.ts encounterCodesOnly, negated (on a CodeableConcept): not coded only with ICD-10-CM codes that name
 * no disease (symptoms R, external causes V-Y, encounters and history Z). A list of such codes alone names no disease,
 * so it is no diagnosis.
 */
const NAMES_MORE_THAN_ENCOUNTER =
  `(coding.where(code.exists()).empty() or coding.where(code.exists() and ${NO_DISEASE_ICD10CM}.not()).exists())`;

/** evaluation-data.ts isSuspectedDiagnosis: a current Condition naming a disease whose diagnosis is only suspected. */
const SUSPECTED_DIAGNOSIS =
  "(clinicalStatus.coding.empty() or clinicalStatus.coding.where(code in ('active' | 'recurrence' | 'relapse' | 'remission')).exists())" +
  " and verificationStatus.coding.where(code in ('unconfirmed' | 'provisional' | 'differential')).exists()" +
  " and verificationStatus.coding.where(code in ('refuted' | 'entered-in-error')).empty()" +
  ` and code.coding.where(code.exists() and ${NO_DISEASE_ICD10CM}.not()).exists()`;

/** The answer of the form's hidden order-date item (the payer's pre-fill), as a FHIRPath date string. */
const ORDER_DATE_ANSWER = `%resource.repeat(item).where(linkId = '${ORDER_DATE_LINK_ID}').answer.valueDate`;

/**
 * `%orderDate` in the renderer: the order's start the payer pre-filled in the hidden order-date item
 * (questionnaire-names.ts `ORDER_DATE_LINK_ID`), the date CRD judged the order on, so an age band (`adult`: 18 years
 * on the order date) or an askWhen gate gives the form the same answer as CRD and the server (design.md §8: one
 * decision per order). Today only when the form was not pre-filled (no order was known).
 */
export const RENDERER_ORDER_DATE_EXPR = `iif(${ORDER_DATE_ANSWER}.exists(), ${ORDER_DATE_ANSWER}.first().toString().substring(0, 10), today().toString())`;
const RENDERER_ORDER_DATE_TIME_EXPR = `(${RENDERER_ORDER_DATE_EXPR} + 'T00:00:00Z')`;

/**
 * `%orderStart` in the renderer: the start the order states, as the payer pre-filled it in the hidden order-start
 * item (questionnaire-names.ts `ORDER_START_LINK_ID`); empty when the order states none or the form was not
 * pre-filled, and the recency windows then have no upper end, as on the server (docs/design.md §6 "Recency").
 */
const RENDERER_ORDER_START_EXPR = `%resource.repeat(item).where(linkId = '${ORDER_START_LINK_ID}').answer.valueDate.first().toString().substring(0, 10)`;

/**
 * What each server-side variable (cds-services/README.md "Variables") becomes in the renderer. The renderer has the
 * launch contexts (patient, user, encounter) and the x-fhir-query Bundles; it has no order and no Coverage.
 */
const CLIENT_VARIABLES: Record<string, { expr?: string; portability: Portability; note?: string }> = {
  patient: { expr: '%patient', portability: 'portable' },
  user: {
    expr: '%user',
    portability: 'approximate',
    note: "%user is the SMART user (fhirUser), not the order's requester",
  },
  conditions: { expr: `%conditions.entry.resource.where(${QUALIFYING_CONDITION})`, portability: 'portable' },
  observations: {
    expr: "%observations.entry.resource.where(status != 'entered-in-error' and status != 'cancelled')",
    portability: 'approximate',
    note: 'the latest result relies on the EHR honouring _sort=date (and returning every page)',
  },
  medications: {
    expr: '%medications.entry.resource',
    portability: 'approximate',
    note: 'the MedicationRequest search also returns this order once the EHR has stored it, and a medicationReference is not resolved to its Medication',
  },
  immunizations: { expr: "%immunizations.entry.resource.where(status = 'completed')", portability: 'portable' },
  diagnoses: {
    expr: `iif(${PROBLEM_LIST_CODES}.where(${NAMES_MORE_THAN_ENCOUNTER}).exists(), ${PROBLEM_LIST_CODES}, {})`,
    portability: 'approximate',
    note: "diagnoses are the patient's qualifying Conditions; the order's reasonCode/reasonReference (which the server prefers) is not visible",
  },
  // evaluation-data.ts evaluationDataFor: no suspected diagnosis, and at least one diagnosis (an empty list proves none absent).
  diagnosesComplete: {
    expr: `%conditions.entry.resource.where(${SUSPECTED_DIAGNOSIS}).empty() and ${PROBLEM_LIST_CODES}.where(${NAMES_MORE_THAN_ENCOUNTER}).exists()`,
    portability: 'portable',
  },
  orderDate: {
    expr: RENDERER_ORDER_DATE_EXPR,
    portability: 'approximate',
    note: "the order's start from the payer's pre-filled order-date item; today's date when the form was not pre-filled",
  },
  orderDateTime: {
    expr: RENDERER_ORDER_DATE_TIME_EXPR,
    portability: 'approximate',
    note: "the order's start from the payer's pre-filled order-date item; today's date when the form was not pre-filled",
  },
  orderStart: {
    expr: RENDERER_ORDER_START_EXPR,
    portability: 'approximate',
    note: "the start the order states, from the payer's pre-filled order-start item; empty (no upper end) when the form was not pre-filled",
  },
  order: {
    portability: 'none',
    note: 'reads the order, which no SDC launch context carries; pre-filled by the payer from the CRD facts',
  },
  coverage: { portability: 'none', note: 'reads the Coverage, which no SDC launch context carries' },
  resource: { portability: 'none', note: 'reads %resource, which is the QuestionnaireResponse in a renderer' },
  context: { portability: 'none', note: 'reads %context, which differs in a renderer' },
  rootResource: { portability: 'none', note: 'reads %rootResource, which differs in a renderer' },
  ucum: { expr: '%ucum', portability: 'portable' },
  sct: { expr: '%sct', portability: 'portable' },
  loinc: { expr: '%loinc', portability: 'portable' },
};

/**
 * A Coding's `code` in FHIR's ICD-10 spelling (src/fhir/value-sets.ts `canonicalIcd10Code`: trimmed, upper case, the
 * dot after the category), for a renderer whose record holds codes as the EHR wrote them (C9102, c91.02). The server
 * reads diagnoses in that spelling (docs/design.md §6 "Standard codes first"), and so does the CQL ("Coding Code"), so
 * the form's pre-fill reads the same record the same way.
 */
export const ICD10_CODE_SPELLING =
  "iif(code.trim().upper().matches('^[A-Z][0-9][0-9A-Z][0-9A-Z]{1,4}$'), code.trim().upper().substring(0, 3) + '.' + code.trim().upper().substring(3), code.trim().upper())";

/** Functions whose argument is evaluated with each input item as `$this` (an identifier inside reads that item). */
const ITEM_SCOPED = new Set(['where', 'select', 'all', 'exists', 'repeat']);

const stringValue = (t: Token | undefined) =>
  t?.kind === 'string' ? t.text.slice(1, -1).replace(/\\(.)/g, '$1') : undefined;

/**
 * The tokens of an expression that read an ICD-10 Coding's code: a bare `code` (not `x.code`, not `code.coding`) inside
 * a `where(...)`-like argument whose own item test says `system = '<ICD-10(-CM)>'` (or `system in (...)` naming one),
 * e.g. `coding.where(system = 'http://hl7.org/fhir/sid/icd-10-cm' and code.startsWith('C95.0'))`. Those are read in
 * {@link ICD10_CODE_SPELLING} by the renderer.
 */
export function icd10CodeReads(tokens: Token[]): Set<number> {
  interface Frame {
    scoped: boolean;
    icd: boolean;
    codes: number[];
  }
  const root: Frame = { scoped: true, icd: false, codes: [] };
  const stack: Frame[] = [root];
  const out = new Set<number>();
  const scope = () => [...stack].reverse().find((f) => f.scoped) ?? root;
  const close = (f: Frame) => {
    if (f.scoped && f.icd) for (const c of f.codes) out.add(c);
  };
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t.text === '(') {
      const prev = significant(tokens, i, -1);
      const beforePrev = prev ? significant(tokens, tokens.indexOf(prev), -1) : undefined;
      const call = prev?.kind === 'ident' && (beforePrev?.text === '.' || ITEM_SCOPED.has(prev.name!));
      stack.push({ scoped: call && ITEM_SCOPED.has(prev.name!), icd: false, codes: [] });
      continue;
    }
    if (t.text === ')') {
      const f = stack.pop();
      if (f && f !== root) close(f);
      if (stack.length === 0) stack.push(root);
      continue;
    }
    if (t.kind !== 'ident' || significant(tokens, i, -1)?.text === '.') continue;
    const next = significant(tokens, i, 1);
    if (t.name === 'code' && next?.text !== '(') {
      const after = next?.text === '.' ? significant(tokens, tokens.indexOf(next), 1) : undefined;
      if (after?.name !== 'coding') scope().codes.push(i);
    } else if (t.name === 'system' && next) {
      const j = tokens.indexOf(next);
      if (next.text === '=' && ICD10_SYSTEMS.has(stringValue(significant(tokens, j, 1)) ?? '')) scope().icd = true;
      if (next.name === 'in') {
        for (let k = j + 1; k < tokens.length && tokens[k].text !== ')'; k++) {
          if (ICD10_SYSTEMS.has(stringValue(tokens[k]) ?? '')) scope().icd = true;
        }
      }
    }
  }
  close(root);
  return out;
}

const RANK: Record<Portability, number> = { portable: 0, approximate: 1, none: 2 };
const worst = (a: Portability, b: Portability): Portability => (RANK[a] >= RANK[b] ? a : b);

/** The code test of a value set, spelled out from its local expansion (HCPCS under all three system URIs). */
function valueSetCheck(valueSets: ValueSetIndex, url: string): string | undefined {
  const vs = valueSets.get(url);
  if (!vs) return undefined;
  const bySystem = new Map<string, string[]>();
  for (const c of vs.expansion?.contains ?? []) {
    if (!c.system || !c.code) continue;
    bySystem.set(c.system, [...(bySystem.get(c.system) ?? []), c.code]);
  }
  const tests = [...bySystem].map(([system, codes]) => {
    const systems =
      system === HCPCS_SYSTEM
        ? [
            HCPCS_SYSTEM,
            'http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets',
            'https://bluebutton.cms.gov/resources/codesystem/hcpcs',
            'http://bluebutton.cms.gov/resources/codesystem/hcpcs',
          ]
        : [system];
    const sys = systems.length === 1 ? `system = ${quote(system)}` : `system in (${systems.map(quote).join(' | ')})`;
    // ICD-10 codes are compared in FHIR's spelling, as the server's value sets compare them (codingKey).
    const code = ICD10_SYSTEMS.has(system) ? `(${ICD10_CODE_SPELLING})` : 'code';
    const list = codes.length === 1 ? `${code} = ${quote(codes[0])}` : `${code} in (${codes.map(quote).join(' | ')})`;
    return `(${sys} and ${list})`;
  });
  return tests.length === 0 ? 'false' : tests.join(' or ');
}

/** What a resource is "about" (src/fhir/fhirpath.ts `conceptsOf`): its code, vaccine code or medication code. */
const CONCEPTS = '(code | vaccineCode | medication.ofType(CodeableConcept))';
/** The date a resource states, as written (src/fhir/fhirpath.ts `statedDate`). */
const STATED_DATES =
  'effective.ofType(dateTime) | effective.ofType(instant) | effective.ofType(Period).start | onset.ofType(Period).start' +
  ' | occurrence.ofType(dateTime) | onset.ofType(dateTime) | authoredOn | issued';
const STATED_DATE = `(${STATED_DATES}).first()`;
/** The date a resource speaks for (src/fhir/fhirpath.ts `resourceDate`), at date precision (a partial one stays partial). */
const RESOURCE_DATE = `${STATED_DATE}.toString().substring(0, 10).toDate()`;
/** The last day it may have been on (src/fhir/fhirpath.ts `possibleDays`): its date, else the day it was recorded. */
const LAST_POSSIBLE_DAY = `iif(${STATED_DATE}.exists(), ${RESOURCE_DATE}, recorded.toString().where(length() >= 10).substring(0, 10).toDate())`;

/**
 * Standard-FHIRPath spellings of the functions PriorPath adds on the server (src/fhir/fhirpath.ts), so any engine
 * runs them without a terminology server: `memberOf` from the local expansion (same three-valued result: empty for
 * empty input, else whether any Coding is in the set), and the fast filters `coded`, `codedIn`, `recent` as the
 * `where()` they stand for, `maybeRecent` as a `defineVariable()` and a `where()` (cds-services/README.md "Fast filters").
 */
function standardCall(
  name: string,
  args: string[],
  ctx: { valueSets: ValueSetIndex; valueSetBase: string },
  variableName: () => string,
): string | undefined {
  const literal = (a: string | undefined) =>
    a !== undefined && /^'(?:[^'\\]|\\.)*'$/.test(a.trim()) ? a.trim().slice(1, -1).replace(/\\(.)/g, '$1') : undefined;
  switch (name) {
    case 'memberOf': {
      const ref = literal(args[0]);
      const check =
        ref === undefined || args.length !== 1
          ? undefined
          : valueSetCheck(ctx.valueSets, resolveValueSetUrl(ref, ctx.valueSetBase));
      return (
        check && `select((coding | $this).where(${check}).exists()).aggregate(iif($total = true, true, $this), {})`
      );
    }
    case 'codedIn': {
      const ref = literal(args[0]);
      const check =
        ref === undefined || args.length !== 1
          ? undefined
          : valueSetCheck(ctx.valueSets, resolveValueSetUrl(ref, ctx.valueSetBase));
      if (!check || ref === undefined) return undefined;
      // Drug sets also match by name (src/fhir/value-sets.ts `nameIn`): the same fallback, spelled out.
      const names = ctx.valueSets.namesOf(resolveValueSetUrl(ref, ctx.valueSetBase));
      const byName =
        names.length === 0
          ? ''
          : ` or ${CONCEPTS}.select(text | coding.display).where(${names.map((n) => `lower().contains(${quote(n)})`).join(' or ')}).exists()`;
      return `where(${CONCEPTS}.coding.where(${check}).exists()${byName})`;
    }
    case 'coded':
      return args.length === 2
        ? `where(${CONCEPTS}.coding.where(system = ${args[0].trim()} and code = ${args[1].trim()}).exists())`
        : undefined;
    case 'recent': {
      const days = args[1]?.trim();
      if (!(args.length === 2 || args.length === 3) || !/^\d+$/.test(days ?? '')) return undefined;
      const from = `${RESOURCE_DATE} >= (${args[0].trim()}).toString().substring(0, 10).toDate() - ${days} days`;
      if (args.length === 2) return `where(${from})`;
      // The upper end, when the third argument is not empty (fhirpath.ts recent: an empty one sets none).
      const until = `(${args[2].trim()})`;
      return `where(${from} and (${until}.empty() or ${RESOURCE_DATE} <= ${until}.toString().substring(0, 10).toDate()))`;
    }
    case 'statedDay':
      // fhirpath.ts statedDay: each resource's stated date, up to the day; a Condition's onset, else with no onset its
      // recordedDate, an onset in another form (an age, a range, words) 'unknown' (fhirpath.ts UNPLACED_ONSET). An
      // Observation has neither onset nor recordedDate, so one spelling serves both.
      return args.length === 0
        ? `select(iif(onset.exists() and (onset.ofType(dateTime) | onset.ofType(Period).start).empty(), '${UNPLACED_ONSET}',` +
            ` (${STATED_DATES} | recordedDate).first().toString().substring(0, 10)))`
        : undefined;
    case 'maybeRecent': {
      // The input as a variable (a where() cannot see its input); then, cheaply, those not dated to the day; then, for
      // those few, whether they may fall in the window and are not wholly before the latest day the input dates in it.
      // A comparison with a partial date that cannot tell is empty, so iif(…, false, true) keeps the resource, as the
      // server does.
      const days = args[1]?.trim();
      if (args.length !== 3 || !/^\d+$/.test(days ?? '')) return undefined;
      const from = `(${args[0].trim()}).toString().substring(0, 10).toDate() - ${days} days`;
      const until = `(${args[2].trim()})`;
      const untilDay = `${until}.toString().substring(0, 10).toDate()`;
      const input = variableName();
      const latest =
        `%${input}.select(${STATED_DATE}.toString()).where(length() >= 10).select(substring(0, 10).toDate())` +
        `.where($this >= ${from} and (${until}.empty() or $this <= ${untilDay}))` +
        '.aggregate(iif($total.empty() or $this > $total, $this, $total), {})';
      return (
        `defineVariable('${input}').where(${STATED_DATE}.select(toString().length() < 10).allTrue())` +
        `.where(iif(${LAST_POSSIBLE_DAY} < ${from}, false, true)` +
        ` and (${until}.empty() or iif(${RESOURCE_DATE} > ${untilDay}, false, true))` +
        ` and iif(${LAST_POSSIBLE_DAY} < ${latest}, false, true))`
      );
    }
    default:
      return undefined;
  }
}

/** Where the renderer-facing code and its tests look for them (defined beside readsRecord in the engine). */
export { SERVER_FUNCTIONS };

/** The arguments of the call whose name is `tokens[i]`: their texts and the index of the closing parenthesis. */
function callArgs(tokens: Token[], i: number): { args: string[]; end: number } | undefined {
  let j = i + 1;
  while (tokens[j]?.kind === 'space') j++;
  if (tokens[j]?.text !== '(') return undefined;
  let depth = 0;
  const args: string[] = [];
  let current = '';
  for (let k = j; k < tokens.length; k++) {
    const t = tokens[k];
    if (t.text === '(' || t.text === '[' || t.text === '{') {
      if (depth++ === 0) continue;
    } else if (t.text === ')' || t.text === ']' || t.text === '}') {
      if (--depth === 0) {
        if (current.trim() !== '' || args.length > 0) args.push(current);
        return { args, end: k };
      }
    } else if (t.text === ',' && depth === 1) {
      args.push(current);
      current = '';
      continue;
    }
    current += t.text;
  }
  return undefined;
}

/**
 * The initialExpression of a fact for a renderer with the Questionnaire's launch contexts and x-fhir-query variables:
 * the fact's own FHIRPath with each server variable replaced by its renderer counterpart, the facts it reads inlined,
 * and the server-only functions spelled out in standard FHIRPath. Code facts get none (a choice item needs a Coding;
 * the fact yields a code), nor do facts that read the order or the Coverage.
 */
export function clientInitialExpression(
  policy: CompiledPolicy,
  factName: string,
  ctx: { valueSets: ValueSetIndex; valueSetBase: string },
): ClientExpression {
  interface Acc {
    text: string;
    portability: Portability;
    notes: Set<string>;
  }
  const memo = new Map<string, ClientExpression>();
  // Names for the variables maybeRecent defines (its input), numbered within this fact's expression.
  let variables = 0;
  const variableName = () => `inWindow${++variables}`;

  const translateText = (expr: string, stack: string[]): Acc => {
    const acc: Acc = { text: '', portability: 'portable', notes: new Set() };
    const merge = (p: Portability, notes: Iterable<string>) => {
      acc.portability = worst(acc.portability, p);
      for (const n of notes) acc.notes.add(n);
    };
    const tokens = tokenize(expr);
    const icdCodes = icd10CodeReads(tokens);
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (icdCodes.has(i)) {
        acc.text += `(${ICD10_CODE_SPELLING})`;
        continue;
      }
      if (t.kind === 'var') {
        if (t.name === 'policyDrug') {
          acc.text += quote(policy.file.drug);
          continue;
        }
        const v = CLIENT_VARIABLES[t.name!];
        if (v) {
          merge(v.portability, v.note ? [v.note] : []);
          acc.text += v.expr ?? '{}';
        } else if (policy.factsByName.has(t.name!)) {
          const dep = translateFact(t.name!, stack);
          merge(dep.portability, dep.notes);
          acc.text += dep.expression === undefined ? '{}' : `(${dep.expression})`;
        } else {
          merge('none', [`reads %${t.name}, which a renderer does not have`]);
          acc.text += t.text;
        }
        continue;
      }
      if (t.kind === 'ident' && SERVER_FUNCTIONS.includes(t.name!) && significant(tokens, i, -1)?.text === '.') {
        const call = callArgs(tokens, i);
        if (call) {
          const args = call.args.map((a) => translateText(a, stack));
          args.forEach((a) => merge(a.portability, a.notes));
          const replacement = standardCall(
            t.name!,
            args.map((a) => a.text),
            ctx,
            variableName,
          );
          if (replacement) {
            acc.text += replacement;
            i = call.end;
            continue;
          }
        }
        merge('none', [`${t.name}() with arguments PriorPath cannot spell out in standard FHIRPath`]);
      }
      acc.text += t.text;
    }
    return acc;
  };

  const translateFact = (name: string, stack: string[]): ClientExpression => {
    const cached = memo.get(name);
    if (cached) return cached;
    const fact = policy.factsByName.get(name);
    if (!fact) return { portability: 'none', notes: [`unknown fact ${name}`] };
    if (stack.includes(name)) return { portability: 'none', notes: ['circular fact reference'] };
    const acc = translateText(fact.def.fhirpath, [...stack, name]);
    const result: ClientExpression = { portability: acc.portability, notes: [...acc.notes] };
    if (acc.portability !== 'none') result.expression = acc.text.replace(/\s+/g, ' ').trim();
    memo.set(name, result);
    return result;
  };

  const fact = policy.factsByName.get(factName);
  if (!fact) return { portability: 'none', notes: [`unknown fact ${factName}`] };
  if (/^\s*\{\s*\}\s*$/.test(fact.def.fhirpath)) {
    return { portability: 'none', notes: ['an attestation: never in the record, always answered'] };
  }
  if (fact.def.type === 'code') {
    return {
      portability: 'none',
      notes: ['a choice item needs a Coding and the fact yields a code: pre-filled by the payer from the CRD facts'],
    };
  }
  const r = translateFact(factName, []);
  if (r.expression === undefined) return r;
  if (!tokenize(r.expression).some((t) => t.kind === 'var'))
    return { portability: 'none', notes: ['computed only from answers to other questions'] };
  // A date item wants a FHIR date; the facts library yields the date as a string. A computed amount (a weight
  // converted from pounds) is shown as a clinician reads it, rounded as the payer's pre-filled answer is
  // (display-precision.ts); the server reads the unrounded value, and the rounded answer sent back as it.
  const decimals = displayDecimals(fact.def);
  const expression =
    fact.def.type === 'date'
      ? `(${r.expression}).toString().substring(0, 10).toDate()`
      : decimals !== undefined
        ? shownExpression(r.expression, decimals)
        : r.expression;
  return { ...r, expression };
}

/**
 * FHIRPath that rounds an amount as the form shows it: to `decimals`, with one more while the value so rounded is not
 * the value and lands on the step one decimal coarser, up to EXTRA_DECIMALS more (display-precision.ts `shownDecimals`,
 * which the payer's pre-filled answer uses; design.md §7 "Pre-filled amounts"): 0.804 mg/m² shows 0.804, not 0.80.
 */
export function shownExpression(expression: string, decimals: number): string {
  let body = `$this.round(${decimals + EXTRA_DECIMALS})`;
  for (let d = decimals + EXTRA_DECIMALS - 1; d >= decimals; d--) {
    body = `iif($this.round(${d}) != $this and $this.round(${d}) = $this.round(${d - 1}), ${body}, $this.round(${d}))`;
  }
  return `(${expression}).select(${body})`;
}

// ---------------------------------------------------------------------------------------------------------------
// Answers so far (enableWhenExpression)

/** The FHIRPath that reads an item's answer from the QuestionnaireResponse being filled in (`%resource`). */
export function answerPath(linkId: string, type: FactType): string {
  const value: Record<FactType, string> = {
    boolean: 'valueBoolean',
    decimal: 'valueDecimal',
    integer: 'valueInteger',
    code: 'valueCoding.code',
    date: 'valueDate',
    string: 'valueString',
  };
  return `%resource.repeat(item).where(linkId = ${quote(linkId)}).answer.${value[type]}`;
}

/**
 * True when an expression is monotone in unknown inputs under FHIRPath's three-valued logic: replacing an unknown
 * (empty) input by a value can turn an empty result into true or false, but never flip true and false. Then a
 * `false` computed with some inputs unknown stays false whatever they turn out to be, which is what makes hiding a
 * question safe. `iif`, `exists()`, unions and their kind turn "unknown" into a definite value, so they fail.
 */
export function isMonotone(expr: string): boolean {
  let s = expr.replace(/'(?:[^'\\]|\\.)*'/g, "''");
  while (/''\s*\|\s*''/.test(s)) s = s.replace(/''\s*\|\s*''/g, "''");
  if (s.includes('|') || s.includes('~')) return false;
  if (
    /\b(iif|exists|empty|count|hasValue|all|allTrue|anyTrue|allFalse|anyFalse|isDistinct|subsetOf|supersetOf|combine|union|aggregate|exclude|intersect|distinct|children|descendants|repeat|trace|sum|min|max|avg)\s*\(/.test(
      s,
    )
  )
    return false;
  s = s.replace(/\bin\s*\(\s*''\s*\)/g, ' ').replace(/\bin\s*''/g, ' ');
  if (/\bin\b/.test(s)) return false;
  if (/(?<!\.\s*)\bcontains\b(?!\s*\()/.test(s)) return false;
  return true;
}

/** An expression with its whole-expression parentheses taken off, however deeply nested: `((a and b))` is `a and b`. */
function withoutOuterParens(expr: string): string {
  let text = expr.trim();
  for (;;) {
    const inner = unwrapParens(text);
    if (inner === undefined) return text;
    text = inner.trim();
  }
}

/**
 * Splits an expression at top-level `and` (a conjunction) or `or` (a disjunction), respecting parentheses, strings and
 * FHIRPath precedence (`and` binds tighter than `or`/`xor`, `implies` is loosest). An expression that is not such a
 * chain comes back whole.
 */
export function splitTopLevel(expr: string, op: 'and' | 'or'): string[] {
  const text = withoutOuterParens(expr);
  const tokens = tokenize(text);
  let depth = 0;
  const cuts: number[] = [];
  let blocked = false;
  tokens.forEach((t, i) => {
    if (t.text === '(' || t.text === '[' || t.text === '{') depth++;
    else if (t.text === ')' || t.text === ']' || t.text === '}') depth--;
    else if (depth === 0 && t.kind === 'ident' && significant(tokens, i, -1)?.text !== '.') {
      if (t.name === 'implies' || t.name === 'xor') blocked = true;
      else if (t.name === 'or' && op === 'and') blocked = true;
      else if (t.name === op) cuts.push(i);
    }
  });
  if (blocked || cuts.length === 0) return [text];
  const parts: string[] = [];
  let start = 0;
  for (const c of [...cuts, tokens.length]) {
    parts.push(
      tokens
        .slice(start, c)
        .map((t) => t.text)
        .join('')
        .trim(),
    );
    start = c + 1;
  }
  return parts.filter((p) => p.length > 0);
}

function unwrapParens(text: string): string | undefined {
  if (!text.startsWith('(') || !text.endsWith(')')) return undefined;
  const tokens = tokenize(text);
  let depth = 0;
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i].text === '(') depth++;
    else if (tokens[i].text === ')') {
      depth--;
      if (depth === 0 && i !== tokens.length - 1) return undefined;
    }
  }
  return text.slice(1, -1);
}

/** How a rule's facts are read when the rule is evaluated over the answers so far. */
export interface AnswerContext {
  /** The item asking for an askable fact (undefined: the fact is not asked in this Questionnaire). */
  itemFor(fact: string): { linkId: string; type: FactType } | undefined;
  /** Facts treated as unknown whatever is answered (the questions being hidden or shown). */
  unknown: Set<string>;
}

/** The order date in the renderer: the pre-filled order-date item, else today (as the askWhen gates read it). */
const RENDERER_ORDER_DATE: Record<string, string> = {
  orderDate: RENDERER_ORDER_DATE_EXPR,
  orderDateTime: RENDERER_ORDER_DATE_TIME_EXPR,
};

/**
 * A rule condition (or part of one) as FHIRPath over the QuestionnaireResponse: askable facts read their answers,
 * derived facts are inlined from their own expressions, the order date is the pre-filled order start (so an age band, e.g. `adult` from the
 * birth-date answer, closes a pathway: design.md §6 "Clinical readings", questions are asked only of the patients they
 * concern), and everything else (EHR data, facts in `unknown`) is empty. Returns undefined when the result could not
 * be trusted (not monotone) or reads no answer.
 */
export function ruleOverAnswers(policy: CompiledPolicy, condition: string, ctx: AnswerContext): string | undefined {
  const raw: string[] = [condition];
  let readsAnswers = false;
  const factText = (name: string, stack: string[]): string => {
    const fact = policy.factsByName.get(name);
    if (!fact || ctx.unknown.has(name) || stack.includes(name)) return '{}';
    if (fact.def.askable) {
      const item = ctx.itemFor(name);
      if (!item) return '{}';
      readsAnswers = true;
      return answerPath(item.linkId, item.type);
    }
    const tokens = tokenize(fact.def.fhirpath);
    if (readsRecord(policy, tokens)) return '{}';
    raw.push(fact.def.fhirpath);
    return `(${tokens
      .map((t) =>
        t.kind !== 'var'
          ? t.text
          : t.name === 'policyDrug'
            ? quote(policy.file.drug)
            : Object.prototype.hasOwnProperty.call(RENDERER_ORDER_DATE, t.name!)
              ? RENDERER_ORDER_DATE[t.name!]
              : policy.factsByName.has(t.name!)
              ? factText(t.name!, [...stack, name])
              : t.text,
      )
      .join('')
      .replace(/\s+/g, ' ')
      .trim()})`;
  };
  const tokens = tokenize(condition);
  const text = tokens
    .map((t, i) =>
      t.kind === 'ident' && isBare(tokens, i) && policy.factsByName.has(t.name!) ? factText(t.name!, []) : t.text,
    )
    .join('')
    .replace(/\s+/g, ' ')
    .trim();
  if (!readsAnswers || !raw.every(isMonotone)) return undefined;
  return text;
}

/**
 * An `askWhen` condition (FHIRPath over facts and `%orderDate`) for a renderer: a fact with a form item reads its
 * answer, a fact without one reads its own client initialExpression (e.g. the birth date from `%patient`), and the
 * order date is the pre-filled order start ({@link RENDERER_ORDER_DATE_EXPR}). Undefined when nothing in it can be known in the renderer.
 */
export function askWhenForRenderer(
  policy: CompiledPolicy,
  askWhen: string,
  ctx: {
    itemFor: (f: string) => { linkId: string; type: FactType } | undefined;
    valueSets: ValueSetIndex;
    valueSetBase: string;
  },
): string | undefined {
  if (neverFalseInForm(policy, askWhen, ctx)) return undefined;
  const tokens = tokenize(askWhen);
  let known = false;
  const text = tokens
    .map((t, i) => {
      if (t.kind === 'var' && (t.name === 'orderDate' || t.name === 'orderDateTime')) {
        return RENDERER_ORDER_DATE[t.name];
      }
      if (t.kind !== 'ident' || !isBare(tokens, i) || !policy.factsByName.has(t.name!)) return t.text;
      const item = ctx.itemFor(t.name!);
      if (item) {
        known = true;
        return answerPath(item.linkId, item.type);
      }
      const init = clientInitialExpression(policy, t.name!, ctx);
      if (init.expression === undefined) return '{}';
      known = true;
      return `(${init.expression})`;
    })
    .join('')
    .replace(/\s+/g, ' ')
    .trim();
  return known ? text : undefined;
}

/**
 * Whether an `askWhen` of the form `iif(A and B ..., false, true)` can never be false in the form: one of its conjuncts
 * compares a fact the form can neither show nor compute (rendered `{}`: no item, no client pre-fill, e.g. Besponsa's
 * relapsedCourseCycleOne, which its policy never knows) with a value. Such a comparison is empty (FHIRPath §Equality,
 * §Comparison: an empty operand gives an empty result), so the `and` is never true and the `iif` never false: the
 * gate would never close (a `{} = false and ...` part), and the question is simply shown, as the server, which never
 * knows that fact either, reads it.
 */
function neverFalseInForm(
  policy: CompiledPolicy,
  askWhen: string,
  ctx: { itemFor: (f: string) => { linkId: string; type: FactType } | undefined; valueSets: ValueSetIndex; valueSetBase: string },
): boolean {
  const m = /^iif\(([\s\S]*),\s*false\s*,\s*true\s*\)$/.exec(withoutOuterParens(askWhen));
  if (!m || unwrapParens(`(${m[1]})`) === undefined) return false;
  const emptyInForm = (name: string) =>
    policy.factsByName.has(name) && !ctx.itemFor(name) && clientInitialExpression(policy, name, ctx).expression === undefined;
  return splitTopLevel(m[1], 'and').some((conjunct) => {
    const c = /^([A-Za-z_][A-Za-z0-9_]*)\s*(?:=|!=|<=|>=|<|>|in)\s*(?:'[^']*'|[\w.]+|\([^()]*\))$/.exec(withoutOuterParens(conjunct));
    return c !== null && emptyInForm(c[1]);
  });
}

/** A condition beside a fact's use in a rule whose value, once known, decides that part of the rule without the fact. */
export interface UseGuard {
  /** The sibling condition (rule text). */
  expr: string;
  /** The value of `expr` that decides without the fact: `false` beside `and` or as an `implies` antecedent, else `true`. */
  value: boolean;
  /** The guard is an `implies` antecedent (a limit's "applies to" part). */
  antecedent?: boolean;
}

/** The top-level `implies` of an expression (FHIRPath's loosest operator) as [antecedent, consequent], if exactly one. */
function splitImplies(text: string): [string, string] | undefined {
  const tokens = tokenize(text);
  let depth = 0;
  const cuts: number[] = [];
  tokens.forEach((t, i) => {
    if (t.text === '(' || t.text === '[' || t.text === '{') depth++;
    else if (t.text === ')' || t.text === ']' || t.text === '}') depth--;
    else if (depth === 0 && t.kind === 'ident' && t.name === 'implies' && significant(tokens, i, -1)?.text !== '.') cuts.push(i);
  });
  if (cuts.length !== 1) return undefined;
  const join = (ts: Token[]) => ts.map((t) => t.text).join('').trim();
  return [join(tokens.slice(0, cuts[0])), join(tokens.slice(cuts[0] + 1))];
}

/**
 * Where a rule reads a fact, and what beside each reading decides the rule without it (FHIRPath's three-valued
 * logic: `false and x`, `true or x`, `false implies x` and `x implies true` hold whatever `x` is). Walks the rule's
 * `implies`, `or`, `and` and `(…).not()` structure; any other expression that names a fact `reads` accepts is one
 * reading, with the guards of the operators above it. A reading with no guard is decided by the fact whatever else is
 * answered. The form's use gate (questionnaire-builder.ts) hides a question once some guard of every reading holds.
 */
export function useGuards(condition: string, reads: (name: string) => boolean, outer: UseGuard[] = []): UseGuard[][] {
  const text = withoutOuterParens(condition);
  const implication = splitImplies(text);
  if (implication) {
    const [a, c] = implication;
    return [
      ...useGuards(a, reads, [...outer, { expr: c, value: true }]),
      ...useGuards(c, reads, [...outer, { expr: a, value: false, antecedent: true }]),
    ];
  }
  for (const [op, value] of [['or', true], ['and', false]] as const) {
    const parts = splitTopLevel(text, op);
    if (parts.length > 1) {
      return parts.flatMap((p, i) =>
        useGuards(p, reads, [...outer, ...parts.filter((_, j) => j !== i).map((expr) => ({ expr, value }))]),
      );
    }
  }
  const not = /^([\s\S]*)\.\s*not\s*\(\s*\)$/.exec(text);
  if (not && unwrapParens(not[1].trim()) !== undefined) return useGuards(not[1], reads, outer);
  const tokens = tokenize(text);
  const named = tokens.some((t, i) => t.kind === 'ident' && isBare(tokens, i) && reads(t.name!));
  return named ? [outer] : [];
}
