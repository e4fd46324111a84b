import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import type { Bundle, Parameters, Resource, ValueSet } from '@medplum/fhirtypes';
import type { Content } from '../content.js';
import { badRequest, notFound, outcome } from '../errors.js';
import { buildCatalog } from '../dtr/catalog.js';
import type { DtrCatalog } from '../dtr/catalog.js';
import { loggableIssues, readErrorReport } from '../dtr/log-errors.js';
import { nextQuestion } from '../dtr/next-question.js';
import { parsePackageRequest, questionnairePackage } from '../dtr/questionnaire-package.js';
import { isPrebuiltChunk, joinSmallPieces, jsonChunks, prebuiltRunOf } from '../fhir/prebuilt-json.js';
import { gzipChunks } from '../http/gzip-chunks.js';
import type { PackageShape } from '../dtr/questionnaire-package.js';
import { submitQuestionnaireResponse, updateQuestionnaireResponse } from '../dtr/submit-response.js';
import { DEFAULT_ATTACHMENT_BODY_BYTES, jsonBody } from '../http/json-body.js';
import { readSearch, searchBundle } from '../fhir/search-bundle.js';
import type { Logger } from '../logger.js';
import type { Storage } from '../storage/storage.js';
import { readableBy } from '../storage/storage.js';
import { payerClientOf } from '../http/payer-api-auth.js';
import { capabilityStatement } from './capability-statement.js';
import { smartConfiguration } from './smart-configuration.js';
import { expandValueSet } from './value-set-expand.js';
import { byCodePoint } from '../code-point-order.js';

/** What the payer FHIR router needs; the last three are optional so that `{ content, storage, publicBaseUrl, logger }` suffices. */
export interface FhirRouterDeps {
  content: Content;
  storage: Storage;
  /** PUBLIC_BASE_URL; the router is mounted at `{PUBLIC_BASE_URL}/fhir`. */
  publicBaseUrl: string;
  logger: Logger;
  /** DEFAULT_PAYER (design.md §3), for Coverages that name no payer PriorPath serves. */
  defaultPayer?: string;
  /** Today's date (YYYY-MM-DD), injectable for tests. */
  today?: () => string;
  /** The payer API token endpoint, declared in the CapabilityStatement's `rest.security` and the SMART configuration. */
  tokenEndpoint?: string;
  /** `$questionnaire-package` wire shape when the request does not announce a DTR version. Default `both`. */
  packageShape?: PackageShape;
  /** `ATTACHMENT_BODY_MAX_BYTES`: the body limit of a QuestionnaireResponse (POST, PUT) and `$next-question`. Default 1 MiB. */
  attachmentBodyBytes?: number;
  /**
   * Takes work start-up can leave until the service is ready (serve.ts runs it a second after storage opens): the DTR
   * catalog is then built there, or by the first request that needs it, whichever comes first. Without it the
   * catalog is built at once.
   */
  defer?: (work: () => void) => void;
}

const FHIR_JSON = 'application/fhir+json';
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

/**
 * Sends a resource as FHIR JSON; content resources in it are spliced in from their prebuilt bytes, written piece by
 * piece (no copy of the megabyte a package carries). A response holding prebuilt resources is gzip-encoded when the
 * client accepts gzip (every browser, so every SMART DTR app, says so), from pieces compressed once
 * (http/gzip-chunks.ts): about a tenth of the bytes for less CPU than sending them plain.
 */
function send(res: Response, status: number, body: Resource): void {
  let chunks = jsonChunks(body);
  // The charset Express adds to a string body, stated here because the body is bytes.
  res.status(status).type(`${FHIR_JSON}; charset=utf-8`);
  if (chunks.some(isPrebuiltChunk)) {
    res.vary('Accept-Encoding');
    if (acceptsGzip(res.req)) {
      chunks = gzipChunks(chunks, isPrebuiltChunk, prebuiltRunOf);
      res.setHeader('Content-Encoding', 'gzip');
    }
  }
  chunks = joinSmallPieces(chunks);
  res.setHeader('Content-Length', chunks.reduce((n, c) => n + c.length, 0));
  res.cork();
  for (const c of chunks) res.write(c);
  res.end();
  res.uncork();
}

/** Whether the request's Accept-Encoding allows gzip (RFC 9110 §12.5.3; no header means no encoding is wanted). */
function acceptsGzip(req: Request): boolean {
  return req.headers['accept-encoding'] !== undefined && req.acceptsEncodings('gzip', 'identity') === 'gzip';
}

function logOf(req: Request, fallback: Logger): Logger {
  return (req as Request & { log?: Logger }).log ?? fallback;
}

/** `$expand` and other POSTs may come without a body; read JSON only when one is sent. */
function optionalJsonBody() {
  const read = jsonBody();
  return (req: Request, res: Response, next: NextFunction) => {
    const length = req.headers['content-length'];
    if ((length === undefined || length === '0') && req.headers['transfer-encoding'] === undefined) return next();
    read(req, res, next);
  };
}

function queryValue(req: Request, name: string): string | undefined {
  const v = req.query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw badRequest(`Search parameter ${name} may be given once`, [name]);
  return v;
}

/** The search parameters every canonical resource the payer serves answers (capability-statement.ts declares them). */
const CANONICAL_PARAMS = ['url', 'version', '_id', 'name', 'status'] as const;

/**
 * Canonical-resource search: url (with |version), version, _id, name, status; `_count` / `_offset` page the matches
 * (search-bundle.ts), and other parameters are ignored unless the client asks for strict handling.
 */
function searchCanonical<T extends Resource & { url?: string; version?: string; name?: string; status?: string }>(
  req: Request,
  fhirBase: string,
  type: string,
  all: T[],
): Bundle {
  const search = readSearch(req.query, { supported: CANONICAL_PARAMS, prefer: req.get('prefer') });
  const { url, version, _id: id, name, status } = search.filters;
  const [u, uv] = url?.split('|') ?? [];
  const matches = all.filter(
    (r) =>
      (url === undefined || (r.url === u && (uv === undefined || r.version === uv))) &&
      (version === undefined || r.version === version) &&
      (id === undefined || id.split(',').includes(r.id ?? '')) &&
      (name === undefined || (r.name ?? '').toLowerCase().startsWith(name.toLowerCase())) &&
      (status === undefined || status.split(',').includes(r.status ?? '')),
  );
  return searchBundle({ base: fhirBase, type, search }, matches);
}

/**
 * The payer FHIR API (design.md §2 "Payer FHIR API", §7 DTR contract), to be mounted at `/fhir`:
 * `GET /metadata`; Questionnaire read and search; ValueSet read, search and `$expand`; `$questionnaire-package`
 * (type and system level); `$next-question` (type and system level); `$log-questionnaire-errors`;
 * `POST /QuestionnaireResponse`, its read, and `PUT` of a response not yet decided. Paths it does not own fall through (`next()`), so the PAS router can share `/fhir`.
 * Errors are thrown as HttpErrors for the app's error middleware, which answers with an OperationOutcome.
 */
export function createFhirRouter(deps: FhirRouterDeps): express.Router {
  const { content, storage, logger } = deps;
  const router = express.Router();
  const fhirBase = `${deps.publicBaseUrl.replace(/\/+$/, '')}/fhir`;
  // The DTR catalog (every form, its CQL form and adaptive form, serialised once: about a tenth of start-up's CPU) is
  // needed by no hook and by no DTR request before storage is open, which those requests wait for anyway.
  let built: DtrCatalog | undefined;
  const catalog = () => (built ??= buildCatalog(content, { fhirBase }));
  if (deps.defer) deps.defer(catalog);
  else catalog();
  const valueSets = content.valueSets.all().sort((a, b) => byCodePoint(a.id ?? '', b.id ?? ''));
  const tokenEndpoint = deps.tokenEndpoint ?? `${deps.publicBaseUrl.replace(/\/+$/, '')}/auth/token`;
  const metadata = capabilityStatement({ fhirBase, date: content.loadedAt.toISOString(), tokenEndpoint });
  const smart = smartConfiguration({ tokenEndpoint });
  const today = () => deps.today?.() ?? new Date().toISOString().slice(0, 10);
  // When an expansion is made (ValueSet-expand `timestamp`): now, or the injected day (a FHIR dateTime may be a date).
  const expansionTime = () => deps.today?.() ?? new Date().toISOString();

  router.get('/metadata', (_req, res) => send(res, 200, metadata));
  router.get('/.well-known/smart-configuration', (_req, res) => {
    res.status(200).json(smart);
  });

  const packageHandler = async (req: Request, res: Response) => {
    const log = logOf(req, logger);
    // Taken off the request: nothing reads the body again, and the request lives until the package (about 160 KB
    // gzip, 1.6 MB plain) has been written to the socket, so every young-generation collection in that time would copy
    // the parsed body and then promote it (README "`$questionnaire-package`: where the time goes").
    const body: unknown = req.body;
    req.body = undefined;
    const parsed = parsePackageRequest(body);
    const out: Parameters = await questionnairePackage(parsed, {
      content,
      storage,
      catalog: catalog(),
      fhirBase,
      defaultPayer: deps.defaultPayer,
      defaultShape: deps.packageShape,
      today,
      log,
    });
    send(res, 200, out);
  };
  router.post('/Questionnaire/$questionnaire-package', jsonBody(), packageHandler);
  router.post('/$questionnaire-package', jsonBody(), packageHandler);

  const nextQuestionHandler = async (req: Request, res: Response) => {
    send(
      res,
      200,
      await nextQuestion(req.body, { content, catalog: catalog(), storage, today: today(), log: logOf(req, logger), fhirBase }),
    );
  };
  // A QuestionnaireResponse carries its attachments (the documents a "Yes" needs) as base64: ATTACHMENT_BODY_MAX_BYTES
  // (the contract's 1 MiB unless the payer raises it; design.md §4 "Errors"), whether it is saved or sent for its next question.
  const responseBody = jsonBody(deps.attachmentBodyBytes ?? DEFAULT_ATTACHMENT_BODY_BYTES);
  router.post('/Questionnaire/$next-question', responseBody, nextQuestionHandler);
  router.post('/$next-question', responseBody, nextQuestionHandler);

  // DTR $log-questionnaire-errors: clients report broken expressions; we log which form, how many issues, their codes
  // and the form paths they name, never the client's free text (it may quote the patient's data).
  router.post('/Questionnaire/$log-questionnaire-errors', jsonBody(), (req, res) => {
    const { questionnaire, issues } = readErrorReport(req.body);
    logOf(req, logger).warn(
      { questionnaire, issues: issues.length, reported: loggableIssues(issues) },
      'questionnaire errors reported by a DTR client',
    );
    send(res, 200, outcome('information', 'informational', `Logged ${issues.length} issue(s)`));
  });

  router.get('/Questionnaire', (req, res) => send(res, 200, searchCanonical(req, fhirBase, 'Questionnaire', catalog().all)));
  router.get('/Questionnaire/:id', (req, res) => {
    const id = String(req.params.id);
    const q = FHIR_ID.test(id) ? catalog().byId.get(id) : undefined;
    if (!q) throw notFound(`Questionnaire/${id} is not known`);
    send(res, 200, q);
  });

  // Libraries (CQL + ELM) named by the DTR 2.0.1 forms' cqf-library (DTR: payers SHALL make them available).
  router.get('/Library', (req, res) => send(res, 200, searchCanonical(req, fhirBase, 'Library', catalog().libraries)));
  router.get('/Library/:id', (req, res) => {
    const id = String(req.params.id);
    const l = FHIR_ID.test(id) ? catalog().libraries.find((x) => x.id === id) : undefined;
    if (!l) throw notFound(`Library/${id} is not known`);
    send(res, 200, l);
  });

  const valueSetByUrl = (url: string): ValueSet => {
    const vs = content.valueSets.get(url);
    if (!vs) throw notFound(`ValueSet ${url} is not known`);
    return vs;
  };
  const expandParams = (req: Request) => {
    const body = req.body as Parameters | undefined;
    const param = (name: string) => body?.parameter?.find((p) => p.name === name);
    if (body !== undefined && body.resourceType !== 'Parameters')
      throw badRequest('ValueSet/$expand takes a Parameters resource', ['Parameters']);
    const num = (name: string) => {
      const raw = queryValue(req, name) ?? param(name)?.valueInteger;
      if (raw === undefined) return undefined;
      const n = Number(raw);
      if (!Number.isInteger(n) || n < 0) throw badRequest(`${name} must be a non-negative integer`, [name]);
      return n;
    };
    return {
      url: queryValue(req, 'url') ?? param('url')?.valueUri ?? param('url')?.valueUrl ?? param('url')?.valueCanonical,
      valueSetVersion: queryValue(req, 'valueSetVersion') ?? param('valueSetVersion')?.valueString,
      inline: param('valueSet')?.resource as ValueSet | undefined,
      filter: queryValue(req, 'filter') ?? param('filter')?.valueString,
      count: num('count'),
      offset: num('offset'),
    };
  };
  const expandHandler = (req: Request, res: Response) => {
    const p = expandParams(req);
    let vs: ValueSet;
    if (p.url) vs = valueSetByUrl(p.valueSetVersion && !p.url.includes('|') ? `${p.url}|${p.valueSetVersion}` : p.url);
    else if (p.inline?.resourceType === 'ValueSet' && p.inline.url) vs = valueSetByUrl(p.inline.url);
    else throw badRequest('ValueSet/$expand needs a url parameter', ['url']);
    send(res, 200, expandValueSet(vs, { ...p, at: expansionTime() }));
  };
  router.get('/ValueSet/$expand', expandHandler);
  router.post('/ValueSet/$expand', optionalJsonBody(), expandHandler);
  router.get('/ValueSet', (req, res) => send(res, 200, searchCanonical(req, fhirBase, 'ValueSet', valueSets)));
  const valueSetById = (id: string): ValueSet => {
    const vs = FHIR_ID.test(id) ? valueSets.find((v) => v.id === id) : undefined;
    if (!vs) throw notFound(`ValueSet/${id} is not known`);
    return vs;
  };
  // FHIR R4 §Operations: an operation is always invoked with POST (GET only when it changes nothing), at every level.
  const expandByIdHandler = (req: Request, res: Response) =>
    send(res, 200, expandValueSet(valueSetById(String(req.params.id)), { ...expandParams(req), at: expansionTime() }));
  router.get('/ValueSet/:id/$expand', expandByIdHandler);
  router.post('/ValueSet/:id/$expand', optionalJsonBody(), expandByIdHandler);
  router.get('/ValueSet/:id', (req, res) => send(res, 200, valueSetById(String(req.params.id))));

  router.post('/QuestionnaireResponse', responseBody, async (req, res) => {
    const qr = await submitQuestionnaireResponse(req.body, {
      content,
      storage,
      today: today(),
      log: logOf(req, logger),
      clientId: payerClientOf(req),
    });
    res.setHeader('Location', `${fhirBase}/QuestionnaireResponse/${qr.id}/_history/1`);
    send(res, 201, qr);
  });
  // The response's current version as stored (FHIR read and vread): the version sent, or the last update of a draft.
  // Earlier versions are not kept.
  const readResponse = async (req: Request, res: Response): Promise<void> => {
    const id = String(req.params.id);
    const vid = req.params.vid === undefined ? undefined : String(req.params.vid);
    const found = FHIR_ID.test(id) ? await storage.getQuestionnaireResponse(id) : undefined;
    // Another client's response is not there for this one: the same 404, no hint that it exists (design.md §8).
    if (!found || !readableBy(found.clientId, payerClientOf(req))) throw notFound(`QuestionnaireResponse/${id} is not known`);
    const version = found.resource.meta?.versionId ?? '1';
    if (vid !== undefined && vid !== version) throw notFound(`QuestionnaireResponse/${id} has no version ${vid} kept`);
    res.setHeader('ETag', `W/"${version}"`);
    res.setHeader('Last-Modified', new Date(found.receivedAt).toUTCString());
    send(res, 200, found.resource);
  };
  router.get('/QuestionnaireResponse/:id', readResponse);
  router.get('/QuestionnaireResponse/:id/_history/:vid', readResponse);
  // A draft (or stopped) response taken up again: the next version, still a draft or now deciding (design.md §7).
  router.put('/QuestionnaireResponse/:id', responseBody, async (req, res) => {
    const id = String(req.params.id);
    if (!FHIR_ID.test(id)) throw notFound(`QuestionnaireResponse/${id} is not known`);
    const qr = await updateQuestionnaireResponse(id, req.body, {
      content,
      storage,
      today: today(),
      log: logOf(req, logger),
      clientId: payerClientOf(req),
    });
    res.setHeader('ETag', `W/"${qr.meta?.versionId ?? '1'}"`);
    res.setHeader('Location', `${fhirBase}/QuestionnaireResponse/${qr.id}/_history/${qr.meta?.versionId ?? '1'}`);
    send(res, 200, qr);
  });

  return router;
}
