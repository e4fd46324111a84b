/**
 * `npm run soak`: a bounded long run of mixed CRD / DTR / PAS traffic against one PriorPath process (src/main.ts in
 * its own process, as deployed), reporting resident memory, V8 heap, event-loop delay and open handles every
 * interval from the process's own /metrics, and failing when a request answers 5xx or memory keeps growing.
 *
 *   npm run soak                                  # 10 minutes, 4 concurrent clients, a sample every 30 s
 *   SOAK_SECONDS=120 SOAK_CONCURRENCY=2 npm run soak
 *
 * Storage: DATABASE_URL when set, else embedded PGlite in a temporary DATA_DIR. Memory verdict: after a warm-up of
 * a third of the run, the V8 heap in use must not trend upward by more than
 * SOAK_MAX_GROWTH_MIB_PER_HOUR (default 64) by least squares, or end above 1.5 × its post-warm-up median; the
 * process's RSS is reported alongside.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, MedicationRequest, Resource } from '@medplum/fhirtypes';
import { requestDeadline } from '../src/http/request-deadline.js';
import { orderSignRequest } from '../test/helpers/hook-requests.js';
import { killAll, payerToken, startPriorPath } from '../test/helpers/priorpath-process.js';
import { storyOrder, storyResources } from '../test/helpers/stories.js';
import { inquiryParameters, storyBundle } from '../test/pas/pas-fixtures.js';

const num = (name: string, fallback: number) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const SECONDS = num('SOAK_SECONDS', 600);
const INTERVAL = num('SOAK_INTERVAL_SECONDS', 30);
const CONCURRENCY = num('SOAK_CONCURRENCY', 4);
const MAX_GROWTH = num('SOAK_MAX_GROWTH_MIB_PER_HOUR', 64);
const STORIES = ['centene-mrd-positive', 'centene-missing-mrd', 'bcbsnc-relapsed-adult', 'mmm-ph-positive-tki', 'ohsu-infant-kmt2a', 'centene-over-dose', 'mmm-dlbcl-offlabel', 'bcbsnc-t-all'];
const MIB = 1024 * 1024;

interface Sample {
  at: number;
  rssMiB: number;
  heapUsedMiB: number;
  eventLoopP99Ms: number;
  handles: number;
  requests: number;
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

function slopePerHour(samples: Sample[], pick: (s: Sample) => number): number {
  const n = samples.length;
  if (n < 2) return 0;
  const xs = samples.map((s) => s.at / 3600);
  const ys = samples.map(pick);
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  const cov = xs.reduce((a, x, i) => a + (x - mx) * (ys[i] - my), 0);
  const varx = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  return varx === 0 ? 0 : cov / varx;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  process.stdout.write(`soak: ${SECONDS} s, ${CONCURRENCY} clients, sample every ${INTERVAL} s, storage ${process.env.DATABASE_URL ? 'PostgreSQL (DATABASE_URL)' : 'embedded PGlite'}\n`);
  const pp = await startPriorPath({}, 120_000);
  const ready = Date.now() + 120_000;
  while ((await fetch(`${pp.base}/readyz`).then((r) => r.status, () => 0)) !== 200) {
    if (Date.now() > ready) throw new Error('PriorPath did not become ready');
    await new Promise((r) => setTimeout(r, 250));
  }
  let token = await payerToken(pp.base);
  let tokenAt = Date.now();
  const stories = STORIES.map((id) => ({ id, resources: storyResources(id), order: storyOrder(id) }));
  const counts = new Map<string, number>();
  const failures: string[] = [];
  let requests = 0;
  const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);

  const post = async (kind: string, path: string, body: unknown, fhir: boolean) => {
    // Bounded with a deadline cleared once the body is read (http/request-deadline.ts): AbortSignal.timeout's timer
    // and signal outlive every answer by up to 30 s, memory a soak that watches RSS would count as the service's trend.
    const deadline = requestDeadline(30_000);
    const failed = (err: Error) => ({ status: 0, text: async () => err.message }) as unknown as Response;
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${pp.base}${path}`, {
        method: 'POST',
        headers: { 'content-type': fhir ? 'application/fhir+json' : 'application/json', ...(fhir ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
        signal: deadline.signal,
      }).catch(failed);
      text = await res.text().catch((err: Error) => {
        res = failed(err);
        return err.message;
      });
    } finally {
      deadline.clear();
    }
    requests++;
    count(`${kind} ${res.status}`);
    if (res.status === 0 || res.status >= 500) failures.push(`${kind} ${res.status}: ${text.slice(0, 200)}`);
    return { status: res.status, text };
  };

  /** One round of a clinician's flow: sign (a new order id each time), fetch the package, submit PAS, inquire. */
  const round = async (i: number) => {
    const s = stories[i % stories.length];
    const order: MedicationRequest = { ...structuredClone(s.order), id: `soak-${randomUUID().slice(0, 8)}` };
    const resources: Resource[] = s.resources.filter((r) => r.id !== s.order.id);
    await post('order-sign', '/cds-services/priorpath-order-sign', orderSignRequest(resources, order), false);
    const coverage = resources.find((r) => r.resourceType === 'Coverage');
    await post('package', '/fhir/Questionnaire/$questionnaire-package', { resourceType: 'Parameters', parameter: [{ name: 'coverage', resource: coverage }, { name: 'order', resource: order }] }, true);
    if (i % 2 === 0) {
      const bundle: Bundle = storyBundle(s.id, s.id === 'centene-missing-mrd' ? { answers: { 'mrd-percent': [{ valueDecimal: 0.52 }] } } : {});
      await post('pas-submit', '/fhir/Claim/$submit', bundle, true);
      await post('pas-inquire', '/fhir/Claim/$inquire', inquiryParameters({ identifier: { system: bundle.identifier!.system!, value: bundle.identifier!.value! } }), true);
    }
  };

  const started = Date.now();
  const deadline = started + SECONDS * 1000;
  const samples: Sample[] = [];
  const sample = async () => {
    const text = await (await fetch(`${pp.base}/metrics`)).text();
    const s: Sample = {
      at: (Date.now() - started) / 1000,
      rssMiB: metric(text, 'process_resident_memory_bytes') / MIB,
      heapUsedMiB: metric(text, 'nodejs_heap_size_used_bytes') / MIB,
      eventLoopP99Ms: metric(text, 'nodejs_eventloop_lag_p99_seconds') * 1000,
      handles: metric(text, 'nodejs_active_handles_total'),
      requests,
    };
    samples.push(s);
    process.stdout.write(
      `t=${s.at.toFixed(0).padStart(5)} s  rss ${s.rssMiB.toFixed(0).padStart(4)} MiB  heap ${s.heapUsedMiB.toFixed(0).padStart(4)} MiB  event-loop p99 ${s.eventLoopP99Ms.toFixed(1).padStart(6)} ms  handles ${String(s.handles).padStart(4)}  requests ${s.requests}\n`,
    );
  };
  await sample();
  const sampler = setInterval(() => void sample(), INTERVAL * 1000);

  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < deadline) {
        if (Date.now() - tokenAt > 60_000) {
          token = await payerToken(pp.base);
          tokenAt = Date.now();
        }
        await round(next++);
      }
    }),
  );
  clearInterval(sampler);
  await sample();
  pp.child.kill('SIGTERM');
  const exit = await pp.exited;

  const warm = samples.filter((s) => s.at >= SECONDS / 3);
  const growth = slopePerHour(warm, (s) => s.heapUsedMiB);
  const rssGrowth = slopePerHour(warm, (s) => s.rssMiB);
  const base = median(warm.map((s) => s.heapUsedMiB));
  const last = samples[samples.length - 1];
  const grows = warm.length >= 3 && growth > MAX_GROWTH && last.heapUsedMiB > base * 1.25;
  const verdicts = [
    failures.length === 0 ? 'no 5xx or network failure' : `${failures.length} failures (first: ${failures[0]})`,
    warm.length < 3 ? `too few samples after warm-up (${warm.length}) for a memory trend: run longer` : `heap trend ${growth.toFixed(1)} MiB/h (limit ${MAX_GROWTH}), RSS trend ${rssGrowth.toFixed(1)} MiB/h`,
    last.heapUsedMiB > base * 1.5 ? `heap ended at ${last.heapUsedMiB.toFixed(0)} MiB, over 1.5 × the post-warm-up median ${base.toFixed(0)} MiB` : `heap ended at ${last.heapUsedMiB.toFixed(0)} MiB (post-warm-up median ${base.toFixed(0)} MiB)`,
    `exit on SIGTERM: ${exit}`,
  ];
  const seconds = (Date.now() - started) / 1000;
  process.stdout.write(`\n${requests} requests in ${seconds.toFixed(0)} s (${(requests / seconds).toFixed(1)} req/s): ${[...counts].map(([k, v]) => `${k} ×${v}`).join(', ')}\n`);
  process.stdout.write(`max RSS ${Math.max(...samples.map((s) => s.rssMiB)).toFixed(0)} MiB, max event-loop p99 ${Math.max(...samples.map((s) => s.eventLoopP99Ms)).toFixed(1)} ms, handles ${samples[0].handles} → ${last.handles}\n`);
  for (const v of verdicts) process.stdout.write(`- ${v}\n`);
  const failed = failures.length > 0 || grows || last.heapUsedMiB > base * 1.5 || exit !== 0;
  process.stdout.write(failed ? 'soak: FAILED\n' : 'soak: passed\n');
  process.exitCode = failed ? 1 : 0;
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`soak: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => killAll());
