import { copyFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, Claim, Coverage, MedicationRequest } from '@medplum/fhirtypes';
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, launchChromium, lowContrastText, openSession, overflowsSideways, pendKwameOnDemo, SCREENSHOTS, textOf } from './browser-session.js';
import type { BrowserSession } from './browser-session.js';
import { repoRoot } from './start-demo-server.js';
import { storyBundle } from '../pas/pas-fixtures.js';

const ARTIFACTS = join(repoRoot, 'test-artifacts', 'review-workbench');

/** The clinician signs Kwame's Blincyto order and sends the PAS request without documentation: it is pended. */
async function pendKwame(page: Page, url: string): Promise<void> {
  await pendKwameOnDemo(page, url);
  expect(await textOf(page, '#pas')).toContain('Pended for review');
}

/** The reviewer workbench, signed in as the demo reviewer (the queue is shown). */
async function signIn(page: Page, url: string): Promise<void> {
  await page.goto(`${url}/review`);
  await page.getByRole('button', { name: /Sign in as .*demo reviewer/ }).click();
}

/** Signed in, Kwame's pended Blincyto request opened from the queue. */
async function openKwame(page: Page, url: string): Promise<void> {
  await signIn(page, url);
  await page.getByRole('link', { name: /Kwame/ }).click();
  await page.getByRole('heading', { name: /Kwame.*Blincyto/ }).waitFor();
}

/**
 * Files PAS requests straight to the payer API (as an EHR back end would), one per entry: each story's order under a
 * fresh order id, so every one is its own pended request. Returns how many the payer pended.
 */
async function fileRequests(url: string, stories: string[]): Promise<number> {
  const token = (await (await fetch(`${url}/sandbox/payer-token`, { method: 'POST' })).json()) as { access_token: string };
  let pended = 0;
  for (const [i, story] of stories.entries()) {
    const res = await fetch(`${url}/fhir/Claim/$submit`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${token.access_token}` },
      body: JSON.stringify(storyBundle(story, { orderId: `review-order-${i}` })),
    });
    expect(res.status).toBe(200);
    if (JSON.stringify(await res.json()).includes('"A4"')) pended++;
  }
  return pended;
}

const PAS = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition';
/** A reason's web address: one unbroken word wider than a tablet's column. */
const LONG_URL = `https://guidelines.example.org/view?doc=${'9f8e7d6c5b4a3f2e1d0c'.repeat(12)}`;
const EHR = 'https://ehr.example.org/fhir';

/**
 * Kwame's request for two orders, both pended: order A at the labelled 28 mcg/day (pended for the MRD result) and
 * order B at 56 mcg/day (over Centene's limit). Then the submitter cancels item 1 with a Claim Update (PAS
 * `infoCancelled`): the request stays pended for item 2 alone.
 */
async function pendTwoThenCancelFirst(url: string): Promise<{ cancelAll(): Promise<void> }> {
  const token = (await (await fetch(`${url}/sandbox/payer-token`, { method: 'POST' })).json()) as { access_token: string };
  const submit = async (bundle: Bundle) => {
    const res = await fetch(`${url}/fhir/Claim/$submit`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${token.access_token}` },
      body: JSON.stringify(bundle),
    });
    expect(res.status).toBe(200);
    return (await res.json()) as Bundle;
  };
  const initial = storyBundle('centene-missing-mrd', { orderId: 'two-items-a' });
  const claim = initial.entry![0].resource as Claim;
  const a = initial.entry!.find((e) => e.resource?.id === 'two-items-a')!.resource as MedicationRequest;
  const b: MedicationRequest = structuredClone({ ...a, id: 'two-items-b' });
  b.dosageInstruction![0].text = '56 mcg/day continuous IV infusion, days 1-28 of a 42-day cycle';
  b.dosageInstruction![0].doseAndRate![0].doseQuantity = { value: 56, unit: 'mcg/d', system: 'http://unitsofmeasure.org', code: 'ug/d' };
  initial.entry!.push({ fullUrl: `${EHR}/MedicationRequest/two-items-b`, resource: b });
  claim.item!.push({
    ...structuredClone(claim.item![0]),
    sequence: 2,
    extension: [{ url: `${PAS}/extension-requestedService`, valueReference: { reference: 'MedicationRequest/two-items-b' } }],
  });
  const first = await submit(initial);
  expect(JSON.stringify(first.entry![0].resource)).toContain('"A4"');
  const update: Claim = {
    ...structuredClone(claim),
    id: 'two-items-update',
    meta: { profile: [`${PAS}/profile-claim-update`] },
    identifier: [{ system: 'urn:trnorg:1122334455', value: 'TRN-two-items-update' }],
    related: [{ claim: { reference: initial.entry![0].fullUrl }, relationship: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship', code: 'prior' }] } }],
    item: [{ ...structuredClone(claim.item![0]), modifierExtension: [{ url: `${PAS}/modifierextension-infoCancelled`, valueBoolean: true }] }, structuredClone(claim.item![1])],
  };
  const updated = await submit({
    resourceType: 'Bundle',
    identifier: { system: 'urn:ehr.example.org:pas-transaction', value: 'two-items-update' },
    type: 'collection',
    entry: [{ fullUrl: `${EHR}/Claim/two-items-update`, resource: update }, ...initial.entry!],
  });
  const codes = JSON.stringify(updated.entry![0].resource).match(/"code":"(A4|C)"/g);
  expect(codes).toEqual(['"code":"C"', '"code":"A4"']);
  return {
    // The submitter then cancels the whole request (certificationType 3 on the Claim, X12 1322 Cancel).
    cancelAll: async () => {
      const all: Claim = {
        ...structuredClone(update),
        id: 'two-items-cancel',
        identifier: [{ system: 'urn:trnorg:1122334455', value: 'TRN-two-items-cancel' }],
        related: [{ claim: { reference: `${EHR}/Claim/two-items-update` }, relationship: update.related![0].relationship }],
        extension: [{ url: `${PAS}/extension-certificationType`, valueCodeableConcept: { coding: [{ system: 'https://codesystem.x12.org/005010/1322', code: '3', display: 'Cancel' }] } }],
        item: [],
      };
      await submit({
        resourceType: 'Bundle',
        identifier: { system: 'urn:ehr.example.org:pas-transaction', value: 'two-items-cancel' },
        type: 'collection',
        entry: [{ fullUrl: `${EHR}/Claim/two-items-cancel`, resource: all }, { fullUrl: `${EHR}/Claim/two-items-update`, resource: update }, ...initial.entry!.slice(1)],
      });
    },
  };
}

/** A 1×1 PNG (a scanned page stands in for it) and a one-page PDF, as an EHR sends them inline. */
const PNG_1PX = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';
const PDF_ONE_PAGE = Buffer.from(
  '%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n',
).toString('base64');

/**
 * Kwame's request filed with four documents inline in Claim.supportingInfo (PAS "additionalInformation"): a flow
 * cytometry note as text (with characters that would be markup in HTML), a scanned page, the report as PDF, and an
 * HTML page, which must never be rendered in the reviewer's browser.
 */
async function fileWithAttachments(url: string): Promise<void> {
  const token = (await (await fetch(`${url}/sandbox/payer-token`, { method: 'POST' })).json()) as { access_token: string };
  const bundle = storyBundle('centene-missing-mrd', { orderId: 'with-attachments' });
  const claim = bundle.entry![0].resource as Claim;
  const info = (sequence: number, attachment: Record<string, string>) => ({
    sequence,
    category: { coding: [{ system: 'http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes', code: 'additionalInformation' }] },
    valueAttachment: attachment,
  });
  claim.supportingInfo = [
    info(1, {
      title: 'Flow cytometry note',
      contentType: 'text/plain; charset=utf-8',
      data: Buffer.from('MRD by flow cytometry: 0.4 % (<b>positive</b>), 2026-11-02.\nCD19 expressed on 98 % of blasts.').toString('base64'),
    }),
    info(2, { title: 'Scanned requisition', contentType: 'image/png', data: PNG_1PX }),
    info(3, { title: 'Flow cytometry report', contentType: 'application/pdf', data: PDF_ONE_PAGE }),
    info(4, { title: 'Portal page', contentType: 'text/html', data: Buffer.from('<script>document.title = "ran"</script><p>hi</p>').toString('base64') }),
  ];
  const res = await fetch(`${url}/fhir/Claim/$submit`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${token.access_token}` },
    body: JSON.stringify(bundle),
  });
  expect(res.status).toBe(200);
  expect(JSON.stringify(await res.json())).toContain('"A4"');
}

/** The id of the element that has keyboard focus ('' for the page itself). */
const focused = (page: Page) => page.evaluate(() => document.activeElement?.id ?? '');

/** The other reviewer's API client: the demo reviewer's token, as a second reviewer's browser would hold it. */
async function reviewerApi(url: string) {
  const { token } = (await (await fetch(`${url}/review/demo-sign-in`, { method: 'POST' })).json()) as { token: string };
  return (path: string, body: unknown) =>
    fetch(`${url}/review${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
}

describe.skipIf(!hasChromium)('reviewer workbench at /review in Chromium', () => {
  let browser: Browser;
  let s: BrowserSession | undefined;

  beforeAll(async () => {
    rmSync(ARTIFACTS, { recursive: true, force: true });
    browser = await launchChromium();
  });
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('the demo reviewer signs in, finds the pended request by patient and drug, reads the trace and the chart, and approves it for a period', async () => {
    s = await openSession(browser, ARTIFACTS, { width: 1366, height: 900 });
    const { page, url } = s;
    await pendKwame(page, url);

    await signIn(page, url);
    await page.getByRole('heading', { name: 'Pended requests' }).waitFor();
    await page.getByTestId('queue').waitFor();
    const queue = await textOf(page, '[data-testid=queue]');
    // Patient, member id, drug and dose, payer, policy, what is missing, age in queue.
    expect(queue).toContain('Kwame');
    expect(queue).toContain('U5521039476');
    expect(queue).toMatch(/Blincyto.*28 mcg/);
    // The payer by its file's label, as the cards and the demo EHR name it (not the request Organization's name, not
    // PriorPath's key), as on the request page.
    expect(queue).toContain('Centene (Ambetter, Medicaid and commercial plans)');
    expect(queue).not.toContain('Centene Corporation');
    expect(queue).toMatch(/Minimal residual disease/i);
    expect(queue).toMatch(/\d+ min/);
    await s.shot('queue');

    await page.getByRole('link', { name: /Kwame/ }).click();
    await page.getByRole('heading', { name: /Kwame.*Blincyto/ }).waitFor();
    const summary = await textOf(page, '[data-testid=request-summary]');
    expect(summary).toContain('U5521039476');
    expect(summary).toContain('Pended for review');
    // The policy trace: every criterion with its result, its citation and the facts behind it.
    const rows = page.getByTestId('trace').first().locator('tbody tr');
    expect(await rows.count()).toBeGreaterThan(3);
    // Covered uses that are plainly not met fold under one line, one click from view.
    await page.getByText(/other covered uses?, not met/).click();
    const traceText = await textOf(page, 'section[aria-label="Policy trace"]');
    expect(traceText).toMatch(/\bMet\b/);
    expect(traceText).toMatch(/Not met/);
    expect(traceText).toMatch(/Not met/);
    expect(traceText).toMatch(/Unknown/);
    expect(traceText).toMatch(/CP\.PHAR/);
    expect(traceText).toMatch(/\((chart|answer|no data)\)/);
    // A limit reads what holds: the relapsed/refractory course limit does not concern Kwame (in remission, not
    // relapsed), so it reads "Not applicable", never "Met"; no limit reads "Met" at all.
    const resultOf = async (text: RegExp) => (await page.getByTestId('trace').locator('tbody tr').filter({ hasText: text }).locator('td').first().innerText()).trim();
    expect(await resultOf(/Relapsed or refractory B-ALL: a treatment course/)).toBe('Not applicable');
    expect(await resultOf(/Dose does not exceed 28 mcg per day/)).toBe('Within the limit');
    // The chart facts the request carries, each with its date.
    expect(await lowContrastText(page)).toEqual([]);
    const facts = await textOf(page, '[data-testid=facts]');
    expect(facts).toMatch(/Condition/);
    expect(facts).toMatch(/\d{1,2} [A-Z][a-z]+ \d{4}/);
    await s.shot('request');
    await page.getByText(/other covered uses?, not met/).click();
    await page.evaluate(() => window.scrollTo(0, 0));
    const workbench = await s.shot('workbench', true);
    if (!existsSync(join(SCREENSHOTS, 'review-workbench.png')) || process.env.UPDATE_SCREENSHOTS === '1')
      copyFileSync(workbench, join(SCREENSHOTS, 'review-workbench.png'));

    // Recording without a decision or a reason is refused with a clear message.
    await page.getByRole('button', { name: 'Record the decision' }).click();
    expect(await textOf(page, '#decide-error')).toContain('choose Approve or Deny');
    // The fields at fault say so to assistive technology, with the message as their description.
    for (const field of [page.getByRole('radio', { name: 'Approve' }), page.getByLabel(/Reason/)]) {
      expect(await field.getAttribute('aria-invalid')).toBe('true');
      expect(await field.getAttribute('aria-describedby')).toBe('decide-error');
    }
    expect(await page.getByLabel('Approved until').getAttribute('aria-invalid')).toBeNull();
    expect(await focused(page)).toBe('decide-approve');
    await page.getByRole('radio', { name: 'Approve' }).check();
    await page.getByLabel('Approved until').fill('');
    await page.getByRole('button', { name: 'Record the decision' }).click();
    expect(await textOf(page, '#decide-error')).toBe('Before recording: give a reason; give the approval period.');
    expect(await page.getByRole('radio', { name: 'Approve' }).getAttribute('aria-invalid')).toBeNull();
    expect(await page.getByLabel('Approved until').getAttribute('aria-invalid')).toBe('true');
    expect(await focused(page)).toBe('decision-reason');
    await page.getByLabel('Approved until').fill('2099-01-31');
    await page.getByLabel(/Reason/).fill('MRD below 0.1% on the outside report faxed today.');
    await page.getByRole('button', { name: 'Record the decision' }).click();
    await page.getByTestId('decisions').waitFor();
    expect(await textOf(page, '[data-testid=request-status]')).toMatch(
      /Approved: PA-CENTENE-\d{8}-[A-Z0-9]{8}, .* to 31 January 2099/,
    );
    const history = await textOf(page, '[data-testid=decisions]');
    expect(history).toContain('Dana Reyes, MD (demo reviewer)');
    expect(history).toContain('MRD below 0.1%');
    expect(await page.getByRole('button', { name: 'Record the decision' }).count()).toBe(0);

    // The queue no longer holds it; the session's history does.
    await page.getByRole('link', { name: '← Pended requests' }).click();
    await page.getByText('Nothing is waiting for review.').waitFor();
    expect(await textOf(page, '#history')).toMatch(/Kwame.*Approved \(PA-CENTENE/);
    expect(s.outside).toEqual([]);
    expect(s.problems).toEqual([]);
  }, 90_000);

  it('keyboard only, on a 390 px phone: sign in, open the request and deny it with a reason; a wrong token is refused', async () => {
    s = await openSession(browser, ARTIFACTS, { width: 390, height: 844 });
    const { page, url } = s;
    await pendKwame(page, url);

    await page.goto(`${url}/review`);
    // A token without a name: the empty field is marked and described by the message, and has focus.
    await page.getByLabel('Reviewer access token').fill('not-the-token-at-all');
    await page.getByLabel('Reviewer access token').press('Enter');
    await page.getByText('Enter your name: it goes on each decision.').waitFor();
    const name = page.getByLabel(/Your name/);
    expect(await name.getAttribute('aria-invalid')).toBe('true');
    expect(await name.evaluate((el) => document.getElementById(el.getAttribute('aria-describedby') ?? '')?.textContent)).toBe(
      'Enter your name: it goes on each decision.',
    );
    expect(await focused(page)).toBe('reviewer-name');
    expect(await page.getByLabel('Reviewer access token').getAttribute('aria-invalid')).toBeNull();
    // A wrong token: refused, back to sign-in with the reason.
    await page.getByLabel(/Your name/).fill('Someone Else');
    await page.getByLabel('Reviewer access token').fill('not-the-token-at-all');
    await page.getByLabel('Reviewer access token').press('Enter');
    await page.getByText('Your reviewer token was not accepted').waitFor();

    // Keyboard only from here: Tab to the demo sign-in, Enter.
    await page.locator('body').focus();
    const tabTo = async (accessibleName: RegExp, max = 30) => {
      for (let i = 0; i < max; i++) {
        await page.keyboard.press('Tab');
        const name = await page.evaluate(() => {
          const el = document.activeElement as HTMLElement | null;
          if (!el || el === document.body) return '';
          return `${el?.getAttribute('aria-label') ?? ''} ${el?.textContent ?? ''} ${el?.id ?? ''}`;
        });
        if (accessibleName.test(name)) return;
      }
      throw new Error(`could not Tab to ${accessibleName}`);
    };
    await tabTo(/demo reviewer/);
    await page.keyboard.press('Enter');
    await page.getByTestId('queue').waitFor();
    await tabTo(/Kwame/);
    // Focus is visible: the focused link draws an outline.
    expect(await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle)).not.toBe('none');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: /Kwame/ }).waitFor();
    expect(await overflowsSideways(page)).toBeLessThanOrEqual(0);
    await s.shot('phone-request');

    await tabTo(/decide-approve/, 200);
    expect(await page.getByLabel('Approved until').isVisible()).toBe(true);
    await page.keyboard.press('ArrowRight');
    expect(await page.getByRole('radio', { name: 'Deny' }).isChecked()).toBe(true);
    // A denial has no approval period: choosing Deny takes those fields away.
    expect(await page.getByLabel('Approved until').isVisible()).toBe(false);
    await tabTo(/decision-reason/);
    await page.keyboard.type('Not medically necessary: no MRD result and none planned.');
    await tabTo(/Record the decision/);
    await page.keyboard.press('Enter');
    await page.getByTestId('decisions').waitFor();
    expect(await textOf(page, '[data-testid=request-status]')).toBe('Denied');
    expect(await textOf(page, '[data-testid=decisions]')).toContain('no MRD result and none planned');
    expect(await overflowsSideways(page)).toBeLessThanOrEqual(0);
    await s.shot('phone-denied');
    expect(s.problems.filter((p) => !p.includes('401'))).toEqual([]);
  }, 90_000);

  it('on a 768 px tablet, a denial whose reason carries a long web address: the workbench and then the clinician\'s EHR page (PAS inquiry) show it wrapped, nothing wider than the screen', async () => {
    s = await openSession(browser, ARTIFACTS, { width: 768, height: 1000 });
    const { page, url, context } = s;
    await pendKwame(page, url);
    // The reviewer works in another tab; the clinician's page keeps asking the payer ($inquire) meanwhile.
    const review = await context.newPage();
    await openKwame(review, url);
    await review.getByRole('radio', { name: 'Deny' }).check();
    await review.getByLabel(/Reason/).fill(`No MRD result within 90 days; the cited dosing is not for this use: ${LONG_URL}`);
    await review.getByRole('button', { name: 'Record the decision' }).click();
    await review.getByTestId('decisions').waitFor();
    expect(await textOf(review, '[data-testid=decisions]')).toContain(LONG_URL);
    expect(await overflowsSideways(review)).toBeLessThanOrEqual(0);
    await review.close();
    await page.getByText('Prior authorization denied').waitFor();
    expect(await textOf(page, '#pas')).toContain(`Not certified on clinical review: No MRD result within 90 days; the cited dosing is not for this use: ${LONG_URL}`);
    expect(await overflowsSideways(page)).toBeLessThanOrEqual(0);
    await s.shot('tablet-denial-reaches-ehr');
    expect(s.problems).toEqual([]);
  }, 90_000);

  it('on a 320 px phone the queue and the policy trace stack: the drug, what is missing, each criterion and its evidence are read without scrolling sideways, each under its column name', async () => {
    s = await openSession(browser, ARTIFACTS, { width: 320, height: 640 });
    const { page, url } = s;
    await pendKwame(page, url);
    await signIn(page, url);
    await page.getByTestId('queue').waitFor();
    /** Tables in a box that scrolls sideways (content wider than the box), and visible cells past the screen's edge. */
    const cramped = () =>
      page.evaluate(() => ({
        boxes: [...document.querySelectorAll('.table-wrap')].filter((w) => w.scrollWidth > w.clientWidth + 1).length,
        cells: [...document.querySelectorAll('td, th')].filter((c) => c.checkVisibility() && c.getBoundingClientRect().right > innerWidth + 1)
          .length,
      }));
    expect(await cramped()).toEqual({ boxes: 0, cells: 0 });
    /** What the eye reads in a row: each cell's column name (drawn above it) and its text. */
    const readRow = (row: Locator) =>
      row.evaluate((tr) =>
        [...(tr as HTMLTableRowElement).cells]
          .map((c) => `${getComputedStyle(c, '::before').content.replace(/^"|"$/g, '').replace(/^none$/, '')}: ${c.innerText.replace(/\s+/g, ' ').trim()}`)
          .join(' | '),
      );
    const row = await readRow(page.getByTestId('queue').locator('tbody tr').first());
    expect(row).toContain('Drug and dose: Blincyto');
    expect(row).toContain('What is missing: Minimal residual disease');
    // Still a table to a screen reader: its column headers name the cells.
    expect(await page.getByRole('columnheader', { name: 'Drug and dose' }).count()).toBe(1);
    await s.shot('phone-320-queue');

    await page.getByRole('link', { name: /Kwame/ }).click();
    await page.getByRole('heading', { name: /Kwame.*Blincyto/ }).waitFor();
    expect(await cramped()).toEqual({ boxes: 0, cells: 0 });
    const criterion = await readRow(page.getByTestId('trace').first().locator('tbody tr').first());
    expect(criterion).toMatch(/^Result: Met \| Criterion: Diagnosis of B-cell precursor .* CP\.PHAR\.312 I\.A\.1 \| Evidence: Does the patient have B-cell/);
    expect(await page.getByRole('columnheader', { name: 'Evidence' }).count()).toBeGreaterThan(0);
    expect(await overflowsSideways(page)).toBeLessThanOrEqual(0);
    await s.shot('phone-320-request');
    expect(s.problems).toEqual([]);
  }, 90_000);

  it('a refused token, a lost connection and a decision made meanwhile never lose the place or the typed reason, say what happened in words, and keep focus where the reviewer works', async () => {
    s = await openSession(browser, ARTIFACTS, { width: 1280, height: 900 });
    const { page, url } = s;
    expect(await fileRequests(url, ['centene-missing-mrd'])).toBe(1);
    await signIn(page, url);
    await page.getByTestId('queue').waitFor();
    // After signing in, focus is on the queue's heading, not dropped on the page.
    expect(await focused(page)).toBe('queue-title');
    await page.getByRole('link', { name: /Kwame/ }).click();
    await page.getByRole('heading', { name: /Kwame.*Blincyto/ }).waitFor();
    const requestUrl = page.url();
    // The skip link takes the keyboard to the content and leaves the reviewer on the request.
    await page.getByRole('link', { name: 'Skip to the work list' }).press('Enter');
    expect(await focused(page)).toBe('main');
    expect(page.url()).toBe(requestUrl);
    expect(await page.getByRole('button', { name: 'Record the decision' }).isVisible()).toBe(true);
    const reason = 'MRD 0.4% by flow cytometry on 28 Nov (outside lab report attached to the fax).';
    await page.getByRole('radio', { name: 'Approve' }).check();
    await page.getByLabel('Approved until').fill('2099-01-31');
    await page.getByLabel(/Reason/).fill(reason);

    // The token expired while the reviewer wrote: sign in again, and the request comes back with the form as it was.
    await page.route('**/decision', (r) =>
      r.fulfill({
        status: 401,
        contentType: 'application/fhir+json',
        body: JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'login' }] }),
      }),
    );
    await page.getByRole('button', { name: 'Record the decision' }).click();
    await page.getByText(/Your reviewer token was not accepted/).waitFor();
    // An error that stops the reviewer is an alert, and only an alert (the same rule as the DTR form's).
    expect(await textOf(page, '[role=alert]#alert')).toMatch(/^Your reviewer token was not accepted/);
    expect(await page.getByRole('status').filter({ hasText: 'not accepted' }).count()).toBe(0);
    expect(await focused(page)).toBe('sign-in-title');
    await page.unroute('**/decision');
    await page.getByRole('button', { name: /Sign in as .*demo reviewer/ }).click();
    await page.getByRole('heading', { name: /Kwame.*Blincyto/ }).waitFor();
    expect(page.url()).toBe(requestUrl);
    expect(await page.getByLabel(/Reason/).inputValue()).toBe(reason);
    expect(await page.getByRole('radio', { name: 'Approve' }).isChecked()).toBe(true);
    expect(await page.getByLabel('Approved until').inputValue()).toBe('2099-01-31');

    // The connection drops: the reviewer reads that, not "Failed to fetch"; the form is kept and focus stays on it.
    await page.route('**/decision', (r) => r.abort('internetdisconnected'));
    await page.getByRole('button', { name: 'Record the decision' }).click();
    await page.getByText(/The decision was not recorded/).waitFor();
    const offline = await textOf(page, '#decide-error');
    expect(offline).toMatch(/could not be reached/);
    expect(offline).not.toMatch(/Failed to fetch|POST|\/review\//);
    expect(await page.getByLabel(/Reason/).inputValue()).toBe(reason);
    expect(await focused(page)).toBe('decide-submit');
    await page.unroute('**/decision');

    // Another reviewer decides it meanwhile: a 409, and the page shows the request as it now stands.
    const other = await reviewerApi(url);
    const id = requestUrl.split('/').pop()!;
    expect((await other(`/${id}/decision`, { decision: 'deny', reviewer: 'Sam Okafor, MD', reason: 'No MRD result.' })).status).toBe(200);
    await page.getByRole('button', { name: 'Record the decision' }).click();
    await page.getByText(/Your decision was not recorded/).waitFor();
    expect(await textOf(page, '[role=alert]#alert')).toMatch(/decided before.*as it stands now/);
    expect(await page.getByRole('status').filter({ hasText: 'not recorded' }).count()).toBe(0);
    expect(await textOf(page, '[data-testid=request-status]')).toBe('Denied');
    expect(await textOf(page, '[data-testid=decisions]')).toContain('Sam Okafor, MD');
    expect(await page.getByRole('button', { name: 'Record the decision' }).count()).toBe(0);
    expect(await focused(page)).toBe('decision-history');
    await s.shot('decided-meanwhile');
    expect(s.problems.filter((p) => !/401|409|ERR_INTERNET_DISCONNECTED|Failed to load resource/.test(p))).toEqual([]);
  }, 90_000);

  it('while a decision is being recorded the page says so, and a failed call leaves no stale "recording" behind', async () => {
    s = await openSession(browser, ARTIFACTS, { width: 1280, height: 900 });
    const { page, url } = s;
    expect(await fileRequests(url, ['centene-missing-mrd'])).toBe(1);
    await openKwame(page, url);
    await page.getByRole('radio', { name: 'Deny' }).check();
    await page.getByLabel(/Reason/).fill('No MRD result within 90 days; CP.PHAR.312 I.A.4.a is not shown to be met.');

    // A slow network: the call is held until the test lets it go (here, fails it).
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    await page.route('**/decision', async (r) => {
      await held;
      await r.abort('internetdisconnected');
    });
    await page.getByRole('button', { name: 'Record the decision' }).click();
    await page.getByRole('status').filter({ hasText: 'Recording the decision…' }).waitFor();
    expect(await page.getByRole('button', { name: 'Record the decision' }).isDisabled()).toBe(true);
    release();
    await page.getByText(/The decision was not recorded/).waitFor();
    expect(await textOf(page, '[role=status]#status')).toBe('');
    await page.unroute('**/decision');

    // Recorded: the outcome replaces the progress notice.
    await page.getByRole('button', { name: 'Record the decision' }).click();
    await page.getByRole('status').filter({ hasText: /^Denied\./ }).waitFor();
    expect(await textOf(page, '[role=status]#status')).not.toContain('Recording');
    expect(s.problems.filter((p) => !/ERR_INTERNET_DISCONNECTED|Failed to load resource/.test(p))).toEqual([]);
  }, 90_000);

  it('an item the submitter cancelled is shown apart and marked cancelled, never offered for the decision; the queue names the order still waiting', async () => {
    s = await openSession(browser, ARTIFACTS, { width: 1280, height: 900 });
    const { page, url } = s;
    await pendTwoThenCancelFirst(url);
    await signIn(page, url);
    await page.getByTestId('queue').waitFor();
    // The queue names the order waiting for review (56 mcg/d), not the cancelled one listed first in the request.
    expect(await textOf(page, '[data-testid=queue] tbody')).toMatch(/Blincyto.*, 56 mcg\/d/);
    await page.getByRole('link', { name: /Kwame/ }).click();
    await page.getByRole('heading', { name: 'Decide' }).waitFor();
    // The cancelled order says so where the orders are listed.
    const summary = await textOf(page, '[data-testid=request-summary]');
    expect(summary).toMatch(/Order 1 .*28 mcg\/d.* Cancelled by the submitter on \d{1,2} [A-Z][a-z]+ \d{4}, \d{2}:\d{2} UTC while it waited for review\./);
    expect(summary).not.toMatch(/56 mcg\/d[^O]*Cancelled/);
    // The policy trace is of the item still under review; the cancelled one is listed apart, in one line.
    const trace = page.getByRole('region', { name: 'Policy trace' });
    expect(await trace.getByRole('heading', { level: 3 }).allInnerTexts()).toEqual(['Item 2']);
    expect(await textOf(page, '[data-testid=cancelled-items]')).toMatch(
      /^Item 1 \(Blincyto.*, 28 mcg\/day\): cancelled by the submitter on .* while it waited for review\. It is not part of this review\.$/,
    );
    // The decision form says what it decides: item 2, not the cancelled item 1.
    expect(await textOf(page, '[data-testid=decide-scope]')).toMatch(
      /^This decision is for Item 2 \(Blincyto.*, 56 mcg\/day\)\. Item 1 was cancelled by the submitter and is not decided\.$/,
    );
    await s.shot('cancelled-item');
    await page.getByRole('radio', { name: 'Approve' }).check();
    await page.getByLabel('Approved until').fill('2099-01-31');
    await page.getByLabel(/Reason/).fill('56 mcg/day supported by NCCN ALL guideline for this relapse pattern.');
    await page.getByRole('button', { name: 'Record the decision' }).click();
    await page.getByTestId('decisions').waitFor();
    expect(await textOf(page, '[data-testid=cancelled-items]')).toContain('Item 1');
    expect(s.problems).toEqual([]);
  }, 90_000);

  it('a request its submitter cancels while the reviewer writes: the decision is refused saying it was cancelled, not "decided before", and the form is gone', async () => {
    s = await openSession(browser, ARTIFACTS, { width: 1280, height: 900 });
    const { page, url } = s;
    const { cancelAll } = await pendTwoThenCancelFirst(url);
    await openKwame(page, url);
    await page.getByRole('radio', { name: 'Deny' }).check();
    await page.getByLabel(/Reason/).fill('No MRD result and no guideline support for 56 mcg/day.');
    await cancelAll();
    await page.getByRole('button', { name: 'Record the decision' }).click();
    await page.getByText(/Your decision was not recorded/).waitFor();
    const said = await textOf(page, '[role=alert]#alert');
    expect(said).toMatch(/was cancelled by its submitter; there is nothing left to decide\. The request as it stands now is shown\.$/);
    expect(said).not.toMatch(/decided before/);
    expect(await textOf(page, '[data-testid=request-status]')).toBe('Cancelled by the submitter');
    expect(await page.getByRole('button', { name: 'Record the decision' }).count()).toBe(0);
    expect(s.problems.filter((p) => !/409|Failed to load resource/.test(p))).toEqual([]);
  }, 90_000);

  it('when the queue or a request cannot be loaded, the reviewer reads why, and can try again or go back; nothing is a blank page', async () => {
    s = await openSession(browser, ARTIFACTS, { width: 1280, height: 900 });
    const { page, url } = s;
    expect(await fileRequests(url, ['centene-missing-mrd'])).toBe(1);
    // The reviewer API is down while the queue loads.
    await page.route('**/review/pended', (r) => r.fulfill({ status: 503, contentType: 'application/json', body: '{}' }));
    await signIn(page, url);
    await page.getByText(/could not be loaded/).waitFor();
    expect(await textOf(page, '[role=alert]#alert')).toBe(
      'The pended requests could not be loaded: the service had a problem (status 503); try again in a moment.',
    );
    await page.unroute('**/review/pended');
    await page.getByRole('button', { name: 'Try again' }).click();
    await page.getByTestId('queue').waitFor();
    expect(await textOf(page, '#alert')).toBe('');

    // A link to a request that does not exist (an old bookmark): said in words, with the queue to go back to.
    await page.goto(`${url}/review#/request/no-such-request`);
    await page.getByText(/could not be opened/).waitFor();
    expect(await textOf(page, '[role=alert]#alert')).toBe('The request could not be opened: No PAS request no-such-request.');
    expect(await page.getByRole('link', { name: '← Pended requests' }).isVisible()).toBe(true);
    await page.getByRole('link', { name: '← Pended requests' }).click();
    await page.getByTestId('queue').waitFor();
    expect(s.problems.filter((p) => !/503|404|Failed to load resource/.test(p))).toEqual([]);
  }, 90_000);

  it("reads each fact of the trace in the policy's words, and opens a text, image or PDF attachment in the browser (HTML only downloads)", async () => {
    s = await openSession(browser, ARTIFACTS, { width: 1280, height: 900 });
    const { page, url, context } = s;
    await fileWithAttachments(url);
    await openKwame(page, url);

    // The MRD-positive criterion's evidence reads as Centene's words, not as the fact's name ("Mrd positive").
    await page.getByText(/other covered uses?, not met/).click();
    const trace = await textOf(page, 'section[aria-label="Policy trace"]');
    expect(trace).toMatch(/MRD-positive \(minimal residual disease detectable at 0\.01 % or more, or reported positive\): unknown \(no data\)/);
    expect(trace).toMatch(/B-ALL in remission: /);
    expect(trace).not.toMatch(/\b(Mrd positive|mrdPositive|In remission:)/);
    // A label that ends in a note's full stop takes no colon before its value ("do not count.: yes").
    expect(trace).toMatch(/supportive care do not count\. yes \(chart\)/);
    expect(trace).not.toMatch(/[.?]: /);

    const attachment = (title: string) => page.locator('section[aria-label="Attachments"] li').filter({ hasText: title });
    // Text: previewed in place as text, so "<b>" shows as characters and makes no element.
    const note = attachment('Flow cytometry note');
    await note.getByText('Preview').click();
    const text = note.locator('pre');
    expect(await text.innerText()).toContain('MRD by flow cytometry: 0.4 % (<b>positive</b>)');
    expect(await text.locator('b').count()).toBe(0);
    // ... and opened in a tab of its own, as text.
    const [tab] = await Promise.all([context.waitForEvent('page'), note.getByRole('button', { name: 'Open' }).click()]);
    await tab.waitForURL(/^blob:/);
    await tab.waitForLoadState();
    expect(await tab.evaluate(() => document.contentType)).toBe('text/plain');
    expect(await tab.evaluate(() => document.body.innerText)).toContain('CD19 expressed on 98 % of blasts.');
    await tab.close();
    // An image: previewed in place, and it loads.
    const scan = attachment('Scanned requisition');
    await scan.getByText('Preview').click();
    const img = scan.getByRole('img', { name: 'Scanned requisition' });
    await img.waitFor();
    expect(await img.evaluate((el) => (el as HTMLImageElement).naturalWidth)).toBe(1);
    // A PDF: opened in a new tab (the browser's viewer), not previewed here.
    const report = attachment('Flow cytometry report');
    expect(await report.getByText('Preview').count()).toBe(0);
    const [pdf] = await Promise.all([context.waitForEvent('page'), report.getByRole('button', { name: 'Open' }).click()]);
    await pdf.waitForURL(/^blob:/);
    await pdf.close();
    // HTML could run script in the reviewer's session: download only, neither opened nor previewed.
    const portal = attachment('Portal page');
    expect(await portal.getByRole('button', { name: 'Open' }).count()).toBe(0);
    expect(await portal.getByText('Preview').count()).toBe(0);
    expect(await portal.getByRole('link', { name: 'Download' }).getAttribute('download')).toBe('Portal page');
    // Each document keeps its download.
    for (const title of ['Flow cytometry note', 'Scanned requisition', 'Flow cytometry report'])
      expect(await attachment(title).getByRole('link', { name: 'Download' }).count()).toBe(1);
    await s.shot('attachments');
    expect(await page.title()).not.toBe('ran');
    expect(s.problems).toEqual([]);
  }, 90_000);

  it("shows the member's Coverage period, and refuses an approval that would end after it", async () => {
    s = await openSession(browser, ARTIFACTS, { width: 1280, height: 900 });
    const { page, url } = s;
    // Kwame's request with a Coverage that ends on 31 January 2027 (a plan year ending), filed as an EHR back end would.
    const token = (await (await fetch(`${url}/sandbox/payer-token`, { method: 'POST' })).json()) as { access_token: string };
    const bundle = storyBundle('centene-missing-mrd', { orderId: 'coverage-ends' });
    const coverage = bundle.entry!.find((e) => e.resource?.resourceType === 'Coverage')!.resource as Coverage;
    coverage.period = { start: '2026-01-01', end: '2027-01-31' };
    const res = await fetch(`${url}/fhir/Claim/$submit`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${token.access_token}` },
      body: JSON.stringify(bundle),
    });
    expect(JSON.stringify(await res.json())).toContain('"A4"');
    await openKwame(page, url);
    expect(await textOf(page, '[data-testid=request-summary]')).toContain('1 January 2026 to 31 January 2027');
    expect(await page.getByLabel('Approved until').getAttribute('max')).toBe('2027-01-31');
    // The period the workbench proposes already ends within the Coverage.
    expect((await page.getByLabel('Approved until').inputValue()) <= '2027-01-31').toBe(true);

    await page.getByRole('radio', { name: 'Approve' }).check();
    await page.getByLabel(/Reason/).fill('MRD 0.3 % on the outside flow report reviewed.');
    await page.getByLabel('Approved until').fill('2027-06-30');
    await page.getByRole('button', { name: 'Record the decision' }).click();
    expect(await textOf(page, '#decide-error')).toContain("the period ends after the member's Coverage does (31 January 2027)");
    expect(await page.getByLabel('Approved until').getAttribute('aria-invalid')).toBe('true');
    await page.getByLabel('Approved until').fill('2027-01-31');
    await page.getByRole('button', { name: 'Record the decision' }).click();
    await page.getByTestId('decisions').waitFor();
    expect(await textOf(page, '[data-testid=request-status]')).toMatch(/Approved: PA-CENTENE-\d{8}-[A-Z0-9]{8}, .* to 31 January 2027/);
    expect(s.problems).toEqual([]);
  }, 90_000);

  it("a later cycle whose course start the request does not give: no period counted from the order is proposed, the page says what to set it from, and approving without one is refused (was 30 weeks from the order's date, silently)", async () => {
    s = await openSession(browser, ARTIFACTS, { width: 1280, height: 900 });
    const { page, url } = s;
    // OHSU's relapsed adult (no live vaccine), answered "not cycle 1" of a course begun elsewhere, its start not given.
    const token = (await (await fetch(`${url}/sandbox/payer-token`, { method: 'POST' })).json()) as { access_token: string };
    const bundle = storyBundle('ohsu-live-vaccine', {
      orderId: 'later-cycle',
      remove: ['ohsu-live-vaccine-yellow-fever'],
      answers: {
        'no-live-vaccine-on-therapy': [{ valueBoolean: true }],
        'relapsed-course-cycle-one': [{ valueBoolean: false }],
        'cycles-given': [{ valueInteger: 1 }],
      },
    });
    const res = await fetch(`${url}/fhir/Claim/$submit`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${token.access_token}` },
      body: JSON.stringify(bundle),
    });
    expect(JSON.stringify(await res.json())).toContain('"A4"');
    await signIn(page, url);
    await page.getByRole('link', { name: /Tyler/ }).click();
    await page.getByTestId('period-from').waitFor();
    expect(await textOf(page, '[data-testid=period-from]')).toContain("The policy's approval period (30 weeks) runs from the start of the first cycle of the relapsed or refractory course");
    expect(await page.getByLabel('Approved until').inputValue()).toBe('');
    await page.getByRole('radio', { name: 'Approve' }).check();
    await page.getByLabel(/Reason/).fill('Cycle 1 began on 2 October 2026 at the referring center (letter attached).');
    await page.getByRole('button', { name: 'Record the decision' }).click();
    expect(await textOf(page, '#decide-error')).toContain('give the approval period');
    await page.getByLabel('Approved until').fill('2027-04-29');
    await page.getByRole('button', { name: 'Record the decision' }).click();
    await page.getByTestId('decisions').waitFor();
    expect(await textOf(page, '[data-testid=request-status]')).toMatch(/Approved: PA-OHSU-\d{8}-[A-Z0-9]{8}, .* to 29 April 2027/);
    expect(s.problems).toEqual([]);
  }, 90_000);

  it('after recording a decision focus moves to the decision, and back in the queue to its heading', async () => {
    s = await openSession(browser, ARTIFACTS, { width: 1280, height: 900 });
    const { page, url } = s;
    expect(await fileRequests(url, ['centene-missing-mrd'])).toBe(1);
    await openKwame(page, url);
    await page.getByRole('radio', { name: 'Deny' }).check();
    await page.getByLabel(/Reason/).fill('Not medically necessary: no MRD result.');
    await page.getByRole('button', { name: 'Record the decision' }).press('Enter');
    await page.getByTestId('decisions').waitFor();
    expect(await focused(page)).toBe('decision-history');
    await page.getByRole('link', { name: '← Pended requests' }).press('Enter');
    await page.getByText('Nothing is waiting for review.').waitFor();
    expect(await focused(page)).toBe('queue-title');
    expect(s.problems).toEqual([]);
  }, 90_000);

  it('a decided request is found again after a reload: the Decided list reads the store, newest first, with who decided, and a search finds it (review ui s44 L1)', async () => {
    s = await openSession(browser, ARTIFACTS, { width: 1366, height: 900 });
    const { page, url } = s;
    expect(await fileRequests(url, ['centene-missing-mrd', 'centene-over-dose'])).toBe(2);
    await signIn(page, url);
    await page.getByText('Nothing was decided in the last 7 days.').waitFor();
    // Another reviewer denies Bradley's request through the API; this reviewer approves Kwame's on the page.
    const bradley = (await page.getByRole('link', { name: /Bradley/ }).getAttribute('href'))!.replace('#/request/', '');
    const post = await reviewerApi(url);
    expect((await post(`/${bradley}/decision`, { decision: 'deny', reviewer: 'Sam Okafor, PharmD', reason: '56 mcg/day is above the labelled 28 mcg/day.' })).status).toBe(200);
    const kwame = (await page.getByRole('link', { name: /Kwame/ }).getAttribute('href'))!.replace('#/request/', '');
    // The queue's search finds a request by the reference the clinician's DTR form quotes (review ui s46 L2).
    const search = page.getByRole('searchbox', { name: /Find by patient/ });
    await search.fill(kwame);
    await expect.poll(() => page.getByRole('link', { name: /Bradley/ }).count()).toBe(0);
    await page.getByRole('link', { name: /Kwame/ }).click();
    // Its page names that reference.
    expect(await textOf(page, '[data-testid=request-reference]')).toBe(kwame);
    await page.getByRole('radio', { name: 'Approve' }).check();
    await page.getByLabel(/Reason/).fill('MRD below 0.1% on the outside report.');
    await page.getByRole('button', { name: 'Record the decision' }).click();
    await page.getByTestId('decisions').waitFor();

    // A reload (nothing of the page's memory survives it) still lists both, newest first, each with who decided.
    await page.goto(`${url}/review`);
    await page.reload();
    await page.getByText('Nothing is waiting for review.').waitFor();
    const decided = page.getByTestId('decided');
    await decided.waitFor();
    expect(await textOf(page, '#decided-count')).toBe('2 decisions in the last 7 days, newest first.');
    const rows = decided.locator('tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await rows.nth(0).innerText()).toMatch(/Kwame Osei Mensah[\s\S]*Blincyto[\s\S]*Approved \(PA-CENTENE-\d{8}-[A-Z0-9]{8}\)[\s\S]*Dana Reyes, MD \(demo reviewer\)[\s\S]*MRD below 0\.1%/);
    expect(await rows.nth(1).innerText()).toMatch(/Bradley[\s\S]*56 mcg\/day[\s\S]*Denied[\s\S]*Sam Okafor, PharmD/);
    // "What did you decide for Bradley?": one search; the window can change.
    await page.getByLabel(/Search the decisions/).fill('bradley denied');
    expect(await rows.count()).toBe(1);
    expect(await textOf(page, '#decided-count')).toBe('1 of 2 decisions in the last 7 days match “bradley denied”, newest first.');
    await page.getByLabel('Decided in the last').selectOption('1');
    await page.getByText('1 of 2 decisions in the last day match “bradley denied”, newest first.').waitFor();
    // The row opens the request as decided.
    await rows.first().getByRole('link', { name: /Bradley/ }).click();
    await page.getByTestId('decisions').waitFor();
    expect(await textOf(page, '[data-testid=request-status]')).toBe('Denied');
    expect(await textOf(page, '[data-testid=decisions]')).toContain('Sam Okafor, PharmD');
    expect(s.problems).toEqual([]);
  }, 90_000);

  it("a request the clinician's DTR answers settled says so above the trace: by the documentation from the DTR form, when, and the values it rests on (review ui s47 #2)", async () => {
    s = await openSession(browser, ARTIFACTS, { width: 1366, height: 900 });
    const { page, url, server } = s;
    await pendKwame(page, url);
    const [pended] = await server.storage.listPendedSubmissions(50);
    // The clinician then documents the MRD level in the adaptive form: the order is approved, which settles the request.
    await page.getByRole('button', { name: 'Complete documentation (adaptive form)' }).click();
    await page.getByText(/the payer asks only what it still needs/).waitFor({ timeout: 30_000 });
    await page.getByRole('textbox', { name: /Minimal residual disease/ }).fill('0.5');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByTestId('dtr-determination').filter({ hasText: /Prior authorization approved/ }).waitFor();

    await signIn(page, url);
    await page.goto(`${url}/review#/request/${pended.id}`);
    await page.getByTestId('settled').waitFor();
    expect(await textOf(page, '[data-testid=request-status]')).toMatch(/^Approved: PA-CENTENE-/);
    const settled = await textOf(page, '[data-testid=settled]');
    expect(settled).toMatch(/^Approved by the documentation answers sent from the DTR form, \d{1,2} [A-Z][a-z]+ \d{4}, \d{2}:\d{2} UTC/);
    // What the clinician's MRD level (0.5 %) made of the criterion's fact, under the policy's words: unknown as filed.
    expect(settled).toMatch(/What it read that the request as filed did not .*: MRD-positive \(minimal residual disease detectable at 0\.01 % or more, or reported positive\) Yes /);
    expect(settled).toContain('The policy trace below is the request as it was filed');
    // Said before the trace it would otherwise be read with.
    const order = await page.evaluate(() => {
      const a = document.querySelector('[data-testid=settled]')!;
      const b = document.querySelector('[data-testid=trace]')!;
      return a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING;
    });
    expect(order).toBeTruthy();
    await s.shot('settled-by-dtr');
    expect(s.problems).toEqual([]);
  }, 120_000);

  it('a long queue: every word of a search finds a request in any column, the order can change, 25 rows a page, and the choice holds after opening a request', async () => {
    s = await openSession(browser, ARTIFACTS, { width: 1366, height: 900 });
    const { page, url } = s;
    const stories = [...Array.from({ length: 27 }, () => 'centene-missing-mrd'), 'mmm-cd19-unknown', 'centene-over-dose'];
    expect(await fileRequests(url, stories)).toBe(29);
    await signIn(page, url);
    await page.getByTestId('queue').waitFor();
    const rows = page.getByTestId('queue').locator('tbody tr');
    expect(await textOf(page, '#queue-count')).toBe('29 requests waiting, longest waiting first; showing 1 to 25.');
    expect(await rows.count()).toBe(25);
    expect(await textOf(page, '#queue-pages')).toContain('Page 1 of 2');
    expect(await lowContrastText(page)).toEqual([]);
    expect(await page.getByRole('columnheader', { name: 'In queue' }).getAttribute('aria-sort')).toBe('descending');
    await s.shot('long-queue');

    // Paging by keyboard: on the last page focus goes to its first request, not to the spent button.
    await page.getByRole('button', { name: 'Next page' }).press('Enter');
    expect(await rows.count()).toBe(4);
    expect(await textOf(page, '#queue-count')).toContain('showing 26 to 29');
    expect(await page.evaluate(() => document.activeElement?.closest('[data-testid=queue]') !== null)).toBe(true);
    expect(await textOf(page, '[data-testid=queue] tbody tr:last-child')).toContain('Bradley Scott Hoffman');

    // Search: accents and case do not matter, any column counts, every word must match.
    const search = page.getByRole('searchbox', { name: /Find by patient/ });
    await search.fill('jose');
    expect(await rows.count()).toBe(1);
    expect(await textOf(page, '[data-testid=queue]')).toContain('Wilfredo José Ortiz Maldonado');
    expect(await textOf(page, '#queue-count')).toBe('1 of 29 requests match “jose”, longest waiting first.');
    expect(await page.getByRole('navigation', { name: 'Pages of the queue' }).isVisible()).toBe(false);
    await search.fill('CENTENE 56 mcg');
    expect(await rows.count()).toBe(1);
    expect(await textOf(page, '[data-testid=queue] tbody')).toMatch(/^Bradley Scott Hoffman/);
    await search.fill('U5521039476 mrd');
    expect(await textOf(page, '#queue-count')).toMatch(/^27 of 29 requests match/);
    await search.fill('vincristine');
    expect(await textOf(page, '#queue-count')).toBe('No pended request matches “vincristine”; 29 waiting in all.');
    expect(await page.getByTestId('queue').count()).toBe(0);

    // Order by patient: Bradley first; the choice survives opening a request and coming back.
    await search.fill('');
    await page.getByLabel('Sort by').selectOption({ label: 'Patient (A to Z)' });
    expect(await page.getByRole('columnheader', { name: 'Patient' }).getAttribute('aria-sort')).toBe('ascending');
    expect(await textOf(page, '[data-testid=queue] tbody tr:first-child')).toContain('Bradley Scott Hoffman');
    expect(await textOf(page, '[data-testid=queue] tbody tr:nth-child(2)')).toContain('Kwame Osei Mensah');
    await page.getByRole('link', { name: 'Bradley Scott Hoffman' }).click();
    await page.getByRole('heading', { name: /Bradley/ }).waitFor();
    await page.getByRole('link', { name: '← Pended requests' }).click();
    await page.getByTestId('queue').waitFor();
    expect(await page.getByLabel('Sort by').inputValue()).toBe('patient');
    expect(await textOf(page, '[data-testid=queue] tbody tr:first-child')).toContain('Bradley Scott Hoffman');
    await page.getByLabel('Sort by').selectOption({ label: 'Newest first' });
    expect(await textOf(page, '[data-testid=queue] tbody tr:first-child')).toContain('Bradley Scott Hoffman');
    expect(await textOf(page, '[data-testid=queue] tbody tr:nth-child(2)')).toContain('Wilfredo');
    expect(s.problems).toEqual([]);
  }, 120_000);
});
