/**
 * JSON text for resources that never change after content loads (Questionnaires, Libraries, ValueSets): serialised
 * once, as UTF-8 bytes, and spliced into every response that carries them. A `$questionnaire-package` response is
 * about 800 KB, nearly all of it such resources (the FHIRHelpers Library alone is 650 KB of base64 ELM), and
 * serialising and encoding it again on every request was most of the operation's cost (design.md §9).
 */
const prebuilt = new WeakMap<object, Buffer>();
/** The prebuilt bytes themselves, so a writer can recognise them among a response's chunks. */
const prebuiltBuffers = new WeakSet<Buffer>();

/**
 * Freezes a resource deeply and remembers its JSON bytes. Frozen, so code that tried to change it later would throw
 * instead of having its change silently missing from the responses. Returns the same object.
 */
export function prebuildJson<T extends object>(resource: T): T {
  if (prebuilt.has(resource)) return resource;
  const bytes = Buffer.from(JSON.stringify(resource), 'utf8');
  prebuilt.set(resource, bytes);
  prebuiltBuffers.add(bytes);
  readLongStringsFromBytes(resource, bytes);
  deepFreeze(resource);
  return resource;
}

/**
 * The leading items of an array that are the same in every response (a package Bundle's Questionnaire, Library and
 * ValueSet entries), serialised once: `pieces` are the JSON of `[` and those items (no closing bracket), the items'
 * prebuilt resources as their shared bytes and the text between them (the entries' `fullUrl`s) encoded once.
 */
interface PrebuiltHead {
  items: readonly object[];
  pieces: Buffer[];
}

/** By the head's first item: an array starting with it is checked item by item before its head is used. */
const heads = new WeakMap<object, PrebuiltHead>();
/** By a head's first piece: what `prebuiltRunOf` answers. */
const runs = new WeakMap<Buffer, Buffer[]>();

/**
 * Freezes `items` (objects whose resources are prebuilt, e.g. `{ fullUrl, resource }` entries) and remembers the JSON
 * of an array that starts with them, so that `jsonChunks` writes any array starting with these very objects (identity,
 * item by item) from pieces made once. Returns the frozen items; build each response's array from them
 * (`[...items, perRequest]`).
 */
export function prebuildArrayHead<T extends object>(items: T[]): readonly T[] {
  const frozen = Object.freeze([...items]);
  if (frozen.length === 0) return frozen;
  for (const item of frozen) deepFreeze(item);
  const pieces: Buffer[] = [];
  let text = '[';
  for (let i = 0; i < frozen.length; i++) {
    if (i > 0) text += ',';
    for (const chunk of jsonChunks(frozen[i])) {
      if (prebuiltBuffers.has(chunk)) {
        if (text) pieces.push(Buffer.from(text, 'utf8'));
        text = '';
        pieces.push(chunk);
      } else text += chunk.toString('utf8');
    }
  }
  if (text) pieces.push(Buffer.from(text, 'utf8'));
  const joined = joinSmallPieces(pieces);
  // Every piece of a head is unchanging: a writer may keep their encodings (isPrebuiltChunk).
  for (const piece of joined) prebuiltBuffers.add(piece);
  heads.set(frozen[0], { items: frozen, pieces: joined });
  runs.set(joined[0], joined);
  return frozen;
}

/** Below this size a piece is joined with its small neighbours rather than written alone. */
const SMALL_PIECE = 16_384;

/**
 * Joins each run of small pieces into one buffer; the large pieces stay as they are, never copied. Every socket `write`
 * costs a stream request whatever its size, so a response of many small pieces (envelope text, DEFLATE block headers,
 * the entries' `fullUrl`s, small ValueSets) goes out as a few; a prebuilt array head joins its runs once
 * (prebuildArrayHead), so a package written plain does not copy them per request.
 */
export function joinSmallPieces(pieces: readonly Buffer[], small = SMALL_PIECE): Buffer[] {
  const out: Buffer[] = [];
  let run: Buffer[] = [];
  const close = () => {
    if (run.length > 0) out.push(run.length === 1 ? run[0] : Buffer.concat(run));
    run = [];
  };
  for (const piece of pieces) {
    if (piece.length < small) run.push(piece);
    else {
      close();
      out.push(piece);
    }
  }
  close();
  return out;
}

/**
 * When `piece` starts the pieces of an array head (prebuildArrayHead), those pieces: a gzip writer may encode the run
 * as one segment, made once (better compressed than its pieces apart, and one piece to write instead of dozens).
 */
export function prebuiltRunOf(piece: Buffer): readonly Buffer[] | undefined {
  return runs.get(piece);
}

/**
 * Attachment `data` (base64) at least this long is kept once, in the prebuilt bytes: a Library's CQL and ELM, 3.7 MB
 * in all, which nothing reads on a request's path (a response carries the bytes). Other long strings (a form's CQL
 * expressions, evaluated on DTR requests) stay as they are.
 */
const LONG_STRING = 4096;
/** Characters JSON.stringify writes as they are (printable ASCII but `"` and `\`): such a string is its own JSON text. */
const VERBATIM_IN_JSON = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * Turns each long `data` string of `resource` whose JSON text is the string itself into a getter that reads it back from the
 * resource's prebuilt bytes, so the heap does not hold it a second time. Reading one (JSON.stringify of the resource
 * inside something else, a digest, decoding a Library's ELM) gives the same string; it is rarely read, because
 * responses carry the bytes. The walk follows JSON.stringify's order, so each string is found at its own place.
 */
function readLongStringsFromBytes(resource: object, bytes: Buffer): void {
  let cursor = 0;
  const visit = (value: object): void => {
    for (const key of Object.keys(value)) {
      const v: unknown = (value as Record<string, unknown>)[key];
      if (v !== null && typeof v === 'object') {
        // A frozen part is shared with a resource prebuilt before (its strings stay as they are).
        if (typeof (v as { toJSON?: unknown }).toJSON !== 'function' && !Object.isFrozen(v)) visit(v);
        continue;
      }
      if (key !== 'data' || typeof v !== 'string' || v.length < LONG_STRING || !VERBATIM_IN_JSON.test(v) || !Object.getOwnPropertyDescriptor(value, key)?.configurable) continue;
      const at = bytes.indexOf(`"${v}"`, cursor, 'latin1');
      if (at < 0) continue;
      const start = at + 1;
      const end = start + v.length;
      cursor = end + 1;
      Object.defineProperty(value, key, { enumerable: true, configurable: true, get: () => bytes.toString('latin1', start, end) });
    }
  };
  if (!Object.isFrozen(resource)) visit(resource);
}

/** Freezes a value and what it holds; a getter (a string kept in the prebuilt bytes) is not called. */
function deepFreeze(value: unknown): void {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const d of Object.values(Object.getOwnPropertyDescriptors(value))) if ('value' in d) deepFreeze(d.value);
}

/**
 * `JSON.stringify(value)` as UTF-8 bytes, byte for byte, in pieces: the remembered bytes of prebuilt resources as they
 * are (shared, never copied) and the rest (the response envelope and what is built per request) encoded between
 * them. Writing the pieces one after another (a socket's writev) sends the same bytes as `jsonBytes` without copying
 * a megabyte per response. Walks only the parts of the value that are not prebuilt.
 */
export function jsonChunks(value: unknown): Buffer[] {
  const chunks: Buffer[] = [];
  let text = '';
  const flush = () => {
    if (text) chunks.push(Buffer.from(text, 'utf8'));
    text = '';
  };
  const write = (v: unknown): void => {
    if (v === null || typeof v !== 'object' || typeof (v as { toJSON?: unknown }).toJSON === 'function') {
      text += JSON.stringify(v) ?? 'null';
      return;
    }
    const bytes = prebuilt.get(v);
    if (bytes) {
      flush();
      chunks.push(bytes);
      return;
    }
    // A resource built for this response (a pre-filled QuestionnaireResponse, an OperationOutcome) holds no prebuilt
    // resource worth splicing: the engine's own JSON.stringify writes it, and the bytes are the same either way.
    const type = (v as { resourceType?: unknown }).resourceType;
    if (typeof type === 'string' && type !== 'Bundle' && type !== 'Parameters') {
      text += JSON.stringify(v);
      return;
    }
    if (Array.isArray(v)) {
      const head = v.length > 0 && v[0] !== null && typeof v[0] === 'object' ? heads.get(v[0] as object) : undefined;
      let from = 0;
      if (head && head.items.length <= v.length && head.items.every((item, i) => v[i] === item)) {
        // The same objects, frozen since their bytes were made: the same bytes.
        flush();
        for (const piece of head.pieces) chunks.push(piece);
        from = head.items.length;
      } else text += '[';
      for (let i = from; i < v.length; i++) {
        if (i > 0) text += ',';
        const item: unknown = v[i];
        // As JSON.stringify: undefined, functions and symbols in an array are written as null.
        if (item === undefined || typeof item === 'function' || typeof item === 'symbol') text += 'null';
        else write(item);
      }
      text += ']';
      return;
    }
    text += '{';
    let first = true;
    for (const key of Object.keys(v)) {
      const item: unknown = (v as Record<string, unknown>)[key];
      if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
      if (!first) text += ',';
      first = false;
      text += `${JSON.stringify(key)}:`;
      write(item);
    }
    text += '}';
  };
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return [];
  write(value);
  flush();
  return chunks;
}

/** Whether a chunk from `jsonChunks` is a prebuilt resource's bytes (never changes, so its encodings can be kept). */
export function isPrebuiltChunk(chunk: Buffer): boolean {
  return prebuiltBuffers.has(chunk);
}
