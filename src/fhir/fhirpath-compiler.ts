/**
 * A FHIRPath-to-JavaScript compiler for the subset PriorPath's content is written in, built on fhirpath.js's own
 * parse tree (`fhirpath.parse`), whose results agree exactly with fhirpath.js (the reference engine) because every
 * step mirrors what fhirpath.js does, and everything it does not mirror is handed back to fhirpath.js:
 *
 * - at compile time, a node, function, operator or argument shape outside the subset throws {@link Unsupported}, and
 *   `compileFhirPath` (src/fhir/fhirpath.ts) keeps fhirpath.js for that whole expression;
 * - at run time, a value the compiled code does not model (a date or UCUM Quantity that fhirpath.js would convert, a
 *   primitive with a `_field` extension sibling, an object carrying fhirpath.js's `__path__`, a mixed-type comparison)
 *   and every error condition throws {@link BAIL}; the caller then runs fhirpath.js on the same input, so the result
 *   or the error message is fhirpath.js's own. Evaluation has no side effects, so running it again is safe.
 *
 * Why it is faster: fhirpath.js interprets the tree on every call, cloning its context and building closures per
 * function argument and a ResourceNode (with type lookups) per element visited. Here the tree is walked once, at
 * load, into one generated function per expression (see {@link Compiler}); the run time keeps only the model lookups
 * navigation needs (choice types, element types, memoised per parent path). Results of the user functions over a
 * record collection, and fhirpath.js's date values, are shared between evaluations (both are pure). A sub-expression over
 * the root that several expressions contain is evaluated once for all of them when their caller hands in one
 * {@link HeldValues} (the facts of one policy evaluation: the shared fact library repeats many).
 *
 * Dates and calendar durations are fhirpath.js's own value classes (FP_Date, FP_DateTime, FP_Quantity), so date
 * arithmetic (end-of-month rules) and comparison across precisions (empty) are exactly its own.
 *
 * Representation at run time mirrors fhirpath.js's: an element reached by navigation is a {@link Node} (fhirpath.js's
 * ResourceNode: data, model path, FHIR type), a value made by a literal, operator or function is a bare JavaScript
 * value. Numbers are JavaScript numbers, as with fhirpath.js's default native decimals (FP_Decimal_Native wraps a
 * number and does its arithmetic in floating point; equality and ordering round to 1e-8, as here).
 *
 * Spec: https://hl7.org/fhirpath/N1/ (clauses cited where each construct is compiled).
 */

import fpTypes from 'fhirpath/src/types.js';
import type { FpContext, FP_Type as FpType } from 'fhirpath/src/types.js';

const { FP_Type, FP_Date, FP_DateTime, FP_Instant, FP_Time, FP_Quantity, FP_Decimal_Native } = fpTypes;

/** Thrown (never caught inside) when the compiled code meets a value or condition it does not model. */
export const BAIL: unique symbol = Symbol('fhirpath-bail');

/** A construct outside the compiled subset: the expression is left to fhirpath.js. */
export class Unsupported extends Error {}

/** fhirpath.js's parse tree node (the JSON `fhirpath.parse` returns). */
export interface AstNode {
  type: string;
  text?: string;
  delimitedText?: string;
  atRoot?: number;
  children?: AstNode[];
}

/** The parts of a fhirpath.js model (`fhirpath/fhir-context/r4`) navigation and type tests read. */
export interface ModelTables {
  choiceTypePaths: Record<string, string[]>;
  pathsDefinedElsewhere: Record<string, string>;
  path2Type: Record<string, string>;
  path2TypeWithoutElements: Record<string, string>;
  type2Parent: Record<string, string>;
  availableTypes: Set<string>;
}

/** A user-defined function as fhirpath.js's `userInvocationTable` holds it. */
export interface UserFunction {
  fn: (inputs: unknown[], ...args: never[]) => unknown;
  arity: Record<number, string[]>;
}

/** An element reached by navigation: fhirpath.js's ResourceNode (data, model path, FHIR type name). */
export class Node {
  constructor(
    readonly d: unknown,
    readonly p: string | null,
    readonly t: string | null,
  ) {}
}

type Item = unknown;
type Coll = Item[];
/** A user function's String/Integer argument as handed over: the value, or [] when empty (see Compiler.userCall). */
type ArgValue = string | number | [] | undefined;
/** The run-time context: the variables, the evaluation's root collection, and the values held across expressions. */
interface Run {
  env: Record<string, unknown>;
  root: Coll;
  held: Map<AcrossEntry, Coll> | undefined;
}

/**
 * Values of sub-expressions shared by the expressions evaluated over one resource with one variables object: the facts
 * of one policy over one order's data (src/policies/evaluate-policy.ts `readFacts`). The shared fact library repeats
 * whole sub-expressions in many facts (`%medicationsBefore.codedIn(%policyDrug).where(…)`, the order's phase
 * extension): a sub-expression over the root alone (no `$this` of an enclosing where/select) that loops (where, select,
 * exists, all) and occurs in more than one compiled expression is evaluated by the first expression that needs it, and
 * read by the others. bench:eval on a quiet host (2026-12-08, two rounds each, A/B alternated): the fact expressions
 * 947-1337 → 601-896 µs a policy evaluation, decideOrders for the bench's story 1126-1254 → 703-907 µs median.
 *
 * Exact only while every variable such a sub-expression reads keeps its value, which the caller promises by making one
 * per (resource, variables) and by never changing a variable once an expression may have read it: readFacts adds each
 * fact's value once, before any fact that reads it runs (a read of a variable not yet set bails, so nothing is held).
 * A value held is a collection compiled code never changes (see TRUE), and a result is copied out of it.
 */
export class HeldValues {
  /** By sub-expression (its entry in acrossEntries). */
  readonly values = new Map<AcrossEntry, Coll>();
  constructor(
    readonly resource: unknown,
    readonly env: Record<string, unknown>,
  ) {}
}

const bail = (): never => {
  throw BAIL;
};

const UCUM = 'http://unitsofmeasure.org';
/** fhirpath.js's `TypeInfo.typeToClassWithCheckString`: elements of these types are read as its date/time values. */
const DATE_CLASSES: Record<string, { checkString(ctx: FpContext, text: string): FpType | null }> = {
  date: FP_Date,
  dateTime: FP_DateTime,
  instant: FP_Instant,
  time: FP_Time,
};
const fpContexts = new Map<ModelTables | undefined, FpContext>();
/** The context fhirpath.js's value classes read: its native decimals (the default) and the model. */
function fpContext(model: ModelTables | undefined): FpContext {
  let ctx = fpContexts.get(model);
  if (!ctx) fpContexts.set(model, (ctx = { getDecimal: FP_Decimal_Native.getDecimal, model }));
  return ctx;
}

/**
 * fhirpath.js's date values made once per text: its value classes are slow to build (regular expressions, calendar
 * arithmetic through date objects) and the same few dates (birth dates, order dates) recur on every request. A value
 * is a pure function of its class, text and context, and is never changed once made (it only fills caches of its
 * own), so sharing it is exact.
 */
const dateValues = new Map<FpContext, Map<string, FpType | null>>();
function dateValue(kind: 'date' | 'dateTime' | 'instant' | 'time' | 'dateFromDateTime', ctx: FpContext, text: string): FpType | null {
  let byText = dateValues.get(ctx);
  if (!byText) dateValues.set(ctx, (byText = new Map()));
  const key = `${kind}|${text}`;
  let v = byText.get(key);
  if (v === undefined) {
    v = kind === 'dateFromDateTime' ? fp(() => new FP_Date(ctx, text)) : DATE_CLASSES[kind].checkString(ctx, text);
    if (byText.size >= 20_000) byText.clear();
    byText.set(key, v);
  }
  return v;
}
/** Results of date arithmetic by operator, date value and duration value (both shared objects, see dateValue). */
const dateSums = { '+': new WeakMap<object, Map<object, FpType | null>>(), '-': new WeakMap<object, Map<object, FpType | null>>() };
function dateArithmetic(op: '+' | '-', x: FpType, y: FpType): FpType | null {
  let byY = dateSums[op].get(x);
  if (!byY) dateSums[op].set(x, (byY = new Map()));
  let v = byY.get(y);
  if (v === undefined) {
    v = fp(() => (op === '+' ? x.plus(y) : x.minus(y)));
    if (byY.size < 1000) byY.set(y, v);
  }
  return v;
}

/** Calls one of fhirpath.js's value methods; what it throws becomes a bail, so fhirpath.js reports it itself. */
function fp<T>(f: () => T): T {
  try {
    return f();
  } catch {
    return bail();
  }
}
const CALENDAR_UNITS = new Set(['year', 'years', 'month', 'months', 'week', 'weeks', 'day', 'days']);
const OBJECT_KEYS = new Set(Object.getOwnPropertyNames(Object.prototype));
const SYSTEM_TYPES = new Set(['Boolean', 'String', 'Integer', 'Long', 'Decimal', 'Date', 'DateTime', 'Time', 'Quantity']);
const FHIR_TO_SYSTEM: Record<string, string> = {
  boolean: 'Boolean',
  string: 'String',
  uri: 'String',
  code: 'String',
  oid: 'String',
  id: 'String',
  uuid: 'String',
  markdown: 'String',
  base64Binary: 'String',
  integer: 'Integer',
  unsignedInt: 'Integer',
  positiveInt: 'Integer',
  integer64: 'Long',
  decimal: 'Decimal',
  date: 'DateTime',
  dateTime: 'DateTime',
  instant: 'DateTime',
  time: 'Time',
  Quantity: 'Quantity',
};

/** fhirpath.js's `roundToMaxPrecision`: numbers compare at 8 decimal places (FHIRPath §Decimal). */
const round8 = (x: number) => Math.round(x / 1e-8) * 1e-8;

function isType(type: string | null, superType: string, model: ModelTables | undefined): boolean {
  let t: string | undefined | null = type;
  do {
    if (t === superType) return true;
  } while ((t = model?.type2Parent[t as string]));
  return false;
}

/**
 * A compiled expression's view of fhirpath.js's `valDataConverted`: the value an operator sees. fhirpath.js turns a
 * date/dateTime/instant/time element into a date object and a UCUM Quantity into a quantity; those semantics are not
 * compiled, so such a value bails.
 */
function conv(x: Item, model: ModelTables | undefined): unknown {
  if (!(x instanceof Node)) return x;
  const d = x.d;
  if (d == null || x.p === null) return d;
  const cls = DATE_CLASSES[x.p];
  if (cls) return typeof d === 'string' ? dateValue(x.p as 'date' | 'dateTime' | 'instant' | 'time', fpContext(model), d) || d : bail();
  if (typeof d === 'object' && isType(x.p, 'Quantity', model) && (d as { system?: unknown }).system === UCUM) bail();
  return d;
}

const valData = (x: Item): unknown => (x instanceof Node ? x.d : x);

/**
 * One call site's regular expressions, built once per pattern with `flags`; undefined for a pattern JavaScript cannot
 * compile (the caller hands that evaluation to fhirpath.js, whose error it then is).
 */
function regexCache(flags: string): (pattern: string) => RegExp | undefined {
  const cache = new Map<string, RegExp | undefined>();
  return (pattern) => {
    if (cache.has(pattern)) return cache.get(pattern);
    let rx: RegExp | undefined;
    try {
      rx = new RegExp(pattern, flags);
    } catch {
      rx = undefined;
    }
    cache.set(pattern, rx);
    return rx;
  };
}

/** Keys of the trees of one expression (see {@link treeKey}): its nodes' dropped with its compiler, the ids kept (treeIds). */
interface TreeKeys {
  /** By node. */
  keys: Map<AstNode, string>;
  /** Ids of the distinct trees met so far, by their node's fields and their children's ids. */
  ids: Map<string, string>;
  /** Ids of the distinct strings met so far (a node's `text` is the source of its whole subtree). */
  texts: Map<string, string>;
}
/**
 * A parse tree as a key, without where it stands in the text (`start`, `length`): equal keys, equal trees (within
 * one `TreeKeys`). Each distinct tree gets a short id made from its own fields and its children's ids (hash-consing),
 * so a node's key is built from its children's once: the JSON of each subtree again at every level above it (with a
 * replacer call per property) was about a sixth of compiling the content at start-up. A string field becomes the id
 * of its value, not its JSON: fhirpath.js gives every node the text of its whole subtree, so writing that out at every
 * level was quadratic in the expression's depth (about 40 % of compiling the content, 2026-12-07).
 */
function treeKey(n: AstNode, memo: TreeKeys): string {
  let key = memo.keys.get(n);
  if (key === undefined) {
    let shape = '';
    for (const k of Object.keys(n)) {
      if (k === 'start' || k === 'length') continue;
      const v = (n as unknown as Record<string, unknown>)[k];
      if (v === undefined) continue;
      if (typeof v === 'string') {
        let id = memo.texts.get(v);
        if (id === undefined) memo.texts.set(v, (id = `s${memo.texts.size}`));
        shape += `${k}=${id}|`;
      } else shape += k === 'children' && Array.isArray(v) ? `children:[${(v as AstNode[]).map((c) => treeKey(c, memo)).join(',')}]|` : `${k}:${JSON.stringify(v)}|`;
    }
    key = memo.ids.get(shape);
    if (key === undefined) memo.ids.set(shape, (key = `t${memo.ids.size}`));
    memo.keys.set(n, key);
  }
  return key;
}

/**
 * The ids of distinct trees and strings for every expression compiled since the content was loaded, so that equal
 * trees of two expressions have equal keys (what HeldValues are held by).
 */
let treeIds = { ids: new Map<string, string>(), texts: new Map<string, string>() };
/** What a compiler keeps of the tree keys once its expression is made: nothing (see Compiler.compiled). */
const NO_TREE_KEYS: TreeKeys = { keys: new Map(), ids: new Map(), texts: new Map() };
/** Counts {@link forgetTreeIds}: a key made after it is never equal to one made before (acrossExpressions). */
let treeIdsGeneration = 0;
/**
 * The content is compiled: the tree ids go (about 3 MB for the content's 9,000 distinct sub-trees, 2026-12-08). An
 * expression compiled later gets keys of its own, so it holds no value for one compiled before: still exact.
 */
export function forgetTreeIds(): void {
  treeIds = { ids: new Map(), texts: new Map() };
  treeIdsGeneration++;
}

/**
 * fhirpath.js's `deepEqual` for the values compiled code meets (FHIRPath §6.1.1 `=`): numbers equal at 8 decimal
 * places, strings and booleans by identity, JSON objects and arrays structurally. A number against a non-number
 * (fhirpath.js would parse a numeric string) bails.
 */
function equalValues(a: unknown, b: unknown): boolean | undefined {
  if (a === b) return true;
  const fa = a instanceof FP_Type;
  const fb = b instanceof FP_Type;
  if (fa || fb) {
    // fhirpath.js: two of its values compare by their own equals() (undefined when precisions differ); one against
    // a number converts the number; against anything else, false.
    if (fa && fb) return fp(() => (a as FpType).equals(b));
    if (typeof (fa ? b : a) === 'number') return bail();
    return false;
  }
  const ta = typeof a;
  const tb = typeof b;
  if (ta === 'number' || tb === 'number') {
    if (ta === 'number' && tb === 'number') return round8(a as number) === round8(b as number);
    return bail();
  }
  if (a === null || b === null || ta !== 'object' || tb !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return bail();
  // Two JSON objects or arrays (CodeableConcepts compared by `|`, `in`, distinct()): their own keys counted and read
  // with for-in, as Object.keys would give them (own enumerable string keys, in the same order), without the two arrays of keys
  // per pair; about 3 % of what an order-sign allocated (2026-12-07). Counted first, as before: objects of different
  // sizes are unequal without comparing (and perhaps bailing on) any member.
  const ra = a as unknown as Record<string, unknown>;
  const rb = b as unknown as Record<string, unknown>;
  if (ownKeyCount(ra) !== ownKeyCount(rb)) return false;
  for (const k in ra) {
    if (!Object.prototype.hasOwnProperty.call(ra, k)) continue;
    if (!Object.prototype.hasOwnProperty.call(rb, k)) return false;
    if (!equalValues(ra[k], rb[k])) return false;
  }
  return true;
}

/** How many keys Object.keys would give for an object (own enumerable string keys), without making the array. */
function ownKeyCount(o: Record<string, unknown>): number {
  let n = 0;
  for (const k in o) if (Object.prototype.hasOwnProperty.call(o, k)) n++;
  return n;
}

/** The FHIRPath `=` of two items (undefined: not comparable; a bail for values whose equality is not compiled). */
function equalItems(a: Item, b: Item, model: ModelTables | undefined): boolean | undefined {
  if (a === b) return true;
  return equalValues(conv(a, model), conv(b, model));
}

/** FHIRPath §Singleton evaluation for a Boolean parameter: empty, the boolean, or true for any other single value. */
function singletonBoolean(c: Coll): boolean | undefined {
  if (c.length === 0) return undefined;
  if (c.length > 1) bail();
  const v = valData(c[0]);
  if (v == null) return undefined;
  return typeof v === 'boolean' ? v : true;
}

/** A String/Integer function argument, as fhirpath.js's `singleton()` gives it (empty bails: rare, and odd). */
function argString(c: Coll): string {
  if (c.length !== 1) bail();
  const v = valData(c[0]);
  return typeof v === 'string' ? v : bail();
}
function argInteger(c: Coll): number {
  if (c.length !== 1) bail();
  const v = valData(c[0]);
  return typeof v === 'number' && Number.isInteger(v) ? v : bail();
}

/** The input string of a string function: empty, the string, or a bail (several items, a non-string). */
function inputString(c: Coll): string | undefined {
  if (c.length === 0) return undefined;
  if (c.length > 1) bail();
  const v = valData(c[0]);
  if (v == null) return undefined;
  return typeof v === 'string' ? v : bail();
}

/** `isTrue` of fhirpath.js: a single item whose value is true. */
const isTrue = (c: Coll) => c.length === 1 && valData(c[0]) === true;

/**
 * A variable's value as fhirpath.js's `ExternalConstantTerm` gives it: resources become typed nodes (typed by their
 * resourceType whatever `__path__` fhirpath.js left on them), other objects stay bare (a `__path__` on one of those
 * would type it: a bail).
 */
function variableItems(value: unknown): Coll {
  // Shared arrays for the commonest values (an unknown fact is [], a boolean fact true or false): compiled code never
  // changes a collection it is given, and a fact expression reads its dependencies' values several times.
  if (value === undefined || value === null) return NONE;
  if (typeof value !== 'object') return value === true ? TRUE : value === false ? FALSE : [value];
  if (Array.isArray(value) && value.length === 0) return NONE;
  // The record's collections are read by many expressions of one request: their nodes are made once (nodes are
  // immutable, and compiled code never changes a collection it is given).
  // A collection of bare objects (`%diagnoses`: CodeableConcepts) is kept too, its items checked again for a
  // `__path__` on every read (fhirpath.js may mark an object it returned after the items were made): it was made
  // afresh on every read, about a sixteenth of what an order-sign allocates in evaluation (2026-12-07).
  const hit = variableCache.get(value);
  if (hit && sameItems(hit, value)) return hit;
  const items = Array.isArray(value) ? value.map(variableItem) : [variableItem(value)];
  variableCache.set(value, items);
  return items;
}
/** One item of a variable's value: a resource as a typed node, anything else bare (see variableItems). */
function variableItem(i: unknown): Item {
  if (i !== null && typeof i === 'object') {
    const rt = (i as { resourceType?: unknown }).resourceType;
    if (rt) return typeof rt === 'string' ? new Node(i, rt, rt) : bail();
    if ((i as { __path__?: unknown }).__path__ !== undefined) bail();
  }
  return i;
}
const variableCache = new WeakMap<object, Coll>();
/** The empty collection variableItems hands out (never changed: see TRUE). */
const NONE: Coll = [];
/** Results of the user functions by function, input collection and arguments (see userCall). */
const userMemos = new WeakMap<object, WeakMap<Coll, Map<string, Coll>>>();
/**
 * Whether cached items still stand for the value's elements (an array changed since is read again); a bare object
 * fhirpath.js has marked with `__path__` since bails, as when its items were first made.
 */
function sameItems(items: Coll, value: object): boolean {
  if (!Array.isArray(value)) return sameItem(items.length === 1 ? items[0] : NONE, value);
  if (value.length !== items.length) return false;
  for (let i = 0; i < value.length; i++) if (!sameItem(items[i], value[i])) return false;
  return true;
}
function sameItem(item: Item, v: unknown): boolean {
  if (item instanceof Node) return item.d === v;
  if (item !== v) return false;
  if (v !== null && typeof v === 'object' && (v as { __path__?: unknown }).__path__ !== undefined) bail();
  return true;
}

/** Options the compiler needs: the model (undefined for plain objects) and the user functions. */
export interface CompilerOptions {
  model: ModelTables | undefined;
  functions: Record<string, UserFunction>;
}

/** Counts of how the content's expressions were compiled, for the start-up log and the agreement test. */
export interface CompileCounts {
  compiled: number;
  fallback: number;
}

/**
 * Compiles a parsed FHIRPath expression (fhirpath.js's `parse()` output) to a function of (resource, env) giving the
 * result fhirpath.js gives with `resolveInternalTypes: true`, or throwing {@link BAIL}. Throws {@link Unsupported}
 * for anything outside the compiled subset.
 */
export function compileAst(ast: AstNode, options: CompilerOptions): (resource: unknown, env: Record<string, unknown>, held?: HeldValues) => unknown[] {
  const c = new Compiler(options);
  const { code, loops } = c.program(ast);
  c.compiled();
  let body: (input: Coll, self: Coll, run: Run) => Coll;
  try {
    body = new Function('S', 'H', `"use strict"; ${loops}\n return function compiledFhirPath(input, self, run) { ${code} };`)(c.sites, HELPERS) as typeof body;
  } catch (err) {
    // A process run with --disallow-code-generation-from-strings: every expression stays with fhirpath.js.
    throw new Unsupported(`code generation refused: ${(err as Error).message}`);
  }
  return (resource, env, held) => {
    const root = variableItems(resource);
    // Held values serve the resource and variables they were made for only (see HeldValues).
    const out = body(root, root, { env, root, held: held !== undefined && held.resource === resource && held.env === env ? held.values : undefined });
    // Nearly every fact gives one value or none: that result is made to size (an array grown by push() from empty
    // gets room for 16 on its first push, once per fact evaluation).
    if (out.length === 0) return [];
    if (out.length === 1) {
      const v = resultValue(out[0]);
      return v == null ? [] : [v];
    }
    const result: unknown[] = [];
    for (let i = 0; i < out.length; i++) {
      const v = resultValue(out[i]);
      if (v != null) result.push(v);
    }
    return result;
  };
}

/** One item of a compiled expression's result as fhirpath.js returns it (null or undefined: no item). */
function resultValue(x: Item): unknown {
  if (x instanceof Node) {
    // fhirpath.js marks a typed object it returns with a hidden `__path__` that later evaluations read: leave
    // such results to it so both engines see the same objects afterwards.
    if (x.p !== null && typeof x.d === 'object' && x.d !== null) bail();
    return x.d;
  }
  if (x instanceof FP_Type) return x.toJSON();
  return x;
}

/**
 * The Boolean results, one array each: hundreds of `=`, `and`, `exists()` and `matches()` results are made per fact
 * evaluation, and compiled code never changes a collection it is given (results are copied out at the end), so they
 * can be shared instead of allocated.
 */
const TRUE: Coll = [true];
const FALSE: Coll = [false];
const bool = (b: boolean): Coll => (b ? TRUE : FALSE);

/**
 * A sub-expression over the root that several compiled expressions contain (see HeldValues): `exprs` counts them, so
 * one written in a single expression is not held (a Map write per evaluation for no reader).
 */
interface AcrossEntry {
  exprs: number;
  /** The compilation that last counted this entry (Compiler.serial). */
  last: number;
}
/**
 * The entries by user-function table, model and tree key (the tree ids are the same for every compilation: see
 * treeIds): the same tree compiled with another table or model is another sub-expression.
 */
const acrossEntries = new WeakMap<object, Map<ModelTables | undefined, Map<string, AcrossEntry>>>();
function acrossEntry(options: CompilerOptions, key: string, serial: number): AcrossEntry {
  let byModel = acrossEntries.get(options.functions);
  if (!byModel) acrossEntries.set(options.functions, (byModel = new Map()));
  let byKey = byModel.get(options.model);
  if (!byKey) byModel.set(options.model, (byKey = new Map()));
  let entry = byKey.get(key);
  if (!entry) byKey.set(key, (entry = { exprs: 0, last: -1 }));
  if (entry.last !== serial) {
    entry.exprs++;
    entry.last = serial;
  }
  return entry;
}
/** The value held for a sub-expression in this evaluation, if any (see HeldValues). */
function held(run: Run, entry: AcrossEntry): Coll | undefined {
  return run.held !== undefined && entry.exprs > 1 ? run.held.get(entry) : undefined;
}
/** Holds a sub-expression's value for the other expressions of this evaluation, and gives it. */
function hold(run: Run, entry: AcrossEntry, value: Coll): Coll {
  if (run.held !== undefined && entry.exprs > 1) run.held.set(entry, value);
  return value;
}

/** What the generated code calls besides its sites. */
const HELPERS = { truthy: (c: Coll) => truthy(c), isTrue: (c: Coll) => isTrue(c), bool, TRUE, FALSE, NONE, held, hold };

/** Node types worth evaluating once when they recur (the rest are pass-throughs, literals, variables or `$this`). */
const SHAREABLE = new Set([
  'InvocationExpression',
  'MemberInvocation',
  'FunctionInvocation',
  'UnionExpression',
  'EqualityExpression',
  'InequalityExpression',
  'MembershipExpression',
  'AndExpression',
  'OrExpression',
  'ImpliesExpression',
  'XorExpression',
  'AdditiveExpression',
  'MultiplicativeExpression',
]);
/** Placeholders in code being built: a shareable sub-expression (`\uE001id\uE002`), a scope's declarations (`\uE003id\uE004`). */
const PLACEHOLDER = /\uE001(\d+)\uE002|\uE003(\d+)\uE004/g;

/** A scope of the generated code in which every variable the expressions read keeps one value: a loop body, or the whole function. */
interface Scope {
  id: number;
  /** Shared sub-expressions by tree and `$this` variable: their ids in `Compiler.shared`. */
  byKey: Map<string, number>;
}

/** Compilations so far (Compiler.serial). */
let compilations = 0;

/**
 * Builds one JavaScript function per expression (`new Function`, from code made here only: no text of the
 * expression reaches it but through `S[i]`, the table of per-site functions and constants). Composite nodes (paths,
 * where/select/exists/all/iif, operators) become straight-line code and loops in that function; the leaves and the
 * semantics of each operator are per-site functions taking evaluated collections. One function per expression keeps
 * every call site in it monomorphic, which is most of the speed over a tree of shared closures.
 *
 * A sub-expression written more than once over the same `$this` in one scope (the marker readers read
 * `value.coding.display | value.text | …` three times per result) is evaluated once per scope: its first use computes
 * it into a variable of the scope (`(t7 ??= …)`), later uses read it. Evaluation has no side effects and compiled
 * code never changes a collection, so the value is the one a second evaluation would give; where a use sits in a
 * branch not taken (`iif`), nothing is computed, as before.
 */
class Compiler {
  private readonly model: ModelTables | undefined;
  readonly sites: unknown[] = [];
  /** Code whose collection is the same array on every evaluation over the same record (see userCall). */
  private readonly stable = new Set<string>();
  private vars = 0;
  /** The loops' functions (see {@link loop}), with placeholders until {@link program} resolves them. */
  private readonly loops: string[] = [];
  /** Shareable sub-expressions met so far: code (with placeholders), how often it is used, and its scope. */
  private readonly shared: { code: string; uses: number; scope: number }[] = [];
  private readonly scopes: Scope[] = [];
  private scopeCount = 0;
  private treeKeys: TreeKeys = { keys: new Map(), ids: treeIds.ids, texts: treeIds.texts };
  private readonly treeIdsGeneration = treeIdsGeneration;
  /** This compilation's number, by which acrossEntry counts the expressions a sub-expression occurs in. */
  private readonly serial = compilations++;
  constructor(private readonly options: CompilerOptions) {
    this.model = options.model;
  }

  /** The code is made: what only making it needed goes (per-site functions may keep the compiler alive). */
  compiled(): void {
    // Per-site functions may keep the compiler alive: it lets go of the shared tree ids too (see forgetTreeIds).
    this.treeKeys = NO_TREE_KEYS;
  }

  /** The body of the expression's function: its scope's variables, then the value of the whole tree. */
  program(ast: AstNode): { code: string; loops: string } {
    const { code, declarations } = this.scoped(() => this.expr(ast, 'input', 'self'));
    return { code: this.resolve(`${declarations} return ${code};`), loops: this.loops.map((l) => this.resolve(l)).join('\n') };
  }

  /**
   * Code built inside a new scope (a loop body), and the placeholder for that scope's variables, to be written at the
   * start of the body.
   */
  private scoped(build: () => string): { code: string; declarations: string } {
    const scope: Scope = { id: this.scopeCount++, byKey: new Map() };
    this.scopes.push(scope);
    try {
      return { code: build(), declarations: `\uE003${scope.id}\uE004` };
    } finally {
      this.scopes.pop();
    }
  }

  /** Replaces the placeholders: a sub-expression used more than once becomes its scope's variable, computed on first use. */
  private resolve(code: string): string {
    return code.replace(PLACEHOLDER, (_m, sharedId: string | undefined, scopeId: string | undefined) => {
      if (scopeId !== undefined) {
        const names = this.shared.flatMap((e, id) => (e.uses > 1 && e.scope === Number(scopeId) ? [`t${id}`] : []));
        return names.length > 0 ? `let ${names.join(', ')};` : '';
      }
      const entry = this.shared[Number(sharedId)];
      const inner = this.resolve(entry.code);
      return entry.uses > 1 ? `(t${sharedId} ??= ${inner})` : inner;
    });
  }

  /** A per-site function or constant, referred to from the generated code as `S[i]`. */
  private site(value: unknown): string {
    this.sites.push(value);
    return `S[${this.sites.length - 1}]`;
  }

  private fresh(): number {
    return ++this.vars;
  }

  private kids(n: AstNode, count?: number): AstNode[] {
    const k = n.children ?? [];
    if (count !== undefined && k.length !== count) throw new Unsupported(`${n.type} with ${k.length} children`);
    return k;
  }

  /**
   * One node of the tree (FHIRPath §Expressions) as code for its collection, given code for its input and $this. A
   * shareable node evaluated against `$this` itself (an argument, an operand, a lambda's body) is keyed by its tree
   * and that variable, so a second occurrence in the same scope reuses the first's value.
   */
  expr(n: AstNode, inp: string, self: string): string {
    const scope = this.scopes[this.scopes.length - 1];
    if (!scope || !SHAREABLE.has(n.type)) return this.node(n, inp, self);
    // Over the evaluation's root (the function's own scope, where `input` and `self` are both the root), its value
    // depends on the variables and the root alone: it may be held for the other expressions of the evaluation.
    const overRoot = this.scopes.length === 1 && self === 'self' && (inp === 'input' || inp === 'self');
    if (inp !== self) return overRoot ? this.acrossExpressions(n, this.node(n, inp, self)) : this.node(n, inp, self);
    const key = `${self}\u0000${treeKey(n, this.treeKeys)}`;
    const known = scope.byKey.get(key);
    if (known !== undefined) {
      this.shared[known].uses++;
      return `\uE001${known}\uE002`;
    }
    const code = overRoot ? this.acrossExpressions(n, this.node(n, inp, self)) : this.node(n, inp, self);
    const id = this.shared.push({ code, uses: 1, scope: scope.id }) - 1;
    scope.byKey.set(key, id);
    const placeholder = `\uE001${id}\uE002`;
    // Stands for the same array: a user function over it may remember its results (see userCall).
    if (this.stable.has(code)) this.stable.add(placeholder);
    return placeholder;
  }

  /**
   * Code for a sub-expression over the root that reads the value another expression of the evaluation held for it, or
   * computes and holds it (see HeldValues).
   */
  private acrossExpressions(n: AstNode, code: string): string {
    // Only a sub-expression that loops (where, select, exists, all) costs more than holding it: a Map read and write.
    if (!this.callsLoop(code)) return code;
    const entry = this.site(acrossEntry(this.options, `${this.treeIdsGeneration}:${treeKey(n, this.treeKeys)}`, this.serial));
    const across = `(H.held(run, ${entry}) ?? H.hold(run, ${entry}, ${code}))`;
    // The same array for the same record when the code's is (see userCall): a held value is that array.
    if (this.stable.has(code)) this.stable.add(across);
    return across;
  }

  /** Whether code (with its placeholders' code) calls a loop's function. */
  private callsLoop(code: string): boolean {
    if (/\bL\d+\(/.test(code)) return true;
    for (const m of code.matchAll(/\uE001(\d+)\uE002/g)) if (this.callsLoop(this.shared[Number(m[1])].code)) return true;
    return false;
  }

  private node(n: AstNode, inp: string, self: string): string {
    switch (n.type) {
      case 'EntireExpression':
      case 'TermExpression':
      case 'InvocationTerm':
      case 'ParenthesizedTerm':
        return this.expr(this.kids(n, 1)[0], inp, self);
      case 'LiteralTerm':
        return this.site(this.literal(this.kids(n, 1)[0]));
      case 'ExternalConstantTerm':
        return `${this.site(this.variable(n))}(run)`;
      case 'InvocationExpression': {
        const [left, right] = this.kids(n, 2);
        return this.invocation(right, this.expr(left, inp, self), self);
      }
      case 'ThisInvocation':
        return self;
      case 'MemberInvocation':
      case 'FunctionInvocation':
        return this.invocation(n, inp, self);
      case 'UnionExpression':
        return this.binary(n, self, this.union());
      case 'EqualityExpression':
        return this.binary(n, self, this.equality(n));
      case 'InequalityExpression':
        return this.binary(n, self, this.comparison(n));
      case 'MembershipExpression':
        return this.binary(n, self, this.membership(n));
      case 'AndExpression':
      case 'OrExpression':
      case 'ImpliesExpression':
      case 'XorExpression':
        return this.binary(n, self, this.logic(n));
      case 'AdditiveExpression':
      case 'MultiplicativeExpression':
        return this.binary(n, self, this.arithmetic(n));
      case 'PolarityExpression':
        return this.site(this.polarity(n));
      default:
        throw new Unsupported(`${n.type} is not compiled`);
    }
  }

  /** An operator: both operands evaluated against $this, left first (as fhirpath.js does), then its semantics. */
  private binary(n: AstNode, self: string, op: (x: Coll, y: Coll) => Coll): string {
    const [a, b] = this.kids(n, 2);
    return `${this.site(op)}(${this.arg(a, self)}, ${this.arg(b, self)})`;
  }

  /** Literals (FHIRPath §Literals): strings, numbers, booleans, `{}`, dates and calendar durations. */
  private literal(n: AstNode): Coll {
    switch (n.type) {
      case 'StringLiteral':
        return [stringLiteral(n.text ?? '')];
      case 'NumberLiteral': {
        const text = n.text ?? '';
        if (!/^\d+(\.\d+)?$/.test(text)) throw new Unsupported(`number ${text}`);
        return [Number(text)];
      }
      case 'BooleanLiteral':
        return [n.text === 'true'];
      case 'NullLiteral':
        return [];
      case 'DateLiteral':
      case 'DateTimeLiteral': {
        // @2026-01-01, @2026-01-01T10:00:00Z (FHIRPath §Date/DateTime literals) as fhirpath.js's own values.
        const cls = n.type === 'DateLiteral' ? FP_Date : FP_DateTime;
        const v = cls.checkString(fpContext(this.model), (n.text ?? '').slice(1));
        if (!v) throw new Unsupported(`literal ${n.text}`);
        return [v];
      }
      case 'QuantityLiteral': {
        // Only calendar durations (3 years, 30 days: FHIRPath §Time-valued quantities), for date arithmetic.
        const { value, unit } = n as AstNode & { value?: string; unit?: string };
        if (!value || !/^\d+$/.test(value) || !unit || !CALENDAR_UNITS.has(unit)) throw new Unsupported(`quantity ${n.text}`);
        return [new FP_Quantity(fpContext(this.model), FP_Decimal_Native.getDecimal(value), unit)];
      }
      default:
        throw new Unsupported(`${n.type} is not compiled`);
    }
  }

  /** Negation of a number literal only (fhirpath.js negates the operand's collection in place). */
  private polarity(n: AstNode): Coll {
    const [operand] = this.kids(n, 1);
    const lit = operand.type === 'TermExpression' && operand.children?.[0]?.type === 'LiteralTerm' ? operand.children[0].children?.[0] : undefined;
    if (lit?.type !== 'NumberLiteral') throw new Unsupported('polarity of a non-literal');
    if (!/^\d+(\.\d+)?$/.test(lit.text ?? '')) throw new Unsupported(`number ${lit.text}`);
    const v = Number(lit.text);
    return [n.text === '-' ? -v : v];
  }

  /** `%name` (FHIRPath §Environment variables): the caller's variables, then `%context` and `%ucum`. */
  private variable(n: AstNode): (run: Run) => Coll {
    const constant = this.kids(n, 1)[0];
    const idNode = constant.children?.[0];
    if (!idNode || (idNode.type !== 'Identifier' && idNode.type !== 'StringLiteral')) throw new Unsupported('variable form');
    const name = idNode.text ?? '';
    if (n.delimitedText !== undefined || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Unsupported('delimited variable name');
    if (OBJECT_KEYS.has(name)) throw new Unsupported(`variable ${name}`);
    // Read afresh each time (fhirpath.js keeps what it read for one evaluation): the record's collections come from
    // variableItems' cache, and two reads of one value give equal items, which is all FHIRPath can observe.
    // A string or number value (`%orderDate`, a date or count fact) was a new one-item array on every read: the last
    // one is kept, and handed out again while the value is the same (compiled code never changes a collection).
    let lastValue: unknown;
    let lastItems: Coll | undefined;
    return (run) => {
      const env = run.env;
      const value = env[name];
      if (value !== undefined) {
        if (typeof value === 'string' || typeof value === 'number') {
          if (lastItems === undefined || !Object.is(value, lastValue)) {
            lastItems = [value];
            lastValue = value;
          }
          return lastItems;
        }
        return variableItems(value);
      }
      if (name in env) return NONE;
      if (name === 'context') return run.root;
      if (name === 'ucum') return [UCUM];
      return bail();
    };
  }

  /** The right side of `.`: a member or a function of the input collection. */
  private invocation(n: AstNode, inp: string, self: string): string {
    switch (n.type) {
      case 'MemberInvocation':
        return `${this.site(this.member(n))}(${inp}, ${self}, run)`;
      case 'FunctionInvocation':
        return this.call(n, inp, self);
      case 'ThisInvocation':
        return self;
      default:
        throw new Unsupported(`${n.type} is not compiled`);
    }
  }

  /**
   * Member navigation (FHIRPath §Path selection), as fhirpath.js's MemberInvocation and makeChildResNodes do it:
   * choice elements resolved by the model (`value` → `valueQuantity`), element types from the model, arrays
   * flattened, a resource reached through `resourceType` typed as itself.
   */
  private member(n: AstNode): (input: Coll, self: Coll, run: Run) => Coll {
    const idNode = this.kids(n, 1)[0];
    if (idNode.type !== 'Identifier') throw new Unsupported('member form');
    const raw = idNode.text ?? '';
    if (raw.startsWith('`')) throw new Unsupported('delimited identifier');
    const key = raw;
    if (OBJECT_KEYS.has(key) || key.startsWith('_')) throw new Unsupported(`member ${key}`);
    // At the root an identifier may name a type (`Observation.code`, `code` for an element of type code): fhirpath.js
    // then keeps the items of that type instead of navigating. It tests this at the top level (atRoot 1) and inside an
    // argument whose $this is the evaluation's root (atRoot 2).
    const mayBeType =
      !!n.atRoot && (/^[A-Z]/.test(key) || SYSTEM_TYPES.has(key) || FHIR_TO_SYSTEM[key] !== undefined || !!this.model?.availableTypes.has(key) || this.model?.type2Parent[key] !== undefined);
    const atRoot = n.atRoot;
    const model = this.model;
    const underscored = `_${key}`;
    interface Choice {
      field: string;
      underscored: string;
      outPath: string;
      type: string | null;
    }
    interface ChildInfo {
      choices?: Choice[];
      type: string | null;
      outPath: string;
    }
    // The model lookups of makeChildResNodes, once per parent path (most calls see the same one).
    const childCache = new Map<string, ChildInfo>();
    let lastPath: string | undefined;
    let lastInfo: ChildInfo | undefined;
    const childInfo = (parentPath: string): ChildInfo => {
      if (parentPath === lastPath) return lastInfo!;
      let info = childCache.get(parentPath);
      if (!info) {
        let childPath = `${parentPath}.${key}`;
        if (model) childPath = model.pathsDefinedElsewhere[childPath] || childPath;
        const choice = model?.choiceTypePaths[childPath];
        if (choice) {
          info = {
            type: null,
            outPath: childPath,
            choices: choice.map((t) => {
              const p = childPath + t;
              return { field: key + t, underscored: `_${key}${t}`, outPath: (model && model.path2TypeWithoutElements[p]) || p, type: model?.path2Type[p] ?? null };
            }),
          };
        } else {
          const p = key === 'extension' ? 'Extension' : childPath;
          info = { type: model?.path2Type[p] ?? null, outPath: (model && model.path2TypeWithoutElements[p]) || p };
        }
        childCache.set(parentPath, info);
      }
      lastPath = parentPath;
      lastInfo = info;
      return info;
    };
    // The children of one value, appended to `out`, or (no `out`) as a collection of their own made to size: most
    // navigations have one input item (a loop's `$this`) and one or two children, and an array grown by push() from
    // empty gets room for 16 (about 80 bytes) on its first push. Member navigation was the largest allocator of an
    // order-sign (about a sixth of its bytes, 2026-12-07).
    const children = (out: Coll | undefined, toAdd: unknown, path: string | null, type: string | null): Coll => {
      if (type === 'integer64') bail();
      if (Array.isArray(toAdd)) {
        const n = toAdd.length;
        if (out === undefined) {
          if (n === 1) {
            const x = toAdd[0];
            if (x == null) bail();
            return [nodeOf(x, path, type)];
          }
          if (n === 2) {
            const x = toAdd[0];
            const y = toAdd[1];
            if (x == null || y == null) bail();
            return [nodeOf(x, path, type), nodeOf(y, path, type)];
          }
          out = [];
        }
        for (let k = 0; k < n; k++) {
          const x = toAdd[k];
          if (x == null) bail();
          out.push(nodeOf(x, path, type));
        }
        return out;
      }
      if (out === undefined) return [nodeOf(toAdd, path, type)];
      out.push(nodeOf(toAdd, path, type));
      return out;
    };
    /**
     * One input item's step (fhirpath.js's makeChildResNodes): its children appended to `out`, or as a collection of
     * their own; `out` itself (or the shared empty collection, never changed) when it has none.
     */
    const step = (item: Item, typeTest: boolean, out: Coll | undefined): Coll => {
      if (typeTest && typeIs(item, key, model)) {
        const typed = item instanceof Node ? item : nodeOf(item, null, null);
        if (out === undefined) return [typed];
        out.push(typed);
        return out;
      }
      let data: unknown;
      let path: string | null;
      if (item instanceof Node) {
        data = item.d;
        path = item.p;
      } else {
        data = item;
        path = null;
        if (data instanceof FP_Type) bail();
        if (data !== null && typeof data === 'object') {
          if ((data as { __path__?: unknown }).__path__ !== undefined) bail();
          const rt = (data as { resourceType?: unknown }).resourceType;
          if (rt) path = typeof rt === 'string' ? rt : bail();
        }
      }
      const none = out ?? NONE;
      if (data === null || data === undefined) return none;
      // fhirpath.js holds numbers as decimal objects with members of their own (`.value`): not compiled.
      if (typeof data === 'number') bail();
      if (typeof data !== 'object' || Array.isArray(data)) {
        // fhirpath.js reads `'abc'.length` and the like from primitives: not compiled.
        if ((data as Record<string, unknown>)[key] !== undefined) bail();
        return none;
      }
      const obj = data as Record<string, unknown>;
      if (obj.resourceType === key) {
        const self = item instanceof Node ? item : new Node(obj, key, key);
        if (out === undefined) return [self];
        out.push(self);
        return out;
      }
      if (path !== null) {
        const info = childInfo(path);
        if (info.choices) {
          for (const c of info.choices) {
            const toAdd = obj[c.field];
            if (obj[c.underscored] !== undefined) bail();
            if (toAdd !== undefined) {
              if (toAdd === null || (Array.isArray(toAdd) && toAdd.length === 0)) return none;
              return children(out, toAdd, c.outPath, c.type);
            }
          }
          return none;
        }
        const toAdd = obj[key];
        if (obj[underscored] !== undefined) bail();
        if (toAdd === undefined || toAdd === null || (Array.isArray(toAdd) && toAdd.length === 0)) return none;
        return children(out, toAdd, info.outPath, info.type);
      }
      const toAdd = obj[key];
      if (obj[underscored] !== undefined) bail();
      if (toAdd === undefined || toAdd === null || (Array.isArray(toAdd) && toAdd.length === 0)) return none;
      return children(out, toAdd, null, null);
    };
    return (input, self, run) => {
      let typeTest = atRoot === 1 && mayBeType;
      if (atRoot === 2 && mayBeType) {
        if (self === run.root) typeTest = true;
        // fhirpath.js compares $this[0] with the root item at $index, which compiled code does not track.
        else if (sharesItem(self, run.root)) bail();
      }
      if (input.length === 0) return NONE;
      if (input.length === 1) return step(input[0], typeTest, undefined);
      const out: Coll = [];
      for (let k = 0; k < input.length; k++) step(input[k], typeTest, out);
      return out.length === 0 ? NONE : out;
    };
  }

  /** Parameters of a function invocation, as AST nodes. */
  private params(n: AstNode): { name: string; args: AstNode[] } {
    const fn = this.kids(n, 1)[0];
    if (fn.type !== 'Functn') throw new Unsupported(`${fn.type} is not compiled`);
    const [id, list] = fn.children ?? [];
    if (id?.type !== 'Identifier' || (id.text ?? '').startsWith('`')) throw new Unsupported('function name');
    return { name: id.text ?? '', args: list ? (list.children ?? []) : [] };
  }

  /**
   * A non-macro argument or operand, as code: fhirpath.js evaluates it against `$this` (not the function's input;
   * FHIRPath §Functions). A sub-expression of literals alone is computed here, once.
   */
  private arg(a: AstNode, self: string): string {
    const constant = this.constant(a);
    return constant ? this.site(constant) : this.expr(a, self, self);
  }

  /**
   * The value of a sub-expression made of literals alone (`('final' | 'amended' | 'corrected')`); compiled code never
   * changes a collection it is given, so it can be shared by every evaluation.
   */
  private constant(a: AstNode): Coll | undefined {
    switch (a.type) {
      case 'EntireExpression':
      case 'TermExpression':
      case 'ParenthesizedTerm': {
        const k = a.children ?? [];
        return k.length === 1 ? this.constant(k[0]) : undefined;
      }
      case 'LiteralTerm': {
        const lit = a.children?.[0];
        return lit && ['StringLiteral', 'NumberLiteral', 'BooleanLiteral', 'NullLiteral'].includes(lit.type) ? this.literal(lit) : undefined;
      }
      case 'UnionExpression': {
        const [l, r] = (a.children ?? []).map((k) => this.constant(k));
        if (!l || !r || (a.children ?? []).length !== 2) return undefined;
        try {
          return this.union()(l, r);
        } catch (err) {
          // Literals the compiled code does not combine (`true | 1.0`): left to run time, which hands them to fhirpath.js
          // (thrown from here, the bail would fail the content load).
          if (err === BAIL) return undefined;
          throw err;
        }
      }
      default:
        return undefined;
    }
  }

  /** A macro argument (where, select, exists, all, iif) as code, evaluated with input and `$this` the variable `v`. */
  private lambda(a: AstNode, v: string): string {
    return this.expr(a, v, v);
  }

  /**
   * A loop (where, select, exists, all) whose body is the argument over `$this` = `v`: the body is a scope of its own.
   * The loop is a function of its input and `run` written once beside the expression's function, not an arrow made
   * and called in place: an arrow would be a new closure on every evaluation of the loop (every item of an enclosing
   * loop, every fact evaluation). Nothing else is shared with the enclosing code: a loop body reads only its own `$this`,
   * its own scope's variables, `run`, `S` and `H` (a lambda's `$this` is its own item; see {@link lambda}).
   */
  private loop(a: AstNode, v: string, input: string, inp: string, write: (body: string, declarations: string) => string): string {
    const { code, declarations } = this.scoped(() => this.lambda(a, v));
    const name = `L${this.loops.length}`;
    this.loops.push(`function ${name}(${input}, run) ${write(code, declarations)}`);
    return `${name}(${inp}, run)`;
  }

  /** A function invocation (FHIRPath §Functions) as code; the user functions (memberOf, coded, codedIn, recent) first. */
  private call(n: AstNode, inp: string, self: string): string {
    const { name, args } = this.params(n);
    const arity = (...counts: number[]) => {
      if (!counts.includes(args.length)) throw new Unsupported(`${name} with ${args.length} arguments`);
    };
    const user = Object.prototype.hasOwnProperty.call(this.options.functions, name) ? this.options.functions[name] : undefined;
    if (user) return this.userCall(name, user, args, inp, self);
    const model = this.model;
    /** A function of its input alone. */
    const unary = (f: (input: Coll) => Coll) => `${this.site(f)}(${inp})`;
    /** A function of its input and arguments evaluated against $this. */
    const withArgs = (f: (input: Coll, ...a: Coll[]) => Coll) => `${this.site(f)}(${[inp, ...args.map((a) => this.arg(a, self))].join(', ')})`;
    const k = this.fresh();
    const [i, o, j, s, r] = [`i${k}`, `o${k}`, `j${k}`, `s${k}`, `r${k}`];
    switch (name) {
      // §5.1 Existence
      case 'empty':
        arity(0);
        return unary((input) => bool(input.length === 0));
      case 'exists':
        arity(0, 1);
        if (args.length === 0) return unary((input) => bool(input.length > 0));
        // exists(criteria) is where(criteria).exists() in fhirpath.js: a truthy first item counts, and every item's
        // criterion runs (one that throws throws, even after a match).
        return this.loop(args[0], s, i, inp, (body, vars) => `{ let ${o} = false; for (let ${j} = 0; ${j} < ${i}.length; ${j}++) { const ${s} = [${i}[${j}]]; ${vars} if (H.truthy(${body})) ${o} = true; } return H.bool(${o}); }`);
      case 'all':
        arity(1);
        return this.loop(args[0], s, i, inp, (body, vars) => `{ for (let ${j} = 0; ${j} < ${i}.length; ${j}++) { const ${s} = [${i}[${j}]]; ${vars} if (!H.isTrue(${body})) return H.FALSE; } return H.TRUE; }`);
      case 'not':
        arity(0);
        return unary((input) => {
          const b = singletonBoolean(input);
          return b === undefined ? [] : bool(!b);
        });
      // §5.2 Filtering and projection
      case 'where':
        arity(1);
        // While every item so far is kept, only their count (`n`): when all are, the result is the input itself (the
        // same items in the same order; compiled code never changes a collection), and otherwise a collection is made
        // at the first item dropped and then kept. Filters that keep their whole input (`where(status in (...))` over
        // a record's active orders) then make no array, and none grows from empty by push() (room for 16).
        return this.loop(
          args[0],
          s,
          i,
          inp,
          (body, vars) =>
            `{ let ${o}; let ${r} = 0; for (let ${j} = 0; ${j} < ${i}.length; ${j}++) { const ${s} = [${i}[${j}]]; ${vars} if (H.truthy(${body})) { if (${o} !== undefined) ${o}.push(${i}[${j}]); else if (${r} === ${j}) ${r}++; else { ${o} = ${i}.slice(0, ${r}); ${o}.push(${i}[${j}]); } } } return ${o} !== undefined ? ${o} : ${r} === ${i}.length ? ${i} : ${r} === 0 ? H.NONE : ${i}.slice(0, ${r}); }`,
        );
      case 'select':
        arity(1);
        return this.loop(args[0], s, i, inp, (body, vars) => `{ const ${o} = []; for (let ${j} = 0; ${j} < ${i}.length; ${j}++) { const ${s} = [${i}[${j}]]; ${vars} const ${r} = ${body}; for (let q = 0; q < ${r}.length; q++) ${o}.push(${r}[q]); } return ${o}; }`);
      case 'ofType': {
        arity(1);
        const spec = typeSpecifier(args[0], model);
        // The test made once per site, not once per call.
        const convertible = (x: Item) => convertibleTo(x, spec, model);
        return unary((input) => input.filter(convertible));
      }
      // §5.3 Subsetting
      case 'first':
        arity(0);
        return unary((input) => (input.length > 0 && input[0] != null ? [input[0]] : []));
      case 'last':
        arity(0);
        return unary((input) => (input.length > 0 && input[input.length - 1] != null ? [input[input.length - 1]] : []));
      // §5.1 distinct(): the first of each run of equal items, in input order, as fhirpath.js keeps them; equality is
      // `=`'s (equalItems), and a pair whose equality is not compiled bails.
      case 'distinct':
        arity(0);
        return unary((input) => {
          const out: Coll = [];
          for (const x of input) if (!out.some((y) => equalItems(y, x, model) === true)) out.push(x);
          return out;
        });
      // §5.4 Combining
      case 'exclude':
        arity(1);
        return withArgs((input, b) => {
          if (b.length === 0) return input;
          return input.filter((x) => !b.some((y) => equalItems(x, y, model)));
        });
      // §5.6 String manipulation
      case 'lower':
        arity(0);
        return unary((input) => {
          const str = inputString(input);
          return str === undefined ? [] : [str.toLowerCase()];
        });
      case 'length':
        // §5.6 length(): a string's length in characters; fhirpath.js reads it as `lower` reads its input.
        arity(0);
        return unary((input) => {
          const str = inputString(input);
          return str === undefined ? [] : [str.length];
        });
      case 'contains':
      case 'startsWith':
        arity(1);
        return withArgs((input, sub) => {
          // fhirpath.js checks a String argument before it looks at the input: a non-string throws even on empty input.
          const t = sub.length === 0 ? undefined : argString(sub);
          const str = inputString(input);
          if (t === undefined || str === undefined) return [];
          return bool(name === 'contains' ? str.includes(t) : str.startsWith(t));
        });
      case 'matches': {
        arity(1);
        // fhirpath.js's flags for matches() without flags: Unicode and dot-all.
        const regex = regexCache('us');
        return withArgs((input, re) => {
          const pattern = re.length === 0 ? undefined : argString(re);
          const str = inputString(input);
          if (pattern === undefined || str === undefined) return [];
          const rx = regex(pattern);
          if (!rx) return bail();
          return bool(rx.test(str));
        });
      }
      case 'replaceMatches': {
        arity(2);
        const regex = regexCache('gu');
        return withArgs((input, re, sub) => {
          // fhirpath.js: empty when the input, the pattern or the substitution is empty; flags global and Unicode.
          const pattern = re.length === 0 ? undefined : argString(re);
          const substitution = sub.length === 0 ? undefined : argString(sub);
          const str = inputString(input);
          if (pattern === undefined || substitution === undefined || str === undefined) return [];
          const rx = regex(pattern);
          if (!rx) return bail();
          return [str.replace(rx, substitution)];
        });
      }
      case 'substring':
        arity(1, 2);
        return withArgs((input, st, ln) => {
          // Both Integer arguments are checked before the input, as fhirpath.js does (a bad one throws whatever the input).
          const from = st.length === 0 ? undefined : argInteger(st);
          const count = ln === undefined || ln.length === 0 ? undefined : argInteger(ln);
          const str = inputString(input);
          if (str === undefined || from === undefined) return [];
          if (from < 0 || from >= str.length) return [];
          if (count === undefined) return [str.substring(from)];
          return [str.substring(from, from + count)];
        });
      case 'toString':
        arity(0);
        return unary(
          onSingleton(model, (v) => {
            // Numbers keep their literal text in fhirpath.js (1.0 → '1.0'): not compiled.
            if (typeof v === 'string') return [v];
            if (typeof v === 'boolean') return [String(v)];
            if (v instanceof FP_Type) return [fp(() => v.toString())];
            return bail();
          }),
        );
      case 'toDate':
      case 'toDateTime': {
        // FHIRPath §5.5.5 conversion, as fhirpath.js does it: from a string, or between its date values.
        arity(0);
        const ctx = fpContext(model);
        return unary((input) => {
          if (input.length === 0) return [];
          if (input.length > 1) bail();
          const v = valData(input[0]);
          let out: FpType | null | undefined;
          if (name === 'toDate') {
            if (v instanceof FP_Date) out = v;
            else if (v instanceof FP_DateTime) out = dateValue('dateFromDateTime', ctx, v.asStr.split('T')[0]);
            else if (typeof v === 'string') out = dateValue('date', ctx, v);
            else if (v instanceof FP_Type) bail();
          } else {
            if (v instanceof FP_DateTime) out = v;
            else if (typeof v === 'string') out = dateValue('dateTime', ctx, v);
            else if (v instanceof FP_Type) bail();
          }
          return out ? [out] : [];
        });
      }
      // §5.7 Math
      case 'floor':
      case 'sqrt':
        arity(0);
        return unary(
          onSingleton(model, (v) => {
            if (typeof v !== 'number') return bail();
            if (name === 'floor') return [Math.floor(v)];
            return v < 0 ? [] : [Math.sqrt(v)];
          }),
        );
      // §5.8 Aggregates
      case 'count':
        arity(0);
        return unary((input) => [input.length]);
      case 'sum':
        arity(0);
        return unary((input) => {
          if (input.length === 0) return [];
          if (input.length === 1) return [input[0]];
          let total = numberOf(input[0], model);
          for (let x = 1; x < input.length; x++) {
            const v = numberOf(input[x], model);
            if (v === undefined || total === undefined) return [];
            total = v + total;
          }
          return total === undefined ? [] : [total];
        });
      case 'max':
      case 'min':
        arity(0);
        return unary(extreme(model, name === 'max' ? 1 : -1));
      // §5.5 Conversion / utility: iif's criterion and branches see the input as $this.
      case 'iif':
        arity(2, 3);
        // Over a variable (`$this` in a select, say), the branches read it directly: several iifs over one `$this`
        // then share their common sub-expressions. Otherwise the input is computed once into `i`.
        if (/^[a-z]+\d*$/.test(inp)) return `(H.isTrue(${this.lambda(args[0], inp)}) ? ${this.lambda(args[1], inp)} : ${args[2] ? this.lambda(args[2], inp) : '[]'})`;
        return `((${i}) => H.isTrue(${this.lambda(args[0], i)}) ? ${this.lambda(args[1], i)} : ${args[2] ? this.lambda(args[2], i) : '[]'})(${inp})`;
      default:
        throw new Unsupported(`function ${name} is not compiled`);
    }
  }

  /** A function of the caller's table, called as fhirpath.js calls it (String/Integer singletons, unwrapped input). */
  private userCall(name: string, user: UserFunction, args: AstNode[], inp: string, self: string): string {
    const types = user.arity[args.length];
    if (!types) throw new Unsupported(`${name} with ${args.length} arguments`);
    const codes = args.map((a, i) => {
      if (types[i] !== 'String' && types[i] !== 'Integer') throw new Unsupported(`${name} argument type ${types[i]}`);
      return this.arg(a, self);
    });
    const fn = user.fn as (inputs: unknown[], ...args: unknown[]) => unknown;
    let memo = userMemos.get(fn);
    if (!memo) userMemos.set(fn, (memo = new WeakMap()));
    const byInput = memo;
    // Only an input that is the same array from one evaluation to the next is worth remembering results for: a
    // variable's collection (variableItems keeps it) or a user function's result over one.
    const stable = /^S\[\d+\]\(run\)$/.test(inp) || this.stable.has(inp);
    // The table's functions take at most three arguments (coded, recent with its upper end): one site shape for all,
    // without arrays or spreads per call, since every hook makes hundreds of these calls (memberOf over each
    // diagnosis's codings).
    if (args.length > 3) throw new Unsupported(`${name} with ${args.length} arguments`);
    // An empty argument (recent's `%orderStart` when the order states no start; maybeRecent's
    // `%earlierCourseFirstCycleStart` when there is no earlier course), or one item without a value, is handed over
    // as [], as fhirpath.js's `singleton()` hands it (misc.js): bailing on it sent every evaluation of such a fact to
    // fhirpath.js, about 0.5 ms each.
    const argValue = (c: Coll, i: number): string | number | [] =>
      c.length === 0 || (c.length === 1 && valData(c[0]) == null) ? [] : types[i] === 'String' ? argString(c) : argInteger(c);
    const keyOf = (v: string | number | [] | undefined) => (Array.isArray(v) ? '\u0001' : String(v));
    const keyFor = (va: ArgValue, vb: ArgValue, vc: ArgValue) =>
      arity === 0 ? '' : arity === 1 ? keyOf(va) : arity === 2 ? `${keyOf(va)}\u0000${keyOf(vb)}` : `${keyOf(va)}\u0000${keyOf(vb)}\u0000${keyOf(vc)}`;
    const arity = args.length;
    // Arguments made of literals alone (`coded('…', 'cd19-status')`, `memberOf('b-all-snomed')`, nearly every call in
    // the content) are read, and their memo key built, once here: building the key per call made a new string whose
    // hash the memo's lookup then computed, on every one of a hook's hundreds of calls. A literal the run time would
    // bail on is left to it.
    let fixed: { va: ArgValue; vb: ArgValue; vc: ArgValue; key: string } | undefined;
    const literals = args.map((a) => this.constant(a));
    if (literals.every((l) => l !== undefined)) {
      try {
        const [va, vb, vc] = literals.map((l, i) => argValue(l as Coll, i));
        fixed = { va, vb, vc, key: keyFor(va, vb, vc) };
      } catch (err) {
        if (err !== BAIL) throw err;
      }
    }
    const site = (input: Coll, a?: Coll, b?: Coll, c?: Coll): Coll => {
      const va = fixed ? fixed.va : arity > 0 ? argValue(a as Coll, 0) : undefined;
      const vb = fixed ? fixed.vb : arity > 1 ? argValue(b as Coll, 1) : undefined;
      const vc = fixed ? fixed.vc : arity > 2 ? argValue(c as Coll, 2) : undefined;
      let results: Map<string, Coll> | undefined;
      let key = '';
      if (stable) {
        // The table's functions are pure: over the same collection (a variable's, which variableItems keeps for the
        // request) with the same arguments they give the same items, so several facts and policies filtering the same
        // record (`%medications.codedIn('tki')`) share one pass.
        key = fixed ? fixed.key : keyFor(va, vb, vc);
        results = byInput.get(input);
        const hit = results?.get(key);
        if (hit) return hit;
      }
      // Made to size (map), not grown by push() from empty.
      const inputs = input.map(valData);
      // fhirpath.js hands numbers over as decimal objects; the table's functions are not written for either.
      for (let i = 0; i < inputs.length; i++) if (typeof inputs[i] === 'number') bail();
      let res: unknown;
      try {
        res = arity === 0 ? fn(inputs) : arity === 1 ? fn(inputs, va) : arity === 2 ? fn(inputs, va, vb) : fn(inputs, va, vb, vc);
      } catch {
        return bail();
      }
      const out: Coll = res === undefined || res === null ? [] : Array.isArray(res) ? res : [res];
      if (stable) {
        if (!results) byInput.set(input, (results = new Map()));
        results.set(key, out);
      }
      return out;
    };
    const code = `${this.site(site)}(${[inp, ...codes].join(', ')})`;
    if (stable) this.stable.add(code);
    return code;
  }

  /** `|` (FHIRPath §6.5 union): both sides, duplicates removed (first kept), order kept. */
  private union(): (x: Coll, y: Coll) => Coll {
    const model = this.model;
    // One side empty and the other a single item (`(a | b | c).first()` over a record stating one of them): that
    // side is the result (compiled code never changes a collection). Otherwise plain loops: a closure per item for
    // some() made the union a visible allocator of an order-sign (2026-12-07).
    const add = (out: Coll, v: Item) => {
      for (let i = 0; i < out.length; i++) if (equalItems(out[i], v, model)) return;
      out.push(v);
    };
    return (x, y) => {
      if (y.length === 0 && x.length <= 1) return x.length === 0 ? NONE : x;
      if (x.length === 0 && y.length === 1) return y;
      const out: Coll = [];
      for (let i = 0; i < x.length; i++) add(out, x[i]);
      for (let i = 0; i < y.length; i++) add(out, y[i]);
      return out;
    };
  }

  /** `=` and `!=` (FHIRPath §6.1): empty when either side is empty; collections compared item by item, in order. */
  private equality(n: AstNode): (x: Coll, y: Coll) => Coll {
    const op = n.text;
    if (op !== '=' && op !== '!=') throw new Unsupported(`operator ${op}`);
    const model = this.model;
    return (x, y) => {
      if (x.length === 0 || y.length === 0) return [];
      let eq: boolean | undefined;
      if (x.length !== y.length) eq = false;
      // One item each: fhirpath.js's answer may be "not comparable" (dates of different precision), which is empty.
      else if (x.length === 1) eq = equalItems(x[0], y[0], model);
      else {
        eq = true;
        for (let i = 0; eq && i < x.length; i++) eq = equalItems(x[i], y[i], model) === true;
      }
      if (eq === undefined) return [];
      return bool(op === '=' ? eq : !eq);
    };
  }

  /** `<`, `>`, `<=`, `>=` (FHIRPath §6.2) over single numbers, strings or booleans of one type, or dates. */
  private comparison(n: AstNode): (x: Coll, y: Coll) => Coll {
    const op = operatorOf(n, ['<', '>', '<=', '>='] as const);
    return onSingletons(this.model, (l, r) => {
      let c: number;
      if (l instanceof FP_Type || r instanceof FP_Type) {
        if (!(l instanceof FP_Type && r instanceof FP_Type)) return bail();
        const cmp = fp(() => l.compare(r));
        if (cmp === null) return [];
        c = cmp;
      } else if (typeof l === 'number' && typeof r === 'number') c = compareNumbers(l, r);
      else if ((typeof l === 'string' && typeof r === 'string') || (typeof l === 'boolean' && typeof r === 'boolean')) c = l < r ? -1 : l > r ? 1 : 0;
      else return bail();
      switch (op) {
        case '<':
          return bool(c < 0);
        case '>':
          return bool(c > 0);
        case '<=':
          return bool(c <= 0);
        case '>=':
          return bool(c >= 0);
      }
    });
  }

  /** `in` and `contains` (FHIRPath §6.4 collections). */
  private membership(n: AstNode): (l: Coll, r: Coll) => Coll {
    const op = operatorOf(n, ['in', 'contains'] as const);
    const model = this.model;
    return (l, r) => {
      const item = op === 'in' ? l : r;
      const coll = op === 'in' ? r : l;
      if (item.length === 0) return [];
      if (coll.length === 0) return FALSE;
      if (item.length > 1) bail();
      // A plain loop, as some() would run it (first match ends it), without a closure per test.
      const v = item[0];
      for (let i = 0; i < coll.length; i++) if (equalItems(coll[i], v, model)) return TRUE;
      return FALSE;
    };
  }

  /** `and`, `or`, `xor`, `implies` (FHIRPath §6.5 Boolean logic): three-valued; both sides always evaluated. */
  private logic(n: AstNode): (a: Coll, b: Coll) => Coll {
    let f: (x: boolean | undefined, y: boolean | undefined) => Coll;
    switch (n.text ?? '') {
      case 'and':
        f = (x, y) => (x === false || y === false ? FALSE : x === true && y === true ? TRUE : []);
        break;
      case 'or':
        f = (x, y) => (x === true || y === true ? TRUE : x === false && y === false ? FALSE : []);
        break;
      case 'xor':
        f = (x, y) => (x === undefined || y === undefined ? [] : bool(x !== y));
        break;
      case 'implies':
        f = (x, y) => (x === false || y === true ? TRUE : x === true && y === false ? FALSE : []);
        break;
      default:
        throw new Unsupported(`operator ${n.text}`);
    }
    return (a, b) => f(singletonBoolean(a), singletonBoolean(b));
  }

  /** `+ - * /` (FHIRPath §6.6 Math) over single numbers (and `+` over strings); empty when either side is empty. */
  private arithmetic(n: AstNode): (xs: Coll, ys: Coll) => Coll {
    const op = operatorOf(n, ['+', '-', '*', '/'] as const);
    return onSingletons(this.model, (x, y) => {
      if (x instanceof FP_Type || y instanceof FP_Type) {
        // Date/time ± calendar duration (FHIRPath §6.6.5), by fhirpath.js's own arithmetic.
        if (!(x instanceof FP_Type && y instanceof FP_Type) || (op !== '+' && op !== '-')) return bail();
        const res = dateArithmetic(op, x, y);
        return res == null ? [] : [res];
      }
      if (typeof x === 'number' && typeof y === 'number') {
        switch (op) {
          case '+':
            return [x + y];
          case '-':
            return [x - y];
          case '*':
            return [x * y];
          case '/':
            return y === 0 ? [] : [x / y];
        }
      }
      if (op === '+' && typeof x === 'string' && typeof y === 'string') return [x + y];
      return bail();
    });
  }
}

/** The operator an operator node names, one of those the compiled code models; Unsupported for any other. */
function operatorOf<T extends string>(n: AstNode, ops: readonly T[]): T {
  const text = n.text ?? '';
  if (!(ops as readonly string[]).includes(text)) throw new Unsupported(`operator ${text}`);
  return text as T;
}

/**
 * A binary operator over the single items of its operands, converted to fhirpath.js's values (FHIRPath §4.5 singleton
 * evaluation): empty when either side is empty or null; more than one item is left to fhirpath.js.
 */
function onSingletons(model: ModelTables | undefined, body: (x: unknown, y: unknown) => Coll): (xs: Coll, ys: Coll) => Coll {
  return (xs, ys) => {
    if (xs.length === 0 || ys.length === 0) return [];
    if (xs.length !== 1 || ys.length !== 1) bail();
    const x = conv(xs[0], model);
    const y = conv(ys[0], model);
    return x == null || y == null ? [] : body(x, y);
  };
}

/** A function over the single item of its input, as `onSingletons` for operators (FHIRPath §4.5). */
function onSingleton(model: ModelTables | undefined, body: (v: unknown) => Coll): (input: Coll) => Coll {
  return (input) => {
    if (input.length === 0) return [];
    if (input.length > 1) bail();
    const v = conv(input[0], model);
    return v == null ? [] : body(v);
  };
}

/** fhirpath.js's order of two decimals: at 8 places; a bail where unrounded order would differ (raw numbers). */
function compareNumbers(a: number, b: number): number {
  const ra = round8(a);
  const rb = round8(b);
  const c = ra < rb ? -1 : ra > rb ? 1 : 0;
  const plain = a < b ? -1 : a > b ? 1 : 0;
  if (c !== plain) bail();
  return c;
}

/**
 * fhirpath.js's `max()` / `min()` (FHIRPath §5.8 aggregates, its minMaxShortcutTemplate): the first item, replaced by
 * each later one that is greater (`sign` 1) or less (-1); a null item empties the result. Numbers compare as numbers,
 * plain strings (e.g. dates cut with `toString().substring(0, 10)`) as fhirpath.js compares them, by code unit; any
 * other value (a FHIR date node, a Quantity, mixed kinds, which fhirpath.js compares by its own types) bails.
 */
function extreme(model: ModelTables | undefined, sign: 1 | -1): (input: Coll) => Coll {
  const orderable = (x: Item): number | string => {
    const v = conv(x, model);
    return typeof v === 'number' || typeof v === 'string' ? v : bail();
  };
  return (input) => {
    if (input.length === 0 || valData(input[0]) == null) return [];
    let best = input[0];
    let bestValue = orderable(best);
    for (let x = 1; x < input.length; x++) {
      if (valData(input[x]) == null) return [];
      const v = orderable(input[x]);
      if (typeof v !== typeof bestValue) return bail();
      const order = typeof v === 'number' ? compareNumbers(v, bestValue as number) : v > bestValue ? 1 : v < bestValue ? -1 : 0;
      if (order * sign > 0) {
        best = input[x];
        bestValue = v;
      }
    }
    return [best];
  };
}

function numberOf(x: Item, model: ModelTables | undefined): number | undefined {
  const v = conv(x, model);
  if (v == null) return undefined;
  return typeof v === 'number' ? v : bail();
}

/** A `where`/`exists` criterion: fhirpath.js keeps an item when the first result is truthy (numbers bail). */
function truthy(c: Coll): boolean {
  if (c.length === 0) return false;
  const v = c[0];
  if (typeof v === 'number') return bail();
  return !!v;
}

/** Whether two collections have an item in common (the root has one item, `$this` usually one too). */
function sharesItem(a: Coll, b: Coll): boolean {
  for (let i = 0; i < a.length; i++) for (let j = 0; j < b.length; j++) if (a[i] === b[j]) return true;
  return false;
}

function nodeOf(x: unknown, path: string | null, type: string | null): Node {
  if (x !== null && typeof x === 'object') {
    const rt = (x as { resourceType?: unknown }).resourceType;
    if (rt) return typeof rt === 'string' ? new Node(x, rt, rt) : bail();
  }
  return new Node(x, path, type);
}

/** The namespace and name of an element's declared type (`System.X` or a FHIR type), when the model gave it one. */
function elementType(x: Item): [string, string] | undefined {
  if (!(x instanceof Node) || x.t === null) return undefined;
  let typed = elementTypes.get(x.t);
  if (typed === undefined) {
    const m = /^System\.(.*)$/.exec(x.t);
    typed = m ? ['System', m[1]] : ['FHIR', x.t];
    elementTypes.set(x.t, typed);
  }
  return typed;
}
/**
 * elementType's answers by type name (a few hundred at most: the model's types): a match and a pair per `ofType()`
 * and type test item were made afresh. The pairs are shared, so never changed: callers only read them.
 */
const elementTypes = new Map<string, [string, string]>();

/**
 * The System type of a number, string or boolean, as fhirpath.js names it; undefined for anything else. A decimal's
 * type depends on its text in fhirpath.js (1.0 is a Decimal): numbers outside elements, and exponent forms, bail.
 */
function primitiveType(x: Item, v: unknown): string | undefined {
  if (typeof v === 'number') {
    const text = String(v);
    if (!(x instanceof Node) || /e/i.test(text)) return bail();
    return text.includes('.') ? 'Decimal' : 'Integer';
  }
  if (typeof v === 'string') return 'String';
  if (typeof v === 'boolean') return 'Boolean';
  return undefined;
}

/** fhirpath.js's `makeResNode(item).getTypeInfo().is(TypeInfo({ name }))`, for a root identifier that may be a type. */
function typeIs(x: Item, name: string, model: ModelTables | undefined): boolean {
  let ns: string;
  let typeName: string;
  const typed = elementType(x);
  if (typed) [ns, typeName] = typed;
  else {
    const v = valData(x);
    if (v instanceof FP_Type) return bail();
    const rt = v !== null && typeof v === 'object' ? (v as { resourceType?: unknown }).resourceType : undefined;
    if (typeof rt === 'string' && rt) [ns, typeName] = ['FHIR', rt];
    else {
      ns = 'System';
      typeName = primitiveType(x, v) ?? (v !== null && typeof v === 'object' && !Array.isArray(v) ? 'Object' : bail());
    }
  }
  return model && ns === 'FHIR' ? isType(typeName, name, model) : typeName === name;
}

/** A type named in `ofType()` (FHIRPath §Types): namespace and name, checked against the model at compile time. */
function typeSpecifier(a: AstNode, model: ModelTables | undefined): { ns?: string; name: string } {
  const text = a.text ?? '';
  if (!/^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)?$/.test(text)) throw new Unsupported(`type ${text}`);
  const parts = text.split('.');
  const spec = parts.length === 2 ? { ns: parts[0], name: parts[1] } : { name: parts[0] };
  const valid =
    spec.ns === 'System' ? SYSTEM_TYPES.has(spec.name) : spec.ns === 'FHIR' ? !!model?.availableTypes.has(spec.name) : spec.ns === undefined && (SYSTEM_TYPES.has(spec.name) || !!model?.availableTypes.has(spec.name));
  if (!valid || !model) throw new Unsupported(`type ${text}`);
  return spec;
}

/** fhirpath.js's `TypeInfo.fromValue(x).isConvertibleTo(spec)`. */
function convertibleTo(x: Item, spec: { ns?: string; name: string }, model: ModelTables | undefined): boolean {
  let ns: string;
  let name: string;
  const typed = elementType(x);
  if (typed) [ns, name] = typed;
  else {
    ns = 'System';
    name = primitiveType(x, valData(x)) ?? bail();
  }
  if (ns === 'FHIR' && (!spec.ns || spec.ns === 'System') && FHIR_TO_SYSTEM[name] === spec.name) return true;
  if (!spec.ns || ns === spec.ns) return ns === 'FHIR' ? isType(name, spec.name, model) : name === spec.name;
  return false;
}

/** fhirpath.js's string literal text (quotes and escapes) → its value. */
function stringLiteral(text: string): string {
  return text.slice(1, -1).replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_m, e: string) => {
    if (e.length > 1) return String.fromCharCode(parseInt(e.slice(1), 16));
    return ({ r: '\r', n: '\n', t: '\t', f: '\f' } as Record<string, string>)[e] ?? e;
  });
}
