/**
 * The notification outbox is the replicas' together (docs/design.md §8 Subscriptions: it "resumes after a restart or on
 * another replica"): a handshake or notification a replica queued, whose first delivery failed, is sent by another
 * running replica once the first has gone away, without anything else happening on the survivor. Two apps share one
 * storage (as two replicas share PostgreSQL); the first's notifier is stopped as a replica that died.
 */
import type { Bundle, Parameters } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import type { NotifyFetch } from '../../src/pas/subscription-notifier.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { buildApp } from '../helpers/app.js';
import { until } from '../helpers/notification-receiver.js';
import { pasSubscription } from './pas-fixtures.js';

const FHIR = 'application/fhir+json';
const ENDPOINT = 'http://127.0.0.1:9/pas-notify';
type Notifier = { idle(): Promise<void>; stop(): void; sweepPended(ms?: number): void };

describe('a subscription whose replica went away', () => {
  it('gets its handshake from the replica still running, from its periodic sweep alone', async () => {
    const storage = new MemoryStorage();
    const down: NotifyFetch = async () => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:9');
    };
    const received: Bundle[] = [];
    const up: NotifyFetch = async (_url, init) => {
      received.push(JSON.parse(init.body) as Bundle);
      return { ok: true, status: 200 };
    };
    const first = buildApp({ storage, today: '2026-11-23', notifyFetch: down });
    const firstNotifier = first.app.locals.subscriptionNotifier as Notifier;
    const sub = await request(first.app).post('/fhir/Subscription').set('Content-Type', FHIR).send(JSON.stringify(pasSubscription(ENDPOINT, 'U5521039476'))).expect(201);
    // The endpoint is down: the handshake fails once and waits for its retry; then the replica dies.
    await until('the failed first attempt', async () => ((await storage.countUndelivered()) > 0 ? true : undefined));
    await firstNotifier.idle();
    firstNotifier.stop();
    expect(received).toEqual([]);

    // The other replica, running and idle: nothing happens on it but its sweep.
    const second = buildApp({ storage, today: '2026-11-23', notifyFetch: up });
    const secondNotifier = second.app.locals.subscriptionNotifier as Notifier;
    secondNotifier.sweepPended(50);
    const handshake = await until('the handshake from the other replica', () => received[0], 15_000);
    secondNotifier.stop();
    const status = handshake.entry![0].resource as Parameters;
    expect(status.parameter!.find((p) => p.name === 'type')?.valueCode).toBe('handshake');
    expect(JSON.stringify(status)).toContain(sub.body.id as string);
  });
});
