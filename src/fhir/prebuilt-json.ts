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
  deepFreeze(resource);
  return resource;
}

function deepFreeze(value: unknown): void {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const v of Object.values(value)) deepFreeze(v);
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
      text += '[';
      for (let i = 0; i < v.length; i++) {
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
