/**
 * A policy attachment's `proves` (policy-schema.ts attachmentSchema; cds-services/README.md attachments): the loader's
 * checks, the Questionnaire item it makes required, and how a returned response is read (an attestation answered true
 * counts only with its document attached; CP.PHAR.312 I.A.5.b "prescriber must submit supporting evidence").
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { QuestionnaireItem, QuestionnaireResponse, QuestionnaireResponseItem } from '@medplum/fhirtypes';
import { afterAll, describe, expect, it } from 'vitest';
import { loadContent } from '../../src/content.js';
import { answersFromQuestionnaireResponse } from '../../src/coverage/questionnaire-answers.js';
import { buildQuestionnaire } from '../../src/dtr/questionnaire-builder.js';
import { loadPolicies } from '../../src/policies/policy-loader.js';
import { repoRoot } from '../helpers/stories.js';

const CANONICAL_BASE = 'https://priorpath.dev/fhir';
const content = loadContent({ root: repoRoot, canonicalBase: CANONICAL_BASE });
const centene = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!;
const EVIDENCE = { contentType: 'application/pdf', data: Buffer.from('%PDF-1.4 guideline').toString('base64') };

function response(items: QuestionnaireResponseItem[]): QuestionnaireResponse {
  return { resourceType: 'QuestionnaireResponse', status: 'completed', item: [{ linkId: 'group-attachments', item: items }] };
}
const yes = { linkId: 'dose-guideline-supported', answer: [{ valueBoolean: true }] };

describe('attachments: proves', () => {
  it('the Centene dose evidence proves the I.A.5.b / II.A.3.b attestation; the II.A.1 documentation proves nothing', () => {
    expect(centene.attachments.find((a) => a.linkId === 'dose-evidence')?.proves).toEqual(['doseGuidelineSupported']);
    expect(centene.attachments.find((a) => a.linkId === 'continued-therapy-documentation')?.proves).toBeUndefined();
  });

  it('a true answer without the document is unknown (left out, listed as unproven); with data or a url it is true; false stands alone', () => {
    const read = (items: QuestionnaireResponseItem[]) => answersFromQuestionnaireResponse(centene, response(items));
    const bare = read([yes]);
    expect(bare.answers).not.toHaveProperty('doseGuidelineSupported');
    expect(bare.unproven).toEqual(['doseGuidelineSupported']);
    expect(read([yes, { linkId: 'dose-evidence', answer: [{ valueAttachment: { title: 'empty' } }] }]).answers).not.toHaveProperty('doseGuidelineSupported');
    expect(read([yes, { linkId: 'dose-evidence', answer: [{ valueAttachment: EVIDENCE }] }]).answers.doseGuidelineSupported).toBe(true);
    expect(read([yes, { linkId: 'dose-evidence', answer: [{ valueAttachment: { url: 'https://ehr.example.org/Binary/guideline-1' } }] }]).answers.doseGuidelineSupported).toBe(true);
    const no = read([{ linkId: 'dose-guideline-supported', answer: [{ valueBoolean: false }] }]);
    expect(no.answers.doseGuidelineSupported).toBe(false);
    expect(no.unproven).toEqual([]);
  });

  it('the Questionnaire shows the proving document only when the attestation is answered yes', () => {
    const q = buildQuestionnaire(centene, { canonicalBase: CANONICAL_BASE, valueSets: content.valueSets });
    const items: QuestionnaireItem[] = [];
    const walk = (list: QuestionnaireItem[] | undefined) => (list ?? []).forEach((i) => (items.push(i), walk(i.item)));
    walk(q.item);
    const doc = items.find((i) => i.linkId === 'dose-evidence')!;
    expect(doc).toMatchObject({ type: 'attachment' });
    const gate = doc.extension?.find((e) => e.url.endsWith('sdc-questionnaire-enableWhenExpression'))?.valueExpression?.expression;
    expect(gate).toContain("linkId = 'dose-guideline-supported').answer.valueBoolean = true");
    expect(gate).not.toContain('daily-dose');
  });

  describe('the loader', () => {
    const dirs: string[] = [];
    afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

    /** Loads the content with the Centene policy's text changed by `edit`. */
    function loadWith(edit: (yaml: string) => string) {
      const root = mkdtempSync(join(tmpdir(), 'priorpath-proves-'));
      dirs.push(root);
      cpSync(join(repoRoot, 'cds-services', 'facts'), join(root, 'facts'), { recursive: true });
      const file = join(root, 'policies', 'centene', 'blinatumomab.yaml');
      cpSync(join(repoRoot, 'cds-services', 'policies', 'centene'), join(root, 'policies', 'centene'), { recursive: true });
      writeFileSync(file, edit(readFileSync(file, 'utf8')));
      return () => loadPolicies({ root, valueSets: content.valueSets, canonicalBase: CANONICAL_BASE });
    }

    it('loads the shipped policy', () => {
      expect(loadWith((y) => y)()).toHaveLength(1);
    });

    it('refuses a proving document shown other than exactly when the attestation is true (it is required while shown)', () => {
      const load = loadWith((y) => y.replace('    askWhen: iif(doseGuidelineSupported = true, true, false)\n', '    askWhen: doseGuidelineSupported = true\n'));
      expect(load).toThrow(/dose-evidence proves doseGuidelineSupported: its askWhen must be "iif\(doseGuidelineSupported = true, true, false\)"/);
    });

    it('refuses proves naming a fact that is not an asked boolean', () => {
      const load = loadWith((y) =>
        y.replace('    proves: [doseGuidelineSupported]\n    askWhen: iif(doseGuidelineSupported = true, true, false)\n', '    proves: [mrdPositive]\n    askWhen: iif(mrdPositive = true, true, false)\n'),
      );
      expect(load).toThrow(/dose-evidence proves mrdPositive, which is not an asked boolean fact/);
    });
  });
});
