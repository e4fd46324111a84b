/**
 * The clients registered for the payer FHIR API, read from `PAYER_API_CLIENTS` (design.md §8 "Who may call"): SMART
 * Backend Services clients, each with its client id, one source of public keys and the `system/` scopes it may be
 * granted.
 *
 * @see https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-client-communicating-public-keys
 * @module
 */
import type { JWK } from 'jose';
import { parseSystemScope } from './scopes.js';
import type { SystemScope } from './scopes.js';
import { assertJkuUrl, assertJwks } from './trusted-clients.js';

const ENV_NAME = 'PAYER_API_CLIENTS';

/**
 * One registered payer API client. Exactly one of `jku` (its JWK Set URL: the only URL ever fetched for it; a `jku`
 * in an assertion header must equal it), `jwks` (inline public keys) or `jwksFile` (a JSON JWK Set file, read at
 * start relative to the working directory).
 */
export interface PayerClient {
  clientId: string;
  jku?: string;
  jwks?: { keys: JWK[] };
  jwksFile?: string;
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
  if (json === undefined || json.trim() === '') return [];
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new Error(`${ENV_NAME} is not valid JSON: ${(err as Error).message}`);
  }
  return validatePayerClients(value, ENV_NAME);
}

/** Validates an already-parsed client list (also for hand-built lists, e.g. the sandbox EHR's registration). */
export function validatePayerClients(value: unknown, source = ENV_NAME): PayerClient[] {
  if (!Array.isArray(value)) throw new Error(`${source} must be a JSON array of {clientId, jku | jwks | jwksFile, scopes}`);
  const seen = new Set<string>();
  return value.map((raw: unknown, i) => {
    const where = `${source}[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${where} must be an object`);
    const { clientId, jku, jwks, jwksFile, scopes } = raw as Record<string, unknown>;
    if (typeof clientId !== 'string' || clientId.trim() === '' || clientId.length > 200) throw new Error(`${where} needs "clientId" (a non-empty string)`);
    if (seen.has(clientId)) throw new Error(`${where}: duplicate clientId "${clientId}"`);
    seen.add(clientId);
    const sources = [jku, jwks, jwksFile].filter((s) => s !== undefined).length;
    if (sources !== 1) throw new Error(`${where} (clientId "${clientId}") must set exactly one of "jku", "jwks" or "jwksFile"`);
    const list = typeof scopes === 'string' ? scopes.split(/\s+/).filter(Boolean) : scopes;
    if (!Array.isArray(list) || list.length === 0 || !list.every((s) => typeof s === 'string')) {
      throw new Error(`${where} (clientId "${clientId}") needs "scopes": system/ scopes such as "system/Claim.c"`);
    }
    const grants = list.map((s: string) => {
      const parsed = parseSystemScope(s);
      if (!parsed) throw new Error(`${where} (clientId "${clientId}"): "${s}" is not a system/ scope (e.g. system/Questionnaire.rs)`);
      return parsed;
    });
    const client: PayerClient = { clientId, scopes: list as string[], grants };
    if (jku !== undefined) {
      assertJkuUrl(jku, `${where} (clientId "${clientId}")`);
      client.jku = jku;
    } else if (jwks !== undefined) {
      client.jwks = assertJwks(jwks, `${where} (clientId "${clientId}") "jwks"`);
    } else {
      if (typeof jwksFile !== 'string' || jwksFile.trim() === '') throw new Error(`${where} (clientId "${clientId}") "jwksFile" must be a path`);
      client.jwksFile = jwksFile;
    }
    return client;
  });
}
