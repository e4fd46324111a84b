import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

/**
 * An expected failure with its HTTP status and OperationOutcome (design.md §2 "Platform conventions": handlers throw,
 * one middleware answers). We keep our own small type rather than Medplum's so the status is explicit at the throw
 * site.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly outcome: OperationOutcome,
    readonly headers: Record<string, string> = {},
  ) {
    super(outcome.issue?.[0]?.diagnostics ?? outcome.issue?.[0]?.details?.text ?? `HTTP ${status}`);
    this.name = 'HttpError';
  }
}

/**
 * An expected failure of the domain (the coverage core, the policy engine): an OperationOutcome issue code and a
 * message, no HTTP status. The edges' one error middleware maps the code to a status ({@link statusForIssue}), so
 * the core stays free of HTTP (design.md §2).
 */
export class DomainError extends Error {
  constructor(
    readonly code: OperationOutcomeIssue['code'],
    message: string,
    readonly expression?: string[],
  ) {
    super(message);
    this.name = 'DomainError';
  }

  get outcome(): OperationOutcome {
    return outcome('error', this.code, this.message, this.expression);
  }
}

const STATUS_BY_ISSUE: Partial<Record<NonNullable<OperationOutcomeIssue['code']>, number>> = {
  login: 401,
  unknown: 401,
  forbidden: 403,
  security: 403,
  suppressed: 403,
  'not-found': 404,
  deleted: 404,
  conflict: 409,
  duplicate: 409,
  incomplete: 412,
  'too-costly': 413,
  'business-rule': 422,
  processing: 422,
  throttled: 429,
  exception: 500,
  timeout: 500,
  transient: 503,
  'lock-error': 500,
  'no-store': 500,
};

/** The HTTP status for an OperationOutcome issue code (FHIR R4 http.html "Status codes"); 400 for input problems. */
export function statusForIssue(code: OperationOutcomeIssue['code']): number {
  return (code && STATUS_BY_ISSUE[code]) || 400;
}

/**
 * The one `Retry-After` of every 503 the service sends (RFC 9110 §10.2.3; design.md §4 "Errors"), in seconds. Every
 * cause of a 503 here is storage the request needs but cannot reach or settle right now: the store still opening at
 * start (ready within 2 s, design.md §9), PostgreSQL unreachable or restarting (a statement is given up after 5 s),
 * the write-behind queue full through an outage, the JWT replay record or the payer API's signing key (both kept in
 * storage) unreadable, an order that kept changing while it was decided, a replica draining. 5 s covers the opening
 * and one statement bound, so a retry finds the store open or the pool reconnected rather than adding to the load of
 * an outage; a client that retries sooner is not refused, only told when it is worth it. One value, so a client
 * meets the same advice whichever path failed.
 */
export const RETRY_AFTER_SECONDS = 5;

/** The headers of every 503: `Retry-After` {@link RETRY_AFTER_SECONDS}. */
export const retryAfterHeaders = (): Record<string, string> => ({ 'Retry-After': String(RETRY_AFTER_SECONDS) });

/**
 * 503 `transient` with `Retry-After` (FHIR R4 http.html "Status codes"; RFC 9110 §15.6.4): something the request needs
 * is unavailable for now; the same request may be sent again.
 */
export const serviceUnavailable = (msg: string, severity: OperationOutcomeIssue['severity'] = 'error') =>
  new HttpError(503, outcome(severity, 'transient', msg), retryAfterHeaders());

/** A DomainError as the HttpError an edge answers with. Other errors pass through unchanged. */
export function toHttpError(err: unknown): unknown {
  if (!(err instanceof DomainError)) return err;
  const status = statusForIssue(err.code);
  // A transient failure tells the client when to try again (RFC 9110 §10.2.3).
  return new HttpError(status, err.outcome, status === 503 ? retryAfterHeaders() : {});
}

/** Whether an error is a transient domain failure (storage unreachable, …): the edges answer it 503. */
export const isTransient = (err: unknown): boolean => err instanceof DomainError && statusForIssue(err.code) === 503;

/** An OperationOutcome with one issue. */
export function outcome(
  severity: OperationOutcomeIssue['severity'],
  code: OperationOutcomeIssue['code'],
  diagnostics: string,
  expression?: string[],
): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics, ...(expression ? { expression } : {}) }] };
}

/** 400 `invalid`: a malformed request, or one naming no payer PriorPath serves (design.md §4 "Errors"); `expression` names the element. */
export const badRequest = (msg: string, expression?: string[]) => new HttpError(400, outcome('error', 'invalid', msg, expression));
/** 401 `login`: the same answer for every failed authentication, with no hint which check failed (design.md §4 "Authentication"). */
export const unauthorized = () => new HttpError(401, outcome('error', 'login', 'Authentication failed'), { 'WWW-Authenticate': 'Bearer' });
/** 404 `not-found`: an unknown service, resource or operation. */
export const notFound = (msg: string) => new HttpError(404, outcome('error', 'not-found', msg));
/** 405 `not-supported` with the `Allow` header listing the methods the path takes (RFC 9110 §15.5.6). */
export const methodNotAllowed = (allow: string) =>
  new HttpError(405, outcome('error', 'not-supported', `Method not allowed; use ${allow}`), { Allow: allow });
/** 412 `incomplete`: prefetch data missing that the EHR could not give either (CDS Hooks 2.0 §Prefetch; design.md §4). */
export const preconditionFailed = (msg: string, expression?: string[]) =>
  new HttpError(412, outcome('error', 'incomplete', msg, expression));
/** 413 `too-costly`: a body over the limit, with or without Content-Length (design.md §4 "Errors"). */
export const payloadTooLarge = (limit: number) =>
  new HttpError(413, outcome('error', 'too-costly', `Request body exceeds ${limit} bytes`));
/** 415 `not-supported`: a body that is not JSON (design.md §4 "Errors"). */
export const unsupportedMediaType = () =>
  new HttpError(415, outcome('error', 'not-supported', 'Request body must be JSON (application/json or application/fhir+json), sent without Content-Encoding'));
