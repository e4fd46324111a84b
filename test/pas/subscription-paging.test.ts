/**
 * The notifier sees every subscription, however many there are: heartbeats and decision events page through them
 * (a pass once stopped at the first 1,000, so the rest were silently skipped). On embedded PGlite, where storage
 * answers a page at a time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStorage } from '../../src/storage/create-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import type { MemoryStorage } from '../../src/storage/memory-storage.js';
import type { SubscriptionRecord } from '../../src/storage/storage.js';
import type { NotifyFetch } from '../../src/pas/subscription-notifier.js';
import { buildApp } from '../helpers/app.js';
import { pasSubscription } from './pas-fixtures.js';

const HEARTBEAT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period';
let dir: string;
let storage: SqlStorage;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'priorpath-subscription-paging-'));
  storage = await createStorage({ dataDir: dir });
}, 120_000);
afterAll(async () => {
  await storage?.close();
  rmSync(dir, { recursive: true, force: true });
});

const record = (endpoint: string, createdAt: string, heartbeat?: number): SubscriptionRecord => {
  const resource = pasSubscription(endpoint, 'U5521039476');
  return {
    id: randomUUID(),
    status: 'active',
    topic: resource.criteria,
    filters: ['patient=U5521039476'],
    endpoint,
    headers: [],
    content: 'full-resource',
    resource: heartbeat ? { ...resource, channel: { ...resource.channel, extension: [{ url: HEARTBEAT, valueUnsignedInt: heartbeat }] } } : resource,
    eventsCount: 0,
    createdAt,
    updatedAt: createdAt,
  };
};

describe('Subscriptions past the first page', () => {
  it('sends the heartbeat of the 1,001st subscription', async () => {
    const early = new Date(Date.now() - 3_600_000).toISOString();
    const quiet = Array.from({ length: 1000 }, () => record('http://127.0.0.1:9/quiet', early));
    for (let i = 0; i < quiet.length; i += 50) await Promise.all(quiet.slice(i, i + 50).map((x) => storage.saveSubscription(x)));
    // Created last: the one a pass that stops at 1,000 never reaches.
    const last = record('http://127.0.0.1:9/beating', new Date(Date.now() - 120_000).toISOString(), 60);
    await storage.saveSubscription(last);
    const sent: string[] = [];
    const notifyFetch: NotifyFetch = async (url) => {
      sent.push(url);
      return { ok: true, status: 200 };
    };
    const { app } = buildApp({ storage: storage as unknown as MemoryStorage, notifyFetch });
    const notifier = app.locals.subscriptionNotifier as { sendHeartbeats(now?: Date): Promise<number>; stop(): void };
    expect(await notifier.sendHeartbeats(new Date())).toBe(1);
    expect(sent).toEqual(['http://127.0.0.1:9/beating']);
    notifier.stop();
  }, 120_000);
});
