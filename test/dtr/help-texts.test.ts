/**
 * The "?" help of a DTR question (an SDC `display` item with itemControl `help`, design.md §7 "Questions") is read by
 * the prescriber: it says what to answer, what counts, and the policy clause the answer serves (design.md §5). How the
 * record is read for policy authors (design.md sections, fact ids, FHIR element paths, review findings) belongs in the
 * YAML comments beside the fact's `help:`, never in the help itself (UI review s44 M2: 75 help texts across the five
 * forms cited "design.md §6", `mrdReportedPositive`, `boundsPeriod`, "review pharm s41 F8").
 */
import type { Questionnaire } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { EXT_ITEM_CONTROL } from '../../src/fhir/dtr-urls.js';
import { flattenItems } from '../../src/dtr/questionnaire-builder.js';
import { generateQuestionnaireFiles } from '../../src/dtr/questionnaire-files.js';
import { dtrContent } from './helpers.js';

const content = dtrContent();
const forms = generateQuestionnaireFiles(content).map((f) => ({
  name: f.fileName,
  questionnaire: JSON.parse(f.text) as Questionnaire,
}));

/** Every help display of every generated form, with the form it is in. */
const helps = forms.flatMap((f) =>
  flattenItems(f.questionnaire.item)
    .filter((i) =>
      (i.extension ?? []).some(
        (e) => e.url === EXT_ITEM_CONTROL && e.valueCodeableConcept?.coding?.some((c) => c.code === 'help'),
      ),
    )
    .map((i) => ({ where: `${f.name} ${i.linkId}`, text: i.text ?? '' })),
);

/** The fact ids of every policy (its own and those it imports): internal names a prescriber cannot know. */
const factIds = [...new Set(content.policies.flatMap((p) => [...p.factsByName.keys()]))];

/**
 * What marks engineering text. A camelCase word (a lower-case letter, an upper-case one, then lower-case again) is
 * a fact id, a FHIR element or a library variable (`boundsPeriod`, `clinicalStatus`, `numberOfRepeatsAllowed`,
 * `%regimenMedications`); units and lab names (mL, qPCR) do not match it. A "§" with a number is a design.md section
 * (the seeds' own footnote mark, "§TKI options" in HEALTHSERVICES-0382, is a clause citation and stays). A review id is
 * a session and finding number ("s41 F8", "s43 A5").
 */
function engineeringIn(text: string): string[] {
  const found: string[] = [];
  if (/design\.md/i.test(text)) found.push('design.md');
  found.push(...(text.match(/§\s*\d[\d.]*/g) ?? []));
  found.push(...(text.match(/\bs\d{2} [A-Z]\d+\b/g) ?? []));
  found.push(...(text.match(/%?\b[a-z]+[A-Z][a-z]\w*/g) ?? []));
  for (const id of factIds) if (new RegExp(`\\b${id}\\b`).test(text) && /[A-Z]/.test(id)) found.push(id);
  return [...new Set(found)];
}

describe('help texts the prescriber reads', () => {
  it('every form has help texts to check', () => {
    expect(forms.length).toBe(content.policies.length);
    for (const f of forms) expect(helps.some((h) => h.where.startsWith(f.name)), f.name).toBe(true);
    expect(factIds).toContain('mrdReportedPositive');
  });

  it('the check finds the engineering notes the UI review found', () => {
    expect(engineeringIn('(design.md §6 "Clinical readings": a record …)')).toEqual(['design.md', '§6']);
    expect(engineeringIn('leaves the level unknown (mrdReportedPositive carries it)')).toEqual(['mrdReportedPositive']);
    expect(engineeringIn('(review pharm s41 F8: …) by its own stated end (boundsPeriod or validityPeriod end)')).toEqual([
      's41 F8',
      'boundsPeriod',
      'validityPeriod',
    ]);
    expect(engineeringIn('(clinicalStatus remission)')).toEqual(['clinicalStatus']);
    expect(engineeringIn('A dose in mL; qPCR or FISH; HEALTHSERVICES-0382 III (§TKI options); CP.PHAR.312 I.A.4.b.i')).toEqual([]);
  });

  it('no help text cites design.md, a review id, a fact id or a FHIR element path', () => {
    const offending = helps
      .map((h) => ({ where: h.where, found: engineeringIn(h.text) }))
      .filter((h) => h.found.length > 0);
    expect(offending).toEqual([]);
  });
});
