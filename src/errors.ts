import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

/**
 * An expected failure with its HTTP status and OperationOutcome (style.md: handlers throw, one middleware answers).
 * We keep our own small type rather than Medplum's so the status is explicit at the throw site.
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

/** An OperationOutcome with one issue. */
export function outcome(
  severity: OperationOutcomeIssue['severity'],
  code: OperationOutcomeIssue['code'],
  diagnostics: string,
  expression?: string[],
): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics, ...(expression ? { expression } : {}) }] };
}

export const badRequest = (msg: string, expression?: string[]) => new HttpError(400, outcome('error', 'invalid', msg, expression));
export const unauthorized = () => new HttpError(401, outcome('error', 'login', 'Authentication failed'), { 'WWW-Authenticate': 'Bearer' });
export const notFound = (msg: string) => new HttpError(404, outcome('error', 'not-found', msg));
export const methodNotAllowed = (allow: string) =>
  new HttpError(405, outcome('error', 'not-supported', `Method not allowed; use ${allow}`), { Allow: allow });
export const preconditionFailed = (msg: string, expression?: string[]) =>
  new HttpError(412, outcome('error', 'incomplete', msg, expression));
export const payloadTooLarge = (limit: number) =>
  new HttpError(413, outcome('error', 'too-costly', `Request body exceeds ${limit} bytes`));
export const unsupportedMediaType = () =>
  new HttpError(415, outcome('error', 'not-supported', 'Request body must be JSON (application/json or application/fhir+json)'));
