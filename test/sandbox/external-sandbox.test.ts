/**
 * FHIR_SANDBOX_URL (design.md §3): the demo runs on an external FHIR server instead of the embedded one. The service,
 * started as `npm start` runs it, loads the sandbox stories into that server, names it as the demo EHR's `fhirServer`,
 * and fronts it at /sandbox/fhir for the browser (SMART launch and DTR app). An embedded sandbox server in this
 * process, empty at first, stands in for HAPI.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import type { Bundle, MedicationRequest, Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSandboxFhir } from '../../src/sandbox/sandbox-fhir.js';
import { killAll, PUBLIC_BASE_URL, startPriorPath } from '../helpers/priorpath-process.js';
import type { PriorPathProcess } from '../helpers/priorpath-process.js';

const STORY = 'centene-over-dose';

async function listen(app: express.Express): Promise<{ server: Server; base: string }> {
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir` };
}

async function getJson<T>(url: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { ...init, headers: { Accept: 'application/fhir+json', ...(init?.headers ?? {}) } });
  return { status: res.status, body: (await res.json()) as T };
}

afterAll(killAll);

describe('FHIR_SANDBOX_URL: the demo on an external FHIR server', () => {
  let external: { server: Server; base: string };
  let p: PriorPathProcess;

  beforeAll(async () => {
    external = await listen(express().use('/fhir', (await createSandboxFhir({ bundles: [] })).router));
    p = await startPriorPath({ SANDBOX: 'on', FHIR_SANDBOX_URL: `${external.base}/`, EHR_TIMEOUT_MS: '10000' }, 120_000);
  }, 150_000);
  afterAll(async () => {
    p?.child.kill('SIGTERM');
    await p?.exited;
    await new Promise<void>((resolve) => external.server.close(() => resolve()));
  });

  it('loads the sandbox stories into the external server at start-up, by id', async () => {
    const order = await getJson<MedicationRequest>(`${external.base}/MedicationRequest/${STORY}-order`);
    expect(order.status).toBe(200);
    const coverage = await getJson<Bundle>(`${external.base}/Coverage?patient=${STORY}&status=active`);
    expect(coverage.body.entry).toHaveLength(1);
    expect(p.output()).toContain('FHIR_SANDBOX_URL: sandbox stories loaded');
  });

  it('names the external server as the fhirServer of the demo EHR\'s hooks', async () => {
    const stories = await getJson<{ fhirServer: string; publicBaseUrl: string }>(`${p.base}/sandbox/stories`);
    expect(stories.body.fhirServer).toBe(external.base);
    expect(stories.body.publicBaseUrl).toBe(PUBLIC_BASE_URL);
  });

  it('decides a hook whose fhirServer is the external server from what it queries there', async () => {
    const order = (await getJson<MedicationRequest>(`${external.base}/MedicationRequest/${STORY}-order`)).body;
    const patient = (await getJson<Patient>(`${external.base}/Patient/${STORY}`)).body;
    const res = await fetch(`${p.base}/cds-services/priorpath-order-sign`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        hook: 'order-sign',
        hookInstance: crypto.randomUUID(),
        fhirServer: external.base,
        context: {
          patientId: STORY,
          userId: order.requester?.reference ?? 'Practitioner/unknown',
          draftOrders: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: { ...order, status: 'draft' } }] },
        },
        prefetch: { patient },
      }),
    });
    // Coverage, conditions and observations come only from the external server (prefetch holds the Patient alone).
    expect(res.status, await res.clone().text()).toBe(200);
    expect(((await res.json()) as { cards: unknown[] }).cards.length).toBeGreaterThan(0);
  });

  it('fronts the external server at /sandbox/fhir for the browser: reads with links rebased here, writes landing there', async () => {
    const own = `${p.base}/sandbox/fhir`;
    const found = await getJson<Bundle>(`${own}/Coverage?patient=${STORY}&status=active`);
    expect(found.status).toBe(200);
    expect(found.body.entry).toHaveLength(1);
    const text = JSON.stringify(found.body);
    expect(text).not.toContain(external.base);
    expect(found.body.entry![0].fullUrl).toMatch(new RegExp(`/sandbox/fhir/Coverage/`));
    // A write through the front (the DTR app saves its draft response in the EHR) is on the external server.
    const qr = { resourceType: 'QuestionnaireResponse', id: 'conf-proxy-write', status: 'in-progress', subject: { reference: `Patient/${STORY}` } };
    const put = await fetch(`${own}/QuestionnaireResponse/conf-proxy-write`, { method: 'PUT', headers: { 'content-type': 'application/fhir+json' }, body: JSON.stringify(qr) });
    expect(put.status).toBeLessThan(300);
    expect((await getJson<{ status: string }>(`${external.base}/QuestionnaireResponse/conf-proxy-write`)).body.status).toBe('in-progress');
    // The SMART configuration is this server's (the external one has none), and a token that is not ours is refused.
    const smart = await getJson<{ authorization_endpoint: string }>(`${own}/.well-known/smart-configuration`);
    expect(smart.body.authorization_endpoint).toBe(`${PUBLIC_BASE_URL}/sandbox/auth/authorize`);
    expect((await fetch(`${own}/Patient/${STORY}`, { headers: { authorization: 'Bearer not-a-token' } })).status).toBe(401);
  });
});

describe('FHIR_SANDBOX_URL that refuses the stories', () => {
  it('stops start-up with exit 1 naming the variable and the reason, without a stack', async () => {
    const refusing = express();
    refusing.get('/fhir/metadata', (_req, res) => res.json({ resourceType: 'CapabilityStatement' }));
    refusing.post('/fhir', (_req, res) => res.status(422).json({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'processing', diagnostics: 'no transactions here' }] }));
    const { server, base } = await listen(refusing);
    try {
      const failed = await startPriorPath({ SANDBOX: 'on', FHIR_SANDBOX_URL: base }, 120_000).then(
        (proc) => {
          proc.child.kill('SIGKILL');
          return '';
        },
        (err: Error) => err.message,
      );
      expect(failed).toMatch(/exited \(1\) before listening/);
      expect(failed).toContain(`priorpath: FHIR_SANDBOX_URL: story`);
      expect(failed).toContain('answered 422: no transactions here');
      expect(failed).not.toMatch(/\n\s+at /);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 150_000);
});
