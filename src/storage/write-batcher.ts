interface Pending<T> {
  item: T;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for append-mostly writes (payer API access lines; hook audit lines and assertions ride the write-behind
 * transaction instead, write-behind.ts). Each caller's promise resolves only
 * after the statement holding its record has committed, so durability per call is unchanged; what changes is that
 * the records of concurrent calls share one statement and one WAL flush. With embedded PGlite every statement runs
 * on the event loop, so this is what keeps hook throughput (design.md §9) when every hook call writes.
 */
export class WriteBatcher<T> {
  private queue: Pending<T>[] = [];
  private running = false;
  private scheduled = false;
  private idle: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  /**
   * `lingerMs` > 0: a record waits up to that long for others to share its statement (or until `maxBatch` are
   * queued). For records nobody waits on (the payer API access log, written after the response): under load, a
   * statement per event-loop turn kept the database thread waking for one row at a time.
   */
  constructor(
    private readonly write: (items: T[]) => Promise<void>,
    private readonly maxBatch = 500,
    private readonly lingerMs = 0,
  ) {}

  add(item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once everything queued so far has been written (or has failed). */
  drain(): Promise<void> {
    if (!this.running && !this.scheduled && this.queue.length === 0) return Promise.resolve();
    if (this.timer) this.flushNow();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private schedule(): void {
    if (this.timer && this.queue.length >= this.maxBatch) return this.flushNow();
    if (this.running || this.scheduled) return;
    this.scheduled = true;
    if (this.lingerMs > 0) {
      this.timer = setTimeout(() => this.flushNow(), this.lingerMs);
      return;
    }
    // setImmediate: collect every record queued in this turn of the event loop into one statement.
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private flushNow(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.scheduled = false;
    void this.flush();
  }

  private async flush(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      try {
        await this.write(batch.map((p) => p.item));
        batch.forEach((p) => p.resolve());
      } catch (err) {
        if (batch.length === 1) {
          batch[0].reject(err);
          continue;
        }
        // One bad record must not fail its neighbours: retry each on its own.
        for (const p of batch) {
          try {
            await this.write([p.item]);
            p.resolve();
          } catch (e) {
            p.reject(e);
          }
        }
      }
    }
    this.running = false;
    const waiters = this.idle.splice(0);
    waiters.forEach((w) => w());
  }
}
