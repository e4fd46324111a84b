import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, startDemoServer } from './start-demo-server.js';
import type { DemoServer } from './start-demo-server.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const ARTIFACTS = join(repoRoot, 'test-artifacts', 'demo-flow');
if (!hasChromium)
  process.stderr.write(
    `\n[test/browser] SKIPPED: ${CHROMIUM} is absent. Install it with: apt-get update && apt-get install -y chromium\n\n`,
  );

/** Visible text of a region, whitespace-collapsed, as a person reads it. */
async function textOf(page: Page, selector: string): Promise<string> {
  return (await page.locator(selector).innerText()).replace(/\s+/g, ' ');
}

/** The LHC-Forms row of one question (its linkId), to reach the inputs a clinician sees next to the question. */
const question = (page: Page, linkId: string) => page.locator(`lhc-item[id^="item-${linkId}/"]`);

describe.skipIf(!hasChromium)(
  `demo EHR and DTR app in Chromium${hasChromium ? '' : ` (skipped: ${CHROMIUM} absent)`}`,
  () => {
    let server: DemoServer;
    let browser: Browser;
    let page: Page;
    const problems: string[] = [];
    const outside: string[] = [];
    let step = 0;
    /** What the page says after signing again, once DTR is done (checked by the pinned known-gap test below). */
    let resigned = '';
    const shot = async (name: string) => {
      const path = join(ARTIFACTS, `${String(++step).padStart(2, '0')}-${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    };

    beforeAll(async () => {
      rmSync(ARTIFACTS, { recursive: true, force: true });
      mkdirSync(ARTIFACTS, { recursive: true });
      server = await startDemoServer();
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
      });
      page = await browser.newPage({ viewport: { width: 1440, height: 960 } });
      page.setDefaultTimeout(15_000);
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console error on ${page.url()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`uncaught exception on ${page.url()}: ${e.message}`));
      page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
      page.on('request', (r) => {
        if (!r.url().startsWith(server.url) && !r.url().startsWith('data:')) outside.push(r.url());
      });
    });

    afterAll(async () => {
      await browser?.close();
      await server?.close();
    });

    it('centene-missing-mrd: signing asks for documentation, DTR pre-fills from the chart, the MRD answer is approved by the payer and is on file back in the EHR', async () => {
      // The demo EHR lists the sandbox patients with their stories.
      await page.goto(`${server.url}/`);
      await page.getByRole('heading', { name: 'Patients' }).waitFor();
      expect(await textOf(page, '#patient-list')).toContain('no MRD result in the chart');
      await shot('patients');

      // Open the chart and sign the draft Blincyto order as it is.
      await page.getByRole('link', { name: /Kwame/ }).click();
      await page.getByRole('heading', { name: /Kwame/ }).waitFor();
      expect(await page.getByLabel('Dose').inputValue()).toBe('28');
      await page.getByRole('button', { name: 'Sign order' }).click();
      await page.getByRole('heading', { name: 'What the payer says' }).waitFor();
      const first = await textOf(page, '#result');
      expect(first).toContain('Prior authorization needed');
      expect(first).toContain('documentation required');
      expect(first).toContain('Minimal residual disease');
      expect(await textOf(page, '#raw')).toContain('CDS Hooks response');
      await shot('signed-documentation-required');

      // Launch DTR: the SMART EHR launch through the sandbox authorization server lands on the form.
      await page.getByRole('button', { name: 'Complete documentation', exact: true }).click();
      await page.waitForURL(/\/dtr\/index\.html/);
      await page.getByText(/answers? pre-filled from the chart/).waitFor({ timeout: 30_000 });
      expect(await textOf(page, '#banner')).toContain('Kwame');
      // What the chart already shows arrives filled in: the diagnosis, the prescriber, disease status, the dose.
      expect(await question(page, 'b-all-diagnosis').getByRole('radio', { name: 'Yes', exact: true }).isChecked()).toBe(
        true,
      );
      expect(
        await question(page, 'prescriber-specialist').getByRole('radio', { name: 'Yes', exact: true }).isChecked(),
      ).toBe(true);
      expect(await page.getByRole('combobox', { name: /Current disease status/ }).inputValue()).toBe(
        'First complete remission',
      );
      expect(await page.getByRole('textbox', { name: /Highest prescribed daily dose/ }).inputValue()).toBe('28');
      const mrd = page.getByRole('textbox', { name: /Minimal residual disease/ });
      expect(await mrd.inputValue()).toBe('');
      await shot('dtr-prefilled');

      // The clinician enters the MRD result and answers what is still blank as the chart's story says.
      await mrd.fill('0.5');
      for (const linkId of ['kmt2a-rearranged', 'responding-to-therapy']) {
        await question(page, linkId).getByText('No', { exact: true }).click();
        expect(await question(page, linkId).getByRole('radio', { name: 'No', exact: true }).isChecked()).toBe(true);
      }
      await shot('dtr-completed');
      await page.getByRole('button', { name: 'Save and send to the payer' }).click();
      await page.getByRole('heading', { name: 'Payer determination' }).waitFor();
      const determination = await textOf(page, '#result');
      expect(determination).toMatch(/Prior authorization approved: PA-CENTENE-\d{8}-[A-Z0-9]{8}/);
      expect(determination).toMatch(
        /Saved in the EHR as QuestionnaireResponse\/\S+: \d+ answers as pre-filled, 0 changed, 3 entered by hand/,
      );
      await shot('dtr-determination');

      // Back in the EHR the documentation and the payer's answer to it are on file.
      await page.getByRole('link', { name: 'Return to the EHR' }).first().click();
      await page.getByRole('heading', { name: 'Documentation on file' }).waitFor();
      const onFile = await textOf(page, '#documentation');
      expect(onFile).toMatch(/Prior authorization questionnaire completed/);
      expect(onFile).toMatch(
        /Payer's answer to the documentation: Prior authorization approved: PA-CENTENE-\d{8}-[A-Z0-9]{8}/,
      );
      expect(await page.getByLabel('Dose').inputValue()).toBe('28');
      await shot('back-in-ehr');

      // Signing again sends the order to the payer once more; the page shows its answer.
      await page.getByRole('button', { name: 'Sign again' }).click();
      await page.getByText('Order signed; the payer answered.').waitFor();
      resigned = await textOf(page, '#result');
      expect(resigned).toMatch(/Approved at signing: PA-|Prior authorization needed/);
      const final = await shot('signed-again');
      // The README's screenshot: written when missing or when asked (UPDATE_SCREENSHOTS=1), so a test run leaves the
      // tracked file alone (its authorization numbers and times differ on every run).
      const readme = join(repoRoot, 'docs', 'screenshots', 'demo.png');
      if (!existsSync(readme) || process.env.UPDATE_SCREENSHOTS === '1') {
        mkdirSync(dirname(readme), { recursive: true });
        copyFileSync(final, readme);
      }

      expect(outside, 'requests to other hosts').toEqual([]);
      expect(problems, 'browser console errors and failed requests').toEqual([]);
    }, 120_000);

    /*
     * Known gap, pinned: order-sign evaluates the EHR record only, and the MRD result lives in the DTR response, so
     * signing again still asks for documentation. This flips to passing (and `.fails` must go) once CRD honours the
     * DTR determination recorded on the order (its coverage-assertion-id names a stored assertion with an
     * authorization for this patient, order and policy).
     */
    it.fails('signing again after the DTR approval is approved at signing with the authorization number', () => {
      expect(resigned).toMatch(
        /Approved at signing: PA-CENTENE-\d{8}-[A-Z0-9]{8} valid until \d{1,2} [A-Z][a-z]+ \d{4}/,
      );
      expect(resigned).not.toContain('documentation required');
    });

    it('submits a PAS request with the completed documentation and shows the decision', async () => {
      await page.goto(`${server.url}/?story=centene-missing-mrd`);
      await page.getByRole('heading', { name: 'Documentation on file' }).waitFor();
      // A fresh signing of a changed order (MRD on file, a 2-cycle request) needs a prior authorization request.
      await page.getByLabel('Cycles requested').fill('2');
      await page.getByRole('button', { name: /Sign/ }).click();
      await page.getByRole('heading', { name: 'What the payer says' }).waitFor();
      const submit = page.getByRole('button', { name: 'Submit prior authorization' });
      if ((await submit.count()) === 0) {
        // Approved at signing already: nothing to submit, which the page says plainly.
        expect(await textOf(page, '#result')).toMatch(/Approved at signing: PA-/);
        return;
      }
      await submit.click();
      await page.getByTestId('pas-decision').waitFor();
      expect(await textOf(page, '#pas')).toMatch(
        /Prior authorization approved: PA-|Pended for review|Prior authorization denied/,
      );
      await shot('pas-decision');
      expect(problems).toEqual([]);
    }, 60_000);

    it('adaptive form: $next-question asks only what signing left open (the MRD) and ends with the determination', async () => {
      await page.goto(`${server.url}/?story=centene-missing-mrd`);
      await page.getByRole('button', { name: /Sign/ }).click();
      await page.getByRole('heading', { name: 'What the payer says' }).waitFor();
      await page.getByRole('button', { name: 'Complete documentation (adaptive form)' }).click();
      await page.waitForURL(/\/dtr\/index\.html/);
      await page.getByText(/the payer asks only what it still needs/).waitFor({ timeout: 30_000 });
      const form = await textOf(page, '#form');
      expect(form).toContain('Minimal residual disease (MRD) level');
      expect(form).not.toContain('Does the patient have B-cell precursor');
      await page.getByRole('textbox', { name: /Minimal residual disease/ }).fill('0.5');
      await shot('adaptive-question');
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('heading', { name: 'Payer determination' }).waitFor();
      expect(await textOf(page, '#result')).toMatch(
        /Prior authorization approved: PA-CENTENE-\d{8}-[A-Z0-9]{8}.*1 entered by hand/,
      );
      await shot('adaptive-determination');
      expect(problems).toEqual([]);
    }, 60_000);
  },
);
