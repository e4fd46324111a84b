import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './stories.js';

/** The Dockerfile's final stage, the production image: its text from the last FROM on. */
export function dockerfileRuntimeStage(root = repoRoot): string {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  return dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
}

/** The image's environment: the final stage's one-line `ENV NAME=value` settings. */
export function dockerfileEnv(root = repoRoot): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of dockerfileRuntimeStage(root).matchAll(/^ENV\s+([A-Z_][A-Z0-9_]*)=(\S+)\s*$/gm)) env[m[1]] = m[2];
  return env;
}

/** The image's command (the final stage's `CMD [...]`, exec form), or undefined. */
export function dockerfileCmd(root = repoRoot): string[] | undefined {
  const json = /^CMD\s+(\[.*\])\s*$/m.exec(dockerfileRuntimeStage(root))?.[1];
  return json ? (JSON.parse(json) as string[]) : undefined;
}
