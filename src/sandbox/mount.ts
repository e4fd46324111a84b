import { join } from 'node:path';
import type { Router } from 'express';
import type { Logger } from '../logger.js';
import { createSandboxFhir, loadSandboxBundles } from './sandbox-fhir.js';
import type { SandboxFhirOptions, SmartEndpoints } from './sandbox-fhir.js';

/**
 * Loads the sandbox stories (dates shifted so they stay recent) and builds the embedded EHR FHIR router
 * (design.md §2 "Sandbox": the demo EHR FHIR server). Mounted at /sandbox/fhir only when the sandbox is on.
 */
export async function mountSandbox(
  root: string,
  logger: Logger,
  smart?: SmartEndpoints,
  checkAccess?: SandboxFhirOptions['checkAccess'],
): Promise<{ router: Router; resources: number; ms: number }> {
  const started = performance.now();
  const sandbox = await createSandboxFhir({ bundles: loadSandboxBundles(join(root, 'sandbox')), logger, smart, checkAccess });
  return { router: sandbox.router, resources: sandbox.startup.resources, ms: performance.now() - started };
}
