import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { DEFAULT_ATTACHMENT_BODY_BYTES, MAX_ATTACHMENT_BODY_BYTES, MAX_BODY_BYTES } from '../../src/http/json-body.js';
import { createSandboxFhir } from '../../src/sandbox/sandbox-fhir.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { inquiryParameters, storyBundle } from '../pas/pas-fixtures.js';

/**
 * Body limits (design.md §4 "Errors"; README "Configuration"): a hook is refused over 1 MiB, whatever
 * ATTACHMENT_BODY_MAX_BYTES says; the bodies that carry attachments as base64 (PAS `$submit` and `$inquire`, a DTR
 * QuestionnaireResponse saved or sent for its next question) are refused over ATTACHMENT_BODY_MAX_BYTES (1 MiB,
 * the contract's limit, unless the payer raises it); the sandbox EHR the DTR app saves to takes up to 16 MiB, the largest that variable allows.
 * Each body is padded with JSON whitespace to an exact size, so at the limit it is read and answered as the same body
 * unpadded is, and one byte more is a 413.
 */
const STORY = 'centene-mrd-positive';
const FHIR = 'application/fhir+json';

/** `body` as JSON followed by spaces, `size` bytes in all. */
function padded(body: object, size: number): string {
  const json = JSON.stringify(body);
  return json + ' '.repeat(size - Buffer.byteLength(json));
}

const questionnaireResponse = {
  resourceType: 'QuestionnaireResponse',
  status: 'in-progress',
  questionnaire: 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab',
  item: [{ linkId: 'mrd-percent', answer: [{ valueDecimal: 0.52 }] }],
};

/** Each endpoint with the larger limit: method, path, a body it reads. */
const ATTACHMENT_ROUTES: [string, 'post' | 'put', string, object][] = [
  ['PAS $submit', 'post', '/fhir/Claim/$submit', storyBundle(STORY)],
  ['PAS $inquire', 'post', '/fhir/Claim/$inquire', inquiryParameters({ identifier: { system: 'urn:ehr.example.org:pas-transaction', value: 'none-such' } })],
  ['QuestionnaireResponse create', 'post', '/fhir/QuestionnaireResponse', questionnaireResponse],
  ['QuestionnaireResponse update', 'put', '/fhir/QuestionnaireResponse/qr-attachment-limit', { ...questionnaireResponse, id: 'qr-attachment-limit' }],
  ['$next-question', 'post', '/fhir/Questionnaire/$next-question', { resourceType: 'Parameters', parameter: [{ name: 'questionnaire-response', resource: questionnaireResponse }] }],
];

describe('the bodies that carry attachments have their own limit; hooks stay at 1 MiB', () => {
  it.each(ATTACHMENT_ROUTES)('%s: exactly 8 MiB, configured, is read as the same body unpadded, one byte more is a 413', async (_what, method, path, body) => {
    const { app } = buildApp({ today: '2026-11-23', env: { ATTACHMENT_BODY_MAX_BYTES: String(EIGHT_MIB) } });
    const send = (text: string) => request(app)[method](path).set('Content-Type', FHIR).send(text);
    const plain = await send(JSON.stringify(body));
    expect(plain.status).not.toBe(413);
    const atLimit = await buildAppSend(method, path, padded(body, EIGHT_MIB));
    expect(atLimit.status).toBe(plain.status);
    const over = await send(padded(body, EIGHT_MIB + 1));
    expect(over.status).toBe(413);
    expect(over.body.resourceType).toBe('OperationOutcome');
  });

  it('ATTACHMENT_BODY_MAX_BYTES sets the limit: 2 MiB configured, a PAS request of 2 MiB is read and one of 2 MiB and a byte is not', async () => {
    const { app } = buildApp({ today: '2026-11-23', env: { ATTACHMENT_BODY_MAX_BYTES: String(2 * 1_048_576) } });
    const send = (size: number) => request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR).send(padded(storyBundle(STORY), size));
    expect((await send(2 * 1_048_576)).status).toBe(200);
    expect((await send(2 * 1_048_576 + 1)).status).toBe(413);
  });

  it('ATTACHMENT_BODY_MAX_BYTES defaults to the contract\'s 1 MiB and is refused below 1 MiB or above 16 MiB, naming the variable', () => {
    expect(loadConfig({}).attachmentBodyMaxBytes).toBe(1_048_576);
    expect(DEFAULT_ATTACHMENT_BODY_BYTES).toBe(MAX_BODY_BYTES);
    expect(loadConfig({ ATTACHMENT_BODY_MAX_BYTES: '16777216' }).attachmentBodyMaxBytes).toBe(16_777_216);
    for (const bad of ['1048575', '16777217', '8MB', '8e6']) {
      expect(() => loadConfig({ ATTACHMENT_BODY_MAX_BYTES: bad })).toThrow(ConfigError);
      expect(() => loadConfig({ ATTACHMENT_BODY_MAX_BYTES: bad })).toThrow(/ATTACHMENT_BODY_MAX_BYTES/);
    }
  });

  it('a hook is refused over 1 MiB even with ATTACHMENT_BODY_MAX_BYTES at its largest', async () => {
    const { app } = buildApp({ today: '2026-11-23', env: { ATTACHMENT_BODY_MAX_BYTES: String(MAX_ATTACHMENT_BODY_BYTES) } });
    const resources = storyResources(STORY);
    const hook = orderSignRequest(resources, storyOrder(STORY, resources));
    const send = (size: number) => request(app).post('/cds-services/priorpath-order-sign').set('Content-Type', 'application/json').send(padded(hook, size));
    expect((await send(MAX_BODY_BYTES)).status).toBe(200);
    const over = await send(MAX_BODY_BYTES + 1);
    expect(over.status).toBe(413);
    expect(over.body.resourceType).toBe('OperationOutcome');
  });

  it('the sandbox EHR takes a QuestionnaireResponse of up to 16 MiB, the largest ATTACHMENT_BODY_MAX_BYTES, and refuses one byte more', async () => {
    const sandbox = await createSandboxFhir({ bundles: [] });
    const app = express().use('/sandbox/fhir', sandbox.router);
    const send = (size: number) => request(app).post('/sandbox/fhir/QuestionnaireResponse').set('Content-Type', FHIR).send(padded(questionnaireResponse, size));
    expect((await send(MAX_ATTACHMENT_BODY_BYTES)).status).toBe(201);
    const over = await send(MAX_ATTACHMENT_BODY_BYTES + 1);
    expect(over.status).toBe(413);
    expect(over.body.resourceType).toBe('OperationOutcome');
  });
});

/** A fresh app (the same state as the unpadded request's) answering one request. */
const EIGHT_MIB = 8 * 1_048_576;

function buildAppSend(method: 'post' | 'put', path: string, text: string) {
  const { app } = buildApp({ today: '2026-11-23', env: { ATTACHMENT_BODY_MAX_BYTES: String(EIGHT_MIB) } });
  return request(app)[method](path).set('Content-Type', FHIR).send(text);
}

describe('a scanned PDF sent with a PAS request reaches the reviewer', () => {
  /** A DocumentReference holding `bytes` bytes of PDF, as base64. */
  const scanned = (id: string, bytes: number) => ({
    fullUrl: `https://ehr.example.org/fhir/DocumentReference/${id}`,
    resource: {
      resourceType: 'DocumentReference',
      id,
      status: 'current',
      date: '2026-11-20T10:00:00Z',
      content: [{ attachment: { contentType: 'application/pdf', title: `${id}.pdf`, data: Buffer.alloc(bytes, 0x25).toString('base64') } }],
    },
  });

  it('a 2 MB PDF is accepted and shown inline (up to 2 MiB decoded); a larger one is listed with its size and no data', async () => {
    const REVIEW_TOKEN = 'review-token-for-attachment-limits';
    const { app } = buildApp({ today: '2026-11-23', env: { REVIEW_TOKEN, ATTACHMENT_BODY_MAX_BYTES: String(EIGHT_MIB) } });
    const bundle = storyBundle('centene-missing-mrd');
    bundle.entry!.push(scanned('bone-marrow-report', 2_000_000) as never, scanned('flow-cytometry-scan', 2 * 1_048_576 + 1) as never);
    const text = JSON.stringify(bundle);
    expect(Buffer.byteLength(text)).toBeGreaterThan(5 * 1_048_576);
    const submitted = await request(app).post('/fhir/Claim/$submit').set('Content-Type', FHIR).send(text).expect(200);
    const claimResponse = submitted.body.entry[0].resource as { id: string };
    const review = await request(app).get(`/review/${claimResponse.id}`).set('Authorization', `Bearer ${REVIEW_TOKEN}`).expect(200);
    const attachments = review.body.case.attachments as { title: string; size: number; data?: string }[];
    const report = attachments.find((a) => a.title === 'bone-marrow-report.pdf')!;
    expect([report.size, report.data?.length]).toEqual([2_000_000, Math.ceil(2_000_000 / 3) * 4]);
    const scan = attachments.find((a) => a.title === 'flow-cytometry-scan.pdf')!;
    expect([scan.size, scan.data]).toEqual([2 * 1_048_576 + 1, undefined]);
  });
});
