import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MedicationRequest, Resource } from '@medplum/fhirtypes';
import { parse as parseYaml } from 'yaml';
import type { Content } from '../../src/content.js';
import type { CompiledPolicy } from '../../src/policies/compiled-policy.js';
import type { FactValue } from '../../src/policies/evaluate-policy.js';
import { deepMerge, repoRoot, storyOrder, storyResources } from './stories.js';

/** One case of a policy case file (test/policies/cases/*.yaml): a story with patches, or an inline record. */
export interface PolicyCaseInput {
  name: string;
  from?: string;
  remove?: string[];
  add?: Resource[];
  resources?: Resource[];
  order?: Partial<MedicationRequest>;
  answers?: Record<string, FactValue>;
  /**
   * The ids of the orders signed (or claimed) in one request with the case's order, in the request's order, the case's
   * order among them: each a MedicationRequest of the case's resources (PatientRecord.requestOrders; docs/design.md §6
   * "Cycles"). Unset: the order is judged alone.
   */
  request?: string[];
}

/** A policy case file: the policy it exercises, the date its cases are evaluated on, the cases. */
export interface CaseFile<C extends PolicyCaseInput = PolicyCaseInput> {
  policy: string;
  today: string;
  cases: C[];
}

export const casesDir = join(repoRoot, 'test', 'policies', 'cases');

/** The case files' names, sorted. */
export function caseFileNames(): string[] {
  return readdirSync(casesDir)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
}

/**
 * A case file, parsed. Cases share their fixtures by YAML alias, so a long file passes the yaml library's default
 * limit of 100 aliases (a guard against untrusted input; these files are the repository's own).
 */
export function readCaseFile<C extends PolicyCaseInput = PolicyCaseInput>(file: string): CaseFile<C> {
  return parseYaml(readFileSync(join(casesDir, file), 'utf8'), { maxAliasCount: 10_000 }) as CaseFile<C>;
}

/**
 * A case's record and order: the story's resources less `remove`, plus `add`, with the story's order patched by
 * `order` (deep merge); or, without `from`, the inline `resources` and `order`.
 */
export function buildCase(c: PolicyCaseInput): { resources: Resource[]; order: MedicationRequest } {
  if (c.from) {
    const story = storyResources(c.from);
    const drop = new Set(c.remove ?? []);
    const base = storyOrder(c.from, story);
    const order = deepMerge(base, c.order);
    const resources = [...story.filter((r) => !drop.has(r.id ?? '') && r !== base), ...(c.add ?? [])];
    return { resources, order };
  }
  if (!c.order) throw new Error(`case "${c.name}" needs either from: or order:`);
  return { resources: [...(c.resources ?? []), ...(c.add ?? [])], order: c.order as MedicationRequest };
}

/** A record, the policies to evaluate on it, the date, and what a form answered: what the agreement tests run. */
export interface PolicyScenario {
  label: string;
  resources: Resource[];
  order: MedicationRequest;
  today: string;
  policies: CompiledPolicy[];
  answers?: Record<string, FactValue>;
}

/** Every case of every case file under its policy, with its answers, built as the policy case tests build them. */
export function caseScenarios(content: Content): PolicyScenario[] {
  const out: PolicyScenario[] = [];
  for (const file of caseFileNames()) {
    const spec = readCaseFile(file);
    const policy = content.policies.find((p) => p.file.id === spec.policy)!;
    for (const c of spec.cases) {
      const { resources, order } = buildCase(c);
      out.push({ label: `${file} "${c.name}"`, resources, order, today: spec.today, policies: [policy], answers: c.answers ?? {} });
    }
  }
  return out;
}
