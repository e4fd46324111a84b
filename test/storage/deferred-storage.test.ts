import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { createStorage } from '../../src/storage/create-storage.js';
import { deferredStorage } from '../../src/storage/deferred-storage.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { newAssertion, newAudit } from './storage-contract.js';

describe('storage that is still opening', () => {
  it('reports not ready on ping, and makes other calls wait for the backend', async () => {
    let open!: (s: MemoryStorage) => void;
    const backend = new MemoryStorage();
    const storage = deferredStorage(new Promise((r) => (open = r)));
    await expect(storage.ping()).rejects.toThrow(/still opening/);
    const pending = storage.saveFeedback({ service: 's', card: 'c', outcome: 'accepted', acceptedSuggestions: ['x'], outcomeTimestamp: 't' });
    open(backend);
    await expect(pending).resolves.toBe(true);
    expect(backend.feedback.size).toBe(1);
    await expect(storage.ping()).resolves.toBeUndefined();
    expect(storage.ready).toBe(true);
  });

  it("answers a hook's calls while opening, then writes them before anything else reaches the store", async () => {
    let open!: (s: MemoryStorage) => void;
    const backend = new MemoryStorage();
    const storage = deferredStorage(new Promise((r) => (open = r)));
    const assertion = newAssertion({ authorization: { number: 'PA-EARLY-1', start: '2026-12-01', end: '2027-05-31' } });
    // None of these waits for the store: a hook arriving during start-up is answered.
    await storage.saveAssertion(assertion);
    await storage.saveAudit(newAudit());
    expect(await storage.getAssertion(assertion.assertionId)).toEqual(assertion);
    const jwt = { issuer: 'https://ehr.example', jti: 'j-1', expiresAtMs: Date.now() + 300_000 };
    expect(await storage.recordJti(jwt)).toBe(true);
    expect(await storage.recordJti(jwt)).toBe(false);
    expect(backend.assertions.size).toBe(0);
    // PAS waits for the store, and then sees the authorization issued at signing.
    const lookup = storage.getAuthorization('PA-EARLY-1');
    open(backend);
    expect(await lookup).toMatchObject({ number: 'PA-EARLY-1' });
    expect(await backend.getAssertion(assertion.assertionId)).toEqual(assertion);
    expect(await backend.listAudit()).toHaveLength(1);
    expect(await storage.recordJti(jwt)).toBe(false);
    expect(storage.ready).toBe(true);
  });

  it('reports the failure on ping when the backend could not open', async () => {
    const storage = deferredStorage(Promise.reject(new Error('disk full')));
    await new Promise((r) => setTimeout(r, 0));
    await expect(storage.ping()).rejects.toThrow('disk full');
  });

  it('is ready as soon as the store has opened, however many payer API access lines were kept meanwhile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'priorpath-deferred-'));
    const real = await createStorage({ dataDir: dir });
    try {
      let open!: (s: typeof real) => void;
      const storage = deferredStorage(new Promise((r) => (open = r)));
      // A SMART DTR app reading forms while the service starts: each read's access line is kept.
      const lines = ['centene-blinatumomab', 'bcbsnc-blinatumomab', 'bcbsnc-inotuzumab', 'mmm-blinatumomab', 'ohsu-blinatumomab'].map((id, i) => ({
        requestId: `req-early-${i}`,
        at: '2026-12-02T09:00:00.000Z',
        clientId: 'smart-dtr-app',
        operation: 'GET /Questionnaire/:id',
        resourceIds: [`Questionnaire/${id}`],
        status: 200,
        outcome: 'ok',
      }));
      for (const line of lines) await storage.saveApiAccess(line);
      // An access line waits for company (its statement's linger timer): that wait must not hold the store's opening.
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      try {
        open(real);
        await real.ping();
        await expect(storage.ping()).resolves.toBeUndefined();
        expect(storage.ready).toBe(true);
        expect(await storage.getPasSubmission('no-such-submission')).toBeUndefined();
      } finally {
        vi.useRealTimers();
      }
      // Nothing kept is lost, and the lines are in the order they were kept.
      expect((await storage.listApiAccess(10)).map((l) => l.requestId).reverse()).toEqual(lines.map((l) => l.requestId));
    } finally {
      await real.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
