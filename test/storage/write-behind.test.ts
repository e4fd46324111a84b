import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/logger.js';
import type { AppliedChange, BehindItem, BehindWriter } from '../../src/storage/write-behind.js';
import { WriteBehind } from '../../src/storage/write-behind.js';
import type { GuardedOrderChange, OrderRecord } from '../../src/storage/storage.js';
import { StorageUnavailableError } from '../../src/storage/storage.js';
import { newAssertion } from './storage-contract.js';

/** A database stand-in whose writes can be held, made to fail, and inspected. */
function fakeDatabase() {
  const written: BehindItem[] = [];
  const batches: BehindItem[][] = [];
  let hold: Promise<void> | undefined;
  let release = () => {};
  const failures: ('transient' | 'refused')[] = [];
  const refuse = new Set<string>();
  const recordOf = (c: GuardedOrderChange): OrderRecord => ({ ...c.key, id: 'o1', state: c.change.state, reason: c.change.reason, createdAt: c.change.at, updatedAt: c.change.at, history: [] });
  const idOf = (i: BehindItem) => (i.kind === 'assertion' ? i.record.assertionId : i.kind === 'audit' ? i.record.requestId : i.change.key.orderRef);
  const writer: BehindWriter = {
    async writeBatch(items, awaited): Promise<AppliedChange[]> {
      if (hold) await hold;
      const f = failures.shift();
      if (f === 'transient') throw new StorageUnavailableError(new Error('connection refused'));
      if (f === 'refused' || items.some((i) => refuse.has(idOf(i)))) throw Object.assign(new Error('refused'), { code: '22P02' });
      batches.push(items);
      written.push(...items);
      return awaited.map((c) => ({ applied: true, record: recordOf(c) }));
    },
    async writeOne(item) {
      if (refuse.has(idOf(item))) throw Object.assign(new Error('refused'), { code: '22P02' });
      written.push(item);
      return item.kind === 'order' ? { applied: true, record: recordOf(item.change) } : undefined;
    },
  };
  return {
    writer,
    written,
    batches,
    failures,
    refuse,
    holdWrites() {
      hold = new Promise((r) => (release = r));
    },
    releaseWrites() {
      hold = undefined;
      release();
    },
  };
}

const change = (orderRef: string, state: 'auth-needed' | 'approved' = 'auth-needed'): GuardedOrderChange => ({
  key: { payer: 'centene', patientId: 'pat-1', orderRef, drug: 'blinatumomab' },
  from: ['auth-needed', 'not-covered'],
  change: { state, at: '2026-12-02T06:00:00.000Z', source: 'crd', actor: 'order-sign h1', reason: 'documentation needed' },
});

describe('writes behind the answer', () => {
  it('queues without waiting for the database, reads the record back at once, and writes a burst in one batch', async () => {
    const db = fakeDatabase();
    db.holdWrites();
    const behind = new WriteBehind(db.writer);
    const assertions = Array.from({ length: 5 }, () => newAssertion());
    // Every call resolves although the database has not written anything.
    await Promise.all(assertions.map((a) => behind.add({ kind: 'assertion', record: a })));
    expect(db.written).toHaveLength(0);
    expect(behind.pendingAssertion(assertions[2].assertionId)).toEqual(assertions[2]);

    db.releaseWrites();
    await behind.settled();
    expect(db.written.map((i) => (i.kind === 'assertion' ? i.record.assertionId : ''))).toEqual(assertions.map((a) => a.assertionId));
    expect(db.batches).toHaveLength(1);
    expect(behind.pendingAssertion(assertions[2].assertionId)).toBeUndefined();
  });

  it("makes an order's read wait for that order's queued change, not for other orders", async () => {
    const db = fakeDatabase();
    const behind = new WriteBehind(db.writer);
    db.holdWrites();
    await behind.add({ kind: 'order', change: change('MedicationRequest/a') });
    let settledA = false;
    const a = behind.settled([change('MedicationRequest/a').key]).then(() => (settledA = true));
    // Another order has nothing queued: its read goes ahead while the first order's write is held.
    await behind.settled([change('MedicationRequest/b').key]);
    expect(settledA).toBe(false);
    db.releaseWrites();
    await a;
    expect(db.written).toHaveLength(1);
  });

  it('keeps its records and retries them when the database is unreachable, while an awaited change fails at once', async () => {
    const db = fakeDatabase();
    const behind = new WriteBehind(db.writer, { retryMs: 5 });
    db.failures.push('transient', 'transient');
    const assertion = newAssertion();
    await behind.add({ kind: 'assertion', record: assertion });
    const approval = behind.apply(change('MedicationRequest/c', 'approved'));
    await expect(approval).rejects.toBeInstanceOf(StorageUnavailableError);
    // Still readable while it waits for the database.
    expect(behind.pendingAssertion(assertion.assertionId)).toEqual(assertion);
    await behind.close();
    expect(db.written).toContainEqual({ kind: 'assertion', record: assertion });
    expect(behind.size).toBe(0);
  });

  it('writes the neighbours of a record the database refuses, and drops only that one', async () => {
    const db = fakeDatabase();
    const lines: unknown[] = [];
    const logger = { error: (o: unknown) => lines.push(o), warn: () => {} } as unknown as Logger;
    const behind = new WriteBehind(db.writer, { logger });
    const good = [newAssertion(), newAssertion()];
    const bad = newAssertion();
    db.refuse.add(bad.assertionId);
    db.holdWrites();
    for (const a of [good[0], bad, good[1]]) await behind.add({ kind: 'assertion', record: a });
    db.releaseWrites();
    await behind.settled();
    expect(db.written.map((i) => (i.kind === 'assertion' ? i.record.assertionId : ''))).toEqual(good.map((a) => a.assertionId));
    // The log names the dropped record by id and counts; never its facts.
    expect(lines).toHaveLength(1);
    expect(JSON.stringify(lines[0])).toContain(bad.assertionId);
    expect(JSON.stringify(lines[0])).not.toContain(JSON.stringify(bad.facts).slice(1, -1));
  });

  it('makes a hook wait for room when the queue is full (backpressure), and writes everything on close', async () => {
    const db = fakeDatabase();
    db.holdWrites();
    const behind = new WriteBehind(db.writer, { maxQueued: 2, maxBatch: 2 });
    await behind.add({ kind: 'assertion', record: newAssertion() });
    await behind.add({ kind: 'assertion', record: newAssertion() });
    await new Promise((r) => setImmediate(r)); // the first batch (both) is now being written, and held
    await behind.add({ kind: 'assertion', record: newAssertion() });
    await behind.add({ kind: 'assertion', record: newAssertion() });
    let third = false;
    const waiting = behind.add({ kind: 'assertion', record: newAssertion() }).then(() => (third = true));
    await new Promise((r) => setImmediate(r));
    expect(third).toBe(false);
    db.releaseWrites();
    await waiting;
    await behind.close();
    expect(db.written).toHaveLength(5);
  });

  it('answers a hook 503 when the queue stays full, rather than holding it past the EHR timeout', async () => {
    const db = fakeDatabase();
    db.holdWrites();
    const behind = new WriteBehind(db.writer, { maxQueued: 1, maxBatch: 1, roomWaitMs: 20 });
    await behind.add({ kind: 'assertion', record: newAssertion() });
    await new Promise((r) => setImmediate(r)); // that one is being written, and held
    await behind.add({ kind: 'assertion', record: newAssertion() });
    await expect(behind.add({ kind: 'assertion', record: newAssertion() })).rejects.toBeInstanceOf(StorageUnavailableError);
    db.releaseWrites();
    await behind.close();
    expect(db.written).toHaveLength(2);
  });

  it('writes an awaited change at once when the database is back, not after the backoff an outage left', async () => {
    const db = fakeDatabase();
    // A first retry a minute away: an awaited change that waited it out would time the test out.
    const behind = new WriteBehind(db.writer, { retryMs: 60_000 });
    db.failures.push('transient');
    await behind.add({ kind: 'assertion', record: newAssertion() });
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r)); // the batch failed; it waits for the retry timer
    expect(behind.size).toBe(1);
    const approved = await behind.apply(change('MedicationRequest/d', 'approved'));
    expect(approved.record.state).toBe('approved');
    expect(db.written).toHaveLength(2);
    await behind.close();
  });
});
