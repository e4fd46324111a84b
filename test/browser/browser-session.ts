import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
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
