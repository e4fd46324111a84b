import type { Bundle, QuestionnaireResponseItem } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { claimResponseOf, pasAppOnDisk, reviewActions, storyBundle } from './pas-fixtures.js';

// BCBSNC Blinatumomab "When covered": a use not listed is covered "in accordance with FDA label" or "with specific
// strong endorsement or support by nationally recognized compendia"; the question asks "Attach the label section or
// the compendium citation", and the Billing section says letters of support are not sufficient documentation. The
// compendium-citation attachment `proves: [compendiaOrLabelSupport]`, so a "Yes" counts only with the citation
// attached (cds-services/README.md attachments). The story is T-cell ALL (SNOMED 277575008), not the listed use.

const X12 = 'https://codesystem.x12.org/005010/306';
/** An NCCN excerpt as inline base64 (PAS carries attachments inline). */
const CITATION = { contentType: 'application/pdf', title: 'NCCN ALL guideline excerpt', data: Buffer.from('%PDF-1.4 compendium excerpt').toString('base64') };

const pas = pasAppOnDisk('pas-compendia');

const submit = pas.submit;

/** The T-ALL story as its own order, with these answers. */
function tAll(orderId: string, answers: Record<string, QuestionnaireResponseItem['answer']>): Bundle {
  return storyBundle('bcbsnc-t-all', { orderId, answers });
}

describe('PAS: BCBSNC compendia / FDA-label support needs its citation (BCBSNC Blinatumomab "When covered")', () => {
  it('pends (A4) a bare "Yes" to compendia-strong-support without the citation, naming the document; never A1', async () => {
    const res = await submit(tAll('t-all-yes-no-citation', { 'compendia-strong-support': [{ valueBoolean: true }] }));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cr = claimResponseOf(res.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
    expect(cr.preAuthRef).toBeUndefined();
    expect(JSON.stringify(cr.processNote)).toMatch(/attach: The FDA label section or the compendium recommendation/);
  });

  it('an attachment item without data or url does not prove it either', async () => {
    const res = await submit(
      tAll('t-all-yes-empty-citation', {
        'compendia-strong-support': [{ valueBoolean: true }],
        'compendium-citation': [{ valueAttachment: { contentType: 'application/pdf', title: 'no content' } }],
      }),
    );
    expect(reviewActions(claimResponseOf(res.body))).toEqual([`${X12}#A4`]);
  });

  it('certifies (A1) the same "Yes" with the citation attached', async () => {
    const res = await submit(
      tAll('t-all-yes-citation', {
        'compendia-strong-support': [{ valueBoolean: true }],
        'compendium-citation': [{ valueAttachment: CITATION }],
      }),
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const cr = claimResponseOf(res.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A1`]);
    expect(cr.preAuthRef).toMatch(/^PA-BCBSNC-/);
  });

  it('a "No" needs no document: another cancer without label or compendia support is not covered (A3)', async () => {
    const res = await submit(tAll('t-all-no', { 'compendia-strong-support': [{ valueBoolean: false }] }));
    const cr = claimResponseOf(res.body);
    expect(reviewActions(cr)).toEqual([`${X12}#A3`]);
    expect(JSON.stringify(cr.processNote)).not.toMatch(/attach:/);
  });
});
