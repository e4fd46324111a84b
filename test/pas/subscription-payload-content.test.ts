/**
 * What each payload content of a PAS Subscription (R4 Subscriptions Backport `backport-payload-content`) puts in its
 * notifications' SubscriptionStatus: the topic is named for `full-resource` and `id-only` and left out for `empty`
 * (R5 SubscriptionStatus.topic, carried by the backport's `topic` parameter: "SHOULD NOT be present when using empty
 * payloads"; the Inferno Subscriptions kit warns on it), in handshakes and event notifications alike.
 */
import type { Parameters } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { notificationBundle, PAS_TOPIC } from '../../src/pas/subscription-notifications.js';
import type { NotificationKind } from '../../src/pas/subscription-notifications.js';
import type { SubscriptionRecord } from '../../src/storage/storage.js';

const FHIR_BASE = 'https://payer.example/fhir';

function subscription(content: SubscriptionRecord['content']): SubscriptionRecord {
  return {
    id: 'sub-1',
    status: 'active',
    topic: PAS_TOPIC,
    filters: [],
    endpoint: 'https://ehr.example/notify',
    headers: [],
    content,
    resource: { resourceType: 'Subscription', id: 'sub-1' },
    eventsCount: 1,
    createdAt: '2026-12-01T10:00:00Z',
    updatedAt: '2026-12-01T10:00:00Z',
  };
}

const event: NotificationKind = {
  type: 'event-notification',
  eventNumber: 1,
  submissionId: 'cr-1',
  responseBundle: { resourceType: 'Bundle', id: 'rb-1', type: 'collection', entry: [{ resource: { resourceType: 'ClaimResponse', id: 'cr-1' } }] },
  at: '2026-12-01T10:05:00Z',
};

const statusOf = (content: SubscriptionRecord['content'], kind: NotificationKind) => notificationBundle(subscription(content), FHIR_BASE, kind).entry![0].resource as Parameters;
const names = (p: Parameters) => (p.parameter ?? []).map((x) => x.name);

describe('SubscriptionStatus topic by payload content', () => {
  it.each([['handshake', { type: 'handshake' } as NotificationKind], ['event-notification', event]])('%s: an empty subscription is not told its topic', (_name, kind) => {
    const status = statusOf('empty', kind);
    expect(names(status)).not.toContain('topic');
    expect(names(status)).toEqual(expect.arrayContaining(['subscription', 'status', 'type', 'events-since-subscription-start']));
  });

  it.each(['full-resource', 'id-only'] as const)('%s: the topic is named in the handshake and in each event notification', (content) => {
    for (const kind of [{ type: 'handshake' } as NotificationKind, event]) {
      expect(statusOf(content, kind).parameter!.find((x) => x.name === 'topic')?.valueCanonical).toBe(PAS_TOPIC);
    }
  });
});
