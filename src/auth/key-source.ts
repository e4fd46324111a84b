/**
 * What the two client registries share (CDS Clients in `CDS_TRUSTED_CLIENTS`, payer API clients in
 * `PAYER_API_CLIENTS`): a JSON list read from the environment, and for each client exactly one source of public keys
 * (a `jku` URL, an inline `jwks`, or a `jwksFile`), checked the same way for both.
 *
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 * @see https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-client-communicating-public-keys
 * @module
 */
import { createPublicKey } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { JWK } from 'jose';

/** JWK members that only exist on private (or symmetric) keys. */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const;

/** Exactly one of these is set: where a client's verification keys come from. */
export interface KeySource {
  /** HTTPS URL of the client's JWK Set (http only for 127.0.0.1 / localhost); a JWT header `jku` must equal it. */
  jku?: string;
  /** Inline JWK Set (public keys only). */
  jwks?: { keys: JWK[] };
  /** Path of a JSON JWK Set file, relative to the working directory, read once at start. */
  jwksFile?: string;
}

/**
 * Parses an environment variable holding a JSON client list. Unset or blank: `undefined` (no client).
 *
 * @throws Error naming the variable when the value is not JSON
 */
export function parseJsonEnv(json: string | undefined, envName: string): unknown {
  if (json === undefined || json.trim() === '') return undefined;
  try {
    return JSON.parse(json);
  } catch (err) {
    throw new Error(`${envName} is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * Reads a client's key source from its registration: exactly one of `jku`, `jwks`, `jwksFile`, each well formed.
 *
 * @param who - names the element in error messages, e.g. `CDS_TRUSTED_CLIENTS[0] (iss "x")`
 * @throws Error prefixed with `who` when none or several are set, or the one set is malformed
 */
export function readKeySource(raw: Record<string, unknown>, who: string): KeySource {
  const { jku, jwks, jwksFile } = raw;
  const sources = [jku, jwks, jwksFile].filter((s) => s !== undefined).length;
  if (sources === 0) throw new Error(`${who} needs one of "jku", "jwks" or "jwksFile"`);
  if (sources > 1) throw new Error(`${who} must set exactly one of "jku", "jwks" or "jwksFile"`);
  if (jku !== undefined) {
    assertJkuUrl(jku, who);
    return { jku };
  }
  if (jwks !== undefined) return { jwks: assertJwks(jwks, `${who} "jwks"`) };
  if (typeof jwksFile !== 'string' || jwksFile.trim() === '') throw new Error(`${who} "jwksFile" must be a non-empty path string`);
  return { jwksFile };
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
 * Reads a `jwksFile` (resolved against the working directory) and checks it is a JWK Set of public keys.
 *
 * @throws Error prefixed with `where` when the file cannot be read, is not JSON, or is not such a JWK Set
 */
export function readJwksFile(path: string, where: string): { keys: JWK[] } {
  const file = resolve(process.cwd(), path);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${where}: cannot read jwksFile ${file}: ${(err as Error).message}`, { cause: err });
  }
  return assertJwks(parsed, `${where} jwksFile ${file}`);
}

/**
 * Checks that a registered JWK Set can verify anything: it holds at least one key, and every key is a public key
 * Node can import (an EC point on its curve, an RSA modulus and exponent). Run at start-up on `jwks` and `jwksFile`
 * sources, so a key set that would refuse every client is a bad setting named at start (design.md §3), not a 401 on
 * each call later. A `jku` set is fetched at run time and checked then.
 *
 * @throws Error prefixed with `where` naming the first unusable key
 */
export function assertUsableKeys(jwks: { keys: JWK[] }, where: string): void {
  if (jwks.keys.length === 0) throw new Error(`${where} holds no key: register at least one public key`);
  jwks.keys.forEach((key, i) => {
    try {
      createPublicKey({ key: key as JsonWebKey, format: 'jwk' });
    } catch (err) {
      throw new Error(`${where}.keys[${i}]${key.kid ? ` (kid "${key.kid}")` : ''} is not a usable public key: ${(err as Error).message}`, { cause: err });
    }
  });
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

/** A JSON object (not null, not an array). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
