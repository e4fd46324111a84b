/**
 * Content tests for the generated DTR Questionnaires (design.md §5: questionnaires/<payer>-<drug>.json is generated
 * from the policy; §7: SDC launchContext, x-fhir-query variables, FHIRPath initialExpressions, enableWhenExpression,
 * answer ValueSets with local expansions).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Library, Questionnaire, QuestionnaireItem } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { compileFhirPath } from '../../src/fhir/fhirpath.js';
import { SERVER_FUNCTIONS } from '../../src/dtr/expressions.js';
import { tokenize } from '../../src/fhir/fhirpath-tokens.js';
import {
  EXT_ENABLE_WHEN_EXPRESSION,
  EXT_INITIAL_EXPRESSION,
  EXT_LAUNCH_CONTEXT,
  EXT_VARIABLE,
  LAUNCH_CONTEXT_SYSTEM,
} from '../../src/fhir/dtr-urls.js';
import { policyStructure } from '../../src/policies/policy-structure.js';
import { flattenItems, USAGE_GATE_DESCRIPTION, USE_GATE_DESCRIPTION, useGateCandidates } from '../../src/dtr/questionnaire-builder.js';
import { generateQuestionnaireFiles } from '../../src/dtr/questionnaire-files.js';
import { prefilledResponse } from '../../src/coverage/questionnaire-answers.js';
import { repoRoot } from '../helpers/stories.js';
import { buildCatalog } from '../../src/dtr/catalog.js';
import { CANONICAL_BASE, dtrContent, fhirIssues } from './helpers.js';
import { justificationLinkId, ORDER_DATE_LINK_ID, ORDER_START_LINK_ID } from '../../src/policies/questionnaire-names.js';

const content = dtrContent();
const files = generateQuestionnaireFiles(content);
const dir = join(repoRoot, 'questionnaires');

function expressions(item: QuestionnaireItem | Questionnaire, url: string): string[] {
  return (item.extension ?? []).filter((e) => e.url === url).map((e) => e.valueExpression?.expression ?? '');
}

describe('generated questionnaires', () => {
  it('there is one per policy, and the committed files are exactly what the policies generate (npm run questionnaires)', () => {
    expect(files.length).toBe(content.policies.length);
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const path = join(dir, f.fileName);
      expect(existsSync(path), `${f.fileName} is committed`).toBe(true);
      expect(readFileSync(path, 'utf8'), `${f.fileName} is up to date: run npm run questionnaires`).toBe(f.text);
    }
    const committed = readdirSync(dir).filter((n) => n.endsWith('.json'));
    expect(committed.sort()).toEqual(files.map((f) => f.fileName).sort());
  });

  it('generation is deterministic', () => {
    expect(generateQuestionnaireFiles(content).map((f) => f.text)).toEqual(files.map((f) => f.text));
  });

  // A Library's content.data is a FHIR base64Binary held in one JSON string, which FHIR validators (Medplum's among
  // them) refuse past 1 MiB, so a DTR 2.0.1 package carrying a larger ELM cannot be read. The OHSU ELM has twice grown
  // past it with new course readings (scripts/cql-translator.ts compactElm; review s41 F7). Here, not only in the
  // slow CQL agreement test, so a policy change that outgrows it fails in the DTR tests run with every form change.
  it('every committed Library (libraries/, the CQL and ELM of the 2.0.1 packages) fits each content part in one FHIR string (1 MiB)', () => {
    const libraryFiles = readdirSync(join(repoRoot, 'libraries')).filter((n) => n.endsWith('.json'));
    // Each policy's Library and the parts it includes (design.md §7 "Libraries in parts"), and FHIRHelpers.
    for (const p of content.policies) expect(libraryFiles, p.file.id).toContain(`${p.file.id}.json`);
    expect(libraryFiles.filter((n) => !/-part\d+\.json$/.test(n))).toHaveLength(content.policies.length + 1);
    for (const name of libraryFiles) {
      const library = JSON.parse(readFileSync(join(repoRoot, 'libraries', name), 'utf8')) as Library;
      expect(library.content?.map((c) => c.contentType).sort(), name).toEqual(['application/elm+json', 'text/cql']);
      for (const part of library.content!) {
        expect(part.data!.length, `libraries/${name} ${part.contentType}: ${part.data!.length} base64 characters`).toBeLessThanOrEqual(1_048_576);
      }
    }
  });

  // design.md §7 "Pre-filled amounts": a computed amount is pre-filled rounded to its unit's display decimals in both
  // forms. The 2.0.1 CQL used to round only the BSA doses, so a weight converted from pounds (70.30682 kg), a height
  // from inches or OHSU's billable units came to a 2.0.1 client unrounded while the FHIRPath form showed 70.3.
  it('the DTR 2.0.1 form pre-fills every amount the FHIRPath form rounds with its rounded (AsShown) define', () => {
    const catalog = buildCatalog(content);
    let rounded = 0;
    for (const q of catalog.all.filter((x) => !catalog.standardOf.has(x))) {
      const cqlForm = catalog.cqlFormOf(q)!.questionnaire;
      const library = catalog.cqlFormOf(q)!.libraries[0];
      const cqlItems = new Map(flattenItems(cqlForm.item ?? []).map((i) => [i.linkId, i]));
      for (const item of flattenItems(q.item ?? [])) {
        const fhirpath = item.extension?.find((e) => e.url === EXT_INITIAL_EXPRESSION)?.valueExpression?.expression;
        if (!fhirpath || !/\.round\(\d\)\)*$/.test(fhirpath)) continue;
        rounded++;
        const cql = cqlItems.get(item.linkId)?.extension?.find((e) => e.url === EXT_INITIAL_EXPRESSION)?.valueExpression?.expression;
        expect(cql, `${q.url} ${item.linkId}`).toMatch(new RegExp(`^"${library.name}"\\.\\w+AsShown$`));
      }
    }
    expect(rounded).toBeGreaterThan(0);
  });

  // SDC 3.0 sdc-questionnaire-enableWhenExpression is 0..1: a renderer given two keeps one of its choice, so a question
  // gated twice (CP.PHAR.312's dose attestation: its askWhen and its justification gate) was asked or hidden by the
  // renderer (review s41 F7). The builder joins such gates with `and` (design.md §7).
  it('no item of any generated form carries more than one enableWhenExpression, and a joined gate keeps both', () => {
    for (const f of files) {
      const all = [f.questionnaire as QuestionnaireItem | Questionnaire, ...flattenItems(f.questionnaire.item)];
      for (const i of all) {
        const n = expressions(i, EXT_ENABLE_WHEN_EXPRESSION).length;
        expect(n, `${f.fileName} ${'linkId' in i ? i.linkId : 'Questionnaire'}: ${n} enableWhenExpressions`).toBeLessThanOrEqual(1);
      }
    }
    const centene = files.find((f) => f.policy.file.id === 'centene-blinatumomab')!;
    const dose = flattenItems(centene.questionnaire.item).find((i) => i.linkId === 'dose-guideline-supported')!;
    const [gate] = expressions(dose, EXT_ENABLE_WHEN_EXPRESSION);
    const ext = dose.extension!.find((e) => e.url === EXT_ENABLE_WHEN_EXPRESSION)!;
    expect(ext.valueExpression!.description).toContain('Asked only of the patients this question concerns');
    expect(ext.valueExpression!.description).toContain('Asked unless the answers so far already meet the limit');
    expect(gate).toMatch(/^\(iif\(.*\)\) and \(iif\(.*\)\)$/s);
  });

  describe.each(files.map((f) => [f.policy.file.id, f] as const))('%s', (_id, f) => {
    const q = f.questionnaire;
    const policy = f.policy;
    const structure = policyStructure(policy);
    const items = flattenItems(q.item);
    // The hidden order-date and order-start items are the payer's, not questions (questionnaire-names.ts).
    const payerItems = new Set([ORDER_DATE_LINK_ID, ORDER_START_LINK_ID]);
    const questions = items.filter((i) => i.type !== 'group' && i.type !== 'display' && i.type !== 'attachment' && !payerItems.has(i.linkId));
    const attachments = items.filter((i) => i.type === 'attachment');

    it('is a valid FHIR R4 Questionnaire (Medplum validator)', () => {
      expect(fhirIssues(q)).toEqual([]);
    });

    it('carries its canonical, the policy version, the DTR profile, subjectType Patient and narrative', () => {
      expect(q.url).toBe(`${CANONICAL_BASE}/Questionnaire/${policy.file.id}`);
      expect(`${q.url}|${q.version}`).toBe(policy.questionnaire);
      expect(q.status).toBe('active');
      expect(q.subjectType).toEqual(['Patient']);
      expect(q.meta?.profile).toContain('http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-std-questionnaire');
      expect(q.text?.div).toContain('xmlns="http://www.w3.org/1999/xhtml"');
      expect(q.name).toMatch(/^[A-Z][A-Za-z0-9_]*$/);
    });

    it('declares the SDC launch contexts patient, user and encounter, and x-fhir-query variables for the record', () => {
      const contexts = (q.extension ?? [])
        .filter((e) => e.url === EXT_LAUNCH_CONTEXT)
        .map((e) => e.extension?.find((x) => x.url === 'name')?.valueCoding);
      expect(contexts.map((c) => c?.code)).toEqual(['patient', 'user', 'encounter']);
      expect(contexts.every((c) => c?.system === LAUNCH_CONTEXT_SYSTEM)).toBe(true);
      const vars = (q.extension ?? []).filter((e) => e.url === EXT_VARIABLE).map((e) => e.valueExpression!);
      expect(vars.map((v) => v.name)).toEqual(['conditions', 'observations', 'medications', 'immunizations']);
      expect(
        vars.every(
          (v) => v.language === 'application/x-fhir-query' && v.expression!.includes('patient={{%patient.id}}'),
        ),
      ).toBe(true);
    });

    it('asks each question so a clinician reads it without the policy open: it names what it asks about (design.md §6)', () => {
      // A question opening with a bare pronoun ("Is it given with ...?") leaves the reader to guess what "it" is.
      for (const i of questions) expect(i.text ?? '', i.linkId).not.toMatch(/^(Is|Was|Does|Has) (it|this|that) (given|used|prescribed)\b/i);
    });

    it('asks every askable fact a rule can need, once, with the fact linkId and type', () => {
      const linkIds = questions.map((i) => i.linkId);
      for (const name of structure.asked) {
        const def = policy.factsByName.get(name)!.def;
        const item = questions.find((i) => i.linkId === def.linkId);
        expect(item, `${name} (${def.linkId}) has an item`).toBeDefined();
        expect(item!.type).toBe(
          {
            boolean: 'boolean',
            decimal: 'decimal',
            integer: 'integer',
            code: 'choice',
            date: 'date',
            string: 'string',
          }[def.type],
        );
        expect(item!.text).toBeTruthy();
      }
      expect(new Set(items.map((i) => i.linkId)).size, 'linkIds are unique').toBe(items.length);
      expect(linkIds.length).toBeGreaterThanOrEqual(structure.asked.length);
    });

    it('carries the order start as one hidden, read-only date item the payer fills, which no question is', () => {
      const first = q.item![0];
      expect(first).toMatchObject({ linkId: ORDER_DATE_LINK_ID, type: 'date', readOnly: true });
      expect(first.extension).toContainEqual({ url: 'http://hl7.org/fhir/StructureDefinition/questionnaire-hidden', valueBoolean: true });
      expect(items.filter((i) => i.linkId === ORDER_DATE_LINK_ID)).toHaveLength(1);
    });

    it('carries the start the order states as a second hidden, read-only date item, which the recency windows of its pre-fill end on (design.md §6 Recency)', () => {
      const second = q.item![1];
      expect(second).toMatchObject({ linkId: ORDER_START_LINK_ID, type: 'date', readOnly: true });
      expect(second.extension).toContainEqual({ url: 'http://hl7.org/fhir/StructureDefinition/questionnaire-hidden', valueBoolean: true });
      expect(JSON.stringify(q)).toContain(`linkId = '${ORDER_START_LINK_ID}'`);
    });

    it('maps every question to a policy fact or a limit justification', () => {
      const factLinkIds = new Set(structure.asked.map((n) => policy.factsByName.get(n)!.def.linkId));
      const justifications = new Set(
        policy.limits.filter((l) => l.justification).map((l) => justificationLinkId(l.id)),
      );
      for (const i of questions)
        expect(factLinkIds.has(i.linkId) || justifications.has(i.linkId), `${i.linkId} maps to a fact`).toBe(true);
    });

    it('has a help display under every question that cites the policy clauses using it', () => {
      for (const i of questions) {
        const help = (i.item ?? []).find((x) => x.type === 'display');
        expect(help, `${i.linkId} has help`).toBeDefined();
        expect(help!.extension?.[0]?.valueCodeableConcept?.coding?.[0]?.code).toBe('help');
        const fact = structure.asked.find((n) => policy.factsByName.get(n)!.def.linkId === i.linkId);
        for (const r of fact ? structure.usedBy.get(fact)! : []) expect(help!.text).toContain(r.cite);
      }
    });

    it('binds code questions to a loaded ValueSet, by versioned canonical, and gives decimals their UCUM unit', () => {
      for (const i of questions.filter((x) => x.type === 'choice')) {
        expect(i.answerValueSet).toMatch(/\|/);
        expect(content.valueSets.get(i.answerValueSet!), i.answerValueSet).toBeDefined();
        expect(content.valueSets.get(i.answerValueSet!)!.expansion?.contains?.length).toBeGreaterThan(0);
      }
      for (const name of structure.asked) {
        const def = policy.factsByName.get(name)!.def;
        if (def.type !== 'decimal' || !def.unit) continue;
        const item = questions.find((x) => x.linkId === def.linkId)!;
        const unit = item.extension?.find((e) => e.url.endsWith('questionnaire-unit'))?.valueCoding;
        expect(unit).toMatchObject({ system: 'http://unitsofmeasure.org', code: def.unit });
        // The display is what the clinician reads next to the field: words, never a UCUM annotation such as {units}.
        expect(unit?.display, `${def.linkId} unit display`).not.toMatch(/[{}]/);
      }
    });

    it('groups questions by rule kind or pathway, and gates pathway groups, justifications, askWhen questions and shared pathway questions with enableWhenExpression', () => {
      const groups = (q.item ?? []).map((g) => g.linkId).filter((l) => !payerItems.has(l));
      expect(groups.every((g) => g.startsWith('group-'))).toBe(true);
      for (const g of structure.groups.filter((x) => x.kind === 'pathway'))
        expect(groups).toContain(`group-pathway-${g.rule!.id}`);
      const askWhen = new Set([
        ...policy.facts.filter((f) => f.def.askWhen).map((f) => f.def.linkId),
        ...policy.attachments.filter((a) => a.askWhen).map((a) => a.linkId),
      ]);
      const gated = items.filter((i) => expressions(i, EXT_ENABLE_WHEN_EXPRESSION).length > 0);
      // A shared question that only pathways read is hidden once they are all ruled out (the usage gate).
      const pathwaysOnly = new Set(
        structure.asked
          .filter((f) => (structure.usedBy.get(f) ?? []).every((r) => r.kind === 'pathway'))
          .map((f) => policy.factsByName.get(f)!.def.linkId),
      );
      // A question only limits read is hidden once the answers decide those limits without it (the use gate).
      const limitsOnly = new Set(useGateCandidates(policy, structure).map((f) => policy.factsByName.get(f)!.def.linkId));
      for (const i of gated)
        expect(
          i.linkId.startsWith('group-pathway-') ||
            structure.justifications.length > 0 ||
            askWhen.has(i.linkId) ||
            (pathwaysOnly.has(i.linkId) &&
              i.extension!.some((e) => e.valueExpression?.description === USAGE_GATE_DESCRIPTION)) ||
            (limitsOnly.has(i.linkId) &&
              i.extension!.some((e) => e.valueExpression?.description?.includes(USE_GATE_DESCRIPTION))),
          i.linkId,
        ).toBe(true);
      // design.md §6 "Clinical readings": a question asked only of the patients it concerns (askWhen: renewals, an
      // age band) is hidden from the others in the form too, not only in the CRD reason.
      // Except an askWhen that can never be false, in the form or on the server: BCBSNC's renewal question, whose
      // askWhen reads relapsedCourseCycleOne, which those policies never know (`{}`), is simply asked (expressions.ts
      // neverFalseInForm; test/dtr/form-gates.test.ts).
      const neverCloses = (linkId: string) => linkId === 'renewal-request' && policy.factsByName.get('relapsedCourseCycleOne')?.def.fhirpath.trim() === '{}';
      for (const i of items.filter((x) => askWhen.has(x.linkId) && !neverCloses(x.linkId)))
        expect(expressions(i, EXT_ENABLE_WHEN_EXPRESSION), `${i.linkId} has askWhen but no enableWhenExpression`).not.toHaveLength(0);
    });

    it('asks for the documents the seed asks for as attachment items citing the clause (design.md §6 "Clinical readings")', () => {
      expect(attachments.map((i) => i.linkId)).toEqual(policy.attachments.map((a) => a.linkId));
      expect(attachments.length, 'every seed asks for some document').toBeGreaterThan(0);
      for (const a of policy.attachments) {
        const item = attachments.find((i) => i.linkId === a.linkId)!;
        expect(item.item?.find((x) => x.type === 'display')?.text).toContain(a.cite);
      }
    });

    it('has FHIRPath that fhirpath.js compiles and that uses no server-only function', () => {
      const all = [
        ...items.flatMap((i) => [
          ...expressions(i, EXT_INITIAL_EXPRESSION),
          ...expressions(i, EXT_ENABLE_WHEN_EXPRESSION),
        ]),
      ];
      expect(all.length).toBeGreaterThan(0);
      for (const e of all) {
        const tokens = tokenize(e);
        const calls = tokens.filter(
          (t, k) => t.kind === 'ident' && SERVER_FUNCTIONS.includes(t.name!) && tokens[k - 1]?.text === '.',
        );
        expect(
          calls.map((t) => t.name),
          e.slice(0, 200),
        ).toEqual([]);
        expect(() =>
          compileFhirPath(e, { valueSets: content.valueSets, valueSetBase: `${CANONICAL_BASE}/ValueSet`, model: 'r4' }),
        ).not.toThrow();
      }
    });

    it('pre-populates with FHIRPath initialExpressions where a renderer can read the fact, and says why not elsewhere', () => {
      let withExpression = 0;
      for (const i of questions) {
        const init = expressions(i, EXT_INITIAL_EXPRESSION);
        const note = i.extension?.find((e) => e.url.endsWith('designNote'))?.valueMarkdown;
        if (init.length > 0) withExpression++;
        else expect(note, `${i.linkId}: no initialExpression needs a design note`).toMatch(/Pre-population: none/);
        for (const e of init) expect(e).not.toMatch(/%(order|coverage)\b/);
      }
      expect(withExpression).toBeGreaterThan(0);
    });

    it('every derived fact a rule reads can be computed from questions the form asks (DTR can decide what CRD decides)', () => {
      const recordOnly = structure.derived.filter((d) => policy.factsByName.get(d)!.deps.length === 0);
      // Record-only derived facts are unknown over answers alone; they must not be the only way to decide a rule.
      for (const d of recordOnly) {
        const readers = [...policy.requirements, ...policy.pathways, ...policy.limits].filter((r) =>
          r.facts.includes(d),
        );
        expect(
          readers.map((r) => r.id),
          `${d} is read directly by a rule`,
        ).toEqual([]);
      }
    });
  });
});

describe('questions asked only of the patients they concern (design.md §6 "Clinical readings")', () => {
  const policy = content.policies.find((p) => p.file.id === 'ohsu-blinatumomab')!;
  const q = files.find((f) => f.questionnaire.url?.endsWith('/ohsu-blinatumomab'))!.questionnaire;
  const shown = (linkId: string, facts: Record<string, unknown>): boolean => {
    const item = flattenItems(q.item).find((i) => i.linkId === linkId)!;
    const [gate] = expressions(item, EXT_ENABLE_WHEN_EXPRESSION);
    if (!gate) return true;
    const qr = prefilledResponse(policy, q, facts, { valueSets: content.valueSets, canonicalBase: CANONICAL_BASE });
    const fn = compileFhirPath(gate, { valueSets: content.valueSets, valueSetBase: `${CANONICAL_BASE}/ValueSet`, model: 'r4' });
    return fn(qr, { resource: qr })[0] !== false;
  };
  const child = new Date(Date.now() - 9 * 365.25 * 86400000).toISOString().slice(0, 10);

  it('OHSU asks whether the disease is refractory to (or the patient intolerant of) TKIs only when it is not known to be Ph-negative', () => {
    for (const linkId of ['tki-refractory', 'tki-intolerant-or-refractory']) {
      expect(shown(linkId, { phStatus: 'negative' }), `${linkId}, Ph-negative`).toBe(false);
      expect(shown(linkId, { phStatus: 'ph-like' }), `${linkId}, Ph-like`).toBe(false);
      expect(shown(linkId, { phStatus: 'positive' }), `${linkId}, Ph-positive`).toBe(true);
      expect(shown(linkId, {}), `${linkId}, Ph status unknown`).toBe(true);
    }
  });

  it('OHSU asks about the COG AALL1331 regimen (a first-relapse protocol) only of a young patient whose disease has relapsed', () => {
    expect(shown('cog-aall1331', { birthDate: child, diseaseStatus: 'cr1' })).toBe(false);
    expect(shown('cog-aall1331', { birthDate: child, diseaseStatus: 'newly-diagnosed' })).toBe(false);
    expect(shown('cog-aall1331', { birthDate: child, diseaseStatus: 'cr2' })).toBe(true);
    expect(shown('cog-aall1331', { birthDate: child, diseaseStatus: 'relapsed' })).toBe(true);
    expect(shown('cog-aall1331', { birthDate: child })).toBe(true);
  });
});

describe('the facts an approval period or a proposal reads (policy-structure.ts approvalReads, design.md §7 "Questions only limits read")', () => {
  const besponsa = content.policies.find((p) => p.file.id === 'bcbsnc-inotuzumab')!;

  it('are what the compiled period, cycle cap and proposal expressions read, with what those are computed from', () => {
    const reads = new Map(policyStructure(besponsa).approvalReads.map((a) => [a.rule.id, a.facts]));
    // The per-m² dose limit proposes 0.8 mg/m² of BSA: BSA, from weight and height.
    expect(reads.get('label-dose-per-m2')).toEqual(expect.arrayContaining(['weightKg', 'heightCm', 'bsa']));
    expect(reads.get('label-dose-per-m2')).not.toContain('mrdPercent');
    // A 6-month approval with a cycle cap reads the cycles requested and nothing else.
    expect(reads.get('compendia-or-fda-label')).toEqual(['cyclesRequested']);
  });

  it('do not include a fact a proposal only names in its words: the MRD level stays behind its use gate', () => {
    // Besponsa's MRD level is read only by the HSCT limit, so the form hides it until that limit can read it. A
    // proposal whose display words happen to spell a fact's name does not read that fact.
    const worded: typeof besponsa = {
      ...besponsa,
      file: {
        ...besponsa.file,
        limits: besponsa.file.limits.map((l) =>
          l.id === 'label-dose-per-m2' && 'propose' in l && l.propose && !('quantity' in l.propose) ? { ...l, propose: { ...l.propose, display: 'mg (mrdPercent not read)' } } : l,
        ),
      },
    };
    expect(useGateCandidates(worded, policyStructure(worded))).toContain('mrdPercent');
  });
});
