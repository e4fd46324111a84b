import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decideOnDemo, hasChromium, launchChromium, openSession, overflowsSideways, textOf } from './browser-session.js';
import type { BrowserSession } from './browser-session.js';
import { repoRoot } from './start-demo-server.js';

const ARTIFACTS = join(repoRoot, 'test-artifacts', 'demo-order-record');
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

/** Documentation on file in Kwame's chart (the sandbox EHR): a completed Centene questionnaire that leaves the MRD unanswered. */
async function putDocumentationOnFile(s: BrowserSession): Promise<void> {
  const put = await s.page.request.put(`${s.url}/sandbox/fhir/QuestionnaireResponse/kwame-centene-doc`, {
    headers: { 'Content-Type': 'application/fhir+json' },
    data: {
      resourceType: 'QuestionnaireResponse',
      id: 'kwame-centene-doc',
      status: 'completed',
      questionnaire: 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11',
      subject: { reference: 'Patient/centene-missing-mrd' },
      authored: new Date().toISOString(),
    },
  });
  expect(put.ok()).toBe(true);
}

describe.skipIf(!hasChromium)('demo EHR page: the answer on screen belongs to the order as signed', () => {
  let browser: Browser;
  let s: BrowserSession | undefined;

  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });
  afterAll(async () => {
    await browser?.close();
  });

  it("over the dose limit: an information card (warning is for not covered); accepting 28 mcg/day keeps the order's sig; after approval any edit says sign again", async () => {
    s = await openSession(browser, ARTIFACTS);
    const { page, url } = s;
    await page.goto(`${url}/?story=centene-over-dose`);
    await page.getByRole('button', { name: 'Sign order' }).click();
    await page.getByRole('heading', { name: 'What the payer says' }).waitFor();
    const limitCard = page.locator('.card', { hasText: 'exceeds the policy limit' });
    expect(await limitCard.locator('.indicator').innerText()).toMatch(/^information$/i);
    expect(await textOf(page, '#result')).not.toMatch(/Exceeds Dose does not exceed/);

    await page.getByRole('button', { name: /Change the dose to 28/ }).click();
    expect(await page.getByLabel('Dose').inputValue()).toBe('28');
    const orderText = await textOf(page, '#order-text');
    expect(orderText).toContain('28 mcg/day continuous IV infusion, days 1-28');
    expect(orderText).not.toContain('as edited at signing');
    expect(orderText).toMatch(/starting \d{1,2} [A-Z][a-z]+ \d{4}/);

    await page.getByRole('button', { name: 'Sign again' }).click();
    await page.getByText(/Approved at signing: PA-CENTENE-/).waitFor();
    expect(await textOf(page, '#status')).toBe('Order signed. Approved by the payer.');
    // The visible answer shows no canonical URLs or UUIDs; they are behind "Details".
    const visible = await textOf(page, '#result');
    expect(visible).not.toMatch(UUID);
    expect(visible).not.toMatch(/https?:\/\//);

    // Any edit after signing takes the approval off the screen; undoing it brings it back.
    await page.getByLabel('Dose').fill('56');
    expect(await page.getByText(/Approved at signing/).isVisible()).toBe(false);
    expect(await textOf(page, '#stale-note')).toMatch(/The order changed after signing .*56 mcg\/day.*sign again/);
    await s.shot('stale-after-dose-edit');
    await page.getByLabel('Dose').fill('28');
    expect(await page.getByText(/Approved at signing/).isVisible()).toBe(true);
    await page.getByLabel('Drug').selectOption('inotuzumab');
    expect(await page.getByText(/Approved at signing/).isVisible()).toBe(false);
    expect(await page.locator('#stale-note').isVisible()).toBe(true);
    expect(s.problems).toEqual([]);
  }, 90_000);

  it('cycles the order cannot carry (0, 2.5, empty) are refused like the dose, and the order line names the cycles signed', async () => {
    s = await openSession(browser, ARTIFACTS);
    const { page, url } = s;
    await page.goto(`${url}/?story=centene-pediatric-consolidation`);
    const sign = page.getByRole('button', { name: 'Sign order' });
    // The chart has loaded when Sign is enabled: a value typed before that is overwritten by the chart's draft (on a
    // loaded machine the click then signed the draft's valid cycles and no refusal came).
    await expect.poll(() => sign.isEnabled(), { timeout: 30_000 }).toBe(true);
    const hooks: string[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/cds-services/priorpath-order-sign')) hooks.push(r.postData() ?? '');
    });
    const cycles = page.getByLabel('Cycles requested');
    for (const typed of ['0', '2.5', '']) {
      await cycles.fill(typed);
      await sign.click();
      await page.getByText('Enter a whole number of cycles from 1 to 12 before signing.').waitFor();
      expect(await textOf(page, '[role=alert]#alert')).toBe('Enter a whole number of cycles from 1 to 12 before signing.');
      expect(await cycles.getAttribute('aria-invalid')).toBe('true');
      await page.waitForFunction(() => document.activeElement?.id === 'cycles');
    }
    expect(hooks).toEqual([]);
    expect(await page.locator('#result').isVisible()).toBe(false);

    await cycles.fill('3');
    expect(await cycles.getAttribute('aria-invalid')).toBeNull();
    expect(await textOf(page, '#order-text')).toMatch(/, 3 cycles$/);
    await sign.click();
    await page.getByRole('heading', { name: 'What the payer says' }).waitFor();
    const draft = (JSON.parse(hooks[0]) as { context: { draftOrders: { entry: { resource: { dispenseRequest?: { numberOfRepeatsAllowed?: number } } }[] } } })
      .context.draftOrders.entry[0].resource;
    expect(draft.dispenseRequest?.numberOfRepeatsAllowed).toBe(2);
    expect(s.problems).toEqual([]);
  }, 60_000);

  it("a live vaccine too close to the start: the form's Planned start moves the order's dosage periods to the date the reason names, and signing again is no longer that denial", async () => {
    s = await openSession(browser, ARTIFACTS);
    const { page, url } = s;
    await page.goto(`${url}/?story=ohsu-live-vaccine`);
    const hooks: string[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/cds-services/priorpath-order-sign')) hooks.push(r.postData() ?? '');
    });
    await page.getByRole('button', { name: 'Sign order' }).click();
    await page.locator('[data-testid=coverage-headline]', { hasText: /^Not covered/ }).waitFor();
    const reason = await textOf(page, '#coverage');
    const [, day, month, year] = /A planned start on or after (\d{1,2}) ([A-Z][a-z]+) (\d{4}) would meet .*change the start date and sign again/.exec(reason)!;
    const months = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
    const later = `${year}-${String(months.indexOf(month) + 1).padStart(2, '0')}-${day.padStart(2, '0')}`;

    const start = page.getByLabel('Planned start');
    const before = await start.inputValue();
    expect(before).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(before < later).toBe(true);
    await start.fill(later);
    expect(await textOf(page, '#order-text')).toContain(`starting ${Number(day)} ${month} ${year}`);
    expect(await page.locator('#stale-note').isVisible()).toBe(true);
    await page.getByRole('button', { name: 'Sign again' }).click();
    await page.locator('#stale-note').waitFor({ state: 'hidden' });
    const headline = await textOf(page, '[data-testid=coverage-headline]');
    expect(headline).not.toMatch(/^Not covered/);
    expect(await textOf(page, '#coverage')).not.toMatch(/received a live vaccine/i);

    // The order sent: days 1-7 start on the new date, days 8-28 follow 7 days later, as the chart's step dosing had it.
    type Sent = { context: { draftOrders: { entry: { resource: { dosageInstruction: { timing?: { repeat?: { boundsPeriod?: { start?: string; end?: string } } } }[] } }[] } } };
    const sent = (JSON.parse(hooks[1]) as Sent).context.draftOrders.entry[0].resource.dosageInstruction.map((d) => d.timing?.repeat?.boundsPeriod);
    const plus = (d: string, n: number) => new Date(Date.parse(`${d}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
    expect(sent).toEqual([
      { start: later, end: plus(later, 6) },
      { start: plus(later, 7), end: plus(later, 27) },
    ]);
    expect(s.problems).toEqual([]);
  }, 60_000);

  it('not covered: said once, as a warning, without repeating the reason three times', async () => {
    s = await openSession(browser, ARTIFACTS);
    const { page, url } = s;
    await page.goto(`${url}/?story=mmm-dlbcl-offlabel`);
    await page.getByRole('button', { name: 'Sign order' }).click();
    await page.getByRole('heading', { name: 'What the payer says' }).waitFor();
    const headline = await textOf(page, '[data-testid=coverage-headline]');
    expect(headline).toMatch(/^Not covered by /);
    const reason = await textOf(page, '#coverage dd >> nth=1');
    const text = await textOf(page, '#result');
    expect(text.split(reason.slice(0, 60)).length - 1).toBe(1);
    expect(await page.locator('.card.card-warning').count()).toBeGreaterThan(0);
    expect(await textOf(page, '#status')).toBe('Order signed. The payer does not cover this order.');
  }, 60_000);

  it('the payer failing at signing or on the PAS request: the page says why in words (no request line), the focus stays where the clinician works, and trying again works', async () => {
    s = await openSession(browser, ARTIFACTS, { width: 1280, height: 900 });
    const { page, url } = s;
    await page.goto(`${url}/?story=centene-missing-mrd`);
    const sign = page.getByRole('button', { name: 'Sign order' });
    await page.route('**/cds-services/priorpath-order-sign', (r) => r.fulfill({ status: 503, contentType: 'application/json', body: '{}' }));
    await sign.click();
    await page.getByText(/^Signing failed:/).waitFor();
    expect(await textOf(page, '[role=alert]#alert')).toBe('Signing failed: the service had a problem (status 503); try again in a moment.');
    // The sign button was disabled while focused; the focus comes back to it, not to the page body.
    await page.waitForFunction(() => document.activeElement?.id === 'sign');
    await page.unroute('**/cds-services/priorpath-order-sign');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'What the payer says' }).waitFor();

    const submit = page.locator('#actions').getByRole('button', { name: 'Submit prior authorization' });
    await page.route('**/fhir/Claim/$submit', (r) => r.fulfill({ status: 503, contentType: 'application/fhir+json', body: '{}' }));
    await submit.click();
    await page.getByText(/^The request failed:/).waitFor();
    expect(await textOf(page, '#pas')).toContain('The request failed: the service had a problem (status 503); try again in a moment.');
    expect(await textOf(page, '#pas')).not.toMatch(/\/fhir\/|POST|answered 503/);
    // The focus is on the answer (the panel saying why), where a keyboard or screen-reader user reads on.
    await page.waitForFunction(() => document.activeElement?.id === 'pas');
    expect(await page.locator('#pas').getAttribute('aria-label')).toBe('Prior authorization request');
    await page.unroute('**/fhir/Claim/$submit');
    await submit.click();
    await page.getByTestId('pas-decision').waitFor();
    expect(await textOf(page, '[data-testid=pas-decision]')).toBe('Pended for review');
    await page.waitForFunction(() => document.activeElement?.id === 'pas');
    expect(s.problems.filter((p) => !/503|Failed to load resource/.test(p))).toEqual([]);
  }, 90_000);

  it("reopening a signed chart shows the payer's answer and the authorization number from the last signing, dated; a draft edited since is marked", async () => {
    s = await openSession(browser, ARTIFACTS);
    const { page, url } = s;
    await page.goto(`${url}/?story=centene-mrd-positive`);
    await page.getByRole('button', { name: 'Sign order' }).click();
    await page.getByText(/Approved at signing: PA-CENTENE-/).waitFor();
    const number = await textOf(page, '[data-testid=pa-number]');
    const headline = await textOf(page, '[data-testid=coverage-headline]');
    expect(await page.getByTestId('answer-on-file').count()).toBe(0);

    await page.reload();
    await page.getByTestId('answer-on-file').waitFor();
    expect(await textOf(page, '[data-testid=answer-on-file]')).toMatch(/^As the payer answered at the last signing, \d{1,2} [A-Z][a-z]+ \d{4}\.$/);
    expect(await textOf(page, '[data-testid=coverage-headline]')).toBe(headline);
    expect(await textOf(page, '[data-testid=pa-number]')).toBe(number);
    expect(await page.locator('#stale-note').isVisible()).toBe(false);
    expect(await page.getByRole('button', { name: 'Sign again' }).isEnabled()).toBe(true);
    await s.shot('reopened-signed-chart');

    // A draft edited after signing (kept in the tab) reopens with the answer marked as for the order as signed.
    await page.getByLabel('Dose').fill('56');
    await page.reload();
    await page.getByTestId('answer-on-file').waitFor({ state: 'attached' });
    expect(await page.getByLabel('Dose').inputValue()).toBe('56');
    expect(await textOf(page, '#stale-note')).toMatch(/The order changed after signing .*56 mcg\/day.*sign again/);
    expect(await page.locator('[data-testid=pa-number]').isVisible()).toBe(false);
    expect(s.problems).toEqual([]);
  }, 90_000);

  it("a reviewer's decision arriving takes the signing answer (documentation required, pended) off the screen: one answer for the order", async () => {
    s = await openSession(browser, ARTIFACTS, { width: 360, height: 780 });
    const { page, url, server } = s;
    await page.goto(`${url}/?story=centene-missing-mrd`);
    await page.getByRole('button', { name: 'Sign order' }).click();
    await page.getByText('Prior authorization needed — documentation required').waitFor();
    await page.locator('#actions').getByRole('button', { name: 'Submit prior authorization' }).click();
    await page.getByTestId('pas-decision').waitFor();
    expect(await textOf(page, '[data-testid=pas-decision]')).toBe('Pended for review');
    // While pended, the signing answer and its actions stand: the clinician may still document.
    expect(await page.getByRole('button', { name: 'Complete documentation', exact: true }).isVisible()).toBe(true);

    const [pended] = await server.storage.listPendedSubmissions(50);
    expect(await decideOnDemo(page, url, pended.id, 'deny', 'MRD negative on the outside flow report (CP.PHAR.312 I.A.4)')).toBe(200);
    await page.getByText('Prior authorization denied').waitFor({ timeout: 15_000 });

    // design.md §8: the decision is the order's answer; the signing answer says it is out of date, and offers nothing.
    const note = page.locator('#stale-note');
    expect(await note.isVisible()).toBe(true);
    expect(await textOf(page, '#stale-note')).toMatch(/decided the prior authorization request: denied .*sign again/);
    expect(await page.getByText('Prior authorization needed — documentation required').isVisible()).toBe(false);
    expect(await page.getByRole('button', { name: /^Complete documentation/ }).first().isVisible()).toBe(false);
    expect(await page.locator('#actions').isVisible()).toBe(false);
    expect(await page.locator('#cards').isVisible()).toBe(false);
    await s.shot('phone-denied-signing-answer-stale');

    // Signing again answers what the decision recorded, and the note goes.
    await page.getByRole('button', { name: 'Sign again' }).click();
    await page.locator('[data-testid=coverage-headline]', { hasText: /^Not covered/ }).waitFor();
    expect(await note.isVisible()).toBe(false);
    expect(await textOf(page, '#coverage')).toContain('Prior authorization denied: MRD negative on the outside flow report');
    expect(s.problems).toEqual([]);
  }, 90_000);

  it('with documentation on file, the chart offers the PAS request only while the order is open: under a reviewer\'s denial it says the denial and offers no request that would be answered with it', async () => {
    s = await openSession(browser, ARTIFACTS);
    const { page, url, server } = s;
    await putDocumentationOnFile(s);
    await page.goto(`${url}/?story=centene-missing-mrd`);
    await page.getByRole('button', { name: 'Sign order' }).click();
    await page.getByText('Prior authorization needed — documentation required').waitFor();
    const offer = page.locator('#documentation').getByRole('button', { name: 'Submit prior authorization' });
    // Open: the request with the documentation is offered.
    expect(await offer.isVisible()).toBe(true);
    await page.locator('#actions').getByRole('button', { name: 'Submit prior authorization' }).click();
    await page.getByTestId('pas-decision').waitFor();
    expect(await textOf(page, '[data-testid=pas-decision]')).toBe('Pended for review');

    const [pended] = await server.storage.listPendedSubmissions(50);
    expect(await decideOnDemo(page, url, pended.id, 'deny', 'MRD negative on the outside flow report (CP.PHAR.312 I.A.4)')).toBe(200);
    await page.getByTestId('pas-decision').filter({ hasText: 'Prior authorization denied' }).waitFor({ timeout: 15_000 });
    // Denied: no button anywhere that would send the order as it stands, and the documentation box says why.
    expect(await page.getByRole('button', { name: 'Submit prior authorization' }).count()).toBe(0);
    expect(await textOf(page, '[data-testid=order-authorization]')).toContain('Denied:');
    expect(await textOf(page, '[data-testid=order-authorization]')).toContain('MRD negative on the outside flow report');
    expect(await textOf(page, '#documentation')).toMatch(/Change the order .* and sign again/);

    // Signed again unchanged, the order answers the denial: still no request offered, after a reload too.
    await page.getByRole('button', { name: 'Sign again' }).click();
    await page.locator('[data-testid=coverage-headline]', { hasText: /^Not covered/ }).waitFor();
    await page.reload();
    await page.getByTestId('order-authorization').waitFor();
    expect(await textOf(page, '[data-testid=order-authorization]')).toContain('MRD negative on the outside flow report');
    expect(await page.getByRole('button', { name: 'Submit prior authorization' }).count()).toBe(0);
    await s.shot('denied-no-request-offered');
    expect(s.problems).toEqual([]);
  }, 90_000);

  it('while the request is pended for documentation, the chart sends the documentation to it as an update (PAS Claim Update), never a second request (was "Submit prior authorization" again)', async () => {
    s = await openSession(browser, ARTIFACTS);
    const { page, url, server } = s;
    await putDocumentationOnFile(s);
    await page.goto(`${url}/?story=centene-missing-mrd`);
    await page.getByRole('button', { name: 'Sign order' }).click();
    await page.getByText('Prior authorization needed — documentation required').waitFor();
    await page.locator('#actions').getByRole('button', { name: 'Submit prior authorization' }).click();
    await page.getByTestId('pas-decision').waitFor();
    expect(await textOf(page, '[data-testid=pas-decision]')).toBe('Pended for review');
    const [pended] = await server.storage.listPendedSubmissions(50);

    // Pended: neither the documentation box nor the signing answer offers a second request.
    expect(await page.getByRole('button', { name: /^Submit prior authorization/ }).count()).toBe(0);
    expect(await textOf(page, '[data-testid=documentation-offer]')).toContain(`(reference ${pended.id}) is pended for review: this documentation goes to it as an update, not as a second request`);
    await page.locator('#documentation').getByRole('button', { name: 'Send the documentation to the pended request' }).click();
    await page.getByTestId('pas-sent').filter({ hasText: 'Documentation sent to it as an update' }).waitFor();
    expect(await textOf(page, '[data-testid=pas-decision]')).toBe('Pended for review');
    // One request, updated in place: the reviewer's queue holds it once, under its id.
    const after = await server.storage.listPendedSubmissions(50);
    expect(after.map((x) => x.id)).toEqual([pended.id]);
    // After a reload the offer is still the update of that request.
    await page.reload();
    await page.getByTestId('documentation-offer').waitFor();
    expect(await page.getByRole('button', { name: /^Submit prior authorization/ }).count()).toBe(0);
    expect(await page.locator('#documentation').getByRole('button', { name: 'Send the documentation to the pended request' }).count()).toBe(1);
    expect(s.problems).toEqual([]);
  }, 90_000);

  it("after a reviewer's denial, the order changed to meet the policy offers its request as what it is: for a reviewer's decision (PAS pends it)", async () => {
    s = await openSession(browser, ARTIFACTS);
    const { page, url, server } = s;
    await page.goto(`${url}/?story=centene-over-dose`);
    await page.getByRole('button', { name: 'Sign order' }).click();
    await page.getByRole('heading', { name: 'What the payer says' }).waitFor();
    await page.locator('#actions').getByRole('button', { name: 'Submit prior authorization', exact: true }).click();
    await page.getByTestId('pas-decision').filter({ hasText: 'Pended for review' }).waitFor();
    const [pended] = await server.storage.listPendedSubmissions(50);
    expect(await decideOnDemo(page, url, pended.id, 'deny', '56 mcg/day is above the labelled 28 mcg/day (CP.PHAR.312 II.A.2)')).toBe(200);
    await page.getByTestId('pas-decision').filter({ hasText: 'Prior authorization denied' }).waitFor({ timeout: 15_000 });

    // The clinician changes the dose to the label's 28 mcg/day and signs again: the rules do not overturn a reviewer's
    // denial, so the request goes to a reviewer, and the button says so.
    await page.getByLabel('Dose').fill('28');
    await page.getByRole('button', { name: 'Sign again' }).click();
    await page.locator('#coverage', { hasText: 'the rules do not overturn a reviewer' }).waitFor();
    const submit = page.locator('#actions').getByRole('button', { name: "Submit prior authorization for a reviewer's decision" });
    expect(await submit.isVisible()).toBe(true);
    await submit.click();
    await page.getByTestId('pas-decision').filter({ hasText: 'Pended for review' }).waitFor();
    await s.shot('changed-after-denial-for-reviewer');
    expect(s.problems).toEqual([]);
  }, 90_000);

  it('PAS: the button is disabled while the request is in flight (a double click sends one), pended survives a refresh, and the reviewer decision appears when it arrives', async () => {
    s = await openSession(browser, ARTIFACTS, { width: 390, height: 844 });
    const { page, url, server } = s;
    await putDocumentationOnFile(s);
    await page.goto(`${url}/?story=centene-missing-mrd`);
    await page.getByRole('button', { name: 'Sign order' }).click();
    await page.getByRole('heading', { name: 'What the payer says' }).waitFor();
    expect(await overflowsSideways(page)).toBeLessThanOrEqual(0);
    const unit = await page.getByLabel('Unit').boundingBox();
    expect(unit!.x + unit!.width).toBeLessThanOrEqual(390);
    await s.shot('phone-signed');

    const submit = page.locator('#actions').getByRole('button', { name: 'Submit prior authorization' });
    const submits: string[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/fhir/Claim/$submit')) submits.push(r.url());
    });
    await submit.dblclick();
    await page.getByTestId('pas-decision').waitFor();
    expect(await textOf(page, '[data-testid=pas-decision]')).toBe('Pended for review');
    expect(await textOf(page, '#pas')).toContain('The payer still needs:');
    // The same button, enabled again, now sends documentation to the pended request as its update (no second request).
    expect(await page.locator('#submit-pas').isDisabled()).toBe(false);
    expect(await textOf(page, '#submit-pas')).toBe('Send the documentation to the pended request');
    expect(submits).toHaveLength(1);
    const pended = await server.storage.listPendedSubmissions(50);
    expect(pended).toHaveLength(1);

    await page.reload();
    await page.getByTestId('pas-decision').waitFor();
    expect(await textOf(page, '[data-testid=pas-decision]')).toBe('Pended for review');
    expect(await page.getByTestId('pas-waiting').isVisible()).toBe(true);
    // The answer from signing is on screen again (the order carries it), dated; pended does not contradict it.
    expect(await textOf(page, '[data-testid=answer-on-file]')).toMatch(/^As the payer answered at the last signing, \d{1,2} [A-Z][a-z]+ \d{4}\.$/);
    expect(await page.getByText('Prior authorization needed — documentation required').isVisible()).toBe(true);
    expect(await page.locator('#stale-note').isVisible()).toBe(false);

    // The reviewer approves through the reviewer API; the page shows it without a reload.
    expect(await decideOnDemo(page, url, pended[0].id, 'approve', 'MRD 0.3 % on the outside flow report')).toBe(200);
    await page.getByTestId('pas-decision').filter({ hasText: /Prior authorization approved: PA-CENTENE-/ }).waitFor({ timeout: 15_000 });
    expect(await textOf(page, '#status')).toContain('approved');
    // The documentation on file no longer offers a request: the order is authorized, its number and period said.
    expect(await textOf(page, '[data-testid=order-authorization]')).toMatch(
      /^Prior authorization approved: PA-CENTENE-\S+, valid from \d{1,2} [A-Z][a-z]+ \d{4} to \d{1,2} [A-Z][a-z]+ \d{4}\.$/,
    );
    expect(await page.getByRole('button', { name: 'Submit prior authorization' }).count()).toBe(0);
    // The reopened chart's signing answer is overtaken by the decision, as on the page that signed.
    expect(await textOf(page, '#stale-note')).toMatch(/decided the prior authorization request: approved .*sign again/);
    expect(await page.getByText('Prior authorization needed — documentation required').isVisible()).toBe(false);
    await page.reload();
    await page.getByTestId('pas-decision').waitFor();
    expect(await textOf(page, '#stale-note')).toMatch(/decided the prior authorization request: approved .*sign again/);
    expect(await page.locator('#actions').isVisible()).toBe(false);
    const approvedNumber = /Prior authorization approved: (PA-CENTENE-\S+)/.exec(await textOf(page, '[data-testid=pas-decision]'))![1];

    // Signing again answers the reviewer's approval: the number was issued on clinical review, not at this signing.
    await page.getByRole('button', { name: 'Sign again' }).click();
    await page.locator('#stale-note').waitFor({ state: 'hidden' });
    expect(await textOf(page, '[data-testid=coverage-headline]')).toMatch(
      new RegExp(`^Prior authorization approved: ${approvedNumber} valid until \\d{1,2} [A-Z][a-z]+ \\d{4}$`),
    );
    expect(await textOf(page, '#coverage')).toContain('Approved on clinical review');
    expect(await overflowsSideways(page)).toBeLessThanOrEqual(0);
    await s.shot('phone-decided');
    expect(s.problems).toEqual([]);
  }, 90_000);
});
