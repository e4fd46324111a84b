import type { Coverage, MedicationRequest, Resource } from '@medplum/fhirtypes';
import { loadContent } from '../src/content.js';
import { decideOrders } from '../src/coverage/decide-orders.js';
import { buildCatalog } from '../src/dtr/catalog.js';
import { questionnairePackage } from '../src/dtr/questionnaire-package.js';
import { HeldValues } from '../src/fhir/fhirpath-compiler.js';
import { referenceFhirPath } from '../src/fhir/fhirpath.js';
import type { CompiledExpression } from '../src/fhir/fhirpath.js';
import { jsonChunks } from '../src/fhir/prebuilt-json.js';
import { createLogger } from '../src/logger.js';
import { evaluatePolicy } from '../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../src/policies/evaluation-data.js';
import { recordFromResources } from '../src/policies/record-from-resources.js';
import { MemoryStorage } from '../src/storage/memory-storage.js';
import { repoRoot, storyIds, storyOrder, storyResources } from '../test/helpers/stories.js';

/**
 * `npm run bench:eval`: the evaluation hot path alone, CPU only, in this process (no HTTP, no storage), so it can be
 * measured on a shared machine by taking the best of several rounds. Every record is a distinct object graph (a
 * structured clone per iteration, made before timing), so nothing keyed on object identity can carry over from one
 * record to the next, just as no two hook requests share objects. Three figures:
 * - every policy over every sandbox story (5 policies × 15 stories per round): what a change to fact evaluation buys;
 * - the hook's decision step (`decideOrders`: the governing policy of the story's payer, later-start search
 *   included), per story, and for the story `npm run bench` loads alone: what an order-sign pays for evaluation;
 * - `$questionnaire-package` with pre-fill, built and serialised to bytes as the FHIR router sends it;
 * - the fact expressions alone, every policy's facts over every story, as compiled at load (src/fhir/fhirpath-compiler.ts)
 *   and with fhirpath.js alone: what compiling FHIRPath buys.
 * - the compiled fact expressions by fact: the facts with the largest shares of that time.
 * BENCH_ROUNDS (default 5) rounds of BENCH_ITERATIONS (default 4) records each; prints the best and median round.
 * BENCH_ONLY=facts runs the fact expressions alone.
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 4);
const TODAY = '2026-11-23';
/** BENCH_ONLY=facts: the fact expressions alone (compiled, fhirpath.js, and by fact), for working on the compiler. */
const ONLY_FACTS = process.env.BENCH_ONLY === 'facts';

const content = loadContent({ root: repoRoot, canonicalBase: 'https://priorpath.dev/fhir' });
const log = createLogger('silent');
const stories = storyIds();

interface Story {
  id: string;
  payer: string;
  resources: Resource[];
}
const loaded: Story[] = stories.map((id) => ({ id, payer: id.split('-')[0], resources: storyResources(id) }));

/** Distinct copies of every story (or as many of one story), made before timing. */
function copies(only?: string): { story: Story; resources: Resource[]; order: MedicationRequest }[] {
  const out = [];
  for (let i = 0; i < ITERATIONS; i++) {
    for (const each of loaded) {
      const story = only === undefined ? each : loaded.find((s) => s.id === only)!;
      const resources = structuredClone(story.resources);
      out.push({ story, resources, order: storyOrder(story.id, resources) });
    }
  }
  return out;
}

/** Times `run` over fresh input from `prepare` (made outside the timing: copying the records is not evaluation). */
function timeRounds<T>(name: string, unit: string, perRound: number, prepare: () => T, run: (input: T) => void): void {
  const times: number[] = [];
  run(prepare()); // warm-up: JIT and the module-level memos every process has after its first request
  for (let r = 0; r < ROUNDS; r++) {
    const input = prepare();
    const started = performance.now();
    run(input);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const fmt = (ms: number) => ((ms / perRound) * 1000).toFixed(0);
  process.stdout.write(`${name}: best ${fmt(times[0])} µs/${unit}, median ${fmt(times[Math.floor(times.length / 2)])} µs/${unit} (${perRound} ${unit}s a round)\n`);
}

function everyPolicy(): void {
  let outcomes = 0;
  timeRounds('every policy × every story', 'record', copies().length, copies, (sets) => {
    for (const { resources, order } of sets) {
      const record = indexRecord(recordFromResources(resources, [order], order.requester?.reference));
      const data = evaluationDataFor(record, order, TODAY);
      for (const policy of content.policies) if (evaluatePolicy(policy, data).outcome !== 'error') outcomes++;
    }
  });
  if (outcomes === 0) throw new Error('no evaluation succeeded');
}

function hookDecisions(only?: string): void {
  const pick = () => copies(only);
  timeRounds(only ? `decideOrders, ${only} only` : 'decideOrders (governing policy, later start)', 'order', pick().length, pick, (sets) => {
    for (const { story, resources, order } of sets) {
      const record = indexRecord(recordFromResources(resources, [order], order.requester?.reference));
      const payer = content.payers.get(story.payer)!;
      const decisions = decideOrders({ content, payer, record, orders: [order], today: TODAY, log });
      if (decisions.length !== 1) throw new Error(`${story.id}: expected one decision`);
    }
  });
}

async function questionnairePackages(): Promise<void> {
  const storage = new MemoryStorage();
  const catalog = buildCatalog(content);
  const story = loaded.find((s) => s.id === 'centene-missing-mrd')!;
  const order = storyOrder(story.id, story.resources);
  const record = indexRecord(recordFromResources(story.resources, [order], order.requester?.reference));
  const [d] = decideOrders({ content, payer: content.payers.get(story.payer)!, record, orders: [order], today: TODAY, log });
  await storage.saveAssertion({
    assertionId: d.assertionId,
    createdAt: new Date().toISOString(),
    payer: story.payer,
    policyId: d.policy!.file.id,
    policyVersion: d.policy!.file.version,
    patientId: 'bench',
    orderRef: `MedicationRequest/${order.id}`,
    hookInstance: 'bench',
    outcome: d.evaluation!.outcome,
    facts: Object.fromEntries(d.evaluation!.facts.filter((f) => f.value !== undefined).map((f) => [f.name, f.value])),
    missingFacts: d.evaluation!.missingFacts,
  });
  const coverage = story.resources.find((r): r is Coverage => r.resourceType === 'Coverage')!;
  const signed = { ...order, extension: [{ url: 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information', extension: [{ url: 'coverage-assertion-id', valueString: d.assertionId }] }] };
  const deps = { content, storage, catalog, fhirBase: 'http://127.0.0.1/fhir', log };
  const n = ITERATIONS * 10;
  const times: number[] = [];
  let bytes = 0;
  for (let r = 0; r <= ROUNDS; r++) {
    const started = performance.now();
    for (let i = 0; i < n; i++) {
      const body = JSON.parse(JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'coverage', resource: coverage }, { name: 'order', resource: signed }] }));
      const { parsePackageRequest } = await import('../src/dtr/questionnaire-package.js');
      bytes = Buffer.concat(jsonChunks(await questionnairePackage(parsePackageRequest(body), deps))).length;
    }
    if (r > 0) times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  process.stdout.write(`$questionnaire-package (pre-fill, serialised, ${Math.round(bytes / 1024)} KB): best ${((times[0] / n) * 1000).toFixed(0)} µs/request, median ${((times[Math.floor(times.length / 2)] / n) * 1000).toFixed(0)} µs/request\n`);
}

/** Every policy's fact expressions over every story (no memo: each runs), compiled and with fhirpath.js alone. */
function factEngines(): void {
  const reference = new Map<string, CompiledExpression>();
  const fp = { valueSets: content.valueSets, valueSetBase: `${content.canonicalBase}/ValueSet` };
  for (const p of content.policies) for (const f of p.facts) if (!reference.has(f.def.fhirpath)) reference.set(f.def.fhirpath, referenceFhirPath(f.def.fhirpath, { ...fp, model: 'r4' }));
  // The records and their variables are made outside the timing: only the expressions run inside it.
  const prepare = () =>
    copies().flatMap(({ resources, order }) => {
      const data = evaluationDataFor(indexRecord(recordFromResources(resources, [order], order.requester?.reference)), order, TODAY);
      const { memo: _memo, ...vars } = data;
      return content.policies.map((policy) => {
        const env = { ...vars, diagnosesComplete: data.diagnosesComplete ?? true, orderDateTime: `${data.orderDate}T00:00:00Z`, policyDrug: policy.file.drug } as Record<string, unknown>;
        // As readFacts runs them: sub-expressions several facts contain evaluated once per policy evaluation.
        return { policy, order: data.order, env, held: new HeldValues(data.order, env) };
      });
    });
  const run = (engine: 'compiled' | 'fhirpath.js') => {
    let evaluations = 0;
    timeRounds(`fact expressions, ${engine}`, 'policy evaluation', prepare().length, prepare, (runs) => {
      for (const { policy, order, env, held } of runs) {
        for (const f of policy.facts) {
          const fn = engine === 'compiled' ? f.expr : reference.get(f.def.fhirpath)!;
          let v: unknown[] = [];
          try {
            v = fn(order, env, held);
          } catch {
            /* an error leaves the fact unknown, as in readFacts */
          }
          env[f.name] = v.length === 1 ? v[0] : [];
          evaluations++;
        }
      }
    });
    if (evaluations === 0) throw new Error('no fact evaluated');
  };
  run('compiled');
  run('fhirpath.js');
  perFact(prepare);
}

/**
 * Where the compiled fact expressions' time goes: each fact's time in its best round (summed over every policy that
 * defines it, BENCH_ROUNDS rounds after a warm-up), so a round slowed by another process counts for no fact. The
 * clock read around every call adds the same small cost to each: read the shares. Prints the facts with the largest
 * shares (BENCH_TOP_FACTS, default 12).
 */
function perFact(prepare: () => { policy: (typeof content.policies)[number]; order: unknown; env: Record<string, unknown>; held: HeldValues }[]): void {
  const best = new Map<string, number>();
  let evaluations = 0;
  for (let r = 0; r <= ROUNDS; r++) {
    const runs = prepare();
    const spent = new Map<string, number>();
    for (const { policy, order, env, held } of runs) {
      for (const f of policy.facts) {
        let v: unknown[] = [];
        const started = performance.now();
        try {
          v = f.expr(order, env, held);
        } catch {
          /* unknown, as in readFacts */
        }
        spent.set(f.name, (spent.get(f.name) ?? 0) + performance.now() - started);
        env[f.name] = v.length === 1 ? v[0] : [];
      }
    }
    evaluations = runs.length;
    // The first round warms up (JIT), as in timeRounds.
    if (r > 0) for (const [name, ms] of spent) best.set(name, Math.min(best.get(name) ?? Infinity, ms));
  }
  const total = [...best.values()].reduce((a, b) => a + b, 0);
  const top = [...best].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.BENCH_TOP_FACTS ?? 12));
  process.stdout.write(`fact expressions, compiled, by fact (best round of each; ${((total / evaluations) * 1000).toFixed(0)} µs/policy evaluation in all, the clock read per fact):\n`);
  for (const [name, ms] of top) {
    process.stdout.write(`  ${((ms / total) * 100).toFixed(1).padStart(5)} %  ${((ms / evaluations) * 1000).toFixed(1).padStart(6)} µs/policy evaluation  ${name}\n`);
  }
}

if (ONLY_FACTS) {
  factEngines();
} else {
  everyPolicy();
  factEngines();
  hookDecisions();
  hookDecisions('centene-mrd-positive'); // the story `npm run bench` loads
  await questionnairePackages();
}
