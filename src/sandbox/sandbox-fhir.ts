import { randomUUID } from 'node:crypto';
import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import { evalFhirPath, getSearchParameter, getSearchParameters, getStatus, isOk } from '@medplum/core';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';
import type { FhirRequest, HttpMethod } from '@medplum/fhir-router';
import type {
  Bundle,
  BundleEntry,
  BundleLink,
  CapabilityStatement,
  OperationOutcome,
  Reference,
  Resource,
  ResourceType,
} from '@medplum/fhirtypes';
import { MAX_ATTACHMENT_BODY_BYTES } from '../http/json-body.js';
import { HttpError, outcome } from '../errors.js';
import { otherPatientField, samePatientId } from '../fhir/one-patient.js';
import { ensureBaseDefinitions, ensureResourceType, isKnownResourceType } from './definitions.js';

export { describeStories, loadSandboxBundles, shiftBundleDates, STORY_EXTENSIONS } from './sandbox-bundles.js';
export type { SandboxStory } from './sandbox-bundles.js';

/** SMART endpoints to advertise (CapabilityStatement security and `.well-known/smart-configuration`). */
export interface SmartEndpoints {
  authorizeUrl: string;
  tokenUrl: string;
  capabilities?: string[];
}

export interface SandboxFhirOptions {
  /** transaction Bundles loaded at start (and again by `reset()`), usually `loadSandboxBundles(dir)` */
  bundles: Bundle[];
  /** absolute base URL used in fullUrl, links and Location; default: protocol + host + the mount path of the request */
  baseUrl?: string;
  smart?: SmartEndpoints;
  /**
   * Checks a request's `Authorization` header against the interactions it needs (the sandbox SMART server's
   * `checkAccess`): a token limits its holder to the scopes it was granted, and a token whose grant is only `patient/`
   * to its launched patient's record. Requests without a token stay open (the
   * demo's own CDS queries, tests); unset: no checks.
   */
  checkAccess?: (
    authorization: string,
    needs: readonly (readonly [string, 'c' | 'r' | 'u' | 'd' | 's'])[],
  ) => Promise<'ok' | 'invalid-token' | 'insufficient-scope' | { patient: string | undefined }>;
  /** pino-style logger for unexpected failures (never given request bodies) */
  logger?: { error: (obj: object, msg: string) => void };
}

export interface SandboxFhir {
  /** mount anywhere, e.g. `app.use('/sandbox/fhir', router)` */
  router: Router;
  repo: MemoryRepository;
  /** empties the repository and loads the seed bundles again */
  reset(): Promise<void>;
  /** time spent indexing definitions and loading the bundles */
  startup: { definitionsMs: number; loadMs: number; resources: number };
}

export const FHIR_JSON = 'application/fhir+json; charset=utf-8';
export const JSON_TYPES = ['application/json', 'application/fhir+json', 'application/json+fhir'];
const ALLOW = 'GET, HEAD, POST, PUT, OPTIONS';
const CORS_HEADERS = [
  'Authorization',
  'Content-Type',
  'Accept',
  'Prefer',
  'If-Match',
  'If-None-Exist',
  'If-None-Match',
];
/** Types listed in the CapabilityStatement; every other resource type works too, it just is not advertised. */
const ADVERTISED = [
  'AllergyIntolerance',
  'Claim',
  'ClaimResponse',
  'Communication',
  'CommunicationRequest',
  'Condition',
  'Coverage',
  'DeviceRequest',
  'DiagnosticReport',
  'DocumentReference',
  'Encounter',
  'Immunization',
  'Location',
  'Medication',
  'MedicationRequest',
  'Observation',
  'Organization',
  'Patient',
  'Practitioner',
  'PractitionerRole',
  'Procedure',
  'Questionnaire',
  'QuestionnaireResponse',
  'RelatedPerson',
  'ServiceRequest',
  'Task',
];

export type Query = Record<string, string | string[]>;

/** CapabilityStatement.date: when this server (and its content) was built. */
const STARTED = new Date().toISOString();

/**
 * The embedded sandbox EHR FHIR server (design.md §2): Medplum's FhirRouter over its in-memory repository, behind a
 * small Express edge that adds what browser clients and the CDS Hooks Sandbox need:
 * `metadata`, CORS on every route, any JSON Accept header, `POST _search`, searchset Bundles with `fullUrl`s and
 * links, `patient=<bare id>` searches, `_include`, and OperationOutcome errors.
 */
export async function createSandboxFhir(opts: SandboxFhirOptions): Promise<SandboxFhir> {
  let started = performance.now();
  ensureBaseDefinitions();
  for (const bundle of opts.bundles) ensureTypesOf(bundle);
  const definitionsMs = performance.now() - started;

  const fhir = new FhirRouter();
  const repo = new MemoryRepository();
  const load = async (): Promise<number> => {
    let count = 0;
    for (const bundle of opts.bundles) count += await loadBundle(fhir, repo, bundle);
    return count;
  };
  started = performance.now();
  const resources = await load();
  const loadMs = performance.now() - started;

  const router = express.Router();
  router.use(cors);
  // The EHR the DTR app saves its QuestionnaireResponse to before it sends it to the payer: it takes whatever the payer
  // may be configured to take (ATTACHMENT_BODY_MAX_BYTES is at most 16 MiB), so a response with its attachments is
  // never refused by the sandbox EHR and accepted by the payer.
  router.use(express.json({ type: JSON_TYPES, limit: MAX_ATTACHMENT_BODY_BYTES }));
  router.use(express.urlencoded({ extended: false, limit: MAX_ATTACHMENT_BODY_BYTES }));
  router.get('/metadata', (req, res) => {
    sendResource(res, 200, capabilityStatement(baseUrlOf(req, opts), opts.smart), req);
  });
  router.get('/.well-known/smart-configuration', (_req, res) => {
    if (!opts.smart)
      throw new HttpError(
        404,
        outcome('error', 'not-found', 'This sandbox server advertises no SMART authorization endpoints'),
      );
    res.type('application/json').send(JSON.stringify(smartConfiguration(opts.smart)));
  });
  router.use((req, res, next) => {
    handle(fhir, repo, opts, req, res).catch(next);
  });
  router.use(errorHandler(opts.logger));

  return {
    router,
    repo,
    reset: async () => {
      repo.clear();
      await load();
    },
    startup: { definitionsMs: Math.round(definitionsMs), loadMs: Math.round(loadMs), resources },
  };
}

async function loadBundle(fhir: FhirRouter, repo: MemoryRepository, bundle: Bundle): Promise<number> {
  const [oo, result] = await fhir.handleRequest(fhirRequest('POST', '', {}, structuredClone(bundle)), repo);
  const failed = (result as Bundle | undefined)?.entry?.find((e) => !e.response?.status?.startsWith('2'));
  if (!isOk(oo) || failed) {
    const why = failed
      ? `${failed.response?.status} ${describeOutcome(failed.response?.outcome as OperationOutcome)}`
      : describeOutcome(oo);
    throw new Error(`sandbox story ${bundle.id ?? '(no id)'} did not load: ${why}`);
  }
  return bundle.entry?.length ?? 0;
}

function describeOutcome(oo: OperationOutcome | undefined): string {
  const issue = oo?.issue?.[0];
  return issue?.diagnostics ?? issue?.details?.text ?? issue?.code ?? 'unknown error';
}

function fhirRequest(
  method: HttpMethod,
  url: string,
  query: Query,
  body?: unknown,
  headers?: Request['headers'],
): FhirRequest {
  return { method, url, pathname: '', params: {}, query, body, headers };
}

/**
 * The SMART interactions a request performs: read (`r`) of an instance, search (`s`) of a type (or of every `_type`
 * in a system search, `*` when none is named), create (`c`), update (`u`); a transaction or batch needs those of
 * each of its entries.
 */
function interactionsOf(
  method: string,
  type: string | undefined,
  segments: string[],
  isSearch: boolean,
  body: unknown,
  query: Query,
): [string, 'c' | 'r' | 'u' | 'd' | 's'][] {
  if (isSearch) {
    if (type) return [[type, 's']];
    const types = String(query._type ?? '')
      .split(',')
      .filter(Boolean);
    return (types.length ? types : ['*']).map((t) => [t, 's']);
  }
  if (method === 'GET') return [[type ?? '*', 'r']];
  if (method === 'PUT') return [[type ?? '*', 'u']];
  if (type) return [[type, 'c']];
  const entries = (body as Bundle | undefined)?.entry ?? [];
  return entries.map((e): [string, 'c' | 'r' | 'u' | 'd' | 's'] => {
    const m = e.request?.method ?? 'POST';
    const t = (e.request?.url ?? '').split(/[/?]/)[0] || e.resource?.resourceType || '*';
    const p =
      m === 'GET'
        ? (e.request?.url ?? '').includes('/')
          ? 'r'
          : 's'
        : m === 'PUT' || m === 'PATCH'
          ? 'u'
          : m === 'DELETE'
            ? 'd'
            : 'c';
    return [t, p];
  });
}

/** Indexes the StructureDefinition of every resource type in `value` (a resource, its contained resources, a Bundle's entries). */
function ensureTypesOf(value: unknown): void {
  if (!value || typeof value !== 'object') return;
  const r = value as Resource & { contained?: Resource[]; entry?: BundleEntry[] };
  if (typeof r.resourceType === 'string') ensureResourceType(r.resourceType);
  for (const c of r.contained ?? []) ensureTypesOf(c);
  if (r.resourceType === 'Bundle') for (const e of r.entry ?? []) ensureTypesOf(e.resource);
}

/** A sandbox FHIR request as both the embedded server and the FHIR_SANDBOX_URL front read it. */
export interface SandboxRequest {
  /** GET (for HEAD too), POST or PUT. */
  method: 'GET' | 'POST' | 'PUT';
  /** The decoded path segments after the FHIR base. */
  segments: string[];
  rawQuery: string;
  query: Query;
}

/**
 * Reads the method, the path segments and the query of a sandbox FHIR request: 405 for a method the sandbox does not
 * serve, 400 for a path that does not percent-decode (FHIR RESTful API, https://hl7.org/fhir/R4/http.html).
 */
export function readSandboxRequest(req: Request): SandboxRequest {
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  if (method !== 'GET' && method !== 'POST' && method !== 'PUT') {
    throw new HttpError(405, outcome('error', 'not-supported', `Method ${req.method} not allowed; use ${ALLOW}`), {
      Allow: ALLOW,
    });
  }
  let segments: string[];
  try {
    segments = req.path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    throw new HttpError(400, outcome('error', 'invalid', 'Malformed URL'));
  }
  const rawQuery = rawQueryOf(req);
  return { method, segments, rawQuery, query: parseQuery(rawQuery) };
}

export function baseUrlOf(req: Request, opts: Pick<SandboxFhirOptions, 'baseUrl'>): string {
  return (opts.baseUrl ?? `${req.protocol}://${req.get('host')}${req.baseUrl}`).replace(/\/+$/, '');
}

export function rawQueryOf(req: Request): string {
  const i = req.originalUrl.indexOf('?');
  return i < 0 ? '' : req.originalUrl.slice(i + 1);
}

export function parseQuery(raw: string): Query {
  const out: Query = {};
  for (const [k, v] of new URLSearchParams(raw)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

function toSearchString(q: Query): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) for (const one of Array.isArray(v) ? v : [v]) p.append(k, one);
  return p.toString();
}

/**
 * FHIR lets a reference parameter carry a bare id (`Coverage?patient=123`); Medplum's in-memory matcher compares
 * whole references, so `123` becomes `Patient/123` (every target type of the parameter, OR-ed, when it has several).
 * A type modifier (`subject:Patient=123`) becomes the prefix.
 */
export function normalizeReferenceParams(resourceType: string, query: Query): Query {
  const out: Query = {};
  const put = (k: string, v: string | string[]) => {
    const prev = out[k];
    out[k] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [prev]), ...(Array.isArray(v) ? v : [v])];
  };
  for (const [key, value] of Object.entries(query)) {
    const [code, modifier] = key.split(':');
    const sp = key.startsWith('_') || code.includes('.') ? undefined : getSearchParameter(resourceType, code);
    if (sp?.type !== 'reference' || (modifier && !isKnownResourceType(modifier))) {
      put(key, value);
      continue;
    }
    const targets = modifier ? [modifier] : (sp.target ?? []);
    const fix = (v: string) =>
      v
        .split(',')
        .flatMap((one) =>
          one === '' || one.includes('/') || one.includes(':') || targets.length === 0
            ? [one]
            : targets.map((t) => `${t}/${one}`),
        )
        .join(',');
    put(modifier ? code : key, Array.isArray(value) ? value.map(fix) : fix(value));
  }
  return out;
}

async function handle(
  fhir: FhirRouter,
  repo: MemoryRepository,
  opts: SandboxFhirOptions,
  req: Request,
  res: Response,
): Promise<void> {
  const { method, segments, rawQuery, query } = readSandboxRequest(req);
  const pretty = query._pretty === 'true';
  delete query._format;
  delete query._pretty;

  const [type, second] = segments;
  if (segments.some((s) => s.startsWith('$')) || type?.startsWith('_')) {
    throw new HttpError(
      404,
      outcome('error', 'not-supported', `No operation ${segments.join('/')} on the sandbox server`),
    );
  }
  if (type && !ensureResourceType(type))
    throw new HttpError(404, outcome('error', 'not-found', `Unknown resource type ${type}`));
  if (!type && method === 'GET')
    for (const t of String(query._type ?? '')
      .split(',')
      .filter(Boolean))
      ensureResourceType(t);

  const base = baseUrlOf(req, opts);
  const isSearch =
    (method === 'GET' && segments.length <= 1) || (method === 'POST' && segments.length === 2 && second === '_search');
  let request: FhirRequest;
  let searchQuery: Query = query;
  if (isSearch) {
    const form =
      method === 'POST' && isPlainObject(req.body) && !('resourceType' in req.body) ? (req.body as Query) : {};
    searchQuery = type ? normalizeReferenceParams(type, { ...query, ...form }) : query;
    request =
      method === 'POST'
        ? fhirRequest('POST', `${type}/_search`, {}, searchQuery)
        : fhirRequest('GET', segments.join('/'), searchQuery);
  } else if (method === 'GET') {
    request = fhirRequest('GET', segments.join('/'), query);
  } else {
    const body: unknown = req.body;
    if (!isPlainObject(body) || typeof body.resourceType !== 'string') {
      if (!req.is(JSON_TYPES)) {
        throw new HttpError(
          415,
          outcome('error', 'not-supported', 'Send the resource as application/fhir+json (or application/json)'),
        );
      }
      throw new HttpError(400, outcome('error', 'invalid', 'The request body must be a FHIR resource'));
    }
    ensureTypesOf(body);
    request = fhirRequest(method, segments.join('/'), query, body, req.headers);
  }

  const onlyPatient = await checkRequestAccess(opts, req, method, type, segments, isSearch, query);

  const [oo, resource] = await fhir.handleRequest(request, repo);
  const status = getStatus(oo);
  if (!isOk(oo)) {
    if (status === 404 && method === 'GET' && segments.length >= 2) {
      throw new HttpError(
        404,
        outcome('error', 'not-found', `${segments.slice(0, 2).join('/')} is not on this server`),
      );
    }
    throw new HttpError(status, oo);
  }
  if (!resource) {
    res.status(status).end();
    return;
  }
  if (isSearch && resource.resourceType === 'Bundle') {
    const selfQuery = method === 'GET' ? rawQuery : toSearchString(searchQuery);
    const found = await searchset(repo, resource, base, type, searchQuery, selfQuery);
    sendResource(res, status, onlyPatient ? withinPatient(found, onlyPatient.id) : found, req, pretty);
    return;
  }
  if (onlyPatient && method === 'GET' && outsidePatient(resource, onlyPatient.id)) throw outsideRecord(onlyPatient.id);
  const vid = resource.meta?.versionId;
  if (vid) res.setHeader('ETag', `W/"${vid}"`);
  if (resource.meta?.lastUpdated) res.setHeader('Last-Modified', new Date(resource.meta.lastUpdated).toUTCString());
  if (status === 201 && resource.id)
    res.setHeader('Location', `${base}/${resource.resourceType}/${resource.id}${vid ? `/_history/${vid}` : ''}`);
  sendResource(res, status, resource, req, pretty);
}

/**
 * The SMART access check of a request to the sandbox EHR (embedded, or FHIR_SANDBOX_URL through the proxy): a request
 * with a token must hold the scopes of what it does, and a token whose grant is only `patient/` may write only within
 * its launched patient's record. Returns that patient when the token reaches only one record (the caller filters what
 * it answers), undefined when it reaches everything or there is no token (the demo's own queries, tests).
 */
export async function checkRequestAccess(
  opts: Pick<SandboxFhirOptions, 'checkAccess'>,
  req: Request,
  method: string,
  type: string | undefined,
  segments: string[],
  isSearch: boolean,
  query: Query,
): Promise<{ id: string | undefined } | undefined> {
  const authorization = req.headers.authorization;
  /** Set when the token reaches only one patient's record: its launched patient (undefined: none). */
  let onlyPatient: { id: string | undefined } | undefined;
  if (opts.checkAccess && authorization) {
    const needs = interactionsOf(method, type, segments, isSearch, req.body, query);
    const verdict = await opts.checkAccess(authorization, needs);
    if (typeof verdict === 'object') onlyPatient = { id: verdict.patient };
    if (verdict === 'invalid-token')
      throw new HttpError(401, outcome('error', 'login', 'The access token is not valid here'), {
        'WWW-Authenticate': 'Bearer error="invalid_token"',
      });
    if (verdict === 'insufficient-scope')
      throw new HttpError(
        403,
        outcome(
          'error',
          'forbidden',
          `The access token's scopes do not cover ${needs.map(([t, p]) => `${t}.${p}`).join(', ')}`,
        ),
        { 'WWW-Authenticate': 'Bearer error="insufficient_scope"' },
      );
  }

  if (onlyPatient && method !== 'GET') {
    const written = method === 'POST' && !type ? ((req.body as Bundle).entry ?? []).map((e) => e.resource) : [req.body as Resource];
    const reads = method === 'POST' && !type && ((req.body as Bundle).entry ?? []).some((e) => (e.request?.method ?? 'POST') === 'GET');
    if (reads || written.some((r) => r && outsidePatient(r, onlyPatient.id))) throw outsideRecord(onlyPatient.id);
  }

  return onlyPatient;
}

/**
 * Whether a resource lies outside patient `patientId`'s record: another Patient, or a resource whose subject,
 * patient or beneficiary names another patient (the one rule of src/fhir/one-patient.ts). Resources about no patient
 * (Practitioner, Organization, Medication, Location, ...) are nobody's record and lie outside none.
 */
export function outsidePatient(resource: Resource, patientId: string | undefined): boolean {
  if (resource.resourceType === 'Patient') return resource.id !== patientId;
  return otherPatientField(resource, samePatientId(patientId)) !== undefined;
}

/**
 * A searchset with only what lies within one patient's record (SMART `patient/` scopes). When anything was dropped,
 * `total` (optional in a searchset) is left out: it counted other patients' matches, on other pages too.
 */
export function withinPatient(bundle: Bundle, patientId: string | undefined): Bundle {
  const entry = (bundle.entry ?? []).filter((e) => !e.resource || !outsidePatient(e.resource, patientId));
  if (entry.length === (bundle.entry ?? []).length) return bundle;
  const { total: _total, ...rest } = bundle;
  return { ...rest, entry };
}

/** 403: the token's `patient/` scopes reach only its launched patient's record (SMART App Launch 2.x §Scopes). */
export function outsideRecord(patientId: string | undefined): HttpError {
  return new HttpError(
    403,
    outcome('error', 'forbidden', patientId ? `The access token's patient/ scopes reach only Patient/${patientId}'s record` : 'The access token has patient/ scopes but no launched patient'),
    { 'WWW-Authenticate': 'Bearer error="insufficient_scope"' },
  );
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

function sendResource(
  res: Response,
  status: number,
  resource: Resource,
  req: Request,
  pretty = req.query?._pretty === 'true',
): void {
  res.status(status).setHeader('Content-Type', FHIR_JSON);
  res.send(JSON.stringify(resource, null, pretty ? 2 : undefined));
}

const asArray = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/**
 * A searchset as FHIR clients expect it (R4 §3.1.1.4): `fullUrl` on every entry, `search.mode`, `self` (and `next`
 * when `_count` leaves more) links, and the resources `_include` asks for, which the in-memory repository ignores.
 */
async function searchset(
  repo: MemoryRepository,
  result: Bundle,
  base: string,
  type: string | undefined,
  query: Query,
  selfQuery: string,
): Promise<Bundle> {
  const path = `${base}/${type ?? ''}`.replace(/\/$/, '');
  const link: BundleLink[] = [{ relation: 'self', url: selfQuery ? `${path}?${selfQuery}` : path }];
  const count = Number(asArray(query._count)[0]);
  const offset = Number(asArray(query._offset)[0] ?? 0) || 0;
  if (Number.isInteger(count) && count > 0 && result.total !== undefined && offset + count < result.total) {
    link.push({ relation: 'next', url: `${path}?${toSearchString({ ...query, _offset: String(offset + count) })}` });
  }
  const matches = (result.entry ?? []).map((e) => e.resource).filter((r): r is Resource => !!r);
  const entry: BundleEntry[] = matches.map((r) => ({
    fullUrl: `${base}/${r.resourceType}/${r.id}`,
    resource: r,
    search: { mode: 'match' },
  }));
  for (const r of await includes(repo, matches, asArray(query._include))) {
    entry.push({ fullUrl: `${base}/${r.resourceType}/${r.id}`, resource: r, search: { mode: 'include' } });
  }
  const bundle: Bundle = {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { lastUpdated: new Date().toISOString() },
    type: 'searchset',
  };
  if (result.total !== undefined) bundle.total = result.total;
  bundle.link = link;
  if (entry.length) bundle.entry = entry;
  return bundle;
}

/** `_include=Type:param[:TargetType]`: the resources that the matches' reference parameter points to. */
async function includes(repo: MemoryRepository, matches: Resource[], specs: string[]): Promise<Resource[]> {
  const seen = new Set(matches.map((r) => `${r.resourceType}/${r.id}`));
  const found: Resource[] = [];
  for (const spec of specs) {
    const [sourceType, code, targetType] = spec.split(':');
    const sp = sourceType && code ? getSearchParameter(sourceType, code) : undefined;
    if (sp?.type !== 'reference' || !sp.expression) continue;
    for (const r of matches.filter((m) => m.resourceType === sourceType)) {
      for (const value of evalFhirPath(sp.expression, r)) {
        const ref = (value as Reference | undefined)?.reference;
        if (!ref || seen.has(ref) || (targetType && !ref.startsWith(`${targetType}/`))) continue;
        seen.add(ref);
        try {
          found.push(await repo.readReference({ reference: ref }));
        } catch {
          // a dangling reference includes nothing
        }
      }
    }
  }
  return found;
}

function capabilityStatement(base: string, smart: SmartEndpoints | undefined): CapabilityStatement {
  const security: NonNullable<CapabilityStatement['rest']>[number]['security'] = smart
    ? {
        cors: true,
        service: [
          {
            coding: [
              { system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' },
            ],
          },
        ],
        extension: [
          {
            url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
            extension: [
              { url: 'authorize', valueUri: smart.authorizeUrl },
              { url: 'token', valueUri: smart.tokenUrl },
            ],
          },
        ],
      }
    : { cors: true, description: 'Open sandbox: no authentication. Demo data only.' };
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: STARTED,
    publisher: 'PriorPath',
    kind: 'instance',
    software: { name: 'PriorPath sandbox EHR FHIR server (Medplum fhir-router, in memory)' },
    implementation: { description: 'PriorPath sandbox EHR: synthetic demo patients', url: base },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [
      {
        mode: 'server',
        security,
        resource: ADVERTISED.map((type) => ({
          type: type as ResourceType,
          interaction: [
            { code: 'read' },
            { code: 'vread' },
            { code: 'search-type' },
            { code: 'create' },
            { code: 'update' },
          ],
          searchParam: Object.values(getSearchParameters(type) ?? {}).map((sp) => ({
            name: sp.code ?? '',
            type: sp.type ?? 'string',
            definition: sp.url,
          })),
        })),
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }],
      },
    ],
  };
}

export function smartConfiguration(smart: SmartEndpoints): Record<string, unknown> {
  return {
    authorization_endpoint: smart.authorizeUrl,
    token_endpoint: smart.tokenUrl,
    grant_types_supported: ['authorization_code'],
    code_challenge_methods_supported: ['S256'],
    capabilities: smart.capabilities ?? [
      'launch-ehr',
      'client-public',
      'context-ehr-patient',
      'context-ehr-encounter',
      'permission-user',
      'permission-patient',
    ],
  };
}

/** CORS for browser clients (the CDS Hooks Sandbox, the DTR app): any origin, no credentials, preflight on every path. */
export function cors(req: Request, res: Response, next: NextFunction): void {
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader('Access-Control-Expose-Headers', 'Location, Content-Location, ETag, Last-Modified');
  if (req.method !== 'OPTIONS') return next();
  const requested = String(req.headers['access-control-request-headers'] ?? '')
    .split(',')
    .map((h) => h.trim())
    .filter((h) => /^[A-Za-z0-9-]+$/.test(h) && !CORS_HEADERS.some((c) => c.toLowerCase() === h.toLowerCase()));
  res.setHeader('Access-Control-Allow-Methods', 'GET, POST, PUT, OPTIONS');
  res.setHeader('Access-Control-Allow-Headers', [...CORS_HEADERS, ...requested].join(', '));
  res.setHeader('Access-Control-Max-Age', '600');
  res.status(204).end();
}

export function errorHandler(logger: SandboxFhirOptions['logger']) {
  return (err: unknown, _req: Request, res: Response, _next: NextFunction): void => {
    if (res.headersSent) return;
    let status = 500;
    let body: OperationOutcome;
    const parserError = err as { type?: string; status?: number };
    if (err instanceof HttpError) {
      status = err.status;
      body = err.outcome;
      for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
    } else if (parserError.type === 'entity.parse.failed') {
      status = 400;
      body = outcome('error', 'structure', 'The request body is not valid JSON');
    } else if (parserError.type === 'entity.too.large') {
      status = 413;
      body = outcome('error', 'too-costly', 'The request body exceeds 5 MB');
    } else if (typeof parserError.status === 'number' && parserError.status >= 400 && parserError.status < 500) {
      status = parserError.status;
      body = outcome('error', status === 415 ? 'not-supported' : 'invalid', (err as Error).message || 'Bad request');
    } else {
      logger?.error({ err }, 'sandbox FHIR request failed');
      body = outcome('error', 'exception', 'Internal error in the sandbox FHIR server');
    }
    res.status(status).setHeader('Content-Type', FHIR_JSON);
    res.send(JSON.stringify(body));
  };
}
