import { randomUUID } from 'node:crypto';
import type { Narrative, QuestionnaireResponse } from '@medplum/fhirtypes';
import type { Content } from '../content.js';
import { HttpError, notFound, outcome, serviceUnavailable } from '../errors.js';
import type { Logger } from '../logger.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { localReference } from '../fhir/references.js';
import type { QuestionnaireResponseRecord, Storage } from '../storage/storage.js';
import { readableBy } from '../storage/storage.js';
import type { AnswerProblem } from '../coverage/questionnaire-answers.js';
import { orderRecordOf, planDetermination, withCoverageInformation } from './determination.js';
import type { Determination, DetermineOptions } from './determination.js';
import {
  answeredCanonical,
  evaluateQuestionnaireResponse,
  policyForQuestionnaire,
  responseContext,
} from '../coverage/evaluate-response.js';
import { assertedContext, responseAssertions } from './response-assertion.js';
import { coverageShapeOf, responseShapeProblems } from './response-shape.js';

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

/** Checks a sent response's shape and status: a malformed one is a 400, one entered in error a 422. */
function checkedResponse(body: unknown): QuestionnaireResponse {
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
  return qr;
}

/**
 * `POST /QuestionnaireResponse`: a DTR response sent to the payer (DTR §"Storing and sending QuestionnaireResponses";
 * design.md §7). Checks its shape, evaluates the answers with the policy's rules — over the facts of the CRD assertion
 * the response names in a coverage-information extension (DTR 2.2) when that assertion is about the response's
 * subject, else the answers alone — and returns the response
 * with an id and the determination in `ext-coverage-information`. The determination is stored as an assertion and
 * the returned response is stored under its id (read back with `GET /QuestionnaireResponse/{id}`), both before the
 * answer. Only a `completed` or `amended` response decides: a draft (`in-progress`) or a `stopped` one is stored
 * without a determination (see {@link undecidedRecord}); a response entered in error is a 422.
 */
export async function submitQuestionnaireResponse(
  body: unknown,
  deps: SubmitResponseDeps,
): Promise<QuestionnaireResponse> {
  const qr = checkedResponse(body);
  // Durable before the answer (design.md §2): the Location the client is given must read back what it was told.
  const record = await storeResponse(qr, deps, randomUUID(), '1');
  return record!.resource;
}

/**
 * `PUT /QuestionnaireResponse/{id}`: the next version of a stored response that has not decided the order yet (a
 * draft, or a stopped one, taken up again: FHIR R4 update; design.md §7). The body's `id` must be the URL's. Another
 * client's response, or an unknown id, is a 404 (no hint that it exists); a response that decided the order is kept as
 * it was (422: send a new one). The new version is handled as a POST would be — still a draft, or now completed and
 * decided — and stored under the same id with the next `versionId` (a concurrent update of the same version is a 409).
 */
export async function updateQuestionnaireResponse(
  id: string,
  body: unknown,
  deps: SubmitResponseDeps,
): Promise<QuestionnaireResponse> {
  const qr = checkedResponse(body);
  if (qr.id !== id)
    throw new HttpError(400, outcome('error', 'invalid', `The body's id must be ${id}, the id in the URL`, ['QuestionnaireResponse.id']));
  const stored = await deps.storage.getQuestionnaireResponse(id);
  if (!stored || !readableBy(stored.clientId, deps.clientId)) throw notFound(`QuestionnaireResponse/${id} is not known`);
  if (stored.assertionId)
    throw new HttpError(
      422,
      outcome(
        'error',
        'business-rule',
        `QuestionnaireResponse/${id} decided the order and is kept as it was: send a new response (POST) to be evaluated again`,
        ['QuestionnaireResponse.status'],
      ),
    );
  const previous = stored.resource.meta?.versionId ?? '1';
  const version = String((Number.parseInt(previous, 10) || 1) + 1);
  const record = await storeResponse(qr, { ...deps, clientId: stored.clientId }, id, version, previous);
  if (!record) throw new HttpError(409, outcome('error', 'conflict', `QuestionnaireResponse/${id} was updated meanwhile: read it and send the update again`));
  return record.resource;
}

/** How many times a decided response is planned again on an order's record that moved while it was being decided. */
const DECIDE_ATTEMPTS = 5;

/**
 * Stores a checked response under `id` and `versionId` (a new one, or the next version of the one stored at
 * `previousVersionId`) and returns it as stored; undefined when another update of that version came first. A
 * finished response is stored with its determination (the assertion, the order's changes) in one transaction: a
 * response whose write is refused records nothing, neither an assertion nor a change to the order, nor an
 * authorization number (design.md §7). An order's record that moved meanwhile (a decision on another path) is read
 * again and the determination made on it.
 */
async function storeResponse(
  qr: QuestionnaireResponse,
  deps: SubmitResponseDeps,
  id: string,
  versionId: string,
  previousVersionId?: string,
): Promise<QuestionnaireResponseRecord | undefined> {
  if (!DECIDING_STATUSES.has(qr.status)) {
    const record = undecidedRecord(qr, deps, id, versionId);
    if (previousVersionId !== undefined) return (await deps.storage.replaceQuestionnaireResponse(record, previousVersionId)) ? record : undefined;
    await deps.storage.saveQuestionnaireResponse(record);
    return record;
  }
  const evaluated = await evaluateAnswers(qr, deps);
  for (let attempt = 1; ; attempt++) {
    // The determination in the CRD shape the response's DTR version carries (response-shape.ts coverageShapeOf).
    const plan = planDetermination({ ...evaluated, version: coverageShapeOf(qr), ...(await orderRecordOf(evaluated, deps.storage)) });
    const record = decidedRecord(qr, deps, id, versionId, plan);
    const result = await deps.storage.saveDecidedQuestionnaireResponse({ record, assertion: plan.assertion, orders: plan.orders, ...(previousVersionId !== undefined ? { previousVersionId } : {}) });
    if (result.applied) {
      deps.log.info(
        { policy: evaluated.policy.file.id, outcome: evaluated.evaluation.outcome, coverageAssertionId: plan.assertion.assertionId, warnings: evaluated.warnings },
        'questionnaire-response evaluated',
      );
      return record;
    }
    if (!result.blockedBy) return undefined;
    if (attempt === DECIDE_ATTEMPTS)
      throw serviceUnavailable(`The order of QuestionnaireResponse/${id} kept changing while it was decided: send it again`);
  }
}

/** The response's narrative unless it is the "not evaluated" one PriorPath wrote on an undecided version. */
const clientText = (qr: QuestionnaireResponse): Narrative | undefined =>
  qr.text && !qr.text.div.includes(UNDECIDED_CLASS) ? qr.text : undefined;

/**
 * Evaluates a finished response's answers (a 400 names a malformed one) over the facts of the CRD assertion it names
 * when that assertion is about the response's subject: what its determination is made of.
 */
async function evaluateAnswers(qr: QuestionnaireResponse, deps: SubmitResponseDeps): Promise<DetermineOptions & { warnings: number }> {
  const found = policyForQuestionnaire(deps.content, answeredCanonical(qr));
  const ctx = responseContext(qr);
  // The facts, the order date and the order CRD recorded stand in for what the response does not say, only for the
  // patient they were read from (response-assertion.ts).
  const asserted = found ? await responseAssertions(qr, found.policy, deps.storage, deps.log) : { ...assertedContext(qr, undefined), otherPatientIds: [] };
  const result = evaluateQuestionnaireResponse({ content: deps.content, qr, knownFacts: asserted.knownFacts, chartFacts: asserted.chartFacts, assertedOrderDate: asserted.assertedOrderDate, today: deps.today });
  if (result.problems.length > 0) throw invalid(result.problems);
  // A well-formed response for a form the payer serves, decided only for the one patient it is about.
  await checkOnePatient(qr, { patientId: ctx.patientId, otherPatientIds: asserted.otherPatientIds, policy: result.policy, orderRef: asserted.orderRef }, deps);
  return {
    policy: result.policy,
    evaluation: result.evaluation,
    today: deps.today,
    orderDate: result.orderDate,
    coverageRef: ctx.coverage,
    ...(asserted.coverageEnd ? { coverageEnd: asserted.coverageEnd } : {}),
    ...(asserted.coverageRef ? { coverageEndRef: asserted.coverageRef } : {}),
    ...(asserted.assertedOrderStart ? { orderStart: asserted.assertedOrderStart } : {}),
    orderRef: asserted.orderRef,
    patientId: ctx.patientId,
    source: 'dtr:QuestionnaireResponse',
    warnings: result.warnings.length,
  };
}

/**
 * A finished response decides an order for one patient, the one its `subject` names (DTR QuestionnaireResponse
 * profile: subject 1..1, the Patient), and only that patient's (docs/design.md §4 "One patient"):
 * - without a subject naming a Patient its determination belongs to no order record (orderKeyOf needs the patient), so
 *   the number it would issue is one no other edge knows: a 400;
 * - a `coverage-assertion-id` it carries of a CRD assertion recorded for another patient (`otherPatientIds`, found by
 *   the one walk of the response's ids, response-assertion.ts) means the response was answered on another patient's
 *   order (or its subject is wrong): deciding it would put an approval for the subject on that patient's order, so it
 *   is a 400 naming the assertion, rather than the assertion being set aside;
 * - the order it is about (its qr-context, else its assertion's), when this payer holds that order's record for
 *   other patients only, is another patient's order: deciding it would give the subject a second record, and an
 *   approval, on it (QA s40 F10, a response with no assertion id). A 400 naming the order and the subject, not the
 *   other patient. An order this payer holds no record of has nothing to compare with and is decided as before.
 */
export async function checkOnePatient(
  qr: QuestionnaireResponse,
  about: { patientId: string | undefined; otherPatientIds: readonly string[]; policy: CompiledPolicy; orderRef: string | undefined },
  deps: Pick<SubmitResponseDeps, 'storage' | 'log'>,
): Promise<void> {
  const { patientId } = about;
  if (!patientId) {
    throw invalid([
      {
        path: 'QuestionnaireResponse.subject',
        message: 'A completed QuestionnaireResponse names its patient in subject (a Patient reference; DTR QuestionnaireResponse profile subject 1..1): its determination belongs to that patient\'s order',
      },
    ]);
  }
  const [otherPatients] = about.otherPatientIds;
  if (otherPatients) {
    throw invalid([
      {
        path: 'QuestionnaireResponse.extension',
        message: `coverage-assertion-id ${otherPatients} is CRD's assertion for another patient than QuestionnaireResponse.subject (Patient/${patientId}): a response decides only its subject's order`,
      },
    ]);
  }
  const orderRef = localReference(about.orderRef);
  if (!orderRef) return;
  const { payer, drug } = about.policy.file;
  const holders = await deps.storage.orderPatientIds({ payer, orderRef, drug });
  if (holders.length === 0 || holders.includes(patientId)) return;
  deps.log.warn({ orderRef, patientId, policy: about.policy.file.id }, 'questionnaire-response: order of another patient than its subject, refused');
  const orderAt = responseContext(qr).orders[0] ? "QuestionnaireResponse.extension.where(url = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-context')" : 'QuestionnaireResponse.extension';
  throw new HttpError(
    400,
    outcome(
      'error',
      'invalid',
      `${orderRef}, the order this response is about, is another patient's order at this payer, not QuestionnaireResponse.subject's (Patient/${patientId}): a response decides only its subject's order`,
      ['QuestionnaireResponse.subject', orderAt],
    ),
  );
}

/** The stored form of a finished response: the response as sent, with its determination's coverage-information. */
function decidedRecord(qr: QuestionnaireResponse, deps: SubmitResponseDeps, id: string, versionId: string, d: Determination): QuestionnaireResponseRecord & { assertionId: string } {
  const ctx = responseContext(qr);
  const receivedAt = new Date().toISOString();
  const { text: _text, ...sent } = qr;
  const text = clientText(qr);
  // A completed version of a stored draft does not repeat the draft's "not evaluated" narrative.
  const saved = withCoverageInformation(
    { ...sent, ...(text ? { text } : {}), id, meta: { ...(qr.meta ?? {}), versionId, lastUpdated: receivedAt } },
    d.extension,
  );
  return {
    id,
    receivedAt,
    assertionId: d.assertion.assertionId,
    ...(ctx.patientId ? { patientId: ctx.patientId } : {}),
    // The order the determination is about: the response's, else its CRD assertion's (response-assertion.ts).
    ...(ctx.orders[0] || d.assertion.orderRef ? { orderRef: ctx.orders[0] ?? d.assertion.orderRef } : {}),
    ...(deps.clientId ? { clientId: deps.clientId } : {}),
    resource: saved,
  };
}

/**
 * A response that is not finished (`in-progress`, `stopped`): its shape and answers are checked as for a completed one
 * (a 400 names a malformed answer), then it is stored as sent so the clinician can pick it up again (read it back,
 * update it with PUT). It is not evaluated: no assertion, no change to the order's record, no authorization number, no
 * coverage-information added. Its narrative (unless the client wrote its own) says so.
 */
function undecidedRecord(
  qr: QuestionnaireResponse,
  deps: SubmitResponseDeps,
  id: string,
  versionId: string,
): QuestionnaireResponseRecord {
  const result = evaluateQuestionnaireResponse({ content: deps.content, qr, today: deps.today });
  if (result.problems.length > 0) throw invalid(result.problems);
  const ctx = responseContext(qr);
  const receivedAt = new Date().toISOString();
  const saved: QuestionnaireResponse = {
    ...qr,
    id,
    meta: { ...(qr.meta ?? {}), versionId, lastUpdated: receivedAt },
    text: clientText(qr) ?? undecidedNarrative(id, qr.status),
  };
  deps.log.info({ policy: result.policy.file.id, status: qr.status }, 'questionnaire-response stored undecided');
  return {
    id,
    receivedAt,
    ...(ctx.patientId ? { patientId: ctx.patientId } : {}),
    ...(ctx.orders[0] ? { orderRef: ctx.orders[0] } : {}),
    ...(deps.clientId ? { clientId: deps.clientId } : {}),
    resource: saved,
  };
}
