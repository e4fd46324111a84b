import type { Bundle, BundleEntry, ClaimItem, ClaimResponse, ClaimResponseError, ClaimResponseItem, Extension, PractitionerRole, Reference, Resource } from '@medplum/fhirtypes';
import type { ItemActionCode, PasStatus } from '../storage/storage.js';
import type { ItemDecision, ItemError } from './adjudicate.js';
import {
  ADJUDICATION_SYSTEM,
  EXT_ADMINISTRATION_REFERENCE_NUMBER,
  EXT_AUTHORIZATION_NUMBER,
  EXT_AUTHORIZED_PROVIDER_TYPE,
  EXT_CLAIM_RESPONSE_REVIEWER,
  EXT_ERROR_ELEMENT,
  EXT_ERROR_FOLLOWUP_ACTION,
  EXT_ERROR_PATH,
  EXT_ITEM_AUTHORIZED_DETAIL,
  EXT_ITEM_AUTHORIZED_PROVIDER,
  EXT_ITEM_PRE_AUTH_ISSUE_DATE,
  EXT_ITEM_PRE_AUTH_PERIOD,
  EXT_ITEM_REQUESTED_SERVICE_DATE,
  EXT_ITEM_TRACE_NUMBER,
  EXT_REVIEW_ACTION,
  EXT_REVIEW_ACTION_CODE,
  PAS_CLAIM_INQUIRY_RESPONSE,
  PAS_CLAIM_RESPONSE,
  PAS_INQUIRY_RESPONSE_BUNDLE,
  PAS_REFERENCE_SYSTEM,
  PAS_RESPONSE_BUNDLE,
  REVIEW_ACTION_DISPLAY,
  X12_306,
  X12_889,
  X12_901,
  X12_98,
} from './pas-urls.js';
import type { PasRequest } from './request-bundle.js';
import { pasVersionOf } from './pas-version.js';
import type { PasVersion } from './pas-version.js';
import { byCodePoint } from '../code-point-order.js';

/**
 * The submission-level summary of item decisions: pended if any item is, cancelled when every item was cancelled
 * (PAS Claim Update), else approved/denied/partial over the items still asked for.
 */
export function summarize(items: ItemDecision[]): { status: PasStatus; reviewAction: ItemActionCode } {
  if (items.some((i) => i.reviewAction === 'A4')) return { status: 'pended', reviewAction: 'A4' };
  const live = items.filter((i) => i.reviewAction !== 'C');
  if (live.length === 0) return { status: 'cancelled', reviewAction: 'C' };
  if (live.every((i) => i.reviewAction === 'A1')) return { status: 'approved', reviewAction: 'A1' };
  if (live.every((i) => i.reviewAction === 'A3')) return { status: 'denied', reviewAction: 'A3' };
  return { status: 'partial', reviewAction: 'A1' };
}

function reviewAction(d: ItemDecision): Extension {
  return {
    url: EXT_REVIEW_ACTION,
    extension: [
      { url: EXT_REVIEW_ACTION_CODE, valueCodeableConcept: { coding: [{ system: X12_306, code: d.reviewAction, display: REVIEW_ACTION_DISPLAY[d.reviewAction] }] } },
      ...(d.authorization ? [{ url: 'number', valueString: d.authorization.number }] : []),
    ],
  };
}

/** Every `reference` string inside a resource (extensions and nested elements included). */
function referencesIn(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) referencesIn(v, out);
  else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'reference' && typeof v === 'string') out.push(v);
      else if (k !== 'contained') referencesIn(v, out);
    }
  }
  return out;
}

/**
 * The resources a response references, and transitively what those reference (a PractitionerRole's Practitioner and
 * Organization), each exactly once, with the fullUrl and id they had in the request (PAS: every resource referenced
 * SHALL be in the Bundle, once; spec-33). References the request Bundle cannot resolve are left as they are.
 */
function echoed(req: PasRequest, refs: (Reference | undefined)[], exclude: Set<Resource>): BundleEntry[] {
  const out: BundleEntry[] = [];
  const seen = new Set<Resource>(exclude);
  const queue = refs.map((r) => r?.reference).filter((r): r is string => !!r);
  while (queue.length > 0) {
    const ref = queue.shift()!;
    const l = ref.startsWith('#') ? undefined : req.index.resolve(ref);
    if (!l || seen.has(l.resource)) continue;
    seen.add(l.resource);
    out.push({ fullUrl: l.fullUrl ?? `urn:uuid:${l.resource.resourceType}-${l.resource.id ?? out.length}`, resource: l.resource });
    queue.push(...referencesIn(l.resource));
  }
  return out;
}

/**
 * The provider an item is authorized for: PAS itemAuthorizedProvider.provider is a Practitioner or an Organization
 * (Reference(PASPractitioner or PASOrganization): never the PractitionerRole itself), so a requesting PractitionerRole
 * is named by its Practitioner, else its Organization, whichever the request Bundle holds: the response echoes what it
 * references and may reference nothing it does not carry (PAS: every referenced resource is in the Bundle). A role
 * whose Practitioner and Organization are both absent names its Practitioner by identifier when it gives one (a
 * logical reference, resolved by no one), else no provider is named.
 */
function authorizedProvider(req: PasRequest, requestor: Reference | undefined): Reference | undefined {
  if (!requestor?.reference) return undefined;
  const l = req.index.resolve(requestor.reference);
  const held = (ref: Reference | undefined, type: 'Practitioner' | 'Organization'): Reference | undefined =>
    ref?.reference && !ref.reference.startsWith('#') && req.index.resolve(ref.reference)?.resource.resourceType === type ? { reference: ref.reference } : undefined;
  if (l?.resource.resourceType === 'PractitionerRole') {
    const role = l.resource as PractitionerRole;
    const practitioner = role.practitioner?.identifier?.value ? { identifier: role.practitioner.identifier, ...(role.practitioner.display ? { display: role.practitioner.display } : {}) } : undefined;
    return held(role.practitioner, 'Practitioner') ?? held(role.organization, 'Organization') ?? practitioner;
  }
  return held(requestor, 'Practitioner') ?? held(requestor, 'Organization');
}

/**
 * What an item certified in total (A1) is authorized for, PAS 2.2.1 `itemAuthorizedDetail` ("the details of what has
 * been authorized for this item"; a must-support element a payer SHALL be capable of returning, conf-6): the Claim
 * item's own code and modifiers, since PriorPath certifies what was asked and never a substitute, and its quantity
 * and unit price when the policy judged that quantity (its amount limits read it: adjudicate.ts withItemQuantity).
 * Undefined when the item states none of them. PAS 2.0.1 defines the extension only "if different from what was
 * requested", which a certification in total never is, so 2.0.1 answers leave it out.
 */
export function authorizedItemDetail(item: ClaimItem, opts: { quantityJudged?: boolean } = {}): Extension | undefined {
  // Only a quantity the policy judged is certified (design.md §8 "What PAS certifies"): one whose amount limits read
  // it; a policy stating no amount limit certifies the drug for the order, never an amount nobody judged.
  const quantity = opts.quantityJudged !== false && item.quantity;
  const parts: Extension[] = [
    ...(item.productOrService ? [{ url: 'productOrServiceCode', valueCodeableConcept: item.productOrService }] : []),
    ...(item.modifier ?? []).map((m) => ({ url: 'modifier', valueCodeableConcept: m })),
    ...(item.unitPrice && quantity ? [{ url: 'unitPrice', valueMoney: item.unitPrice }] : []),
    ...(quantity ? [{ url: 'quantity', valueQuantity: quantity }] : []),
  ];
  return parts.length > 0 ? { url: EXT_ITEM_AUTHORIZED_DETAIL, extension: parts } : undefined;
}

export interface ResponseMeta {
  /** PriorPath's id of the submission: ClaimResponse.id and its reference number (REF-NT). */
  id: string;
  created: string;
  /** Set once a clinician reviewed the request. */
  humanReviewed?: boolean;
  /** The PAS version to answer in; default: the one the request Bundle announces, else 2.2.1. */
  version?: PasVersion;
  /** The items that could not be decided (adjudicate.ts ItemError), answered in `ClaimResponse.error`. */
  itemErrors?: ItemError[];
}

/** The items a stored request could not decide (kept in its `detail` as `itemErrors`, answered again with it). */
export function itemErrorsOf(detail: Record<string, unknown> | undefined): ItemError[] {
  const kept = detail?.itemErrors;
  return Array.isArray(kept) ? (kept as ItemError[]) : [];
}

/**
 * One undecided item as `ClaimResponse.error` (PAS 2.2.1 PASClaimResponseBase `error`: `itemSequence`, `code` from
 * X12 901, `errorPath`, `errorElement`, `followupAction`): 901 code 57 (Invalid/Missing Date(s) of Service: the
 * item's date is one the Coverage does not cover) with the words as its text, X12 889 C (Please Correct and
 * Resubmit). `errorElement` is a string in PAS 2.0.1 (1..1) and sub-extensions in 2.2.1.
 */
function itemError(e: ItemError, noteNumber: number, version: PasVersion): ClaimResponseError {
  const element = '2000F-DTP03';
  return {
    extension: [
      version === '2.0.1' ? { url: EXT_ERROR_ELEMENT, valueString: element } : { url: EXT_ERROR_ELEMENT, extension: [{ url: 'processNote', valuePositiveInt: noteNumber }, { url: 'error', valueString: element }] },
      { url: EXT_ERROR_PATH, valueString: e.path },
      { url: EXT_ERROR_FOLLOWUP_ACTION, valueCodeableConcept: { coding: [{ system: X12_889, code: 'C', display: 'Please Correct and Resubmit' }] } },
    ],
    itemSequence: e.sequence,
    code: { coding: [{ system: X12_901, code: '57', display: 'Invalid/Missing Date(s) of Service' }], text: e.reason },
  };
}

/**
 * The PAS response Bundle (PAS 2.2.1 PASResponseBundle / PASClaimResponse): the ClaimResponse first, with per item
 * `adjudication` carrying the `reviewAction` X12 306 code (A1 certified in total, A3 not certified, A4 pended) and
 * its authorization number, the item's preAuthPeriod, in 2.2.1 what a certified item is authorized for
 * (`authorizedItemDetail`), the item's trace numbers, requested service date and cited previous authorization echoed,
 * and process notes giving the reasons or what is needed; then the Patient, insurer and requestor it references, as
 * they were in the request.
 */
export function buildResponseBundle(req: PasRequest, items: ItemDecision[], meta: ResponseMeta): { bundle: Bundle; claimResponse: ClaimResponse } {
  const notes: { number: number; type: 'display'; text: string }[] = [];
  const note = (text: string) => {
    notes.push({ number: notes.length + 1, type: 'display', text });
    return notes.length;
  };
  const requestor = req.claim.provider;
  const version = meta.version ?? pasVersionOf(req.bundle, '2.2.1');
  const provider = authorizedProvider(req, requestor);
  const approved = items.filter((i) => i.reviewAction === 'A1' && i.authorization);
  const latest = [...approved].sort((a, b) => byCodePoint(b.review?.decidedAt ?? '', a.review?.decidedAt ?? ''))[0]?.authorization;
  // What the Claim item said of itself that its answer echoes (PASClaimResponse item extensions): its trace numbers
  // (itemTraceNumber, 2000F TRN), by which a client ties the answer to its item, the service date it asked for, and
  // the previous authorization it cites (Claim.item authorizationNumber, 2000F REF*BB, as a Claim Update or a
  // renewal sends it), answered in the `previousAuthorizationNumber` slice, the same extension, on the answer's item.
  const claimItem = (seq: number) => req.claim.item?.find((i) => i.sequence === seq);
  const echoedFromItem = (item: ClaimItem | undefined): Extension[] => {
    if (!item) return [];
    const traces = (item.extension ?? []).filter((e) => e.url === EXT_ITEM_TRACE_NUMBER && e.valueIdentifier).map((e) => ({ url: EXT_ITEM_TRACE_NUMBER, valueIdentifier: e.valueIdentifier }));
    const requested = item.servicedPeriod
      ? [{ url: EXT_ITEM_REQUESTED_SERVICE_DATE, valuePeriod: item.servicedPeriod }]
      : item.servicedDate
        ? [{ url: EXT_ITEM_REQUESTED_SERVICE_DATE, valueDateTime: item.servicedDate }]
        : [];
    const previous = (item.extension ?? []).filter((e) => e.url === EXT_AUTHORIZATION_NUMBER && typeof e.valueString === 'string' && e.valueString !== '').map((e) => ({ url: EXT_AUTHORIZATION_NUMBER, valueString: e.valueString }));
    return [...traces, ...requested, ...previous.slice(0, 1)];
  };

  const crItems: ClaimResponseItem[] = items.map((d) => {
    const noteNumbers: number[] = [];
    for (const r of d.reasons) noteNumbers.push(note(r));
    if (d.reviewAction === 'A4') for (const n of d.needed) noteNumbers.push(note(`Needed: ${n}`));
    // A denial's reason already carries the reviewer's words ("Not certified on clinical review: …"); a second note
    // saying the same would show the clinician the reason twice. An approval's reason does not, so it gets the note.
    const review = d.review;
    if (review && !d.reasons.some((r) => r.includes(review.reason))) noteNumbers.push(note(`Clinical review (${review.decision === 'approve' ? 'approved' : 'denied'}): ${review.reason}`));
    const item = claimItem(d.sequence);
    const extension: Extension[] = echoedFromItem(item);
    if (d.authorization) {
      extension.push({ url: EXT_ITEM_PRE_AUTH_ISSUE_DATE, valueDate: (d.review?.decidedAt ?? meta.created).slice(0, 10) });
      extension.push({ url: EXT_ITEM_PRE_AUTH_PERIOD, valuePeriod: { start: d.authorization.start, end: d.authorization.end } });
    }
    const detail = d.reviewAction === 'A1' && d.authorization && item && version !== '2.0.1' ? authorizedItemDetail(item, { quantityJudged: !d.quantityNotJudged }) : undefined;
    if (detail) extension.push(detail);
    if (provider) {
      extension.push({
        url: EXT_ITEM_AUTHORIZED_PROVIDER,
        extension: [
          { url: 'provider', valueReference: provider },
          {
            url: version === '2.0.1' ? 'providerType' : EXT_AUTHORIZED_PROVIDER_TYPE,
            valueCodeableConcept: { coding: [{ system: X12_98, code: '1P', display: 'Provider' }] },
          },
        ],
      });
    }
    // REF-NT, PriorPath's reference number: PAS 2.2.1 allows it on ClaimResponse.item (not the root); 2.0.1 anywhere.
    extension.push({ url: EXT_ADMINISTRATION_REFERENCE_NUMBER, valueString: meta.id });
    return {
      ...(extension.length > 0 ? { extension } : {}),
      itemSequence: d.sequence,
      ...(noteNumbers.length > 0 ? { noteNumber: noteNumbers } : {}),
      adjudication: [{ category: { coding: [{ system: ADJUDICATION_SYSTEM, code: 'submitted' }] }, extension: [reviewAction(d)] }],
    };
  });

  // The items that could not be decided: their words as process notes, each named by an error (after the decided
  // items' notes, so those keep their numbers).
  const itemErrors = meta.itemErrors ?? [];
  const errors = itemErrors.map((e) => itemError(e, note(`Item ${e.sequence} not decided: ${e.reason}`), version));

  const { status } = summarize(items);
  const disposition: Record<PasStatus, string> = {
    approved: 'Certified in total',
    denied: 'Not certified',
    pended: items.some((i) => i.needed.some((n) => n.startsWith('Clinical review'))) ? 'Pended for clinical review' : 'Pended: documentation needed',
    partial: 'Certified in part',
    cancelled: 'Cancelled by the submitter',
  };
  const claimIdentifier = req.claim.identifier?.[0];
  const claimResponse: ClaimResponse = {
    resourceType: 'ClaimResponse',
    id: meta.id,
    meta: { profile: [PAS_CLAIM_RESPONSE] },
    // claimResponseReviewer is PAS 2.2's (2.0.1 defines no such extension: its answers say it in the process note).
    ...(meta.humanReviewed && version !== '2.0.1' ? { extension: [{ url: EXT_CLAIM_RESPONSE_REVIEWER, extension: [{ url: 'wasHumanReviewedFlag', valueBoolean: true }] }] } : {}),
    // A request none of whose items could be decided is not kept: it has no reference number to inquire by.
    ...(items.length > 0 || errors.length === 0 ? { identifier: [{ system: PAS_REFERENCE_SYSTEM, value: meta.id }] } : {}),
    status: 'active',
    type: req.claim.type ?? { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'pharmacy' }] },
    use: 'preauthorization',
    patient: { reference: req.claim.patient?.reference },
    created: meta.created,
    insurer: req.claim.insurer ?? { display: 'payer' },
    ...(requestor ? { requestor } : {}),
    request: claimIdentifier ? { identifier: claimIdentifier } : { reference: req.claimFullUrl ?? `Claim/${req.claim.id ?? ''}` },
    // FHIR RemittanceOutcome `error`: "one or more errors have been detected in the Claim" (the decided items stand).
    outcome: errors.length > 0 ? 'error' : 'complete',
    disposition: items.length === 0 && errors.length > 0 ? 'Not decided: see the errors' : disposition[status],
    ...(latest ? { preAuthRef: latest.number, preAuthPeriod: { start: latest.start, end: latest.end } } : {}),
    ...(crItems.length > 0 ? { item: crItems } : {}),
    ...(errors.length > 0 ? { error: errors } : {}),
    ...(notes.length > 0 ? { processNote: notes } : {}),
  };

  const crFullUrl = `urn:uuid:${meta.id}`;
  const bundle: Bundle = {
    resourceType: 'Bundle',
    meta: { profile: [PAS_RESPONSE_BUNDLE] },
    ...(req.bundle.identifier ? { identifier: req.bundle.identifier } : {}),
    type: 'collection',
    timestamp: meta.created,
    // The Claim is echoed only when it has no identifier to be referenced by (PAS spec-30).
    entry: [
      { fullUrl: crFullUrl, resource: claimResponse },
      ...echoed(
        req,
        [req.claim.patient, req.claim.insurer, requestor, provider, ...(claimIdentifier ? [] : [{ reference: req.claimFullUrl ?? `Claim/${req.claim.id ?? ''}` }])],
        new Set(),
      ),
    ],
  };
  return { bundle, claimResponse };
}

/**
 * A stored PAS response Bundle as an `$inquire` answers it: the same content, labelled with the inquiry profiles
 * (PAS 2.2.1 §"Inquiry", FHIR-55687: each matching request is a PASInquiryResponseBundle whose first entry is a
 * PASClaimInquiryResponse; the 2.0.1 Claim-inquiry `return` is the same pair). The submit profiles stay on `$submit`
 * answers, notifications and `GET /ClaimResponse/{id}`; a validator checking an inquiry answer against what it claims
 * then checks it against the inquiry profiles. Other entries (the echoed Patient, insurer, requestor) keep theirs.
 */
export function inquiryResponseOf(responseBundle: Record<string, unknown>): Record<string, unknown> {
  const bundle = structuredClone(responseBundle) as unknown as Bundle;
  bundle.meta = { ...bundle.meta, profile: [PAS_INQUIRY_RESPONSE_BUNDLE] };
  const first = bundle.entry?.[0]?.resource;
  if (first?.resourceType === 'ClaimResponse') first.meta = { ...first.meta, profile: [PAS_CLAIM_INQUIRY_RESPONSE] };
  return bundle as unknown as Record<string, unknown>;
}

/**
 * A stored PAS response Bundle as the answer to the `$submit` of `request`: its `identifier` is that request Bundle's
 * (PASResponseBundle.identifier, "Submitted Transaction Identifier"). One stored answer may serve several transactions
 * (a second request collapsed into the request that pends its order, a resend, a Claim Update under its own
 * identifier); each is answered under the identifier it was sent with, so a client can match answer to transaction.
 */
export function answerTo(request: PasRequest, responseBundle: Record<string, unknown>): Record<string, unknown> {
  const identifier = request.bundle.identifier;
  if (!identifier || JSON.stringify(responseBundle.identifier) === JSON.stringify(identifier)) return responseBundle;
  return { ...responseBundle, identifier };
}
