/**
 * SMART `system/` scopes for the payer FHIR API (SMART App Launch 2.x §Scopes for requesting clinical data; design.md
 * §8 "Who may call"). A scope names a resource type (or `*`) and permissions: SMART v2 letters `c r u d s` (create,
 * read, update, delete, search) in that order, or the SMART v1 forms `read` (= `rs`), `write` (= `cud`) and `*`
 * (= `cruds`). Only `system/` scopes are granted here: the payer API serves back-end systems, not users.
 *
 * @see https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
 * @module
 */

/** A permission on a resource type (SMART v2 letter). */
export type Permission = 'c' | 'r' | 'u' | 'd' | 's';

const ORDER: readonly Permission[] = ['c', 'r', 'u', 'd', 's'];
const V1: Record<string, Permission[]> = { read: ['r', 's'], write: ['c', 'u', 'd'], '*': [...ORDER] };
const SCOPE = /^system\/(\*|[A-Z][A-Za-z]{0,63})\.([a-z*]+)(\?.*)?$/;

/** One parsed `system/` scope: the type (`*` for every type) and its permissions. */
export interface SystemScope {
  resourceType: string;
  permissions: Set<Permission>;
}

/**
 * Parses one scope string; `undefined` when it is not a well-formed `system/` scope (e.g. `patient/…`, `launch`,
 * a v2 permission string out of order, or a v2 scope with a query, which this server does not grant).
 *
 * @see https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-fhir-resources
 */
export function parseSystemScope(scope: string): SystemScope | undefined {
  const m = SCOPE.exec(scope);
  if (!m || m[3] !== undefined) return undefined;
  const [, resourceType, perms] = m;
  const v1 = V1[perms];
  if (v1) return { resourceType, permissions: new Set(v1) };
  // v2: a non-empty subsequence of "cruds", each letter once, in order.
  let at = 0;
  const permissions = new Set<Permission>();
  for (const ch of perms) {
    const i = ORDER.indexOf(ch as Permission, at);
    if (i < 0) return undefined;
    permissions.add(ORDER[i]);
    at = i + 1;
  }
  return permissions.size > 0 ? { resourceType, permissions } : undefined;
}

/** Formats a scope in SMART v2 form (`system/Claim.c`). */
export function formatScope(s: SystemScope): string {
  return `system/${s.resourceType}.${ORDER.filter((p) => s.permissions.has(p)).join('')}`;
}

/** Splits a space-separated scope parameter and parses the `system/` scopes in it (others are dropped). */
export function parseScopes(scope: string): SystemScope[] {
  return scope
    .split(/\s+/)
    .filter(Boolean)
    .map(parseSystemScope)
    .filter((s): s is SystemScope => s !== undefined);
}

/** Whether granted scopes allow `permission` on `resourceType` (a `*` type covers every type). */
export function allows(granted: readonly SystemScope[], resourceType: string, permission: Permission): boolean {
  return granted.some((g) => (g.resourceType === '*' || g.resourceType === resourceType) && g.permissions.has(permission));
}

/**
 * What a client gets for what it asked (SMART §Scopes: the server may grant fewer scopes than requested): every
 * requested scope the registration covers whole is granted as written; one it covers in part is narrowed to the
 * registered types and permissions (in v2 form); one it does not cover at all is dropped.
 *
 * @returns the granted scope strings, in request order, without duplicates (empty: nothing could be granted)
 * @see https://hl7.org/fhir/smart-app-launch/backend-services.html#scopes
 */
export function grantScopes(requested: string, registered: readonly SystemScope[]): string[] {
  const out: string[] = [];
  const add = (s: string) => {
    if (!out.includes(s)) out.push(s);
  };
  for (const raw of requested.split(/\s+/).filter(Boolean)) {
    const want = parseSystemScope(raw);
    if (!want) continue;
    const whole = [...want.permissions].every((p) => (want.resourceType === '*' ? registered.some((r) => r.resourceType === '*' && r.permissions.has(p)) : allows(registered, want.resourceType, p)));
    if (whole) {
      add(raw);
      continue;
    }
    for (const r of registered) {
      if (want.resourceType !== '*' && r.resourceType !== '*' && r.resourceType !== want.resourceType) continue;
      const permissions = new Set([...want.permissions].filter((p) => r.permissions.has(p)));
      if (permissions.size === 0) continue;
      add(formatScope({ resourceType: want.resourceType === '*' ? r.resourceType : want.resourceType, permissions }));
    }
  }
  return out;
}
