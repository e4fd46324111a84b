/**
 * A client that sends its request body a byte at a time (slowloris) is answered 408 with an OperationOutcome once
 * the request has taken longer than http/server-timeouts.ts allows (30 s), as the service runs (src/serve.ts's
 * server), and the connection is closed. Node's defaults waited 300 s (measured: the 408 came after 329 s), holding the
 * socket and the handler waiting on the body all that time. Meanwhile other clients are answered.
 */
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { killAll, startPriorPath } from '../helpers/priorpath-process.js';

afterAll(() => killAll());

describe('a client sending its body slowly', () => {
  it('is answered 408 with an OperationOutcome and disconnected, well before Node default 300 s; others are answered meanwhile', async () => {
    const pp = await startPriorPath();
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(pp.port, '127.0.0.1');
      let text = '';
      let drip: ReturnType<typeof setInterval> | undefined;
      socket.on('connect', () => {
        socket.write('POST /cds-services/priorpath-order-sign HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{');
        // A byte a second: never idle long enough for a socket timeout, never done.
        drip = setInterval(() => socket.write(' '), 1000);
      });
      socket.on('data', (d) => (text += d.toString('latin1')));
      socket.on('error', (e) => (text ? undefined : reject(e)));
      socket.on('close', () => {
        clearInterval(drip);
        resolve(text);
      });
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'timeout' }] });
    // The server still answers everyone else.
    expect((await fetch(`${pp.base}/healthz`)).status).toBe(200);
  }, 90_000);
});
