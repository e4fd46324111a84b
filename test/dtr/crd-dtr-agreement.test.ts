/**
 * "One model, three uses" (design.md §5), as properties over random fact combinations for every policy:
 * - CRD over a record that holds the facts and DTR over a QuestionnaireResponse that answers them reach the same
 *   determination (`evaluatePolicy` vs `evaluateQuestionnaireResponse` with an empty record);
 * - the Questionnaire's FHIRPath initialExpressions, run by fhirpath.js as a renderer would (launch contexts and
 *   x-fhir-query Bundles), give the values the server reads from the same record;
 * - a question hidden by an enableWhenExpression never matters: when the gate is closed, the pathway (or the limit)
 *   it belongs to comes out false (met) whatever is answered to the hidden questions.
 */
import type { Questionnaire, QuestionnaireResponse } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { prefilledResponse } from '../../src/coverage/questionnaire-answers.js';
import { evaluateQuestionnaireResponse } from '../../src/coverage/evaluate-response.js';
import { EXT_ENABLE_WHEN_EXPRESSION, EXT_INITIAL_EXPRESSION } from '../../src/fhir/dtr-urls.js';
import { policyStructure, recordVariablesOf } from '../../src/policies/policy-structure.js';
import type { PolicyStructure } from '../../src/policies/policy-structure.js';
import { hiddenLinkIds } from '../../src/coverage/hidden-answers.js';
import { buildQuestionnaire, flattenItems, USAGE_GATE_DESCRIPTION, USE_GATE_DESCRIPTION } from '../../src/dtr/questionnaire-builder.js';
import { compileFhirPath } from '../../src/fhir/fhirpath.js';
import { splitTopLevel } from '../../src/dtr/expressions.js';
import { forDisplay } from '../../src/policies/display-precision.js';
import type { CompiledPolicy } from '../../src/policies/compiled-policy.js';
import { evaluatePolicy } from '../../src/policies/evaluate-policy.js';
import type { FactValue, PolicyEvaluation } from '../../src/policies/evaluate-policy.js';
import { evaluationDataFor, indexRecord } from '../../src/policies/evaluation-data.js';
import { recordFromResources } from '../../src/policies/record-from-resources.js';
import {
  CANONICAL_BASE,
  dtrContent,
  factDomain,
  pick,
  randomAssignment,
  rng,
  searchset,
  synthesizeRecord,
  TODAY,
} from './helpers.js';
import type { SynthesizedRecord } from './helpers.js';
import { justificationLinkId } from '../../src/policies/questionnaire-names.js';

const content = dtrContent();
const RUNS = 150;

function questionnaireOf(policy: CompiledPolicy): Questionnaire {
  return buildQuestionnaire(policy, { canonicalBase: CANONICAL_BASE, valueSets: content.valueSets });
}

function crd(policy: CompiledPolicy, s: SynthesizedRecord): PolicyEvaluation {
  const record = indexRecord(recordFromResources(s.resources, [s.order], s.order.requester?.reference));
  return evaluatePolicy(policy, evaluationDataFor(record, s.order, TODAY), s.overrides);
}

function dependsOnOverride(
  policy: CompiledPolicy,
  fact: string,
  overrides: Record<string, unknown>,
  seen = new Set<string>(),
): boolean {
  if (Object.prototype.hasOwnProperty.call(overrides, fact)) return true;
  if (seen.has(fact)) return false;
  seen.add(fact);
  return (policy.factsByName.get(fact)?.deps ?? []).some((d) => dependsOnOverride(policy, d, overrides, seen));
}

/**
 * A drawn fact combination as a clinician completing the form returns it: only the questions the form shows for it
 * are answered (design.md §7 "Answers the form does not show"; dtr-flow does the same). A fact the form hides that
 * only an answer could give (a drawn override, e.g. COG AALL1331 for a 45-year-old) is drawn again as not given, so
 * CRD does not hold it either; one the record gives stays in CRD's record and reaches DTR as the value the form was
 * pre-filled with and hid (`prefilledHidden`, what the CRD assertion carries), not as an answer. `asked` is what the
 * response answers.
 */
function shownAnswers(policy: CompiledPolicy, structure: PolicyStructure, drawn: Record<string, FactValue | undefined>) {
  let assignment = drawn;
  let s = synthesizeRecord(policy, assignment);
  for (let round = 0; ; round++) {
    const atCrd = crd(policy, s);
    // What the EHR holds for each question (the synthesized record may imply more than was drawn), plus the facts
    // no record can hold: exactly what a QuestionnaireResponse answering every question would carry.
    const held: Record<string, unknown> = {
      ...Object.fromEntries(atCrd.facts.filter((f) => f.value !== undefined).map((f) => [f.name, f.value])),
      ...s.overrides,
    };
    const all = structure.asked.filter((f) => held[f] !== undefined);
    const linkIdOf = (f: string) => policy.factsByName.get(f)!.def.linkId!;
    const values = Object.fromEntries(atCrd.facts.filter((f) => f.value !== undefined).map((f) => [f.name, f.value!]));
    const hiddenIds = hiddenLinkIds(policy, new Set(all.map(linkIdOf)), values, TODAY);
    const hidden = all.filter((f) => hiddenIds.has(linkIdOf(f)));
    const answerOnly = hidden.filter((f) => Object.prototype.hasOwnProperty.call(s.overrides, f));
    if (answerOnly.length > 0 && round < 5) {
      // An override is a fact the record cannot hold: not drawing it leaves the record as it is.
      assignment = { ...assignment };
      const overrides = { ...s.overrides };
      for (const f of answerOnly) {
        assignment[f] = undefined;
        delete overrides[f];
      }
      s = { ...s, overrides };
      continue;
    }
    const asked = Object.fromEntries(all.filter((f) => !hidden.includes(f)).map((f) => [f, held[f]]));
    const prefilledHidden = Object.fromEntries(hidden.map((f) => [f, held[f]]));
    return { assignment, s, atCrd, asked, prefilledHidden };
  }
}

/**
 * The CRD values of facts that no question asks and that read the record (the order, the patient's drug orders, the
 * diagnoses, the observations: policy-structure.ts `recordVariablesOf`), as the CRD assertion carries them, since DTR
 * has no record to read them from (design.md §7 "One record of what CRD knew"; evaluate-response.ts withKnownFacts keeps
 * one only while the answers it is computed from are those CRD read). Facts derived from facts alone are not given:
 * DTR must recompute them from the answers.
 */
function orderFacts(policy: CompiledPolicy, ev: PolicyEvaluation): Record<string, FactValue> {
  const out: Record<string, FactValue> = {};
  for (const f of ev.facts) {
    const fact = policy.factsByName.get(f.name);
    if (f.value === undefined || !fact || fact.def.askable || recordVariablesOf(policy, fact).length === 0) continue;
    out[f.name] = f.value;
  }
  return out;
}

function summary(ev: PolicyEvaluation) {
  return { outcome: ev.outcome, pathway: ev.pathway?.id, failed: ev.failed.map((r) => r.id).sort() };
}

describe.each(content.policies.map((p) => [p.file.id, p] as const))('%s', (_id, policy) => {
  const structure = policyStructure(policy);
  const q = questionnaireOf(policy);

  it(`CRD over a record holding the facts and DTR over answers agree (${RUNS} random combinations)`, () => {
    const r = rng(0x5eed ^ policy.file.id.length);
    const outcomes = new Map<string, number>();
    for (let run = 0; run < RUNS; run++) {
      const { assignment, atCrd, asked, prefilledHidden } = shownAnswers(policy, structure, randomAssignment(policy, structure.asked, r));
      const qr = prefilledResponse(policy, q, asked, { valueSets: content.valueSets, canonicalBase: CANONICAL_BASE });
      // An attestation held true comes with the document that proves it (attachments `proves`), as the form requires:
      // the record's "true" stands for an answer with its evidence.
      for (const a of policy.attachments)
        if (a.proves?.some((f) => asked[f] === true))
          (qr.item ??= []).push({ linkId: a.linkId, answer: [{ valueAttachment: { contentType: 'application/pdf', data: 'JVBERi0xLjQ=' } }] });
      // What the CRD assertion carries beside the answers (hook-handler.ts stores every known fact): the facts no
      // question asks that read the orders (e.g. the first week's dose, whether it is one instruction for the whole
      // cycle, whether any Blincyto is on record), which a response cannot carry, with the answers they were read with
      // (withKnownFacts keeps such a fact only while those answers stand).
      const knownFacts = { ...asked, ...orderFacts(policy, atCrd), ...prefilledHidden };
      const atDtr = evaluateQuestionnaireResponse({ content, qr, knownFacts, today: TODAY });
      expect(atDtr.problems).toEqual([]);
      expect(Object.keys(atDtr.answers).sort(), 'every held fact travels through the QuestionnaireResponse').toEqual(
        Object.keys(asked).sort(),
      );
      const ctx = JSON.stringify({ assignment, asked }, null, 1);
      expect(summary(atDtr.evaluation), ctx).toEqual(summary(atCrd));
      outcomes.set(atCrd.outcome, (outcomes.get(atCrd.outcome) ?? 0) + 1);
    }
    // The generator reaches more than one row of the determination table.
    expect(outcomes.size, JSON.stringify([...outcomes])).toBeGreaterThan(1);
  });

  it('initialExpressions run by fhirpath.js give the values the server reads from the same record', () => {
    const r = rng(0xfeed ^ policy.file.id.length);
    const items = flattenItems(q.item).filter((i) => i.extension?.some((e) => e.url === EXT_INITIAL_EXPRESSION));
    const compiled = items.map((i) => ({
      linkId: i.linkId,
      fact: structure.asked.find((n) => policy.factsByName.get(n)!.def.linkId === i.linkId)!,
      fn: compileFhirPath(i.extension!.find((e) => e.url === EXT_INITIAL_EXPRESSION)!.valueExpression!.expression!, {
        valueSets: content.valueSets,
        valueSetBase: `${CANONICAL_BASE}/ValueSet`,
        model: 'r4',
      }),
    }));
    let compared = 0;
    for (let run = 0; run < 60; run++) {
      const s = synthesizeRecord(policy, randomAssignment(policy, structure.asked, r));
      const atCrd = crd(policy, s);
      const of = (t: string) => s.resources.filter((x) => x.resourceType === t);
      const observations = of('Observation').sort((a, b) =>
        String((a as { effectiveDateTime?: string }).effectiveDateTime).localeCompare(
          String((b as { effectiveDateTime?: string }).effectiveDateTime),
        ),
      );
      const env = {
        patient: s.patient,
        user: of('PractitionerRole')[0],
        conditions: searchset(of('Condition')),
        observations: searchset(observations),
        medications: searchset(of('MedicationRequest').filter((m) => m.id !== s.order.id)),
        immunizations: searchset(of('Immunization')),
      };
      const emptyQr: QuestionnaireResponse = { resourceType: 'QuestionnaireResponse', status: 'in-progress' };
      for (const c of compiled) {
        // A fact given as an answer (no record can hold it) is not read from the record on either side.
        if (dependsOnOverride(policy, c.fact, s.overrides)) continue;
        const server = atCrd.facts.find((f) => f.name === c.fact)?.value;
        const client = c.fn(emptyQr, { ...env, resource: emptyQr });
        expect(client.length, `${c.linkId}: ${JSON.stringify(client)}`).toBeLessThanOrEqual(1);
        // A computed amount is shown rounded as a clinician reads it (display-precision.ts), as the payer pre-fills it.
        const def = policy.factsByName.get(c.fact)!.def;
        expect(client[0], `${c.linkId} (${c.fact})`).toEqual(typeof server === 'number' ? forDisplay(def, server) : server);
        compared++;
      }
    }
    if (compiled.length > 0) expect(compared).toBeGreaterThan(0);
    // The recency facts' pre-fill spells maybeRecent with defineVariable() and aggregate() (src/dtr/expressions.ts),
    // which the server's compiler leaves to fhirpath.js: slower here, as a renderer runs it anyway.
  }, 60_000);

  it('a closed enableWhenExpression only hides questions whose answers cannot change the determination', () => {
    const r = rng(0xbeef ^ policy.file.id.length);
    const gated = flattenItems(q.item).filter((i) => i.extension?.some((e) => e.url === EXT_ENABLE_WHEN_EXPRESSION));
    const gates = gated.map((i) => ({
      item: i,
      fn: compileFhirPath(
        i.extension!.find((e) => e.url === EXT_ENABLE_WHEN_EXPRESSION)!.valueExpression!.expression!,
        {
          valueSets: content.valueSets,
          valueSetBase: `${CANONICAL_BASE}/ValueSet`,
          model: 'r4',
        },
      ),
      // The facts it hides and the rules it is about.
      hidden:
        i.type === 'group'
          ? flattenItems(i.item)
              .filter((x) => x.type !== 'display')
              .map((x) => structure.asked.find((n) => policy.factsByName.get(n)!.def.linkId === x.linkId)!)
          : [structure.asked.find((n) => policy.factsByName.get(n)!.def.linkId === i.linkId)].filter(
              (x): x is string => !!x,
            ),
      // A pathway group's gate is about its pathway; a shared question's usage gate about every pathway that reads it.
      rules:
        i.type === 'group'
          ? [i.linkId.replace(/^group-pathway-/, '')]
          : i.extension!.some((e) => e.url === EXT_ENABLE_WHEN_EXPRESSION && e.valueExpression?.description === USAGE_GATE_DESCRIPTION)
            ? (structure.usedBy.get(structure.asked.find((n) => policy.factsByName.get(n)!.def.linkId === i.linkId)!) ?? []).map((r) => r.id)
            : [],
      use: i.extension!.some((e) => e.url === EXT_ENABLE_WHEN_EXPRESSION && e.valueExpression?.description?.includes(USE_GATE_DESCRIPTION))
        ? compileFhirPath(splitTopLevel(i.extension!.find((e) => e.url === EXT_ENABLE_WHEN_EXPRESSION)!.valueExpression!.expression!, 'and').at(-1)!, {
            valueSets: content.valueSets,
            valueSetBase: `${CANONICAL_BASE}/ValueSet`,
            model: 'r4',
          })
        : undefined,
      // A limit question's use gate (USE_GATE_DESCRIPTION) is about every limit that reads it: each comes out the same
      // whatever the hidden question gets.
      same:
        i.type !== 'group' && i.extension!.some((e) => e.url === EXT_ENABLE_WHEN_EXPRESSION && e.valueExpression?.description?.includes(USE_GATE_DESCRIPTION))
          ? (structure.usedBy.get(structure.asked.find((n) => policy.factsByName.get(n)!.def.linkId === i.linkId)!) ?? []).map((r) => r.id)
          : [],
      limits:
        i.type === 'group'
          ? []
          : structure.justifications
              .filter(
                (j) =>
                  j.facts.some((f) => policy.factsByName.get(f)!.def.linkId === i.linkId) ||
                  justificationLinkId(j.limit.id) === i.linkId,
              )
              .map((j) => j.limit.id),
    }));
    let closed = 0;
    for (let run = 0; run < 60; run++) {
      const assignment = randomAssignment(policy, structure.asked, r);
      const answered = Object.fromEntries(Object.entries(assignment).filter(([, v]) => v !== undefined)) as Record<
        string,
        FactValue
      >;
      const qr = prefilledResponse(policy, q, answered, {
        valueSets: content.valueSets,
        canonicalBase: CANONICAL_BASE,
      });
      for (const g of gates) {
        // The renderer has the SDC launch context %patient (age-gated questions read its birth date).
        const open = g.fn(qr, { resource: qr, patient: { resourceType: 'Patient', birthDate: '1980-01-01' } });
        expect(open.length, g.item.linkId).toBe(1);
        if (open[0] !== false) continue;
        closed++;
        // A use gate joined to an askWhen (the last of the joined gates) is judged on its own closing: an askWhen hides
        // a question for other patients, whose answer may well change a limit (design.md §7).
        const same = g.use && g.use(qr, { resource: qr, patient: { resourceType: 'Patient', birthDate: '1980-01-01' } })[0] === false ? g.same : [];
        // Whatever the hidden questions get, the rule stays decided the same way. A limit is met, or (a justification
        // asked only once another answer shows the limit concerns the patient: Centene's dose attestation waits for
        // the weight) comes out the same whatever is answered to the hidden questions.
        const limitResults = new Map<string, Set<unknown>>();
        for (let k = 0; k < 6; k++) {
          const variant: Record<string, FactValue> = { ...answered };
          for (const f of g.hidden) {
            const v = pick(r, factDomain(policy, f));
            if (v === undefined) delete variant[f];
            else variant[f] = v;
          }
          const vqr = prefilledResponse(policy, q, variant, {
            valueSets: content.valueSets,
            canonicalBase: CANONICAL_BASE,
          });
          // The answers read as given (knownFacts, not items): this is about the form's gates (what they hide could not
          // change the determination were it read), not the server's rule that a hidden answer is not read at all.
          const ev = evaluateQuestionnaireResponse({ content, qr: { ...vqr, item: [] }, knownFacts: variant, today: TODAY }).evaluation;
          for (const rule of g.rules)
            expect(
              ev.rules.find((x) => x.id === rule)?.result,
              `${g.item.linkId} closed (${rule}): ${JSON.stringify(variant)}`,
            ).toBe(false);
          for (const l of same) {
            const result = ev.rules.find((x) => x.id === l)?.result;
            limitResults.set(l, (limitResults.get(l) ?? new Set()).add(result));
          }
          for (const l of g.limits) {
            const result = ev.rules.find((x) => x.id === l)?.result;
            expect(result, `${g.item.linkId} closed: ${JSON.stringify(variant)}`).not.toBe(false);
            limitResults.set(l, (limitResults.get(l) ?? new Set()).add(result));
          }
        }
        for (const [l, results] of limitResults)
          expect([...results], `${g.item.linkId} closed (${l}): the hidden answers change the limit`).toHaveLength(1);
      }
    }
    if (gates.length > 0) expect(closed, 'some gate closes in the random runs').toBeGreaterThan(0);
  }, 120_000);
});
