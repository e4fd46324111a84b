import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SubscriptionNotifier } from './pas/subscription-notifier.js';
import { checkConfigAgainstContent, ConfigError, configHelp, loadConfigFromProcess, payerKeysOnDisk, withBoundPort } from './config.js';
import type { Config } from './config.js';
import { answerClientError } from './http/client-error.js';
import { ConnectionDrain } from './http/connection-drain.js';
import { InFlight } from './http/in-flight.js';
import { serverTimeouts } from './http/server-timeouts.js';
import { createLogger } from './logger.js';
import { createStorage } from './storage/create-storage.js';
import { deferredStorage } from './storage/deferred-storage.js';
import { StorageUnavailableError } from './storage/storage.js';
import { pgliteTemplateData } from './storage/pglite-template.js';
import type { SandboxAuth } from './sandbox-auth/index.js';
import type { mountSandbox } from './sandbox/mount.js';
import type { Router } from 'express';

const started = performance.now();
const here = fileURLToPath(import.meta.url);
const root = join(dirname(here), '..');
/** Run as built JavaScript (`node dist/main.js`, which imports this file): the web bundles were written ahead into dist/public. */
const built = here.endsWith('.js');
/** How long a SIGTERM drain may take: in-flight hooks are bounded by EHR_TIMEOUT_MS (default 2 s) well inside it. */
const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
  // The service takes no arguments: `--help` lists the variables; anything else is refused rather than ignored.
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(configHelp());
    process.exit(0);
  }
  if (args.length > 0) {
    process.stderr.write(`priorpath: unknown argument ${JSON.stringify(args[0])}: the service is configured by environment variables (--help lists them)\n`);
    process.exit(1);
  }
  let config: Config;
  try {
    config = loadConfigFromProcess();
    // Before storage opens: a bad DEFAULT_PAYER must stop start-up with its own message, not race the storage.
    checkConfigAgainstContent(config, payerKeysOnDisk(root));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`priorpath: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  // Storage opens first: the embedded store copies its template and starts on its own thread while the rest of the
  // service (Express, FHIRPath, the policies: about a second of module loading and compilation) loads here. So this
  // file imports only configuration, logging and storage statically; everything else is imported after this line. Listen at once: hooks are answered while the store opens (their records are written once it is
  // open); PAS, DTR and the reviewer wait for it (deferred-storage.ts).
  const pgliteTemplate = built ? pgliteTemplateData(join(root, 'dist', 'pglite-template')) : undefined;
  // PostgreSQL: the pool's first connection is made once the content is loaded. loadContent blocks the event loop for
  // seconds on a loaded host; a connection begun before it timed out meanwhile (its server's answer lay unread), and
  // of three replicas started at once one exited "PostgreSQL cannot be reached" (review s48). PGlite opens in its
  // worker thread, which goes on while the content loads.
  let contentLoaded = () => {};
  const afterContent = new Promise<void>((resolve) => (contentLoaded = resolve));
  const open = () => createStorage({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, pgliteTemplate, logger });
  const opening = config.databaseUrl ? afterContent.then(open) : open();
  // A storage failure is reported once the configuration has been checked against the content below: a bad setting
  // is named first, whichever fails sooner.
  let configChecked = false;
  let storageFailure: Error | undefined;
  const storageFailed = (err: Error) => {
    process.stderr.write(`priorpath: storage failed to open: ${startupStorageMessage(err, config.databaseUrl !== undefined)}\n`);
    process.exit(1);
  };
  opening.catch((err: unknown) => {
    storageFailure = err as Error;
    if (configChecked) storageFailed(storageFailure);
  });
  // SIGTERM or SIGINT while starting (an orchestrator giving up on a slow start, a developer's Ctrl-C): nothing has been
  // answered, so there is nothing to drain, but the store may be mid-open (a new DATA_DIR being copied from its
  // template): it finishes opening and is closed, releasing DATA_DIR's lock, before the exit 0, and the service never
  // starts listening. Node's default, dying at once on the signal, left a stale lock and maybe a half-made DATA_DIR.
  let stoppedWhileStarting = false;
  const stopWhileStarting = (signal: NodeJS.Signals) => {
    if (stoppedWhileStarting) return;
    stoppedWhileStarting = true;
    logger.info({ signal }, 'stopping during start-up');
    // Bounded as the drain is: a store still opening after the grace period is left (its lock is taken over later).
    const grace = new Promise<void>((resolve) => setTimeout(() => {
      logger.warn({ graceMs: SHUTDOWN_GRACE_MS }, 'storage still opening; exiting without closing it');
      resolve();
    }, SHUTDOWN_GRACE_MS).unref());
    void Promise.race([opening.then((s) => s.close()).catch(() => {}), grace]).then(() => process.exit(0));
  };
  process.on('SIGTERM', stopWhileStarting);
  process.on('SIGINT', stopWhileStarting);
  const [{ loadContent }, { ContentError }, { createApp, requestListener }, fhirPath, { readParseTrees }, contentYaml] = await Promise.all([
    import('./content.js'),
    import('./policies/policy-loader.js'),
    import('./app.js'),
    import('./fhir/fhirpath.js'),
    import('./fhir/parse-trees-file.js'),
    import('./content-yaml.js'),
  ]);
  let content;
  try {
    // Built: the content's FHIRPath expressions come parsed and its YAML files as JSON (npm run build), about 200 and
    // 300 ms less start-up. A file or expression changed since the build is parsed as before.
    if (built) {
      fhirPath.useParseTrees(readParseTrees(join(root, 'dist'), fhirPath.parseTreeStamp()));
      contentYaml.useYamlCache(contentYaml.readYamlCache(join(root, 'dist'), contentYaml.contentYamlStamp()));
    }
    try {
      content = loadContent({ root, canonicalBase: config.canonicalBase });
    } finally {
      fhirPath.useParseTrees(undefined);
      fhirPath.forgetTreeIds();
      contentYaml.useYamlCache(undefined);
    }
    checkConfigAgainstContent(config, content.payers.keys());
  } catch (err) {
    if (err instanceof ContentError || err instanceof ConfigError) {
      process.stderr.write(`priorpath: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  configChecked = true;
  contentLoaded();
  if (storageFailure) storageFailed(storageFailure);
  const storage = deferredStorage(opening, { onLateWriteError: (err, method) => logger.error({ err, method }, 'a record kept while storage opened could not be written') });
  // A client sending its request slower than the bounds (a slowloris body) is answered 408, not waited on for 5 min.
  const server = createServer(serverTimeouts(config.attachmentBodyMaxBytes));
  // A port that cannot be had (in use, not permitted) stops start-up with its own message and exit 1, as a bad setting
  // does: a service that logged "listening" and answered nothing would look up to an operator and to an orchestrator.
  server.once('error', (err: NodeJS.ErrnoException) => {
    if (server.listening) return;
    process.stderr.write(`priorpath: cannot listen on port ${config.port}: ${err.code ?? err.message}\n`);
    // The store may still be opening (a new DATA_DIR being copied from its template): let it close, for at most 2 s.
    void Promise.race([opening.then((s) => s.close()).catch(() => {}), new Promise((resolve) => setTimeout(resolve, 2_000))]).then(() => process.exit(1));
  });
  // PORT=0 with the base URL derived from the port: bind first, so that every URL built from the base (the sandbox's
  // SMART endpoints below, discovery and package links, JWT audiences, the token endpoint) names the port bound, not
  // `:0`. Until the app exists a request (nobody has been told the port yet) gets the 503 every "not yet" gets.
  const early = (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(503, { 'Retry-After': '5', 'Content-Type': 'application/fhir+json' });
    res.end(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'transient', diagnostics: 'starting' }] }));
  };
  if (config.port === 0 && config.publicBaseUrlFromPort) {
    server.on('request', early);
    await new Promise<void>((resolve) => server.listen(0, resolve));
    config = withBoundPort(config, (server.address() as AddressInfo).port);
  }
  // The sandbox (Medplum's FHIR router and definitions, the SMART sandbox, the web apps) is loaded only when it is
  // on: a production process never pays its start-up time or memory.
  let sandboxAuth: SandboxAuth | undefined;
  let sandbox: Pick<Awaited<ReturnType<typeof mountSandbox>>, 'router' | 'ms'> | undefined;
  if (config.sandbox) {
    const { createSandboxAuth } = await import('./sandbox-auth/index.js');
    const { mountSandbox } = await import('./sandbox/mount.js');
    sandboxAuth = createSandboxAuth({ publicBaseUrl: config.publicBaseUrl });
    sandbox = config.fhirSandboxUrl
      ? await externalSandbox(config.fhirSandboxUrl, logger, sandboxAuth)
      : await mountSandbox(root, logger, sandboxAuth.endpoints, sandboxAuth.checkAccess);
    // The sandbox hands anyone who asks a payer API token and a signed CDS client JWT (its demo EHR's, README
    // "Sandbox"): beside real clients that is an open door, so say so where an operator looks.
    if (config.payerApiClients.length > 0 || config.trustedClients.length > 0) {
      logger.warn(
        { payerApiClients: config.payerApiClients.length, cdsTrustedClients: config.trustedClients.length },
        'SANDBOX=on beside configured clients: /sandbox/payer-token and /sandbox/auth/cds-token give any caller the sandbox EHR\'s tokens; set SANDBOX=off (or NODE_ENV=production) for a real deployment',
      );
    }
  } else if (config.fhirSandboxUrl) {
    logger.warn('FHIR_SANDBOX_URL is set but the sandbox is off (SANDBOX=off or NODE_ENV=production): the service does not use it');
  }
  const webAssetsDir = built ? join(root, 'dist', 'public') : undefined;
  let draining = false;
  // A hook whose client left still finishes within EHR_BUDGET_MS of its arrival (all of its EHR reads) and the write
  // queue's 2 s; the drain waits that long. (EHR_TIMEOUT_MS was one read's bound, not the hook's.)
  const inFlight = new InFlight(Math.min(config.ehrBudgetMs + 3_000, SHUTDOWN_GRACE_MS - 2_000));
  // Work no hook needs (the DTR catalog; fhirpath.js's engine, which only an evaluation the compiled code cannot model
  // is handed to) is left until a second after storage is open, so neither listening nor the readiness answer waits
  // for it; whatever needs it first makes it then.
  const deferred: (() => void)[] = [fhirPath.loadReferenceEngine];
  const app = createApp({ config, content, storage, logger, sandboxFhir: sandbox?.router, sandboxAuth, webAssetsDir, isDraining: () => draining, inFlight, defer: (work) => deferred.push(work) });
  // How many of the content's FHIRPath expressions run compiled to JavaScript, and how many by fhirpath.js (counts).
  const { fhirPathStats } = fhirPath;
  const fhirpath = { compiled: fhirPathStats.compiled, fallback: fhirPathStats.fallback, parsed: fhirPathStats.parsed };
  // Hook calls take a direct path to the hook route's own middleware and handler (http/direct-hook.ts); the rest is
  // the Express app.
  server.off('request', early);
  server.on('request', requestListener(app));
  const listening = () => {
    logger.info(
      { fhirpath, yamlParsed: contentYaml.contentYamlStats.parsed, port: (server.address() as AddressInfo | null)?.port ?? config.port, publicBaseUrl: config.publicBaseUrl, policies: content.policies.length, contentMs: Math.round(content.loadMs), sandboxMs: sandbox ? Math.round(sandbox.ms) : undefined, startupMs: Math.round(performance.now() - started), auth: config.cdsAuth, sandbox: config.sandbox },
      'PriorPath listening',
    );
    // Notifications queued before a restart (or by a replica that stopped) go out now.
    (app.locals.subscriptionNotifier as SubscriptionNotifier).kick();
    (app.locals.subscriptionNotifier as SubscriptionNotifier).sweepPended();
    (app.locals.subscriptionNotifier as SubscriptionNotifier).heartbeats();
    // The deferred work, each in its own turn of the event loop, so a request arriving meanwhile waits for one.
    const runDeferred = () => {
      const work = deferred.shift();
      if (!work) return;
      work();
      setImmediate(runDeferred);
    };
    void opening.then(
      () => setTimeout(runDeferred, 1_000).unref(),
      () => {},
    );
  };
  process.off('SIGTERM', stopWhileStarting);
  process.off('SIGINT', stopWhileStarting);
  if (stoppedWhileStarting) return;
  if (server.listening) listening();
  else server.listen(config.port, listening);
  // A request Node's parser refuses (headers over 16 KiB, a malformed header) is answered with an OperationOutcome too.
  server.on('clientError', answerClientError);
  // SIGTERM drains: report not ready, stop accepting connections (after DRAIN_ACCEPT_MS), let every connection close once it has answered what it was sent
  // (responses from then on say `Connection: close`; a connection answering nothing is closed once it has been silent
  // long enough for a request sent before the signal to have arrived: http/connection-drain.ts), let the handlers
  // finish (each is bounded by EHR_TIMEOUT_MS and the storage timeouts), close storage, exit 0. "Finish" is the
  // handler's answer, not the connection's end: a client that gave up has left a hook still running, which must
  // record its assertion before storage closes (http/in-flight.ts). Past the grace period (a request body that never
  // finishes arriving), the connections are cut and storage still closes, for at most 2 s, before the exit 1.
  // The listening socket keeps accepting for DRAIN_ACCEPT_MS (and until the kernel's accept queue is seen empty) while
  // /readyz already answers 503: a connection the kernel completed before the signal is answered, not reset.
  const connections = new ConnectionDrain(server, undefined, undefined, config.drainAcceptMs);
  let closing: Promise<void> | undefined;
  const closeStorage = () => (closing ??= storage.close().catch((err: unknown) => logger.error({ err }, 'storage close failed')));
  const stop = (signal: string) => {
    if (draining) return;
    draining = true;
    (app.locals.subscriptionNotifier as SubscriptionNotifier).stop();
    logger.info({ signal }, 'draining: in-flight requests finish, new connections accepted for DRAIN_ACCEPT_MS, then none');
    void (async () => {
      await connections.close();
      await inFlight.idle();
      await closeStorage();
      logger.info('drained; exiting');
      process.exit(0);
    })();
    setTimeout(() => {
      logger.error({ graceMs: SHUTDOWN_GRACE_MS }, 'drain did not finish in time; exiting');
      connections.cut();
      void Promise.race([closeStorage(), new Promise((resolve) => setTimeout(resolve, 2_000))]).then(() => process.exit(1));
    }, SHUTDOWN_GRACE_MS).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/**
 * The demo's EHR on FHIR_SANDBOX_URL (design.md §3): the sandbox stories are loaded into it (a transaction of
 * `PUT {type}/{id}` per story, dates shifted to today, so a restart or a second replica changes nothing), and
 * `/sandbox/fhir` fronts it for the browser (sandbox-fhir-proxy.ts). An external server that starts slowly (HAPI in
 * Docker Compose takes a minute or two) is waited for, up to 3 minutes, with a log line per attempt; one that never
 * answers, or refuses a story, stops start-up naming the variable and the reason, exit 1.
 */
async function externalSandbox(upstream: string, logger: ReturnType<typeof createLogger>, sandboxAuth: SandboxAuth): Promise<{ router: Router; ms: number }> {
  const startedAt = performance.now();
  const [{ loadIntoFhir }, { loadSandboxBundles }, { createSandboxFhirProxy }] = await Promise.all([
    import('./sandbox/load-into-fhir.js'),
    import('./sandbox/sandbox-bundles.js'),
    import('./sandbox/sandbox-fhir-proxy.js'),
  ]);
  try {
    const loaded = await loadIntoFhir({
      baseUrl: upstream,
      bundles: loadSandboxBundles(join(root, 'sandbox')),
      log: (line) => logger.info(`FHIR_SANDBOX_URL: ${line}`),
    });
    logger.info({ stories: loaded.length }, 'FHIR_SANDBOX_URL: sandbox stories loaded');
  } catch (err) {
    process.stderr.write(`priorpath: FHIR_SANDBOX_URL: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const router = createSandboxFhirProxy({ upstream, smart: sandboxAuth.endpoints, checkAccess: sandboxAuth.checkAccess, logger });
  return { router, ms: performance.now() - startedAt };
}

/**
 * What an operator reads when storage cannot open at start-up. The error a request would get ("temporarily
 * unavailable ... retry the same request") names no setting; here a PostgreSQL that cannot be reached is named by its
 * variable and the driver's reason (e.g. `connect ECONNREFUSED 127.0.0.1:5432`), as a bad setting is (design.md §3).
 */
function startupStorageMessage(err: Error, postgres: boolean): string {
  if (!(err instanceof StorageUnavailableError)) return err.message;
  const reason = err.cause instanceof Error ? err.cause.message : undefined;
  const where = postgres ? 'DATABASE_URL: PostgreSQL' : 'DATA_DIR: embedded storage';
  return `${where} cannot be reached${reason ? ` (${reason})` : ''}`;
}

main().catch((err: unknown) => {
  process.stderr.write(`priorpath: failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
