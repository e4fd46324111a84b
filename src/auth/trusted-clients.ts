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
import { isPlainObject, parseJsonEnv, readKeySource } from './key-source.js';
import type { KeySource } from './key-source.js';

/** Name of the environment variable holding the trusted-client list. */
const ENV_NAME = 'CDS_TRUSTED_CLIENTS';

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
export interface TrustedClient extends KeySource {
  iss: string;
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
  const value = parseJsonEnv(json, ENV_NAME);
  return value === undefined ? [] : validateTrustedClients(value, ENV_NAME);
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
    const { iss } = raw;
    if (typeof iss !== 'string' || iss.trim() === '') {
      throw new Error(`${where} is missing "iss" (non-empty string)`);
    }
    if (seen.has(iss)) throw new Error(`${where}: duplicate iss "${iss}"`);
    seen.add(iss);

    return { iss, ...readKeySource(raw, `${where} (iss "${iss}")`) };
  });
}
