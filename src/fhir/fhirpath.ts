import { createRequire } from 'node:module';
import type * as FhirPathJs from 'fhirpath/src/fhirpath.js';
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import { BAIL, compileAst, Unsupported } from './fhirpath-compiler.js';
import type { AstNode, HeldValues, ModelTables, UserFunction } from './fhirpath-compiler.js';

export { forgetTreeIds } from './fhirpath-compiler.js';
import type { ValueSetIndex } from './value-sets.js';

/**
 * A FHIRPath expression parsed once; call it as often as needed (design.md §5 "FHIRPath compiles once at load").
 * `held`: values of sub-expressions shared with the other expressions evaluated over the same resource and variables
 * (src/fhir/fhirpath-compiler.ts `HeldValues`); fhirpath.js ignores it.
 */
export type CompiledExpression = (resource: unknown, env: Record<string, unknown>, held?: HeldValues) => unknown[];

/** Options shared by every expression of one content load. */
export interface FhirPathOptions {
  valueSets: ValueSetIndex;
  /** Base for bare value-set ids in `memberOf('b-all-snomed')`: `{valueSetBase}/{id}`. */
  valueSetBase: string;
  /** Whether the expression walks FHIR resources (typed R4 model) or a plain object of facts. */
  model: 'r4' | 'none';
}

interface CodingLike {
  system?: string;
  code?: string;
  text?: string;
  display?: string;
  coding?: CodingLike[];
}

/** Resolves a `memberOf` argument (canonical URL or bare id) to a known value-set URL. */
export function resolveValueSetUrl(ref: string, base: string): string {
  return ref.includes('/') ? ref : `${base}/${ref}`;
}

/**
 * resolveValueSetUrl for one content load's base, each answer kept: memberOf and codedIn run on every hook's
 * hundreds of calls with the same few arguments, and a URL made afresh per call was a new string to allocate and
 * then hash in the value-set index's lookups.
 */
function valueSetUrls(base: string): (ref: string) => string {
  const urls = new Map<string, string>();
  return (ref) => {
    // An empty argument arrives as [] (see fhirpath-compiler.ts userCall): not kept. The content names a few dozen
    // sets; a bound keeps arguments computed from a record from growing the map.
    if (typeof ref !== 'string') return resolveValueSetUrl(ref, base);
    let url = urls.get(ref);
    if (url === undefined) {
      if (urls.size >= 1000) urls.clear();
      urls.set(ref, (url = resolveValueSetUrl(ref, base)));
    }
    return url;
  };
}

const CONCEPT_KEYS = ['code', 'vaccineCode', 'medicationCodeableConcept'] as const;

/**
 * Whether a concept a clinical resource is "about" (its code, vaccine code or medication code) passes `test`. A loop
 * over the three keys, not an array of the concepts: the filters below run it for every resource of every filtered
 * collection.
 */
function someConcept(r: Record<string, unknown>, test: (c: CodingLike) => boolean): boolean {
  for (const k of CONCEPT_KEYS) {
    const v = r[k] as CodingLike | undefined;
    if (v && typeof v === 'object' && test(v)) return true;
  }
  return false;
}

/** The date a resource states, as written (any precision), from effective[x], occurrence[x], onset[x], authoredOn or issued. */
function statedDate(r: Record<string, unknown>): unknown {
  const period = (r.effectivePeriod ?? r.onsetPeriod) as { start?: string } | undefined;
  return r.effectiveDateTime ?? r.effectiveInstant ?? period?.start ?? r.occurrenceDateTime ?? r.onsetDateTime ?? r.authoredOn ?? r.issued;
}

/**
 * What `statedDay()` gives for a Condition whose onset is on record in a form that states no date to compare (an age,
 * a range of ages, words, a period with no start): not a date (`toDate()` is empty, so every comparison with it cannot
 * tell and the fact reading it is unknown), and not "no date" (read as before, docs/design.md §6 "A Condition's date").
 * As text it sorts after every date, so a date fact that would take it as its value (the only relapse, with no start
 * stated) is after the order date, implausible, and unknown, in the server (evaluate-policy.ts `plausible`) and the CQL
 * alike; a fact that compares dates as text (`$this <= %earlierCourseFirstCycleStart`) drops it.
 */
export const UNPLACED_ONSET = 'unknown';

const ONSET_KEYS = ['onsetDateTime', 'onsetAge', 'onsetPeriod', 'onsetRange', 'onsetString'] as const;

/**
 * The date a Condition states (docs/design.md §6 "A Condition's date"): `onsetDateTime`, else `onsetPeriod.start`, else,
 * with no onset at all, `recordedDate` (when it was recorded, the latest the onset can be, is the only date it has);
 * an onset in another form, UNPLACED_ONSET: the recorded date is not when such an onset was.
 */
export function conditionStatedDate(r: Record<string, unknown>): unknown {
  if (r.onsetDateTime !== undefined) return r.onsetDateTime;
  const start = (r.onsetPeriod as { start?: unknown } | undefined)?.start;
  if (start !== undefined) return start;
  return ONSET_KEYS.some((k) => r[k] !== undefined) ? UNPLACED_ONSET : r.recordedDate;
}

/** The date a resource speaks for (YYYY-MM-DD), from effective[x], occurrence[x], onset[x], authoredOn or issued. */
export function resourceDate(r: Record<string, unknown>): string | undefined {
  const v = statedDate(r);
  return typeof v === 'string' && /^\d{4}-\d{2}-\d{2}/.test(v) ? v.slice(0, 10) : undefined;
}

/**
 * The days a resource not dated to the day may have been taken on: a partial date ("2026-11", "2026") spans its month
 * or year; no date at all (only text, as occurrenceString, or none) spans every day up to the day it was recorded
 * (Immunization.recorded), else every day. `undefined` for a resource dated to the day. The last day of a month is
 * written `-31`: no date lies between it and the month's real last day, so comparisons with dates come out the same.
 */
export function possibleDays(r: Record<string, unknown>): { first?: string; last?: string } | undefined {
  if (resourceDate(r) !== undefined) return undefined;
  const v = statedDate(r);
  const m = typeof v === 'string' ? /^(\d{4})(?:-(\d{2}))?$/.exec(v) : null;
  if (m) return m[2] ? { first: `${m[1]}-${m[2]}-01`, last: `${m[1]}-${m[2]}-31` } : { first: `${m[1]}-01-01`, last: `${m[1]}-12-31` };
  const recorded = r.recorded;
  return { last: typeof recorded === 'string' && /^\d{4}-\d{2}-\d{2}/.test(recorded) ? recorded.slice(0, 10) : undefined };
}

const windowStarts = new Map<string, string>();
/** `date` minus `days`, memoised: every order asks for the same few windows. */
function daysBefore(date: string, days: number): string {
  const key = `${date}|${days}`;
  let start = windowStarts.get(key);
  if (start === undefined) {
    const d = new Date(`${date}T00:00:00Z`);
    d.setUTCDate(d.getUTCDate() - days);
    start = d.toISOString().slice(0, 10);
    if (windowStarts.size > 10_000) windowStarts.clear();
    windowStarts.set(key, start);
  }
  return start;
}

/**
 * Fast collection filters PriorPath adds to FHIRPath, because fhirpath.js spends ~100 µs per item on an equivalent
 * `where()` and a patient's Observations run to hundreds. Each has a standard-FHIRPath equivalent (used when a
 * Questionnaire needs a portable expression):
 * - `coded(system, code)` = `where(code.coding.where(system = S and code = C).exists())` (also vaccineCode and
 *   medicationCodeableConcept);
 * - `codedIn(valueSet)` = `where(code.memberOf(VS))`, where a drug set's `valueset-match-name` names also match the
 *   concept's text or displays (design.md §6 "Clinical readings");
 * - `recent(date, days)` = resources whose clinically relevant date is on or after `date - days` (date precision);
 *   `recent(date, days, until)` also on or before `until` when it is a date, with no upper end when it is empty
 *   (`%orderStart`: the start the order states; a result after it is not evidence at the start, docs/design.md §6
 *   "Recency");
 * - `statedDay()` = the date each resource states, as written, up to the day ("2026-11-05", "2026-11", "2026"): for an
 *   Observation `(effective.ofType(dateTime) | effective.ofType(instant) | effective.ofType(Period).start | issued)
 *   .first().toString().substring(0, 10)`, the precedence `recent()` reads (docs/design.md §6 "A date not to the day":
 *   when a result was taken, else when it was issued); compared with `toDate()`, a partial one is empty where it
 *   cannot tell; for a Condition `iif(onset.exists() and (onset.ofType(dateTime) | onset.ofType(Period).start).empty(),
 *   'unknown', (onset.ofType(dateTime) | onset.ofType(Period).start | recordedDate).first().toString().substring(0, 10))`
 *   (docs/design.md §6 "A Condition's date": an onset as an age, a range or words is unknown, never undated);
 * - `maybeRecent(date, days, until)` = the resources `recent()` cannot place: not dated to the day (a month, a year,
 *   only text, none: `possibleDays`), that may fall in its window and may be later than every resource of the input
 *   dated in it (a partial date comparison that cannot tell is kept, as FHIRPath's and CQL's are empty). A recency fact
 *   is unknown when one exists (docs/design.md §6 "Recency": never decided by an older result or by absence).
 */
function collectionFilters(options: FhirPathOptions) {
  // One pass over the input: the resources (objects) that pass `keep`.
  const resourcesWhere = (inputs: unknown[], keep: (r: Record<string, unknown>) => boolean) =>
    inputs.filter((r): r is Record<string, unknown> => !!r && typeof r === 'object' && keep(r as Record<string, unknown>));
  const urlOf = valueSetUrls(options.valueSetBase);
  return {
    coded: {
      fn: (inputs: unknown[], system: string, code: string) => {
        const codedSo = (c: CodingLike) => c.coding?.some((x) => x.code === code && x.system === system) === true;
        return resourcesWhere(inputs, (r) => someConcept(r, codedSo));
      },
      arity: { 2: ['String', 'String'] },
    },
    codedIn: {
      fn: (inputs: unknown[], ref: string) => {
        const url = urlOf(ref);
        // By a listed code, else (for drug sets that name their drugs) by the drug's name in the text or displays.
        const inSet = (c: CodingLike) => c.coding?.some((x) => options.valueSets.contains(url, x)) || options.valueSets.nameIn(url, c) !== undefined;
        return resourcesWhere(inputs, (r) => someConcept(r, inSet));
      },
      arity: { 1: ['String'] },
    },
    recent: {
      // `until` is undefined (two arguments) or [] (an empty third argument, as fhirpath.js passes one): no upper end.
      fn: (inputs: unknown[], date: string, days: number, until?: string | []) => {
        if (typeof date !== 'string' || !/^\d{4}-\d{2}-\d{2}/.test(date)) return [];
        const from = daysBefore(date.slice(0, 10), days);
        const to = typeof until === 'string' && /^\d{4}-\d{2}-\d{2}/.test(until) ? until.slice(0, 10) : undefined;
        return resourcesWhere(inputs, (r) => {
          const d = resourceDate(r);
          return d !== undefined && d >= from && (to === undefined || d <= to);
        });
      },
      arity: { 2: ['String', 'Integer'], 3: ['String', 'Integer', 'String'] },
    },
    statedDay: {
      // One item per resource that states a date: its text up to the day, a partial date staying partial; a Condition
      // whose onset cannot be placed, UNPLACED_ONSET.
      fn: (inputs: unknown[]) =>
        resourcesWhere(inputs, () => true)
          .map((r) => (r.resourceType === 'Condition' ? conditionStatedDate(r) : statedDate(r)))
          .filter((v): v is string => typeof v === 'string')
          .map((v) => v.slice(0, 10)),
      arity: { 0: [] },
    },
    maybeRecent: {
      fn: (inputs: unknown[], date: string, days: number, until?: string | []) => {
        if (typeof date !== 'string' || !/^\d{4}-\d{2}-\d{2}/.test(date)) return [];
        // Only a resource not dated to the day can be in the result: nearly every record has none, and then nothing
        // else is read (this runs around every recency fact, on every hook).
        const undated = resourcesWhere(inputs, (r) => resourceDate(r) === undefined);
        if (undated.length === 0) return [];
        const from = daysBefore(date.slice(0, 10), days);
        const to = typeof until === 'string' && /^\d{4}-\d{2}-\d{2}/.test(until) ? until.slice(0, 10) : undefined;
        // The latest day of the input's resources dated in the window: one not dated to the day wholly before it is
        // not the latest.
        let latest: string | undefined;
        for (const r of resourcesWhere(inputs, () => true)) {
          const d = resourceDate(r);
          if (d !== undefined && d >= from && (to === undefined || d <= to) && (latest === undefined || d > latest)) latest = d;
        }
        return undated.filter((r) => {
          const span = possibleDays(r);
          if (span === undefined) return false;
          const { first, last } = span;
          return (last === undefined || (last >= from && (latest === undefined || last >= latest))) && (to === undefined || first === undefined || first <= to);
        });
      },
      arity: { 3: ['String', 'Integer', 'String'] },
    },
  };
}

/**
 * FHIRPath `memberOf()` answered from local expansions, synchronously. The input may be Codings or
 * CodeableConcepts; the result is true when any of them is in the set (so `code.memberOf(...)` and
 * `code.coding.memberOf(...)` both read naturally), empty for empty input.
 * See https://hl7.org/fhir/R4/fhirpath.html#functions.
 */
function memberOfTable(options: FhirPathOptions) {
  const urlOf = valueSetUrls(options.valueSetBase);
  return {
    memberOf: {
      fn: (inputs: unknown[], ref: string) => {
        if (inputs.length === 0) return [];
        const url = urlOf(ref);
        const hit = inputs.some((item) => {
          if (typeof item === 'string') return false;
          const c = item as CodingLike;
          if (c.coding || c.text) {
            return (c.coding ?? []).some((cc) => options.valueSets.contains(url, cc)) || options.valueSets.nameIn(url, c) !== undefined;
          }
          return options.valueSets.contains(url, c);
        });
        return [hit];
      },
      arity: { 1: ['String'] },
    },
  };
}

/**
 * Compiles an expression once, at content load (https://hl7.org/fhirpath/N1/ semantics as fhirpath.js implements
 * them): to JavaScript when it stays within the compiled subset (src/fhir/fhirpath-compiler.ts), else to fhirpath.js;
 * either way the results are fhirpath.js's. Throws with fhirpath.js's message when it does not parse. Policy
 * evaluation reaches `fhirpath` only through this module and its compiler; src/cql/ uses its parser to write CQL.
 */
export function compileFhirPath(expression: string, options: FhirPathOptions): CompiledExpression {
  // Policies share library facts; ANTLR parsing is the slow part of start-up, so parse each text once per load.
  let cache = compileCache.get(options.valueSets);
  if (!cache) compileCache.set(options.valueSets, (cache = new Map()));
  const key = `${options.model}|${options.valueSetBase}|${expression}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const compiled = compileUncached(expression, options);
  cache.set(key, compiled);
  return compiled;
}

const compileCache = new WeakMap<ValueSetIndex, Map<string, CompiledExpression>>();

const tables = new WeakMap<ValueSetIndex, Map<string, ReturnType<typeof makeUserFunctions>>>();
/** The user functions of one value-set index and base, made once, so compiled code can share their results. */
function userFunctions(options: FhirPathOptions) {
  let byBase = tables.get(options.valueSets);
  if (!byBase) tables.set(options.valueSets, (byBase = new Map()));
  let table = byBase.get(options.valueSetBase);
  if (!table) byBase.set(options.valueSetBase, (table = makeUserFunctions(options)));
  return table;
}
function makeUserFunctions(options: FhirPathOptions) {
  return { ...memberOfTable(options), ...collectionFilters(options) };
}

const requireHere = createRequire(import.meta.url);
let engine: typeof FhirPathJs.default | undefined;
/**
 * fhirpath.js's engine and parser, loaded on first use: the CommonJS build, so its value classes are those
 * src/fhir/fhirpath-compiler.ts uses (one copy). The built service compiles every expression from the build's parse
 * trees and runs none with fhirpath.js until an evaluation bails, so loading the engine (its ANTLR parser and
 * function tables, about 80 ms of CPU) waits: `loadReferenceEngine` is called once the service listens.
 */
function fhirpathJs(): typeof FhirPathJs.default {
  return (engine ??= requireHere('fhirpath/src/fhirpath.js') as typeof FhirPathJs.default);
}

/** Loads fhirpath.js's engine now (see {@link fhirpathJs}), so that the first evaluation handed to it does not. */
export function loadReferenceEngine(): void {
  fhirpathJs();
}

/** fhirpath.js alone: the reference engine every compiled expression must agree with. */
export function referenceFhirPath(expression: string, options: FhirPathOptions): CompiledExpression {
  const fhirpath = fhirpathJs();
  const fn = fhirpath.compile(expression, options.model === 'r4' ? r4Model : undefined, {
    userInvocationTable: userFunctions(options),
    resolveInternalTypes: true,
  } as Parameters<typeof FhirPathJs.default.compile>[2]);
  return (resource, env) => fn(resource as object, env as Record<string, unknown>) as unknown[];
}

/**
 * The expression compiled to JavaScript (src/fhir/fhirpath-compiler.ts), or undefined when it uses something outside
 * the compiled subset. The function it returns throws {@link BAIL} for inputs it leaves to fhirpath.js.
 */
export function compiledFhirPath(expression: string, options: FhirPathOptions): CompiledExpression | undefined {
  try {
    const ast = parseTree(expression);
    return compileAst(ast, { model: options.model === 'r4' ? (r4Model as unknown as ModelTables) : undefined, functions: userFunctions(options) as unknown as Record<string, UserFunction> });
  } catch (err) {
    if (err instanceof Unsupported) return undefined;
    throw err;
  }
}

/**
 * Parse trees made ahead of start-up. ANTLR parsing is about 200 ms of start-up for the content's ~150 expressions, and
 * a tree depends only on the expression's text and fhirpath.js's version: `npm run build` records the content's trees
 * (`recordParseTrees`) into `dist/fhirpath-parse-trees.json`, and the built service hands them in (`useParseTrees`)
 * while its content compiles. An expression without a tree there (content changed since the build, another
 * CANONICAL_BASE) is parsed as before. Trees are plain JSON (`fhirpath.parse`'s output), and the compiler only reads
 * them.
 */
let knownTrees: Map<string, AstNode> | undefined;
let recordedTrees: Map<string, string> | undefined;

/** The version of fhirpath.js whose parser made a tree: a file of trees from another version is not used. */
export function parseTreeStamp(): string {
  return `fhirpath ${(requireHere('fhirpath/package.json') as { version: string }).version}`;
}

/** Hands in trees by expression text, as `recordParseTrees` returned them; `undefined` drops them (after loading). */
export function useParseTrees(trees: Record<string, AstNode> | undefined): void {
  knownTrees = trees ? new Map(Object.entries(trees)) : undefined;
}

/** Starts recording the trees of the expressions parsed from now on; the function returned stops and gives them. */
export function recordParseTrees(): () => Record<string, AstNode> {
  const recording = (recordedTrees = new Map());
  return () => {
    if (recordedTrees === recording) recordedTrees = undefined;
    // Without where each node stands in the text (`start`, `length`): the compiler never reads them (its tree keys
    // leave them out), and they were a quarter of the file the service reads at start-up (4.5 MB).
    const positionless = (key: string, value: unknown) => (key === 'start' || key === 'length' ? undefined : value);
    return Object.fromEntries([...recording].map(([text, tree]) => [text, JSON.parse(tree, positionless) as AstNode]));
  };
}

function parseTree(expression: string): AstNode {
  const known = knownTrees?.get(expression);
  if (known) return known;
  fhirPathStats.parsed++;
  const ast = fhirpathJs().parse(expression) as unknown as AstNode;
  // As text at once: what is written is the parser's tree, whatever later reads it.
  recordedTrees?.set(expression, JSON.stringify(ast));
  return ast;
}

/**
 * How the expressions compiled in this process run: `compiled` to JavaScript or left to fhirpath.js (`fallback`);
 * `bails` counts evaluations a compiled expression handed to fhirpath.js (a value outside the compiled subset, or an
 * error, whose message is fhirpath.js's), `faults` those where the compiled code itself failed (a defect: the answer
 * is still fhirpath.js's), `parsed` the expressions fhirpath.js's parser read (the others came with a tree made by
 * the build). Ids and counts only, never data.
 */
export const fhirPathStats = { compiled: 0, fallback: 0, bails: 0, faults: 0, parsed: 0 };

/** Whether `compileFhirPath` gave a compiled expression ('compiled') or fhirpath.js ('fallback'). */
export function compiledKind(fn: CompiledExpression): 'compiled' | 'fallback' | undefined {
  return kinds.get(fn);
}
const kinds = new WeakMap<CompiledExpression, 'compiled' | 'fallback'>();

function compileUncached(expression: string, options: FhirPathOptions): CompiledExpression {
  // One parse at load: fhirpath.parse is fhirpath.js's own parser, so a syntax error is the message content authors
  // see either way (https://hl7.org/fhirpath/N1/ is the contract both engines follow).
  const fast = compiledFhirPath(expression, options);
  if (!fast) {
    fhirPathStats.fallback++;
    const reference = referenceFhirPath(expression, options);
    kinds.set(reference, 'fallback');
    return reference;
  }
  fhirPathStats.compiled++;
  // fhirpath.js parses the expression again only when an evaluation is first handed to it: parsing every
  // expression twice was a tenth of start-up, for a fallback most expressions never take.
  let reference: CompiledExpression | undefined;
  const compiled: CompiledExpression = (resource, env, held) => {
    try {
      return fast(resource, env, held);
    } catch (err) {
      if (err === BAIL) fhirPathStats.bails++;
      else fhirPathStats.faults++;
      reference ??= referenceFhirPath(expression, options);
      return reference(resource, env);
    }
  };
  kinds.set(compiled, 'compiled');
  return compiled;
}

/** Value-set URLs named in `memberOf('...')` calls, so the loader can check them before anything runs. */
export function referencedValueSets(expression: string, base: string): string[] {
  const out: string[] = [];
  for (const m of expression.matchAll(/(?:memberOf|codedIn)\(\s*'([^']+)'\s*\)/g)) out.push(resolveValueSetUrl(m[1], base));
  return out;
}
