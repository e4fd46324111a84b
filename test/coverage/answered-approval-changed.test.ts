/**
 * docs/design.md §8 "What an approval covers": an approval given in DTR (or PAS) rested on answers signing does not
 * have. The order changed since and signed again is judged with that approval's answers (order-record.ts
 * judgeWithApprovalAnswers); the hook tests (test/hooks/outgrown-answered-approval.test.ts) cover the limit found then.
 * Here the other ground, which no sandbox story reaches: with the answers, the changed order no longer meets the
 * policy. The approval is let go of and the order answered as now evaluated (documentation for the order as it now
 * stands), never denied on answers given for the order as it then stood; a call that commits nothing lets go of no
 * approval. The policy is Centene's; the evaluations are given, so only the settling is under test.
 */
import { describe, expect, it } from 'vitest';
import { determinationFor, type OrderDecision } from '../../src/coverage/decide-orders.js';
import { settleOrderDecisions, UNDECIDED } from '../../src/coverage/order-record.js';
import type { FactValue, PolicyEvaluation } from '../../src/policies/evaluate-policy.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { testContent } from '../helpers/app.js';

const TODAY = '2026-11-23';
const NUMBER = 'PA-CENTENE-20261120-TESTDTR1';

async function approvedInDtr() {
  const policy = testContent().policies.find((p) => p.file.id === 'centene-blinatumomab')!;
  const storage = new MemoryStorage();
  const key = { payer: 'centene', patientId: 'pt-changed', orderRef: 'MedicationRequest/changed-order', drug: policy.file.drug };
  await storage.saveAssertion({
    assertionId: 'dtr-assertion',
    createdAt: `${TODAY}T08:00:00Z`,
    payer: 'centene',
    policyId: policy.file.id,
    patientId: key.patientId,
    orderRef: key.orderRef,
    hookInstance: 'dtr:POST',
    outcome: 'satisfied',
    facts: { cyclesRequested: 4, mrdPercent: 0.4 },
    missingFacts: [],
  });
  await storage.applyOrderChange({
    key,
    from: UNDECIDED,
    change: { state: 'approved', at: `${TODAY}T08:00:00Z`, source: 'dtr', actor: 'dtr:POST', reason: 'Meets CP.PHAR.312', assertionId: 'dtr-assertion', authorization: { number: NUMBER, start: '2026-11-21', end: '2027-05-20' } },
  });
  return { policy, storage, key };
}

/** The changed order's decision at signing: 10 cycles, the MRD level unknown; with answers, not covered. */
function changedDecision(policy: ReturnType<typeof testContent>['policies'][number], seen: Record<string, FactValue>[]): OrderDecision {
  const base: PolicyEvaluation = {
    policyId: policy.file.id,
    policyVersion: policy.file.version,
    outcome: 'documentation-needed',
    facts: [
      { name: 'cyclesRequested', value: 10, source: 'ehr' },
      { name: 'mrdPercent', source: 'unknown' },
    ],
    rules: [],
    missingFacts: ['mrdPercent'],
    failed: [],
    proposals: [],
  };
  return {
    order: { resourceType: 'MedicationRequest', id: 'changed-order' } as OrderDecision['order'],
    assertionId: 'sign-assertion',
    policy,
    evaluation: base,
    orderDate: '2026-11-21',
    withAnswers: (answers) => {
      seen.push(answers);
      return { ...base, outcome: 'not-covered', facts: [{ name: 'cyclesRequested', value: 10, source: 'ehr' }, { name: 'mrdPercent', value: 0.4, source: 'answer' }], missingFacts: [] };
    },
  };
}

describe("an order changed after an approval given in DTR, that with the approval's answers no longer meets the policy", () => {
  it('order-sign: the approval is let go of, the order answered as now evaluated (not denied), with the answers judged', async () => {
    const { policy, storage, key } = await approvedInDtr();
    const seen: Record<string, FactValue>[] = [];
    const d = changedDecision(policy, seen);
    await settleOrderDecisions({ storage, payer: 'centene', patientId: key.patientId, decisions: [d], actor: 'order-sign test', today: TODAY });
    expect(seen).toEqual([{ mrdPercent: 0.4 }]);
    const record = await storage.getOrderRecord(key);
    expect(record?.state).toBe('auth-needed');
    expect(record?.authorization).toBeUndefined();
    expect(record?.history.at(-1)?.reason).toMatch(new RegExp(`changed after the approval ${NUMBER}.*does not meet the policy`));
    const answer = determinationFor(d, TODAY);
    expect(answer.outcome).toBe('documentation-needed');
    expect(answer.authorization).toBeUndefined();
    expect(answer.reasons.map((r) => r.text).join(' ')).toContain(`Authorization ${NUMBER} was for this order as it stood when approved`);
  });

  it('order-select (commits nothing): the approval stays; the order is answered as sent', async () => {
    const { policy, storage, key } = await approvedInDtr();
    const d = changedDecision(policy, []);
    await settleOrderDecisions({ storage, payer: 'centene', patientId: key.patientId, decisions: [d], actor: 'order-select test', today: TODAY, mayReopen: false });
    expect((await storage.getOrderRecord(key))?.authorization?.number).toBe(NUMBER);
    expect(d.record).toBeUndefined();
    expect(determinationFor(d, TODAY).outcome).toBe('documentation-needed');
  });

  it('the order unchanged (the facts of the order as approved): nothing more is evaluated, the approval answers', async () => {
    const { policy, storage, key } = await approvedInDtr();
    const seen: Record<string, FactValue>[] = [];
    const d = changedDecision(policy, seen);
    d.evaluation = { ...d.evaluation!, facts: [{ name: 'cyclesRequested', value: 4, source: 'ehr' }, { name: 'mrdPercent', source: 'unknown' }] };
    await settleOrderDecisions({ storage, payer: 'centene', patientId: key.patientId, decisions: [d], actor: 'order-sign test', today: TODAY });
    expect(seen).toEqual([]);
    const answer = determinationFor(d, TODAY);
    expect(answer.outcome).toBe('satisfied');
    expect(answer.authorization?.number).toBe(NUMBER);
  });
});
