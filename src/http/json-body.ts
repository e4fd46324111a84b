import { createHash } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { badRequest, payloadTooLarge, unsupportedMediaType } from '../errors.js';
import { FORBIDDEN_CHARACTERS, ShapeError, assertFhirResource } from '../fhir/fhir-shape.js';

/** design.md §4 "Errors": bodies over 1 MiB are refused, with or without Content-Length. */
export const MAX_BODY_BYTES = 1_048_576;
/**
 * The default limit of the bodies that carry attachments as base64 (a PAS request or inquiry, a DTR QuestionnaireResponse
 * and its `$next-question`): the contract's 1 MiB (design.md §4 "Errors", every route), unless the payer raises it with
 * ATTACHMENT_BODY_MAX_BYTES, up to {@link MAX_ATTACHMENT_BODY_BYTES} (8 MiB holds a 5 MB scanned PDF, base64 adding a
 * third, with its request); hooks stay at 1 MiB whatever it says.
 */
export const DEFAULT_ATTACHMENT_BODY_BYTES = MAX_BODY_BYTES;
/** The largest ATTACHMENT_BODY_MAX_BYTES: a refused body is drained up to 16 MiB (DRAIN_LIMIT_BYTES) so its sender reads the 413. */
export const MAX_ATTACHMENT_BODY_BYTES = 16 * 1_048_576;
/** design.md §4 "Errors": JSON nested deeper than this is a 400. */
export const MAX_JSON_DEPTH = 64;

const JSON_TYPES = /^application\/(json|fhir\+json|json\+fhir)\s*(;|$)/i;

/**
 * Whether a parsed JSON value nests deeper than `limit` (objects and arrays each count one level). Walks the parsed
 * value depth first and stops at the first branch past the limit, so it costs little on ordinary bodies; the
 * recursion itself never goes more than `limit` + 1 calls deep. It allocates nothing (an explicit stack of
 * [value, depth] pairs cost every hook about 13 KB of garbage).
 */
export function deeperThan(value: unknown, limit: number, depth = 1): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (depth > limit) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (deeperThan(value[i], limit, depth + 1)) return true;
  } else {
    for (const key in value) if (deeperThan((value as Record<string, unknown>)[key], limit, depth + 1)) return true;
  }
  return false;
}

/** A JSON text may hold a forbidden character only as a `\\u` escape: control characters and surrogates. */
const SUSPECT_ESCAPE = /\\u(00[01][0-9a-fA-F]|[dD][89a-fA-F][0-9a-fA-F]{2})/;

/**
 * The path of the first string (value or key) holding a control character other than tab, LF and CR, or an
 * unpaired surrogate; undefined when there is none.
 */
export function forbiddenCharacterPath(value: unknown, path = '(root)'): string | undefined {
  if (typeof value === 'string') return FORBIDDEN_CHARACTERS.test(value) ? path : undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = forbiddenCharacterPath(value[i], `${path}[${i}]`);
      if (found) return found;
    }
  } else if (value !== null && typeof value === 'object') {
    for (const key in value) {
      const at = path === '(root)' ? key : `${path}.${key}`;
      if (FORBIDDEN_CHARACTERS.test(key)) return at;
      const found = forbiddenCharacterPath((value as Record<string, unknown>)[key], at);
      if (found) return found;
    }
  }
  return undefined;
}

/**
 * Checks a parsed body before any handler reads it (design.md §4 "Errors"): control characters (other than tab,
 * LF, CR) and unpaired surrogates are refused anywhere, as FHIR R4 forbids them in strings and PostgreSQL cannot
 * store NUL; a FHIR resource (a body with a resourceType) must have the JSON shape FHIR defines. Throws a 400
 * naming the path.
 */
export function checkBody(text: string, parsed: unknown): void {
  if (SUSPECT_ESCAPE.test(text)) {
    const path = forbiddenCharacterPath(parsed);
    if (path) {
      throw badRequest(`${path}: control characters (other than tab, line feed, carriage return) and unpaired surrogates are not accepted`, [path]);
    }
  }
  if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) && typeof (parsed as { resourceType?: unknown }).resourceType === 'string') {
    try {
      assertFhirResource(parsed);
    } catch (err) {
      if (err instanceof ShapeError) throw badRequest(`Invalid FHIR JSON: ${err.message}`, [err.path]);
      throw err;
    }
  }
}

const bodyDigests = new WeakMap<object, string>();

/**
 * The SHA-256 (base64) of the bytes a parsed JSON body was read from, for a body object that `jsonBody(limit, true)`
 * produced, so a handler can key a cache on the bytes without serialising the parsed value again. The digest is kept,
 * not the bytes: a hook's body (about 11 KB) would otherwise stay allocated outside V8's heap until the old generation
 * is next collected, as the request outlives young-generation collections (README "Memory").
 */
export function bodyDigestOf(body: unknown): string | undefined {
  return body !== null && typeof body === 'object' ? bodyDigests.get(body) : undefined;
}

/**
 * The parser's complaint without the body's text: V8 quotes the JSON around the error ("Unexpected token 'M', \"Maria
 * Gonz\"... is not valid JSON"), which would put patient data into the answer and the log. Keeps only the position.
 */
function malformedJson(err: Error, text: string): string {
  const at = /position (\d+)/.exec(err.message);
  if (at) return `Malformed JSON at position ${at[1]}`;
  // V8 gives no position for a body that ends inside its JSON ("Unexpected end of JSON input", a truncated upload):
  // the position is where the body ends, so every malformed body is answered with one (README "Errors").
  return `Malformed JSON at position ${text.length}: the body ends before its JSON does`;
}

/** After a 413, how much more of the refused body is read and discarded before the connection is closed. */
export const DRAIN_LIMIT_BYTES = 16 * 1_048_576;
/** ... and for how long. */
export const DRAIN_LIMIT_MS = 10_000;

/**
 * Discards the rest of a refused body so that the client, still sending, reads the 413 instead of a reset
 * (closing a socket the peer is writing to makes its kernel answer with RST, which discards the unread response).
 * The connection stays usable when the body ends within the bounds; past them (a client streaming gigabytes) the
 * socket is closed once the 413 has been flushed.
 */
function drainRefused(req: Request, res: Response, alreadyRead: number): void {
  let drained = alreadyRead;
  const socket = req.socket;
  const close = () => {
    cleanup();
    if (res.writableFinished) socket.destroy();
    else res.once('finish', () => socket.destroy());
  };
  const timer = setTimeout(close, DRAIN_LIMIT_MS);
  timer.unref();
  const onData = (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > DRAIN_LIMIT_BYTES) close();
  };
  const cleanup = () => {
    clearTimeout(timer);
    req.off('data', onData);
    req.off('end', cleanup);
    req.off('close', cleanup);
  };
  req.on('data', onData);
  req.on('end', cleanup);
  req.on('close', cleanup);
  req.resume();
}

/**
 * Reads a JSON request body with a hard byte limit, counting bytes as they arrive so chunked bodies without
 * Content-Length are bounded too. Sets `req.body`; errors are OperationOutcome HttpErrors (413, 415, 400). A refused
 * body is drained (bounded) rather than cut off, so the client reads its 413. With `digest`, the bytes' SHA-256 is
 * remembered for `bodyDigestOf`.
 */
export function jsonBody(limit = MAX_BODY_BYTES, digest = false) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.method !== 'POST' && req.method !== 'PUT') return next();
    const declared = Number(req.headers['content-length'] ?? Number.NaN);
    if (Number.isFinite(declared) && declared > limit) {
      drainRefused(req, res, 0);
      return next(payloadTooLarge(limit));
    }
    const type = req.headers['content-type'];
    // A compressed body is not JSON as sent (RFC 9110 §15.5.16: 415 for a content coding the server does not take).
    const coding = req.headers['content-encoding'];
    if (!type || !JSON_TYPES.test(type) || (coding !== undefined && coding.trim().toLowerCase() !== 'identity')) {
      drainRefused(req, res, 0);
      return next(unsupportedMediaType());
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err?: unknown) => {
      if (done) return;
      done = true;
      next(err);
    };
    const onData = (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        chunks.length = 0;
        req.off('data', onData);
        drainRefused(req, res, size);
        finish(payloadTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('error', () => finish(badRequest('Request body could not be read')));
    req.on('end', () => {
      if (done) return;
      // A body of one chunk (most hooks: one read of the socket) is decoded where it lies, not copied first.
      const raw = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      chunks.length = 0;
      const text = raw.toString('utf8');
      if (text.trim().length === 0) return finish(badRequest('Request body is empty; expected a JSON object'));
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        // A pathologically deep body can exhaust the parser's stack: it is refused the same way as any deep body.
        if (err instanceof RangeError) return finish(badRequest(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`));
        return finish(badRequest(malformedJson(err as Error, text)));
      }
      if (deeperThan(parsed, MAX_JSON_DEPTH)) return finish(badRequest(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`));
      // Every body this service takes is an object (a CDS Hooks request, a FHIR resource, a reviewer's decision):
      // null, an array or a bare value is refused here, before a handler reads a property of it.
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        return finish(badRequest(`Request body must be a JSON object, not ${parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : `a ${typeof parsed}`}`));
      }
      try {
        checkBody(text, parsed);
      } catch (err) {
        return finish(err);
      }
      // Hashed only now: an empty, malformed or refused body is never a cache key, so it costs no hash.
      if (digest) bodyDigests.set(parsed, createHash('sha256').update(raw).digest('base64'));
      req.body = parsed;
      finish();
    });
  };
}
