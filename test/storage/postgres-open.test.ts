/**
 * Opening storage on PostgreSQL when the first connections fail although the server is up (review s48: three replicas
 * started at once on a fresh database, one exited "PostgreSQL cannot be reached (Connection terminated due to
 * connection timeout)" and a restart a moment later succeeded). Start-up retries within its budget; a server that
 * really cannot be reached still fails it, with the driver's reason. The failed connections come from a TCP relay in
 * this test that cuts the first ones as they are made. Needs DATABASE_URL; skipped otherwise.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { createStorage } from '../../src/storage/create-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import { StorageUnavailableError } from '../../src/storage/storage.js';

const url = process.env.DATABASE_URL;
const schema = `pp_test_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
const opened: SqlStorage[] = [];
const servers: net.Server[] = [];

afterAll(async () => {
  await opened[0]?.driver.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
  for (const s of opened) await s.close().catch(() => undefined);
  for (const s of servers) s.close();
});

/** A relay to the server that cuts the first `cut` connections as soon as they are made; the URL through it. */
async function cuttingRelay(target: URL, cut: number): Promise<string> {
  let seen = 0;
  const server = net.createServer((client) => {
    client.on('error', () => undefined);
    if (seen++ < cut) return void client.destroy();
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const via = new URL(target.toString());
  via.hostname = '127.0.0.1';
  via.port = String((server.address() as AddressInfo).port);
  return via.toString();
}

describe.skipIf(!url)('opening storage on PostgreSQL', () => {
  it('retries first connections that fail while the server is up, and opens', async () => {
    const via = await cuttingRelay(new URL(url!), 2);
    const storage = await createStorage({ databaseUrl: via, dataDir: '/nonexistent-unused', schema });
    opened.push(storage);
    await storage.ping();
    expect(await storage.getPasSubmission(randomUUID())).toBeUndefined();
  }, 60_000);

  it('still fails as unavailable, with the reason, when the server really cannot be reached', async () => {
    const via = await cuttingRelay(new URL(url!), Number.MAX_SAFE_INTEGER);
    const failed = await createStorage({ databaseUrl: via, dataDir: '/nonexistent-unused', schema, openBudgetMs: 1_000 }).catch((err: unknown) => err);
    expect(failed).toBeInstanceOf(StorageUnavailableError);
    expect(((failed as StorageUnavailableError).cause as Error).message).toMatch(/Connection terminated|ECONNRESET/);
  }, 60_000);
});
