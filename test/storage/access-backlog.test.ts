/**
 * The payer API access lines kept through a storage outage (src/storage/access-backlog.ts): bounded, and what the
 * bound drops is counted and logged as a warning, by count and request ids only, never a resource id.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { AccessBacklog } from '../../src/storage/access-backlog.js';
import { StorageUnavailableError } from '../../src/storage/storage.js';

interface Line {
  requestId: string;
  resourceIds: string[];
}

const line = (n: number): Line => ({ requestId: `req-${n}`, resourceIds: [`QuestionnaireResponse/qr-${n}`] });

function captured() {
  const logged: { level: number; msg: string; [k: string]: unknown }[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logged.push(JSON.parse(String(chunk)) as (typeof logged)[number]);
      cb();
    },
  });
  return { logged, logger: createLogger('info', sink) };
}

describe('access lines kept through a storage outage', () => {
  it('keeps up to the bound, counts what it drops (a warning), and writes what it kept once the database takes writes', async () => {
    const { logged, logger } = captured();
    let down = true;
    const written: string[] = [];
    const backlog = new AccessBacklog<Line>(
      async (lines) => {
        if (down) throw new StorageUnavailableError(new Error('connect ECONNREFUSED'));
        written.push(...lines.map((l) => l.requestId));
      },
      { logger, max: 3, batch: 2, retryMs: 60_000 },
    );
    backlog.keep([line(1), line(2)]);
    backlog.keep([line(3), line(4), line(5)]);
    expect(backlog.size).toBe(3);
    expect(backlog.droppedCount).toBe(2);
    // Still down: nothing written, nothing lost from what was kept.
    await backlog.flush();
    expect(backlog.size).toBe(3);
    down = false;
    await backlog.flush();
    expect(written).toEqual(['req-1', 'req-2', 'req-3']);
    expect(backlog.size).toBe(0);
    expect(backlog.droppedCount).toBe(0);

    const warnings = logged.filter((l) => l.level === 40);
    expect(warnings.map((w) => w.msg)).toEqual([
      'storage unavailable: payer API access lines kept in memory until it takes writes',
      'payer API access lines: the in-memory backlog is full, further lines are dropped and counted',
      'payer API access lines kept during the storage outage are written; some were dropped at the in-memory bound',
    ]);
    expect(warnings[2]).toMatchObject({ written: 3, dropped: 2 });
    expect(JSON.stringify(logged)).not.toContain('QuestionnaireResponse/');
  });

  it('drops a line the database refuses as wrong (not an outage), logged by request id, and writes its neighbours', async () => {
    const { logged, logger } = captured();
    let down = true;
    const written: string[] = [];
    const backlog = new AccessBacklog<Line>(
      async (lines) => {
        if (down) throw new StorageUnavailableError(new Error('connect ECONNREFUSED'));
        if (lines.some((l) => l.requestId === 'req-2')) throw new Error('invalid input syntax for type timestamp with time zone');
        written.push(...lines.map((l) => l.requestId));
      },
      { logger, retryMs: 60_000 },
    );
    backlog.keep([line(1), line(2), line(3)]);
    down = false;
    await backlog.flush();
    expect(written).toEqual(['req-1', 'req-3']);
    expect(logged.find((l) => l.level === 50)).toMatchObject({ requestIds: ['req-2'], count: 1 });
  });

  it('at close, logs how many lines are lost when the database still refuses them', async () => {
    const { logged, logger } = captured();
    const backlog = new AccessBacklog<Line>(() => Promise.reject(new StorageUnavailableError(new Error('connect ECONNREFUSED'))), { logger, max: 2, retryMs: 60_000 });
    backlog.keep([line(1), line(2), line(3)]);
    await backlog.close();
    expect(logged.find((l) => l.level === 50)).toMatchObject({ lost: 3 });
    expect(backlog.size).toBe(0);
  });

  it('logs the lines already refused when the outage comes back during the line-by-line retry (were dropped unlogged)', async () => {
    const { logged, logger } = captured();
    let down = false;
    const written: string[] = [];
    const backlog = new AccessBacklog<Line>(
      async (lines) => {
        if (down) throw new StorageUnavailableError(new Error('connect ECONNREFUSED'));
        if (lines.some((l) => l.requestId === 'req-2')) {
          // The outage returns right after the database refused this line as wrong.
          if (lines.length === 1) down = true;
          throw new Error('invalid input syntax for type timestamp with time zone');
        }
        written.push(...lines.map((l) => l.requestId));
      },
      { logger, retryMs: 60_000 },
    );
    backlog.keep([line(1), line(2), line(3), line(4)]);
    await backlog.flush();
    expect(written).toEqual(['req-1']);
    // req-3 and req-4 wait for the next attempt; req-2 is dropped, and says so.
    expect(backlog.size).toBe(2);
    expect(logged.find((l) => l.level === 50)).toMatchObject({ requestIds: ['req-2'], count: 1, msg: 'payer API access lines refused by the database: dropped' });
    down = false;
    await backlog.flush();
    expect(written).toEqual(['req-1', 'req-3', 'req-4']);
  });

  it("logs a refusal's SQLSTATE and reason, never the refused row or value (a constraint error's detail carries it)", async () => {
    const { logged, logger } = captured();
    const refusal = Object.assign(new Error('invalid input syntax for type json: "QuestionnaireResponse/qr-1"'), {
      code: '22P02',
      detail: 'Failing row contains (req-1, client-a, GET /Questionnaire/:id, {QuestionnaireResponse/qr-1}).',
    });
    const backlog = new AccessBacklog<Line>(() => Promise.reject(refusal), { logger, retryMs: 60_000 });
    backlog.keep([line(1)]);
    await backlog.flush();
    expect(logged.find((l) => l.level === 50)).toMatchObject({ sqlstate: '22P02', reason: 'invalid input syntax for type json', requestIds: ['req-1'] });
    expect(JSON.stringify(logged)).not.toContain('QuestionnaireResponse/');
    expect(JSON.stringify(logged)).not.toContain('Failing row');
  });

  it('does not wait on a write that hangs past its bound in a listing (settle): the lines stay kept', async () => {
    const hung: (() => void)[] = [];
    const backlog = new AccessBacklog<Line>(() => new Promise<void>((resolve) => hung.push(() => resolve())), { retryMs: 60_000, flushWaitMs: 10 });
    backlog.keep([line(1), line(2)]);
    await backlog.settle();
    expect(backlog.size).toBe(2);
    for (const r of hung) r();
  });

  it('at close, does not wait on a write that hangs past its bound (was the driver timeout): the lines are counted lost', async () => {
    const { logged, logger } = captured();
    const hung: (() => void)[] = [];
    const backlog = new AccessBacklog<Line>(() => new Promise<void>((resolve) => hung.push(() => resolve())), { logger, retryMs: 60_000, flushWaitMs: 10 });
    backlog.keep([line(1), line(2)]);
    await backlog.close();
    expect(logged.find((l) => l.level === 50)).toMatchObject({ lost: 2 });
    expect(backlog.size).toBe(0);
    for (const r of hung) r();
  });
});
