import type { Parameters, Questionnaire, QuestionnaireItem, QuestionnaireResponse, Resource } from '@medplum/fhirtypes';
import type { Content } from '../content.js';
import { badRequest, HttpError, outcome } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Storage } from '../storage/storage.js';
import type { DtrCatalog } from './catalog.js';
import { determine, withCoverageInformation } from './determination.js';
import {
  answeredCanonical,
  evaluateQuestionnaireResponse,
  policyForQuestionnaire,
  responseContext,
} from '../coverage/evaluate-response.js';
import { provingAttachment } from '../coverage/questionnaire-answers.js';
import {
  DTR_ADAPT_QUESTIONNAIRE,
  DTR_QR_ADAPT,
  EXT_ADAPTIVE,
  EXT_ENABLE_WHEN_EXPRESSION,
  EXT_LAUNCH_CONTEXT,
  EXT_VARIABLE,
  SDC_ADAPT_QUESTIONNAIRE,
} from '../fhir/dtr-urls.js';
import { flattenItems } from './questionnaire-builder.js';
import { claimedDtrVersion, coverageShapeOf, responseShapeProblems } from './response-shape.js';
import { adaptiveNarrative } from './adaptive-questionnaire.js';
import { EXT_CQF_LIBRARY } from './cql-questionnaire.js';
import { justificationLinkId } from '../policies/questionnaire-names.js';
import { responseAssertions } from './response-assertion.js';
import { checkOnePatient } from './submit-response.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import type { PolicyStructure } from '../policies/policy-structure.js';
import type { FactValue } from '../policies/evaluate-policy.js';
import { askWhenFalse, askWhenKnown } from '../policies/evaluate-policy.js';

export interface NextQuestionDeps {
  content: Content;
  catalog: DtrCatalog;
  storage: Storage;
  today: string;
  log: Logger;
  /**
   * `{PUBLIC_BASE_URL}/fhir`: the server that answers `$next-question` for the form, which the contained
   * Questionnaire's `questionnaireAdaptive` names (SDC: "a URL for the base URL of a server that can perform the
   * nextQuestion operation"; DTR 2.2 dtr-questionnaire-adapt: `value[x] only url`).
   */
  fhirBase: string;
}

const INPUT_NAMES = ['questionnaire-response', 'questionnaire-response-in', 'in'];

/** The QuestionnaireResponse of a `$next-question` call: a bare resource, or Parameters under any name SDC/DTR used. */
export function nextQuestionInput(body: unknown): QuestionnaireResponse {
  const r = body as Resource | undefined;
  if (r?.resourceType === 'QuestionnaireResponse') return r;
  if (r?.resourceType === 'Parameters') {
    const p = ((r as Parameters).parameter ?? []).find(
      (x) => INPUT_NAMES.includes(x.name) && x.resource?.resourceType === 'QuestionnaireResponse',
    );
    if (p) return p.resource as QuestionnaireResponse;
    throw badRequest(
      `$next-question takes a QuestionnaireResponse, or Parameters with one under "questionnaire-response"`,
      ['Parameters.parameter'],
    );
  }
  throw badRequest('$next-question takes a QuestionnaireResponse (SDC adaptive form)', ['QuestionnaireResponse']);
}

/**
 * SDC `$next-question` for PriorPath's forms (SDC §Adaptive Questionnaires; DTR §"Adaptive Form"). Stateless: every
 * call derives everything from the posted response. The contained Questionnaire (`derivedFrom` the policy's standard
 * form or its adaptive form, the one `$questionnaire-package` serves to start this route; it keeps naming the one the
 * client started from) grows by the questions still needed, found by running `evaluatePolicy` over the answers so far: the
 * `missingFacts` of the first group of the static form (universal criteria, shared indication, each pathway, limits)
 * that has any, and the justification of an exceeded limit. The questions come from the CQL or the FHIRPath form of the
 * policy, as the form being completed names its Library or not ({@link itemSource}). A question asked before and left
 * unanswered is not asked again; one answered with a value that cannot be true of a patient is (the response stays in
 * progress, and a determination names the answer: review s44 M1). When nothing is left to ask, the response comes back `completed` with the determination in
 * `ext-coverage-information`. A `stopped` or `entered-in-error` response is a 422: it is not carried on to a decision.
 */
export async function nextQuestion(body: unknown, deps: NextQuestionDeps): Promise<QuestionnaireResponse> {
  const qr = nextQuestionInput(body);
  const problems = responseShapeProblems(qr, { requireQuestionnaire: true });
  if (problems.length > 0)
    throw new HttpError(400, {
      resourceType: 'OperationOutcome',
      issue: problems.map((p) => ({
        severity: 'error',
        code: 'invalid',
        diagnostics: p.message,
        expression: [p.path],
      })),
    });

  // FHIR R4 QuestionnaireResponse.status: a stopped form was abandoned and one entered in error was voided; neither is
  // carried on to the determination (only a finished form decides the order: design.md §7).
  if (qr.status === 'stopped' || qr.status === 'entered-in-error')
    throw new HttpError(
      422,
      outcome(
        'error',
        'business-rule',
        `A QuestionnaireResponse with status ${qr.status} is not continued: send the response in progress (or a new one) to be asked the next questions.`,
        ['QuestionnaireResponse.status'],
      ),
    );

  const canonical = answeredCanonical(qr);
  const found = policyForQuestionnaire(deps.content, canonical);
  // The same answer as POST /QuestionnaireResponse gives a response to a form this payer does not serve (422).
  if (!found)
    throw new HttpError(
      422,
      outcome('error', 'processing', `QuestionnaireResponse.questionnaire ${canonical ?? '(missing)'} is not a Questionnaire of this payer service`, [
        'QuestionnaireResponse.questionnaire',
      ]),
    );
  const { policy } = found;
  const staticForm = deps.catalog.forPolicy.get(policy.file.id)!;
  const structure = deps.catalog.structureOf.get(policy.file.id)!;

  const containedId = qr.questionnaire?.startsWith('#') ? qr.questionnaire.slice(1) : 'adaptive';
  const previous = (qr.contained ?? []).find(
    (c): c is Questionnaire => c.resourceType === 'Questionnaire' && c.id === containedId,
  );
  const asked = new Set(flattenItems(previous?.item).map((i) => i.linkId));

  // The CRD assertion the response names (its coverage-information): the adaptive form starts from what CRD knew of the
  // order, as the POST of a finished response does (response-assertion.ts), so it neither asks again what the
  // assertion holds nor judges the order on another date or facts.
  // Read through (an assertion still on its way from the signing replica) on the first round only: later rounds carry
  // the same ids, which the first round already waited for (review s41 F10).
  const asserted = await responseAssertions(qr, policy, deps.storage, deps.log, { readThrough: asked.size === 0 });
  // The form grows toward a decision on the order, so only for the response's subject, as the POST of a finished
  // response is judged (submit-response.ts checkOnePatient: another patient's assertion id, or an order this payer
  // holds for other patients only, is a 400; docs/design.md §4 "One patient"). A response naming no subject yet is
  // asked on; its POST, when finished, needs one.
  const subject = responseContext(qr).patientId;
  if (subject) await checkOnePatient(qr, { patientId: subject, otherPatientIds: asserted.otherPatientIds, policy, orderRef: asserted.orderRef }, deps);
  const result = evaluateQuestionnaireResponse({
    content: deps.content,
    qr: { ...qr, questionnaire: `${staticForm.url}|${staticForm.version}` },
    knownFacts: asserted.knownFacts,
    chartFacts: asserted.chartFacts,
    assertedOrderDate: asserted.assertedOrderDate,
    today: deps.today,
  });
  if (result.problems.length > 0) {
    throw new HttpError(400, {
      resourceType: 'OperationOutcome',
      issue: result.problems.map((p) => ({
        severity: 'error',
        code: 'invalid',
        diagnostics: p.message,
        expression: [p.path],
      })),
    });
  }
  const ev = result.evaluation;

  const answered = deps.catalog.byCanonical.get(canonical!) ?? deps.catalog.byCanonical.get(canonical!.split('|')[0]);
  const adaptiveForm = answered && deps.catalog.standardOf.has(answered) ? answered : undefined;
  const source = itemSource(staticForm, previous, deps.catalog);
  const sourceItems = new Map(flattenItems(source.item).map((i) => [i.linkId, i]));
  const linkIdOf = (fact: string) => policy.factsByName.get(fact)?.def.linkId;
  // A question answered with a value that cannot be true of a patient (MRD 150 %: evaluate-policy.ts factBounds) was
  // asked, but its answer was not used: it is asked again, never taken as answered, or one slip would complete the
  // form with the question still needed (review s44 M1). Its item is already on the form: the response stays in progress.
  const unusable = new Set((ev.unusable ?? []).map((u) => linkIdOf(u.fact)).filter((l): l is string => l !== undefined));
  const wasAsked = (linkId: string) => asked.has(linkId) && !unusable.has(linkId);
  const toAsk: string[] = [];
  if (ev.outcome === 'documentation-needed' || ev.outcome === 'limit-exceeded') {
    const missing = new Set(ev.missingFacts.filter((f) => !wasAsked(linkIdOf(f) ?? '')));
    const stage = structure.groups.find((g) => g.facts.some((f) => missing.has(f)));
    if (stage) {
      const known = Object.fromEntries(ev.facts.filter((f) => f.value !== undefined).map((f) => [f.name, f.value!]));
      const canAsk = (f: string) => sourceItems.has(linkIdOf(f) ?? '') && !wasAsked(linkIdOf(f)!) && !askWhenFalse(policy.factsByName.get(f)?.askWhen, known, result.orderDate);
      toAsk.push(...broadestFirst(structure, gatesFirst(policy, stage.facts.filter((f) => missing.has(f)), known, result.orderDate, canAsk)).map((f) => linkIdOf(f)!));
    }
    if (ev.outcome === 'limit-exceeded') {
      for (const j of structure.justifications.filter((x) => ev.failed.some((r) => r.id === x.limit.id))) {
        const links = j.facts.length > 0 ? j.facts.map((f) => linkIdOf(f)!) : [justificationLinkId(j.limit.id)];
        for (const l of links) if (!asked.has(l) && !toAsk.includes(l)) toAsk.push(l);
      }
    }
  }

  // An attestation answered "Yes" without the document that proves it (attachments `proves`) is unknown until the
  // document comes: the adaptive form asks for it next, as the standard form shows it (required) beside the "Yes".
  for (const fact of result.unproven) {
    const doc = provingAttachment(policy, fact);
    if (doc && !asked.has(doc.linkId) && !toAsk.includes(doc.linkId)) toAsk.push(doc.linkId);
  }

  const askedAgain = toAsk.filter((l) => asked.has(l));
  const newItems = toAsk.filter((l) => sourceItems.has(l) && !asked.has(l)).map((l) => adaptiveItem(sourceItems.get(l)!));
  const done = newItems.length === 0 && askedAgain.length === 0;
  const contained: Questionnaire = {
    resourceType: 'Questionnaire',
    id: containedId,
    meta: { profile: [DTR_ADAPT_QUESTIONNAIRE, SDC_ADAPT_QUESTIONNAIRE] },
    text: adaptiveNarrative(staticForm.title, asked.size + newItems.length),
    // The items keep their form's pre-fill expressions, so the form declares what they read: the launch contexts and,
    // in the FHIRPath form, the x-fhir-query variables (SDC §Expression-based population), or a renderer has no
    // %patient to read; in the CQL form, the cqf-library naming the Library its expressions call.
    extension: [
      // A url, not `true`: DTR 2.2 dtr-questionnaire-adapt allows only valueUrl (SDC and DTR 2.0.1 allow either).
      { url: EXT_ADAPTIVE, valueUrl: deps.fhirBase },
      ...(source.extension ?? []).filter((e) => e.url === EXT_LAUNCH_CONTEXT || e.url === EXT_VARIABLE || e.url === EXT_CQF_LIBRARY),
    ],
    ...(previous?.url ? { url: previous.url } : {}),
    // The form being completed: the policy's adaptive form when the client started from it, else its standard form.
    derivedFrom: [adaptiveForm ? `${adaptiveForm.url}|${adaptiveForm.version}` : `${staticForm.url}|${staticForm.version}`],
    title: staticForm.title,
    status: 'active',
    subjectType: ['Patient'],
    item: [...(previous?.item ?? []), ...newItems],
  };
  const claimed = claimedDtrVersion(qr);
  let out: QuestionnaireResponse = {
    ...qr,
    // The version the client declared stays declared (it decides the determination's CRD shape, response-shape.ts).
    meta: { ...(qr.meta ?? {}), profile: [claimed ? `${DTR_QR_ADAPT}|${claimed}` : DTR_QR_ADAPT] },
    contained: [
      contained,
      ...(qr.contained ?? []).filter((c) => !(c.resourceType === 'Questionnaire' && c.id === containedId)),
    ],
    questionnaire: `#${containedId}`,
    status: done ? 'completed' : 'in-progress',
  };
  if (done) {
    const ctx = responseContext(qr);
    const d = await determine({
      policy,
      evaluation: ev,
      today: deps.today,
      orderDate: result.orderDate,
      coverageRef: ctx.coverage,
      ...(asserted.coverageEnd ? { coverageEnd: asserted.coverageEnd } : {}),
      ...(asserted.coverageRef ? { coverageEndRef: asserted.coverageRef } : {}),
      ...(asserted.assertedOrderStart ? { orderStart: asserted.assertedOrderStart } : {}),
      orderRef: asserted.orderRef,
      patientId: ctx.patientId,
      source: 'dtr:$next-question',
      storage: deps.storage,
      version: coverageShapeOf(qr),
    });
    out = withCoverageInformation(out, d.extension);
    deps.log.info(
      { policy: policy.file.id, outcome: ev.outcome, coverageAssertionId: d.assertion.assertionId },
      'next-question completed',
    );
  } else {
    deps.log.info({ policy: policy.file.id, asked: newItems.length, askedAgain: askedAgain.length }, 'next-question');
  }
  return out;
}

/**
 * The form whose items `$next-question` asks: the policy's DTR 2.0.1 CQL form (cql-questionnaire.ts: `text/cql`
 * initialExpressions of the policy's Library, `cqf-library` naming it, no FHIRPath variables) when the form being
 * completed names that Library in `cqf-library`, as the contained form of the 2.0.1 package's draft does; else the
 * FHIRPath form (DTR 2.2, and a client that starts bare). DTR 2.0.1 requires CQL for pre-population (#62, #64, #83,
 * #98; Inferno `dtr_v201_payer_adaptive_next_question_extensions_test` and `…_expressions_test` read the contained
 * forms); DTR 2.2 lets FHIRPath be FHIRPath (spec-61). The choice rides on the contained form, which the client posts
 * back each round, so one session keeps one language.
 */
function itemSource(staticForm: Questionnaire, completing: Questionnaire | undefined, catalog: DtrCatalog): Questionnaire {
  const cql = catalog.cqlFormOf(staticForm);
  const library = cql?.libraries[0];
  const names = (completing?.extension ?? []).some(
    (e) => e.url === EXT_CQF_LIBRARY && !!library?.url && e.valueCanonical?.split('|')[0] === library.url,
  );
  return names && cql ? cql.questionnaire : staticForm;
}

/**
 * The questions to ask now, gates first (design.md §6: questions are asked only of the patients they concern). The
 * adaptive profile carries no enableWhen (dtr-questionnaire-adapt), so a question whose `askWhen` is still open (the
 * AYA question before the birth date is known, the renewal follow-ups before "is this a renewal?" is answered) is not
 * asked yet: the unknown askable facts its condition reads, directly or through derived facts, are asked in its place,
 * and the next round asks it only if its condition then holds. A question whose condition reads nothing that can be
 * asked is asked as it is (the form can show it; the policy still needs it).
 */
function gatesFirst(
  policy: CompiledPolicy,
  facts: string[],
  known: Record<string, FactValue>,
  orderDate: string,
  canAsk: (fact: string) => boolean,
): string[] {
  const out: string[] = [];
  const add = (fact: string, seen: Set<string>) => {
    if (seen.has(fact) || out.includes(fact)) return;
    seen.add(fact);
    const f = policy.factsByName.get(fact);
    if (!f?.askWhen || askWhenKnown(f.askWhen, known, orderDate)) {
      out.push(fact);
      return;
    }
    const gates = (f.askWhenReads ?? []).filter(
      (n) => n !== fact && policy.factsByName.get(n)!.def.askable && !Object.prototype.hasOwnProperty.call(known, n) && canAsk(n),
    );
    if (gates.length === 0) out.push(fact);
    else for (const g of gates) add(g, seen);
  };
  for (const fact of facts) add(fact, new Set());
  return out;
}

/**
 * Of the questions due now, those whose answers can make others moot first: a question only some of the rules another
 * question feeds need (every rule that reads it reads the other, which more rules read) waits a round. "Given with
 * dasatinib or imatinib?" feeds only the pediatric Ph-positive pathway, which also reads the Ph status: asked beside the
 * Ph status, it is put to the clinician of a Ph-negative child, whose answer rules that pathway out. The static form hides
 * it by the same reading (its usage gate); the adaptive form, without enableWhen, asks it later or not at all.
 */
function broadestFirst(structure: PolicyStructure, due: string[]): string[] {
  const rulesOf = new Map(due.map((f) => [f, new Set((structure.usedBy.get(f) ?? []).map((r) => r.id))]));
  const within = (a: Set<string>, b: Set<string>) => a.size < b.size && [...a].every((r) => b.has(r));
  const now = due.filter((f) => {
    const mine = rulesOf.get(f)!;
    return mine.size === 0 || !due.some((g) => g !== f && within(mine, rulesOf.get(g)!));
  });
  return now.length > 0 ? now : due;
}

/** A static item as the adaptive profile allows it: no enableWhen/enableWhenExpression (dtr-questionnaire-adapt). */
function adaptiveItem(item: QuestionnaireItem): QuestionnaireItem {
  const copy = structuredClone(item);
  delete copy.enableWhen;
  delete copy.enableBehavior;
  if (copy.extension) {
    copy.extension = copy.extension.filter((e) => e.url !== EXT_ENABLE_WHEN_EXPRESSION);
    if (copy.extension.length === 0) delete copy.extension;
  }
  return copy;
}
