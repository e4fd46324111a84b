import type { Logger } from '../logger.js';
import type { AssertionRecord, GuardedOrderChange, HookAuditRecord, OrderKey, OrderRecord } from './storage.js';
import { StorageUnavailableError } from './storage.js';

/** One record on its way to the database. */
export type BehindItem =
  | { kind: 'assertion'; record: AssertionRecord }
  | { kind: 'audit'; record: HookAuditRecord }
  /** `assertion`: written in the same transaction, naming the order's approval as stored after the change. */
  | { kind: 'order'; change: GuardedOrderChange; assertion?: AssertionRecord };

/** The result of an order change written with the batch (applyOrderChange's answer). */
export interface AppliedChange {
  applied: boolean;
  record: OrderRecord;
}

/**
 * How a batch reaches the database: `writeBatch` writes every item in one transaction (one commit, one WAL flush)
 * and returns, for each awaited order change in the order given, whether it applied and the record as it now stands;
 * `writeOne` writes a single item on its own (used to find the one bad record of a failed batch).
 */
export interface BehindWriter {
  writeBatch(items: BehindItem[], awaited: GuardedOrderChange[]): Promise<AppliedChange[]>;
  writeOne(item: BehindItem): Promise<AppliedChange | undefined>;
}

export interface WriteBehindOptions {
  logger?: Logger;
  /** Records queued at most; a hook queuing past it waits for room (backpressure). */
  maxQueued?: number;
  /** Records per transaction at most. */
  maxBatch?: number;
  /** First retry delay after a transient failure (doubles up to 5 s). */
  retryMs?: number;
  /** How long a hook waits for room in a full queue before it is answered 503 (default 2 s, the EHR timeout). */
  roomWaitMs?: number;
}

interface Entry {
  seq: number;
  item: BehindItem;
  /** Set for an awaited write: its caller waits for the commit (and, for an order change, gets the stored record). */
  waiter?: { resolve: (r: AppliedChange | undefined) => void; reject: (err: unknown) => void };
}

const keyOf = (k: OrderKey) => JSON.stringify([k.payer, k.patientId, k.orderRef, k.drug]);

/** Whether the database was unreachable (nothing was written, the same write may be retried). */
const isTransient = (err: unknown) => err instanceof StorageUnavailableError;

/**
 * The hook's writes behind its answer (design.md §2 "Written behind the hook's answer", for §9's throughput;
 * Storage.queueAssertion). Records queued in one turn of the event loop, and any queued while a batch was being
 * written, go to the database together in one transaction, in the order they were queued. Awaited order changes
 * (approvals, denials: applyOrderChange) ride in the same transaction, so concurrent hooks share one commit, and their
 * callers resolve only once it is durable.
 *
 * Reading back: `pendingAssertion` answers from the queue; `settled(keys)` resolves once every change queued so
 * far for those orders is written (an order read waits for it, so it sees its own process's writes); `settled()`
 * waits for everything queued so far (PAS, DTR, the reviewer: "flush first").
 *
 * Failures: a transient one (database unreachable) keeps the records queued and retries with backoff, an awaited
 * change failing with it instead (its caller answers 503); any other failure writes the batch's records one by one
 * so that one bad record does not lose its neighbours, and logs what is dropped by ids and counts only.
 */
export class WriteBehind {
  private queue: Entry[] = [];
  private seq = 0;
  /** Every entry with `seq <= done` is written (or dropped). */
  private done = 0;
  private running = false;
  private scheduled = false;
  private closing = false;
  private retryDelay = 0;
  private inFlight = 0;
  private readonly assertions = new Map<string, { seq: number; record: AssertionRecord }>();
  private readonly orderSeq = new Map<string, number>();
  private waiters: { seq: number; resolve: () => void }[] = [];
  private room: (() => void)[] = [];
  private readonly maxQueued: number;
  private readonly maxBatch: number;
  private readonly retryMs: number;
  private readonly roomWaitMs: number;
  /** The pending retry timer, when the next flush waits out a backoff. */
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly writer: BehindWriter,
    private readonly opts: WriteBehindOptions = {},
  ) {
    this.maxQueued = opts.maxQueued ?? 10_000;
    this.maxBatch = opts.maxBatch ?? 200;
    this.retryMs = opts.retryMs ?? 100;
    this.roomWaitMs = opts.roomWaitMs ?? 2000;
  }

  /** Records queued and not yet written (including the batch being written). */
  get size(): number {
    return this.queue.length + this.inFlight;
  }

  /** Queues a record; resolves at once, or once there is room when the queue is full. */
  async add(item: BehindItem): Promise<void> {
    // Backpressure, bounded: a queue that stays full (a long outage) answers the hook 503 rather than holding it
    // until the EHR gives up.
    while (this.queue.length >= this.maxQueued && !this.closing) {
      let wake = () => {};
      const roomMade = await new Promise<boolean>((resolve) => {
        wake = () => resolve(true);
        this.room.push(wake);
        setTimeout(() => resolve(false), this.roomWaitMs).unref();
      });
      if (!roomMade) {
        this.room = this.room.filter((r) => r !== wake);
        throw new StorageUnavailableError(new Error('the write queue stayed full'));
      }
    }
    this.push({ seq: ++this.seq, item });
  }

  /**
   * An order change written with the next batch (with the assertion made of it, if given: one item, so the two are
   * written together, also when a failed batch is written record by record); resolves with the stored record once
   * the batch has committed.
   */
  apply(change: GuardedOrderChange, assertion?: AssertionRecord): Promise<AppliedChange> {
    const item: BehindItem = assertion ? { kind: 'order', change, assertion } : { kind: 'order', change };
    const applied = new Promise<AppliedChange | undefined>((resolve, reject) => this.push({ seq: ++this.seq, item, waiter: { resolve, reject } }));
    this.tryNow();
    return applied as Promise<AppliedChange>;
  }

  /**
   * A record written with the next batch, its caller resolved once the batch has committed (durable before the
   * caller goes on: an audit line, an assertion that alone holds an approval). `urgent`: try now even while an
   * earlier outage's backoff runs (someone waits to answer).
   */
  addDurable(item: BehindItem, urgent = false): Promise<void> {
    const written = new Promise<void>((resolve, reject) => this.push({ seq: ++this.seq, item, waiter: { resolve: () => resolve(), reject } }));
    if (urgent) this.tryNow();
    return written;
  }

  /** Someone waits for the next commit: try now rather than after a backoff left by an earlier outage (if the database is still down, the caller hears so at once). */
  private tryNow(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.scheduled = false;
      this.schedule(0);
    }
  }

  /** A queued assertion not yet written, as queued. */
  pendingAssertion(id: string): AssertionRecord | undefined {
    return this.assertions.get(id)?.record;
  }

  /** Resolves once what is queued so far (for these orders only, when given) is written or dropped. */
  settled(keys?: OrderKey[]): Promise<void> {
    let upTo = this.seq;
    if (keys) upTo = Math.max(0, ...keys.map((k) => this.orderSeq.get(keyOf(k)) ?? 0));
    return this.until(upTo);
  }

  /** Like settled(keys) for the orders of one patient named by reference (any drug). */
  settledFor(payer: string, patientId: string, orderRefs: string[]): Promise<void> {
    let upTo = 0;
    for (const [k, seq] of this.orderSeq) {
      const [p, pt, ref] = JSON.parse(k) as string[];
      if (p === payer && pt === patientId && orderRefs.includes(ref)) upTo = Math.max(upTo, seq);
    }
    return this.until(upTo);
  }

  /** Writes everything queued (SIGTERM drain, close), retrying transient failures until `deadlineMs` has passed. */
  async close(deadlineMs = 8000): Promise<void> {
    this.closing = true;
    this.room.splice(0).forEach((r) => r());
    const deadline = Date.now() + deadlineMs;
    this.retryDelay = 0;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.scheduled = false;
    }
    this.schedule(0);
    while ((this.queue.length > 0 || this.running) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (this.queue.length > 0) {
      const lost = this.queue.splice(0);
      this.opts.logger?.error(this.describe(lost), 'storage: records queued behind hook answers could not be written before shutdown');
      for (const e of lost) {
        this.finish(e);
        e.waiter?.reject(new StorageUnavailableError(new Error('storage closed')));
      }
      this.advance();
    }
  }

  private push(e: Entry): void {
    this.queue.push(e);
    if (e.item.kind === 'assertion') this.assertions.set(e.item.record.assertionId, { seq: e.seq, record: e.item.record });
    else if (e.item.kind === 'order') this.orderSeq.set(keyOf(e.item.change.key), e.seq);
    this.schedule(0);
  }

  private until(seq: number): Promise<void> {
    if (seq <= this.done) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ seq, resolve }));
  }

  private schedule(delayMs: number): void {
    if (this.running || this.scheduled) return;
    this.scheduled = true;
    // setImmediate: every record queued in this turn of the event loop goes in the same transaction.
    const run = () => {
      this.scheduled = false;
      this.timer = undefined;
      void this.flush();
    };
    if (delayMs > 0) this.timer = setTimeout(run, delayMs);
    else setImmediate(run);
  }

  private async flush(): Promise<void> {
    if (this.running) return;
    this.running = true;
    let retry = false;
    try {
      while (this.queue.length > 0 && !retry) {
        const batch = this.queue.splice(0, this.maxBatch);
        this.inFlight = batch.length;
        const keep = await this.writeBatch(batch).finally(() => (this.inFlight = 0));
        if (keep.length > 0) {
          // Transient: these records stay queued, first in line; try again later (sooner while draining).
          this.queue.unshift(...keep);
          this.retryDelay = Math.min(5000, this.retryDelay ? this.retryDelay * 2 : this.retryMs);
          retry = true;
          // Whoever waits to read or write after them goes on and meets the database's state itself (a 503).
          this.waiters.splice(0).forEach((w) => w.resolve());
        } else {
          this.retryDelay = 0;
          this.advance();
        }
        if (this.queue.length < this.maxQueued) this.room.splice(0).forEach((r) => r());
      }
    } finally {
      this.running = false;
    }
    if (retry) this.schedule(this.closing ? Math.min(this.retryDelay, 200) : this.retryDelay);
    else if (this.queue.length > 0) this.schedule(0);
  }

  /** Writes one batch; returns the records to keep queued (the database was unreachable), else nothing. */
  private async writeBatch(batch: Entry[]): Promise<Entry[]> {
    const awaited = batch.filter((e) => e.waiter);
    const awaitedChanges = awaited.filter((e) => e.item.kind === 'order');
    try {
      const results = await this.writer.writeBatch(
        batch.map((e) => e.item),
        awaitedChanges.map((e) => (e.item as { change: GuardedOrderChange }).change),
      );
      batch.forEach((e) => this.finish(e));
      awaited.forEach((e) => e.waiter!.resolve(e.item.kind === 'order' ? results[awaitedChanges.indexOf(e)] : undefined));
      return [];
    } catch (err) {
      if (isTransient(err)) {
        // The callers waiting for durability answer "try again"; what was written behind stays queued.
        for (const e of awaited) {
          this.finish(e);
          e.waiter!.reject(err);
        }
        const keep = batch.filter((e) => !e.waiter);
        if (keep.length > 0) this.opts.logger?.warn({ ...this.describe(keep), code: 'transient' }, 'storage unreachable: records queued behind hook answers are kept and retried');
        return keep;
      }
      // One bad record must not fail its neighbours: each on its own.
      const dropped: Entry[] = [];
      const keep: Entry[] = [];
      for (const e of batch) {
        try {
          const r = await this.writer.writeOne(e.item);
          this.finish(e);
          e.waiter?.resolve(r);
        } catch (one) {
          if (!e.waiter && isTransient(one)) {
            keep.push(e);
            continue;
          }
          this.finish(e);
          if (e.waiter) e.waiter.reject(one);
          else dropped.push(e);
        }
      }
      if (dropped.length > 0) {
        this.opts.logger?.error(
          { ...this.describe(dropped), code: (err as { code?: unknown }).code },
          'storage refused records written behind hook answers; they are dropped',
        );
      }
      return keep;
    }
  }

  /** Forgets an entry from the read-back indexes once it is written or dropped. */
  private finish(e: Entry): void {
    if (e.item.kind === 'assertion') {
      const a = this.assertions.get(e.item.record.assertionId);
      if (a?.seq === e.seq) this.assertions.delete(e.item.record.assertionId);
    } else if (e.item.kind === 'order') {
      const k = keyOf(e.item.change.key);
      if (this.orderSeq.get(k) === e.seq) this.orderSeq.delete(k);
    }
  }

  private advance(): void {
    this.done = this.queue.length > 0 ? this.queue[0].seq - 1 : this.seq;
    const ready = this.waiters.filter((w) => w.seq <= this.done);
    this.waiters = this.waiters.filter((w) => w.seq > this.done);
    ready.forEach((w) => w.resolve());
  }

  /** Ids and counts only (design.md §2 "Platform conventions"): never facts or other clinical content. */
  private describe(entries: Entry[]) {
    const assertions = entries.filter((e) => e.item.kind === 'assertion').map((e) => (e.item as { record: AssertionRecord }).record.assertionId);
    const orders = entries.filter((e) => e.item.kind === 'order').map((e) => (e.item as { change: GuardedOrderChange }).change.key.orderRef);
    const audits = entries.filter((e) => e.item.kind === 'audit').length;
    return { assertions: assertions.length, orders: orders.length, audits, assertionIds: assertions.slice(0, 20), orderRefs: orders.slice(0, 20) };
  }
}
