import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadContent } from '../../src/content.js';
import { loadSandboxBundles } from '../../src/sandbox/sandbox-bundles.js';
import { dockerfileRuntimeStage } from '../helpers/dockerfile.js';

/**
 * The production image (Dockerfile, runtime stage) holds only what it COPYs. Rebuild that file tree from the
 * repository and load the service's content from it: the image must serve the same policies, Questionnaires, CQL
 * Libraries and sandbox stories as a checkout (a directory missing from the image loads as empty, silently).
 */
describe('the Docker image carries the content the service reads', () => {
  const root = join(import.meta.dirname, '..', '..');
  const image = mkdtempSync(join(tmpdir(), 'priorpath-image-'));
  afterAll(() => rmSync(image, { recursive: true, force: true }));

  const copies = [...dockerfileRuntimeStage(root).matchAll(/^COPY\s+(?!--from)(\S+)\s+(\S+)\s*$/gm)].map((m) => ({ src: m[1], dest: m[2] }));

  it('loads the same content from the image tree as from the checkout', () => {
    expect(copies.length).toBeGreaterThan(0);
    for (const { src, dest } of copies) cpSync(join(root, src), join(image, dest), { recursive: true });
    const canonicalBase = 'https://priorpath.example/fhir';
    const fromCheckout = loadContent({ root, canonicalBase });
    const fromImage = loadContent({ root: image, canonicalBase });
    expect(fromCheckout.libraries.size).toBeGreaterThan(0);
    expect([...fromImage.libraries.keys()]).toEqual([...fromCheckout.libraries.keys()]);
    expect([...fromImage.questionnaires.keys()]).toEqual([...fromCheckout.questionnaires.keys()]);
    expect(fromImage.policies.map((p) => p.file.id)).toEqual(fromCheckout.policies.map((p) => p.file.id));
    expect(loadSandboxBundles(join(image, 'sandbox')).length).toBe(loadSandboxBundles(join(root, 'sandbox')).length);
  });
});
