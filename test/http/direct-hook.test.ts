import request from 'supertest';
import type { Response } from 'supertest';
import { beforeAll, describe, expect, it } from 'vitest';
import { requestListener } from '../../src/app.js';
import { buildApp, makeKeys, signFor } from '../helpers/app.js';
import type { TestKeys } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

/**
 * The server's request listener (src/app.ts requestListener, as main.ts serves it) takes a hook call past Express's
 * router to the hook route's own middleware and handler (src/http/direct-hook.ts). Every answer must be the one the
 * Express app gives the same request: each case is sent to both and compared.
 */
const SIGN = '/cds-services/priorpath-order-sign';
const STORY = 'centene-mrd-positive';
const resources = storyResources(STORY);
const body = orderSignRequest(resources, storyOrder(STORY, resources));

/** What must be the same on both paths: status, body, and the headers a client reads. */
function answer(res: Response) {
  const h = res.headers;
  return {
    status: res.status,
    type: h['content-type'],
    length: h['content-length'] !== undefined,
    retryAfter: h['retry-after'],
    wwwAuthenticate: h['www-authenticate'],
    cors: [h['access-control-allow-origin'], h['access-control-expose-headers'], h.vary],
    requestId: typeof h['x-request-id'] === 'string',
    body: res.text,
  };
}

type Send = (target: Parameters<typeof request>[0]) => Promise<Response>;

/** Sends the same request to the Express app and to the server's listener (over the same app); both answers. */
async function both(app: ReturnType<typeof buildApp>['app'], send: Send) {
  return { express: answer(await send(app)), direct: answer(await send(requestListener(app))) };
}

describe('hook calls on the direct path answer as the Express route does', () => {
  let keys: TestKeys;
  beforeAll(async () => {
    keys = await makeKeys();
  });

  it('answers an order-sign the same (two apps: the first answer writes the order record)', async () => {
    const viaExpress = await request(buildApp().app).post(SIGN).set('Origin', 'https://ehr.example.org').send(body);
    const viaDirect = await request(requestListener(buildApp().app)).post(SIGN).set('Origin', 'https://ehr.example.org').send(body);
    expect(viaDirect.status).toBe(200);
    const same = (r: Response) => {
      const a = answer(r);
      // The assertion ids and the authorization number are new on every call.
      return { ...a, body: a.body.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, 'ID').replace(/PA-[A-Z0-9-]+/g, 'NUMBER') };
    };
    expect(same(viaDirect)).toEqual(same(viaExpress));
    expect(viaDirect.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(viaDirect.body.systemActions.length).toBeGreaterThan(0);
  });

  it('keeps the request id a client sends, and logs the hook and its decision', async () => {
    const { app, lines } = buildApp();
    const res = await request(requestListener(app)).post(SIGN).set('X-Request-Id', 'ehr-req-42').send(body).expect(200);
    expect(res.headers['x-request-id']).toBe('ehr-req-42');
    const logged = lines.map((l) => JSON.parse(l) as { msg: string; requestId?: string });
    expect(logged.filter((l) => l.requestId === 'ehr-req-42').map((l) => l.msg)).toEqual(expect.arrayContaining(['decision', 'hook answered']));
  });

  it('refuses what the body reader refuses with the same status and OperationOutcome', async () => {
    const { app } = buildApp();
    const cases: Send[] = [
      (t) => request(t).post(SIGN).set('Content-Type', 'text/plain').send('hello'),
      (t) => request(t).post(SIGN).set('Content-Type', 'application/json').send('{"hook": "order-sign",'),
      (t) => request(t).post(SIGN).set('Content-Type', 'application/json').send('[1, 2]'),
      (t) => request(t).post(SIGN).set('Content-Type', 'application/json').send(''),
      (t) => request(t).post(SIGN).set('Content-Type', 'application/json').set('Content-Encoding', 'gzip').send('{}'),
      (t) => request(t).post(SIGN).set('Content-Type', 'application/json').send(`${'['.repeat(70)}${']'.repeat(70)}`),
      (t) => request(t).post(SIGN).set('Content-Type', 'application/json').send(JSON.stringify({ pad: 'x'.repeat(1_100_000) })),
    ];
    for (const send of cases) {
      const { express, direct } = await both(app, send);
      expect(direct.status).toBeGreaterThanOrEqual(400);
      expect(direct).toEqual(express);
    }
  });

  it('refuses a request the hook handler refuses with the same status and OperationOutcome', async () => {
    const { app } = buildApp();
    const { hookInstance: _dropped, ...noInstance } = body;
    const cases: Send[] = [
      (t) => request(t).post(SIGN).send(noInstance),
      (t) => request(t).post(SIGN).send({ ...body, hook: 'order-select' }),
      (t) => request(t).post(SIGN).send({ ...body, context: { ...(body.context as object), patientId: 'someone-else' } }),
    ];
    for (const send of cases) {
      const { express, direct } = await both(app, send);
      expect(direct.status).toBe(400);
      expect(direct).toEqual(express);
    }
  });

  it('verifies the client JWT as the Express route does (CDS_AUTH required)', async () => {
    const { app } = buildApp({ keys });
    for (const send of [
      (t: Parameters<typeof request>[0]) => request(t).post(SIGN).send(body),
      async (t: Parameters<typeof request>[0]) => request(t).post(SIGN).set('Authorization', `Bearer ${await signFor(keys, '/cds-services/priorpath-order-select')}`).send(body),
    ]) {
      const { express, direct } = await both(app, send);
      expect(direct.status).toBe(401);
      expect(direct).toEqual(express);
    }
    const ok = await request(requestListener(app)).post(SIGN).set('Authorization', `Bearer ${await signFor(keys, SIGN)}`).send(body);
    expect(ok.status).toBe(200);
  });

  it('leaves every other request to Express: an unknown service, other methods and spellings, feedback', async () => {
    const { app } = buildApp();
    const cases: Send[] = [
      (t) => request(t).post('/cds-services/no-such-service').send(body),
      (t) => request(t).get(SIGN),
      (t) => request(t).options(SIGN).set('Origin', 'https://ehr.example.org').set('Access-Control-Request-Method', 'POST'),
      (t) => request(t).post(`${SIGN}/feedback`).send({ feedback: [] }),
      (t) => request(t).get('/cds-services'),
    ];
    for (const send of cases) {
      const { express, direct } = await both(app, send);
      expect(direct).toEqual(express);
    }
    // Spellings Express routes to the same hook: answered (by Express), not refused.
    await request(requestListener(app)).post(`${SIGN}?x=1`).send(body).expect(200);
    await request(requestListener(app)).post('/CDS-SERVICES/priorpath-order-sign').send(body).expect(200);
  });
});
