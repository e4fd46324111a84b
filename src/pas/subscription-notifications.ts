import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import type { SubscriptionRecord } from '../storage/storage.js';

/** The PAS subscription topic (PAS 2.x "Subscriptions", PASSubscription `criteria`). */
export const PAS_TOPIC = 'http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic';
const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';
/** R4 backport extensions and profiles (Subscriptions R5 Backport 1.1.0). */
export const EXT_FILTER_CRITERIA = `${BACKPORT}/backport-filter-criteria`;
export const EXT_PAYLOAD_CONTENT = `${BACKPORT}/backport-payload-content`;
/** `Subscription.channel` extension: seconds between heartbeats while nothing else is sent. */
export const EXT_HEARTBEAT_PERIOD = `${BACKPORT}/backport-heartbeat-period`;
/**
 * The longest a notification waits for its endpoint (seconds): the notifier's timeout, which a subscription's
 * backport-timeout may shorten but not lengthen (a delivery's claim in storage lasts twice this).
 */
export const MAX_NOTIFICATION_TIMEOUT_SECONDS = 5;
/** `Subscription.channel` extension: seconds to wait for the endpoint to take one notification. */
export const EXT_TIMEOUT = `${BACKPORT}/backport-timeout`;
export const PROFILE_SUBSCRIPTION = `${BACKPORT}/backport-subscription`;
const PROFILE_STATUS = `${BACKPORT}/backport-subscription-status-r4`;
const PROFILE_NOTIFICATION = `${BACKPORT}/backport-subscription-notification-r4`;

/** One event as notified: its number, the decided PAS request, that request's current response Bundle, and when. */
export interface NotifiedEvent {
  eventNumber: number;
  submissionId: string;
  responseBundle?: Record<string, unknown>;
  at: string;
}

/**
 * What a notification is about: a handshake, a heartbeat, a decided PAS request (`event-notification`), or the
 * events a client asked `$events` for (`query-event`, with the content it asked for).
 */
export type NotificationKind =
  | { type: 'handshake' }
  | { type: 'heartbeat' }
  | ({ type: 'event-notification' } & NotifiedEvent)
  | { type: 'query-event'; events: NotifiedEvent[]; content: SubscriptionRecord['content'] };

const eventsOf = (kind: NotificationKind): NotifiedEvent[] => (kind.type === 'event-notification' ? [kind] : kind.type === 'query-event' ? kind.events : []);

/**
 * The SubscriptionStatus Parameters (`backport-subscription-status-r4`): which subscription, its topic and status,
 * the notification type, the event count and, for each event it carries, its number, time and focus (`focus` by
 * event number). `withTopic: false` leaves the topic out: R5 `SubscriptionStatus.topic`, which the backport's
 * `topic` parameter carries, "SHOULD NOT be present when using empty payloads" (an empty notification tells its
 * endpoint no more than that something happened).
 */
export function subscriptionStatus(
  sub: SubscriptionRecord,
  fhirBase: string,
  kind: NotificationKind,
  focus: Map<number, string> = new Map(),
  { withTopic = true }: { withTopic?: boolean } = {},
): Parameters {
  const events = eventsOf(kind);
  const parameter: ParametersParameter[] = [
    { name: 'subscription', valueReference: { reference: `${fhirBase}/Subscription/${sub.id}` } },
    ...(withTopic ? [{ name: 'topic', valueCanonical: sub.topic }] : []),
    { name: 'status', valueCode: sub.status === 'requested' ? 'requested' : sub.status },
    { name: 'type', valueCode: kind.type },
    { name: 'events-since-subscription-start', valueString: String(Math.max(sub.eventsCount, ...events.map((e) => e.eventNumber))) },
  ];
  for (const e of events) {
    const f = focus.get(e.eventNumber);
    parameter.push({
      name: 'notification-event',
      part: [
        { name: 'event-number', valueString: String(e.eventNumber) },
        { name: 'timestamp', valueInstant: e.at },
        ...(f ? [{ name: 'focus', valueReference: { reference: f } }] : []),
      ],
    });
  }
  return { resourceType: 'Parameters', id: randomUUID(), meta: { profile: [PROFILE_STATUS] }, parameter };
}

/**
 * Whether the subscription's `end` has passed at `now`. R4 `Subscription.end` is "the time for the server to turn
 * the subscription off" (https://hl7.org/fhir/R4/subscription-definitions.html#Subscription.end): from then on it
 * is `off` and is sent nothing, events, heartbeats or retries.
 *
 * An `end` that had already passed when the subscription was last written is kept as sent and not enforced: the
 * Inferno PAS server suite's preset Subscription carries `end` 2020-12-31, and turning that off at once would send
 * the tester no handshake and no notification (docs/design.md §8 "Subscriptions").
 */
export function subscriptionEnded(sub: Pick<SubscriptionRecord, 'resource' | 'updatedAt'>, now: Date): boolean {
  const end = sub.resource.end;
  if (typeof end !== 'string') return false;
  const at = Date.parse(end);
  return Number.isFinite(at) && at <= now.getTime() && at > Date.parse(sub.updatedAt);
}

/** The status a client is told: the stored one, or `off` once the subscription's `end` has passed. */
export function currentStatus(sub: SubscriptionRecord, now: Date): SubscriptionRecord['status'] {
  return subscriptionEnded(sub, now) ? 'off' : sub.status;
}

/**
 * The seconds a subscription gives its endpoint to take a notification (backport-timeout on
 * `Subscription.channel`); undefined when it named none.
 */
export function notificationTimeout(sub: Pick<SubscriptionRecord, 'resource'>): number | undefined {
  const channel = sub.resource.channel as { extension?: { url?: string; valueUnsignedInt?: unknown }[] } | undefined;
  const value = channel?.extension?.find((e) => e.url === EXT_TIMEOUT)?.valueUnsignedInt;
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : undefined;
}

/**
 * The heartbeat period a subscription asked for (backport-heartbeat-period on `Subscription.channel`), in seconds;
 * undefined when it asked for none.
 */
export function heartbeatPeriod(sub: Pick<SubscriptionRecord, 'resource'>): number | undefined {
  const channel = sub.resource.channel as { extension?: { url?: string; valueUnsignedInt?: unknown }[] } | undefined;
  const value = channel?.extension?.find((e) => e.url === EXT_HEARTBEAT_PERIOD)?.valueUnsignedInt;
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : undefined;
}

/**
 * A notification Bundle (backport `subscription-notification-r4`, a `history` Bundle): the SubscriptionStatus first,
 * then, for `full-resource`, the PAS response Bundle (a `collection` holding the ClaimResponse) that the event's
 * focus names (PAS 2.2.1: notifications carry the full PAS Response Bundle). `id-only` names the ClaimResponse
 * without content; `empty` names nothing.
 */
export function notificationBundle(sub: SubscriptionRecord, fhirBase: string, kind: NotificationKind): Bundle {
  const entries: BundleEntry[] = [];
  const focus = new Map<number, string>();
  const content = kind.type === 'query-event' ? kind.content : sub.content;
  for (const e of content === 'empty' ? [] : eventsOf(kind)) {
    if (content === 'full-resource' && e.responseBundle) {
      const url = `${fhirBase}/Bundle/${String(e.responseBundle.id ?? e.submissionId)}`;
      focus.set(e.eventNumber, url);
      // Two events about one request name its one current response Bundle, carried once.
      if (entries.some((x) => x.fullUrl === url)) continue;
      entries.push({
        fullUrl: url,
        resource: e.responseBundle as unknown as Bundle,
        request: { method: 'PUT', url: `Bundle/${String(e.responseBundle.id ?? e.submissionId)}` },
        response: { status: '200' },
      });
    } else {
      focus.set(e.eventNumber, `${fhirBase}/ClaimResponse/${e.submissionId}`);
    }
  }
  // Every notification of an `empty` subscription (handshake and heartbeat too) leaves the topic out.
  const status = subscriptionStatus(sub, fhirBase, kind, focus, { withTopic: content !== 'empty' });
  return {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { profile: [PROFILE_NOTIFICATION] },
    type: 'history',
    timestamp: new Date().toISOString(),
    entry: [
      { fullUrl: `urn:uuid:${status.id}`, resource: status, request: { method: 'GET', url: `${fhirBase}/Subscription/${sub.id}/$status` }, response: { status: '200' } },
      ...entries,
    ],
  };
}
