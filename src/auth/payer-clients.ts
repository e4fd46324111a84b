/**
 * The clients registered for the payer FHIR API, read from `PAYER_API_CLIENTS` (design.md §8 "Who may call"): SMART
 * Backend Services clients, each with its client id, one source of public keys and the `system/` scopes it may be
 * granted.
 *
 * @see https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-client-communicating-public-keys
 * @module
 */
import { parseSystemScope } from './scopes.js';
import type { SystemScope } from './scopes.js';
import { isPlainObject, parseJsonEnv, readKeySource } from './key-source.js';
import type { KeySource } from './key-source.js';

const ENV_NAME = 'PAYER_API_CLIENTS';

/**
 * One registered payer API client. Exactly one of `jku` (its JWK Set URL: the only URL ever fetched for it; a `jku`
 * in an assertion header must equal it), `jwks` (inline public keys) or `jwksFile` (a JSON JWK Set file, read at
 * start relative to the working directory).
 */
export interface PayerClient extends KeySource {
  clientId: string;
  /** The scopes as registered (strings), and parsed. */
  scopes: string[];
  grants: SystemScope[];
}

/**
 * Parses and validates `PAYER_API_CLIENTS`: a JSON array of `{clientId, jku | jwks | jwksFile, scopes}`, where
 * `scopes` is an array or a space-separated string of `system/` scopes. Unset or blank: no client (every token request
 * is refused).
 *
 * @throws Error naming `PAYER_API_CLIENTS` and the element for anything malformed
 * @see https://hl7.org/fhir/smart-app-launch/backend-services.html
 */
export function parsePayerClients(json: string | undefined): PayerClient[] {
  const value = parseJsonEnv(json, ENV_NAME);
  return value === undefined ? [] : validatePayerClients(value, ENV_NAME);
}

/** Validates an already-parsed client list (also for hand-built lists, e.g. the sandbox EHR's registration). */
export function validatePayerClients(value: unknown, source = ENV_NAME): PayerClient[] {
  if (!Array.isArray(value)) throw new Error(`${source} must be a JSON array of {clientId, jku | jwks | jwksFile, scopes}`);
  const seen = new Set<string>();
  return value.map((raw: unknown, i) => {
    const where = `${source}[${i}]`;
    if (!isPlainObject(raw)) throw new Error(`${where} must be an object`);
    const { clientId, scopes } = raw;
    if (typeof clientId !== 'string' || clientId.trim() === '' || clientId.length > 200) throw new Error(`${where} needs "clientId" (a non-empty string)`);
    if (seen.has(clientId)) throw new Error(`${where}: duplicate clientId "${clientId}"`);
    seen.add(clientId);
    const keys = readKeySource(raw, `${where} (clientId "${clientId}")`);
    const list = typeof scopes === 'string' ? scopes.split(/\s+/).filter(Boolean) : scopes;
    if (!Array.isArray(list) || list.length === 0 || !list.every((s) => typeof s === 'string')) {
      throw new Error(`${where} (clientId "${clientId}") needs "scopes": system/ scopes such as "system/Claim.c"`);
    }
    const grants = list.map((s: string) => {
      const parsed = parseSystemScope(s);
      if (!parsed) throw new Error(`${where} (clientId "${clientId}"): "${s}" is not a system/ scope (e.g. system/Questionnaire.rs)`);
      return parsed;
    });
    return { clientId, scopes: list as string[], grants, ...keys };
  });
}
