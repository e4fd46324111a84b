/**
 * A returned response with answers the form hides is read again without them, until the hidden set settles
 * (src/coverage/evaluate-response.ts): the patient's record does not change between those readings, so it is indexed
 * once per response (was once per reading, each a filter and sort of every observation), and the decision is the
 * one the response without the hidden answers gets.
 */
import type { Questionnaire, QuestionnaireResponseItem } from '@medplum/fhirtypes';
import { describe, expect, it, vi } from 'vitest';
import { prefilledResponse } from '../../src/coverage/questionnaire-answers.js';
import { evaluateQuestionnaireResponse } from '../../src/coverage/evaluate-response.js';
import { evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import type * as EvaluationDataModule from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { buildCase, readCaseFile } from '../helpers/policy-cases.js';
import { CANONICAL_BASE, dtrContent } from './helpers.js';

const indexings = vi.hoisted(() => ({ count: 0 }));

vi.mock('../../src/policies/evaluation-data.js', async (importOriginal) => {
  const real = await importOriginal<typeof EvaluationDataModule>();
  return {
    ...real,
    indexRecord: (...args: Parameters<typeof real.indexRecord>) => {
      indexings.count++;
      return real.indexRecord(...args);
    },
  };
});

const content = dtrContent();
const yes = [{ valueBoolean: true }];

/** The case's pre-filled, completed response, with `stale` answers added (each hidden by the form for this patient). */
function caseResponse(policyId: string, caseName: string, stale: Record<string, QuestionnaireResponseItem['answer']>) {
  const spec = readCaseFile(`${policyId}.yaml`);
  const policy = content.policies.find((p) => p.file.id === policyId)!;
  const c = spec.cases.find((x) => x.name === caseName)!;
  expect(c, caseName).toBeDefined();
  const { resources, order } = buildCase(c);
  const record = recordFromResources(resources, [order], order.requester?.reference);
  const data = evaluationDataFor(indexRecord(record), order, spec.today);
  const known = Object.fromEntries(evaluatePolicy(policy, data, {}).facts.filter((f) => f.value !== undefined).map((f) => [f.name, f.value]));
  const form = content.questionnaires.get(policy.questionnaire.split('|')[0]) as unknown as Questionnaire;
  const qr = prefilledResponse(policy, form, { ...known, ...(c.answers ?? {}) }, {
    valueSets: content.valueSets,
    canonicalBase: CANONICAL_BASE,
    orderDate: data.orderDate,
    dtrVersion: '2.2',
  });
  qr.status = 'completed';
  const plainItems = [...(qr.item ?? [])];
  qr.item = [...plainItems.filter((i) => !(i.linkId in stale)), ...Object.entries(stale).map(([linkId, answer]) => ({ linkId, answer }))];
  return { qr, plain: { ...qr, item: plainItems.filter((i) => !(i.linkId in stale)) }, record, order, known, today: spec.today };
}

describe('DTR: the record behind a response with hidden answers', () => {
  it('is indexed once for all the readings (was once per reading), and decides as the response without them', () => {
    const name = 'MRD ≥ 0.1 % in a third remission is not the labelled MRD indication and is not covered in induction';
    const { qr, plain, record, order, known, today } = caseResponse('mmm-blinatumomab', name, { 'infant-all': yes, 'with-interfant': yes });
    indexings.count = 0;
    const read = evaluateQuestionnaireResponse({ content, qr, record, order, knownFacts: known, today });
    expect(read.notShown, 'the stale answers were read again without them').toEqual(expect.arrayContaining(['infant-all', 'with-interfant']));
    expect(indexings.count).toBe(1);
    const withoutStale = evaluateQuestionnaireResponse({ content, qr: plain, record, order, knownFacts: known, today });
    expect(read.evaluation.outcome).toBe(withoutStale.evaluation.outcome);
    expect(read.evaluation.outcome).toBe('not-covered');
    expect(read.orderDate).toBe(withoutStale.orderDate);
  });
});
