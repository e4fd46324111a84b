import type { MedicationRequest } from '@medplum/fhirtypes';
import { describe, expect, it, vi } from 'vitest';
import { loadContent } from '../../src/content.js';
import { newApproval } from '../../src/coverage/authorization.js';
import { determinationOf } from '../../src/coverage/determination.js';
import { evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import type { FactValue } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { buildCase, caseFileNames, readCaseFile } from '../helpers/policy-cases.js';
import type { PolicyCaseInput } from '../helpers/policy-cases.js';
import { repoRoot } from '../helpers/stories.js';

interface PolicyCase extends PolicyCaseInput {
  cite: string;
  expect: {
    outcome: string;
    pathway?: string;
    /**
     * The approving pathway's approval length, as the seed states it (e.g. { weeks: 24 }), with the date fact it runs
     * from when it has one (e.g. { weeks: 30, from: courseFirstCycleStart }).
     */
    approval?: { days?: number; weeks?: number; months?: number; from?: string };
    /** The approval period issued at the order's date (CRD expiry-date, DTR, PAS preAuthPeriod): newApproval's. */
    period?: { start: string; end: string };
    missing?: string[];
    notMissing?: string[];
    failed?: string[];
    /** Rules that must not fail: e.g. a limit whose clause is not the patient's (the < 45 kg dose row for an adult). */
    notFailed?: string[];
    /**
     * The first proposal (of `kind` when given: dose, quantity or cycles); `perM2` its per-m² form for an order written
     * per m² (null: none, the labelled dose is flat).
     */
    proposal?: { kind?: string; value: number; unit: string; perM2?: { value: number; unit: string } | null };
    /** Every proposal's kind, in order ([] : nothing is proposed, e.g. an exceeded limit no proposal brings within). */
    proposalKinds?: string[];
    /** Whether the order changed as proposed would be approved at signing (the card's "covered without review"). */
    alternateApproved?: boolean;
    facts?: Record<string, FactValue | null>;
    /** Words the determination's reason (CRD reason, card, DTR, PAS) must and must not hold (design.md §6). */
    reason?: { includes?: string[]; excludes?: string[] };
    /**
     * Words the approving pathway's `cite` must and must not hold: the seed clause a reviewer is sent to has to say what
     * the pathway approves (cds-services/README.md "Rules": every rule cites its clause).
     */
    pathwayCite?: { includes?: string[]; excludes?: string[] };
  };
}

const caseFiles = caseFileNames();
const content = loadContent({ root: repoRoot, canonicalBase: 'https://priorpath.dev/fhir' });

describe.each(caseFiles)('policy cases %s', (file) => {
  const spec = readCaseFile<PolicyCase>(file);
  const policy = content.policies.find((p) => p.file.id === spec.policy);

  it('names a loaded policy', () => {
    expect(policy, `policy ${spec.policy}`).toBeDefined();
  });

  it.each(spec.cases.map((c) => [`${c.name} [${c.cite}]`, c] as const))('%s', (_label, c) => {
    expect(c.cite, 'every case cites the clause it tests').toBeTruthy();
    const { resources, order } = buildCase(c);
    const record = indexRecord(recordFromResources(resources, [order], order.requester?.reference));
    if (c.request) {
      const byId = (id: string) => (id === order.id ? order : resources.find((r): r is MedicationRequest => r.resourceType === 'MedicationRequest' && r.id === id));
      record.requestOrders = c.request.map((id) => {
        const o = byId(id);
        if (!o) throw new Error(`case "${c.name}": request names ${id}, which is not a MedicationRequest of the case`);
        return o;
      });
    }
    // The clock stands at the file's `today`, before the orders' planned start, as at a real signing: a date an
    // order plans is ahead of today, and the evaluation must still read it.
    vi.useFakeTimers({ toFake: ['Date'], now: new Date(`${spec.today}T12:00:00Z`) });
    let result: ReturnType<typeof evaluatePolicy>;
    const data = evaluationDataFor(record, order, spec.today);
    try {
      result = evaluatePolicy(policy!, data, c.answers ?? {});
    } finally {
      vi.useRealTimers();
    }
    const trace = JSON.stringify({ outcome: result.outcome, facts: result.facts, rules: result.rules, missing: result.missingFacts }, null, 1);

    expect(result.outcome, trace).toBe(c.expect.outcome);
    if (c.expect.pathway) expect(result.pathway?.id, trace).toBe(c.expect.pathway);
    if (c.expect.approval) {
      // A case written before `from` states the length alone: only what it states is compared.
      const { from, afterEnd: _afterEnd, covers: _covers, ...length } = result.pathway?.approval ?? {};
      expect(c.expect.approval.from === undefined ? length : { ...length, from }, trace).toEqual(c.expect.approval);
    }
    if (c.expect.period) {
      const a = result.pathway?.approval;
      expect(a, trace).toBeDefined();
      const { start, end } = newApproval(policy!.file.payer, spec.today, data.orderDate, a!, result.pathway?.approvalFrom);
      expect({ start, end }, trace).toEqual(c.expect.period);
    }
    for (const m of c.expect.missing ?? []) expect(result.missingFacts, trace).toContain(m);
    for (const m of c.expect.notMissing ?? []) expect(result.missingFacts, trace).not.toContain(m);
    for (const f of c.expect.failed ?? []) expect(result.failed.map((r) => r.id), trace).toContain(f);
    for (const f of c.expect.notFailed ?? []) expect(result.failed.map((r) => r.id), trace).not.toContain(f);
    if (c.expect.proposal) {
      const p = result.proposals[0];
      expect(p, trace).toBeDefined();
      if (c.expect.proposal.kind) expect(p.kind, trace).toBe(c.expect.proposal.kind);
      expect(p.unit).toBe(c.expect.proposal.unit);
      expect(p.value).toBeCloseTo(c.expect.proposal.value, 1);
      const perM2 = c.expect.proposal.perM2;
      if (perM2 === null) expect(p.perM2, trace).toBeUndefined();
      else if (perM2) {
        expect(p.perM2?.unit, trace).toBe(perM2.unit);
        expect(p.perM2?.value, trace).toBeCloseTo(perM2.value, 1);
      }
    }
    if (c.expect.proposalKinds) expect(result.proposals.map((p) => p.kind), trace).toEqual(c.expect.proposalKinds);
    if (c.expect.alternateApproved !== undefined) expect(result.alternateApproved, trace).toBe(c.expect.alternateApproved);
    if (c.expect.reason) {
      const reason = determinationOf(policy!, result).reasons.map((r) => r.text).join(' ');
      for (const w of c.expect.reason.includes ?? []) expect(reason, trace).toContain(w);
      for (const w of c.expect.reason.excludes ?? []) expect(reason, trace).not.toContain(w);
    }
    if (c.expect.pathwayCite) {
      const cite = result.pathway?.cite ?? '';
      for (const w of c.expect.pathwayCite.includes ?? []) expect(cite, trace).toContain(w);
      for (const w of c.expect.pathwayCite.excludes ?? []) expect(cite, trace).not.toContain(w);
    }
    for (const [name, value] of Object.entries(c.expect.facts ?? {})) {
      const fact = result.facts.find((f) => f.name === name);
      expect(fact, `fact ${name}`).toBeDefined();
      if (value === null) expect(fact!.value, `${name} should be unknown\n${trace}`).toBeUndefined();
      else if (typeof value === 'number') expect(fact!.value as number, `${name}\n${trace}`).toBeCloseTo(value, 2);
      else expect(fact!.value, `${name}\n${trace}`).toBe(value);
    }
  });
});
