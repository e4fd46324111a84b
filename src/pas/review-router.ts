import { createHash, timingSafeEqual } from 'node:crypto';
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import { z } from 'zod';
import { HttpError, badRequest, notFound, outcome, unauthorized } from '../errors.js';
import { authorizationNumber, withinCoverage } from '../coverage/authorization.js';
import { coverageLastDay } from '../coverage/payer.js';
import type { Logger } from '../logger.js';
import { UNDECIDED, isDecided, recordedDecision } from '../coverage/order-record.js';
import type { ApprovedItem, AuthorizationRecord, OrderEvent, OrderKey, OrderState, PasSubmission, PendedSummary, ReviewDecision, Storage } from '../storage/storage.js';
import { latestEvent, widenedPeriod } from '../storage/storage.js';
import { byCodePoint } from '../code-point-order.js';
import type { Questionnaire, QuestionnaireItem, QuestionnaireResponse } from '@medplum/fhirtypes';
import type { Content } from '../content.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { factLabel } from './adjudicate.js';
import type { CriterionEvidence, ItemDecision } from './adjudicate.js';
import { buildResponseBundle, itemErrorsOf, summarize } from './claim-response.js';
import { ensureJsonBody, handler, logOf } from './http.js';
import { parsePasRequest } from './request-bundle.js';
import { reviewCase } from './review-case.js';
import { currentPended, decidedBy, settlePended, settleWaitingOn, waitsOn } from './settle-pended.js';
import type { ReviewCase } from './review-case.js';
import { answeredVersion } from './pas-version.js';
import { quantityOf } from './approval-covers.js';

export interface ReviewDeps {
  storage: Storage;
  logger: Logger;
  /** `REVIEW_TOKEN`: the bearer token reviewers present. Unset: every call is refused (401). */
  reviewToken?: string;
  /** Told after each decision, so PAS subscribers hear of it within moments (the event itself is in storage). */
  notifier?: { kick(): void };
  /**
   * The loaded policies and their Questionnaires, so the reviewer reads the policy's words, never an identifier: each
   * fact of the trace under its label as the policy has it now (a request stored before labels were stored reads in
   * words too), and each answer under its question when the response left out the item's text. Without them the
   * words stored with the request are shown.
   */
  content?: Pick<Content, 'policies' | 'questionnaires'> & Partial<Pick<Content, 'payers'>>;
}

/** A calendar day that exists (2026-02-30 and month 13 do not): it becomes the authorization's period (FHIR date). */
const isCalendarDay = (s: string) => {
  const d = new Date(`${s}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === s && s >= '1900-01-01';
};
const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date YYYY-MM-DD').refine(isCalendarDay, 'a calendar date YYYY-MM-DD');
const decisionSchema = z
  .object({
    decision: z.enum(['approve', 'deny']),
    reviewer: z.string().trim().min(1).max(200),
    reason: z.string().trim().min(1).max(4000),
    /** Approval period; default: the policy's approval from the order's planned start. */
    period: z.object({ start: day, end: day }).strict().refine((p) => p.end >= p.start, 'period.end is before period.start').optional(),
  })
  .strict();

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Bearer-token check in constant time; refuses everything when no token is configured. */
function requireToken(token: string | undefined) {
  const expected = token ? digest(token) : undefined;
  return (req: Request, _res: Response, next: NextFunction): void => {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!expected || !m || !timingSafeEqual(digest(m[1]), expected)) return next(unauthorized());
    next();
  };
}

/**
 * What a reviewer approves of an item (storage ApprovedItem, read by coverage/reviewed-approval.ts reviewedItemOf):
 * its criteria, the amounts its limits ask (absent on a decision stored before they were kept: every fact compared)
 * and its Claim quantity (null when the Claim states none; read from the request for a decision stored before
 * quantities were kept).
 */
function approvedItemOf(i: ItemDecision, requestBundle: Record<string, unknown>): ApprovedItem {
  const quantity = i.quantity !== undefined ? i.quantity : (quantityOf(requestBundle, i.sequence) ?? null);
  return {
    // Each criterion's result and fact values, without the reviewer's words (labels): what the comparison reads.
    criteria: i.criteria.map((c) => ({
      id: c.id,
      ...(c.kind ? { kind: c.kind } : {}),
      result: c.result,
      ...(c.evidence ? { evidence: c.evidence.map((e) => ({ fact: e.fact, ...(e.value !== undefined ? { value: e.value } : {}), source: e.source })) } : {}),
    })),
    ...(i.askedAmounts ? { askedAmounts: i.askedAmounts } : {}),
    quantity: quantity as ApprovedItem['quantity'],
  };
}

/** The path that decided an order, in the reviewer's words. */
function decidedOn(by: OrderEvent | undefined): string {
  if (by?.source === 'crd') return 'at signing';
  if (by?.source === 'dtr') return 'by a DTR determination';
  if (by?.source === 'pas') return 'by another PAS request';
  if (by?.source === 'review') return `on clinical review by ${by.actor}`;
  return 'elsewhere';
}

interface Detail {
  items: ItemDecision[];
}

/** The request as the reviewer reads it (patient, order, answers, attachments, chart facts); absent if unreadable. */
function caseOf(s: PasSubmission, content?: ReviewDeps['content']): ReviewCase | undefined {
  try {
    const c = reviewCase(parsePasRequest(s.requestBundle), content ? questionTexts(content, s) : undefined);
    // The payer under the name its file gives it (`label`, the cards' source.label: the name on the member card), so a
    // reviewer reads one name per payer; the request's own payor name only when the payer file is not at hand.
    const label = content?.payers?.get(s.payer)?.label;
    return label ? { ...c, payerName: label } : c;
  } catch {
    return undefined;
  }
}

/**
 * A response item's question in the form's own words (FHIR R4 QuestionnaireResponse.item.text is optional: a DTR
 * client may send only the linkId): the text of that linkId in the Questionnaire the response answers (a contained
 * adaptive one, or the payer's by canonical, with or without its version), else in the Questionnaires of the
 * policies the request was decided by.
 */
function questionTexts(content: NonNullable<ReviewDeps['content']>, s: PasSubmission): (qr: QuestionnaireResponse, linkId: string) => string | undefined {
  const policyForms = ((s.detail as unknown as Detail | undefined)?.items ?? [])
    .map((i) => content.policies.find((p) => p.file.id === i.policyId)?.questionnaire)
    .filter((c): c is string => !!c);
  const texts = new Map<QuestionnaireResponse, Map<string, string>>();
  return (qr, linkId) => {
    let byLinkId = texts.get(qr);
    if (!byLinkId) {
      const ref = qr.questionnaire;
      const forms = [
        ...(ref?.startsWith('#') ? (qr.contained ?? []).filter((c) => c.resourceType === 'Questionnaire' && c.id === ref.slice(1)) : []),
        ...[ref, ref?.split('|')[0], ...policyForms].map((c) => (c ? content.questionnaires.get(c) : undefined)),
      ].filter((q): q is Questionnaire => q?.resourceType === 'Questionnaire');
      const found = new Map<string, string>();
      const visit = (items: QuestionnaireItem[] | undefined) => {
        for (const item of items ?? []) {
          if (item.text && !found.has(item.linkId)) found.set(item.linkId, item.text);
          visit(item.item);
        }
      };
      for (const q of forms) visit(q.item);
      byLinkId = found;
      texts.set(qr, found);
    }
    return byLinkId.get(linkId);
  };
}

/**
 * A criterion's evidence as the reviewer reads it: each fact under its label from the item's policy (policy-loader.ts
 * `reviewerLabel`), else the words stored with the request (`label`, or `question` before labels were stored).
 */
function labelledEvidence(evidence: CriterionEvidence[] | undefined, policy: CompiledPolicy | undefined): CriterionEvidence[] | undefined {
  return evidence?.map(({ question, ...e }) => ({ ...e, label: (policy && factLabel(policy, e.fact)) ?? e.label ?? question ?? e.fact }));
}

/** One item decided by its order's decision made on another path, and what that decision rests on. */
interface SettledItem {
  sequence: number;
  /** The path, in the words the decision history uses (settle-pended.ts `decidedBy`): "Documentation answers (DTR)". */
  by: string;
  source: OrderEvent['source'];
  /** When the order was decided on that path. */
  at: string;
  decision: 'approve' | 'deny';
  reason: string;
  /**
   * The facts the request's criteria read that the deciding evaluation (its coverage assertion) read otherwise than the
   * request as filed (unknown then, or another value): what settled it, each under the policy's label; known values only.
   */
  facts: { fact: string; label: string; value: boolean | number | string }[];
}

/**
 * The items of a request whose decision is their order's decision made on another path (the clinician's DTR answers, a
 * signing once the chart held the evidence, another PAS request): by which path, when, why, and the values that
 * evaluation read where the request as filed lacked them or read others, from the coverage assertion the order's
 * deciding event names (review ui s47 #2). The trace the
 * request was filed with shows what it lacked then; this shows what settled it. A reviewer's decision, and the request's
 * own decision at submission, are not listed: the decision history and the trace say them.
 */
async function settledItems(storage: Storage, s: PasSubmission, policies: readonly CompiledPolicy[]): Promise<SettledItem[]> {
  const items = ((s.detail as unknown as Detail).items ?? []).filter((i) => (i.reviewAction === 'A1' || i.reviewAction === 'A3') && i.order);
  const out = await Promise.all(
    items.map(async (i): Promise<SettledItem | undefined> => {
      const record = await storage.getOrderRecord(i.order!);
      const state = i.reviewAction === 'A1' ? 'approved' : 'denied';
      const latest = record ? latestEvent(record, state) : undefined;
      // A decision given back to the order as decided (coverage/order-record.ts deniedAgainChange) is the first one.
      const event = (latest?.submissionId && record?.history.find((h) => h.state === state && h.submissionId === latest.submissionId)) || latest;
      if (!event || event.source === 'review' || (event.source === 'pas' && event.submissionId === s.id)) return undefined;
      const assertion = event.assertionId ? await storage.getAssertion(event.assertionId) : undefined;
      const policy = policies.find((p) => p.file.id === (assertion?.policyId ?? i.policyId));
      // What the trace as filed read for each fact its criteria read: the facts listed are those the deciding
      // evaluation read otherwise (unknown then, or another value), i.e. what the new answers or chart brought.
      const read = new Set(i.criteria.flatMap((c) => (c.evidence ?? []).map((e) => e.fact)));
      const filed = new Map(i.criteria.flatMap((c) => (c.evidence ?? []).filter((e) => e.source !== 'unknown' && e.value !== undefined).map((e) => [e.fact, e.value] as const)));
      const facts = Object.entries(assertion?.facts ?? {}).flatMap(([fact, value]) => {
        const label = policy && factLabel(policy, fact);
        const known = typeof value === 'boolean' || typeof value === 'number' || typeof value === 'string';
        return label && known && read.has(fact) && filed.get(fact) !== value ? [{ fact, label, value }] : [];
      });
      return { sequence: i.sequence, by: decidedBy(event), source: event.source, at: event.at, decision: state === 'approved' ? 'approve' : 'deny', reason: event.reason, facts };
    }),
  );
  return out.filter((x): x is SettledItem => !!x);
}

/**
 * Why no approval period is proposed for an item (ItemDecision.periodFrom), in the words the workbench and a refused
 * decision say it: the policy's period runs from the course's first cycle, which the request does not give.
 */
function periodFromWords(i: Pick<ItemDecision, 'periodFrom'>): string {
  const f = i.periodFrom;
  if (!f) return '';
  return `The policy's approval period (${f.length}) runs from the ${f.label.replace(/^./, (c) => c.toLowerCase())}, which the request does not give, so no period is proposed counted from the order's date: set the period from the course's first cycle (ask the requesting clinician for its date if the case does not show it).`;
}

/** What a reviewer sees of one request: identifiers, payer, policy, the criteria with their evidence, the request itself, decisions. */
function reviewView(s: PasSubmission, content?: ReviewDeps['content']) {
  const policies = content?.policies ?? [];
  const items = ((s.detail as unknown as Detail).items ?? []).map((i) => ({
    sequence: i.sequence,
    policyId: i.policyId,
    policyVersion: i.policyVersion,
    outcome: i.outcome,
    reviewAction: i.reviewAction,
    needed: i.needed,
    reasons: i.reasons,
    criteria: i.criteria.map((c) => {
      const evidence = labelledEvidence(c.evidence, policies.find((p) => p.file.id === i.policyId));
      return evidence ? { ...c, evidence } : c;
    }),
    reviewPeriod: i.reviewPeriod,
    // The date the policy's period runs from, which the request does not give: the reviewer sets the period.
    ...(i.periodFrom ? { periodFrom: { ...i.periodFrom, text: periodFromWords(i) } } : {}),
    ...(i.authorization ? { authorization: i.authorization } : {}),
    // A Claim Update cancelled it (X12 306 C): when, and what it was; the reviewer is shown it apart, never to decide.
    ...(i.cancelled ? { cancelled: i.cancelled } : {}),
  }));
  return {
    id: s.id,
    bundleIdentifier: s.bundleIdentifier,
    payer: s.payer,
    policyId: s.policyId,
    policyVersion: s.policyVersion,
    status: s.status,
    reviewAction: s.reviewAction,
    needed: s.needed,
    ...(s.preAuthRef ? { preAuthRef: s.preAuthRef, preAuthPeriod: s.preAuthPeriod } : {}),
    createdAt: s.createdAt,
    updatedAt: s.updatedAt,
    items,
    decisions: s.decisions,
    case: caseOf(s, content),
  };
}

/**
 * What a reviewer recognises a request by, in the queue (PendedEntry) and the Decided list (DecidedEntry) alike:
 * `patientName`, `memberId`, `drug`, `dose` (the order of the item the entry is about), `payerName` (the payer file's
 * `label`, as the cards name the payer; else the payer as the request names it; `payer` is PriorPath's key). Fields
 * the request does not give are absent. The workbench reads them as its RequestNames (web/review/queue-view.ts).
 */
export interface EntryNames {
  patientName?: string;
  payerName?: string;
  memberId?: string;
  drug?: string;
  dose?: string;
}

/**
 * The {@link EntryNames} of a stored request (`s`, if it was read; `payer`, its payer key as the list knows it) for the
 * order of its item `item` (else its first order): one reading for both lists, so the queue and the Decided list name
 * a request the same way.
 */
function entryNames(payer: string | undefined, s: PasSubmission | undefined, item: { sequence: number } | undefined, content?: ReviewDeps['content']): EntryNames {
  const c = s ? caseOf(s) : undefined;
  // Named as the request view names it (caseOf): the payer file's label, else the request's payor name.
  const payerName = (payer !== undefined ? content?.payers?.get(payer)?.label : undefined) ?? c?.payerName;
  const order = c?.orders.find((o) => o.sequence === item?.sequence) ?? c?.orders[0];
  return {
    ...(c ? { patientName: c.patient.name } : {}),
    ...(c?.patient.memberId ? { memberId: c.patient.memberId } : {}),
    ...(payerName ? { payerName } : {}),
    ...(order ? { drug: order.drug } : {}),
    ...(order?.dose ? { dose: order.dose } : {}),
  };
}

/**
 * One entry of the reviewer's queue (`GET /review/pended`): the stored summary (id, bundleIdentifier, payer,
 * policyId, policyVersion, createdAt, needed) plus what a reviewer recognises a request by ({@link EntryNames}, the
 * first pended item's order), `missing` (= needed: what the request lacks) and `ageSeconds` (time in the queue).
 */
export interface PendedEntry extends PendedSummary, EntryNames {
  missing: string[];
  ageSeconds: number;
  /**
   * The other pended requests of this case: each waits on this request's orders with nothing of its own to review
   * (another payer API client's request for the same order), takes this request's decision, and is not listed apart.
   */
  waiting?: { id: string; bundleIdentifier: string; createdAt: string }[];
}

/**
 * The pended queue, oldest first, each entry naming its patient and order (one read of the stored requests). A
 * request whose order was decided elsewhere meanwhile takes that decision and leaves the queue (settlePended).
 */
async function pendedQueue(storage: Storage, logger: Logger, content?: ReviewDeps['content'], now = Date.now()): Promise<PendedEntry[]> {
  // Read only (a GET): a request its order's decision settles leaves the list now and is stored by the sweep.
  const { listed, current: byId } = await currentPended(storage, { log: logger, readOnly: true });
  const open = listed.filter((p) => (byId.get(p.id)?.reviewAction ?? 'A4') === 'A4');
  // One case per order (design.md §8): a request waiting on another listed request's orders is listed with that one.
  const orderText = (k: OrderKey) => JSON.stringify([k.payer, k.patientId, k.orderRef, k.drug]);
  const keysOf = (id: string) => ((byId.get(id)?.detail as unknown as Detail | undefined)?.items ?? []).filter((i) => i.reviewAction === 'A4' && i.order).map((i) => orderText(i.order!));
  const named = new Map<string, number>();
  for (const p of open) for (const k of new Set(keysOf(p.id))) named.set(k, (named.get(k) ?? 0) + 1);
  // Only a request each of whose pended orders another listed request names too can be waiting on one: the records
  // are read (waitsOn) for those alone, not for the whole queue.
  const owners = await Promise.all(
    open.map(async (p) => {
      const s = byId.get(p.id);
      const keys = keysOf(p.id);
      return s && keys.length > 0 && keys.every((k) => (named.get(k) ?? 0) > 1) ? waitsOn(storage, s) : undefined;
    }),
  );
  const listedIds = new Set(open.map((p) => p.id));
  const waiting = new Map<string, PendedSummary[]>();
  open.forEach((p, n) => {
    const owner = owners[n];
    if (owner && listedIds.has(owner)) waiting.set(owner, [...(waiting.get(owner) ?? []), p]);
  });
  const pended = open.filter((_, n) => !(owners[n] && listedIds.has(owners[n]!)));
  return pended.map((p) => {
    const s = byId.get(p.id);
    // The order the reviewer is asked to decide: the first pended item's, never one its submitter cancelled.
    const items = (s?.detail as unknown as Detail | undefined)?.items ?? [];
    const live = items.find((i) => i.reviewAction === 'A4') ?? items.find((i) => i.reviewAction !== 'C');
    return {
      ...p,
      ...entryNames(p.payer, s, live, content),
      missing: p.needed,
      ageSeconds: Math.max(0, Math.round((now - Date.parse(p.createdAt)) / 1000)),
      ...(waiting.has(p.id) ? { waiting: waiting.get(p.id)!.map((w) => ({ id: w.id, bundleIdentifier: w.bundleIdentifier, createdAt: w.createdAt })) } : {}),
    };
  });
}

/**
 * One entry of the reviewer's "Decided" list (`GET /review/decided`): a decision recorded on a request (a reviewer's,
 * or the request settled by its order's decision on another path, whose `reviewer` names that path), with what a
 * reviewer recognises the request by, as the queue names it (PendedEntry), and the request's state now (`status`,
 * `reviewAction`: a later Claim Update may have cancelled it). Fields the request does not give are absent. The
 * workbench reads it as its DecidedRow (web/review/queue-view.ts: web code imports no server module, and src/ no
 * web/ one); test/pas/review-decided.test.ts checks that every DecidedEntry is such a row.
 */
export interface DecidedEntry extends EntryNames {
  id: string;
  bundleIdentifier?: string;
  payer?: string;
  policyId?: string;
  decision: 'approve' | 'deny';
  reviewer: string;
  reason: string;
  decidedAt: string;
  authorizationNumber?: string;
  status?: string;
  reviewAction?: string;
}

/** How far back the Decided list reaches at most, in days, and how many decisions it lists at most. */
export const DECIDED_MAX_DAYS = 90;
const DECIDED_LIMIT = 200;

/**
 * The decisions of the last `days` days, newest first, each naming its patient and order (design.md §8 "The reviewer
 * API"): read from the durable store, so a reviewer finds what was decided after a reload or on another replica.
 */
async function decidedList(storage: Storage, days: number, content?: ReviewDeps['content'], settledNow: PasSubmission[] = [], now = Date.now()): Promise<DecidedEntry[]> {
  const stored = await storage.listReviewDecisions({ since: new Date(now - days * 86_400_000).toISOString(), limit: DECIDED_LIMIT });
  // The requests settled by their orders' decisions as read now, not yet stored: their decision, newest first.
  const unstored = settledNow.filter((s) => !stored.some((d) => d.submissionId === s.id)).map((s) => s.decisions.at(-1)).filter((d): d is ReviewDecision => !!d);
  const decisions = [...unstored, ...stored].sort((a, b) => byCodePoint(b.decidedAt, a.decidedAt)).slice(0, DECIDED_LIMIT);
  const ids = [...new Set(decisions.map((d) => d.submissionId))];
  const byId = new Map((ids.length ? await storage.findPasSubmissions({ ids, limit: ids.length }) : []).map((s) => [s.id, s]));
  for (const s of settledNow) byId.set(s.id, s);
  return decisions.map((d) => {
    const s = byId.get(d.submissionId);
    // The order decided: the first item a decision answers (approved or denied), never one its submitter cancelled.
    const items = (s?.detail as unknown as Detail | undefined)?.items ?? [];
    const decided = items.find((i) => i.reviewAction === 'A1' || i.reviewAction === 'A3') ?? items.find((i) => i.reviewAction !== 'C');
    return {
      id: d.submissionId,
      ...(s ? { bundleIdentifier: s.bundleIdentifier, payer: s.payer, ...(s.policyId ? { policyId: s.policyId } : {}) } : {}),
      decision: d.decision,
      reviewer: d.reviewer,
      reason: d.reason,
      decidedAt: d.decidedAt,
      ...(d.authorizationNumber ? { authorizationNumber: d.authorizationNumber } : {}),
      ...(s ? { status: s.status, reviewAction: s.reviewAction } : {}),
      ...entryNames(s?.payer, s, decided, content),
    };
  });
}

const daysSchema = z.coerce.number().int().min(1).max(DECIDED_MAX_DAYS);

/**
 * The clinical reviewer's API for pended PAS requests (design.md §8: pended, then decided), mounted at `/review`:
 * `GET /pended` lists what waits (ids, payer, policy, created, what is needed), `GET /decided?days=N` what was decided
 * in the last N days (default 7, newest first), `GET /:id` shows one request's
 * criteria results and decisions, `POST /:id/decision` with `{ decision: 'approve'|'deny', reviewer, reason,
 * period? }` records who decided, when and why; an approval issues an authorization number and period. Afterwards
 * `$inquire` (and a resubmission of the same request) return A1 or A3. Every call needs `Authorization: Bearer
 * <REVIEW_TOKEN>`; with no token configured the API refuses all calls.
 */
export function createReviewRouter(deps: ReviewDeps): express.Router {
  const { storage, logger } = deps;
  const router = express.Router();
  // The token guards each route, not the router: a method a path does not serve is a 405 with Allow, and an OPTIONS
  // (a CORS preflight carries no credentials) a 204 with it, for any caller, as on every other path (http/method-guard.ts).
  const reviewer = requireToken(deps.reviewToken);

  router.get(
    '/pended',
    reviewer,
    handler(async (_req, res) => {
      res.json({ pended: await pendedQueue(storage, logOf(_req, logger), deps.content) });
    }),
  );

  router.get(
    '/decided',
    reviewer,
    handler(async (req, res) => {
      const asked = req.query.days;
      const parsed = asked === undefined ? { success: true as const, data: 7 } : daysSchema.safeParse(typeof asked === 'string' ? asked : Number.NaN);
      if (!parsed.success) throw badRequest(`Invalid days: give a whole number of days from 1 to ${DECIDED_MAX_DAYS}`, ['days']);
      // A pended request whose order was decided elsewhere (a DTR approval) is listed with that decision whichever list a
      // reader (or replica) reads first, so a request never drops out of both (review ui s46 L1; design.md §8 "The
      // reviewer API"), read only: a GET changes no state, the sweep (or the next write) stores the decision.
      const { current } = await currentPended(storage, { log: logOf(req, logger), readOnly: true });
      res.json({ days: parsed.data, decided: await decidedList(storage, parsed.data, deps.content, [...current.values()].filter((s) => s.reviewAction !== 'A4')) });
    }),
  );

  router.get(
    '/:id',
    reviewer,
    handler(async (req, res) => {
      const s = await storage.getPasSubmission(String(req.params.id));
      if (!s) throw notFound(`No PAS request ${String(req.params.id)}`);
      // A GET changes no state: the request as it now stands, stored by the sweep or the next write.
      const current = await settlePended(storage, s, { log: logOf(req, logger), readOnly: true });
      const owner = await waitsOn(storage, current);
      const settled = await settledItems(storage, current, deps.content?.policies ?? []);
      // A request waiting on another's orders names that request: its case, whose decision this one takes.
      res.json({ ...reviewView(current, deps.content), ...(settled.length ? { settled } : {}), ...(owner ? { waitsOn: owner } : {}) });
    }),
  );

  router.post(
    '/:id/decision',
    reviewer,
    ensureJsonBody(),
    handler(async (req, res) => {
      const parsed = decisionSchema.safeParse(req.body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw badRequest(`Invalid decision: ${issue.path.join('.') || 'body'}: ${issue.message}. Send { decision: "approve" | "deny", reviewer, reason }`, [issue.path.join('.') || 'body']);
      }
      const { decision, reviewer, reason, period } = parsed.data;
      const id = String(req.params.id);
      const found = await storage.getPasSubmission(id);
      if (!found) throw notFound(`No PAS request ${id}`);
      // An order decided elsewhere meanwhile has its one decision: the request takes it, and this one is a 409.
      const s = await settlePended(storage, found, { log: logOf(req, logger), notifier: deps.notifier });
      if (s.reviewAction !== 'A4')
        throw new HttpError(
          409,
          outcome(
            'error',
            'conflict',
            s.status === 'cancelled'
              ? `PAS request ${id} was cancelled by its submitter; there is nothing left to decide`
              : `PAS request ${id} is not pended (it is ${s.status}); it was decided before`,
          ),
        );

      const decidedAt = new Date().toISOString();
      const detail = s.detail as unknown as Detail;
      const request = parsePasRequest(s.requestBundle);
      // No approval outlives the Coverage it is issued under (design.md §4 "Payer"): a reviewer's approval ends no later
      // than the request's Coverage's last day. A period asked past it is capped and the answer says so: the clinical
      // decision stands, the member's eligibility bounds it (a payer's authorization is valid only while the member is
      // covered), and the reviewer is not made to retype a date the request already tells. A period that starts after
      // that day has nothing in the Coverage to approve: a 400 naming the day.
      const coverageEnd = coverageLastDay(request.coverage);
      const coverageName = `Coverage${request.coverage.id ? ` ${request.coverage.id}` : ''}`;
      if (decision === 'approve' && period && coverageEnd && period.start > coverageEnd)
        throw badRequest(`Invalid decision: period.start ${period.start} is after ${coverageEnd}, the last day of the request's ${coverageName}: an approval ends within the Coverage it is issued under`, ['period.start']);
      const number = decision === 'approve' ? authorizationNumber(s.payer, decidedAt.slice(0, 10)) : undefined;
      // An item pended over what its order's approval covers (settlePended left it pended; approval-covers.ts): the
      // order keeps its one number, which a reviewer's approval now also covers this request with, and a denial is
      // of this request's item only (docs/design.md §8 "What an approval covers").
      const approvedOrders = await Promise.all(
        detail.items.map(async (i) => {
          const r = i.reviewAction === 'A4' && i.order ? await storage.getOrderRecord(i.order) : undefined;
          // In force only: an expired approval covers nothing to reuse (recordedDecision).
          return recordedDecision(r, decidedAt.slice(0, 10), coverageEnd)?.reviewAction === 'A1' ? r : undefined;
        }),
      );
      // A period the policy counts from a date the request does not give (a course's first cycle: periodFrom) is the
      // reviewer's to set, never one counted from the order's date (design.md §8 "The reviewer API"). An item whose order
      // holds an approval keeps that approval's period.
      const unset = decision === 'approve' && !period ? detail.items.find((i, n) => i.reviewAction === 'A4' && !approvedOrders[n] && i.reviewPeriod.end === undefined) : undefined;
      if (unset)
        throw badRequest(
          `Invalid decision: period: give the approval period. ${periodFromWords(unset)}`,
          ['period'],
        );
      const items: ItemDecision[] = detail.items.map((i, n) => {
        if (i.reviewAction !== 'A4') return i;
        const review = { decision, reason, decidedAt };
        if (decision === 'approve') {
          const p = period ?? i.reviewPeriod;
          const held = approvedOrders[n]?.authorization;
          // Beside the order's approval the reviewer's approval keeps its number; a period the reviewer gives widens the
          // order's period (a 9-cycle request outlasts a one-cycle approval at signing), never narrows or moves it: the
          // issued approval may already have been dispensed and billed under (review s41 F8), so it runs from the
          // earlier start to the later end (applyChangeTo and SQL storage's setsPeriod alike). Either ends within the
          // Coverage (above).
          // p.end is set: an item without one was refused above unless the reviewer gave a period.
          const asked = held ? (period ? widenedPeriod(held, period) : held) : { number: number!, start: p.start, end: p.end! };
          const authorization = withinCoverage(asked, coverageEnd);
          const capped =
            authorization.end !== asked.end
              ? ` (period ending on ${authorization.end}, the last day of the member's ${coverageName}, not ${asked.end}: an approval does not outlive the Coverage)`
              : '';
          return { ...i, reviewAction: 'A1', needed: [], reasons: [`Certified on clinical review${capped}`], authorization, review };
        }
        return { ...i, reviewAction: 'A3', needed: [], reasons: [`Not certified on clinical review: ${reason}`], review };
      });
      // Only the items pended until now are this decision's: an item a reviewer decided before (the request was
      // pended again by a Claim Update adding an item) keeps its decision, its order and its number.
      const decidedNow = new Set(detail.items.filter((i) => i.reviewAction === 'A4').map((i) => i.sequence));
      const approvedBefore = new Set(detail.items.filter((_, n) => approvedOrders[n]).map((i) => i.sequence));
      const granted = items.filter((i) => decidedNow.has(i.sequence) && !approvedBefore.has(i.sequence) && i.authorization).map((i) => i.authorization!);
      const reused = items.find((i) => approvedBefore.has(i.sequence) && i.reviewAction === 'A1')?.authorization;
      const authorization: AuthorizationRecord | undefined =
        number && granted.length > 0 ? { number, start: granted.map((g) => g.start).sort()[0], end: granted.map((g) => g.end).sort().at(-1)! } : undefined;

      // Answered again in the version the request was answered in (PAS_VERSION may have chosen 2.0.1).
      const version = answeredVersion(s);
      const itemErrors = itemErrorsOf(s.detail);
      const { bundle, claimResponse } = buildResponseBundle(request, items, { id: s.id, created: s.createdAt, humanReviewed: true, version, itemErrors });
      const { status, reviewAction } = summarize(items);
      // The reviewer's decision is the order's decision (design.md §8): the orders change with the request, or neither.
      // An approved order's approval is kept (its number, its period) and becomes the reviewer's for this request; a
      // denial of more than it covers leaves it.
      const orders = items
        .filter((i): i is ItemDecision & { order: OrderKey } => !!i.order && decidedNow.has(i.sequence) && !(approvedBefore.has(i.sequence) && decision === 'deny'))
        .map((i) => ({
          key: i.order,
          from: approvedBefore.has(i.sequence) ? (['approved'] as OrderState[]) : UNDECIDED,
          change: {
            state: decision === 'approve' ? ('approved' as const) : ('denied' as const),
            at: decidedAt,
            source: 'review' as const,
            actor: reviewer,
            reason,
            policyId: i.policyId,
            submissionId: id,
            ...(i.authorization ? { authorization: i.authorization } : {}),
            // The reviewer's period widens the period of the approval the order holds (its number stays).
            ...(approvedBefore.has(i.sequence) && decision === 'approve' && period ? { setsPeriod: true } : {}),
            // What the reviewer approved lives with the order's decision, never only on this request's item, which a
            // Claim Update may change while the approval stands (design.md §8 "What an approval covers"; s45 H1).
            ...(decision === 'approve' ? { approvedItem: approvedItemOf(i, s.requestBundle) } : {}),
          },
        }));
      const result = await storage.recordReviewDecision({
        orders,
        // Decided on what the reviewer was shown: a Claim Update meanwhile (an item cancelled or added) refuses it.
        revision: s.revision,
        decision: { submissionId: id, decision, reviewer, reason, decidedAt, ...(authorization ? { authorizationNumber: authorization.number } : {}) },
        next: {
          status,
          reviewAction,
          needed: [],
          ...(authorization
            ? { preAuthRef: authorization.number, preAuthPeriod: { start: authorization.start, end: authorization.end } }
            : reused
              ? { preAuthRef: reused.number, preAuthPeriod: { start: reused.start, end: reused.end } }
              : { preAuthRef: s.preAuthRef, preAuthPeriod: s.preAuthPeriod }),
          claimResponse: claimResponse as unknown as Record<string, unknown>,
          responseBundle: bundle as unknown as Record<string, unknown>,
          detail: { items, pasVersion: version, ...(itemErrors.length > 0 ? { itemErrors } : {}) },
        },
        authorization,
      });
      if (!result.applied) {
        // Who decided the order meanwhile: another path (signing, DTR, another request), or a review of this request.
        // The record keeps naming this request while another path decides its order, so the deciding event says.
        const decided = (await Promise.all(orders.map((o) => storage.getOrderRecord(o.key))))
          .map((r) => (isDecided(r) ? { record: r, by: latestEvent(r, r.state) } : undefined))
          .find((d) => d && !(d.by?.source === 'review' && d.by.submissionId === id));
        // The request takes that decision now, so $inquire and its subscribers have it without another read.
        if (decided) await settlePended(storage, s, { log: logOf(req, logger), notifier: deps.notifier });
        throw new HttpError(
          409,
          outcome(
            'error',
            'conflict',
            decided
              ? `The order of PAS request ${id} was ${decided.record.state} ${decidedOn(decided.by)} meanwhile${decided.record.authorization ? ` (${decided.record.authorization.number})` : ''}; it has one decision, which the request now answers`
              : `PAS request ${id} was decided or updated by its submitter meanwhile; read it again`,
          ),
        );
      }
      logOf(req, logger).info({ submissionId: id, decision, reviewAction, authorization: authorization?.number }, 'pas review decision');
      // The case's other requests (another client's for the same order) take the decision now, not at their next
      // read: the order's decision is durable already, so a failure here leaves them to that read or the sweep.
      await settleWaitingOn(storage, orders.map((o) => o.key), { except: id, log: logOf(req, logger), notifier: deps.notifier }).catch((err: unknown) =>
        logOf(req, logger).warn({ err, submissionId: id }, 'the requests waiting on the decided orders are settled later'),
      );
      deps.notifier?.kick();
      res.json(reviewView(result.submission!, deps.content));
    }),
  );
  return router;
}
