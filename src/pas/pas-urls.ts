/**
 * Canonical URLs and code systems of Da Vinci PAS 2.2.1 (http://hl7.org/fhir/us/davinci-pas, input/fsh in the IG
 * source) that PriorPath's $submit and $inquire read and write.
 */
export const PAS = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition';

/** `$submit` answers (Claim-submit `return`): a PASResponseBundle whose first entry is a PASClaimResponse. */
export const PAS_CLAIM_RESPONSE = `${PAS}/profile-claimresponse`;
export const PAS_RESPONSE_BUNDLE = `${PAS}/profile-pas-response-bundle`;
/** `$inquire` answers (Claim-inquiry `return`, 2.0.1 and 2.2.1): a PASInquiryResponseBundle led by a PASClaimInquiryResponse. */
export const PAS_INQUIRY_RESPONSE_BUNDLE = `${PAS}/profile-pas-inquiry-response-bundle`;
export const PAS_CLAIM_INQUIRY_RESPONSE = `${PAS}/profile-claiminquiryresponse`;
/** PASSubscription: the backport Subscription on the PAS topic, rest-hook, `full-resource` payload. */
export const PAS_SUBSCRIPTION = `${PAS}/profile-subscription`;

/** `Claim.item.extension[requestedService]`: the order (MedicationRequest, ServiceRequest, ...) an item asks for. */
export const EXT_REQUESTED_SERVICE = `${PAS}/extension-requestedService`;
/** REF-BB: an authorization number (Claim, Claim.item; ClaimResponse). $inquire searches by it. */
export const EXT_AUTHORIZATION_NUMBER = `${PAS}/extension-authorizationNumber`;
/** REF-NT: the payer's reference number for a request that has no authorization (yet). $inquire searches by it. */
export const EXT_ADMINISTRATION_REFERENCE_NUMBER = `${PAS}/extension-administrationReferenceNumber`;
export const EXT_REVIEW_ACTION = `${PAS}/extension-reviewAction`;
export const EXT_REVIEW_ACTION_CODE = `${PAS}/extension-reviewActionCode`;
export const EXT_ITEM_PRE_AUTH_ISSUE_DATE = `${PAS}/extension-itemPreAuthIssueDate`;
export const EXT_ITEM_PRE_AUTH_PERIOD = `${PAS}/extension-itemPreAuthPeriod`;
export const EXT_ITEM_REQUESTED_SERVICE_DATE = `${PAS}/extension-itemRequestedServiceDate`;
/** `Claim.item` / `ClaimResponse.item`: the submitter's trace number of an item (2000F TRN, a PASIdentifier). */
export const EXT_ITEM_TRACE_NUMBER = `${PAS}/extension-itemTraceNumber`;
export const EXT_ITEM_AUTHORIZED_PROVIDER = `${PAS}/extension-itemAuthorizedProvider`;
/**
 * PAS 2.2.1 `ClaimResponse.item.extension[authorizedItemDetail]`: what has been authorized for the item (its code,
 * modifiers, quantity, unit price). PAS 2.0.1 defines it only "if different from what was requested".
 */
export const EXT_ITEM_AUTHORIZED_DETAIL = `${PAS}/extension-itemAuthorizedDetail`;
/** PAS 2.2.1: the sub-extension of itemAuthorizedProvider naming the provider's type (2.0.1 names it `providerType`). */
export const EXT_AUTHORIZED_PROVIDER_TYPE = `${PAS}/extension-authorizedProviderType`;
export const EXT_CLAIM_RESPONSE_REVIEWER = `${PAS}/extension-claimResponseReviewer`;

/** `ClaimResponse.error` (PAS 2.2.1 PASClaimResponseBase): the FHIRPath, from the request Bundle, of what the error is about. */
export const EXT_ERROR_PATH = `${PAS}/extension-errorPath`;
/**
 * `ClaimResponse.error`: the X12 loop, segment or element the error is about. PAS 2.0.1: a string (1..1); PAS 2.2.1:
 * sub-extensions `processNote` (the note with the words) and `error` (the element, e.g. `2000F-DTP03`).
 */
export const EXT_ERROR_ELEMENT = `${PAS}/extension-errorElement`;
/** `ClaimResponse.error`: what the submitter must do (X12 889 Follow-up Action Code). */
export const EXT_ERROR_FOLLOWUP_ACTION = `${PAS}/extension-errorFollowupAction`;
/** X12 901 "Reject Reason Code" (AAA03), PAS `ClaimResponse.error.code` (X12278RejectReasonCodes, required). */
export const X12_901 = 'https://codesystem.x12.org/005010/901';
/** X12 889 "Follow-up Action Code" (AAA04). */
export const X12_889 = 'https://codesystem.x12.org/005010/889';

/** X12 306 "Action Code" (HCR01): the review outcome of an item. */
export const X12_306 = 'https://codesystem.x12.org/005010/306';
/** X12 98 "Entity Identifier Code" (NM101), for the authorized provider's type; 1P = Provider. */
export const X12_98 = 'https://codesystem.x12.org/005010/98';

export const ADJUDICATION_SYSTEM = 'http://terminology.hl7.org/CodeSystem/adjudication';

/** Identifier system of PriorPath's reference numbers for PAS requests (REF-NT, ClaimResponse.identifier). */
export const PAS_REFERENCE_SYSTEM = 'https://priorpath.dev/fhir/sid/pas-request';

export const REVIEW_ACTION_DISPLAY = { A1: 'Certified in total', A3: 'Not Certified', A4: 'Pended', C: 'Cancelled' } as const;

/** PAS Claim Update (`profile-claim-update`): the prior Claim it updates is `related.claim` with this relationship. */
export const PAS_CLAIM_UPDATE = `${PAS}/profile-claim-update`;
/** X12 1322 "Certification Type Code" (UM02): `3` cancels the request (on the Claim) or an item (on Claim.item). */
export const EXT_CERTIFICATION_TYPE = `${PAS}/extension-certificationType`;
export const X12_1322 = 'https://codesystem.x12.org/005010/1322';
/** `added` or `changed` on an item or supportingInfo entry of a Claim Update, against the prior version. */
export const EXT_INFO_CHANGED = `${PAS}/extension-infoChanged`;
/** Modifier extension: this item or supportingInfo entry is cancelled (`valueBoolean` true). */
export const EXT_INFO_CANCELLED = `${PAS}/modifierextension-infoCancelled`;
export const RELATED_CLAIM_PRIOR = 'http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship';
