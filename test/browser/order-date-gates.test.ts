/**
 * In LHC-Forms (the DTR app's renderer), the order start the payer pre-fills in the hidden order-date item decides the
 * age bands the form's enableWhenExpressions read (design.md §7 "One date per order"): a patient who turns 18 after
 * today and before the order starts is asked Centene's adult-only maintenance-with-POMP question (CP.PHAR.312
 * I.A.4.c.iii), as CRD judges that order; the same answers judged on today (no order start) hide it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Questionnaire, QuestionnaireResponse, ValueSet } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { CHROMIUM, hasChromium, LFORMS_SANDBOX_CONTEXT, openLformsPage, useDemoBrowser } from './browser-session.js';
import { withContainedValueSets } from '../../web/dtr/lforms.js';
import { ORDER_DATE_LINK_ID } from '../../src/policies/questionnaire-names.js';
import { daysBefore, EVIDENCE, TODAY } from '../dtr/helpers.js';
import { repoRoot } from '../helpers/stories.js';

const valueSets = readdirSync(join(repoRoot, 'cds-services', 'valuesets'))
  .map((f) => JSON.parse(readFileSync(join(repoRoot, 'cds-services', 'valuesets', f), 'utf8')) as ValueSet)
  .filter((r) => r.resourceType === 'ValueSet');
const q = JSON.parse(readFileSync(join(repoRoot, 'questionnaires', 'centene-blinatumomab.json'), 'utf8')) as Questionnaire;
const POMP = 'Is Blincyto given as maintenance alternating with POMP';
const daysAfter = (date: string, days: number) => daysBefore(date, -days);
const eighteenthBirthday = daysAfter(TODAY, 10);
const birthDate = `${String(Number(eighteenthBirthday.slice(0, 4)) - 18)}${eighteenthBirthday.slice(4)}`;

/**
 * The payer's pre-filled response: the order start (or none), the birth date, a first request (renewal no: continued
 * therapy reads POMP for an adult's maintenance course too, review s41 F1), a Ph-negative maintenance order.
 */
function prefilled(orderStart: string | undefined): QuestionnaireResponse {
  return {
    resourceType: 'QuestionnaireResponse',
    status: 'in-progress',
    questionnaire: `${q.url}|${q.version}`,
    item: [
      ...(orderStart ? [{ linkId: ORDER_DATE_LINK_ID, answer: [{ valueDate: orderStart }] }] : []),
      {
        linkId: 'group-requirements',
        item: [
          { linkId: 'birth-date', answer: [{ valueDate: birthDate }] },
          { linkId: 'renewal-request', answer: [{ valueBoolean: false }] },
        ],
      },
      {
        linkId: 'group-indication',
        item: [
          { linkId: 'ph-status', answer: [{ valueCoding: { system: EVIDENCE, code: 'negative' } }] },
          { linkId: 'treatment-phase', answer: [{ valueCoding: { system: EVIDENCE, code: 'maintenance' } }] },
        ],
      },
    ],
  };
}

describe.skipIf(!hasChromium)(`order-date gates in LHC-Forms${hasChromium ? '' : ` (skipped: ${CHROMIUM} absent)`}`, () => {
  const demo = useDemoBrowser();

  async function formText(qr: QuestionnaireResponse): Promise<string> {
    const page = await openLformsPage(demo.browser, demo.server.url);
    // As web/dtr/app.ts does: the form, the payer's pre-filled response merged in, then rendered.
    const outcome = await page.evaluate(`(async () => {
      ${LFORMS_SANDBOX_CONTEXT}
      try {
        const form = util.mergeFHIRDataIntoLForms('QuestionnaireResponse', ${JSON.stringify(qr)}, util.convertFHIRQuestionnaireToLForms(${JSON.stringify(withContainedValueSets(q, valueSets))}, 'R4'), 'R4');
        await util.addFormToPage(form, 'form', { prepopulate: false });
        return 'rendered';
      } catch (e) {
        return 'failed: ' + (Array.isArray(e) ? e.map(String).join(' | ') : String(e));
      }
    })()`);
    expect(outcome).toBe('rendered');
    await page.waitForSelector('lhc-item', { timeout: 15_000 });
    const text = (await page.textContent('#form')) ?? '';
    await page.close();
    return text;
  }

  it("asks the adult-only question of a patient who is 18 on the order's start, not on today's date", async () => {
    expect(await formText(prefilled(daysAfter(TODAY, 30)))).toContain(POMP);
    expect(await formText(prefilled(undefined))).not.toContain(POMP);
  });
});
