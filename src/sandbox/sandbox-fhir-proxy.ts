import express from 'express';
import type { Request, Response, Router } from 'express';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { MAX_ATTACHMENT_BODY_BYTES } from '../http/json-body.js';
import { HttpError, outcome } from '../errors.js';
import { requestDeadline } from '../http/request-deadline.js';
import {
  baseUrlOf,
  checkRequestAccess,
  cors,
  errorHandler,
  FHIR_JSON,
  JSON_TYPES,
  outsidePatient,
  outsideRecord,
  readSandboxRequest,
  smartConfiguration,
  withinPatient,
} from './sandbox-fhir.js';
import type { SandboxFhirOptions } from './sandbox-fhir.js';

/** What the proxy needs: the embedded server's options (SMART endpoints, access check, logger) and the upstream. */
export interface SandboxFhirProxyOptions extends Omit<SandboxFhirOptions, 'bundles'> {
  /** FHIR_SANDBOX_URL: the external FHIR server the sandbox EHR's data lives on (e.g. HAPI). */
  upstream: string;
  /** Per request to the upstream (EHR_TIMEOUT_MS is for hooks; a cold HAPI is slower): default 30 s. */
  timeoutMs?: number;
  fetchImpl?: (url: string, init: RequestInit) => Promise<globalThis.Response>;
}

/** Request headers a FHIR client's conditional and preference semantics need; nothing else is passed on. */
const FORWARDED_REQUEST_HEADERS = ['prefer', 'if-match', 'if-none-exist', 'if-none-match', 'if-modified-since'];
/** Response headers passed back; the URL-valued ones name the upstream and are rewritten to this mount. */
const FORWARDED_RESPONSE_HEADERS = ['etag', 'last-modified'];
const URL_RESPONSE_HEADERS = ['location', 'content-location'];

/**
 * The sandbox EHR at `/sandbox/fhir` when FHIR_SANDBOX_URL names an external FHIR server (design.md §3): the demo page
 * and the DTR SMART app keep one FHIR base on this origin (the pages may fetch only from 'self', and in Docker Compose
 * the browser cannot resolve the upstream's host name), with this server's SMART configuration and the same access
 * checks as the embedded server, while every read and write goes to the upstream. The upstream's base URL in what it
 * answers (fullUrls, links, Location) is rewritten to this mount, so the browser follows links back here. The
 * caller's token is checked here and never sent on: it was issued for this mount, not for the upstream.
 */
export function createSandboxFhirProxy(opts: SandboxFhirProxyOptions): Router {
  const upstream = opts.upstream.replace(/\/+$/, '');
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const fetchImpl = opts.fetchImpl ?? fetch;
  const router = express.Router();
  router.use(cors);
  // The EHR the DTR app saves its QuestionnaireResponse to before it sends it to the payer takes what the payer may be
  // configured to take (ATTACHMENT_BODY_MAX_BYTES, at most 16 MiB).
  router.use(express.json({ type: JSON_TYPES, limit: MAX_ATTACHMENT_BODY_BYTES }));
  router.use(express.urlencoded({ extended: false, limit: MAX_ATTACHMENT_BODY_BYTES }));
  router.get('/.well-known/smart-configuration', (_req, res) => {
    if (!opts.smart)
      throw new HttpError(404, outcome('error', 'not-found', 'This sandbox server advertises no SMART authorization endpoints'));
    res.type('application/json').send(JSON.stringify(smartConfiguration(opts.smart)));
  });
  router.use((req, res, next) => {
    forward(req, res).catch(next);
  });
  router.use(errorHandler(opts.logger));

  async function forward(req: Request, res: Response): Promise<void> {
    const { method, segments, rawQuery, query } = readSandboxRequest(req);
    const [type, second] = segments;
    const isSearch = (method === 'GET' && segments.length <= 1) || (method === 'POST' && segments.length === 2 && second === '_search');
    // The CapabilityStatement is public, as on the embedded server.
    const onlyPatient = type === 'metadata' ? undefined : await checkRequestAccess(opts, req, method, type, segments, isSearch, query);

    const headers: Record<string, string> = { Accept: 'application/fhir+json' };
    for (const h of FORWARDED_REQUEST_HEADERS) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    let body: string | undefined;
    if (method !== 'GET') {
      const form = req.is('application/x-www-form-urlencoded');
      body = form ? new URLSearchParams(req.body as Record<string, string>).toString() : JSON.stringify(req.body ?? {});
      headers['Content-Type'] = form ? 'application/x-www-form-urlencoded' : 'application/fhir+json';
    }
    const path = req.path === '/' ? '' : req.path;
    const url = `${upstream}${path}${rawQuery ? `?${rawQuery}` : ''}`;
    // Cleared as soon as the answer is read (request-deadline.ts: not AbortSignal.timeout, whose timer outlives it).
    const limit = requestDeadline(timeoutMs);
    let status: number;
    let text: string;
    let answered: Headers;
    try {
      const upstreamRes = await fetchImpl(url, { method, headers, body, signal: limit.signal, redirect: 'error' });
      status = upstreamRes.status;
      answered = upstreamRes.headers;
      text = await upstreamRes.text();
    } catch (err) {
      const why = (err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError' ? `no answer within ${timeoutMs} ms` : 'unreachable';
      opts.logger?.error({ err, upstream }, 'FHIR_SANDBOX_URL request failed');
      throw new HttpError(502, outcome('error', 'transient', `The sandbox EHR's FHIR server (FHIR_SANDBOX_URL) is ${why}`));
    } finally {
      limit.clear();
    }
    const here = baseUrlOf(req, opts);
    const rebased = (s: string) => s.split(upstream).join(here);
    text = rebased(text);
    if (onlyPatient && status < 300 && text) {
      let resource: Resource;
      try {
        resource = JSON.parse(text) as Resource;
      } catch {
        throw new HttpError(502, outcome('error', 'transient', "The sandbox EHR's FHIR server (FHIR_SANDBOX_URL) answered with a body that is not JSON"));
      }
      if (resource.resourceType === 'Bundle' && (resource as Bundle).type === 'searchset') text = JSON.stringify(withinPatient(resource as Bundle, onlyPatient.id));
      else if (method === 'GET' && outsidePatient(resource, onlyPatient.id)) throw outsideRecord(onlyPatient.id);
    }
    for (const h of FORWARDED_RESPONSE_HEADERS) {
      const v = answered.get(h);
      if (v) res.setHeader(h, v);
    }
    for (const h of URL_RESPONSE_HEADERS) {
      const v = answered.get(h);
      if (v) res.setHeader(h, rebased(v));
    }
    res.status(status).setHeader('Content-Type', FHIR_JSON);
    res.send(text);
  }

  return router;
}
