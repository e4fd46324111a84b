/**
 * A child process for the drain tests (test/reliability/sigterm-drain.test.ts): an HTTP server with the service's
 * ConnectionDrain whose event loop a request can block, as a busy service's is. `GET /block?ms=N` writes "blocking"
 * on stdout and holds the loop for N ms; every other request is answered 200. SIGTERM: report not ready as serve.ts
 * does, drain, exit 0. Env: BACKLOG (the listen backlog), DRAIN_ACCEPT_MS (the drain's accept grace period).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConnectionDrain } from '../../src/http/connection-drain.js';

let draining = false;
const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/block') {
    process.stdout.write('blocking\n');
    const until = performance.now() + Number(url.searchParams.get('ms') ?? '1000');
    while (performance.now() < until);
  }
  if (url.pathname === '/readyz') return void res.writeHead(draining ? 503 : 200).end(draining ? 'draining' : 'ready');
  req.resume();
  req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end('answered'));
});
const acceptMs = process.env.DRAIN_ACCEPT_MS === undefined ? undefined : Number(process.env.DRAIN_ACCEPT_MS);
const drain = new ConnectionDrain(server, 1_000, 50, acceptMs);
process.on('SIGTERM', () => {
  draining = true;
  void drain.close().then(() => {
    process.stdout.write('drained\n');
    process.exit(0);
  });
});
server.listen(0, '127.0.0.1', Number(process.env.BACKLOG ?? '511'), () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
