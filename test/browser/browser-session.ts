import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { repoRoot, startDemoServer } from './start-demo-server.js';
import type { DemoServer } from './start-demo-server.js';

export const CHROMIUM = '/usr/bin/chromium';
export const hasChromium = existsSync(CHROMIUM);

/** Visible text of a region, whitespace-collapsed, as a person reads it. */
export async function textOf(page: Page, selector: string): Promise<string> {
  return (await page.locator(selector).innerText()).replace(/\s+/g, ' ');
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** One test's world: a fresh service (fresh sandbox EHR), a browser context, and what went wrong in the page. */
export interface BrowserSession {
  server: DemoServer;
  url: string;
  context: BrowserContext;
  page: Page;
  /** Console errors, uncaught exceptions and failed requests. */
  problems: string[];
  /** Requests to any other host (the pages load nothing from outside). */
  outside: string[];
  /** A screenshot in the test's artifacts; the whole page unless `viewportOnly`. */
  shot(name: string, viewportOnly?: boolean): Promise<string>;
  close(): Promise<void>;
}

export async function openSession(
  browser: Browser,
  artifacts: string,
  viewport = { width: 1280, height: 900 },
): Promise<BrowserSession> {
  const server = await startDemoServer();
  const context = await browser.newContext({
    viewport,
    ...(viewport.width < 500 ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}),
  });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const problems: string[] = [];
  const outside: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error on ${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught exception on ${page.url()}: ${e.message}`));
  page.on('requestfailed', (r) => {
    // A page left mid-request (navigation, pagehide) cancels it: that is not a failure of the page.
    if (r.failure()?.errorText === 'net::ERR_ABORTED') return;
    problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`);
  });
  page.on('request', (r) => {
    if (!r.url().startsWith(server.url) && !r.url().startsWith('data:')) outside.push(r.url());
  });
  mkdirSync(artifacts, { recursive: true });
  let step = 0;
  return {
    server,
    url: server.url,
    context,
    page,
    problems,
    outside,
    shot: async (name, viewportOnly = false) => {
      const path = join(artifacts, `${String(++step).padStart(2, '0')}-${name}.png`);
      await page.screenshot({ path, fullPage: !viewportOnly });
      return path;
    },
    close: async () => {
      await context.close();
      await server.close();
    },
  };
}

/** The README screenshots live here; a test rewrites one only when it is missing or UPDATE_SCREENSHOTS=1. */
export const SCREENSHOTS = join(repoRoot, 'docs', 'screenshots');

/** Whether the page scrolls sideways (content wider than the viewport). */
export async function overflowsSideways(page: Page): Promise<number> {
  return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

/**
 * Visible text whose colour against its background falls under WCAG 2.2 AA (1.4.3): 4.5:1, or 3:1 for large text
 * (24 px, or 18.66 px bold). Each entry: the ratio, the element and its text. Disabled controls are exempt.
 */
export async function lowContrastText(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const channel = (v: number) => {
      const c = v / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    };
    const rgba = (c: string) => (c.match(/[\d.]+/g) ?? ['0', '0', '0']).map(Number);
    const luminance = ([r, g, b]: number[]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    // The first opaque background up the tree (the page is white under everything).
    const background = (el: Element | null): number[] => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgba(getComputedStyle(e).backgroundColor);
        if (c.length < 4 || c[3] > 0) return c;
      }
      return [255, 255, 255];
    };
    const out: string[] = [];
    for (const el of document.querySelectorAll<HTMLElement>('body *')) {
      const text = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent?.trim());
      if (!text || !el.checkVisibility() || el.closest(':disabled, [aria-disabled=true]')) continue;
      const style = getComputedStyle(el);
      const fg = luminance(rgba(style.color));
      const bg = luminance(background(el));
      const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5))
        out.push(`${ratio.toFixed(2)}:1 ${el.tagName.toLowerCase()}.${el.className} "${(el.textContent ?? '').trim().slice(0, 40)}"`);
    }
    return out;
  });
}

/**
 * Page script (plain JavaScript, run inside an async function) that gives LHC-Forms the FHIR context the DTR app gives
 * it after a SMART launch: the sandbox EHR as the FHIR server and the sandbox patient centene-missing-mrd, so launch
 * contexts and x-fhir-query variables resolve. Leaves `util` (LForms.Util) defined and the form element ready.
 */
export const LFORMS_SANDBOX_CONTEXT = `
      const util = window.LForms.Util;
      const base = location.origin + '/sandbox/fhir';
      function get(url) {
        const u = typeof url === 'string' ? url : url.url;
        return fetch(u.startsWith('http') ? u : base + '/' + u.replace(/^\\//, ''), { headers: { Accept: 'application/fhir+json' } }).then(function (r) { return r.json(); });
      }
      const patient = await get('Patient/centene-missing-mrd');
      util.setFHIRContext({ getFhirVersion: async function () { return '4.0.1'; }, request: get, patient: { id: patient.id, read: async function () { return patient; } }, user: { id: null, fhirUser: null, read: async function () { return null; } }, encounter: { id: null, read: async function () { return null; } } }, { patient: patient });
      await customElements.whenDefined('wc-lhc-form');
`;

/**
 * A page with the DTR app's renderer (LHC-Forms, as vendored and served under /dtr/vendor) loaded and an empty `#form`
 * element, on the demo server's origin so the page may call it. `watch` sees the page before anything loads (to
 * collect its console errors).
 */
export async function openLformsPage(browser: Browser, serverUrl: string, watch?: (page: Page) => void): Promise<Page> {
  const page = await browser.newPage();
  watch?.(page);
  await page.goto(`${serverUrl}/healthz`);
  const lforms = `${serverUrl}/dtr/vendor/lforms-40.1.3`;
  await page.setContent(`<!doctype html><html><head>
      <link rel="stylesheet" href="${lforms}/styles.css">
      <script defer src="${lforms}/assets/lib/zone.min.js"></script>
      <script defer src="${lforms}/lhc-forms.js"></script>
      <script defer src="${lforms}/lformsFHIR.min.js"></script>
      </head><body><div id="form"></div></body></html>`);
  await page.waitForFunction(() => !!(window as unknown as { LForms?: { Util?: unknown } }).LForms?.Util);
  return page;
}

/**
 * The demo server and a headless Chromium for a `describe` block: started before its tests, closed after them. Read
 * `browser` and `server` inside the tests (they exist once the block's beforeAll has run).
 */
export function useDemoBrowser(): { readonly browser: Browser; readonly server: DemoServer } {
  let browser: Browser | undefined;
  let server: DemoServer | undefined;
  beforeAll(async () => {
    server = await startDemoServer();
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });
  return {
    get browser() {
      if (!browser) throw new Error('the browser is not started: read it inside a test');
      return browser;
    },
    get server() {
      if (!server) throw new Error('the demo server is not started: read it inside a test');
      return server;
    },
  };
}

/**
 * On the demo chart, Kwame's Blincyto order (story centene-missing-mrd) signed and sent as a PAS request without the
 * MRD result: pended for review.
 */
export async function pendKwameOnDemo(page: Page, url: string): Promise<void> {
  await page.goto(`${url}/?story=centene-missing-mrd`);
  await page.getByRole('button', { name: 'Sign order' }).click();
  await page.getByRole('heading', { name: 'What the payer says' }).waitFor();
  await page.locator('#actions').getByRole('button', { name: 'Submit prior authorization' }).click();
  await page.getByTestId('pas-decision').waitFor();
}

/**
 * A reviewer decides a pended request through the demo's reviewer API (demo sign-in token), as the workbench would:
 * the answer's status, for the test to assert.
 */
export async function decideOnDemo(page: Page, url: string, requestId: string, decision: 'approve' | 'deny', reason: string): Promise<number> {
  const { token } = (await (await page.request.post(`${url}/review/demo-sign-in`)).json()) as { token: string };
  const decided = await page.request.post(`${url}/review/${requestId}/decision`, {
    headers: { Authorization: `Bearer ${token}` },
    data: { decision, reviewer: 'Dana Reyes, MD', reason },
  });
  return decided.status();
}
