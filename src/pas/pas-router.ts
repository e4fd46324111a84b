import { randomUUID } from 'node:crypto';
import express from 'express';
import type { Request, Response } from 'express';
import type { Content, Payer } from '../content.js';
import { PAYER_ID_SYSTEM } from '../content.js';
import { DomainError, HttpError, badRequest, notFound, outcome } from '../errors.js';
import { identifyPayer, notActiveOn, payerNamedBy } from '../coverage/payer.js';
import type { Logger } from '../logger.js';
import type { NewPasSubmission, OrderKey, PasQuery, PasSubmission, Storage } from '../storage/storage.js';
import { readableBy } from '../storage/storage.js';
import { payerClientOf } from '../http/payer-api-auth.js';
import { PROVISIONAL, isDecided } from '../coverage/order-record.js';
import { adjudicate } from './adjudicate.js';
import { answeredApprovals, itemDecisionChanges, requestOutcome, shareAuthorization, withOrderRecords } from './decide-items.js';
import type { ItemDecision, ItemError } from './adjudicate.js';
import { ensureJsonBody, handler, logOf, sendFhir } from './http.js';
import { parseInquiry, samePatient } from './inquiry.js';
import { assertFullUrlsAgree, assertOnePatient, identifierKey, parsePasRequest, unwrapOperationInput } from './request-bundle.js';
import type { PasRequest } from './request-bundle.js';
import { pasVersionOf } from './pas-version.js';
import type { PasVersion } from './pas-version.js';
import { settlePended } from './settle-pended.js';
import { applyClaimUpdate } from './apply-claim-update.js';
import { answerTo, buildResponseBundle, inquiryResponseOf } from './claim-response.js';
import { assertedOrderDates, signingFacts } from './asserted-order-dates.js';
import { reviewCase } from './review-case.js';
import { byCodePoint } from '../code-point-order.js';
import { DEFAULT_ATTACHMENT_BODY_BYTES } from '../http/json-body.js';

const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

/** The inquiry Bundle of a `$inquire` body (bare, or the Parameters `resource`), for its version signal. */
function unwrapInquiry(body: unknown): unknown {
  const b = body as { resourceType?: string; parameter?: { name?: string; resource?: unknown }[] } | undefined;
  if (b?.resourceType === 'Parameters') return b.parameter?.find((p) => p.name === 'resource')?.resource;
  return body;
}

export interface PasDeps {
  content: Content;
  storage: Storage;
  logger: Logger;
  /** YYYY-MM-DD; tests pin it. Default: the UTC date. */
  today?: () => string;
  /** `DEFAULT_PAYER`: the payer assumed when the Coverage names none PriorPath serves (design.md §3). */
  defaultPayer?: string;
  /** `PAS_VERSION`: the version answered when a request announces none. Default 2.2.1. */
  pasVersion?: PasVersion;
  /** Told when a pended request took a decision made elsewhere, so its subscribers hear of it (settlePended). */
  notifier?: { kick(): void };
  /** `ATTACHMENT_BODY_MAX_BYTES`: the body limit of `$submit` and `$inquire`. Default 1 MiB. */
  attachmentBodyBytes?: number;
}

/** 409: the request Bundle identifier was used before for different content (see createPasRouter). */
function conflict(bundleIdentifier: string): HttpError {
  return new HttpError(
    409,
    outcome(
      'error',
      'duplicate',
      `Bundle.identifier ${bundleIdentifier} was already submitted with different content. A PAS request identifier names one request: resend the same Bundle to get its answer, or give a changed request a new identifier.`,
      ['Bundle.identifier'],
    ),
  );
}

/**
 * The payer of the request: the Coverage's payor, else the Claim's insurer, by our payer identifier (design.md §4
 * "Payer"). A Coverage whose status is not active (cancelled, entered in error, draft) is no coverage to authorize
 * under, whatever the Claim's insurer says, as CRD answers it; whether it is in force on each item's order date is
 * judged with the item (adjudicate.ts). A Claim whose insurer names another payer PriorPath serves than the
 * Coverage's payor is a payer problem (400): the request would be decided under one payer and answered in the
 * other's name.
 */
async function payerOf(content: Content, req: PasRequest, defaultPayer: string | undefined): Promise<Payer> {
  // Its status only (no dates): the dates are the items'.
  const inactive = notActiveOn(req.coverage, []);
  if (inactive) throw new DomainError('invalid', `No active Coverage: ${inactive}`, ['Bundle.entry.resource.ofType(Coverage).status']);
  const insurer = req.claim.insurer;
  const org = insurer?.reference ? req.byReference.get(insurer.reference) : undefined;
  const ids = [...(insurer?.identifier ? [insurer.identifier] : []), ...(org?.resourceType === 'Organization' ? (org.identifier ?? []) : [])];
  const namedByInsurer = payerNamedBy(content, ids);
  let payer: Payer;
  try {
    payer = (await identifyPayer({ content, coverages: [req.coverage], byReference: req.byReference })).payer;
  } catch (err) {
    if (!(err instanceof DomainError) || err.code !== 'invalid') throw err;
    if (namedByInsurer) return namedByInsurer;
    const fallback = defaultPayer ? content.payers.get(defaultPayer) : undefined;
    if (fallback) return fallback;
    throw badRequest(`Unknown payer: neither the Coverage payor nor the Claim insurer names a payer PriorPath serves (identifier system ${PAYER_ID_SYSTEM})`, ['Claim.insurance.coverage.payor', 'Claim.insurer']);
  }
  if (namedByInsurer && namedByInsurer.key !== payer.key) {
    throw badRequest(
      `The Claim's insurer names ${namedByInsurer.key} but its Coverage's payor names ${payer.key}: send the request to the payer of the Coverage it is under, with that Coverage`,
      ['Claim.insurer', 'Claim.insurance.coverage.payor'],
    );
  }
  return payer;
}

/** The answer to a resubmission of a stored request: its current response, or 409 when the content differs. */
function replay(stored: PasSubmission, req: PasRequest): Record<string, unknown> {
  if (stored.requestHash !== req.requestHash) throw conflict(req.bundleIdentifier);
  return stored.responseBundle;
}

/** The reviewer's reading of a stored request (review-case.ts), or undefined when it cannot be read. */
function caseOfBundle(bundle: Record<string, unknown>): string | undefined {
  try {
    return JSON.stringify(reviewCase(parsePasRequest(bundle)));
  } catch {
    return undefined;
  }
}

/** What a decided item asks for, by sequence: the part of a pended request's answer its documentation changes. */
const askedFor = (items: ItemDecision[]) => JSON.stringify(items.map((i) => [i.sequence, i.reviewAction, i.needed]));

/**
 * Whether a request for a pended request's orders brings the reviewer something the pended request does not hold:
 * other answers, attachments or chart data (the case the reviewer reads, review-case.ts), or items that ask for
 * something else. A resend of the same request under a new Bundle and Claim identifier brings nothing.
 */
function bringsDocumentation(pended: PasSubmission, request: PasRequest, items: ItemDecision[]): boolean {
  if (pended.requestHash === request.requestHash) return false;
  const before = ((pended.detail as { items?: ItemDecision[] }).items ?? []).filter((i) => i.reviewAction !== 'C');
  return caseOfBundle(pended.requestBundle) !== JSON.stringify(reviewCase(request)) || askedFor(before) !== askedFor(items);
}

/** An order's record key as text (one per payer, patient, order and drug). */
const orderText = (o: OrderKey) => JSON.stringify([o.payer, o.patientId, o.orderRef, o.drug]);

/** Whether a request names every order a pended request pends (so it can stand for that request in the reviewer's case). */
function coversPendedOrders(pended: PasSubmission, items: ItemDecision[]): boolean {
  const named = new Set(items.flatMap((i) => (i.order ? [orderText(i.order)] : [])));
  const pendedItems = ((pended.detail as { items?: ItemDecision[] }).items ?? []).filter((i) => i.reviewAction === 'A4');
  return pendedItems.length > 0 && pendedItems.every((i) => i.order && named.has(orderText(i.order)));
}

/**
 * PAS operations on the payer FHIR base (design.md §8; Da Vinci PAS 2.2.1 Claim-submit and Claim-inquiry), mounted at
 * `/fhir` beside the DTR router: it answers `POST /Claim/$submit` and `POST /Claim/$inquire` and passes every other
 * path on with `next()`.
 *
 * `$submit` validates the request Bundle (400 OperationOutcome naming the problem, nothing stored), decides each item
 * from the payer's policy over the Bundle's own resources and the QuestionnaireResponse answers, stores the request
 * and its answer durably, and only then returns the PAS response Bundle. It is idempotent on the client's
 * `Bundle.identifier` (design.md §8 "Who may call": what a client filed is found by that client only): the
 * same identifier with the same content (ignoring `Bundle.id`, `meta` and `timestamp`) returns the stored answer,
 * including any later reviewer decision, without a second record; the same identifier with different content is a
 * 409 OperationOutcome (`duplicate`), because one identifier names one request.
 *
 * `$inquire` returns a Parameters with one `return` PAS inquiry response Bundle (inquiryResponseOf) per matching
 * request the client filed (none: no parameters); in PAS 2.0.1, the latest one itself.
 */
export function createPasRouter(deps: PasDeps): express.Router {
  const { content, storage, logger } = deps;
  const router = express.Router();
  const today = () => deps.today?.() ?? new Date().toISOString().slice(0, 10);
  // A PAS request carries its attachments (scanned notes, PDFs) as base64: ATTACHMENT_BODY_MAX_BYTES (the
  // contract's 1 MiB unless the payer raises it; design.md §4 "Errors"); an inquiry may repeat the request's resources, so it has the same limit.
  const body = ensureJsonBody(deps.attachmentBodyBytes ?? DEFAULT_ATTACHMENT_BODY_BYTES);

  const submitHandler = handler(async (req: Request, res: Response) => {
    const log = logOf(req, logger);
    const client = payerClientOf(req);
    const request = parsePasRequest(unwrapOperationInput(req.body, '$submit'));
    assertFullUrlsAgree(request);
    assertOnePatient(request);
    if (request.update) return sendFhir(res, 200, answerTo(request, await updateRequest(request, log, client)));
    // A Bundle identifier names one request of one client: another client's is not there for this one.
    const stored = await storage.getPasSubmissionByBundleIdentifier(request.bundleIdentifier, client);
    if (stored) {
      // A pended request whose order was decided elsewhere meanwhile answers that decision (design.md §8).
      const answer = replay(await settlePended(storage, stored, { log, today: today(), notifier: deps.notifier }), request);
      log.info({ submissionId: stored.id, reviewAction: stored.reviewAction, replay: true }, 'pas submit');
      return sendFhir(res, 200, answerTo(request, answer));
    }

    const payer = await payerOf(content, request, deps.defaultPayer);
    const answer = await decideRequest(request, payer, log, client);
    sendFhir(res, 200, answerTo(request, answer));
  });

  /**
   * A PAS Claim Update (design.md §8 "Claim updates"; PAS 2.2.1 §"Updating Authorization Requests"): changes the
   * stored request that `related.claim` names, found by the prior Claim's identifier among this client's requests
   * (another client's request is answered as one never filed: 404). A resend of an applied update answers the
   * request's current state; a Bundle identifier that names another request of this client is a 409. A denied request
   * cannot be updated, nor a cancelled one (422: send a new request). Returns the response Bundle: every item of the
   * request as it now stands.
   */
  async function updateRequest(request: PasRequest, log: Logger, client: string | undefined): Promise<Record<string, unknown>> {
    const settle = (s: PasSubmission) => settlePended(storage, s, { log, today: today(), notifier: deps.notifier });
    const resent = await storage.findPasUpdate(request.bundleIdentifier, client, request.requestHash);
    if (resent) {
      log.info({ submissionId: resent.id, reviewAction: resent.reviewAction, replay: true }, 'pas claim update');
      return (await settle(resent)).responseBundle;
    }
    const patientIds = (request.patient.identifier ?? []).map(identifierKey).filter((k): k is string => !!k);
    const find = async () =>
      (await storage.findPasSubmissions({ claimIdentifiers: request.update!.priorIdentifiers, readableBy: client })).find(
        (s) => patientIds.length === 0 || s.patientIdentifiers.length === 0 || s.patientIdentifiers.some((p) => patientIds.includes(p)),
      );
    const found = await find();
    if (!found) {
      throw new HttpError(
        404,
        outcome('error', 'not-found', `No prior authorization request matches the Claim this update names (Claim.related.claim, identifier ${request.update!.priorIdentifiers.join(', ')}); send a new request`, ['Claim.related.claim']),
      );
    }
    const payer = content.payers.get(found.payer) ?? (await payerOf(content, request, deps.defaultPayer));
    const version = pasVersionOf(request.bundle, deps.pasVersion ?? '2.2.1');
    for (let attempt = 0; attempt < 3; attempt++) {
      // Read on every attempt: another request may have taken the identifier meanwhile (storage then applied nothing).
      const named = await storage.getPasSubmissionByBundleIdentifier(request.bundleIdentifier, client);
      if (named && named.id !== found.id) throw conflict(request.bundleIdentifier);
      const target = await settle((await storage.getPasSubmission(found.id)) ?? found);
      // PAS specification §"Additional Notes" 2: a denied request is not updated; a new request is needed.
      if (target.status === 'denied' || target.status === 'cancelled') {
        throw new HttpError(
          422,
          outcome(
            'error',
            'business-rule',
            target.status === 'denied'
              ? `Prior authorization request ${target.id} was denied; a denied request cannot be updated (PAS). Send a new request`
              : `Prior authorization request ${target.id} was cancelled by its submitter; a cancelled request cannot be updated. Send a new request`,
            ['Claim.related.claim'],
          ),
        );
      }
      const answer = await applyClaimUpdate({ storage, content, payer, request, target, client, day: today(), version, log });
      if (answer) return answer;
      // The request or an order changed meanwhile (a reviewer, another update, a resend of this one): read it again.
      const applied = await storage.findPasUpdate(request.bundleIdentifier, client, request.requestHash);
      if (applied) return (await settle(applied)).responseBundle;
    }
    throw new DomainError('transient', 'The prior authorization request changed while this update was applied; send it again');
  }

  /**
   * Decides a new request with the orders' one record (design.md §8): an order that already has a decision gets it
   * again, whatever the Bundle identifier; an approval is the order's, issued once; a request that the rules decide
   * over its own documentation is stored with that decision even when another request pends its orders (which then
   * takes it from the orders' records); a request whose orders another request of the same client pends, still
   * pended over its documentation, changes that request's case (documentPended) or, bringing nothing new, collapses
   * into it; an order another request pends stays that request's (this one is pended with it and takes its decision),
   * and of another client's pending request this client has one request waiting on it, which its later requests
   * change or collapse into as into its own pended request. `client` files the request (design.md
   * §8 "Who may call"). Returns the response Bundle to send.
   */
  async function decideRequest(request: PasRequest, payer: Payer, log: Logger, client: string | undefined, attempt = 0): Promise<Record<string, unknown>> {
    const day = today();
    const version = pasVersionOf(request.bundle, deps.pasVersion ?? '2.2.1');
    // Items that cannot be decided (an order date the Coverage is not in force on) are answered in ClaimResponse.error
    // beside the others' decisions (PAS: business errors in the ClaimResponse, a 4xx only for a request that cannot
    // be processed).
    const itemErrors: ItemError[] = [];
    const items = adjudicate({ content, payer, request, today: day, assertedOrderDates: await assertedOrderDates(storage, request), signingFacts: await signingFacts(storage, request, payer.key), errors: itemErrors });
    if (items.length === 0) {
      // No item could be decided: nothing is certified or stored, and the answer says what to correct (the same
      // answer to a resend, which is decided again).
      log.info({ items: itemErrors.length, undecided: true }, 'pas submit');
      return buildResponseBundle(request, [], { id: randomUUID(), created: new Date().toISOString(), version, itemErrors }).bundle as unknown as Record<string, unknown>;
    }
    // An order that no longer fits the approval the rules gave it is decided afresh (a limit review), not answered A1;
    // an order that has a decision answers it.
    const records = await withOrderRecords(storage, items, { day, actor: `PAS request ${request.bundleIdentifier}`, request, policyOf: (id) => content.policies.find((p) => p.file.id === id) });

    // A request for the orders another request of this client pends, every item still pended (design.md §8: pended
    // is not a decision): a repeat that brings nothing new (a double click, a resend under a new identifier) is that
    // request; one that brings documentation (a QuestionnaireResponse, attachments, chart data) changes the pended
    // request in place, so the reviewer's case holds what it sent and what is still missing. A request whose items
    // the rules now decide is stored as a new one below: its decision becomes the order's, and the pended request
    // takes it from the order's record (settlePended).
    //
    // Another payer API client's pending request is not this client's to read, so this client's request for those
    // orders is its own, waiting on that one (design.md §8); but only once: a later request of this client for the
    // same orders is its waiting request, as above (a resend collapses into it, documentation changes it in place).
    // `waitingOn` stores the first at most once, whatever runs at the same time (createPasSubmissionForOrders).
    const pendedBy = new Set(items.map((i, n) => (i.reviewAction === 'A4' && records[n]?.state === 'pended' ? records[n]?.submissionId : undefined)));
    let waitingOn: OrderKey[] | undefined;
    // (A request with an undecided item is its own: collapsing it would lose the error.)
    if (pendedBy.size === 1 && !pendedBy.has(undefined) && items.every((i) => i.reviewAction === 'A4') && itemErrors.length === 0) {
      const owner = await storage.getPasSubmission([...pendedBy][0]!);
      // Only into a request this client may read: another client's request is not answered to it.
      let pended = owner && readableBy(owner.clientId, client) ? owner : undefined;
      if (owner && !pended && client) {
        waitingOn = [...new Map(items.flatMap((i) => (i.order ? [[orderText(i.order), i.order] as const] : []))).values()];
        pended = await storage.findWaitingSubmission(client, waitingOn);
      }
      if (pended) {
        if (pended.reviewAction === 'A4' && bringsDocumentation(pended, request, items) && coversPendedOrders(pended, items)) {
          const answer = await documentPended(request, items, pended, client, version, log);
          if (answer) return answer;
          // The pended request changed meanwhile (a reviewer, another update): decide again on what it now is.
          if (attempt < 2) return decideRequest(request, payer, log, client, attempt + 1);
          throw new DomainError('transient', 'The prior authorization request changed while this request was decided; send it again');
        }
        // The identifier names one request whatever runs at the same time (design.md §8): what it names once the alias
        // is filed answers (the pended request, or another request that took the identifier first: 409 unless the same).
        const named = await storage.addPasSubmissionAlias({
          bundleIdentifier: request.bundleIdentifier,
          ...(client ? { clientId: client } : {}),
          submissionId: pended.id,
          requestHash: request.requestHash,
          claimIdentifiers: (request.claim.identifier ?? []).map(identifierKey).filter((k): k is string => !!k),
          createdAt: new Date().toISOString(),
        });
        if (named.submissionId !== pended.id || named.requestHash !== request.requestHash) {
          // Another request or other content named it first (rare): read what it names to answer it, or 409.
          const other = await storage.getPasSubmissionByBundleIdentifier(request.bundleIdentifier, client);
          if (!other) throw new DomainError('transient', 'The prior authorization request changed while this request was decided; send it again');
          return replay(other, request);
        }
        log.info({ submissionId: pended.id, reviewAction: pended.reviewAction, collapsed: true }, 'pas submit');
        return pended.responseBundle;
      }
    }

    const id = randomUUID();
    const created = new Date().toISOString();
    shareAuthorization(items.filter((i) => !i.fromOrderRecord));

    const { authorization, stored: outcome } = requestOutcome(request, items, { id, created, version, itemErrors });
    const first = items.find((i) => i.policyId);
    const submission: NewPasSubmission = {
      id,
      bundleIdentifier: request.bundleIdentifier,
      ...(client ? { clientId: client } : {}),
      requestHash: request.requestHash,
      payer: payer.key,
      policyId: first?.policyId,
      policyVersion: first?.policyVersion,
      claimIdentifiers: (request.claim.identifier ?? []).map(identifierKey).filter((k): k is string => !!k),
      patientIdentifiers: (request.patient.identifier ?? []).map(identifierKey).filter((k): k is string => !!k),
      ...outcome,
      requestBundle: request.bundle as unknown as Record<string, unknown>,
      createdAt: created,
    };
    // The pended orders are marked in the same transaction as the request is stored: of two requests for one order,
    // on any replica, exactly one pends it. An order another request already pends stays that request's: this item
    // waits with it and takes the order's decision when it is read (settlePended). An order whose approval does not
    // cover this item (withOrderRecords) keeps its approval: the request alone is pended, for the reviewer.
    const pending = items
      .filter((i, n): i is ItemDecision & { order: OrderKey } => !!i.order && i.reviewAction === 'A4' && records[n]?.state !== 'pended' && !isDecided(records[n]))
      .map((i) => ({
        key: i.order,
        from: PROVISIONAL,
        change: { state: 'pended' as const, at: created, source: 'pas' as const, actor: `PAS ${id}`, reason: i.needed.join('; ') || 'clinical review', policyId: i.policyId, submissionId: id },
      }));
    // New approvals and denials become the orders' decisions with the request, or not at all (a concurrent resend
    // stored first records none of this one's); a concurrent decision of the same order wins, and it is taken below.
    const decisions = itemDecisionChanges(items, { submissionId: id, at: created });
    const answers = answeredApprovals(items);
    const result = await storage.createPasSubmissionForOrders(submission, [...decisions, ...pending], authorization, { ...(waitingOn ? { waitingOn } : {}), ...(answers.length > 0 ? { answers } : {}) });
    if (!result.created) {
      if (result.submission) return replay(result.submission, request);
      // Another request (or path) pended or decided one of these orders first, or another request of this client
      // came to wait on them first (`waiting`): answer as that order's record, or that request, now says.
      if (attempt < 2) return decideRequest(request, payer, log, client, attempt + 1);
      throw new DomainError('transient', 'The order changed while this request was decided; send it again');
    }
    // One decision line per request: ids, policy and review actions; never clinical content (design.md §2 "Platform
    // conventions").
    log.info({ submissionId: id, payer: payer.key, policy: first?.policyId, policyVersion: first?.policyVersion, reviewAction: outcome.reviewAction, items: items.map((i) => `${i.sequence}:${i.reviewAction}`) }, 'pas submit');
    return outcome.responseBundle;
  }

  /**
   * Changes a pended request in place with a later request's documentation for the same orders, still pended (design.md
   * §8 "One authorization per order": one case per order for the reviewer): the later request becomes the request the
   * reviewer reads (its answers, attachments and chart data) and its items, decided over that documentation, say what
   * is still missing. The request keeps its id (ClaimResponse id, REF-NT) and its orders stay pended by it; the later
   * Bundle is stored as an update of it (so a resend of that Bundle answers, and `$inquire` by its identifiers finds
   * it), in one transaction. Undefined when the request changed meanwhile.
   */
  async function documentPended(request: PasRequest, items: ItemDecision[], pended: PasSubmission, client: string | undefined, version: PasVersion, log: Logger): Promise<Record<string, unknown> | undefined> {
    const at = new Date().toISOString();
    const { stored: outcome } = requestOutcome(request, items, { id: pended.id, created: pended.createdAt, version });
    const claimIdentifiers = (request.claim.identifier ?? []).map(identifierKey).filter((k): k is string => !!k);
    const result = await storage.updatePasSubmission({
      update: { submissionId: pended.id, bundleIdentifier: request.bundleIdentifier, ...(client ? { clientId: client } : {}), requestHash: request.requestHash, claimIdentifiers, kind: 'update', requestBundle: request.bundle as unknown as Record<string, unknown>, createdAt: at },
      revision: pended.revision,
      next: { ...outcome, requestBundle: request.bundle as unknown as Record<string, unknown>, claimIdentifiers: [...new Set([...pended.claimIdentifiers, ...claimIdentifiers])] },
      orders: [],
    });
    if (!result.applied) return undefined;
    log.info({ submissionId: pended.id, reviewAction: outcome.reviewAction, documented: true, items: items.map((i) => `${i.sequence}:${i.reviewAction}`) }, 'pas submit');
    return outcome.responseBundle;
  }

  const inquireHandler = handler(async (req: Request, res: Response) => {
    const inquiry = parseInquiry(req.body);
    const log = logOf(req, logger);
    // Only the requests this client filed (design.md §8 "Who may call"); another client's match as nothing would.
    const search = async (query: PasQuery) => (await storage.findPasSubmissions({ ...query, readableBy: payerClientOf(req) })).filter((s) => samePatient(inquiry, s));
    const version = pasVersionOf(unwrapInquiry(req.body), deps.pasVersion ?? '2.2.1');
    let matched = await search(inquiry.query);
    // A 2.2.1 inquiry's Claim identifier is its own TRN (FHIR-55616): with no REF number to go by, the patient's
    // requests answer it. 2.0.1 keeps matching by the Claim identifier only.
    if (matched.length === 0 && inquiry.byPatient && version === '2.2.1') matched = await search(inquiry.byPatient);
    // The stored, current state: a pended request whose order was decided elsewhere meanwhile has that decision.
    // Read only: the decision is stored by the sweep or the next write (an inquiry changes no state, PAS Claim-inquiry).
    const found = await Promise.all(matched.map((s) => settlePended(storage, s, { log, today: today(), readOnly: true })));
    log.info({ matches: found.length, version }, 'pas inquire');
    if (version === '2.0.1') {
      // PAS 2.0.1 Claim-inquiry: `return` 1..1 Bundle, so the answer is the (latest) matching response Bundle itself.
      if (found.length === 0) throw notFound('No prior authorization request matches this inquiry');
      const latest = [...found].sort((a, b) => byCodePoint(b.createdAt, a.createdAt))[0];
      return sendFhir(res, 200, inquiryResponseOf(latest.responseBundle));
    }
    sendFhir(res, 200, { resourceType: 'Parameters', ...(found.length > 0 ? { parameter: found.map((s) => ({ name: 'return', resource: inquiryResponseOf(s.responseBundle) })) } : {}) });
  });

  /**
   * `GET /ClaimResponse/{id}`: the request's current ClaimResponse (the first entry of its response Bundle), which an
   * `id-only` subscription notification names as its focus (R4 Subscriptions Backport: the client reads the focus).
   * Another client's request answers the 404 of an unknown id (design.md §8 "Who may call").
   */
  const claimResponseHandler = handler(async (req: Request, res: Response) => {
    const id = String(req.params.id);
    const found = FHIR_ID.test(id) ? await storage.getPasSubmission(id) : undefined;
    if (!found || !readableBy(found.clientId, payerClientOf(req))) throw notFound(`ClaimResponse/${id} is not known`);
    // A GET changes no state: the request as it now stands, stored by the sweep or the next write.
    const current = await settlePended(storage, found, { log: logOf(req, logger), today: today(), readOnly: true });
    sendFhir(res, 200, current.claimResponse);
  });

  router.post(/^\/Claim\/\$submit\/?$/, body, submitHandler);
  router.post(/^\/Claim\/\$inquire\/?$/, body, inquireHandler);
  router.get('/ClaimResponse/:id', claimResponseHandler);
  return router;
}
