/**
 * When a form's package last changed, for `$questionnaire-package`'s `changedsince` (DTR 2.2 OperationDefinition
 * questionnaire-package): a deploy that changes a form, and a deploy rolled back to the earlier form, each count as a
 * change from the moment the process serving it first answers.
 */
import type { Questionnaire } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { buildCatalog } from '../../src/dtr/catalog.js';
import { packageChangedAt } from '../../src/dtr/package-changes.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { dtrContent } from './helpers.js';

/** One process's view of the form: its own copy of the Questionnaire (as a restarted process loads it). */
const served = (q: Questionnaire, title = q.title): Questionnaire => ({ ...structuredClone(q), title });
const tick = () => new Promise((r) => setTimeout(r, 5));

describe('package change times (changedsince)', () => {
  const catalog = buildCatalog(dtrContent());
  const form = catalog.all.find((q) => q.url?.includes('centene-blinatumomab'))!;

  it('keeps the time a form was first served across restarts that serve the same form', async () => {
    const storage = new MemoryStorage();
    const first = await packageChangedAt(served(form), catalog, storage);
    await tick();
    expect(await packageChangedAt(served(form), catalog, storage)).toBe(first);
  });

  it('counts a deploy rolled back to an earlier form as a change, from when the earlier form is served again (was: its first time, so a client holding the later form was told it was current)', async () => {
    const storage = new MemoryStorage();
    const v1 = await packageChangedAt(served(form), catalog, storage);
    await tick();
    const v2 = await packageChangedAt(served(form, `${form.title} (revised)`), catalog, storage);
    expect(v2).toBeGreaterThan(v1);
    // A client retrieves the revised form now, then the deploy is rolled back to the first form.
    await tick();
    const retrieved = Date.now();
    await tick();
    const rolledBack = await packageChangedAt(served(form), catalog, storage);
    // The client resuming its draft with changedsince = when it retrieved the revised form must be sent the package.
    expect(rolledBack).toBeGreaterThan(retrieved);
  });
});
