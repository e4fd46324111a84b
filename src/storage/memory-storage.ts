import { randomUUID } from 'node:crypto';
import type {
  ApiAccessRecord,
  AnsweredApproval,
  ApprovalWithdrawal,
  AssertionRecord,
  AuthorizationRecord,
  CreatePasSubmissionOptions,
  FeedbackRecord,
  QuestionnaireResponseRecord,
  DecidedResponseInput,
  DeterminationInput,
  GuardedOrderChange,
  HookAuditRecord,
  IssuedAuthorization,
  JtiRecord,
  NewPasSubmission,
  OrderKey,
  OrderRecord,
  PasQuery,
  PasSubmission,
  PasSubmissionAlias,
  BundleName,
  PasSubmissionUpdate,
  PasUpdateInput,
  DueDelivery,
  SubscriptionEvent,
  SubscriptionQuery,
  SubscriptionRecord,
  SubscriptionStatus,
  PendedSummary,
  ReviewDecision,
  ReviewDecisionInput,
  Storage,
} from './storage.js';
import { StorageError, SUBSCRIPTION_PAGE, applyChangeTo, latestEvent, readableBy } from './storage.js';

const orderKeyOf = (k: OrderKey) => JSON.stringify([k.payer, k.patientId, k.orderRef, k.drug]);

const overlaps = (a: string[] | undefined, b: string[]) => !!a && a.some((x) => b.includes(x));

/** In-process storage for unit tests; same contract as the SQL backends, nothing survives the process. */
/** As SqlStorage: how many patients of one order are read (one is the rule, two already say enough). */
const ORDER_PATIENTS_READ = 10;

export class MemoryStorage implements Storage {
  readonly assertions = new Map<string, AssertionRecord>();
  readonly audit: HookAuditRecord[] = [];
  readonly feedback = new Map<string, FeedbackRecord>();
  readonly questionnaireResponses = new Map<string, QuestionnaireResponseRecord>();
  readonly authorizations = new Map<string, IssuedAuthorization>();
  readonly submissions = new Map<string, PasSubmission>();
  readonly jtis = new Map<string, number>();
  readonly access: ApiAccessRecord[] = [];
  readonly orders = new Map<string, OrderRecord>();
  /** The keys of the order changes applied (GuardedOrderChange.eventId). */
  private readonly appliedEvents = new Set<string>();
  readonly aliases = new Map<string, PasSubmissionAlias>();
  readonly updates: PasSubmissionUpdate[] = [];
  readonly subscriptions = new Map<string, SubscriptionRecord>();
  readonly pasEvents: { id: number; submissionId: string; dispatched: boolean }[] = [];
  readonly deliveries: {
    id: number;
    subscriptionId: string;
    kind: DueDelivery['kind'];
    eventNumber?: number;
    submissionId?: string;
    attempts: number;
    nextAttemptAt: string;
    deliveredAt?: string;
    lastError?: string;
    held?: boolean;
    createdAt?: string;
  }[] = [];
  private sequence = 0;

  async saveSubscription(x: SubscriptionRecord): Promise<void> {
    const current = this.subscriptions.get(x.id);
    this.subscriptions.set(x.id, { ...structuredClone(x), eventsCount: current?.eventsCount ?? x.eventsCount });
  }
  async getSubscription(id: string): Promise<SubscriptionRecord | undefined> {
    const x = this.subscriptions.get(id);
    return x ? structuredClone(x) : undefined;
  }
  async listSubscriptions(q: SubscriptionQuery = {}): Promise<SubscriptionRecord[]> {
    return [...this.subscriptions.values()]
      .filter((x) => (!q.statuses || q.statuses.includes(x.status)) && (q.readableBy === undefined || readableBy(x.owner, q.readableBy)) && (q.afterId === undefined || x.id > q.afterId))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, Math.min(q.limit ?? SUBSCRIPTION_PAGE, SUBSCRIPTION_PAGE))
      .map((x) => structuredClone(x));
  }
  async deleteSubscription(id: string): Promise<boolean> {
    const had = this.subscriptions.delete(id);
    for (let i = this.deliveries.length - 1; i >= 0; i--) if (this.deliveries[i].subscriptionId === id) this.deliveries.splice(i, 1);
    return had;
  }
  async setSubscriptionStatus(id: string, status: SubscriptionStatus, at: string): Promise<void> {
    const x = this.subscriptions.get(id);
    if (x) Object.assign(x, { status, updatedAt: at });
    for (const d of this.deliveries) {
      if (d.subscriptionId !== id || d.deliveredAt || d.kind !== 'event-notification') continue;
      if (status === 'error') d.held = true;
      else if (status === 'active' && d.held) Object.assign(d, { held: false, attempts: 0, nextAttemptAt: at });
    }
  }
  async listSubscriptionEvents(subscriptionId: string, since: number, until: number, limit: number): Promise<SubscriptionEvent[]> {
    return this.deliveries
      .filter((d) => d.subscriptionId === subscriptionId && d.eventNumber !== undefined && d.eventNumber >= since && d.eventNumber <= until)
      .sort((a, b) => a.eventNumber! - b.eventNumber!)
      .slice(0, limit)
      .map((d) => ({ eventNumber: d.eventNumber!, submissionId: d.submissionId!, at: d.createdAt! }));
  }
  async enqueueHandshake(subscriptionId: string, at: string): Promise<void> {
    this.deliveries.push({ id: ++this.sequence, subscriptionId, kind: 'handshake', attempts: 0, nextAttemptAt: at });
  }
  async pendingPasEvents(limit = 100): Promise<{ id: number; submissionId: string }[]> {
    return this.pasEvents.filter((e) => !e.dispatched).slice(0, limit).map((e) => ({ id: e.id, submissionId: e.submissionId }));
  }
  async dispatchPasEvent(eventId: number, submissionId: string, subscriptionIds: string[], at: string): Promise<void> {
    const event = this.pasEvents.find((e) => e.id === eventId);
    if (!event || event.dispatched) return;
    event.dispatched = true;
    for (const id of subscriptionIds) {
      const x = this.subscriptions.get(id);
      if (!x || x.status === 'off') continue;
      x.eventsCount += 1;
      this.deliveries.push({ id: ++this.sequence, subscriptionId: id, kind: 'event-notification', eventNumber: x.eventsCount, submissionId, attempts: 0, nextAttemptAt: at, held: x.status === 'error', createdAt: at });
    }
  }
  async claimDueDeliveries(now: string, leaseMs: number, limit: number): Promise<DueDelivery[]> {
    const due = this.deliveries.filter((d) => !d.deliveredAt && !d.held && d.nextAttemptAt <= now).slice(0, limit);
    const leased = new Date(Date.parse(now) + leaseMs).toISOString();
    const out: DueDelivery[] = [];
    for (const d of due) {
      d.nextAttemptAt = leased;
      d.attempts += 1;
      const subscription = this.subscriptions.get(d.subscriptionId);
      if (!subscription) continue;
      out.push({ id: d.id, kind: d.kind, ...(d.eventNumber !== undefined ? { eventNumber: d.eventNumber } : {}), ...(d.submissionId ? { submissionId: d.submissionId } : {}), attempts: d.attempts, subscription: structuredClone(subscription) });
    }
    return out;
  }
  async completeDelivery(id: number, at: string): Promise<void> {
    const d = this.deliveries.find((x) => x.id === id);
    if (d) Object.assign(d, { deliveredAt: at, lastError: undefined });
    if (d) this.notifiedAt.set(d.subscriptionId, [this.notifiedAt.get(d.subscriptionId) ?? '', at].sort()[1]);
  }
  /** When each subscription was last sent a notification (claimHeartbeat). */
  private readonly notifiedAt = new Map<string, string>();
  async claimHeartbeat(subscriptionId: string, quietSince: string, now: string): Promise<boolean> {
    const x = this.subscriptions.get(subscriptionId);
    if (x?.status !== 'active' || Date.parse(this.notifiedAt.get(subscriptionId) ?? x.updatedAt) > Date.parse(quietSince)) return false;
    this.notifiedAt.set(subscriptionId, now);
    return true;
  }
  async failDelivery(id: number, nextAttemptAt: string, error: string): Promise<void> {
    const d = this.deliveries.find((x) => x.id === id);
    if (d) Object.assign(d, { nextAttemptAt, lastError: error });
  }
  async countUndelivered(): Promise<number> {
    return this.deliveries.filter((d) => !d.deliveredAt && !d.held).length;
  }

  async addPasSubmissionAlias(a: PasSubmissionAlias): Promise<BundleName> {
    // An identifier that names a request already (its own, an alias, a Claim Update) keeps naming that one.
    const named = this.named(a.bundleIdentifier, a.clientId);
    if (named) return { submissionId: named.id, requestHash: named.requestHash };
    this.aliases.set(`${a.clientId ?? ''} ${a.bundleIdentifier}`, structuredClone(a));
    return { submissionId: a.submissionId, requestHash: a.requestHash };
  }

  /**
   * The request one client's Bundle identifier names in any of the three places (its own, an alias, a Claim Update),
   * with the naming content's hash: design.md §8, one identifier names one content (SQL: lockBundleName).
   */
  private named(bundleIdentifier: string, client: string | undefined): PasSubmission | undefined {
    const same = (x: { bundleIdentifier: string; clientId?: string }) => x.bundleIdentifier === bundleIdentifier && (x.clientId ?? '') === (client ?? '');
    const own = [...this.submissions.values()].find(same);
    if (own) return structuredClone(own);
    const name = [...this.aliases.values()].find(same) ?? this.updates.find(same);
    const target = name ? this.submissions.get(name.submissionId) : undefined;
    return name && target ? { ...structuredClone(target), requestHash: name.requestHash } : undefined;
  }

  /** Whether a guarded change may apply now (no awaits between this check and the write: one step, like SQL). */
  private allows(c: GuardedOrderChange): boolean {
    if (c.eventId && this.appliedEvents.has(c.eventId)) return true;
    const current = this.orders.get(orderKeyOf(c.key));
    return !current || c.from.includes(current.state);
  }

  private applyNow({ key, change: c, eventId }: GuardedOrderChange): void {
    // A change handed over again (its key already applied) changes nothing, as in SQL storage (migration 11).
    if (eventId) {
      if (this.appliedEvents.has(eventId)) return;
      this.appliedEvents.add(eventId);
    }
    const k = orderKeyOf(key);
    const current = this.orders.get(k);
    const record: OrderRecord = current ?? { ...key, id: randomUUID(), state: c.state, reason: c.reason, createdAt: c.at, updatedAt: c.at, history: [] };
    if (applyChangeTo(record, c)) {
      this.authorizations.set(c.authorization!.number, {
        ...c.authorization!,
        payer: key.payer,
        source: c.source,
        ...(c.assertionId ? { assertionId: c.assertionId } : {}),
        ...(c.submissionId ? { submissionId: c.submissionId } : {}),
        issuedAt: c.at,
      });
    }
    this.orders.set(k, record);
  }

  async getOrderRecord(key: OrderKey): Promise<OrderRecord | undefined> {
    const r = this.orders.get(orderKeyOf(key));
    return r ? structuredClone(r) : undefined;
  }
  async findOrderRecords(q: { payer: string; patientId: string; orderRefs: string[] }): Promise<OrderRecord[]> {
    return [...this.orders.values()].filter((r) => r.payer === q.payer && r.patientId === q.patientId && q.orderRefs.includes(r.orderRef)).map((r) => structuredClone(r));
  }
  async findOrderRecordsBySubmission(submissionId: string): Promise<OrderRecord[]> {
    return [...this.orders.values()].filter((r) => r.submissionId === submissionId).map((r) => structuredClone(r));
  }
  /**
   * Scans every order record on each call (each completed DTR POST and `$next-question` round reads it): acceptable
   * for this dev and test storage only, whose records are few (review s41 F6). SqlStorage answers it from an index.
   */
  async orderPatientIds(q: { payer: string; orderRef: string; drug: string }): Promise<string[]> {
    const ids = [...this.orders.values()].filter((r) => r.payer === q.payer && r.orderRef === q.orderRef && r.drug === q.drug).map((r) => r.patientId);
    return [...new Set(ids)].slice(0, ORDER_PATIENTS_READ);
  }
  async applyOrderChange(c: GuardedOrderChange, assertion?: AssertionRecord): Promise<{ applied: boolean; record: OrderRecord }> {
    const applied = this.allows(c);
    if (applied) this.applyNow(c);
    const record = this.orders.get(orderKeyOf(c.key))!;
    if (assertion) {
      const { authorization: _proposed, ...rest } = assertion;
      const held = record.state === 'approved' ? record.authorization : undefined;
      await this.saveAssertion(held ? { ...rest, authorization: { ...held } } : rest);
    }
    return { applied, record: structuredClone(record) };
  }
  async createPasSubmissionForOrders(
    s: NewPasSubmission,
    orders: GuardedOrderChange[],
    authorization?: AuthorizationRecord,
    opts: CreatePasSubmissionOptions = {},
  ): Promise<{ created: true; submission: PasSubmission } | { created: false; submission?: PasSubmission; blockedBy?: OrderRecord; waiting?: PasSubmission }> {
    // No await between the checks and the writes: one step, like the SQL transaction.
    const existing = this.named(s.bundleIdentifier, s.clientId);
    if (existing) return { created: false, submission: existing };
    const waiting = opts.waitingOn && s.clientId ? this.waitingOf(s.clientId, opts.waitingOn) : undefined;
    if (waiting) return { created: false, waiting: structuredClone(waiting) };
    const refused = orders.find((o) => !this.allows(o));
    if (refused) return { created: false, blockedBy: structuredClone(this.orders.get(orderKeyOf(refused.key))!) };
    const unheld = this.unheld(opts.answers);
    if (unheld) return { created: false, ...this.recordOf(unheld) };
    const stored: PasSubmission = { ...structuredClone(s), updatedAt: s.createdAt, decisions: [], revision: 0 };
    this.submissions.set(s.id, stored);
    for (const o of orders) this.applyNow(o);
    if (authorization && !this.authorizations.has(authorization.number)) {
      this.authorizations.set(authorization.number, { ...authorization, payer: s.payer, source: 'pas', submissionId: s.id, issuedAt: s.createdAt });
    }
    return { created: true, submission: structuredClone(stored) };
  }

  async findWaitingSubmission(client: string, orders: OrderKey[]): Promise<PasSubmission | undefined> {
    const found = this.waitingOf(client, orders);
    return found ? structuredClone(found) : undefined;
  }

  /** findWaitingSubmission without a copy (no await: a caller checks and writes in one step). */
  private waitingOf(client: string, orders: OrderKey[]): PasSubmission | undefined {
    if (orders.length === 0) return undefined;
    const names = (s: PasSubmission, k: OrderKey) =>
      ((s.detail as { items?: { reviewAction?: string; order?: OrderKey }[] }).items ?? []).some((i) => i.reviewAction === 'A4' && i.order && orderKeyOf(i.order) === orderKeyOf(k));
    return [...this.submissions.values()]
      .filter((s) => s.clientId === client && s.reviewAction === 'A4' && orders.every((k) => names(s, k)))
      .sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0))[0];
  }

  async queueAssertion(a: AssertionRecord): Promise<void> {
    await this.saveAssertion(a);
  }
  async queueOrderChange(c: GuardedOrderChange): Promise<void> {
    await this.applyOrderChange(c);
  }
  async saveAssertion(a: AssertionRecord): Promise<void> {
    this.assertions.set(a.assertionId, structuredClone(a));
    if (a.authorization && !this.authorizations.has(a.authorization.number)) {
      this.authorizations.set(a.authorization.number, { ...a.authorization, payer: a.payer, source: 'crd', assertionId: a.assertionId, issuedAt: a.createdAt });
    }
  }
  async getAssertion(id: string): Promise<AssertionRecord | undefined> {
    const a = this.assertions.get(id);
    return a ? structuredClone(a) : undefined;
  }
  async saveAudit(a: HookAuditRecord): Promise<void> {
    if (a.lineId && this.audit.some((x) => x.lineId === a.lineId)) return;
    this.audit.push({ ...a });
    if (this.audit.length > 10_000) this.audit.splice(0, this.audit.length - 10_000);
  }
  async listAudit(limit = 100): Promise<HookAuditRecord[]> {
    return this.audit
      .slice(-limit)
      .reverse()
      .map(({ lineId: _key, ...a }) => a);
  }
  async saveFeedback(f: FeedbackRecord): Promise<boolean> {
    const key = [f.service, f.card, f.outcome, f.outcomeTimestamp].join('|');
    if (this.feedback.has(key)) return false;
    this.feedback.set(key, structuredClone(f));
    return true;
  }
  async listFeedback(limit = 100): Promise<FeedbackRecord[]> {
    return [...this.feedback.values()].slice(-limit).reverse().map((f) => structuredClone(f));
  }
  async saveQuestionnaireResponse(r: QuestionnaireResponseRecord): Promise<void> {
    if (this.questionnaireResponses.has(r.id)) throw new StorageError(`QuestionnaireResponse ${r.id} is already stored`);
    this.questionnaireResponses.set(r.id, structuredClone(r));
  }
  async getQuestionnaireResponse(id: string): Promise<QuestionnaireResponseRecord | undefined> {
    const r = this.questionnaireResponses.get(id);
    return r ? structuredClone(r) : undefined;
  }
  async replaceQuestionnaireResponse(r: QuestionnaireResponseRecord, previousVersionId: string): Promise<boolean> {
    const current = this.questionnaireResponses.get(r.id);
    if (!current || (current.resource.meta?.versionId ?? '1') !== previousVersionId) return false;
    this.questionnaireResponses.set(r.id, structuredClone(r));
    return true;
  }
  async saveDecidedQuestionnaireResponse(input: DecidedResponseInput): Promise<{ applied: boolean; blockedBy?: OrderRecord }> {
    // No await between the checks and the writes: one step, like the SQL transaction.
    const { record: r, previousVersionId } = input;
    const current = this.questionnaireResponses.get(r.id);
    if (previousVersionId === undefined ? current : !current || (current.resource.meta?.versionId ?? '1') !== previousVersionId) return { applied: false };
    const blockedBy = this.applyAllOrNone(input.orders);
    if (blockedBy) return { applied: false, blockedBy };
    this.questionnaireResponses.set(r.id, structuredClone(r));
    await this.saveAssertion(input.assertion);
    return { applied: true };
  }
  async saveDetermination(input: DeterminationInput): Promise<{ applied: boolean; blockedBy?: OrderRecord }> {
    const blockedBy = this.applyAllOrNone(input.orders);
    if (blockedBy) return { applied: false, blockedBy };
    await this.saveAssertion(input.assertion);
    return { applied: true };
  }

  /** Applies every change or none, like one SQL transaction; the record that refused a change, if one did. */
  private applyAllOrNone(orders: GuardedOrderChange[]): OrderRecord | undefined {
    // One order's changes follow each other (a reopening, then an approval): each is judged on the record the last left.
    const before = new Map(orders.map((o) => [orderKeyOf(o.key), structuredClone(this.orders.get(orderKeyOf(o.key)))]));
    const issuedBefore = new Set(this.authorizations.keys());
    // The change keys applied here are forgotten with their changes: a refused batch kept nothing, so a change of it
    // sent again with its key must apply (SQL forgets them with the rolled-back transaction).
    const newKeys = orders.flatMap((o) => (o.eventId && !this.appliedEvents.has(o.eventId) ? [o.eventId] : []));
    for (const o of orders) {
      if (this.allows(o)) {
        this.applyNow(o);
        continue;
      }
      const blockedBy = structuredClone(this.orders.get(orderKeyOf(o.key))!);
      for (const [k, was] of before) {
        if (was) this.orders.set(k, was);
        else this.orders.delete(k);
      }
      for (const n of this.authorizations.keys()) if (!issuedBefore.has(n)) this.authorizations.delete(n);
      for (const e of newKeys) this.appliedEvents.delete(e);
      return blockedBy;
    }
    return undefined;
  }

  async getAuthorization(number: string): Promise<IssuedAuthorization | undefined> {
    const a = this.authorizations.get(number);
    return a ? { ...a } : undefined;
  }

  async createPasSubmission(s: NewPasSubmission, authorization?: AuthorizationRecord): Promise<{ created: boolean; submission: PasSubmission }> {
    // No await before the insert: the check and the insert are one step, like the SQL unique index.
    const existing = this.named(s.bundleIdentifier, s.clientId);
    if (existing) return { created: false, submission: existing };
    const stored: PasSubmission = { ...structuredClone(s), updatedAt: s.createdAt, decisions: [], revision: 0 };
    this.submissions.set(s.id, stored);
    if (authorization) {
      this.authorizations.set(authorization.number, { ...authorization, payer: s.payer, source: 'pas', submissionId: s.id, issuedAt: s.createdAt });
    }
    return { created: true, submission: structuredClone(stored) };
  }
  async getPasSubmission(id: string): Promise<PasSubmission | undefined> {
    const s = this.submissions.get(id);
    return s ? structuredClone(s) : undefined;
  }
  async getPasSubmissionByBundleIdentifier(bundleIdentifier: string, client?: string): Promise<PasSubmission | undefined> {
    // The client's own first, then one filed without a client; with no client named, any (the unowned first).
    const first = client ?? '';
    const mine = <T extends { clientId?: string; bundleIdentifier: string }>(list: T[]) =>
      list
        .filter((x) => x.bundleIdentifier === bundleIdentifier && (client === undefined || !x.clientId || x.clientId === client))
        .sort((a, b) => Number((b.clientId ?? '') === first) - Number((a.clientId ?? '') === first))[0];
    const own = mine([...this.submissions.values()]);
    if (own) return structuredClone(own);
    const named = mine([...this.aliases.values()]) ?? mine([...this.updates].reverse());
    const target = named ? this.submissions.get(named.submissionId) : undefined;
    return named && target ? { ...structuredClone(target), requestHash: named.requestHash } : undefined;
  }
  async findPasUpdate(bundleIdentifier: string, client: string | undefined, requestHash: string): Promise<PasSubmission | undefined> {
    const u = this.updates.find((x) => x.bundleIdentifier === bundleIdentifier && (x.clientId ?? '') === (client ?? '') && x.requestHash === requestHash);
    const s = u ? this.submissions.get(u.submissionId) : undefined;
    return s ? structuredClone(s) : undefined;
  }
  async updatePasSubmission(input: PasUpdateInput): Promise<{ applied: boolean; submission?: PasSubmission; blockedBy?: OrderRecord }> {
    // No await between the checks and the writes: one step, like the SQL transaction.
    const { update: u } = input;
    const s = this.submissions.get(u.submissionId);
    if (!s) return { applied: false };
    // The update's identifier may not name another request: nothing is applied (the caller answers 409).
    if ((this.named(u.bundleIdentifier, u.clientId)?.id ?? s.id) !== s.id) return { applied: false, submission: structuredClone(s) };
    const resent = this.updates.some((x) => x.bundleIdentifier === u.bundleIdentifier && (x.clientId ?? '') === (u.clientId ?? '') && x.requestHash === u.requestHash);
    if (s.revision !== input.revision || resent) return { applied: false, submission: structuredClone(s) };
    // The approvals nobody else carries any more, read in the same step as the writes (PasUpdateInput.withdrawals).
    const withdrawn = (input.withdrawals ?? []).filter((w) => this.releasable(s.id, w)).map((w) => w.change);
    const orders = [...withdrawn, ...input.orders];
    const refused = orders.find((o) => !this.allows(o));
    if (refused) return { applied: false, submission: structuredClone(s), blockedBy: structuredClone(this.orders.get(orderKeyOf(refused.key))!) };
    const unheld = this.unheld(input.answers);
    if (unheld) return { applied: false, submission: structuredClone(s), ...this.recordOf(unheld) };
    for (const o of orders) this.applyNow(o);
    Object.assign(s, structuredClone(input.next), { updatedAt: u.createdAt, revision: s.revision + 1 });
    this.updates.push(structuredClone(u));
    const a = input.authorization;
    if (a && !this.authorizations.has(a.number)) this.authorizations.set(a.number, { ...a, payer: s.payer, source: 'pas', submissionId: s.id, issuedAt: u.createdAt });
    return { applied: true, submission: structuredClone(s) };
  }
  /**
   * Whether an approval a cancelled item of `submissionId` carried is to be withdrawn: the order's record still holds
   * its number and no other stored request carries it for that order: an item of it answering the number (A1), or,
   * for the request the approval was issued in (the record's latest approving event), its item for the order still
   * answering, waiting or denied more (A1; A4: a Claim Update asking more pended it again, review-diff s45 H1; A3: the
   * reviewer denied that update, which leaves the approval), i.e. not cancelled, as SQL storage's
   * HELD_ELSEWHERE_SQL. No await: one step with the update's writes.
   */
  private releasable(submissionId: string, { number, change: { key } }: ApprovalWithdrawal): boolean {
    const record = this.orders.get(orderKeyOf(key));
    if (record?.state !== 'approved' || record.authorization?.number !== number) return false;
    const issuedIn = latestEvent(record, 'approved')?.submissionId;
    const carries = (s: PasSubmission) =>
      ((s.detail as { items?: { reviewAction?: string; order?: OrderKey; authorization?: { number?: string } }[] }).items ?? []).some(
        (i) =>
          i.order &&
          orderKeyOf(i.order) === orderKeyOf(key) &&
          ((i.reviewAction === 'A1' && i.authorization?.number === number) || (s.id === issuedIn && i.reviewAction !== undefined && i.reviewAction !== 'C')),
      );
    return ![...this.submissions.values()].some((s) => s.id !== submissionId && carries(s));
  }

  /** The first approval answered from an order's record (AnsweredApproval) that the record no longer holds. */
  private unheld(answers: AnsweredApproval[] = []): OrderKey | undefined {
    return answers.find(({ key, number }) => {
      const record = this.orders.get(orderKeyOf(key));
      return record?.state !== 'approved' || record.authorization?.number !== number;
    })?.key;
  }

  /** `blockedBy`: the order's record as it stands, when it has one. */
  private recordOf(key: OrderKey): { blockedBy?: OrderRecord } {
    const record = this.orders.get(orderKeyOf(key));
    return record ? { blockedBy: structuredClone(record) } : {};
  }

  async findPasSubmissions(q: PasQuery): Promise<PasSubmission[]> {
    return [...this.submissions.values()]
      .filter((s) => q.readableBy === undefined || readableBy(s.clientId, q.readableBy))
      .filter(
        (s) =>
          q.ids?.includes(s.id) ||
          q.bundleIdentifiers?.includes(s.bundleIdentifier) ||
          (s.preAuthRef !== undefined && q.preAuthRefs?.includes(s.preAuthRef)) ||
          s.decisions.some((d) => d.authorizationNumber && q.preAuthRefs?.includes(d.authorizationNumber)) ||
          overlaps(q.claimIdentifiers, s.claimIdentifiers) ||
          overlaps(q.patientIdentifiers, s.patientIdentifiers) ||
          [...this.aliases.values()].some((a) => a.submissionId === s.id && (q.bundleIdentifiers?.includes(a.bundleIdentifier) || overlaps(q.claimIdentifiers, a.claimIdentifiers))) ||
          this.updates.some((u) => u.submissionId === s.id && q.bundleIdentifiers?.includes(u.bundleIdentifier)) ||
          [...this.authorizations.values()].some((a) => a.submissionId === s.id && q.preAuthRefs?.includes(a.number)),
      )
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
      .slice(0, q.limit ?? 50)
      .map((s) => structuredClone(s));
  }
  async listPendedSubmissions(limit = 100): Promise<PendedSummary[]> {
    return [...this.submissions.values()]
      .filter((s) => s.status === 'pended' || s.status === 'partial')
      .filter((s) => s.reviewAction === 'A4')
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
      .slice(0, limit)
      .map((s) => ({ id: s.id, bundleIdentifier: s.bundleIdentifier, payer: s.payer, policyId: s.policyId, policyVersion: s.policyVersion, createdAt: s.createdAt, needed: [...s.needed] }));
  }
  async listReviewDecisions(q: { since: string; limit?: number }): Promise<ReviewDecision[]> {
    // Decisions are appended in the order they were made: the later of two at the same instant comes first, as in SQL (id).
    return [...this.submissions.values()]
      .flatMap((s) => s.decisions.map((d, n) => ({ d, n })))
      .filter(({ d }) => Date.parse(d.decidedAt) >= Date.parse(q.since))
      .sort((a, b) => Date.parse(b.d.decidedAt) - Date.parse(a.d.decidedAt) || b.n - a.n)
      .slice(0, q.limit ?? 100)
      .map(({ d }) => ({ ...d }));
  }
  async recordReviewDecision(input: ReviewDecisionInput): Promise<{ applied: boolean; submission?: PasSubmission }> {
    const s = this.submissions.get(input.decision.submissionId);
    if (!s) return { applied: false };
    if (s.reviewAction !== 'A4' || (input.revision !== undefined && input.revision !== s.revision)) return { applied: false, submission: structuredClone(s) };
    if ((input.orders ?? []).some((o) => !this.allows(o)) || this.unheld(input.answers)) return { applied: false, submission: structuredClone(s) };
    for (const o of input.orders ?? []) this.applyNow(o);
    Object.assign(s, structuredClone(input.next), { updatedAt: input.decision.decidedAt, revision: s.revision + 1 });
    s.decisions.push({ ...input.decision });
    this.pasEvents.push({ id: ++this.sequence, submissionId: s.id, dispatched: false });
    if (input.authorization) {
      const a = input.authorization;
      this.authorizations.set(a.number, { ...a, payer: s.payer, source: 'review', submissionId: s.id, issuedAt: input.decision.decidedAt });
    }
    return { applied: true, submission: structuredClone(s) };
  }

  async recordJti(r: JtiRecord, nowMs: number = Date.now()): Promise<boolean> {
    const key = JSON.stringify([r.issuer, r.jti]);
    const until = this.jtis.get(key);
    if (until !== undefined && until > nowMs) return false;
    if (this.jtis.size >= 100_000) for (const [k, t] of this.jtis) if (t <= nowMs) this.jtis.delete(k);
    this.jtis.set(key, r.expiresAtMs);
    return true;
  }
  readonly settings = new Map<string, string>();
  async sharedSetting(key: string, initial: string): Promise<string> {
    if (!this.settings.has(key)) this.settings.set(key, initial);
    return this.settings.get(key)!;
  }
  async settingSince(key: string, value: string, at: string): Promise<string> {
    const stored = this.settings.get(`since:${key}`);
    if (stored !== undefined && stored.slice(0, stored.indexOf(' ')) === value) return stored.slice(stored.indexOf(' ') + 1);
    this.settings.set(`since:${key}`, `${value} ${at}`);
    return at;
  }
  async saveApiAccess(a: ApiAccessRecord): Promise<void> {
    if (a.lineId && this.access.some((x) => x.lineId === a.lineId)) return;
    this.access.push({ ...a, resourceIds: [...a.resourceIds] });
    if (this.access.length > 10_000) this.access.splice(0, this.access.length - 10_000);
  }
  async listApiAccess(limit = 100): Promise<ApiAccessRecord[]> {
    return this.access
      .slice(-limit)
      .reverse()
      .map(({ lineId: _key, ...a }) => ({ ...a, resourceIds: [...a.resourceIds] }));
  }

  async ping(): Promise<void> {}
  async close(): Promise<void> {}
}
