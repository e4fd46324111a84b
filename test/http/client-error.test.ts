/**
 * Requests Node's HTTP parser refuses before the app sees them still get an OperationOutcome (design.md §4 "Errors":
 * every non-2xx body is one), from the running service as `npm start` runs it.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, startPriorPath } from '../helpers/priorpath-process.js';
import type { PriorPathProcess } from '../helpers/priorpath-process.js';

/** Sends raw bytes and reads until the server closes the connection. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    let out = '';
    socket.on('data', (d: Buffer) => (out += d.toString()));
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no close; got ${out}`)));
  });
}

function parse(response: string): { status: number; type: string; body: { resourceType?: string; issue?: { code?: string }[] } } {
  const [head, body] = response.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  const type = /content-type: ([^\r\n]+)/i.exec(head)?.[1] ?? '';
  return { status, type, body: JSON.parse(body) as never };
}

describe('requests the HTTP parser refuses', () => {
  let p: PriorPathProcess;
  beforeAll(async () => {
    p = await startPriorPath();
  }, 90_000);
  afterAll(() => killAll());

  it('answers a request line over 16 KiB with 431 and an OperationOutcome', async () => {
    const res = parse(await raw(p.port, `GET /fhir/Questionnaire/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: priorpath.test\r\n\r\n`));
    expect(res.status).toBe(431);
    expect(res.type).toMatch(/^application\/fhir\+json/);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });

  it('answers a malformed header and Content-Length beside chunked encoding with 400 and an OperationOutcome', async () => {
    for (const text of [
      'POST /cds-services/priorpath-order-sign HTTP/1.1\r\nHost: priorpath.test\r\nNot A Header\r\n\r\n',
      'POST /fhir/Claim/$submit HTTP/1.1\r\nHost: priorpath.test\r\nContent-Type: application/fhir+json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
    ]) {
      const res = parse(await raw(p.port, text));
      expect(res.status).toBe(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.body.issue?.[0].code).toBe('invalid');
    }
  });

  it('still serves the next connection', async () => {
    const res = await fetch(`${p.base}/healthz`);
    expect(res.status).toBe(200);
  });
});
