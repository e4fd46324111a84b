import { Agent, request } from 'node:http';

/**
 * A closed-loop HTTP load generator for responses a browser receives as bytes: `connections` kept-alive sockets, each
 * sending its next request as soon as the previous response has been read to its end, for `durationS` seconds.
 *
 * Why not autocannon for these rows: autocannon appends every response body to a JavaScript string
 * (`req.body += data`), a UTF-8 decode of each byte. For the 160 KB gzip-encoded `$questionnaire-package` that decode
 * costs the load generator about 2 ms of CPU per response (measured: a server answering fixed random bytes of that
 * size tops out at about 430 requests/s under autocannon, fixed ASCII bytes at about 16,000), so the figure was the
 * client's, not the service's. Here the body's bytes are counted and dropped, as a browser hands them to its decoder.
 */
export interface HttpLoadResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  /** Responses that were not 2xx. */
  non2xx: number;
  /** Requests that failed without a response (refused, reset). */
  errors: number;
  /** Response body bytes received per second. */
  bytesPerSecond: number;
}

export interface HttpLoadOptions {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body: () => string;
  connections: number;
  durationS: number;
}

/** The p-th percentile (0..100) of sorted samples, nearest rank, rounded to whole milliseconds as autocannon reports. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]);
}

/** Runs the load; resolves when every connection has finished its last request. */
export async function httpLoad(opts: HttpLoadOptions): Promise<HttpLoadResult> {
  const target = new URL(opts.url);
  const agent = new Agent({ keepAlive: true, maxSockets: opts.connections });
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  let bytes = 0;
  const started = performance.now();
  const deadline = started + opts.durationS * 1000;

  const once = () =>
    new Promise<void>((resolve) => {
      const body = opts.body();
      const t0 = performance.now();
      const req = request(
        {
          agent,
          host: target.hostname,
          port: target.port,
          path: target.pathname + target.search,
          method: opts.method ?? 'POST',
          headers: { ...opts.headers, 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          res.on('data', (chunk: Buffer) => (bytes += chunk.length));
          res.on('end', () => {
            latencies.push(performance.now() - t0);
            if (res.statusCode === undefined || res.statusCode < 200 || res.statusCode > 299) non2xx++;
            resolve();
          });
          res.on('error', () => {
            errors++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(body);
    });

  const connection = async () => {
    while (performance.now() < deadline) await once();
  };
  await Promise.all(Array.from({ length: opts.connections }, connection));
  const elapsedS = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    requests: { average: latencies.length / elapsedS, total: latencies.length },
    latency: { p50: percentile(latencies, 50), p99: percentile(latencies, 99) },
    non2xx,
    errors,
    bytesPerSecond: bytes / elapsedS,
  };
}
