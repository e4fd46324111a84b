import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { createSandboxAuth } from '../../src/sandbox-auth/index.js';
import { buildWebAssets, readBuiltWebAssets, WEB_ENTRIES } from '../../src/web/build-web.js';
import { createWebRouter } from '../../src/web/index.js';

/**
 * The production image has no bundler (`npm ci --omit=dev`): `npm run build` writes the web bundles into
 * dist/public, and the server run from dist/ serves those bytes instead of bundling.
 */
describe('prebuilt web bundles (production build)', () => {
  const BASE = 'http://priorpath.test';
  const dir = mkdtempSync(join(tmpdir(), 'priorpath-public-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('serves exactly the files the build wrote, with their source maps', async () => {
    await buildWebAssets({ outdir: dir });
    // Mark one bundle so the test can tell the prebuilt file from an in-memory build.
    writeFileSync(join(dir, 'demo', 'demo.js'), '/* prebuilt */ export {};\n');
    const app = express();
    app.use(createWebRouter({ publicBaseUrl: BASE, sandboxAuth: createSandboxAuth({ publicBaseUrl: BASE }), prebuiltDir: dir }));
    const demo = await request(app).get('/demo/demo.js');
    expect(demo.status).toBe(200);
    expect(demo.headers['content-type']).toMatch(/javascript/);
    expect(demo.text).toBe('/* prebuilt */ export {};\n');
    for (const path of Object.keys(WEB_ENTRIES).filter((p) => !p.startsWith('/review/'))) {
      expect((await request(app).get(path)).status, path).toBe(200);
      expect((await request(app).get(`${path}.map`)).status, `${path}.map`).toBe(200);
    }
  });

  it('reports an incomplete build as missing, so the server bundles in memory instead of serving half of it', () => {
    const partial = mkdtempSync(join(tmpdir(), 'priorpath-public-partial-'));
    try {
      expect(readBuiltWebAssets(partial)).toBeUndefined();
    } finally {
      rmSync(partial, { recursive: true, force: true });
    }
  });
});
