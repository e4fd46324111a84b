import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadContent } from '../../src/content.js';
import { CONTENT_YAML_FILE, contentYamlStamp, contentYamlStats, readYamlCache, recordYaml, useYamlCache } from '../../src/content-yaml.js';
import { ContentError } from '../../src/policies/policy-loader.js';
import { repoRoot } from '../helpers/stories.js';

/**
 * The built service's content comes with its YAML files as JSON, recorded by `npm run build` by the digest of each
 * file's text (start-up without YAML parsing, src/content-yaml.ts). The content is the same either way, and a file a
 * payer's author changed after the build is read as it now stands.
 */
const canonicalBase = 'https://priorpath.dev/fhir';
const dirs: string[] = [];
afterAll(() => {
  useYamlCache(undefined);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A copy of the repository's content, so that a test can edit a policy as an author would. */
function contentCopy(): string {
  const root = mkdtempSync(join(tmpdir(), 'priorpath-yaml-'));
  dirs.push(root);
  cpSync(join(repoRoot, 'cds-services'), join(root, 'cds-services'), { recursive: true });
  mkdirSync(join(root, 'questionnaires'));
  cpSync(join(repoRoot, 'questionnaires'), join(root, 'questionnaires'), { recursive: true });
  return root;
}

describe('content YAML recorded by the build', () => {
  const root = contentCopy();
  const stop = recordYaml();
  const parsed = loadContent({ root, canonicalBase });
  const recorded = stop();

  it('loads the same payers, services and policies from the recorded data, parsing no YAML', () => {
    expect(Object.keys(recorded).length).toBeGreaterThanOrEqual(10);
    const parsedBefore = contentYamlStats.parsed;
    useYamlCache(JSON.parse(JSON.stringify(recorded)) as typeof recorded);
    try {
      const fromRecord = loadContent({ root, canonicalBase });
      expect(contentYamlStats.parsed).toBe(parsedBefore);
      expect(fromRecord.policies.map((p) => p.file)).toEqual(parsed.policies.map((p) => p.file));
      expect([...fromRecord.payers]).toEqual([...parsed.payers]);
      expect(fromRecord.services).toEqual(parsed.services);
    } finally {
      useYamlCache(undefined);
    }
  });

  it("takes an author's edit made after the build, and reports a broken edit naming the file", () => {
    const edited = contentCopy();
    const path = join(edited, 'cds-services', 'policies', 'centene', 'blinatumomab.yaml');
    const text = readFileSync(path, 'utf8');
    expect(text).toMatch(/^title: .+$/m);
    writeFileSync(path, text.replace(/^title: .+$/m, 'title: Blinatumomab (Blincyto), revised'));
    useYamlCache(recorded);
    try {
      const content = loadContent({ root: edited, canonicalBase });
      expect(content.policies.find((p) => p.file.id === 'centene-blinatumomab')?.file.title).toBe('Blinatumomab (Blincyto), revised');
      writeFileSync(path, `${text}\n  : [unclosed\n`);
      expect(() => loadContent({ root: edited, canonicalBase })).toThrow(ContentError);
      expect(() => loadContent({ root: edited, canonicalBase })).toThrow(/centene\/blinatumomab\.yaml: \(yaml\)/);
    } finally {
      useYamlCache(undefined);
    }
  });

  it('names a payer or discovery file that is not YAML as a content problem, not a crash', () => {
    const broken = contentCopy();
    writeFileSync(join(broken, 'cds-services', 'payers', 'centene.yaml'), 'key: centene\nlabel: [unclosed\n');
    expect(() => loadContent({ root: broken, canonicalBase })).toThrow(ContentError);
    expect(() => loadContent({ root: broken, canonicalBase })).toThrow(/payers\/centene\.yaml: \(yaml\)/);
  });

  it('reads the build file only when the yaml package is the version that made it', () => {
    const dist = mkdtempSync(join(tmpdir(), 'priorpath-yaml-dist-'));
    dirs.push(dist);
    expect(readYamlCache(dist, contentYamlStamp())).toBeUndefined();
    writeFileSync(join(dist, CONTENT_YAML_FILE), JSON.stringify({ stamp: contentYamlStamp(), files: recorded }));
    expect(readYamlCache(dist, contentYamlStamp())).toEqual(recorded);
    writeFileSync(join(dist, CONTENT_YAML_FILE), JSON.stringify({ stamp: 'yaml 0.0.1', files: recorded }));
    expect(readYamlCache(dist, contentYamlStamp())).toBeUndefined();
    writeFileSync(join(dist, CONTENT_YAML_FILE), '{"stamp":');
    expect(readYamlCache(dist, contentYamlStamp())).toBeUndefined();
  });
});
