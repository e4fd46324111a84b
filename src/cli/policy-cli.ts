import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigFromProcess } from '../config.js';
import { loadContent } from '../content.js';
import type { Content } from '../content.js';
import { assertionFor, buildCoverageInformation } from '../coverage/coverage-information.js';
import { decideOrders, determinationFor } from '../coverage/decide-orders.js';
import { resolveHookContext } from '../hooks/hook-handler.js';
import { createLogger } from '../logger.js';
import { MemoryStorage } from '../storage/memory-storage.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const show = (v: unknown) => (v === undefined ? 'unknown' : JSON.stringify(v));

/**
 * `npm run policy -- explain <hook-request.json> [--payer key]`: for policy authors and support staff, prints each
 * order's facts, every criterion with its citation and result, and the coverage-information that would be returned.
 * Prefetch only: the EHR is queried when the request carries fhirServer and fhirAuthorization.
 */
export async function explain(content: Content, body: unknown, opts: { payer?: string; out: (line: string) => void }): Promise<void> {
  const service = content.services.find((s) => s.hook === (body as { hook?: string }).hook);
  if (!service) throw new Error(`no service for hook ${String((body as { hook?: string }).hook)}`);
  const config = loadConfigFromProcess();
  const log = createLogger('silent');
  const ctx = await resolveHookContext(
    service,
    body,
    { content, storage: new MemoryStorage(), publicBaseUrl: config.publicBaseUrl, ehrTimeoutMs: config.ehrTimeoutMs, defaultPayer: opts.payer ?? config.defaultPayer, allowUnauthenticatedEhr: false },
    log,
  );
  const { out } = opts;
  out(`payer: ${ctx.payerMatch.payer.key} (${ctx.payerMatch.payer.label})${ctx.payerMatch.defaulted ? ' [DEFAULT_PAYER]' : ''}`);
  const decisions = decideOrders({ content, payer: ctx.payerMatch.payer, record: ctx.record, orders: ctx.orders, today: ctx.today, log });
  if (decisions.length === 0) out('no order in this request is governed by a policy of this payer');
  for (const d of decisions) {
    out('');
    out(`order MedicationRequest/${d.order.id ?? '?'}  policy ${d.policy?.file.id ?? '(payer default)'} ${d.policy?.file.version ?? ''}  order date ${d.orderDate}`);
    const ev = d.evaluation;
    if (ev) {
      out('  facts:');
      for (const f of ev.facts) out(`    ${f.name.padEnd(28)} ${show(f.value).padEnd(14)} ${f.source}${f.error ? `  ERROR ${f.error}` : ''}`);
      out('  criteria:');
      for (const r of ev.rules) out(`    [${String(r.result).padEnd(7)}] ${r.kind.padEnd(11)} ${r.id.padEnd(30)} ${r.cite}${r.error ? `  ERROR ${r.error}` : ''}`);
      out(`  outcome: ${ev.outcome}${ev.pathway ? ` via ${ev.pathway.id}` : ''}${ev.missingFacts.length ? `; missing: ${ev.missingFacts.join(', ')}` : ''}`);
      for (const p of ev.proposals) out(`  proposal: ${p.value} ${p.unit} (limit ${p.limitId})`);
      for (const n of ev.notes ?? []) out(`  note: ${n}`);
    }
    const coverageRef = ctx.payerMatch.coverage?.id ? `Coverage/${ctx.payerMatch.coverage.id}` : 'Coverage/unknown';
    const version = ctx.req.requestedVersion === '2.2' ? '2.2' : '2.0';
    out('  coverage-information:');
    out(
      JSON.stringify(buildCoverageInformation(
        assertionFor(determinationFor(d, ctx.today), {
          coverageRef,
          assertionId: d.assertionId,
          date: ctx.today,
          billingCodes: d.policy?.file.billingCodes,
          askForDocumentation: ctx.req.hook !== 'order-select',
        }),
        version,
      ), null, 2)
        .split('\n')
        .map((l) => `    ${l}`)
        .join('\n'),
    );
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, file, ...rest] = argv;
  if (command !== 'explain' || !file) {
    process.stderr.write('usage: npm run policy -- explain <hook-request.json> [--payer <key>]\n');
    return 2;
  }
  const payerIdx = rest.indexOf('--payer');
  const payer = payerIdx >= 0 ? rest[payerIdx + 1] : undefined;
  const content = loadContent({ root, canonicalBase: loadConfigFromProcess().canonicalBase });
  const body = JSON.parse(readFileSync(file, 'utf8')) as unknown;
  await explain(content, body, { payer, out: (l) => process.stdout.write(`${l}\n`) });
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`policy: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
