import type { NextFunction, Request, Response } from 'express';
import { badRequest, payloadTooLarge, unsupportedMediaType } from '../errors.js';

/** design.md §4 "Errors": bodies over 1 MiB are refused, with or without Content-Length. */
export const MAX_BODY_BYTES = 1_048_576;
/** design.md §4 "Errors": JSON nested deeper than this is a 400. */
export const MAX_JSON_DEPTH = 64;

const JSON_TYPES = /^application\/(json|fhir\+json|json\+fhir)\s*(;|$)/i;

/** Nesting depth of a JSON text, counted without parsing (strings are skipped). */
export function jsonDepth(text: string): number {
  // Jump from one structural character to the next instead of visiting every character: bodies are mostly strings.
  const structural = /["{}[\]]/g;
  let depth = 0;
  let max = 0;
  let m: RegExpExecArray | null;
  while ((m = structural.exec(text)) !== null) {
    const ch = m[0];
    if (ch === '"') {
      // Skip to the closing quote, stepping over escaped ones.
      let i = m.index + 1;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) return max;
        let backslashes = 0;
        for (let k = q - 1; k >= 0 && text.charCodeAt(k) === 92; k--) backslashes++;
        if (backslashes % 2 === 0) {
          structural.lastIndex = q + 1;
          break;
        }
        i = q + 1;
      }
    } else if (ch === '{' || ch === '[') {
      if (++depth > max) max = depth;
    } else depth--;
  }
  return max;
}

/**
 * Reads a JSON request body with a hard byte limit, counting bytes as they arrive so chunked bodies without
 * Content-Length are bounded too. Sets `req.body`; errors are OperationOutcome HttpErrors (413, 415, 400).
 */
export function jsonBody(limit = MAX_BODY_BYTES) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.method !== 'POST' && req.method !== 'PUT') return next();
    const declared = Number(req.headers['content-length'] ?? Number.NaN);
    if (Number.isFinite(declared) && declared > limit) {
      res.setHeader('Connection', 'close');
      req.resume();
      return next(payloadTooLarge(limit));
    }
    const type = req.headers['content-type'];
    if (!type || !JSON_TYPES.test(type)) {
      req.resume();
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
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        res.setHeader('Connection', 'close');
        chunks.length = 0;
        req.removeAllListeners('data');
        req.resume();
        finish(payloadTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', () => finish(badRequest('Request body could not be read')));
    req.on('end', () => {
      if (done) return;
      const text = Buffer.concat(chunks, size).toString('utf8');
      if (text.trim().length === 0) return finish(badRequest('Request body is empty; expected a JSON object'));
      if (jsonDepth(text) > MAX_JSON_DEPTH) return finish(badRequest(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`));
      try {
        req.body = JSON.parse(text);
      } catch (err) {
        return finish(badRequest(`Malformed JSON: ${(err as Error).message}`));
      }
      finish();
    });
  };
}
