import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Bundle, BundleEntry, Claim, ClaimResponse, MedicationRequest, QuestionnaireResponse, QuestionnaireResponseItem, Resource } from '@medplum/fhirtypes';
import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll } from 'vitest';
import { errorHandler } from '../../src/http/error-handler.js';
import { answerOtherMethods } from '../../src/http/method-guard.js';
import { requestContext } from '../../src/http/request-context.js';
import { createLogger } from '../../src/logger.js';
import { createPasRouter } from '../../src/pas/pas-router.js';
import { createReviewRouter } from '../../src/pas/review-router.js';
import { createStorage } from '../../src/storage/create-storage.js';
import type { SqlStorage } from '../../src/storage/sql-storage.js';
import type { Storage } from '../../src/storage/storage.js';
import { testContent } from '../helpers/app.js';
import { storyOrder, storyResources } from '../helpers/stories.js';

export const TODAY = '2026-11-23';
/** The HCPCS codes of the two governed drugs, as a PAS Claim item bills them. */
export const J9039 = { system: 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets', code: 'J9039', display: 'Injection, blinatumomab, 1 microgram' };
export const J9229 = { system: 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets', code: 'J9229', display: 'Injection, inotuzumab ozogamicin, 0.1 mg' };
export const REVIEW_TOKEN = 'test-review-token-5f2c';
const EHR = 'https://ehr.example.org/fhir';

/**
 * The PAS app over embedded storage in a fresh data directory, opened before the file's tests and removed after them
 * (registers the suite's beforeAll/afterAll). `reopen` closes and opens the same directory, as a restart does.
 */
export function pasAppOnDisk(prefix: string) {
  let dir = '';
  let storage: SqlStorage | undefined;
  let app: ReturnType<typeof pasApp>['app'] | undefined;
  const open = async () => {
    storage = await createStorage({ dataDir: dir });
    ({ app } = pasApp(storage));
  };
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `priorpath-${prefix}-`));
    await open();
  }, 120_000);
  afterAll(async () => {
    await storage?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    get app() {
      return app!;
    },
    get storage() {
      return storage!;
    },
    async reopen() {
      await storage!.close();
      await open();
    },
    /** `POST /fhir/Claim/$submit` of a body, as FHIR JSON. */
    submit: (body: unknown) => request(app!).post('/fhir/Claim/$submit').set('Content-Type', 'application/fhir+json').send(JSON.stringify(body)),
  };
}

/** An Express app with the PAS router at /fhir and the reviewer API at /review, as the lead mounts them. */
export function pasApp(storage: Storage, opts: { reviewToken?: string | null; today?: string } = {}) {
  const lines: string[] = [];
  const logger = createLogger('info', new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
  const app = express();
  app.use(requestContext(logger));
  app.use('/fhir', createPasRouter({ content: testContent(), storage, logger, today: () => opts.today ?? TODAY }));
  app.use('/review', createReviewRouter({ storage, logger, reviewToken: opts.reviewToken === null ? undefined : (opts.reviewToken ?? REVIEW_TOKEN), content: testContent() }));
  // As src/app.ts does: every served path answers its other methods with 405 and Allow.
  answerOtherMethods(app.router);
  app.use((_req, res) => res.status(404).json({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] }));
  app.use(errorHandler(logger));
  return { app, lines };
}

/** A DTR QuestionnaireResponse answering the given policy questions (linkId → answer). */
export function questionnaireResponse(policyId: string, answers: Record<string, QuestionnaireResponseItem['answer']>, patientRef: string): QuestionnaireResponse {
  return {
    resourceType: 'QuestionnaireResponse',
    id: `qr-${randomUUID().slice(0, 8)}`,
    questionnaire: `https://priorpath.dev/fhir/Questionnaire/${policyId}|2026-11`,
    status: 'completed',
    subject: { reference: patientRef },
    authored: `${TODAY}T09:00:00Z`,
    item: Object.entries(answers).map(([linkId, answer]) => ({
      linkId,
      answer: answer?.map((a) => ({
        ...a,
        extension: [{ url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin', extension: [{ url: 'source', valueCode: 'manual' }] }],
      })),
    })),
  };
}

export interface StoryBundleOptions {
  /** Bundle.identifier value (default: a fresh UUID). */
  identifier?: string;
  /** QuestionnaireResponse answers by linkId; omit for no QuestionnaireResponse. */
  answers?: Record<string, QuestionnaireResponseItem['answer']>;
  /** Story resources (by id) left out of the Bundle. */
  remove?: string[];
  /** Put the QuestionnaireResponse inside a DTR QuestionnaireResponse Bundle instead of directly. */
  qrBundle?: boolean;
  /** Item code: the order's HCPCS code (default: J9039 for Blincyto, J9229 for Besponsa) or its own RxNorm code. */
  code?: 'hcpcs' | 'rxnorm';
  /** Another order of the same patient (the story's order under this id): orders have one decision each. */
  orderId?: string;
}

/**
 * A PAS request Bundle (PAS 2.2.1 PASRequestBundle) built from a sandbox story: the Claim first (preauthorization, one
 * item for the story's order with its HCPCS code and a requestedService reference), then every story resource with an
 * EHR fullUrl, and the QuestionnaireResponse as supportingInfo.
 */
export function storyBundle(story: string, opts: StoryBundleOptions = {}): Bundle {
  const stored = storyResources(story);
  const storyOrderId = storyOrder(story, stored).id;
  const all = opts.orderId ? stored.map((r) => (r.resourceType === 'MedicationRequest' && r.id === storyOrderId ? { ...r, id: opts.orderId } : r)) : stored;
  const resources = all.filter((r) => !(opts.remove ?? []).includes(r.id ?? ''));
  const order = all.find((r) => r.resourceType === 'MedicationRequest' && r.id === (opts.orderId ?? storyOrderId)) as MedicationRequest;
  const patient = all.find((r) => r.resourceType === 'Patient')!;
  const coverage = all.find((r) => r.resourceType === 'Coverage')!;
  const role = resources.find((r) => r.resourceType === 'PractitionerRole');
  const payerOrg = resources.find((r) => r.resourceType === 'Organization' && r.id?.startsWith('payer-'));
  const patientRef = `Patient/${patient.id}`;
  const policyId = `${story.split('-')[0]}-blinatumomab`;
  const qr = opts.answers ? questionnaireResponse(policyId, opts.answers, patientRef) : undefined;
  const qrUrl = `urn:uuid:${randomUUID()}`;
  // The item is coded as its order's drug: an item coded as another drug than its order is refused (adjudicate.ts).
  const besponsa = /inotuzumab|besponsa/i.test(JSON.stringify(order.medicationCodeableConcept ?? {}));

  const claim: Claim = {
    resourceType: 'Claim',
    id: `claim-${story}`,
    identifier: [{ system: 'urn:trnorg:1122334455', value: `TRN-${randomUUID().slice(0, 8)}` }],
    status: 'active',
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
    use: 'preauthorization',
    patient: { reference: patientRef },
    created: `${TODAY}T09:05:00Z`,
    insurer: payerOrg ? { reference: `Organization/${payerOrg.id}` } : { display: 'payer' },
    provider: role ? { reference: `PractitionerRole/${role.id}` } : { display: 'requesting provider' },
    priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/processpriority', code: 'normal' }] },
    insurance: [{ sequence: 1, focal: true, coverage: { reference: `Coverage/${coverage.id}` } }],
    ...(qr
      ? {
          supportingInfo: [
            {
              sequence: 1,
              category: { coding: [{ system: 'http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes', code: 'additionalInformation' }] },
              valueReference: { reference: qrUrl },
            },
          ],
        }
      : {}),
    item: [
      {
        sequence: 1,
        extension: [{ url: 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-requestedService', valueReference: { reference: `MedicationRequest/${order.id}` } }],
        category: { coding: [{ system: 'https://codesystem.x12.org/005010/1365', code: '1', display: 'Medical Care' }] },
        productOrService: opts.code === 'rxnorm' ? order.medicationCodeableConcept! : { coding: [besponsa ? J9229 : J9039] },
        // One cycle: Blincyto 28 mcg/day × 28 days; Besponsa 0.8 + 0.5 + 0.5 mg/m² × about 1.9 m².
        quantity: besponsa ? { value: 3.4, unit: 'mg', system: 'http://unitsofmeasure.org', code: 'mg' } : { value: 784, unit: 'ug' },
        locationCodeableConcept: { coding: [{ system: 'https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set', code: '21' }] },
      },
    ],
  };

  const entries: BundleEntry[] = [
    { fullUrl: `${EHR}/Claim/${claim.id}`, resource: claim },
    ...resources.map((r: Resource) => ({ fullUrl: `${EHR}/${r.resourceType}/${r.id}`, resource: r })),
  ];
  if (qr) {
    if (opts.qrBundle) {
      entries.push({ fullUrl: qrUrl, resource: { resourceType: 'Bundle', type: 'collection', entry: [{ fullUrl: `urn:uuid:${randomUUID()}`, resource: qr }] } });
    } else entries.push({ fullUrl: qrUrl, resource: qr });
  }
  return {
    resourceType: 'Bundle',
    identifier: { system: 'urn:ehr.example.org:pas-transaction', value: opts.identifier ?? randomUUID() },
    type: 'collection',
    timestamp: `${TODAY}T09:05:00Z`,
    entry: entries,
  };
}

/** The ClaimResponse of a PAS response Bundle (its first entry, PAS "ClaimResponseFirst"). */
export function claimResponseOf(bundle: Bundle): ClaimResponse {
  const cr = bundle.entry?.[0]?.resource;
  if (cr?.resourceType !== 'ClaimResponse') throw new Error(`first entry is ${cr?.resourceType}, not a ClaimResponse`);
  return cr;
}

/** The X12 306 review action codes (`system#code`) of every item of a ClaimResponse. */
export function reviewActions(cr: ClaimResponse): string[] {
  const pas = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition';
  return (cr.item ?? []).flatMap((i) =>
    (i.adjudication ?? []).flatMap((a) =>
      (a.extension ?? [])
        .filter((e) => e.url === `${pas}/extension-reviewAction`)
        .flatMap((e) => (e.extension ?? []).filter((x) => x.url === `${pas}/extension-reviewActionCode`))
        .map((x) => `${x.valueCodeableConcept?.coding?.[0]?.system}#${x.valueCodeableConcept?.coding?.[0]?.code}`),
    ),
  );
}

/** A $inquire Parameters naming a request by its Bundle identifier or its authorization number. */
export function inquiryParameters(q: { identifier?: { system: string; value: string }; preAuthRef?: string }) {
  return {
    resourceType: 'Parameters',
    parameter: [...(q.identifier ? [{ name: 'identifier', valueIdentifier: q.identifier }] : []), ...(q.preAuthRef ? [{ name: 'preAuthRef', valueString: q.preAuthRef }] : [])],
  };
}

/** A PASSubscription (R4 backport, rest-hook, full-resource notifications to `endpoint`) for one member's requests. */
export function pasSubscription(endpoint: string, memberId: string) {
  return {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'Decisions on pended prior authorization requests',
    criteria: 'http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic',
    _criteria: { extension: [{ url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria', valueString: `patient=${memberId}` }] },
    channel: {
      type: 'rest-hook',
      endpoint,
      payload: 'application/fhir+json',
      _payload: { extension: [{ url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content', valueCode: 'full-resource' }] },
    },
  };
}

/** The same request under a new Bundle identifier and Claim identifier (a client that regenerates them on resend). */
export function renamed(b: Bundle): Bundle {
  const copy = structuredClone(b);
  copy.identifier = { ...copy.identifier!, value: randomUUID() };
  const claim = copy.entry![0].resource as Claim;
  claim.identifier = [{ system: 'urn:trnorg:1122334455', value: `TRN-${randomUUID().slice(0, 8)}` }];
  return copy;
}
