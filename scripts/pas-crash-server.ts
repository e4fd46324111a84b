/**
 * A real server process for the PAS crash test (test/pas/pas-crash.test.ts): the PAS and reviewer routers over
 * createStorage, on DATA_DIR (embedded PGlite) or DATABASE_URL, listening on PORT (0: any free port). Prints
 * `listening <port>` on stdout once it accepts requests. It stands in for `src/main.ts` until the lead wires the
 * durable storage and these routers into the app; the crash test then can start main.ts instead.
 *
 *   DATA_DIR=/tmp/pp PORT=3100 node --import tsx scripts/pas-crash-server.ts
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import type { AddressInfo } from 'node:net';
import { loadContent } from '../src/content.js';
import { notFound } from '../src/errors.js';
import { errorHandler } from '../src/http/error-handler.js';
import { requestContext } from '../src/http/request-context.js';
import { createLogger } from '../src/logger.js';
import { createPasRouter } from '../src/pas/pas-router.js';
import { createReviewRouter } from '../src/pas/review-router.js';
import { createStorage } from '../src/storage/create-storage.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const env = process.env;
const logger = createLogger(env.LOG_LEVEL ?? 'info', process.stderr);
if (!env.DATA_DIR && !env.DATABASE_URL) {
  process.stderr.write('pas-crash-server: set DATA_DIR (embedded storage) or DATABASE_URL\n');
  process.exit(1);
}

const content = loadContent({ root, canonicalBase: env.CANONICAL_BASE ?? 'https://priorpath.dev/fhir' });
const storage = await createStorage({ databaseUrl: env.DATABASE_URL, dataDir: env.DATA_DIR ?? './data', logger });

const app = express();
app.disable('x-powered-by');
app.use(requestContext(logger));
app.get('/readyz', (_req, res, next) => {
  storage.ping().then(() => res.json({ status: 'ready' }), next);
});
app.use('/fhir', createPasRouter({ content, storage, logger, defaultPayer: env.DEFAULT_PAYER }));
app.use('/review', createReviewRouter({ storage, logger, reviewToken: env.REVIEW_TOKEN }));
app.use((req, _res, next) => next(notFound(`No route for ${req.method} ${req.path}`)));
app.use(errorHandler(logger));

const server = app.listen(Number(env.PORT ?? 0), () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
const stop = () => {
  server.close(() => {
    void storage.close().then(() => process.exit(0));
  });
  setTimeout(() => process.exit(0), 5000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
