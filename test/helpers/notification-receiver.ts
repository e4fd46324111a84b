import { createServer } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Bundle } from '@medplum/fhirtypes';

/** One notification as the receiver got it: the Bundle and the request's headers. */
export interface ReceivedNotification {
  bundle: Bundle;
  headers: IncomingHttpHeaders;
}

const servers: ReturnType<typeof createServer>[] = [];

/**
 * A PAS client's notification endpoint (R4 Subscriptions Backport rest-hook) on a free loopback port: records each
 * notification Bundle as it arrives (`received`, and `requests` with the headers); `fail` answers that many 503s
 * first. Close them all with {@link closeReceivers} in the test file's `afterEach`.
 */
export async function notificationReceiver(opts: { fail?: number } = {}): Promise<{ url: string; received: Bundle[]; requests: ReceivedNotification[] }> {
  const received: Bundle[] = [];
  const requests: ReceivedNotification[] = [];
  let failures = opts.fail ?? 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (failures > 0) {
        failures--;
        res.statusCode = 503;
        return res.end();
      }
      const bundle = (body ? JSON.parse(body) : {}) as Bundle;
      received.push(bundle);
      requests.push({ bundle, headers: req.headers });
      res.statusCode = 200;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/notify`, received, requests };
}

/** Closes every receiver opened since the last call. */
export function closeReceivers(): void {
  for (const s of servers.splice(0)) s.close();
}

/** Polls `probe` every 25 ms until it gives a value (or a promise of one); fails naming `what` after `ms`. */
export async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
