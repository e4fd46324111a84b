import { randomUUID } from 'node:crypto';
import type { Extension } from '@medplum/fhirtypes';
import { newApproval } from '../coverage/authorization.js';
import { assertionFor, buildCoverageInformation, COVERAGE_INFO_URL } from '../coverage/coverage-information.js';
import { determinationOf } from '../coverage/determination.js';
import { orderKeyOf, recordEvaluation, withOrderRecord } from '../coverage/order-record.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import type { PolicyEvaluation } from '../policies/evaluate-policy.js';
import type { AssertionRecord, Storage } from '../storage/storage.js';

/** A DTR determination: the CRD coverage-information extension for a response, and the assertion behind it. */
export interface Determination {
  extension: Extension;
  assertion: AssertionRecord;
}

/**
 * Shapes an evaluation of answers into the CRD `ext-coverage-information` the completed QuestionnaireResponse carries
 * (DTR §Adaptive "MAY/SHOULD carry coverage-information"; design.md §7), with the same codes CRD would send for the
 * same facts (the coverage core's determination, shaped by `assertionFor` / `buildCoverageInformation`). A satisfied
 * determination gets an authorization number and period, like real-time approval at signing, unless the order's
 * record already holds its decision: then that decision is the determination. The assertion is stored so PAS and disputes
 * can find it by its `coverage-assertion-id`.
 */
export async function determine(opts: {
  policy: CompiledPolicy;
  evaluation: PolicyEvaluation;
  today: string;
  coverageRef?: string;
  orderRef?: string;
  patientId?: string;
  source: string;
  storage: Storage;
  version?: '2.0' | '2.2';
}): Promise<Determination> {
  const { policy, evaluation, today } = opts;
  const assertionId = randomUUID();
  const authorization =
    evaluation.outcome === 'satisfied' && evaluation.pathway?.approval
      ? newApproval(policy.file.payer, today, today, evaluation.pathway.approval)
      : undefined;
  let determination = determinationOf(policy, evaluation, authorization);
  // The order's one record (design.md §8): a decision already made (a reviewer's approval included) is what DTR
  // shows; an approval made here is the order's, issued once.
  const key = orderKeyOf({ payer: policy.file.payer, patientId: opts.patientId, orderRef: opts.orderRef, drug: policy.file.drug });
  if (key) {
    const record = await recordEvaluation(opts.storage, key, determination, { source: 'dtr', actor: opts.source, assertionId, policyId: policy.file.id });
    determination = withOrderRecord(determination, record, today);
  }
  const issued = determination.authorization;
  const assertion = assertionFor(determination, {
    coverageRef: opts.coverageRef ?? 'Coverage/unknown',
    assertionId,
    date: today,
    billingCodes: policy.file.billingCodes,
  });
  const extension = buildCoverageInformation(assertion, opts.version ?? '2.0');
  if (!opts.coverageRef) {
    // The response named no Coverage: keep the required element, without inventing a reference.
    extension.extension = extension.extension?.map((e) =>
      e.url === 'coverage'
        ? { url: 'coverage', valueReference: { display: 'The Coverage of the DTR launch context' } }
        : e,
    );
  }
  const record: AssertionRecord = {
    assertionId,
    createdAt: new Date().toISOString(),
    payer: policy.file.payer,
    policyId: policy.file.id,
    policyVersion: policy.file.version,
    patientId: opts.patientId ?? '',
    orderRef: opts.orderRef ?? '',
    hookInstance: opts.source,
    outcome: determination.outcome,
    facts: Object.fromEntries(evaluation.facts.filter((f) => f.value !== undefined).map((f) => [f.name, f.value])),
    missingFacts: evaluation.missingFacts,
    ...(issued ? { authorization: issued } : {}),
  };
  await opts.storage.saveAssertion(record);
  return { extension, assertion: record };
}

/** Replaces any coverage-information on a resource with a new one. */
export function withCoverageInformation<T extends { extension?: Extension[] }>(resource: T, ext: Extension): T {
  return { ...resource, extension: [...(resource.extension ?? []).filter((e) => e.url !== COVERAGE_INFO_URL), ext] };
}
