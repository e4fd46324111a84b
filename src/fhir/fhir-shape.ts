import shapesFile from './fhir-shapes.json' with { type: 'json' };

/**
 * Checks that a value is FHIR R4 JSON of the shape every reader in PriorPath assumes (FHIR R4 json.html: arrays for
 * elements with max > 1 and single values otherwise, primitives of their JSON kind, no `null` outside primitive
 * arrays, date/time formats, strings without control characters), before any code reads it. One leniency: a single
 * object where FHIR has an array of objects is wrapped into a one-item array in place. Unknown properties are
 * left alone (later versions and extensions of real EHRs add some); a wrong kind for a known one is a problem named
 * by its path, which the edges answer as a 400 OperationOutcome (design.md §4 "Errors").
 *
 * The element table is generated from the FHIR StructureDefinitions (`npx tsx scripts/generate-fhir-shapes.ts`).
 */
type Shapes = Record<string, Record<string, [string, 0 | 1]>>;
/** An element's type and whether it repeats (1), by element name. */
type Table = Map<string, readonly [string, 0 | 1]>;
/**
 * The element tables as Maps, built once at load: looking a property up in the generated JSON's objects (hundreds of
 * types, some with a hundred elements, read with whatever key the body has) was the largest part of the check's cost.
 */
const SHAPES: ReadonlyMap<string, Table> = new Map(Object.entries(shapesFile.types as unknown as Shapes).map(([type, table]) => [type, new Map(Object.entries(table))]));

const YEAR = '([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)';
const MONTH = '(0[1-9]|1[0-2])';
const DAY = '(0[1-9]|[1-2][0-9]|3[0-1])';
const TIME = '([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?';
const ZONE = '(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))';
/** Formats from the FHIR R4 datatypes page (regex of each primitive). */
const FORMATS: Record<string, RegExp> = {
  date: new RegExp(`^${YEAR}(-${MONTH}(-${DAY})?)?$`),
  dateTime: new RegExp(`^${YEAR}(-${MONTH}(-${DAY}(T${TIME}${ZONE})?)?)?$`),
  instant: new RegExp(`^${YEAR}-${MONTH}-${DAY}T${TIME}${ZONE}$`),
  time: new RegExp(`^${TIME}$`),
  id: /^[A-Za-z0-9\-.]{1,64}$/,
};
const NUMBER_TYPES = ['decimal', 'integer', 'positiveInt', 'unsignedInt'];
/**
 * What a primitive type's value is checked against beyond being a string: a number type, or its format. One Map
 * lookup per primitive checked: a Set lookup and then a property read of FORMATS with every primitive type's name (a
 * keyed load that never settles on one name) were most of checkPrimitive.
 */
const PRIMITIVE_RULES: ReadonlyMap<string, 'number' | RegExp> = new Map<string, 'number' | RegExp>([
  ...NUMBER_TYPES.map((t) => [t, 'number'] as const),
  ...Object.entries(FORMATS),
]);

/**
 * Characters FHIR strings may not hold (R4 datatypes "string": no code points below 32 except tab, LF, CR) and
 * unpaired UTF-16 surrogates, which no storage or JSON peer can keep faithfully.
 */
// eslint-disable-next-line no-control-regex -- these control characters are exactly what is refused
export const FORBIDDEN_CHARACTERS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A value that is not FHIR JSON of the expected shape: what is wrong and where (a FHIRPath-like path). */
export class ShapeError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
    this.name = 'ShapeError';
  }
}

/**
 * Whether paths are being built. A request's resources are checked first without them (most bodies are valid, and
 * a path string per property was a good part of the check's cost and garbage); a body that fails is checked again
 * with them, to name where (assertFhirResource). Synchronous, so one flag serves the module.
 */
let tracking = false;
const child = (path: string, key: string) => (tracking ? `${path}.${key}` : path);
const itemAt = (path: string, i: number) => (tracking ? `${path}[${i}]` : path);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`);

/** Whether `type` names a FHIR resource type PriorPath can check (R4). */
export function isKnownResourceType(type: string): boolean {
  if (type === 'Resource' || type === 'DomainResource') return false;
  const t = SHAPES.get(type);
  return t !== undefined && t.has('meta') && t.has('implicitRules');
}

function checkString(v: string, path: string): void {
  if (FORBIDDEN_CHARACTERS.test(v)) throw new ShapeError(path, 'contains a control character or an unpaired surrogate (not allowed in FHIR strings)');
}

function checkPrimitive(v: unknown, type: string, path: string): void {
  if (type === 'boolean') {
    if (typeof v !== 'boolean') throw new ShapeError(path, `must be a boolean, not ${kind(v)}`);
    return;
  }
  const rule = PRIMITIVE_RULES.get(type);
  if (rule === 'number') {
    if (typeof v !== 'number') throw new ShapeError(path, `must be a number (${type}), not ${kind(v)}`);
    if (type !== 'decimal' && !Number.isInteger(v)) throw new ShapeError(path, `must be a whole number (${type})`);
    if (type === 'positiveInt' && v < 1) throw new ShapeError(path, 'must be 1 or more (positiveInt)');
    if (type === 'unsignedInt' && v < 0) throw new ShapeError(path, 'must not be negative (unsignedInt)');
    return;
  }
  if (typeof v !== 'string') throw new ShapeError(path, `must be a string (${type}), not ${kind(v)}`);
  checkString(v, path);
  if (rule !== undefined && !rule.test(v)) throw new ShapeError(path, `is not a valid FHIR ${type}`);
}

/**
 * FHIR's primitive types are the lower-case ones. Read from the first character's code: a regular expression test here,
 * once per property checked, left about 20 KB of garbage per hook.
 */
const isPrimitiveType = (type: string) => {
  const c = type.charCodeAt(0);
  return c >= 97 && c <= 122;
};

function checkElement(v: unknown, type: string, path: string): void {
  if (isPrimitiveType(type)) return checkPrimitive(v, type, path);
  if (!isObject(v)) throw new ShapeError(path, `must be an object (${type}), not ${kind(v)}`);
  if (type === 'Resource') return checkResource(v, path);
  checkProperties(v, SHAPES.get(type), path);
}

function checkProperties(obj: Record<string, unknown>, table: Table | undefined, path: string): void {
  for (const key in obj) {
    const value = obj[key];
    // A key the table knows is a FHIR element name (letters only): only the others can hold a forbidden character.
    // Own entries only: a property named like an Object.prototype member (constructor, toString, __proto__) is an
    // element the table does not know, not the prototype's function (a Map has no such members).
    const spec = table?.get(key);
    if (spec === undefined) checkString(key, path);
    const at = child(path, key);
    if (key === 'resourceType') continue;
    if (key.startsWith('_')) {
      // Extensions and ids of primitives (json.html "Representing primitive elements"): an Element or an array of them.
      if (Array.isArray(value)) value.forEach((x, i) => x === null || checkElement(x, 'Element', itemAt(at, i)));
      else checkElement(value, 'Element', at);
      continue;
    }
    if (!spec) {
      checkUnknown(value, at);
      continue;
    }
    // Read by index: destructuring the pair goes through the array iterator, an allocation per property checked.
    const type = spec[0];
    const many = spec[1];
    if (many) {
      let list = value;
      // A lenient reader's one concession (the CDS Hooks Sandbox sends MedicationRequest.category as an object):
      // a single object where FHIR has an array of objects is read as a one-item array, rewritten in place so every
      // reader sees the FHIR shape.
      if (isObject(value) && !isPrimitiveType(type)) obj[key] = list = [value];
      if (!Array.isArray(list)) throw new ShapeError(at, `must be an array, not ${kind(value)}`);
      for (let i = 0; i < list.length; i++) {
        const item: unknown = list[i];
        // null keeps a primitive array aligned with its `_name` array of extensions; nowhere else is it allowed.
        if (item === null && isPrimitiveType(type)) continue;
        if (item === null) throw new ShapeError(itemAt(at, i), 'must not be null');
        checkElement(item, type, itemAt(at, i));
      }
    } else {
      if (Array.isArray(value)) throw new ShapeError(at, `must be a single value, not an array`);
      if (value === null) throw new ShapeError(at, 'must not be null (leave the property out)');
      checkElement(value, type, at);
    }
  }
}

/** Properties the table does not know: no rule on their shape, but their strings still carry no control characters. */
function checkUnknown(value: unknown, path: string): void {
  if (typeof value === 'string') checkString(value, path);
  else if (Array.isArray(value)) value.forEach((x, i) => checkUnknown(x, itemAt(path, i)));
  else if (isObject(value)) for (const k in value) checkUnknown(value[k], child(path, k));
}

function checkResource(obj: Record<string, unknown>, path: string): void {
  const type = obj.resourceType;
  if (typeof type !== 'string') throw new ShapeError(`${path}.resourceType`, `must be a string naming a FHIR resource type, not ${kind(type)}`);
  if (!isKnownResourceType(type)) throw new ShapeError(`${path}.resourceType`, `${JSON.stringify(type.slice(0, 64))} is not a FHIR R4 resource type`);
  if (obj.id !== undefined && (typeof obj.id !== 'string' || !FORMATS.id.test(obj.id))) {
    throw new ShapeError(`${path}.id`, 'must be a FHIR id (1 to 64 letters, digits, "-" or ".")');
  }
  checkProperties(obj, SHAPES.get(type), path);
}

/**
 * Throws a ShapeError naming the first place where `value` is not a FHIR R4 resource of the JSON shape the
 * specification defines. `path` is where the value sits in the request (e.g. `prefetch.patient`); by default its
 * resourceType.
 */
export function assertFhirResource(value: unknown, path?: string): void {
  const at = path ?? (isObject(value) && typeof value.resourceType === 'string' ? value.resourceType : '(root)');
  if (!isObject(value)) throw new ShapeError(at, `must be a FHIR resource (a JSON object), not ${kind(value)}`);
  try {
    checkResource(value, at);
  } catch (err) {
    if (!(err instanceof ShapeError)) throw err;
    // Again, naming the place (the check is deterministic, and its one rewrite, an object into a one-item array, is
    // idempotent); the first error stands if the second pass somehow passes.
    tracking = true;
    try {
      checkResource(value, at);
    } finally {
      tracking = false;
    }
    throw err;
  }
}
