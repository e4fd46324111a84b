import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { loadContent } from '../../src/content.js';
import { createLogger } from '../../src/logger.js';
import { createSandboxAuth } from '../../src/sandbox-auth/index.js';
import { createSandboxFhir, loadSandboxBundles } from '../../src/sandbox/sandbox-fhir.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';

export const repoRoot = join(import.meta.dirname, '..', '..');

export interface DemoServer {
  url: string;
  storage: MemoryStorage;
  close(): Promise<void>;
}

/**
 * The whole service in-process on 127.0.0.1 and a free port, wired as src/serve.ts wires it with the sandbox on:
 * CDS_AUTH=required (createApp trusts the sandbox EHR's CDS client, so the demo page's order-sign passes real JWT
 * verification), content from the repository, memory storage, the sandbox FHIR server advertising the sandbox SMART
 * endpoints, and createApp mounting the payer FHIR API (DTR, PAS), /sandbox/auth and the web router.
 */
export async function startDemoServer(): Promise<DemoServer> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  const config = loadConfig({
    PUBLIC_BASE_URL: url,
    PORT: String(port),
    CDS_AUTH: 'required',
    SANDBOX: 'on',
    LOG_LEVEL: 'silent',
    // The page's hooks read the in-process sandbox EHR over HTTP, on a CI machine that also runs chromium and the other
    // suites: these tests are about what the screens show, not how fast, so a loaded machine must not turn a slow read
    // into a 412 (EHR_BUDGET_MS is 4 s in production, where CRD allows 5 s).
    EHR_TIMEOUT_MS: '15000',
    EHR_BUDGET_MS: '30000',
  });
  const logger = createLogger(config.logLevel);
  const content = loadContent({ root: repoRoot, canonicalBase: config.canonicalBase });
  const storage = new MemoryStorage();
  const sandboxAuth = createSandboxAuth({ publicBaseUrl: config.publicBaseUrl });
  const sandbox = await createSandboxFhir({
    bundles: loadSandboxBundles(join(repoRoot, 'sandbox')),
    smart: sandboxAuth.endpoints,
    checkAccess: sandboxAuth.checkAccess,
    logger,
  });
  server.on('request', createApp({ config, content, storage, logger, sandboxFhir: sandbox.router, sandboxAuth }));

  return {
    url,
    storage,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
