import { ASSERTION_ALGORITHMS } from '../auth/token-service.js';

/** Scopes a payer API client may ask for (SMART v2 form; the v1 `.read` / `.write` forms are accepted too). */
export const PAYER_API_SCOPES = [
  'system/Questionnaire.rs',
  'system/ValueSet.rs',
  'system/Library.rs',
  'system/QuestionnaireResponse.cru',
  'system/Claim.c',
  'system/ClaimResponse.rs',
  'system/Subscription.cruds',
];

/**
 * `/fhir/.well-known/smart-configuration` of the payer FHIR API (SMART App Launch 2.x §Conformance; SMART Backend
 * Services): where to get a token and how to authenticate to it. Public, like `/fhir/metadata`.
 *
 * @see https://hl7.org/fhir/smart-app-launch/conformance.html
 * @see https://hl7.org/fhir/smart-app-launch/backend-services.html#discovery-requirements
 */
export function smartConfiguration(opts: { tokenEndpoint: string }): Record<string, unknown> {
  return {
    token_endpoint: opts.tokenEndpoint,
    grant_types_supported: ['client_credentials'],
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: [...ASSERTION_ALGORITHMS],
    scopes_supported: PAYER_API_SCOPES,
    capabilities: ['client-confidential-asymmetric', 'permission-v1', 'permission-v2'],
  };
}
