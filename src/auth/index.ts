/**
 * CDS Client authentication (CDS Hooks 2.0 §Trusting CDS Clients).
 *
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 * @module
 */
export { parseTrustedClients, validateTrustedClients } from './trusted-clients.js';
export { assertJwks } from './key-source.js';
export type { TrustedClient } from './trusted-clients.js';
export { ReplayCache } from './replay-cache.js';
export type { ReplayCacheOptions } from './replay-cache.js';
export { ALLOWED_JWT_ALGORITHMS, AuthError, ReplayCheckUnavailable, createJwtVerifier, memoryJtiRecorder } from './jwt-verifier.js';
export type { JtiRecorder, JwtVerifier, JwtVerifierOptions, VerifiedClient } from './jwt-verifier.js';
