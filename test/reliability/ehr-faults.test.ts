/**
 * The EHR misbehaving during a hook (design.md §4 "Prefetch", "Errors"): slow past EHR_TIMEOUT_MS, 500,
 * garbage, a connection closed mid-body, a body that stalls. The hook answers in bounded time with 412 for a
 * required key it could not get, or a determination that is not an approval; never a 5xx.
 */
import type { Extension, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EDGE_MRD, edgePatient } from '../fixtures/edge-patient.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest, searchset } from '../helpers/hook-requests.js';
import { startHttpEhr } from '../helpers/http-ehr.js';

type Fault = 'slow' | 'status500' | 'garbage' | 'html' | 'cut' | 'stall' | 'wrong-shape' | 'ok' | 'bom' | 'refused' | 'other-type' | 'single';
const SIGN = '/cds-services/priorpath-order-sign';
const EHR_TIMEOUT_MS = 400;

const mrd = EDGE_MRD;
const { resources, order } = edgePatient();
const all: Resource[] = [...resources, mrd];

/** A real HTTP EHR: Observation searches misbehave as told by the path prefix /{fault}/; everything else answers. */
let ehrBase: string;
let stopEhr: () => Promise<void>;
beforeAll(async () => {
  ({ base: ehrBase, stop: stopEhr } = await startHttpEhr((req, res, hold) => {
    const [, fault, type] = (req.url ?? '').split('?')[0].split('/') as [string, Fault, string];
    const body = JSON.stringify(type === 'Observation' ? searchset(all.filter((r) => r.resourceType === 'Observation')) : searchset(all.filter((r) => r.resourceType === type)));
    if (type !== 'Observation' || fault === 'ok') return void res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(body);
    switch (fault) {
      case 'bom':
        // Servers on .NET and Java stacks may start UTF-8 JSON with a byte-order mark; a WHATWG text() drops it.
        return void res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(body)]));
      case 'slow':
        hold(res);
        setTimeout(() => res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(body), 10 * EHR_TIMEOUT_MS).unref();
        return;
      case 'status500':
        return void res.writeHead(500, { 'content-type': 'application/fhir+json' }).end('{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception"}]}');
      case 'garbage':
        return void res.writeHead(200, { 'content-type': 'application/fhir+json' }).end('{"resourceType":"Bundle","entry":[{"resou\u0000\u0001');
      case 'html':
        return void res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>Service Unavailable</body></html>');
      case 'single':
        // A search answered with its one result as a resource, not a searchset: read as that result.
        return void res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(mrd));
      case 'refused':
        // A 200 whose body is the EHR's refusal, not a search result.
        return void res.writeHead(200, { 'content-type': 'application/fhir+json' }).end('{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"forbidden"}]}');
      case 'other-type':
        // The answer to another query: a searchset of Patients for an Observation search.
        return void res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(searchset(all.filter((r) => r.resourceType === 'Patient'))));
      case 'wrong-shape':
        return void res.writeHead(200, { 'content-type': 'application/fhir+json' }).end('{"resourceType":"Bundle","type":"searchset","entry":{"resource":"Observation/1"}}');
      case 'cut':
        res.writeHead(200, { 'content-type': 'application/fhir+json', 'content-length': String(body.length) });
        res.write(body.slice(0, Math.floor(body.length / 2)));
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      case 'stall':
        hold(res);
        res.writeHead(200, { 'content-type': 'application/fhir+json' });
        res.write(body.slice(0, 10));
        return;
    }
  }));
});
afterAll(() => stopEhr());

/** order-sign for an approvable patient whose observations are not prefetched, so they must be queried. */
function hookFor(fault: Fault) {
  const body = orderSignRequest(all, order, { fhirServer: `${ehrBase}/${fault}` }) as { prefetch: Record<string, unknown> };
  delete body.prefetch.observations;
  return body;
}

const code = (ext: Extension, url: string) => ext.extension!.find((e) => e.url === url)?.valueCode;

describe('the EHR fails while a hook queries it', () => {
  const { app } = buildApp({ env: { EHR_TIMEOUT_MS: String(EHR_TIMEOUT_MS) }, today: '2026-11-23' });

  it('approves when the EHR answers (the baseline: the queried MRD result is what approves)', async () => {
    const res = await request(app).post(SIGN).send(hookFor('ok')).expect(200);
    const ext = res.body.systemActions[0].resource.extension.find((e: Extension) => e.url.endsWith('ext-coverage-information')) as Extension;
    expect(code(ext, 'pa-needed')).toBe('satisfied');
  });

  it('reads an answer that starts with a UTF-8 byte-order mark, as fetch would', async () => {
    const res = await request(app).post(SIGN).send(hookFor('bom')).expect(200);
    const ext = res.body.systemActions[0].resource.extension.find((e: Extension) => e.url.endsWith('ext-coverage-information')) as Extension;
    expect(code(ext, 'pa-needed')).toBe('satisfied');
  });

  it('reads a search the EHR answers with its one result as a resource of the type searched (no 412)', async () => {
    const res = await request(app).post(SIGN).send(hookFor('single'));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  });

  it.each<[string, Fault]>([
    ['does not answer within EHR_TIMEOUT_MS', 'slow'],
    ['answers 500', 'status500'],
    ['answers a body that is not JSON', 'garbage'],
    ['answers an HTML error page', 'html'],
    ['answers JSON that is not FHIR of the right shape', 'wrong-shape'],
    ['answers 200 with an OperationOutcome (forbidden) instead of a searchset', 'refused'],
    ['answers an Observation search with a searchset of Patients', 'other-type'],
    ['closes the connection mid-body', 'cut'],
    ['sends headers, then stalls in the body', 'stall'],
  ])('answers 412 naming prefetch.observations, never an approval, when the EHR %s', async (_what, fault) => {
    const res = await request(app).post(SIGN).send(hookFor(fault)).timeout(20 * EHR_TIMEOUT_MS);
    expect(res.status).toBe(412);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].expression).toEqual(['prefetch.observations']);
  });
});
