import type { Questionnaire } from '@medplum/fhirtypes';
import type { Content } from '../content.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { buildQuestionnaire } from './questionnaire-builder.js';

/** One generated Questionnaire file: `questionnaires/<policy-id>.json` (design.md §5). */
export interface QuestionnaireFile {
  policy: CompiledPolicy;
  questionnaire: Questionnaire;
  fileName: string;
  /** The exact file content: two-space JSON and a final newline. */
  text: string;
}

/** The Questionnaire of every loaded policy, in policy-id order, serialised as committed. */
export function generateQuestionnaireFiles(content: Content): QuestionnaireFile[] {
  return [...content.policies]
    .sort((a, b) => a.file.id.localeCompare(b.file.id))
    .map((policy) => {
      const questionnaire = buildQuestionnaire(policy, {
        canonicalBase: content.canonicalBase,
        valueSets: content.valueSets,
        payerLabel: content.payers.get(policy.file.payer)?.label,
      });
      return {
        policy,
        questionnaire,
        fileName: `${policy.file.id}.json`,
        text: `${JSON.stringify(questionnaire, null, 2)}\n`,
      };
    });
}
