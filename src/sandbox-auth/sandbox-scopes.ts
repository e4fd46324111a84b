/**
 * What the sandbox SMART server grants and what a sandbox access token allows (SMART App Launch 2.x §Scopes). The
 * demo clinician may read and write any record of the sandbox, so an app gets exactly the `patient/` and `user/`
 * scopes it asked for (plus the launch and identity scopes it asked for), and nothing else: no `system/` scope, no
 * scope it did not request.
 *
 * @see https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
 * @module
 */

/** An interaction on a resource type, as a SMART v2 permission letter. */
export type SandboxPermission = 'c' | 'r' | 'u' | 'd' | 's';

/** What a token may do on the sandbox FHIR server (SandboxAuth.checkAccess): everything asked, only within one patient's record, or nothing. */
export type SandboxAccess = 'ok' | 'invalid-token' | 'insufficient-scope' | { patient: string | undefined };

const IDENTITY = new Set([
  'openid',
  'fhirUser',
  'profile',
  'launch',
  'launch/patient',
  'launch/encounter',
  'online_access',
]);
const CLINICAL = /^(patient|user)\/(\*|[A-Z][A-Za-z]{0,63})\.(read|write|\*|c?r?u?d?s?)$/;
const V1: Record<string, string> = { read: 'rs', write: 'cud', '*': 'cruds' };

/** The requested scopes the sandbox grants, in request order: identity/launch scopes and well-formed clinical scopes. */
export function grantableScopes(requested: readonly string[]): string[] {
  return [...new Set(requested.filter((s) => IDENTITY.has(s) || (CLINICAL.test(s) && !s.endsWith('.'))))];
}

/**
 * Whether a granted scope string lets its holder perform `permission` on `resourceType`; with `level`, only through
 * scopes of that level (`patient/` or `user/`).
 */
export function scopeAllows(scope: string, resourceType: string, permission: SandboxPermission, level?: 'patient' | 'user'): boolean {
  return scope
    .split(/\s+/)
    .map((s) => CLINICAL.exec(s))
    .some((m) => !!m && (!level || m[1] === level) && (m[2] === '*' || m[2] === resourceType) && (V1[m[3]] ?? m[3]).includes(permission));
}

/**
 * Whether some of `needs` are granted only through `patient/` scopes: then the token reaches only the launched
 * patient's record for them (SMART App Launch 2.x §Patient-specific scopes: "access to ... data about a single
 * patient"), where a `user/` scope reaches whatever the user may see.
 */
export function patientBound(scope: string, needs: readonly (readonly [string, SandboxPermission])[]): boolean {
  return needs.some(([type, permission]) => !scopeAllows(scope, type, permission, 'user'));
}
