import type { Bundle, Resource } from '@medplum/fhirtypes';
import { z } from 'zod';
import type { OrderResource } from '../coverage/order.js';
import { isOrder } from '../coverage/order.js';
import { CRD_VERSIONS } from '../coverage/coverage-information.js';
import type { CrdVersion } from '../coverage/coverage-information.js';
import { HttpError, badRequest, outcome } from '../errors.js';
import { ShapeError, assertFhirResource } from '../fhir/fhir-shape.js';
import { ehrUrlProblem } from './ehr-address.js';
import { otherPatientField, resourceLabel, samePatientId } from '../fhir/one-patient.js';

/**
 * The CDS Hooks request as PriorPath reads it (CDS Hooks 2.0 §HTTP Request; CRD hooks.md). Lenient where real
 * clients differ (no Bundle.type, unknown context fields, empty access_token) and strict where meaning depends on it.
 */
const requestSchema = z
  .object({
    hook: z.string().min(1),
    hookInstance: z.string().min(1),
    fhirServer: z.string().url().optional(),
    fhirAuthorization: z
      .object({
        access_token: z.string(),
        token_type: z.string().optional(),
        expires_in: z.number().optional(),
        scope: z.string().optional(),
        subject: z.string().optional(),
        patient: z.string().optional(),
      })
      .passthrough()
      .nullable()
      .optional(),
    context: z
      .object({
        patientId: z.string().min(1),
        userId: z.string().optional(),
        encounterId: z.string().optional(),
        draftOrders: z.object({ resourceType: z.literal('Bundle'), entry: z.array(z.object({ resource: z.record(z.string(), z.unknown()).optional() }).passthrough()).optional() }).passthrough().optional(),
        selections: z.array(z.string()).optional(),
        dispatchedOrders: z.array(z.string()).optional(),
        'dispatched-orders': z.array(z.string()).optional(),
        order: z.string().optional(),
        performer: z.string().optional(),
      })
      .passthrough(),
    prefetch: z.record(z.string(), z.unknown()).nullable().optional(),
    extension: z.record(z.string(), z.unknown()).optional(),
  })
  .passthrough();

export type RawHookRequest = z.infer<typeof requestSchema>;

/** A validated hook call, normalised across hook shapes. */
export interface HookRequest {
  raw: RawHookRequest;
  hook: 'order-sign' | 'order-select' | 'order-dispatch';
  hookInstance: string;
  patientId: string;
  userId?: string;
  fhirServer?: string;
  accessToken?: string;
  prefetch: Record<string, unknown>;
  /** order-sign/select: the draft orders in scope (selections for order-select). */
  draftOrders: OrderResource[];
  /** Every resource in draftOrders (for reference resolution and "other orders" context). */
  draftResources: Resource[];
  /** order-dispatch: references of the dispatched orders. */
  dispatchedRefs: string[];
  configuration: Record<string, unknown>;
  /**
   * `davinci-crd.requestedVersion` read two-part (`2.2.1` is `2.2`, `2.0.1` is `2.0`: CRD declares versions without the
   * patch part), always one the service declares; absent when the request names none (design.md §4 "Versions").
   */
  requestedVersion?: CrdVersion;
}

/**
 * A `fhirServer` the service can read: an http(s) base URL (CDS Hooks §HTTP Request: "the base URL of the CDS Client's
 * FHIR server"), not on an address that is never an EHR (docs/design.md §4 "Prefetch", where the EHR is read). Else a 400 naming it.
 */
function checkFhirServer(fhirServer: string): void {
  const url = new URL(fhirServer);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badRequest(`Invalid CDS Hooks request: fhirServer must be an http(s) URL, not ${url.protocol}`, ['fhirServer']);
  const problem = ehrUrlProblem(url);
  if (problem) throw badRequest(`Invalid CDS Hooks request: fhirServer ${url.hostname} is ${problem}, which is never an EHR`, ['fhirServer']);
}

/**
 * Validates the body against the hook the service implements; throws a 400 OperationOutcome naming the field.
 * `versions` are the CRD versions the service declares in discovery (`davinci-crd.version`).
 */
export function parseHookRequest(body: unknown, expectedHook: HookRequest['hook'], versions: readonly CrdVersion[] = CRD_VERSIONS): HookRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('Request body must be a JSON object');
  const parsed = requestSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue.path.join('.');
    throw badRequest(`Invalid CDS Hooks request: ${path || '(root)'}: ${issue.message}`, path ? [path] : undefined);
  }
  const raw = parsed.data;
  // CDS Hooks 2.0 §HTTP Request (cds-r-1): fhirServer is required when fhirAuthorization is present; a request breaking
  // a CDS Hooks rule is a 400 (CRD [hook-13]), not a token PriorPath holds with nowhere to use it.
  if (raw.fhirAuthorization && !raw.fhirServer) throw badRequest('Invalid CDS Hooks request: fhirServer is required when fhirAuthorization is present', ['fhirServer']);
  if (raw.fhirServer) checkFhirServer(raw.fhirServer);
  checkFhirContent(raw);
  checkOnePatient(raw);
  if (raw.hook !== expectedHook) throw badRequest(`This service implements ${expectedHook}, not ${raw.hook}`, ['hook']);
  const ctx = raw.context;

  let draftResources: Resource[] = [];
  let draftOrders: OrderResource[] = [];
  let dispatchedRefs: string[] = [];
  if (expectedHook === 'order-dispatch') {
    dispatchedRefs = ctx.dispatchedOrders ?? ctx['dispatched-orders'] ?? (ctx.order ? [ctx.order] : []);
    if (dispatchedRefs.length === 0) throw badRequest('order-dispatch needs context.dispatchedOrders (or the 2.0.1 context.order)', ['context.dispatchedOrders']);
  } else {
    if (!ctx.draftOrders) throw badRequest(`${expectedHook} needs context.draftOrders`, ['context.draftOrders']);
    draftResources = (ctx.draftOrders.entry ?? []).map((e) => e.resource as unknown as Resource).filter((r) => r && typeof r.resourceType === 'string');
    const orders = draftResources.filter(isOrder);
    if (expectedHook === 'order-select' && ctx.selections) {
      const selected = new Set(ctx.selections);
      draftOrders = orders.filter((m) => selected.has(`${m.resourceType}/${m.id}`));
    } else draftOrders = orders;
  }

  const token = raw.fhirAuthorization?.access_token;
  const requestedVersion = readRequestedVersion(raw.extension?.['davinci-crd.requestedVersion'], versions);
  const configuration = raw.extension?.['davinci-crd.configuration'];
  return {
    raw,
    hook: expectedHook,
    hookInstance: raw.hookInstance,
    patientId: ctx.patientId,
    userId: ctx.userId,
    fhirServer: raw.fhirServer?.replace(/\/+$/, ''),
    accessToken: token && token.trim() !== '' ? token : undefined,
    prefetch: (raw.prefetch ?? {}) as Record<string, unknown>,
    draftOrders,
    draftResources,
    dispatchedRefs,
    configuration: typeof configuration === 'object' && configuration !== null ? (configuration as Record<string, unknown>) : {},
    ...(requestedVersion ? { requestedVersion } : {}),
  };
}

const VERSION_PATH = ['extension.davinci-crd.requestedVersion'];

/**
 * The CRD version the client asks for (CRD 2.2 deviations.md "CRD Version declaration" [dev-3]): the first two parts
 * of the IG's version, one of those the service declares. A version the service does not declare is a 400
 * `not-supported` naming the declared ones, never an answer in another version's shape: the versions' coverage
 * information differs in meaning (2.2's `indeterminate`, `detail`, `expiry-date`), and the extension exists so that a
 * server knows which one the client reads. The client asks again with a declared version, or without the extension.
 * @see https://hl7.org/fhir/us/davinci-crd/STU2.2/deviations.html#crd-version-declaration
 */
function readRequestedVersion(value: unknown, versions: readonly CrdVersion[]): CrdVersion | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw badRequest('extension.davinci-crd.requestedVersion must be a string such as "2.2"', VERSION_PATH);
  const twoPart = /^\s*(\d+\.\d+)(\.\d+)?\s*$/.exec(value)?.[1];
  const declared = versions.find((v) => v === twoPart);
  if (declared) return declared;
  const named = value.length > 20 ? `${value.slice(0, 20)}…` : value;
  throw new HttpError(400, outcome('error', 'not-supported', `CRD version ${JSON.stringify(named)} is not supported; this service answers in ${versions.join(' or ')} (davinci-crd.version in discovery)`, VERSION_PATH));
}

/**
 * Every FHIR resource the request carries (draft orders, prefetch values) must have the JSON shape FHIR defines
 * before anything reads it: a 400 names the first path that does not. A prefetch value is a resource, or null /
 * absent for "not prefetched" (CDS Hooks §Prefetch).
 */
function checkFhirContent(raw: RawHookRequest): void {
  const check = (value: unknown, path: string) => {
    try {
      assertFhirResource(value, path);
    } catch (err) {
      if (err instanceof ShapeError) throw badRequest(`Invalid CDS Hooks request: ${err.message}`, [err.path]);
      throw err;
    }
  };
  if (raw.context.draftOrders !== undefined) check(raw.context.draftOrders, 'context.draftOrders');
  for (const [key, value] of Object.entries(raw.prefetch ?? {})) {
    if (value === null || value === undefined) continue;
    check(value, `prefetch.${key}`);
  }
}

/**
 * The draft orders and prefetched data must be about the patient in `context.patientId`: a resource naming another
 * patient (a `Patient/…` reference, relative, absolute or versioned) would lend that patient's record to this one's
 * decision, so it is a 400 naming where it is, like a prefetched Patient that is not the context patient. The rule is
 * the one every record path applies (src/fhir/one-patient.ts, docs/design.md §4 "One patient").
 */
function checkOnePatient(raw: RawHookRequest): void {
  const samePatient = samePatientId(raw.context.patientId);
  const check = (value: unknown, path: string) => {
    for (const r of resourcesOf(value)) {
      if (otherPatientField(r, samePatient)) throw badRequest(`${path} holds ${resourceLabel(r)} about another patient than context.patientId`, [path]);
    }
  };
  if (raw.context.draftOrders !== undefined) check(raw.context.draftOrders, 'context.draftOrders');
  for (const [key, value] of Object.entries(raw.prefetch ?? {})) check(value, `prefetch.${key}`);
}

/** Resources of a prefetch value: a searchset Bundle's entries, or a single resource. */
export function resourcesOf(value: unknown): Resource[] {
  if (!value || typeof value !== 'object') return [];
  const r = value as Resource;
  if (r.resourceType === 'Bundle') return ((r as Bundle).entry ?? []).map((e) => e.resource).filter((x): x is Resource => !!x && typeof x.resourceType === 'string');
  return typeof r.resourceType === 'string' ? [r] : [];
}
