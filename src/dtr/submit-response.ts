import { randomUUID } from 'node:crypto';
import type { Narrative, QuestionnaireResponse } from '@medplum/fhirtypes';
import type { Content } from '../content.js';
import { HttpError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Storage } from '../storage/storage.js';
import type { AnswerProblem } from '../coverage/questionnaire-answers.js';
import { determine, withCoverageInformation } from './determination.js';
import {
  answeredCanonical,
  coverageAssertionIds,
  evaluateQuestionnaireResponse,
  policyForQuestionnaire,
  responseContext,
} from '../coverage/evaluate-response.js';
import { assertionIsAbout } from './assertion-patient.js';
import { responseShapeProblems } from './response-shape.js';

export interface SubmitResponseDeps {
  content: Content;
  storage: Storage;
  today: string;
  log: Logger;
  /** The payer API client sending it (undefined in open mode): only it reads the stored response back (design.md §8). */
  clientId?: string;
}

/**
 * The statuses whose answers decide the order (FHIR R4 QuestionnaireResponse.status): the clinician finished the form
 * (`completed`) or corrected a finished one (`amended`). A draft (`in-progress`) or an abandoned form (`stopped`) is
 * stored but decides nothing (design.md §7).
 */
const DECIDING_STATUSES = new Set(['completed', 'amended']);

/** Marks the narrative PriorPath writes on an undecided response, so a completed copy of it does not carry it on. */
const UNDECIDED_CLASS = 'priorpath-undecided';

function undecidedNarrative(id: string, status: string): Narrative {
  const what =
    status === 'stopped'
      ? 'Stored as stopped (abandoned before it was completed)'
      : 'Saved as a draft (status in-progress)';
  return {
    status: 'generated',
    div:
      `<div xmlns="http://www.w3.org/1999/xhtml" class="${UNDECIDED_CLASS}"><p>${what} as QuestionnaireResponse/${id}. ` +
      'It was not evaluated for a coverage decision: no determination was recorded and no authorization number was ' +
      "issued. Send the response with status completed to receive the payer's determination.</p></div>",
  };
}

function invalid(problems: AnswerProblem[]): HttpError {
  return new HttpError(400, {
    resourceType: 'OperationOutcome',
    issue: problems.map((p) => ({ severity: 'error', code: 'invalid', diagnostics: p.message, expression: [p.path] })),
  });
}

/**
 * `POST /QuestionnaireResponse`: a DTR response sent to the payer (DTR §"Storing and sending QuestionnaireResponses";
 * design.md §7). Checks its shape, evaluates the answers with the policy's rules — over the facts of the CRD assertion
 * the response names in a coverage-information extension (DTR 2.2) when that assertion is about the response's
 * subject, else the answers alone — and returns the response
 * with an id and the determination in `ext-coverage-information`. The determination is stored as an assertion and
 * the returned response is stored under its id (read back with `GET /QuestionnaireResponse/{id}`), both before the
 * answer. Only a `completed` or `amended` response decides: a draft (`in-progress`) or a `stopped` one is stored
 * without a determination ({@link saveUndecided}); a response entered in error is a 422.
 */
export async function submitQuestionnaireResponse(
  body: unknown,
  deps: SubmitResponseDeps,
): Promise<QuestionnaireResponse> {
  const shape = responseShapeProblems(body, { requireQuestionnaire: true });
  if (shape.length > 0) throw invalid(shape);
  const qr = body as QuestionnaireResponse;
  // FHIR R4 QuestionnaireResponse.status `entered-in-error`: the response was voided, so its answers decide nothing
  // (an authorization number issued on them would be the order's one approval: design.md §8).
  if (qr.status === 'entered-in-error') {
    throw new HttpError(422, {
      resourceType: 'OperationOutcome',
      issue: [
        {
          severity: 'error',
          code: 'business-rule',
          diagnostics: 'A QuestionnaireResponse entered in error was voided: its answers are not evaluated. Send the corrected response (status completed).',
          expression: ['QuestionnaireResponse.status'],
        },
      ],
    });
  }

  if (!DECIDING_STATUSES.has(qr.status)) return saveUndecided(qr, deps);

  const found = policyForQuestionnaire(deps.content, answeredCanonical(qr));
  const ctx = responseContext(qr);
  // The facts CRD read stand in for unanswered questions only for the patient they were read from.
  const patients = new Set(ctx.patientId ? [ctx.patientId] : []);
  let knownFacts: Record<string, unknown> | undefined;
  for (const id of coverageAssertionIds(qr)) {
    const a = await deps.storage.getAssertion(id).catch(() => undefined);
    if (a && found && a.policyId === found.policy.file.id && assertionIsAbout(a, patients)) {
      knownFacts = a.facts;
      break;
    }
    if (a && !assertionIsAbout(a, patients))
      deps.log.warn({ coverageAssertionId: id }, 'questionnaire-response: coverage-assertion-id of another patient, not used');
  }
  const result = evaluateQuestionnaireResponse({ content: deps.content, qr, knownFacts, today: deps.today });
  if (result.problems.length > 0) throw invalid(result.problems);

  const d = await determine({
    policy: result.policy,
    evaluation: result.evaluation,
    today: deps.today,
    coverageRef: ctx.coverage,
    orderRef: ctx.orders[0],
    patientId: ctx.patientId,
    source: 'dtr:QuestionnaireResponse',
    storage: deps.storage,
  });
  deps.log.info(
    {
      policy: result.policy.file.id,
      outcome: result.evaluation.outcome,
      coverageAssertionId: d.assertion.assertionId,
      warnings: result.warnings.length,
    },
    'questionnaire-response evaluated',
  );
  const receivedAt = new Date().toISOString();
  const { text, ...sent } = qr;
  const saved = withCoverageInformation(
    {
      ...sent,
      // A completed copy of a stored draft does not repeat the draft's "not evaluated" narrative.
      ...(text && !text.div.includes(UNDECIDED_CLASS) ? { text } : {}),
      id: randomUUID(),
      meta: { ...(qr.meta ?? {}), versionId: '1', lastUpdated: receivedAt },
    },
    d.extension,
  );
  // Durable before the answer (design.md §2): the Location the client is given must read back what it was told.
  await deps.storage.saveQuestionnaireResponse({
    id: saved.id!,
    receivedAt,
    assertionId: d.assertion.assertionId,
    ...(ctx.patientId ? { patientId: ctx.patientId } : {}),
    ...(ctx.orders[0] ? { orderRef: ctx.orders[0] } : {}),
    ...(deps.clientId ? { clientId: deps.clientId } : {}),
    resource: saved,
  });
  return saved;
}

/**
 * A response that is not finished (`in-progress`, `stopped`): its shape and answers are checked as for a completed one
 * (a 400 names a malformed answer), then it is stored as sent under a new id so the clinician can pick it up again.
 * It is not evaluated: no assertion, no change to the order's record, no authorization number, no coverage-information
 * added. Its narrative (when it carried none) says so.
 */
async function saveUndecided(qr: QuestionnaireResponse, deps: SubmitResponseDeps): Promise<QuestionnaireResponse> {
  const result = evaluateQuestionnaireResponse({ content: deps.content, qr, today: deps.today });
  if (result.problems.length > 0) throw invalid(result.problems);
  const ctx = responseContext(qr);
  const receivedAt = new Date().toISOString();
  const id = randomUUID();
  const saved: QuestionnaireResponse = {
    ...qr,
    id,
    meta: { ...(qr.meta ?? {}), versionId: '1', lastUpdated: receivedAt },
    text: qr.text ?? undecidedNarrative(id, qr.status),
  };
  await deps.storage.saveQuestionnaireResponse({
    id,
    receivedAt,
    ...(ctx.patientId ? { patientId: ctx.patientId } : {}),
    ...(ctx.orders[0] ? { orderRef: ctx.orders[0] } : {}),
    ...(deps.clientId ? { clientId: deps.clientId } : {}),
    resource: saved,
  });
  deps.log.info({ policy: result.policy.file.id, status: qr.status }, 'questionnaire-response stored undecided');
  return saved;
}
