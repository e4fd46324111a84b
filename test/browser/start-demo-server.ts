import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import express from 'express';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { loadContent } from '../../src/content.js';
import { errorHandler } from '../../src/http/error-handler.js';
import { createLogger } from '../../src/logger.js';
import { createSandboxAuth } from '../../src/sandbox-auth/index.js';
import { createSandboxFhir, loadSandboxBundles } from '../../src/sandbox/sandbox-fhir.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { createWebRouter } from '../../src/web/index.js';

export const repoRoot = join(import.meta.dirname, '..', '..');

export interface DemoServer {
  url: string;
  storage: MemoryStorage;
  close(): Promise<void>;
}

/**
 * The whole service in-process on 127.0.0.1 and a free port, wired as src/main.ts wires it with the sandbox on:
 * CDS_AUTH=required with the sandbox EHR's CDS client as the one trusted issuer (so the demo page's order-sign
 * passes real JWT verification), content from the repository, memory storage, the sandbox FHIR server advertising
 * the sandbox SMART endpoints, the payer FHIR API (DTR and PAS) from createApp, the sandbox auth router and the web
 * router in front.
 */
export async function startDemoServer(): Promise<DemoServer> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  const sandboxAuth = createSandboxAuth({ publicBaseUrl: url });
  const config = loadConfig({
    PUBLIC_BASE_URL: url,
    PORT: String(port),
    CDS_AUTH: 'required',
    CDS_TRUSTED_CLIENTS: JSON.stringify([{ iss: sandboxAuth.cdsClient.iss, jwks: sandboxAuth.cdsClient.jwks }]),
    SANDBOX: 'on',
    LOG_LEVEL: 'silent',
  });
  const logger = createLogger(config.logLevel);
  const content = loadContent({ root: repoRoot, canonicalBase: config.canonicalBase });
  const storage = new MemoryStorage();
  const sandbox = await createSandboxFhir({
    bundles: loadSandboxBundles(join(repoRoot, 'sandbox')),
    smart: sandboxAuth.endpoints,
    logger,
  });
  const app = createApp({ config, content, storage, logger, sandboxFhir: sandbox.router });

  const outer = express();
  outer.disable('x-powered-by');
  outer.use('/sandbox/auth', sandboxAuth.router);
  outer.use(createWebRouter({ publicBaseUrl: url, sandboxAuth, logger }));
  outer.use(app);
  outer.use(errorHandler(logger));
  server.on('request', outer);

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
