/**
 * A PAS request carries one patient's record (docs/design.md §4 "One patient"; the rule CRD applies to prefetch,
 * src/fhir/one-patient.ts): another member's lab result or DTR form in the request Bundle is refused with a 400 naming
 * its entry, never read as this member's evidence (QA s40 F4, integrator s40 M4).
 */
import type { Bundle, Observation, QuestionnaireResponse } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { storyResources } from '../helpers/stories.js';
import { claimResponseOf, pasAppOnDisk, reviewActions, storyBundle } from './pas-fixtures.js';

const X12 = 'https://codesystem.x12.org/005010/306';
const pas = pasAppOnDisk('pas-one-patient');

// centene-missing-mrd's chart has no MRD result (A4 without one); centene-mrd-positive's has MRD 0.4 %, which meets
// Centene CP.PHAR.312 for B-ALL in remission.
const otherMrd = storyResources('centene-mrd-positive').find((r) => r.id === 'centene-mrd-positive-mrd') as Observation;

const withEntry = (b: Bundle, o: Observation): Bundle => ({ ...b, entry: [...b.entry!, { fullUrl: `https://ehr.example.org/fhir/Observation/${o.id}`, resource: o }] });

describe('Claim/$submit with a resource about another patient than Claim.patient', () => {
  it("refuses (400, naming the entry) another member's MRD Observation; the same result about this member certifies, and without it the request pends", async () => {
    expect(otherMrd.subject?.reference).toBe('Patient/centene-mrd-positive');
    const foreign = withEntry(storyBundle('centene-missing-mrd', { orderId: 'one-patient-obs' }), otherMrd);
    const res = await pas.submit(foreign);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    const at = foreign.entry!.length - 1;
    expect(res.body.issue[0].diagnostics).toContain('Observation/centene-mrd-positive-mrd');
    expect(res.body.issue[0].diagnostics).toMatch(/another patient than Claim\.patient/);
    expect(res.body.issue[0].expression).toEqual([`Bundle.entry[${at}].resource.subject`]);

    // Nothing was recorded: the request without it is new and pends for the MRD result.
    const control = await pas.submit(storyBundle('centene-missing-mrd', { orderId: 'one-patient-obs' }));
    expect(reviewActions(claimResponseOf(control.body))).toEqual([`${X12}#A4`]);

    // The same result as this member's own (absolute reference) is evidence: the refusal was for whose it is.
    const own = { ...otherMrd, id: 'missing-mrd-own-mrd', subject: { reference: 'https://ehr.example.org/fhir/Patient/centene-missing-mrd' } };
    const ok = await pas.submit(withEntry(storyBundle('centene-missing-mrd', { orderId: 'one-patient-own-obs' }), own));
    expect(reviewActions(claimResponseOf(ok.body))).toEqual([`${X12}#A1`]);
  });

  it("refuses (400, naming it) a Claim.supportingInfo QuestionnaireResponse whose subject is another member; this member's own form certifies", async () => {
    const answers = { 'mrd-percent': [{ valueDecimal: 0.5 }] };
    const bundle = storyBundle('centene-missing-mrd', { orderId: 'one-patient-qr', answers });
    const at = bundle.entry!.findIndex((e) => e.resource?.resourceType === 'QuestionnaireResponse');
    const qr = bundle.entry![at].resource as QuestionnaireResponse;
    const misfiled: Bundle = { ...bundle, entry: bundle.entry!.map((e, i) => (i === at ? { ...e, resource: { ...qr, subject: { reference: 'Patient/centene-mrd-positive' } } } : e)) };
    const res = await pas.submit(misfiled);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.issue[0].diagnostics).toContain(`QuestionnaireResponse/${qr.id}`);
    expect(res.body.issue[0].expression).toEqual([`Bundle.entry[${at}].resource.subject`]);

    // Inside a DTR QuestionnaireResponse Bundle too.
    const nested = storyBundle('centene-missing-mrd', { orderId: 'one-patient-qr', answers, qrBundle: true });
    const n = nested.entry!.findIndex((e) => e.resource?.resourceType === 'Bundle');
    const inner = nested.entry![n].resource as Bundle;
    (inner.entry![0].resource as QuestionnaireResponse).subject = { reference: 'Patient/centene-mrd-positive' };
    const resNested = await pas.submit(nested);
    expect(resNested.status, JSON.stringify(resNested.body)).toBe(400);
    expect(resNested.body.issue[0].expression).toEqual([`Bundle.entry[${n}].resource.entry[0].resource.subject`]);

    const own = await pas.submit(bundle);
    expect(reviewActions(claimResponseOf(own.body))).toEqual([`${X12}#A1`]);
  });
});
