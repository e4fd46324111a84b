/**
 * In LHC-Forms (the DTR app's renderer), the order start the payer pre-fills in the hidden order-date item decides the
 * age bands the form's enableWhenExpressions read (design.md §7 "One date per order"): a patient who turns 18 after
 * today and before the order starts is asked Centene's adult-only maintenance-with-POMP question (CP.PHAR.312
 * I.A.4.c.iii), as CRD judges that order; the same answers judged on today (no order start) hide it.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Questionnaire, QuestionnaireResponse, ValueSet } from '@medplum/fhirtypes';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LFORMS_SANDBOX_CONTEXT } from './browser-session.js';
import { withContainedValueSets } from '../../web/dtr/lforms.js';
import { ORDER_DATE_LINK_ID } from '../../src/policies/questionnaire-names.js';
import { daysBefore, EVIDENCE, TODAY } from '../dtr/helpers.js';
import { repoRoot } from '../helpers/stories.js';
import { startDemoServer } from './start-demo-server.js';
import type { DemoServer } from './start-demo-server.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const valueSets = readdirSync(join(repoRoot, 'cds-services', 'valuesets'))
  .map((f) => JSON.parse(readFileSync(join(repoRoot, 'cds-services', 'valuesets', f), 'utf8')) as ValueSet)
  .filter((r) => r.resourceType === 'ValueSet');
const q = JSON.parse(readFileSync(join(repoRoot, 'questionnaires', 'centene-blinatumomab.json'), 'utf8')) as Questionnaire;
const POMP = 'Is Blincyto given as maintenance alternating with POMP';
const daysAfter = (date: string, days: number) => daysBefore(date, -days);
const eighteenthBirthday = daysAfter(TODAY, 10);
const birthDate = `${String(Number(eighteenthBirthday.slice(0, 4)) - 18)}${eighteenthBirthday.slice(4)}`;

/** The payer's pre-filled response: the order start (or none), the birth date, a Ph-negative maintenance order. */
function prefilled(orderStart: string | undefined): QuestionnaireResponse {
  return {
    resourceType: 'QuestionnaireResponse',
    status: 'in-progress',
    questionnaire: `${q.url}|${q.version}`,
    item: [
      ...(orderStart ? [{ linkId: ORDER_DATE_LINK_ID, answer: [{ valueDate: orderStart }] }] : []),
      { linkId: 'group-requirements', item: [{ linkId: 'birth-date', answer: [{ valueDate: birthDate }] }] },
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
  let browser: Browser;
  let server: DemoServer;
  beforeAll(async () => {
    server = await startDemoServer();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  async function formText(qr: QuestionnaireResponse): Promise<string> {
    const page = await browser.newPage();
    await page.goto(`${server.url}/healthz`);
    await page.setContent(`<!doctype html><html><head>
      <script defer src="${server.url}/dtr/vendor/lforms-40.1.3/assets/lib/zone.min.js"></script>
      <script defer src="${server.url}/dtr/vendor/lforms-40.1.3/lhc-forms.js"></script>
      <script defer src="${server.url}/dtr/vendor/lforms-40.1.3/lformsFHIR.min.js"></script>
      </head><body><div id="form"></div></body></html>`);
    await page.waitForFunction(() => !!(window as unknown as { LForms?: { Util?: unknown } }).LForms?.Util);
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
