import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
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

const PA = /PA-CENTENE-\d{8}-[A-Z0-9]{8}/;

describe.skipIf(!hasChromium)(
  `demo EHR and DTR app in Chromium${hasChromium ? '' : ` (skipped: ${CHROMIUM} absent)`}`,
  () => {
    let browser: Browser;
    /** Each test gets a fresh service (a fresh sandbox EHR) and a fresh browser context. */
    let server: DemoServer | undefined;
    let context: BrowserContext | undefined;
    let page: Page;
    let problems: string[] = [];
    let outside: string[] = [];

    const open = async () => {
      server = await startDemoServer();
      const url = server.url;
      context = await browser.newContext({ viewport: { width: 1440, height: 960 } });
      page = await context.newPage();
      page.setDefaultTimeout(15_000);
      problems = [];
      outside = [];
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console error on ${page.url()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`uncaught exception on ${page.url()}: ${e.message}`));
      page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
      page.on('request', (r) => {
        if (!r.url().startsWith(url) && !r.url().startsWith('data:')) outside.push(r.url());
      });
      return url;
    };
    let step = 0;
    const shot = async (name: string) => {
      const path = join(ARTIFACTS, `${String(++step).padStart(2, '0')}-${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    };
    /** Opens the story's chart and signs its draft order as it is; the page asks for documentation. */
    const signAndExpectDocumentation = async (url: string) => {
      await page.goto(`${url}/?story=centene-missing-mrd`);
      await page.getByRole('heading', { name: /Kwame/ }).waitFor();
      await page.getByRole('button', { name: 'Sign order' }).click();
      await page.getByRole('heading', { name: 'What the payer says' }).waitFor();
      const result = await textOf(page, '#result');
      expect(result).toContain('Prior authorization needed');
      expect(result).toContain('documentation required');
    };

    beforeAll(async () => {
      rmSync(ARTIFACTS, { recursive: true, force: true });
      mkdirSync(ARTIFACTS, { recursive: true });
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
      });
    });

    afterEach(async () => {
      await context?.close();
      await server?.close();
      context = undefined;
      server = undefined;
    });

    afterAll(async () => {
      await browser?.close();
    });

    it('centene-missing-mrd: documentation required at signing, DTR pre-filled from the chart, the MRD result entered, approved with that number on signing again', async () => {
      const url = await open();
      // The demo EHR lists the sandbox patients with their stories.
      await page.goto(`${url}/`);
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
      await shot('dtr-completed');
      await page.getByRole('button', { name: 'Save and send to the payer' }).click();
      await page.getByRole('heading', { name: 'Payer determination' }).waitFor();
      const determination = await textOf(page, '#result');
      expect(determination).toMatch(new RegExp(`Prior authorization approved: ${PA.source}`));
      expect(determination).toMatch(
        /Saved in the EHR as QuestionnaireResponse\/\S+: \d+ answers as pre-filled, 0 changed, 1 entered by hand/,
      );
      const issued = PA.exec(determination)![0];
      await shot('dtr-determination');

      // Back in the EHR the documentation and the payer's answer to it are on file.
      await page.getByRole('link', { name: 'Return to the EHR' }).first().click();
      await page.getByRole('heading', { name: 'Documentation on file' }).waitFor();
      const onFile = await textOf(page, '#documentation');
      expect(onFile).toContain('Prior authorization questionnaire completed');
      expect(onFile).toContain(`Payer's answer to the documentation: Prior authorization approved: ${issued}`);
      expect(await page.getByLabel('Dose').inputValue()).toBe('28');
      // The order's answer is now the documentation's (the DTR app stored it on the order): one answer, said as such,
      // no longer "documentation required" with its "Complete documentation" button.
      expect(await textOf(page, '[data-testid=answer-on-file]')).toMatch(/^As the payer answered the documentation \(DTR\), \d{1,2} [A-Z][a-z]+ \d{4}\.$/);
      expect(await textOf(page, '[data-testid=coverage-headline]')).toMatch(new RegExp(`^Prior authorization approved: ${issued}`));
      expect(await page.getByRole('button', { name: 'Complete documentation', exact: true }).count()).toBe(0);
      await shot('back-in-ehr');

      // Signing again: approved, with the authorization number the documentation earned (not one this signing issued).
      await page.getByRole('button', { name: 'Sign again' }).click();
      await page.getByTestId('answer-on-file').waitFor({ state: 'detached' });
      const again = await textOf(page, '#result');
      expect(await textOf(page, '[data-testid=coverage-headline]')).toMatch(/^Prior authorization approved: PA-CENTENE-\d{8}-[A-Z0-9]{8} valid until \d{1,2} [A-Z][a-z]+ \d{4}$/);
      expect(again).not.toContain('Approved at signing');
      expect(again).toContain(issued);
      expect(again).not.toContain('documentation required');
      const final = await shot('signed-again-approved');
      // The README's screenshot: written when missing or when asked (UPDATE_SCREENSHOTS=1), so a test run leaves
      // the tracked file alone (its authorization numbers and times differ on every run).
      const readme = join(repoRoot, 'docs', 'screenshots', 'demo.png');
      if (!existsSync(readme) || process.env.UPDATE_SCREENSHOTS === '1') {
        mkdirSync(dirname(readme), { recursive: true });
        copyFileSync(final, readme);
      }

      expect(outside, 'requests to other hosts').toEqual([]);
      expect(problems, 'browser console errors and failed requests').toEqual([]);
    }, 120_000);

    it('adaptive form asks only what signing left open (the MRD); back in the EHR the authorization is shown and no request is offered', async () => {
      const url = await open();
      await signAndExpectDocumentation(url);
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
        new RegExp(`Prior authorization approved: ${PA.source}.*1 entered by hand`),
      );
      await shot('adaptive-determination');

      const issued = PA.exec(await textOf(page, '#result'))![0];

      // Back in the EHR the order is authorized: its number and period, and no "Submit prior authorization" (a request
      // would only be answered with this approval).
      await page.getByRole('link', { name: 'Return to the EHR' }).first().click();
      await page.getByRole('heading', { name: 'Documentation on file' }).waitFor();
      await page.getByTestId('order-authorization').waitFor();
      // The adaptive response claims the DTR version of the signing (2.2 after a CRD 2.2 signing), so the determination
      // comes in CRD 2.2's shape with its period, as after the static form: the number and the period are said.
      expect(await textOf(page, '[data-testid=order-authorization]')).toMatch(
        new RegExp(`^Prior authorization approved: ${issued}, valid from \\d{1,2} [A-Z][a-z]+ \\d{4} to \\d{1,2} [A-Z][a-z]+ \\d{4}\\.$`),
      );
      // The payer's answer to the documentation is on file as after the static form, with the period's end.
      expect(await textOf(page, '#documentation')).toMatch(
        new RegExp(`Payer's answer to the documentation: Prior authorization approved: ${issued} valid until \\d{1,2} [A-Z][a-z]+ \\d{4}`),
      );
      expect(await page.getByRole('button', { name: 'Submit prior authorization' }).count()).toBe(0);
      await shot('ehr-authorized');
      expect(outside).toEqual([]);
      expect(problems).toEqual([]);
    }, 120_000);

    it('a PAS request without the documentation is pended for it, in plain words', async () => {
      const url = await open();
      await signAndExpectDocumentation(url);
      await page.locator('#actions').getByRole('button', { name: 'Submit prior authorization' }).click();
      await page.getByTestId('pas-decision').waitFor();
      expect(await textOf(page, '#pas')).toMatch(/Pended for review|Prior authorization denied/);
      await shot('pas-without-documentation');
      expect(problems).toEqual([]);
    }, 60_000);
  },
);
