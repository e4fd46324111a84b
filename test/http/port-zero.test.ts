/**
 * PORT=0 with PUBLIC_BASE_URL unset: the base URL is derived from the port, and it must be the port the kernel bound,
 * not `:0`, everywhere the base is used (config.ts withBoundPort, main.ts binds before building the app).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { killAll, startPriorPath } from '../helpers/priorpath-process.js';

afterAll(killAll);

describe('PORT=0 without PUBLIC_BASE_URL', () => {
  it('derives every URL from the port actually bound', async () => {
    // An empty PUBLIC_BASE_URL is unset (config.ts), so the base is derived from the port.
    const p = await startPriorPath({ PUBLIC_BASE_URL: '', SANDBOX: 'on', LOG_LEVEL: 'info' });
    try {
      const own = `http://localhost:${p.port}`;
      expect(p.port).toBeGreaterThan(0);
      const listening = p.output().split('\n').find((l) => l.includes('"PriorPath listening"'))!;
      expect(JSON.parse(listening)).toMatchObject({ port: p.port, publicBaseUrl: own });
      // The payer API's SMART configuration: its token endpoint is where clients sign their assertions' aud.
      const smart = (await (await fetch(`${p.base}/fhir/.well-known/smart-configuration`)).json()) as { token_endpoint: string };
      expect(smart.token_endpoint).toBe(`${own}/auth/token`);
      // The sandbox EHR's SMART endpoints and the demo page's base.
      const sandboxSmart = (await (await fetch(`${p.base}/sandbox/fhir/.well-known/smart-configuration`)).json()) as { authorization_endpoint: string };
      expect(sandboxSmart.authorization_endpoint).toBe(`${own}/sandbox/auth/authorize`);
      const stories = (await (await fetch(`${p.base}/sandbox/stories`)).json()) as { publicBaseUrl: string };
      expect(stories.publicBaseUrl).toBe(own);
      // A hook JWT's aud: the sandbox signs for the audience given, and the service checks it against its own base.
      const aud = `${own}/cds-services/priorpath-order-sign`;
      const token = (await (
        await fetch(`${p.base}/sandbox/auth/cds-token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ aud }) })
      ).json()) as { token: string };
      const hook = await fetch(`${p.base}/cds-services/priorpath-order-sign`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token.token}` },
        body: '{}',
      });
      // Past authentication (a 401 would mean the aud was checked against `:0`): the empty body is a 400.
      expect(hook.status).toBe(400);
      expect(p.output()).not.toContain('localhost:0');
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  }, 120_000);
});
