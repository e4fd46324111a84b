import FHIR from 'fhirclient';

/**
 * The DTR app's launch page (SMART App Launch §EHR launch): the EHR opens `launch.html?iss=…&launch=…`; fhirclient
 * discovers the authorization endpoints from `{iss}/.well-known/smart-configuration` and redirects to authorize with
 * PKCE (S256). DTR §SMART launch: openid, fhirUser and the patient context are requested.
 */
const status = document.getElementById('status');
// Errors that stop the clinician go to the alert region, progress to the status region (shared/dom.ts announce).
const alert = document.getElementById('alert');
FHIR.oauth2
  .authorize({
    clientId: 'priorpath-dtr',
    scope: 'launch openid fhirUser patient/*.rs user/*.rs user/QuestionnaireResponse.cu user/MedicationRequest.u',
    redirectUri: './index.html',
    pkceMode: 'required',
  })
  .catch((err: unknown) => {
    if (status) status.textContent = '';
    if (alert) alert.textContent = `Could not start the documentation app: ${(err as Error).message}`;
  });
