import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Bundle, MedicationRequest, Patient, PractitionerRole, Resource } from '@medplum/fhirtypes';
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
 * An order-sign request for a patient Bundle (a `sandbox/` story, or any transaction or collection Bundle of one
 * patient's record): the draft MedicationRequest is the order, everything else is the full prefetch, as an EHR that
 * sends every key would send it (design.md §4 prefetch keys). Lets support staff explain a chart without writing a hook
 * request by hand.
 */
export function orderSignRequestFromBundle(bundle: Bundle): Record<string, unknown> {
  const resources = (bundle.entry ?? []).map((e) => e.resource).filter((r): r is Resource => !!r);
  const of = <T extends Resource>(type: T['resourceType']) => resources.filter((r): r is T => r.resourceType === type);
  const drafts = of<MedicationRequest>('MedicationRequest').filter((m) => m.status === 'draft');
  if (drafts.length === 0) throw new Error('the Bundle holds no draft MedicationRequest to explain');
  const patient = of<Patient>('Patient')[0];
  if (!patient?.id) throw new Error('the Bundle holds no Patient with an id');
  const role = of<PractitionerRole>('PractitionerRole')[0];
  const draftIds = new Set(drafts.map((d) => d.id));
  const searchset = (rs: Resource[]): Bundle => ({ resourceType: 'Bundle', type: 'searchset', total: rs.length, entry: rs.map((resource) => ({ resource })) });
  // Organizations (the payer) are needed to read the Coverage's payor; they ride along as an extra prefetch key.
  return {
    hook: 'order-sign',
    hookInstance: randomUUID(),
    context: {
      userId: role?.id ? `PractitionerRole/${role.id}` : undefined,
      patientId: patient.id,
      draftOrders: { resourceType: 'Bundle', type: 'collection', entry: drafts.map((resource) => ({ resource })) },
    },
    prefetch: {
      patient,
      coverage: searchset(of('Coverage').filter((c) => (c as { status?: string }).status === 'active')),
      ...(role ? { user: role } : {}),
      conditions: searchset(of('Condition')),
      observations: searchset(of('Observation')),
      medications: searchset(of<MedicationRequest>('MedicationRequest').filter((m) => !draftIds.has(m.id))),
      immunizations: searchset(of('Immunization')),
      organizations: searchset([...of('Organization'), ...of('Practitioner'), ...of('Medication')]),
    },
  };
}

/**
 * `npm run policy -- explain <hook-request.json | patient-bundle.json> [--payer key]`: for policy authors and support
 * staff, prints each order's facts, every criterion with its citation and result, and the coverage-information that
 * would be returned. A patient Bundle (e.g. `sandbox/<story>.json`) is explained as an order-sign of its draft order.
 * Prefetch only: the EHR is queried when the request carries fhirServer and fhirAuthorization.
 */
export async function explain(content: Content, input: unknown, opts: { payer?: string; out: (line: string) => void }): Promise<void> {
  const body = (input as { resourceType?: string })?.resourceType === 'Bundle' ? orderSignRequestFromBundle(input as Bundle) : input;
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
      for (const p of ev.proposals) out(`  proposal: ${p.value} ${p.unit} (limit ${p.limitIds.join(', ')})`);
      for (const n of ev.notes ?? []) out(`  note: ${n}`);
    }
    const coverageRef = ctx.payerMatch.coverage?.id ? `Coverage/${ctx.payerMatch.coverage.id}` : 'Coverage/unknown';
    const version = ctx.req.requestedVersion ?? '2.0';
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
    process.stderr.write('usage: npm run policy -- explain <hook-request.json | patient-bundle.json> [--payer <key>]\n');
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
