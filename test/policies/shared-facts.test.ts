import { describe, expect, it } from 'vitest';
import { laterStartThatQualifies } from '../../src/coverage/later-start.js';
import { evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import type { EvaluationData } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { loadContent } from '../../src/content.js';
import { repoRoot, storyIds, storyOrder, storyResources } from '../helpers/stories.js';

const TODAY = '2026-11-23';
const stories = storyIds();

function dataFor(story: string): EvaluationData {
  const resources = storyResources(story);
  const order = storyOrder(story, resources);
  return evaluationDataFor(indexRecord(recordFromResources(resources, [order], order.requester?.reference)), order, TODAY);
}

/** The same data without a memo: every fact evaluated by its own policy, as before facts were shared. */
const unshared = (data: EvaluationData): EvaluationData => ({ ...data, memo: undefined });

describe('facts shared between policies (design.md §9: a shared fact is evaluated once per order)', () => {
  // Own load: the spies below replace compiled expressions, which other test files must not see.
  const content = loadContent({ root: repoRoot, canonicalBase: 'https://priorpath.dev/fhir' });

  it('runs a library fact that two policies import once, and gives both policies its value', () => {
    const centene = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!;
    const mmm = content.policies.find((p) => p.file.id === 'mmm-blinatumomab')!;
    const a = centene.factsByName.get('mrdPercent')!;
    const b = mmm.factsByName.get('mrdPercent')!;
    expect(a.shareKey).toBe(b.shareKey);
    let runs = 0;
    const count = <T extends (...args: never[]) => unknown>(fn: T) => ((...args: Parameters<T>) => (runs++, fn(...args))) as T;
    const [exprA, exprB] = [a.expr, b.expr];
    a.expr = count(exprA);
    b.expr = count(exprB);
    try {
      const data = dataFor('centene-mrd-positive');
      const first = evaluatePolicy(centene, data).facts.find((f) => f.name === 'mrdPercent');
      const second = evaluatePolicy(mmm, data).facts.find((f) => f.name === 'mrdPercent');
      expect(runs).toBe(1);
      expect(first).toEqual({ name: 'mrdPercent', value: expect.any(Number), source: 'ehr' });
      expect(second).toEqual(first);
    } finally {
      a.expr = exprA;
      b.expr = exprB;
    }
  });

  it('runs a fact computed from facts alone once for two orders whose inputs agree, and reads the record afresh', () => {
    const centene = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!;
    const derived = centene.factsByName.get('mrdPositive')!;
    const fromRecord = centene.factsByName.get('mrdPercent')!;
    expect(derived.pureOf).toEqual(['mrdPercent', 'mrdReportedPositive']);
    expect(fromRecord.pureOf).toBeUndefined();
    const runs = { derived: 0, fromRecord: 0 };
    const [exprD, exprR] = [derived.expr, fromRecord.expr];
    derived.expr = (...args) => (runs.derived++, exprD(...args));
    fromRecord.expr = (...args) => (runs.fromRecord++, exprR(...args));
    try {
      // The second order reads its own record but meets the same MRD value (other tests may have met it first).
      const first = evaluatePolicy(centene, dataFor('centene-mrd-positive'));
      const second = evaluatePolicy(centene, dataFor('centene-mrd-positive'));
      expect(second).toEqual(first);
      expect(runs.fromRecord).toBe(2);
      expect(runs.derived).toBeLessThanOrEqual(1);
      // An answered MRD no other order has had: computed once, then remembered for the next order that has it.
      runs.derived = 0;
      const answered = [0, 1].map(() => evaluatePolicy(centene, dataFor('centene-mrd-positive'), { mrdPercent: 0.0137 }));
      expect(answered[0].facts.find((f) => f.name === 'mrdPositive')?.value).toBe(true);
      expect(answered[1]).toEqual(answered[0]);
      expect(runs.derived).toBe(1);
    } finally {
      derived.expr = exprD;
      fromRecord.expr = exprR;
    }
  });

  it('keeps a policy override of a library fact apart from the library fact', () => {
    const keysByName = new Map<string, Set<string>>();
    for (const p of content.policies) {
      for (const f of p.facts) {
        const set = keysByName.get(f.name) ?? new Set();
        set.add(`${f.shareKey}|${f.def.fhirpath}`);
        keysByName.set(f.name, set);
      }
    }
    // Same key ⇒ same definition text (the converse need not hold: a dependency may be overridden).
    const textByKey = new Map<string, string>();
    for (const set of keysByName.values()) {
      for (const entry of set) {
        const [key, text] = [entry.slice(0, entry.indexOf('|')), entry.slice(entry.indexOf('|') + 1)];
        expect(textByKey.get(key) ?? text).toBe(text);
        textByKey.set(key, text);
      }
    }
  });

  // A policy can only replace a library fact whole: BCBSNC's Blincyto policy replaces mrdPercent to give it a cite and
  // an askWhen, and its reading of the record must stay the library's (a change to one must reach the other).
  it('reads MRD in the BCBSNC Blincyto override exactly as the library fact does', () => {
    const bcbsnc = content.policies.find((p) => p.file.id === 'bcbsnc-blinatumomab')!;
    const centene = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!;
    const spaced = (text: string | undefined) => (text ?? '').replace(/\s+/g, ' ').trim();
    const override = bcbsnc.factsByName.get('mrdPercent')!.def;
    const library = centene.factsByName.get('mrdPercent')!.def;
    expect(override.askWhen, 'the override exists to ask MRD only where it can change the decision').toBeDefined();
    expect(spaced(override.fhirpath)).toBe(spaced(library.fhirpath));
    expect([override.type, override.linkId, override.unit]).toEqual([library.type, library.linkId, library.unit]);
  });

  it.each(stories)('%s: every policy over one shared record answers as it does alone', (story) => {
    const data = dataFor(story);
    let factsRead = 0;
    for (const policy of content.policies) {
      const shared = evaluatePolicy(policy, data);
      const alone = evaluatePolicy(policy, unshared(dataFor(story)));
      expect(shared).toEqual(alone);
      factsRead += policy.facts.length;
      // With answers, facts computed from an answer get their own value; the rest still come from the memo.
      const answers = Object.fromEntries(policy.facts.filter((f) => f.def.askable && f.def.type === 'boolean').slice(0, 3).map((f) => [f.name, true]));
      expect(evaluatePolicy(policy, data, answers)).toEqual(evaluatePolicy(policy, unshared(dataFor(story)), answers));
    }
    expect(data.memo!.evaluated).toBeLessThan(factsRead);
  });

  it.each(stories)('%s: the later-start search gives the same date with shared facts and date-free exclusions skipped', (story) => {
    const data = dataFor(story);
    for (const policy of content.policies) {
      const ev = evaluatePolicy(policy, data);
      expect(laterStartThatQualifies(policy, data, ev)).toEqual(laterStartUnshared(policy, unshared(dataFor(story)), ev));
    }
  });
});

/** The search as it ran before facts were shared: every later date evaluated in full. */
function laterStartUnshared(policy: Parameters<typeof evaluatePolicy>[0], data: EvaluationData, ev: ReturnType<typeof evaluatePolicy>) {
  if (ev.outcome !== 'not-covered') return undefined;
  for (let days = 1; days <= 42; days++) {
    const d = new Date(`${data.orderDate}T00:00:00Z`);
    d.setUTCDate(d.getUTCDate() + days);
    const later = evaluatePolicy(policy, { ...data, orderDate: d.toISOString().slice(0, 10) });
    if (later.outcome === 'not-covered' || later.outcome === 'error') continue;
    return { date: d.toISOString().slice(0, 10), criteria: ev.failed.filter((r) => !later.failed.some((f) => f.id === r.id)).map((r) => r.text) };
  }
  return undefined;
}
