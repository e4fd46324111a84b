/**
 * The DTR flow end to end for every seed policy (design.md §1, §7): CRD signs an order with missing evidence, DTR's
 * $questionnaire-package returns the policy's Questionnaire, its ValueSets and a response pre-filled with the facts
 * the EHR had; answering the remaining questions reaches the determination CRD gives over a record holding every
 * fact; POST /QuestionnaireResponse and $next-question return that determination in ext-coverage-information.
 */
import type {
  Bundle,
  Extension,
  Library,
  MedicationRequest,
  Parameters,
  Questionnaire,
  QuestionnaireResponse,
  QuestionnaireResponseItem,
} from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { originOf } from '../../src/coverage/questionnaire-answers.js';
import { evaluateQuestionnaireResponse } from '../../src/coverage/evaluate-response.js';
import { policyStructure } from '../../src/policies/policy-structure.js';
import { valueSetsOfLibrary } from '../../src/dtr/cql-questionnaire.js';
import { flattenItems } from '../../src/dtr/questionnaire-builder.js';
import { COVERAGE_INFO_URL, coverageInformationProblems } from '../../src/coverage/coverage-information.js';
import { handleHook } from '../../src/hooks/hook-handler.js';
import { createLogger } from '../../src/logger.js';
import type { CompiledPolicy } from '../../src/policies/compiled-policy.js';
import { askWhenFalse, evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import type { FactValue, PolicyEvaluation } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord, orderDateOf } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import type { MemoryStorage } from '../../src/storage/memory-storage.js';
import { packageParameters } from '../helpers/dtr-package.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import {
  answerItem,
  bareAdaptiveResponse,
  CANONICAL_BASE,
  dtrContent,
  fhirApp,
  fhirIssues,
  PUBLIC_BASE,
  randomAssignment,
  rng,
  synthesizeRecord,
  TODAY,
} from './helpers.js';
import type { SynthesizedRecord } from './helpers.js';
import { justificationLinkId, ORDER_DATE_LINK_ID } from '../../src/policies/questionnaire-names.js';

const content = dtrContent();
const FHIR = 'application/fhir+json';
const log = createLogger('silent');
const sub = (ext: Extension | undefined, url: string) => (ext?.extension ?? []).filter((e) => e.url === url);
const qrItems = (items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem[] =>
  (items ?? []).flatMap((i) => [i, ...qrItems(i.item)]);
/** The document a clinician attaches with an attestation the seed conditions on it (attachments `proves`). */
const PROOF = { valueAttachment: { contentType: 'application/pdf', title: 'supporting document', data: Buffer.from('%PDF-1.4 evidence').toString('base64') } };
/** The attachment items that prove an attestation the complete record answers "Yes" (cds-services/README.md attachments). */
const provingLinkIds = (policy: CompiledPolicy, complete: Record<string, unknown>): string[] =>
  policy.attachments.filter((a) => (a.proves ?? []).some((f) => complete[f] === true)).map((a) => a.linkId);

function crdOver(
  policy: CompiledPolicy,
  s: SynthesizedRecord,
  answers: Record<string, FactValue> = {},
): PolicyEvaluation {
  const record = indexRecord(recordFromResources(s.resources, [s.order], s.order.requester?.reference));
  return evaluatePolicy(policy, evaluationDataFor(record, s.order, TODAY), answers);
}

function answerFor(type: string, v: unknown): Record<string, unknown> {
  switch (type) {
    case 'boolean':
      return { valueBoolean: v };
    case 'decimal':
      return { valueDecimal: v };
    case 'integer':
      return { valueInteger: v };
    case 'code':
      return { valueCoding: { system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: v } };
    case 'date':
      return { valueDate: v };
    default:
      return { valueString: v };
  }
}

/** The CRD codes design.md §5 gives each outcome. */
const EXPECTED: Record<string, { covered: string; pa?: string }> = {
  satisfied: { covered: 'covered', pa: 'satisfied' },
  'documentation-needed': { covered: 'covered', pa: 'auth-needed' },
  'limit-exceeded': { covered: 'covered', pa: 'auth-needed' },
  'not-covered': { covered: 'not-covered' },
  error: { covered: 'conditional', pa: 'conditional' },
};

/**
 * A patient for the policy: a full assignment (preferably one the policy approves), the record CRD sees (one
 * finding held back, attestations never in a record) and the facts a complete record would give.
 */
function scenario(policy: CompiledPolicy) {
  const structure = policyStructure(policy);
  const r = rng(0xd7a ^ policy.file.id.length);
  let best:
    | {
        full: SynthesizedRecord;
        atSigning: SynthesizedRecord;
        fullEval: PolicyEvaluation;
        signingEval: PolicyEvaluation;
      }
    | undefined;
  for (let tries = 0; tries < 3000; tries++) {
    const assignment = randomAssignment(policy, structure.asked, r);
    const drawn = synthesizeRecord(policy, assignment);
    // No answer to a question the form does not show this patient (askWhen false on the complete record): the form
    // hides it and the server does not read it (design.md §7 "Answers the form does not show").
    const known = Object.fromEntries(
      crdOver(policy, drawn, drawn.overrides).facts.filter((f) => f.value !== undefined).map((f) => [f.name, f.value!]),
    );
    const full = {
      ...drawn,
      overrides: Object.fromEntries(
        Object.entries(drawn.overrides).filter(([f]) => !askWhenFalse(policy.factsByName.get(f)?.askWhen, known, TODAY)),
      ),
    };
    const fullEval = crdOver(policy, full, full.overrides);
    if (fullEval.outcome === 'error') continue;
    // Hold back one finding the record would otherwise show, so that the order needs documentation at signing.
    const heldBack = ['mrdPercent', 'diseaseStatus', 'phStatus', 'dailyDoseUg', 'treatmentPhase', 'birthDate'].find(
      (f) => assignment[f] !== undefined && structure.asked.includes(f),
    );
    const atSigning = synthesizeRecord(policy, { ...assignment, ...(heldBack ? { [heldBack]: undefined } : {}) });
    const signingEval = crdOver(policy, atSigning);
    if (signingEval.outcome !== 'documentation-needed' && signingEval.outcome !== 'limit-exceeded') continue;
    best = { full, atSigning, fullEval, signingEval };
    if (fullEval.outcome === 'satisfied') break;
  }
  if (!best) throw new Error(`no scenario found for ${policy.file.id}`);
  return { structure, ...best };
}

async function signAtCrd(s: SynthesizedRecord, storage: MemoryStorage): Promise<MedicationRequest> {
  const service = content.services.find((x) => x.id === 'priorpath-order-sign')!;
  const body = orderSignRequest(s.resources, s.order);
  const result = await handleHook(
    service,
    body,
    {
      content,
      storage,
      publicBaseUrl: PUBLIC_BASE,
      ehrTimeoutMs: 200,
      allowUnauthenticatedEhr: false,
      today: () => TODAY,
      fetchImpl: async () => new Response('{}', { status: 404 }),
    },
    log,
  );
  const action = result.response.systemActions?.[0];
  expect(action, 'CRD answers with a systemAction').toBeDefined();
  return action!.resource as MedicationRequest;
}

describe.each(content.policies.map((p) => [p.file.id, p] as const))('%s', (_id, policy) => {
  const sc = scenario(policy);
  const questionnaireUrl = `${CANONICAL_BASE}/Questionnaire/${policy.file.id}`;

  it('package after CRD: the Questionnaire, its ValueSets and a response pre-filled with the facts the EHR had', async () => {
    const { app, storage } = fhirApp();
    const signed = await signAtCrd(sc.atSigning, storage);
    const ext = signed.extension?.find((e) => e.url === COVERAGE_INFO_URL);
    expect(sub(ext, 'questionnaire')[0]?.valueCanonical).toBe(policy.questionnaire);
    const assertionId = sub(ext, 'coverage-assertion-id')[0].valueString!;
    const assertion = (await storage.getAssertion(assertionId))!;

    const out = await packageParameters(app, sc.atSigning.coverage, signed, assertionId);
    expect(fhirIssues(out)).toEqual([]);
    const bundles = out.parameter!.filter((p) => p.name === 'PackageBundle').map((p) => p.resource as Bundle);
    expect(bundles).toHaveLength(1);
    const [q, ...rest] = bundles[0].entry!.map((e) => e.resource!);
    expect((q as Questionnaire).url).toBe(questionnaireUrl);
    const bound = new Set(
      flattenItems((q as Questionnaire).item)
        .map((i) => i.answerValueSet)
        .filter(Boolean),
    );
    // Besides the answer ValueSets, a 2.0.1 package carries the ValueSets its CQL Libraries name.
    const forCql = new Set(rest.filter((r): r is Library => r.resourceType === 'Library').flatMap(valueSetsOfLibrary));
    expect(
      new Set(
        rest
          .filter((r) => r.resourceType === 'ValueSet')
          .map((v) => `${(v as { url: string }).url}|${(v as { version: string }).version}`)
          .filter((k) => bound.has(k) || !forCql.has(k.split('|')[0])),
      ),
    ).toEqual(bound);

    const qr = rest.find((r) => r.resourceType === 'QuestionnaireResponse') as QuestionnaireResponse;
    expect(qr, 'a pre-filled QuestionnaireResponse').toBeDefined();
    expect(qr.status).toBe('in-progress');
    expect(qr.questionnaire).toBe(policy.questionnaire);
    expect(qr.subject?.reference).toBe('Patient/p1');
    expect(qr.author).toBeUndefined();
    const answers = qrItems(qr.item).filter((i) => i.answer && i.linkId !== ORDER_DATE_LINK_ID);
    // The order start CRD judged the order on, beside the facts (design.md §8).
    expect(qrItems(qr.item).find((i) => i.linkId === ORDER_DATE_LINK_ID)?.answer?.[0].valueDate).toBe(orderDateOf(signed as MedicationRequest, TODAY));
    const held = Object.fromEntries(
      sc.structure.asked
        .filter((f) => assertion.facts[f] !== undefined)
        .map((f) => [policy.factsByName.get(f)!.def.linkId!, assertion.facts[f]]),
    );
    expect(answers.map((a) => a.linkId).sort()).toEqual(Object.keys(held).sort());
    // Sent back as pre-filled, the answers read as the facts CRD recorded: a computed amount the form shows rounded
    // (display-precision.ts) is read as the unrounded value (design.md §7 "Pre-filled amounts").
    const parsed = evaluateQuestionnaireResponse({ content, qr, knownFacts: assertion.facts, chartFacts: assertion.facts, today: TODAY });
    for (const [name, v] of Object.entries(parsed.answers)) expect(v, name).toEqual(assertion.facts[name]);
    for (const a of answers) expect(originOf(a.answer![0])).toBe('auto');
    expect(Object.keys(parsed.answers).length).toBeGreaterThan(0);
  });

  it('answering the remaining questions reaches the determination CRD gives over a record holding every fact', async () => {
    const { app, storage } = fhirApp();
    const signed = await signAtCrd(sc.atSigning, storage);
    const res = await request(app)
      .post('/fhir/$questionnaire-package')
      .set('Content-Type', FHIR)
      .send(
        JSON.stringify({
          resourceType: 'Parameters',
          parameter: [
            { name: 'coverage', resource: sc.atSigning.coverage },
            { name: 'order', resource: signed },
          ],
        }),
      )
      .expect(200);
    const bundle = (res.body as Parameters).parameter!.find((p) => p.name === 'packagebundle')!.resource as Bundle;
    const q = bundle.entry![0].resource as Questionnaire;
    const qr = bundle.entry!.find((e) => e.resource!.resourceType === 'QuestionnaireResponse')!
      .resource as QuestionnaireResponse;

    // What a complete record says, plus what no record can hold. The clinician fills the blanks, and corrects a
    // pre-filled answer that the evidence held back at signing changes (an override).
    const complete: Record<string, unknown> = {
      ...Object.fromEntries(sc.fullEval.facts.filter((f) => f.value !== undefined).map((f) => [f.name, f.value])),
      ...sc.full.overrides,
    };
    const prefilled = evaluateQuestionnaireResponse({ content, qr, today: TODAY }).answers;
    const groupOf = new Map<string, string>();
    for (const g of q.item ?? []) for (const i of flattenItems(g.item)) groupOf.set(i.linkId, g.linkId);
    const overridden: string[] = [];
    for (const name of sc.structure.asked) {
      const def = policy.factsByName.get(name)!.def;
      const v = complete[name];
      if (v === prefilled[name]) continue;
      if (v === undefined) {
        for (const i of qrItems(qr.item)) if (i.linkId === def.linkId) delete i.answer;
        continue;
      }
      const origin = prefilled[name] === undefined ? 'manual' : 'override';
      if (origin === 'override') overridden.push(name);
      answerItem(qr, groupOf.get(def.linkId!), def.linkId!, {
        ...answerFor(def.type, v),
        extension: [
          {
            url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin',
            extension: [{ url: 'source', valueCode: origin }],
          },
        ],
      });
    }
    // An attestation answered "Yes" counts only with its proving document, which the clinician attaches beside it.
    for (const l of provingLinkIds(policy, complete)) answerItem(qr, groupOf.get(l), l, PROOF);
    // Read as the server reads it: over the facts CRD recorded at signing (design.md §7 "One record of what CRD knew"),
    // so an answer the form hides (design.md §7 "Answers the form does not show") leaves the recorded fact standing.
    const recorded = (await storage.getAssertion(sub(signed.extension?.find((e) => e.url === COVERAGE_INFO_URL), 'coverage-assertion-id')[0].valueString!))!;
    const dtr = evaluateQuestionnaireResponse({ content, qr, knownFacts: recorded.facts, assertedOrderDate: recorded.orderDate, today: TODAY });
    expect(dtr.problems).toEqual([]);
    expect(dtr.evaluation.outcome).toBe(sc.fullEval.outcome);
    expect(dtr.evaluation.pathway?.id).toBe(sc.fullEval.pathway?.id);
    expect(Object.values(dtr.origins)).toEqual(expect.arrayContaining(['auto']));
    // Every override the server reads keeps its origin (one it sets aside, e.g. over a fact the signing record holds,
    // decides nothing and is not counted).
    expect(Object.values(dtr.origins).filter((o) => o === 'override').length).toBe(overridden.filter((n) => dtr.answers[n] !== undefined).length);

    // The same response sent to the payer: 201, an id, and the determination.
    qr.status = 'completed';
    const created = await request(app)
      .post('/fhir/QuestionnaireResponse')
      .set('Content-Type', FHIR)
      .send(JSON.stringify(qr))
      .expect(201);
    const body = created.body as QuestionnaireResponse;
    expect(body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.headers.location).toContain(`/fhir/QuestionnaireResponse/${body.id}`);
    const ext = body.extension!.find((e) => e.url === COVERAGE_INFO_URL)!;
    expect(coverageInformationProblems(ext)).toEqual([]);
    // The server compares the answers with what signing read of the record (docs/design.md §7 "Answers and the
    // record"): where only the clinician's corrections of the pre-filled chart values approve the order, it is pended
    // for clinical review, naming them, instead of approved at once. Only overridden answers can so contradict.
    const onChart = evaluateQuestionnaireResponse({ content, qr, knownFacts: recorded.facts, chartFacts: recorded.facts, assertedOrderDate: recorded.orderDate, today: TODAY });
    const reviewed = onChart.evaluation.contradicted;
    for (const c of reviewed ?? []) expect(overridden, `${c.fact}: only an override contradicts the record`).toContain(c.fact);
    const expected = reviewed ? 'documentation-needed' : sc.fullEval.outcome;
    expect(sub(ext, 'covered')[0].valueCode).toBe(EXPECTED[expected].covered);
    expect(sub(ext, 'pa-needed')[0]?.valueCode).toBe(EXPECTED[expected].pa);
    if (reviewed) expect(sub(ext, 'reason')[0]?.valueCodeableConcept?.text).toMatch(/^Pended for clinical review/);
    // An approval carries its authorization number; any other answer carries none.
    expect(sub(ext, 'satisfied-pa-id').map((e) => /^PA-/.test(e.valueString ?? ''))).toEqual(expected === 'satisfied' ? [true] : []);
    // The shared form has no expiry-date: an approval says its period in words, so the clinician knows how long it holds.
    const number = sub(ext, 'satisfied-pa-id')[0]?.valueString;
    const period = sub(ext, 'reason').map((r) => r.valueCodeableConcept?.text ?? '').filter((t) => /is valid from \d{1,2} \w+ \d{4} to \d{1,2} \w+ \d{4}$/.test(t));
    expect(period).toEqual(expected === 'satisfied' ? [expect.stringContaining(`Authorization ${number} is valid from`)] : []);
    const stored = await storage.getAssertion(sub(ext, 'coverage-assertion-id')[0].valueString!);
    expect(stored?.policyId).toBe(policy.file.id);
    expect(fhirIssues(body)).toEqual([]);

    // The Location reads back the response as answered, with the determination it was given (read and vread).
    const location = new URL(created.headers.location as string).pathname;
    const read = await request(app).get(location).expect(200);
    expect(read.body).toEqual(body);
    expect(read.headers.etag).toBe('W/"1"');
    expect((await request(app).get(`/fhir/QuestionnaireResponse/${body.id}`).expect(200)).body).toEqual(body);
    await request(app).get(`/fhir/QuestionnaireResponse/${body.id}/_history/2`).expect(404);
    await request(app).delete(`/fhir/QuestionnaireResponse/${body.id}`).expect(405);
  });

  it('$next-question asks only what is still unknown, never twice, and completes with the determination', async () => {
    const { app } = fhirApp();
    const complete: Record<string, unknown> = {
      ...Object.fromEntries(sc.fullEval.facts.filter((f) => f.value !== undefined).map((f) => [f.name, f.value])),
      ...sc.full.overrides,
    };
    const byLinkId = new Map(sc.structure.asked.map((f) => [policy.factsByName.get(f)!.def.linkId!, f]));
    const proving = new Set(provingLinkIds(policy, complete));
    // The response names its order, as a DTR app launched for an order does: an approval of a response naming no order
    // issues no number (docs/design.md §8 "An order that cannot be named").
    const bare = bareAdaptiveResponse(policy.questionnaire);
    let qr: QuestionnaireResponse = {
      ...bare,
      extension: [...bare.extension!, { url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-context', valueReference: { reference: 'MedicationRequest/flow-order-1' } }],
    };
    const asked: string[] = [];
    for (let round = 0; round < 25 && qr.status !== 'completed'; round++) {
      const path = round % 2 === 0 ? '/fhir/Questionnaire/$next-question' : '/fhir/$next-question';
      const body =
        round === 1
          ? { resourceType: 'Parameters', parameter: [{ name: 'questionnaire-response', resource: qr }] }
          : qr;
      const res = await request(app).post(path).set('Content-Type', FHIR).send(JSON.stringify(body)).expect(200);
      qr = res.body as QuestionnaireResponse;
      expect(qr.resourceType).toBe('QuestionnaireResponse');
      const contained = qr.contained!.find((c) => c.resourceType === 'Questionnaire') as Questionnaire;
      const items = (contained.item ?? []).map((i) => i.linkId);
      const fresh = items.slice(asked.length);
      expect(items.slice(0, asked.length), 'earlier questions stay').toEqual(asked);
      for (const l of fresh) expect(asked, `${l} asked once`).not.toContain(l);
      if (qr.status !== 'completed') expect(fresh.length).toBeGreaterThan(0);
      asked.push(...fresh);
      for (const l of fresh) {
        if (proving.has(l)) {
          answerItem(qr, undefined, l, PROOF);
          continue;
        }
        const fact = byLinkId.get(l);
        const v = fact ? complete[fact] : policy.limits.some((x) => justificationLinkId(x.id) === l) ? true : undefined;
        if (v === undefined) continue;
        const def = fact ? policy.factsByName.get(fact)!.def : undefined;
        const type = def?.type ?? 'boolean';
        answerItem(qr, undefined, l, answerFor(type, v));
      }
      // A fact is asked only when it was unknown given the answers so far.
      for (const l of fresh) expect(byLinkId.has(l) || l.startsWith('justification-') || proving.has(l)).toBe(true);
    }
    expect(qr.status).toBe('completed');
    const ext = qr.extension!.find((e) => e.url === COVERAGE_INFO_URL)!;
    expect(coverageInformationProblems(ext)).toEqual([]);
    const final = evaluateQuestionnaireResponse({
      content,
      qr: { ...qr, questionnaire: policy.questionnaire },
      today: TODAY,
    }).evaluation;
    expect(sub(ext, 'covered')[0].valueCode).toBe(EXPECTED[final.outcome].covered);
    expect(sub(ext, 'pa-needed')[0]?.valueCode).toBe(EXPECTED[final.outcome].pa);
    expect(sub(ext, 'coverage')[0].valueReference?.reference).toBe('Coverage/cov1');
    expect(asked.length).toBeLessThanOrEqual(sc.structure.asked.length + policy.limits.length + proving.size);
    expect(fhirIssues(qr)).toEqual([]);
  });
});

describe('POST /fhir/QuestionnaireResponse: checks', () => {
  const policy = content.policies[0];
  it('answers 400 with the path of a malformed answer, 422 for a Questionnaire the payer does not serve', async () => {
    const { app } = fhirApp();
    const bad = {
      resourceType: 'QuestionnaireResponse',
      status: 'completed',
      questionnaire: policy.questionnaire,
      item: [{ linkId: 'x', answer: [{ valueBoolean: 'yes' }] }],
    };
    const r1 = await request(app)
      .post('/fhir/QuestionnaireResponse')
      .set('Content-Type', FHIR)
      .send(JSON.stringify(bad))
      .expect(400);
    expect(r1.body.issue[0].expression[0]).toBe('QuestionnaireResponse.item[0].answer[0].valueBoolean');
    const linkId = policy.facts.find((f) => f.def.askable && f.def.type === 'boolean' && f.def.linkId)!.def.linkId!;
    const wrongType = { ...bad, item: [{ linkId, answer: [{ valueString: 'yes' }] }] };
    const r2 = await request(app)
      .post('/fhir/QuestionnaireResponse')
      .set('Content-Type', FHIR)
      .send(JSON.stringify(wrongType))
      .expect(400);
    expect(r2.body.issue[0].diagnostics).toMatch(/valueBoolean/);
    await request(app)
      .post('/fhir/QuestionnaireResponse')
      .set('Content-Type', FHIR)
      .send(JSON.stringify({ resourceType: 'Patient' }))
      .expect(400);
    const unknown = await request(app).get('/fhir/QuestionnaireResponse/no-such-response').expect(404);
    expect(unknown.body.resourceType).toBe('OperationOutcome');
    await request(app)
      .post('/fhir/QuestionnaireResponse')
      .set('Content-Type', FHIR)
      .send(
        JSON.stringify({
          resourceType: 'QuestionnaireResponse',
          status: 'completed',
          questionnaire: 'http://example.org/Questionnaire/x',
        }),
      )
      .expect(422);
  });

  it('answers 400 naming QuestionnaireResponse.questionnaire when its #id names no contained Questionnaire ($next-question: DTR 2.2 spec-147; POST likewise)', async () => {
    const { app } = fhirApp();
    const orphan = { resourceType: 'QuestionnaireResponse', status: 'in-progress', subject: { reference: 'Patient/p1' }, questionnaire: '#adaptive' };
    for (const path of ['/fhir/Questionnaire/$next-question', '/fhir/QuestionnaireResponse']) {
      const res = await request(app).post(path).set('Content-Type', FHIR).send(JSON.stringify(orphan)).expect(400);
      expect(res.body.issue[0]).toMatchObject({ severity: 'error', code: 'invalid', expression: ['QuestionnaireResponse.questionnaire'] });
      expect(res.body.issue[0].diagnostics).toMatch(/#adaptive names no contained Questionnaire/);
    }
  });

  it("$next-question's contained Questionnaire names the payer's FHIR base in questionnaireAdaptive (a url: DTR 2.2 dtr-questionnaire-adapt), where the next call is answered", async () => {
    const { app } = fhirApp();
    const start: QuestionnaireResponse = {
      resourceType: 'QuestionnaireResponse',
      status: 'in-progress',
      subject: { reference: 'Patient/p1' },
      questionnaire: '#adaptive',
      contained: [{ resourceType: 'Questionnaire', id: 'adaptive', status: 'active', derivedFrom: [policy.questionnaire], extension: [{ url: 'http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-questionnaireAdaptive', valueBoolean: true }] }],
    };
    const first = (await request(app).post('/fhir/Questionnaire/$next-question').set('Content-Type', FHIR).send(JSON.stringify(start)).expect(200)).body as QuestionnaireResponse;
    const contained = first.contained!.find((c) => c.resourceType === 'Questionnaire') as Questionnaire;
    const adaptive = contained.extension!.filter((e) => e.url === 'http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-questionnaireAdaptive');
    expect(adaptive).toEqual([{ url: 'http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-questionnaireAdaptive', valueUrl: `${PUBLIC_BASE}/fhir` }]);
    // SDC: the url is the base of a server that performs $next-question for this form.
    const path = `${adaptive[0].valueUrl!.slice(PUBLIC_BASE.length)}/Questionnaire/$next-question`;
    const second = (await request(app).post(path).set('Content-Type', FHIR).send(JSON.stringify(first)).expect(200)).body as QuestionnaireResponse;
    expect((second.contained![0] as Questionnaire).item!.map((i) => i.linkId).slice(0, contained.item!.length)).toEqual(contained.item!.map((i) => i.linkId));
  });

  it('$next-question answers 400 for a body that is not a QuestionnaireResponse, and 422 (as a POST does) for a response to a form this payer does not serve', async () => {
    const { app } = fhirApp();
    await request(app)
      .post('/fhir/Questionnaire/$next-question')
      .set('Content-Type', FHIR)
      .send(JSON.stringify({ resourceType: 'Bundle' }))
      .expect(400);
    await request(app)
      .post('/fhir/Questionnaire/$next-question')
      .set('Content-Type', FHIR)
      .send(
        JSON.stringify({
          resourceType: 'QuestionnaireResponse',
          status: 'in-progress',
          questionnaire: 'http://example.org/Questionnaire/x',
        }),
      )
      .expect(422)
      .expect((res) => expect(res.body.issue[0]).toMatchObject({ code: 'processing', expression: ['QuestionnaireResponse.questionnaire'] }));
  });
});
