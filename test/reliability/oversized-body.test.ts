/**
 * design.md §4 "Errors": a body over 1 MiB is a 413 with or without Content-Length, and the client must be able to
 * read it: the server drains the refused body (bounded) instead of closing the connection under a client that is
 * still sending (which makes most clients see a reset, EPIPE or ECONNRESET, and never the 413).
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DRAIN_LIMIT_BYTES } from '../../src/http/json-body.js';
import { buildApp } from '../helpers/app.js';

const SIGN = '/cds-services/priorpath-order-sign';
const MIB = 1024 * 1024;
let server: http.Server;
let port: number;

beforeAll(async () => {
  const { app } = buildApp();
  server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/**
 * Sends a request over a raw socket, writing `total` body bytes in 64 KiB chunks with back-pressure (as a real client
 * does), reading whatever the server sends meanwhile. Resolves with everything read and how the socket ended.
 */
function rawPost(opts: { total: number; contentLength: boolean; thenHealthz?: boolean }): Promise<{ text: string; error?: string; sent: number }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let error: string | undefined;
    let sent = 0;
    const head = [
      `POST ${SIGN} HTTP/1.1`,
      'Host: 127.0.0.1',
      'Content-Type: application/json',
      opts.contentLength ? `Content-Length: ${opts.total}` : 'Transfer-Encoding: chunked',
      '',
      '',
    ].join('\r\n');
    const chunk = Buffer.alloc(64 * 1024, 'x');
    socket.on('data', (d) => {
      text += d.toString('latin1');
      // Once the 413 and, when asked, the health check answer are in, the test has what it needs.
      if (!opts.thenHealthz && /\r\n\r\n[\s\S]*"resourceType":"OperationOutcome"[\s\S]*\}$/.test(text)) socket.end();
      if (opts.thenHealthz && text.includes('"status":"ok"')) socket.end();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => resolve({ text, error, sent }));
    socket.on('connect', () => {
      socket.write(head);
      const pump = () => {
        while (sent < opts.total && !socket.destroyed) {
          const n = Math.min(chunk.length, opts.total - sent);
          const piece = chunk.subarray(0, n);
          sent += n;
          const ok = opts.contentLength ? socket.write(piece) : socket.write(`${n.toString(16)}\r\n${piece.toString('latin1')}\r\n`, 'latin1');
          if (!ok) return void socket.once('drain', pump);
        }
        if (socket.destroyed) return;
        if (!opts.contentLength) socket.write('0\r\n\r\n');
        if (opts.thenHealthz) socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      };
      pump();
    });
  });
}

describe('oversized bodies', () => {
  it.each([
    ['with Content-Length', true],
    ['chunked, without Content-Length', false],
  ])('a client sending 5 MiB %s reads the 413 OperationOutcome, and the connection stays usable', async (_name, contentLength) => {
    const { text, error, sent } = await rawPost({ total: 5 * MIB, contentLength, thenHealthz: true });
    expect(error).toBeUndefined();
    expect(sent).toBe(5 * MIB);
    expect(text.startsWith('HTTP/1.1 413')).toBe(true);
    expect(text).toContain('"code":"too-costly"');
    // The same connection then answers the next request: the refused body was read to its end, not cut off.
    expect(text).toMatch(/HTTP\/1\.1 200 OK[\s\S]*"status":"ok"/);
  });

  it('Node http client: the 413 arrives as the response, without EPIPE or ECONNRESET', async () => {
    const result = await new Promise<{ status?: number; body: string; error?: string }>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port, path: SIGN, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': 5 * MIB } });
      let error: string | undefined;
      req.on('error', (e: NodeJS.ErrnoException) => {
        error = e.code;
        resolve({ body: '', error });
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, body, error }));
      });
      const piece = Buffer.alloc(MIB, 'x');
      let n = 0;
      const pump = () => {
        while (n < 5) {
          n++;
          if (!req.write(piece)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    expect(result.error).toBeUndefined();
    expect(result.status).toBe(413);
    expect(JSON.parse(result.body).resourceType).toBe('OperationOutcome');
  });

  it('a client streaming far past the drain bound still reads the 413 first; then the server closes the connection', async () => {
    const total = DRAIN_LIMIT_BYTES + 8 * MIB;
    const { text, sent } = await rawPost({ total, contentLength: false, thenHealthz: true });
    expect(text.startsWith('HTTP/1.1 413')).toBe(true);
    expect(text).not.toContain('"status":"ok"');
    expect(sent).toBeLessThanOrEqual(total);
  });
});
