/**
 * One decision per order (docs/design.md §8): once the order's record holds a decision (a reviewer's denial or approval,
 * a PAS answer), `$questionnaire-package` for that order says so in its outcome, so a DTR client launched afterwards
 * shows the decision rather than the "Still needed" of an earlier answer (review ui s44 L5).
 */
import type { MedicationRequest, OperationOutcome, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { X12_306_REVIEW_ACTION } from '../../src/fhir/dtr-urls.js';
import { buildApp } from '../helpers/app.js';
import { packageParameters } from '../helpers/dtr-package.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { storyOrder, storyResources } from '../helpers/stories.js';
import { claimResponseOf, reviewActions, storyBundle } from '../pas/pas-fixtures.js';
import { TODAY } from './helpers.js';

const STORY = 'centene-missing-mrd';

type App = ReturnType<typeof buildApp>['app'];

async function signed(app: App, resources: Resource[], order: MedicationRequest): Promise<MedicationRequest> {
  const res = await request(app)
    .post('/cds-services/priorpath-order-sign')
    .send(orderSignRequest(resources, order))
    .expect(200);
  return res.body.systemActions[0].resource as MedicationRequest;
}

/** The outcome of a package request for the signed order (both shapes: the 2.0.1 and 2.2 outcome parts say the same). */
async function packageOutcomes(app: App, resources: Resource[], order: MedicationRequest): Promise<OperationOutcome[]> {
  const params = (await packageParameters(app, resources.find((r) => r.resourceType === 'Coverage'), order)).parameter ?? [];
  expect(
    params.some((p) => p.name === 'PackageBundle'),
    'the form is still sent',
  ).toBe(true);
  return params
    .filter((p) => p.resource?.resourceType === 'OperationOutcome')
    .map((p) => p.resource as OperationOutcome);
}

/** A reviewer's approval of the signed order on its record, valid 60 days from TODAY (as the workbench records it). */
async function approvedOnReview(storage: ReturnType<typeof buildApp>['storage'], draft: MedicationRequest, number: string): Promise<void> {
  const key = {
    payer: 'centene',
    patientId: draft.subject!.reference!.replace('Patient/', ''),
    orderRef: `MedicationRequest/${draft.id}`,
    drug: 'blinatumomab',
  };
  const end = new Date(Date.now() + 60 * 86_400_000).toISOString().slice(0, 10);
  await storage.applyOrderChange({
    key,
    from: ['auth-needed', 'pended'],
    change: {
      state: 'approved',
      at: new Date().toISOString(),
      source: 'review',
      actor: 'Dr. R. Okafor',
      reason: 'MRD 0.4 % on the attached flow report',
      authorization: { number, start: TODAY, end },
    },
  });
}

const decisionIssues = (outcomes: OperationOutcome[]) =>
  outcomes.flatMap((o) => o.issue).filter((i) => i.details?.coding?.some((c) => c.system === X12_306_REVIEW_ACTION));

describe('$questionnaire-package names the decision the order already has', () => {
  it('an undecided order (documentation required): no decision in the outcome', async () => {
    const { app } = buildApp({ today: TODAY });
    const resources = storyResources(STORY);
    const order = await signed(app, resources, storyOrder(STORY, resources));
    expect(decisionIssues(await packageOutcomes(app, resources, order))).toEqual([]);
  });

  it("a reviewer's denial: A3 with the reviewer's reason and how to request again, in both outcome parts", async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const resources = storyResources(STORY);
    const draft = storyOrder(STORY, resources);
    const order = await signed(app, resources, draft);
    const key = {
      payer: 'centene',
      patientId: draft.subject!.reference!.replace('Patient/', ''),
      orderRef: `MedicationRequest/${draft.id}`,
      drug: 'blinatumomab',
    };
    expect((await storage.getOrderRecord(key))?.state).toBe('auth-needed');
    await storage.applyOrderChange({
      key,
      from: ['auth-needed', 'pended'],
      change: {
        state: 'denied',
        at: new Date().toISOString(),
        source: 'review',
        actor: 'Dr. R. Okafor',
        reason: 'MRD not documented; attach the flow cytometry report',
      },
    });
    const issues = decisionIssues(await packageOutcomes(app, resources, order));
    expect(issues).toHaveLength(2);
    for (const issue of issues) {
      expect(issue.severity).toBe('information');
      expect(issue.details!.coding![0].code).toBe('A3');
      expect(issue.details!.text).toMatch(
        /^Prior authorization denied: MRD not documented; attach the flow cytometry report\. The denial is the decision on this order/,
      );
    }
  });

  it("a reviewer's approval: A1 with the number and its period", async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const resources = storyResources(STORY);
    const draft = storyOrder(STORY, resources);
    const order = await signed(app, resources, draft);
    await approvedOnReview(storage, draft, 'PA-CENTENE-REVIEW-1');
    const [issue] = decisionIssues(await packageOutcomes(app, resources, order));
    expect(issue.details!.coding![0].code).toBe('A1');
    expect(issue.details!.text).toMatch(
      /^Prior authorization approved: PA-CENTENE-REVIEW-1, valid from \d{1,2} [A-Z][a-z]+ \d{4} to \d{1,2} [A-Z][a-z]+ \d{4}\. Approved on clinical review: MRD 0\.4 %/,
    );
  });
  it("an approval is named only when it came after the signing the order carries (review-diff s45 H4)", async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const resources = storyResources(STORY);
    const draft = storyOrder(STORY, resources);
    const firstSigned = await signed(app, resources, draft);
    await approvedOnReview(storage, draft, 'PA-CENTENE-REVIEW-2');
    // The order as signed before the approval: the approval is news to it.
    expect(new Set(decisionIssues(await packageOutcomes(app, resources, firstSigned)).map((i) => i.details!.coding![0].code))).toEqual(new Set(['A1']));
    // The order without any signing's assertion (an EHR's copy that may have changed since): the package does not judge
    // it against what was approved, so it does not call it certified.
    expect(decisionIssues(await packageOutcomes(app, resources, draft))).toEqual([]);
    // Signed again after the approval (at twice the dose): the EHR already holds CRD's answer on the order as it now
    // stands, which the package does not override with "certified in total".
    const doubled = JSON.parse(JSON.stringify(draft).replace(/"doseQuantity":\{"value":(\d+(?:\.\d+)?)/g, (_m, v: string) => `"doseQuantity":{"value":${Number(v) * 2}`)) as MedicationRequest;
    expect(JSON.stringify(doubled)).not.toBe(JSON.stringify(draft));
    const resigned = await signed(app, resources, doubled);
    expect(decisionIssues(await packageOutcomes(app, resources, resigned))).toEqual([]);
  });

  it("a reviewer's approval after the signing is not named for the EHR's order changed since what was approved (the dose raised, not signed again)", async () => {
    const token = 'review-token-package-changed-order';
    const { app } = buildApp({ today: TODAY, env: { REVIEW_TOKEN: token } });
    const resources = storyResources(STORY);
    const order = await signed(app, resources, storyOrder(STORY, resources));
    const cr = claimResponseOf((await request(app).post('/fhir/Claim/$submit').send(storyBundle(STORY)).expect(200)).body);
    expect(reviewActions(cr)).toEqual([`${X12_306_REVIEW_ACTION}#A4`]);
    await request(app)
      .post(`/review/${cr.id}/decision`)
      .set('Authorization', `Bearer ${token}`)
      .send({ decision: 'approve', reviewer: 'Dr. R. Okafor', reason: 'MRD 0.4 % on the attached flow report' })
      .expect(200);
    // The order as signed and as approved: the approval is news to it.
    expect(decisionIssues(await packageOutcomes(app, resources, order)).map((i) => i.details!.coding![0].code)).toEqual(['A1', 'A1']);
    // The EHR's order, still carrying that signing, with its dose doubled or its supply halved since: not what was approved.
    const doubled = JSON.parse(JSON.stringify(order).replace(/"doseQuantity":\{"value":(\d+(?:\.\d+)?)/g, (_m, v: string) => `"doseQuantity":{"value":${Number(v) * 2}`)) as MedicationRequest;
    expect(JSON.stringify(doubled)).not.toBe(JSON.stringify(order));
    expect(decisionIssues(await packageOutcomes(app, resources, doubled))).toEqual([]);
    const shorter: MedicationRequest = { ...order, dispenseRequest: { ...order.dispenseRequest, expectedSupplyDuration: { value: 14, unit: 'days', system: 'http://unitsofmeasure.org', code: 'd' } } };
    expect(decisionIssues(await packageOutcomes(app, resources, shorter))).toEqual([]);
  });

  it('an order a PAS request pends for review: A4, what it waits for, the request, and where answers go; none once it is decided (review ui s45 A4)', async () => {
    const { app, storage } = buildApp({ today: TODAY });
    const resources = storyResources(STORY);
    const draft = storyOrder(STORY, resources);
    const order = await signed(app, resources, draft);
    // The PAS request sent without the MRD result the policy asks for: pended (A4), in the reviewer's queue.
    const cr = claimResponseOf((await request(app).post('/fhir/Claim/$submit').send(storyBundle(STORY)).expect(200)).body);
    expect(reviewActions(cr)).toEqual([`${X12_306_REVIEW_ACTION}#A4`]);
    const key = { payer: 'centene', patientId: draft.subject!.reference!.replace('Patient/', ''), orderRef: `MedicationRequest/${draft.id}`, drug: 'blinatumomab' };
    expect((await storage.getOrderRecord(key))?.state).toBe('pended');

    const issues = decisionIssues(await packageOutcomes(app, resources, order));
    expect(issues).toHaveLength(2);
    for (const issue of issues) {
      expect(issue.severity).toBe('information');
      expect(issue.details!.coding).toEqual([{ system: X12_306_REVIEW_ACTION, code: 'A4', display: 'Pended' }]);
      expect(issue.details!.text).toMatch(
        new RegExp(
          `^A prior authorization request for this order \\(reference ${cr.id}\\) is pended for review since \\d{1,2} [A-Z][a-z]+ \\d{4}\\. It waits for: .*Minimal residual disease.*\\. ` +
            'Documentation that meets the policy settles it at once; other answers and documents reach the reviewer only when sent as an update of that request\\.$',
        ),
      );
    }
    // A reviewer's denial of that request is the order's decision: the package names it (A3), no longer pended.
    await storage.applyOrderChange({
      key,
      from: ['pended'],
      change: { state: 'denied', at: new Date().toISOString(), source: 'review', actor: 'Dr. R. Okafor', reason: 'MRD not documented' },
    });
    expect(decisionIssues(await packageOutcomes(app, resources, order)).map((i) => i.details!.coding![0].code)).toEqual(['A3', 'A3']);
  });
});
