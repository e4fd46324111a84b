import { parseFhirPath, toTypedValue } from '@medplum/core';
import type { TypedValue } from '@medplum/core';
import { loadContent } from '../src/content.js';
import { referenceFhirPath } from '../src/fhir/fhirpath.js';
import type { CompiledExpression } from '../src/fhir/fhirpath.js';
import { evaluationDataFor, indexRecord } from '../src/policies/evaluation-data.js';
import { recordFromResources } from '../src/policies/record-from-resources.js';
import { repoRoot, storyIds, storyOrder, storyResources } from '../test/helpers/stories.js';

/**
 * `npx tsx bench/fhirpath-engines.ts`: fhirpath.js (the reference engine) and PriorPath's compiled FHIRPath
 * (src/fhir/fhirpath-compiler.ts, what the policies run) against Medplum's FHIRPath
 * (@medplum/core `parseFhirPath`, already a dependency) on the policies' own fact expressions over every sandbox
 * story. Medplum's engine has no way to register functions (its function table is not exported), so the facts that
 * use PriorPath's `memberOf`, `coded`, `codedIn` or `recent` cannot run on it at all; the rest are timed on both
 * engines with the same variables (the other facts' values computed by fhirpath.js) and their results compared.
 * An unknown fact is an empty collection; Medplum's variables hold one value each, so it gets an empty value list.
 */
const content = loadContent({ root: repoRoot, canonicalBase: 'https://priorpath.dev/fhir' });
const stories = storyIds();
const datas = stories.map((id) => {
  const resources = storyResources(id);
  const order = storyOrder(id, resources);
  return evaluationDataFor(indexRecord(recordFromResources(resources, [order], order.requester?.reference)), order, '2026-11-23');
});

const REPEAT = 10;
const CUSTOM = /\b(memberOf|coded|codedIn|recent)\(/;
let fhirpathJsMs = 0;
let compiledMs = 0;
const reference = new Map<string, CompiledExpression>();
let medplumMs = 0;
let compared = 0;
let same = 0;
let medplumErrors = 0;
let customFacts = 0;
let plainFacts = 0;
const atoms = new Map<string, ReturnType<typeof parseFhirPath>>();
for (const policy of content.policies) {
  for (const data of datas) {
    const { memo: _memo, ...vars } = data;
    const env: Record<string, unknown> = { ...vars, diagnosesComplete: true, orderDateTime: `${data.orderDate}T00:00:00Z`, policyDrug: policy.file.drug };
    for (const f of policy.facts) {
      let v: unknown[] = [];
      try {
        v = f.expr(data.order, env);
      } catch {
        /* an error leaves the fact unknown here */
      }
      env[f.name] = v.length === 1 ? v[0] : [];
    }
    const typed: Record<string, TypedValue> = {};
    for (const [k, v] of Object.entries(env)) typed[`%${k}`] = Array.isArray(v) ? { type: 'BackboneElement', value: v } : toTypedValue(v);
    for (const f of policy.facts) {
      const expr = f.def.fhirpath;
      if (CUSTOM.test(expr)) {
        if (data === datas[0]) customFacts++;
        continue;
      }
      if (data === datas[0]) plainFacts++;
      let atom = atoms.get(expr);
      if (!atom) atoms.set(expr, (atom = parseFhirPath(expr)));
      let ref = reference.get(expr);
      if (!ref) reference.set(expr, (ref = referenceFhirPath(expr, { valueSets: content.valueSets, valueSetBase: `${content.canonicalBase}/ValueSet`, model: 'r4' })));
      let a: unknown[] = [];
      let b: unknown[] = [];
      let started = performance.now();
      try {
        for (let i = 0; i < REPEAT; i++) a = ref(data.order, env);
      } catch {
        a = ['error'];
      }
      fhirpathJsMs += performance.now() - started;
      started = performance.now();
      try {
        for (let i = 0; i < REPEAT; i++) f.expr(data.order, env);
      } catch {
        /* the same error as fhirpath.js's (test/fhir/fhirpath-compiled-agreement.test.ts) */
      }
      compiledMs += performance.now() - started;
      started = performance.now();
      try {
        for (let i = 0; i < REPEAT; i++) b = atom.eval({ variables: typed }, [toTypedValue(data.order)]).map((t) => t.value);
      } catch {
        b = ['error'];
        medplumErrors++;
      }
      medplumMs += performance.now() - started;
      compared++;
      if (JSON.stringify(a) === JSON.stringify(b)) same++;
    }
  }
}
process.stdout.write(
  `${customFacts} of ${customFacts + plainFacts} policy facts use PriorPath's functions (not runnable on Medplum).\n` +
    `The other ${plainFacts}, over ${datas.length} stories (${compared} evaluations × ${REPEAT}): fhirpath.js ${fhirpathJsMs.toFixed(0)} ms, compiled ${compiledMs.toFixed(0)} ms, ` +
    `Medplum ${medplumMs.toFixed(0)} ms; same result ${same} of ${compared}, Medplum threw ${medplumErrors}.\n`,
);
