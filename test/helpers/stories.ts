import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, MedicationRequest, Resource } from '@medplum/fhirtypes';

export const repoRoot = join(import.meta.dirname, '..', '..');

/** The ids of every sandbox story (`sandbox/<id>.json`), sorted. */
export function storyIds(): string[] {
  return readdirSync(join(repoRoot, 'sandbox'))
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.replace(/\.json$/, ''))
    .sort();
}

/** The resources of a sandbox story, as written (dates unshifted: every window counts from the story's own order). */
export function storyResources(id: string): Resource[] {
  const path = join(repoRoot, 'sandbox', `${id}.json`);
  if (!existsSync(path)) throw new Error(`no sandbox story ${id} (${path})`);
  const bundle = JSON.parse(readFileSync(path, 'utf8')) as Bundle;
  return (bundle.entry ?? []).map((e) => e.resource).filter((r): r is Resource => !!r);
}

/** The story's draft order, `<story>-order`. */
export function storyOrder(id: string, resources = storyResources(id)): MedicationRequest {
  const order = resources.find((r) => r.resourceType === 'MedicationRequest' && r.id === `${id}-order`);
  if (!order) throw new Error(`story ${id} has no draft order ${id}-order`);
  return order as MedicationRequest;
}

/** Deep merge for case patches: objects merge, arrays and scalars replace. */
export function deepMerge<T>(base: T, patch: unknown): T {
  if (patch === undefined) return base;
  if (Array.isArray(patch) || patch === null || typeof patch !== 'object' || typeof base !== 'object' || base === null || Array.isArray(base)) {
    return structuredClone(patch) as T;
  }
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) out[k] = deepMerge(out[k], v);
  return out as T;
}
