import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Router } from 'express';

/**
 * Loads the sandbox stories and builds the embedded EHR FHIR router (design.md §2 "Sandbox EHR FHIR server").
 * Returns undefined when the sandbox module is absent, so the service still starts.
 */
export async function mountSandbox(root: string): Promise<Router | undefined> {
  const dir = join(root, 'sandbox');
  if (!existsSync(join(root, 'src', 'sandbox', 'sandbox-fhir.ts'))) return undefined;
  const modulePath = './sandbox-fhir.js';
  const mod = (await import(modulePath)) as unknown as {
    createSandboxFhir: (o: { bundles: unknown[] }) => Promise<{ router: Router }>;
    loadSandboxBundles: (dir: string, o?: { today?: string }) => unknown[];
  };
  const { router } = await mod.createSandboxFhir({ bundles: mod.loadSandboxBundles(dir) });
  return router;
}
