/**
 * The cycles-given question counts cycles of treatment, as every seed states its course ("Up to 9 cycles of
 * treatment", MP-RX-FP-14-23 Limits A; "Up to 9 total cycles of therapy", HEALTHSERVICES-0382 V) and design.md §6
 * ("cycles already given are the patient's completed or active orders"): an authorization not yet used is no cycle
 * given, so the form must not ask for one (pharmacist review §8: "or been authorized for" inflated course counts).
 */
import type { Questionnaire } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { flattenItems } from '../../src/dtr/questionnaire-builder.js';
import { generateQuestionnaireFiles } from '../../src/dtr/questionnaire-files.js';
import { dtrContent } from './helpers.js';

const files = generateQuestionnaireFiles(dtrContent());

describe('the cycles-given question of every Questionnaire', () => {
  it.each(files.map((f) => [f.questionnaire.id, f.questionnaire] as const))('%s asks for cycles given or under way in this course, not cycles authorized', (_id, q: Questionnaire) => {
    const item = flattenItems(q.item ?? []).find((i) => i.linkId === 'cycles-given');
    expect(item, 'the form asks the cycles already given').toBeDefined();
    expect(item!.text).toMatch(/given or under\s+way/);
    expect(item!.text).toMatch(/this treatment course/);
    expect(item!.text).not.toMatch(/authorized for/);
  });
});
