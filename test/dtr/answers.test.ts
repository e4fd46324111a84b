/** Reading and writing QuestionnaireResponses in the policy's terms (src/coverage/questionnaire-answers.ts, evaluate-response.ts). */
import type { QuestionnaireResponse } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { answersFromQuestionnaireResponse, originOf, prefilledResponse } from '../../src/coverage/questionnaire-answers.js';
import { evaluateQuestionnaireResponse, withKnownFacts } from '../../src/coverage/evaluate-response.js';
import { EXT_INFORMATION_ORIGIN, EXT_QR_CONTEXT, EXT_QR_COVERAGE } from '../../src/fhir/dtr-urls.js';
import { buildQuestionnaire } from '../../src/dtr/questionnaire-builder.js';
import { CANONICAL_BASE, dtrContent, TODAY } from './helpers.js';
import { justificationLinkId } from '../../src/policies/questionnaire-names.js';

const content = dtrContent();
const policy = content.policies.find(
  (p) => p.factsByName.has('diseaseStatus') && p.factsByName.has('mrdPercent') && p.factsByName.has('bAll'),
)!;
const linkOf = (f: string) => policy.factsByName.get(f)!.def.linkId!;
const origin = (code: string) => ({ url: EXT_INFORMATION_ORIGIN, extension: [{ url: 'source', valueCode: code }] });
const q = buildQuestionnaire(policy, { canonicalBase: CANONICAL_BASE, valueSets: content.valueSets });
const vsBase = `${CANONICAL_BASE}/ValueSet`;

describe('answersFromQuestionnaireResponse', () => {
  it('walks groups and items nested under answers, maps values by fact type and reads information-origin', () => {
    const qr: QuestionnaireResponse = {
      resourceType: 'QuestionnaireResponse',
      status: 'completed',
      item: [
        {
          linkId: 'group-requirements',
          item: [{ linkId: linkOf('bAll'), answer: [{ valueBoolean: true, extension: [origin('auto-server')] }] }],
        },
        {
          linkId: 'outer',
          answer: [
            {
              valueString: 'x',
              item: [
                { linkId: linkOf('mrdPercent'), answer: [{ valueDecimal: 0.4, extension: [origin('override')] }] },
              ],
            },
          ],
        },
        {
          linkId: linkOf('diseaseStatus'),
          answer: [{ valueCoding: { system: 'https://priorpath.dev/fhir/CodeSystem/evidence', code: 'cr1' } }],
        },
        { linkId: 'unknown-item', answer: [{ valueBoolean: false }] },
      ],
    };
    const out = answersFromQuestionnaireResponse(policy, qr, content.valueSets, vsBase);
    expect(out.answers).toEqual({ bAll: true, mrdPercent: 0.4, diseaseStatus: 'cr1' });
    expect(out.origins).toEqual({
      [linkOf('bAll')]: 'auto',
      [linkOf('mrdPercent')]: 'override',
      [linkOf('diseaseStatus')]: 'manual',
    });
    expect(out.problems).toEqual([]);
  });

  it('reports wrong value types, codes outside the answer value set and repeated answers, with paths', () => {
    const qr: QuestionnaireResponse = {
      resourceType: 'QuestionnaireResponse',
      status: 'completed',
      item: [
        { linkId: linkOf('bAll'), answer: [{ valueString: 'yes' }] },
        { linkId: linkOf('diseaseStatus'), answer: [{ valueCoding: { code: 'cr9' } }] },
        { linkId: linkOf('mrdPercent'), answer: [{ valueDecimal: 1 }, { valueDecimal: 2 }] },
      ],
    };
    const out = answersFromQuestionnaireResponse(policy, qr, content.valueSets, vsBase);
    expect(out.problems.map((p) => p.path)).toEqual([
      'QuestionnaireResponse.item[0].answer[0]',
      'QuestionnaireResponse.item[1].answer[0]',
      'QuestionnaireResponse.item[2]',
    ]);
    expect(out.answers).toEqual({ mrdPercent: 1 });
  });

  it('reads answers to justification questions by limit id', () => {
    // Any policy with a justification question will do; one there must be, or the test would check nothing.
    const withJustification = content.policies.find((p) => p.limits.some((l) => l.justification));
    const limit = withJustification?.limits.find((l) => l.justification);
    expect(limit, 'a policy with a justification question').toBeDefined();
    const out = answersFromQuestionnaireResponse(withJustification!, {
      resourceType: 'QuestionnaireResponse',
      status: 'completed',
      item: [{ linkId: justificationLinkId(limit!.id), answer: [{ valueBoolean: true }] }],
    });
    expect(out.justifications).toEqual({ [limit!.id]: true });
  });

  it('defaults a missing information-origin to manual', () => {
    expect(originOf({ valueBoolean: true })).toBe('manual');
    expect(originOf({ valueBoolean: true, extension: [origin('auto')] })).toBe('auto');
  });
});

describe('prefilledResponse', () => {
  const facts = { bAll: true, diseaseStatus: 'cr2', mrdPercent: 'not a number', birthDate: '1980-02-03' };

  it('pre-fills known facts as auto answers under their groups, with Codings from the answer value set (DTR 2.0.1)', () => {
    const qr = prefilledResponse(policy, q, facts, {
      valueSets: content.valueSets,
      canonicalBase: CANONICAL_BASE,
      subject: { reference: 'Patient/p1' },
      coverage: { reference: 'Coverage/c1' },
      orders: [{ reference: 'MedicationRequest/o1' }],
    });
    expect(qr.status).toBe('in-progress');
    expect(qr.questionnaire).toBe(policy.questionnaire);
    expect(qr.author).toBeUndefined();
    expect(qr.extension!.filter((e) => e.url === EXT_QR_CONTEXT).map((e) => e.valueReference!.reference)).toEqual([
      'Coverage/c1',
      'MedicationRequest/o1',
    ]);
    const parsed = answersFromQuestionnaireResponse(policy, qr, content.valueSets, vsBase);
    expect(parsed.answers).toMatchObject({ bAll: true, diseaseStatus: 'cr2' });
    expect(parsed.answers.mrdPercent).toBeUndefined();
    expect(Object.values(parsed.origins).every((o) => o === 'auto')).toBe(true);
    expect(JSON.stringify(qr)).toContain('"display":"Second complete remission"');
    expect(qr.item!.every((g) => g.linkId.startsWith('group-'))).toBe(true);
  });

  it('uses qr-coverage and auto-server in the DTR 2.2 shape', () => {
    const qr = prefilledResponse(policy, q, facts, {
      valueSets: content.valueSets,
      canonicalBase: CANONICAL_BASE,
      coverage: { reference: 'Coverage/c1' },
      dtrVersion: '2.2',
    });
    expect(qr.extension!.find((e) => e.url === EXT_QR_COVERAGE)?.valueReference?.reference).toBe('Coverage/c1');
    expect(JSON.stringify(qr)).toContain('"valueCode":"auto-server"');
  });
});

describe('evaluateQuestionnaireResponse', () => {
  it('over answers alone, a history fact left unanswered is unknown, not false', () => {
    const isHistory = (f: (typeof policy.facts)[number]) => f.def.askable && f.def.absent === 'false' && f.name !== 'bAll';
    // Any policy asking a history question will do; one there must be, or the test would check nothing.
    const withHistory = content.policies.find((p) => p.facts.some(isHistory));
    const history = withHistory?.facts.find(isHistory);
    expect(history, 'a policy asking a history question').toBeDefined();
    const hq = buildQuestionnaire(withHistory!, { canonicalBase: CANONICAL_BASE, valueSets: content.valueSets });
    const qr = prefilledResponse(withHistory!, hq, {}, { valueSets: content.valueSets, canonicalBase: CANONICAL_BASE });
    const ev = evaluateQuestionnaireResponse({ content, qr, today: TODAY }).evaluation;
    expect(ev.facts.find((f) => f.name === history!.name)?.value).toBeUndefined();
    expect(ev.outcome).toBe('documentation-needed');
  });

  it('keeps known facts the answers leave standing, and drops a derived fact whose inputs an answer changed', () => {
    const derived = policy.facts.find((f) => !f.def.askable && f.deps.includes('diseaseStatus'))!;
    const known = { diseaseStatus: 'cr1', [derived.name]: 'kept' as unknown, bAll: true };
    expect(withKnownFacts(policy, {}, known)).toMatchObject({ diseaseStatus: 'cr1', bAll: true });
    expect(
      withKnownFacts(policy, { diseaseStatus: 'relapsed' }, { ...known, [derived.name]: true })[derived.name],
    ).toBeUndefined();
    expect(withKnownFacts(policy, { diseaseStatus: 'cr1' }, { ...known, [derived.name]: true })[derived.name]).toBe(
      true,
    );
  });

  it('throws a 422 for a response to a Questionnaire no policy has, and warns for an older version', () => {
    expect(() =>
      evaluateQuestionnaireResponse({
        content,
        qr: { resourceType: 'QuestionnaireResponse', status: 'completed', questionnaire: 'http://x.org/Q/1' },
        today: TODAY,
      }),
    ).toThrow(/not a Questionnaire/);
    const old = evaluateQuestionnaireResponse({
      content,
      qr: { resourceType: 'QuestionnaireResponse', status: 'completed', questionnaire: `${q.url}|1999-01` },
      today: TODAY,
    });
    expect(old.warnings[0]).toMatch(/version 1999-01/);
  });
});
