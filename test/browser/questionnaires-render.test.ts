import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Questionnaire, ValueSet } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { CHROMIUM, hasChromium, LFORMS_SANDBOX_CONTEXT, openLformsPage, useDemoBrowser } from './browser-session.js';
import { withContainedValueSets } from '../../web/dtr/lforms.js';
import { repoRoot } from '../helpers/stories.js';

const files = readdirSync(join(repoRoot, 'questionnaires')).filter((f) => f.endsWith('.json'));
const valueSets = readdirSync(join(repoRoot, 'cds-services', 'valuesets'))
  .map((f) => JSON.parse(readFileSync(join(repoRoot, 'cds-services', 'valuesets', f), 'utf8')) as ValueSet)
  .filter((r) => r.resourceType === 'ValueSet');

/** Every generated DTR Questionnaire renders in LHC-Forms (the DTR app's renderer) in Chromium without errors. */
describe.skipIf(!hasChromium)(`every Questionnaire renders in LHC-Forms${hasChromium ? '' : ` (skipped: ${CHROMIUM} absent)`}`, () => {
  const demo = useDemoBrowser();

  it.each(files)('%s', async (file) => {
    const q = JSON.parse(readFileSync(join(repoRoot, 'questionnaires', file), 'utf8')) as Questionnaire;
    const form = withContainedValueSets(q, valueSets);
    const problems: string[] = [];
    const page = await openLformsPage(demo.browser, demo.server.url, (p) => {
      p.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
      p.on('pageerror', (e) => problems.push(e.message));
    });
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
