/**
 * Loads the sandbox stories into an external FHIR R4 server (HAPI in docker-compose.yml), dates shifted to today:
 *
 *   npx tsx src/sandbox/load-into-fhir.ts <fhirBaseUrl> [sandboxDir]
 *
 * Each story is one transaction of `PUT {type}/{id}` entries, so loading twice changes nothing and ids are the same on
 * every server. While the server starts (HAPI takes a minute or two) the loader waits and retries, up to 3 minutes.
 * Exits 1 with the reason when a story is refused or the server never answers.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Bundle, OperationOutcome } from '@medplum/fhirtypes';
import { requestDeadline } from '../http/request-deadline.js';
import { loadSandboxBundles } from './sandbox-bundles.js';

export type FetchLike = (url: string, init?: RequestInit) => Promise<Response>;

export interface LoadOptions {
  baseUrl: string;
  bundles: Bundle[];
  fetchImpl?: FetchLike;
  /** give up after this long without success (default 180 s) */
  deadlineMs?: number;
  /** pause between attempts (default 5 s) */
  retryDelayMs?: number;
  /** per request (default 60 s: a cold HAPI answers its first transaction slowly) */
  requestTimeoutMs?: number;
  log?: (line: string) => void;
}

/** A failure that retrying will not mend (the server refused a story). */
export class LoadError extends Error {
  override name = 'LoadError';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function outcomeText(body: unknown): string {
  const oo = body as OperationOutcome | undefined;
  if (oo?.resourceType !== 'OperationOutcome') return '';
  return (oo.issue ?? []).map((i) => i.diagnostics ?? i.details?.text ?? i.code).join('; ');
}

/**
 * Waits for `{base}/metadata`, then POSTs each bundle as a transaction. Returns the story ids loaded. Network errors
 * and 5xx/429 answers (and 404 from `metadata`) are retried until the deadline; any other non-2xx answer is a
 * LoadError naming the story.
 */
export async function loadIntoFhir(opts: LoadOptions): Promise<string[]> {
  const base = opts.baseUrl.replace(/\/+$/, '');
  const fetchImpl = opts.fetchImpl ?? fetch;
  const deadline = Date.now() + (opts.deadlineMs ?? 180_000);
  const retryDelay = opts.retryDelayMs ?? 5_000;
  const timeout = opts.requestTimeoutMs ?? 60_000;
  const log = opts.log ?? (() => undefined);

  const attempt = async (what: string, run: (signal: AbortSignal) => Promise<Response>, retry404 = false): Promise<Response> => {
    let last = '';
    for (let n = 1; ; n++) {
      // Cleared once the answer is in (request-deadline.ts: not AbortSignal.timeout, whose timer outlives it).
      const limit = requestDeadline(timeout);
      try {
        const res = await run(limit.signal);
        if (res.ok) {
          await res.body?.cancel().catch(() => undefined);
          return res;
        }
        const text = await res.text();
        let detail = text.slice(0, 300);
        try {
          detail = outcomeText(JSON.parse(text)) || detail;
        } catch {
          // not JSON: keep the raw text
        }
        if (res.status < 500 && res.status !== 429 && !(retry404 && res.status === 404))
          throw new LoadError(`${what}: ${base} answered ${res.status}${detail ? `: ${detail}` : ''}`);
        last = `answered ${res.status}`;
      } catch (err) {
        if (err instanceof LoadError) throw err;
        last =
          (err as Error).name === 'TimeoutError'
            ? `no answer within ${timeout} ms`
            : `unreachable (${(err as Error).message})`;
      } finally {
        limit.clear();
      }
      if (Date.now() + retryDelay > deadline) {
        throw new LoadError(`${what}: gave up after ${n} attempts; ${base} ${last}`);
      }
      log(`${what}: ${base} ${last}; retrying in ${Math.round(retryDelay / 1000)} s (attempt ${n})`);
      await sleep(retryDelay);
    }
  };

  await attempt(
    'waiting for the FHIR server',
    (signal) =>
      fetchImpl(`${base}/metadata`, {
        headers: { Accept: 'application/fhir+json' },
        signal,
      }),
    true, // a servlet container answers 404 until the FHIR servlet is up
  );
  const loaded: string[] = [];
  for (const bundle of opts.bundles) {
    const id = bundle.id ?? '(no id)';
    await attempt(`story ${id}`, (signal) =>
      fetchImpl(base, {
        method: 'POST',
        headers: { 'Content-Type': 'application/fhir+json', Accept: 'application/fhir+json' },
        body: JSON.stringify(bundle),
        signal,
      }),
    );
    log(`loaded ${id} (${bundle.entry?.length ?? 0} resources)`);
    loaded.push(id);
  }
  return loaded;
}

async function main(argv: string[]): Promise<number> {
  const [baseUrl, dir = 'sandbox'] = argv;
  if (!baseUrl || !/^https?:\/\//.test(baseUrl)) {
    console.error(
      'usage: tsx src/sandbox/load-into-fhir.ts <fhirBaseUrl> [sandboxDir]   e.g. http://localhost:8080/fhir sandbox',
    );
    return 1;
  }
  try {
    const bundles = loadSandboxBundles(resolve(dir));
    const loaded = await loadIntoFhir({ baseUrl, bundles, log: (l) => console.log(l) });
    console.log(`loaded ${loaded.length} sandbox stories into ${baseUrl}`);
    return 0;
  } catch (err) {
    console.error(`load-into-fhir failed: ${(err as Error).message}`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
