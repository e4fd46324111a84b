import { describe } from 'vitest';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { storageContract } from './storage-contract.js';

describe('MemoryStorage keeps the Storage contract', () => {
  const storage = new MemoryStorage();
  storageContract(() => storage);
});
