/**
 * Configuration of the CDS Clients this CDS Service trusts, read from the
 * `CDS_TRUSTED_CLIENTS` environment variable.
 *
 * CDS Hooks 2.0 §Trusting CDS Clients: the CDS Service must know, out of band,
 * each client's issuer (`iss`) and the JWK Set (or JWK Set URL, `jku`) it signs
 * its JWTs with. Any `jku` presented in a JWT header must match a pre-configured
 * value; a JWT from an unknown issuer must be rejected.
 *
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 * @see https://hl7.org/fhir/us/davinci-crd/security.html
 * @module
 */
import type { JWK } from 'jose';

/** Name of the environment variable holding the trusted-client list. */
const ENV_NAME = 'CDS_TRUSTED_CLIENTS';

/** JWK members that only exist on private (or symmetric) keys. */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const;

/**
 * One trusted CDS Client: its issuer and exactly one source of verification keys.
 *
 * - `jku`: HTTPS URL of the client's JWK Set (http allowed only for 127.0.0.1 / localhost).
 *   A token whose header carries a `jku` is accepted only if it equals this value exactly.
 * - `jwks`: inline JWK Set (public keys only).
 * - `jwksFile`: path of a JSON file containing a JWK Set, resolved against `process.cwd()`
 *   and read once when the verifier is created.
 *
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
export interface TrustedClient {
  iss: string;
  jku?: string;
  jwks?: { keys: JWK[] };
  jwksFile?: string;
}

/**
 * Parses and validates the `CDS_TRUSTED_CLIENTS` value: a JSON array of
 * `{ iss, jku }`, `{ iss, jwks }` or `{ iss, jwksFile }` objects.
 *
 * An absent or blank value yields `[]` (no client is trusted, every JWT is rejected).
 *
 * @param json - raw environment variable value
 * @returns the validated clients (fresh objects containing only the known members)
 * @throws Error whose message names `CDS_TRUSTED_CLIENTS` when the value is not JSON,
 *   not an array, an element lacks `iss`, has none (or more than one) of
 *   `jku`/`jwks`/`jwksFile`, `jku` is not an https URL (http is tolerated only for
 *   127.0.0.1/localhost), an inline `jwks` is malformed or contains private key
 *   material, or an `iss` is listed twice.
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
export function parseTrustedClients(json: string | undefined): TrustedClient[] {
  if (json === undefined || json.trim() === '') return [];
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new Error(`${ENV_NAME} is not valid JSON: ${(err as Error).message}`);
  }
  return validateTrustedClients(value, ENV_NAME);
}

/**
 * Validates an already-parsed trusted-client list (shared by {@link parseTrustedClients}
 * and the verifier factory, so hand-built configurations get the same checks).
 *
 * @param value - parsed JSON (or a hand-built array)
 * @param source - label used in error messages
 * @throws Error naming `source` on any invalid element (see {@link parseTrustedClients})
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
export function validateTrustedClients(value: unknown, source: string = ENV_NAME): TrustedClient[] {
  if (!Array.isArray(value)) {
    throw new Error(`${source} must be a JSON array of {iss, jku} | {iss, jwks} | {iss, jwksFile} objects`);
  }
  const seen = new Set<string>();
  return value.map((raw: unknown, i: number): TrustedClient => {
    const where = `${source}[${i}]`;
    if (!isPlainObject(raw)) throw new Error(`${where} must be an object`);
    const { iss, jku, jwks, jwksFile } = raw;
    if (typeof iss !== 'string' || iss.trim() === '') {
      throw new Error(`${where} is missing "iss" (non-empty string)`);
    }
    if (seen.has(iss)) throw new Error(`${where}: duplicate iss "${iss}"`);
    seen.add(iss);

    const sources = [jku, jwks, jwksFile].filter((s) => s !== undefined).length;
    if (sources === 0) {
      throw new Error(`${where} (iss "${iss}") needs one of "jku", "jwks" or "jwksFile"`);
    }
    if (sources > 1) {
      throw new Error(`${where} (iss "${iss}") must set exactly one of "jku", "jwks" or "jwksFile"`);
    }

    const client: TrustedClient = { iss };
    if (jku !== undefined) {
      assertJkuUrl(jku, `${where} (iss "${iss}")`);
      client.jku = jku;
    } else if (jwks !== undefined) {
      client.jwks = assertJwks(jwks, `${where} (iss "${iss}") "jwks"`);
    } else {
      if (typeof jwksFile !== 'string' || jwksFile.trim() === '') {
        throw new Error(`${where} (iss "${iss}") "jwksFile" must be a non-empty path string`);
      }
      client.jwksFile = jwksFile;
    }
    return client;
  });
}

/**
 * Asserts a value is a JWK Set (RFC 7517 §5) containing only public keys; returns it typed.
 * Used for inline `jwks` and for `jwksFile` contents.
 *
 * @throws Error prefixed with `where` when malformed or when a key carries private material
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
export function assertJwks(value: unknown, where: string): { keys: JWK[] } {
  if (!isPlainObject(value) || !Array.isArray(value.keys)) {
    throw new Error(`${where} must be a JWK Set: {"keys": [...]}`);
  }
  value.keys.forEach((key: unknown, i: number) => {
    if (!isPlainObject(key) || typeof key.kty !== 'string') {
      throw new Error(`${where}.keys[${i}] must be a JWK object with a string "kty"`);
    }
    const leaked = PRIVATE_JWK_MEMBERS.filter((m) => m in key);
    if (leaked.length > 0) {
      throw new Error(
        `${where}.keys[${i}] contains private/secret key material (${leaked.join(', ')}); configure public keys only`,
      );
    }
  });
  return { keys: value.keys as JWK[] };
}

/**
 * Asserts a `jku` is an https URL (http only for 127.0.0.1 / localhost), so keys never travel in clear.
 *
 * @throws Error prefixed with `where`
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 */
export function assertJkuUrl(jku: unknown, where: string): asserts jku is string {
  if (typeof jku !== 'string') throw new Error(`${where} "jku" must be a URL string`);
  let url: URL;
  try {
    url = new URL(jku);
  } catch {
    throw new Error(`${where} "jku" is not a valid absolute URL: ${jku}`);
  }
  const loopback = url.hostname === '127.0.0.1' || url.hostname === 'localhost';
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:' && loopback) return;
  throw new Error(`${where} "jku" must use https (http is allowed only for 127.0.0.1/localhost): ${jku}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
