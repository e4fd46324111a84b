import { describe, expect, it } from 'vitest';
import { deferredStorage } from '../../src/storage/deferred-storage.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';

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

  it('reports the failure on ping when the backend could not open', async () => {
    const storage = deferredStorage(Promise.reject(new Error('disk full')));
    await new Promise((r) => setTimeout(r, 0));
    await expect(storage.ping()).rejects.toThrow('disk full');
  });
});
