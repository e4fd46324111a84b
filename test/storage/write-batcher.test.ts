import { describe, expect, it } from 'vitest';
import { WriteBatcher } from '../../src/storage/write-batcher.js';

/** Group commit of records nobody waits on (the payer API access log): fewer statements, nothing lost. */
describe('WriteBatcher', () => {
  const turn = () => new Promise<void>((r) => setImmediate(r));

  it('without linger, writes what one event-loop turn queued as one statement', async () => {
    const writes: number[][] = [];
    const b = new WriteBatcher<number>(async (items) => void writes.push(items));
    const done = [b.add(1), b.add(2)];
    await Promise.all(done);
    await b.add(3);
    expect(writes).toEqual([[1, 2], [3]]);
  });

  it('with linger, records queued over several turns share one statement', async () => {
    const writes: number[][] = [];
    const b = new WriteBatcher<number>(async (items) => void writes.push(items), 500, 50);
    const done: Promise<void>[] = [];
    for (let i = 0; i < 5; i++) {
      done.push(b.add(i));
      await turn();
    }
    await Promise.all(done);
    expect(writes).toEqual([[0, 1, 2, 3, 4]]);
  });

  it('with linger, a full batch and a drain write at once, and a failing record does not take its neighbours', async () => {
    const writes: number[][] = [];
    const b = new WriteBatcher<number>(
      async (items) => {
        if (items.includes(13)) throw new Error('refused');
        writes.push(items);
      },
      3,
      60_000,
    );
    const full = [b.add(1), b.add(2), b.add(3)];
    await Promise.all(full); // would wait a minute if the full batch waited out the linger
    const bad = b.add(13);
    const good = b.add(4);
    await b.drain();
    await expect(bad).rejects.toThrow('refused');
    await good;
    expect(writes).toEqual([[1, 2, 3], [4]]);
  });
});
