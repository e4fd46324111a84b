import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isDeepStrictEqual } from 'node:util';
import type * as Yaml from 'yaml';
import { readBuildFile } from './build-file.js';

/**
 * The content's YAML files (payers, discovery entries, fact libraries, policies: docs/design.md §5), read as data.
 *
 * Parsing YAML was the largest piece of the built service's start-up: about 0.3–0.5 s of the main thread for the
 * content's 200 KB, while start to ready waits for the content (docs/design.md §9, README "Start to ready"). A
 * file's data depends only on its text and the `yaml` package's version, so `npm run build` records each file's data
 * as JSON by the SHA-256 of its text (`recordYaml`) into `dist/content-yaml.json`, and the built service hands them in
 * (`useYamlCache`) while its content loads. A file whose text changed since the build has another digest and is
 * parsed as before: an author's edit always takes effect at the next start. The `yaml` package itself is loaded only
 * when a file has to be parsed.
 */

/** Where `npm run build` writes the recorded data, inside `dist/`. */
export const CONTENT_YAML_FILE = 'content-yaml.json';

const requireHere = createRequire(import.meta.url);
let known: Map<string, string> | undefined;
let recorded: Map<string, string> | undefined;

/** How many content files were parsed as YAML in this process (the others came recorded by the build). */
export const contentYamlStats = { parsed: 0 };

/** The version of the `yaml` package that made a record: a file recorded by another version is not used. */
export function contentYamlStamp(): string {
  return `yaml ${(requireHere('yaml/package.json') as { version: string }).version}`;
}

/** Hands in recorded data (JSON texts by digest), as `recordYaml` returned them; `undefined` drops them. */
export function useYamlCache(files: Record<string, string> | undefined): void {
  known = files ? new Map(Object.entries(files)) : undefined;
}

/** Starts recording the data of the files parsed from now on; the function returned stops and gives them. */
export function recordYaml(): () => Record<string, string> {
  const recording = (recorded = new Map());
  return () => {
    if (recorded === recording) recorded = undefined;
    return Object.fromEntries(recording);
  };
}

/**
 * A content YAML file's data. Throws the file system's or the YAML parser's error (the loaders report it as a content
 * problem naming the file). Each call returns a fresh object, so no caller can change another's.
 */
export function readYamlFile(path: string): unknown {
  const text = readFileSync(path, 'utf8');
  const digest = known || recorded ? createHash('sha256').update(text).digest('base64url') : '';
  const hit = known?.get(digest);
  if (hit !== undefined) return JSON.parse(hit) as unknown;
  contentYamlStats.parsed++;
  const data = (requireHere('yaml') as typeof Yaml).parse(text) as unknown;
  if (recorded) {
    // Only data JSON carries unchanged is recorded (YAML's .inf, .nan or an empty document would not be).
    const json = JSON.stringify(data);
    if (json !== undefined && isDeepStrictEqual(JSON.parse(json), data)) recorded.set(digest, json);
  }
  return data;
}

/**
 * The data `npm run build` recorded into `distDir`, when recorded by the `yaml` version named by `stamp`; otherwise
 * undefined, and every file is parsed as it loads. A missing or unreadable file only costs start-up time.
 */
export function readYamlCache(distDir: string, stamp: string): Record<string, string> | undefined {
  return readBuildFile<string>(distDir, CONTENT_YAML_FILE, stamp, 'files');
}
