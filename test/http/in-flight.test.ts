import type { Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { InFlight } from '../../src/http/in-flight.js';

/**
 * What a SIGTERM drain waits for before storage closes (src/serve.ts): every handler's answer, including the answers
 * of handlers whose client has left, but not forever for a response that will never end.
 */
let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = undefined;
});

async function serve(app: express.Express): Promise<number> {
  server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server!.once('listening', r));
  return (server!.address() as AddressInfo).port;
}

/** Sends a GET and resets the connection once `sent` resolves, as a client that gives up does. */
async function abandon(port: number, path: string, afterMs: number): Promise<void> {
  const socket = connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  await new Promise((r) => setTimeout(r, afterMs));
  socket.resetAndDestroy();
}

/** Whether `idle()` has resolved within `ms`. */
async function idleWithin(inFlight: InFlight, ms: number): Promise<boolean> {
  return Promise.race([inFlight.idle().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
}

describe('InFlight', () => {
  it('is idle at once with nothing in flight, and after a handler has answered', async () => {
    const inFlight = new InFlight();
    expect(await idleWithin(inFlight, 50)).toBe(true);
    const app = express();
    app.use(inFlight.track);
    app.get('/x', (_req, res) => void res.json({ ok: true }));
    const port = await serve(app);
    expect((await fetch(`http://127.0.0.1:${port}/x`)).status).toBe(200);
    expect(await idleWithin(inFlight, 50)).toBe(true);
  });

  it('counts a handler whose client has left until the handler answers', async () => {
    const inFlight = new InFlight(10_000);
    let answer: () => void = () => {};
    const app = express();
    app.use(inFlight.track);
    app.get('/slow', (_req, res) => {
      answer = () => res.json({ late: true });
    });
    const port = await serve(app);
    await abandon(port, '/slow', 50);
    expect(await idleWithin(inFlight, 200)).toBe(false);
    answer();
    expect(await idleWithin(inFlight, 200)).toBe(true);
  });

  it('stops counting a response that will never end once its client has been gone for the bound', async () => {
    const inFlight = new InFlight(150);
    const app = express();
    app.use(inFlight.track);
    // A stream that is destroyed when its client leaves, as a static file is: nothing ever calls res.end.
    app.get('/stream', (_req, res) => void res.write('partial'));
    const port = await serve(app);
    await abandon(port, '/stream', 50);
    expect(await idleWithin(inFlight, 50)).toBe(false);
    expect(await idleWithin(inFlight, 1_000)).toBe(true);
  });
});
