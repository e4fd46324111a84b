/**
 * JSON text for resources that never change after content loads (Questionnaires, Libraries, ValueSets): serialised
 * once, as UTF-8 bytes, and spliced into every response that carries them. A `$questionnaire-package` response is
 * about 800 KB, nearly all of it such resources (the FHIRHelpers Library alone is 650 KB of base64 ELM), and
 * serialising and encoding it again on every request was most of the operation's cost (design.md §9).
 */
const prebuilt = new WeakMap<object, Buffer>();

/**
 * Freezes a resource deeply and remembers its JSON bytes. Frozen, so code that tried to change it later would throw
 * instead of having its change silently missing from the responses. Returns the same object.
 */
export function prebuildJson<T extends object>(resource: T): T {
  if (prebuilt.has(resource)) return resource;
  prebuilt.set(resource, Buffer.from(JSON.stringify(resource), 'utf8'));
  deepFreeze(resource);
  return resource;
}

function deepFreeze(value: unknown): void {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const v of Object.values(value)) deepFreeze(v);
}

/**
 * `JSON.stringify(value)` as UTF-8 bytes, byte for byte, with the remembered bytes of prebuilt resources spliced in.
 * Walks only the parts of the value that are not prebuilt (the response envelope and what is built per request).
 */
export function jsonBytes(value: unknown): Buffer {
  const chunks: (string | Buffer)[] = [];
  let text = '';
  const flush = () => {
    if (text) chunks.push(text);
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
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return Buffer.alloc(0);
  write(value);
  flush();
  return Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c, 'utf8') : c)));
}
