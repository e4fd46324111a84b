import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Questionnaire, ValueSet } from '@medplum/fhirtypes';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LFORMS_SANDBOX_CONTEXT } from './browser-session.js';
import { withContainedValueSets } from '../../web/dtr/lforms.js';
import { repoRoot } from '../helpers/stories.js';
import { startDemoServer } from './start-demo-server.js';
import type { DemoServer } from './start-demo-server.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const files = readdirSync(join(repoRoot, 'questionnaires')).filter((f) => f.endsWith('.json'));
const valueSets = readdirSync(join(repoRoot, 'cds-services', 'valuesets'))
  .map((f) => JSON.parse(readFileSync(join(repoRoot, 'cds-services', 'valuesets', f), 'utf8')) as ValueSet)
  .filter((r) => r.resourceType === 'ValueSet');

/** Every generated DTR Questionnaire renders in LHC-Forms (the DTR app's renderer) in Chromium without errors. */
describe.skipIf(!hasChromium)(`every Questionnaire renders in LHC-Forms${hasChromium ? '' : ` (skipped: ${CHROMIUM} absent)`}`, () => {
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

  it.each(files)('%s', async (file) => {
    const q = JSON.parse(readFileSync(join(repoRoot, 'questionnaires', file), 'utf8')) as Questionnaire;
    const form = withContainedValueSets(q, valueSets);
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(`${server.url}/healthz`);
    await page.setContent(`<!doctype html><html><head>
      <link rel="stylesheet" href="${server.url}/dtr/vendor/lforms-40.1.3/styles.css">
      <script defer src="${server.url}/dtr/vendor/lforms-40.1.3/assets/lib/zone.min.js"></script>
      <script defer src="${server.url}/dtr/vendor/lforms-40.1.3/lhc-forms.js"></script>
      <script defer src="${server.url}/dtr/vendor/lforms-40.1.3/lformsFHIR.min.js"></script>
      </head><body><div id="form"></div></body></html>`);
    await page.waitForFunction(() => !!(window as unknown as { LForms?: { Util?: unknown } }).LForms?.Util);
    // Plain JavaScript (not a transpiled function) so nothing the test compiler adds has to exist in the page. The FHIR
    // context is the sandbox EHR, as the DTR app gives it after a SMART launch, so launch contexts and x-fhir-query
    // variables resolve.
    const outcome = await page.evaluate(`(async () => {
      const form = ${JSON.stringify(form)};
      ${LFORMS_SANDBOX_CONTEXT}
      try {
        await util.addFormToPage(util.convertFHIRQuestionnaireToLForms(form, 'R4'), 'form', { prepopulate: true });
        return 'rendered';
      } catch (e) {
        return 'failed: ' + (Array.isArray(e) ? e.map(String).join(' | ') : String(e));
      }
    })()`);
    expect(outcome).toBe('rendered');
    // Every question of the Questionnaire is on the page.
    const questions = (function count(items: Questionnaire['item']): number {
      return (items ?? []).reduce((n, i) => n + (i.type === 'group' || i.type === 'display' ? 0 : 1) + count(i.item), 0);
    })(q.item);
    await page.waitForSelector('lhc-item', { timeout: 15_000 });
    const rendered = await page.locator('lhc-item-question, lhc-item .lhc-de-label').count();
    expect(rendered).toBeGreaterThan(0);
    expect(questions).toBeGreaterThan(0);
    // The first visible item is on the page; the hidden order-date item (the payer's, not a question) is not.
    const hidden = (i: NonNullable<Questionnaire['item']>[number]) => (i.extension ?? []).some((e) => e.url.endsWith('/questionnaire-hidden') && e.valueBoolean);
    const text = await page.textContent('#form');
    expect(text).toContain(q.item!.find((i) => !hidden(i))!.text ?? '');
    for (const i of q.item!.filter(hidden)) expect(text).not.toContain(i.text ?? '');
    expect(problems).toEqual([]);
    await page.close();
  });
});
