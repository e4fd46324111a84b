import { setTimeout as sleep } from 'node:timers/promises';
import type { AssertionRecord, Storage } from '../storage/storage.js';

/**
 * How long, at most, a read of CRD assertions a client names waits for those storage does not hold yet (docs/design.md
 * §2 "Written behind the hook's answer"). A hook's assertion is written behind its answer, batched with what
 * concurrent hooks queue, and reaches the shared database moments later (QA s40 F9 measured 130-175 ms on a loaded
 * machine); only the replica that queued it reads it back at once. A DTR client sent from the signing straight to
 * another replica must not be given a form drafted as if the order carried no assertion. Half a second covers the
 * group commit about three times over and stays well inside a DTR client's wait for a package or a response; past it
 * the caller answers without the assertion, as before (the package with a warning saying so).
 */
export const ASSERTION_READ_THROUGH_MS = 500;

/** Between two reads of the assertions still missing: each read is one indexed lookup per id. */
const ASSERTION_POLL_MS = 25;

/** PriorPath's coverage-assertion-ids are random UUIDs (decide-orders.ts): another payer's or a made-up id is not waited for. */
const ASSERTION_ID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether an id can be one of PriorPath's coverage-assertion-ids, one worth waiting for. */
export function mayBeOurAssertionId(id: string): boolean {
  return ASSERTION_ID_SHAPE.test(id);
}

/** What one id's read found. */
export type AssertionRead =
  | { found: AssertionRecord }
  /** Not in storage; `waited`: it was read again until {@link ASSERTION_READ_THROUGH_MS} had passed. */
  | { missing: true; waited: boolean }
  /** Storage failed to answer. */
  | { failed: unknown };

/**
 * Reads CRD assertions by the ids a client sent, reading through to what another replica may still be writing: an id
 * storage does not hold and `waitFor` accepts (by default one shaped like PriorPath's ids) is read again every
 * {@link ASSERTION_POLL_MS} until it is found or {@link ASSERTION_READ_THROUGH_MS} has passed, one bound for all the
 * ids of the call. Ids found at once, or not waited for, cost nothing more than today's single read.
 */
export async function readAssertions(
  storage: Storage,
  ids: readonly string[],
  opts: { waitFor?: (id: string) => boolean; boundMs?: number } = {},
): Promise<Map<string, AssertionRead>> {
  const out = new Map<string, AssertionRead>();
  const read = async (id: string): Promise<void> => {
    try {
      const a = await storage.getAssertion(id);
      out.set(id, a ? { found: a } : { missing: true, waited: false });
    } catch (err) {
      out.set(id, { failed: err });
    }
  };
  const unique = [...new Set(ids)];
  await Promise.all(unique.map(read));
  const waitFor = opts.waitFor ?? mayBeOurAssertionId;
  const stillMissing = (id: string) => 'missing' in out.get(id)!;
  let pending = unique.filter((id) => stillMissing(id) && waitFor(id));
  if (pending.length === 0) return out;
  const deadline = performance.now() + (opts.boundMs ?? ASSERTION_READ_THROUGH_MS);
  for (let left = deadline - performance.now(); pending.length > 0 && left > 0; left = deadline - performance.now()) {
    await sleep(Math.min(ASSERTION_POLL_MS, left));
    await Promise.all(pending.map(read));
    pending = pending.filter(stillMissing);
  }
  for (const id of pending) out.set(id, { missing: true, waited: true });
  return out;
}
