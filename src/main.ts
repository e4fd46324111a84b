import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApp } from './app.js';
import { ConfigError, loadConfigFromProcess } from './config.js';
import { loadContent } from './content.js';
import { createLogger } from './logger.js';
import { ContentError } from './policies/policy-loader.js';
import { createStorage } from './storage/create-storage.js';
import { deferredStorage } from './storage/deferred-storage.js';
import { mountSandbox } from './sandbox/mount.js';
import { createSandboxAuth } from './sandbox-auth/index.js';

const started = performance.now();
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfigFromProcess();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`priorpath: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  let content;
  try {
    content = loadContent({ root, canonicalBase: config.canonicalBase });
  } catch (err) {
    if (err instanceof ContentError) {
      process.stderr.write(`priorpath: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  // Listen at once; storage calls wait until the durable store is open (PGlite's first start takes seconds).
  const opening = createStorage({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger });
  opening.catch((err: unknown) => {
    process.stderr.write(`priorpath: storage failed to open: ${(err as Error).message}\n`);
    process.exit(1);
  });
  const storage = deferredStorage(opening);
  const sandboxAuth = config.sandbox ? createSandboxAuth({ publicBaseUrl: config.publicBaseUrl }) : undefined;
  const sandbox = config.sandbox ? await mountSandbox(root, logger, sandboxAuth?.endpoints, sandboxAuth?.checkAccess) : undefined;
  const app = createApp({ config, content, storage, logger, sandboxFhir: sandbox?.router, sandboxAuth });
  const server = app.listen(config.port, () => {
    logger.info(
      { port: config.port, publicBaseUrl: config.publicBaseUrl, policies: content.policies.length, contentMs: Math.round(content.loadMs), sandboxMs: sandbox ? Math.round(sandbox.ms) : undefined, startupMs: Math.round(performance.now() - started), auth: config.cdsAuth, sandbox: config.sandbox },
      'PriorPath listening',
    );
  });
  const stop = () => {
    server.close(() => {
      void storage.close().then(() => process.exit(0));
    });
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`priorpath: failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
