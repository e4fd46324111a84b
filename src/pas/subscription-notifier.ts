import type { Identifier, Organization, PractitionerRole } from '@medplum/fhirtypes';
import type { Logger } from '../logger.js';
import type { DueDelivery, PasSubmission, Storage, SubscriptionRecord, SubscriptionStatus } from '../storage/storage.js';
import { requestDeadline } from '../http/request-deadline.js';
import { everySubscription, readableBy } from '../storage/storage.js';
import { allowedAddresses, EndpointRefused, pinnedPost } from '../http/notification-endpoints.js';
import type { EndpointPolicy, NotifyFetch } from '../http/notification-endpoints.js';
import { parsePasRequest } from './request-bundle.js';
import { currentPended } from './settle-pended.js';
import { heartbeatPeriod, MAX_NOTIFICATION_TIMEOUT_SECONDS, notificationBundle, notificationTimeout, subscriptionEnded } from './subscription-notifications.js';

export type { NotifyFetch };

export interface NotifierOptions {
  storage: Storage;
  logger: Logger;
  /** `{PUBLIC_BASE_URL}/fhir`: the base the notifications' references use. */
  fhirBase: string;
  fetchImpl?: NotifyFetch;
  /** Where notifications may go; checked again on the resolved address before every POST. */
  endpoints: EndpointPolicy;
  /** Per-notification timeout (ms); a subscription's backport-timeout may shorten it. */
  timeoutMs?: number;
  /** First retry delay (ms); doubles per attempt up to `maxDelayMs`. */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

const HANDSHAKE_ATTEMPTS = 5;
/** The subscriptions a decision event is numbered for: one in error keeps it (held) until it recovers; `off` hears nothing. */
const DISPATCHED_TO: SubscriptionStatus[] = ['requested', 'active', 'error'];
const EVENT_ATTEMPTS = 30;

/** PAS `extension-TransmissionIdentifiers` on the Claim: the X12 envelope ids (GS02, GS03, ISA06, ISA08). */
const TRANSMISSION_IDENTIFIERS = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-TransmissionIdentifiers';

/**
 * The identifiers a request's sending system goes by, which a PAS `org-identifier` filter names: the ISA06 interchange
 * sender id the Claim carries in TransmissionIdentifiers (`interchangeSenderID`; PAS 2.2.1 spec-58 "org-identifier =
 * [sending system identifier] … equivalent to what is currently sent in the ISA06"), and the identifiers of the
 * requesting provider's organization (a sender that sends no X12 envelope ids).
 */
function senderIdentifiers(s: PasSubmission): string[] {
  try {
    const req = parsePasRequest(s.requestBundle);
    const isa06 = (req.claim.extension ?? [])
      .filter((e) => e.url === TRANSMISSION_IDENTIFIERS)
      .flatMap((e) => (e.extension ?? []).filter((x) => x.url === 'interchangeSenderID').map((x) => x.valueString?.trim()))
      .filter((v): v is string => !!v);
    const provider = req.claim.provider?.reference ? req.byReference.get(req.claim.provider.reference) : undefined;
    const orgRef = provider?.resourceType === 'PractitionerRole' ? (provider as PractitionerRole).organization?.reference : undefined;
    const org = provider?.resourceType === 'Organization' ? provider : orgRef ? req.byReference.get(orgRef) : undefined;
    const ids: Identifier[] = org?.resourceType === 'Organization' ? ((org as Organization).identifier ?? []) : [];
    return [...isa06, ...ids.flatMap((i) => (i.value ? [i.value, `${i.system ?? ''}|${i.value}`] : []))];
  } catch {
    return [];
  }
}

/**
 * Whether a subscription's filters select a decided request (all must hold): `org-identifier=<id>[,<id>…]` the
 * sending system (any of the listed ids: PAS 2.2.1 spec-58 "Multiple criteria can be sent by listing them with the ','
 * as a separator"), `patient=<member id>` one of the patient's identifiers. No filter selects every request the
 * subscription's client may read (`readableBy`: the requests it filed).
 */
export function subscriptionMatches(sub: SubscriptionRecord, s: PasSubmission): boolean {
  // A client hears only of the requests it may read: its own (design.md §8 "Who may call").
  if (!readableBy(s.clientId, sub.owner)) return false;
  return sub.filters.every((f) => {
    const [name, value] = [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)];
    if (name === 'org-identifier') {
      const sender = senderIdentifiers(s);
      return value.split(',').some((v) => v.trim() !== '' && sender.includes(v.trim()));
    }
    if (name === 'patient') return s.patientIdentifiers.some((p) => p === value || p.endsWith(`|${value}`));
    return false;
  });
}

function headersOf(sub: SubscriptionRecord): Record<string, string> {
  // The MIME type the subscription asked for (channel.payload: application/fhir+json or application/json).
  const payload = (sub.resource.channel as { payload?: unknown } | undefined)?.payload;
  const out: Record<string, string> = { 'Content-Type': payload === 'application/json' ? 'application/json' : 'application/fhir+json' };
  for (const h of sub.headers) {
    const i = h.indexOf(':');
    if (i > 0) out[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  return out;
}

/**
 * Delivers PAS subscription notifications from the durable outbox (design.md §8; R4 Subscriptions Backport
 * rest-hook): decision events become numbered notifications per matching subscription, each POSTed to its endpoint
 * and retried with exponential backoff until it succeeds. Everything it works from is in storage, so a restart or
 * another replica picks up where it stopped. `kick()` runs it soon; it keeps itself scheduled while work remains.
 */
export class SubscriptionNotifier {
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private pulse: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly fetchImpl: NotifyFetch;

  constructor(private readonly opts: NotifierOptions) {
    this.fetchImpl = opts.fetchImpl ?? pinnedPost;
  }

  /** Runs a pass soon (after a decision, a new subscription, or at start-up to resume). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err: unknown) => this.opts.logger.warn({ err }, 'subscription notifier pass failed'))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Waits for the current pass (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.sweeper) clearInterval(this.sweeper);
    if (this.pulse) clearInterval(this.pulse);
  }

  /**
   * Every `ms`: heartbeats for the subscriptions that asked for one (R4 Subscriptions Backport heartbeat-period) and
   * were sent nothing for that long. serve.ts starts it; one pass at a time.
   */
  heartbeats(ms = 1000): void {
    if (this.stopped || this.pulse) return;
    let busy = false;
    this.pulse = setInterval(() => {
      if (busy || this.stopped) return;
      busy = true;
      this.sendHeartbeats()
        .catch((err: unknown) => this.opts.logger.warn({ err }, 'subscription heartbeat pass failed'))
        .finally(() => (busy = false));
    }, ms);
    this.pulse.unref();
  }

  /**
   * Sends a `heartbeat` notification to each active subscription with a heartbeat period that was sent nothing for
   * that period (the claim in storage makes it one per period across replicas). A heartbeat is a keep-alive: one that
   * fails is not retried (the next comes a period later). Returns how many were sent.
   */
  async sendHeartbeats(now = new Date()): Promise<number> {
    const { storage } = this.opts;
    let sent = 0;
    for await (const page of everySubscription(storage, { statuses: ['active'] })) {
      for (const sub of page) {
        if (await this.turnOffIfEnded(sub, now)) continue;
        sent += (await this.heartbeat(sub, now)) ? 1 : 0;
      }
    }
    return sent;
  }

  /**
   * Turns off a subscription whose `end` has passed (R4 Subscription.end: "the time for the server to turn the
   * subscription off"); true when it has ended, and is then sent nothing more.
   */
  private async turnOffIfEnded(sub: SubscriptionRecord, now: Date): Promise<boolean> {
    if (!subscriptionEnded(sub, now)) return false;
    if (sub.status !== 'off') {
      await this.opts.storage.setSubscriptionStatus(sub.id, 'off', now.toISOString());
      this.opts.logger.info({ subscription: sub.id }, 'subscription reached its end: status off');
    }
    return true;
  }

  /** Sends one subscription its heartbeat if it asked for one and is due (claimed in storage); true when delivered. */
  private async heartbeat(sub: SubscriptionRecord, now: Date): Promise<boolean> {
    const { storage, logger, fhirBase } = this.opts;
    const period = heartbeatPeriod(sub);
    if (sub.status !== 'active' || !period) return false;
    if (!(await storage.claimHeartbeat(sub.id, new Date(now.getTime() - period * 1000).toISOString(), now.toISOString()))) return false;
    const error = await this.post(sub, JSON.stringify(notificationBundle(sub, fhirBase, { type: 'heartbeat' })));
    if (error) logger.info({ subscription: sub.id, error }, 'subscription heartbeat failed');
    return !error;
  }

  /**
   * Every `ms`: pended requests whose order was decided on another path (at signing, in DTR) take that decision
   * (settlePended stores it with its event), so their subscribers hear of it within moments, as they do of a
   * reviewer's decision (design.md §8); reads answer such a request settled without storing it. serve.ts starts it; a pass at a time, never overlapping.
   */
  sweepPended(ms = 10_000): void {
    if (this.stopped || this.sweeper) return;
    let busy = false;
    this.sweeper = setInterval(() => {
      if (busy || this.stopped) return;
      busy = true;
      // The outbox is resumed whatever became of the settling (one request failing to settle must not hold back what a
      // replica that went away left to send).
      this.settleDecidedElsewhere()
        .catch((err: unknown) => this.opts.logger.warn({ err }, 'pended request sweep failed'))
        .then(() => this.resumeLeftDue())
        .catch((err: unknown) => this.opts.logger.warn({ err }, 'outbox resume failed'))
        .finally(() => (busy = false));
    }, ms);
    this.sweeper.unref();
  }

  /** Settles every pended request whose order was decided meanwhile; kicks delivery when one was. */
  async settleDecidedElsewhere(): Promise<number> {
    const { storage, logger } = this.opts;
    // Whether anyone subscribes or not: reads (the reviewer's lists, $inquire, GET ClaimResponse) answer a settled request
    // without storing it, so this is where the decision is stored.
    // Every listed request was pended: those no longer A4 took a decision made elsewhere.
    const { current } = await currentPended(storage, { log: logger });
    const settled = [...current.values()].filter((s) => s.reviewAction !== 'A4').length;
    if (settled > 0) this.kick();
    return settled;
  }

  /**
   * Kicks delivery when the outbox holds anything undelivered (a pass claims only what is due), so notifications and
   * handshakes another replica queued or left due when it stopped go out from this one (docs/design.md §8 Subscriptions: the outbox "resumes ... on another
   * replica"). A replica schedules its own retries in-process, so without this a running replica never sent what a
   * replica that went away left, until something else kicked it (acceptance s44 F1). Cheap when nothing is left: two
   * counts every sweep.
   */
  async resumeLeftDue(): Promise<boolean> {
    const { storage } = this.opts;
    if (this.running) return false;
    const left = (await storage.countUndelivered()) > 0 || (await storage.pendingPasEvents(1)).length > 0;
    if (left) this.kick();
    return left;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.kick(), ms);
    this.timer.unref();
  }

  private async pass(): Promise<void> {
    const { storage } = this.opts;
    await this.dispatchEvents();
    const now = new Date();
    const due = await storage.claimDueDeliveries(now.toISOString(), (this.opts.timeoutMs ?? MAX_NOTIFICATION_TIMEOUT_SECONDS * 1000) * 2, 20);
    await Promise.all(due.map((d) => this.deliver(d)));
    const left = await storage.countUndelivered();
    if (left > 0) this.schedule(due.length > 0 ? 50 : 1000);
  }

  private async dispatchEvents(): Promise<void> {
    const { storage } = this.opts;
    const events = await storage.pendingPasEvents(100);
    if (events.length === 0) return;
    const submissions = await Promise.all(events.map((e) => storage.getPasSubmission(e.submissionId)));
    const targets = events.map((): string[] => []);
    // Every subscription, page by page: the events' targets are complete before any is dispatched.
    const now = new Date();
    for await (const page of everySubscription(storage, { statuses: DISPATCHED_TO })) {
      const live: SubscriptionRecord[] = [];
      for (const s of page) if (!(await this.turnOffIfEnded(s, now))) live.push(s);
      submissions.forEach((submission, i) => {
        if (submission) targets[i].push(...live.filter((s) => subscriptionMatches(s, submission)).map((s) => s.id));
      });
    }
    for (const [i, e] of events.entries()) await storage.dispatchPasEvent(e.id, e.submissionId, targets[i], new Date().toISOString());
  }

  /**
   * POSTs one notification to the subscription's endpoint, on an address checked now (design.md §8 "Notification
   * endpoints": DNS may have changed since the endpoint was accepted). Returns why it failed, or undefined.
   */
  private async post(sub: SubscriptionRecord, body: string): Promise<string | undefined> {
    const own = notificationTimeout(sub);
    // Cleared once the endpoint has answered (request-deadline.ts: not AbortSignal.timeout, whose timer outlives it).
    const deadline = requestDeadline(Math.min(this.opts.timeoutMs ?? MAX_NOTIFICATION_TIMEOUT_SECONDS * 1000, own ? own * 1000 : Infinity));
    try {
      const [address] = await allowedAddresses(new URL(sub.endpoint), this.opts.endpoints);
      const res = await this.fetchImpl(sub.endpoint, { method: 'POST', headers: headersOf(sub), body, signal: deadline.signal, address });
      return res.ok ? undefined : `HTTP ${res.status}`;
    } catch (err) {
      if (err instanceof EndpointRefused) return `endpoint refused: ${err.reason}`;
      return (err as Error).name === 'TimeoutError' ? 'timeout' : ((err as Error).message ?? 'network error');
    } finally {
      deadline.clear();
    }
  }

  private delay(attempts: number): number {
    const base = this.opts.baseDelayMs ?? 1000;
    return Math.min(this.opts.maxDelayMs ?? 300_000, base * 2 ** Math.max(0, attempts - 1));
  }

  private async deliver(d: DueDelivery): Promise<void> {
    const { storage, logger, fhirBase } = this.opts;
    const sub = d.subscription;
    // Past its end, nothing more is sent: what was queued (an event, a retry, a handshake) is dropped, not delivered.
    if (await this.turnOffIfEnded(sub, new Date())) {
      await storage.completeDelivery(d.id, new Date().toISOString());
      return;
    }
    const at = new Date().toISOString();
    let kind: Parameters<typeof notificationBundle>[2];
    if (d.kind === 'handshake') kind = { type: 'handshake' };
    else {
      // The request's current state at sending time: a later change is what the client should see.
      const s = d.submissionId ? await storage.getPasSubmission(d.submissionId) : undefined;
      kind = { type: 'event-notification', eventNumber: d.eventNumber ?? 0, submissionId: d.submissionId ?? '', responseBundle: s?.responseBundle, at: s?.updatedAt ?? at };
    }
    const body = JSON.stringify(notificationBundle(sub, fhirBase, kind));
    const error = await this.post(sub, body);
    // Ids and outcomes only: a notification carries clinical content, the log never does.
    if (!error) {
      await storage.completeDelivery(d.id, new Date().toISOString());
      if (d.kind === 'handshake' && sub.status === 'requested') await storage.setSubscriptionStatus(sub.id, 'active', new Date().toISOString());
      logger.info({ subscription: sub.id, kind: d.kind, eventNumber: d.eventNumber, attempts: d.attempts }, 'subscription notification delivered');
      return;
    }
    const limit = d.kind === 'handshake' ? HANDSHAKE_ATTEMPTS : EVENT_ATTEMPTS;
    if (d.attempts >= limit) {
      // A stale handshake is dropped (an update sends a new one); an event waits, held with the subscription's other
      // undelivered events, and is sent once the client fixed its endpoint and the handshake made it active again.
      if (d.kind === 'handshake') await storage.completeDelivery(d.id, new Date().toISOString());
      await storage.setSubscriptionStatus(sub.id, 'error', new Date().toISOString());
      logger.warn({ subscription: sub.id, kind: d.kind, attempts: d.attempts, error }, 'subscription endpoint failed too often: status error');
      return;
    }
    const next = new Date(Date.now() + this.delay(d.attempts)).toISOString();
    await storage.failDelivery(d.id, next, error);
    logger.info({ subscription: sub.id, kind: d.kind, attempts: d.attempts, error, retryAt: next }, 'subscription notification failed; will retry');
  }
}
