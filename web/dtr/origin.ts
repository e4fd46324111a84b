import type {
  Extension,
  QuestionnaireResponse,
  QuestionnaireResponseItem,
  QuestionnaireResponseItemAnswer,
} from '@medplum/fhirtypes';

/** DTR `information-origin` (2.0.1 and 2.2 URL): who or what supplied an answer. */
export const INFORMATION_ORIGIN_URL = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin';

/** The answers of a response by linkId, each answer reduced to a comparable key (its value, not its extensions). */
export type AnswerSnapshot = Map<string, string[]>;

/** A comparable form of one answer's value: codings by system and code, numbers as numbers, the rest as JSON. */
export function answerKey(a: QuestionnaireResponseItemAnswer): string {
  const entry = Object.entries(a).find(([k]) => k.startsWith('value'));
  if (!entry) return '';
  const [k, v] = entry;
  if (k === 'valueCoding') {
    const c = v as { system?: string; code?: string; display?: string };
    return `coding:${c.system ?? ''}|${c.code ?? c.display ?? ''}`;
  }
  if (k === 'valueQuantity') return `number:${(v as { value?: number }).value}`;
  if (k === 'valueDecimal' || k === 'valueInteger') return `number:${Number(v)}`;
  if (k === 'valueDateTime' || k === 'valueDate') return `date:${String(v).slice(0, 10)}`;
  return `${k}:${JSON.stringify(v)}`;
}

function walk(items: QuestionnaireResponseItem[] | undefined, visit: (item: QuestionnaireResponseItem) => void): void {
  for (const item of items ?? []) {
    visit(item);
    walk(item.item, visit);
    for (const a of item.answer ?? []) walk(a.item, visit);
  }
}

/** What the form held when the clinician first saw it (after pre-fill). */
export function snapshotAnswers(qr: QuestionnaireResponse | undefined): AnswerSnapshot {
  const out: AnswerSnapshot = new Map();
  walk(qr?.item, (item) => {
    const keys = (item.answer ?? []).map(answerKey).filter(Boolean);
    if (keys.length) out.set(item.linkId, keys);
  });
  return out;
}

export type Origin = 'auto' | 'override' | 'manual';

/** auto: as pre-filled; override: a pre-filled answer the clinician changed; manual: an answer the form did not have. */
export function originOf(linkId: string, answer: QuestionnaireResponseItemAnswer, initial: AnswerSnapshot): Origin {
  const before = initial.get(linkId);
  if (!before) return 'manual';
  return before.includes(answerKey(answer)) ? 'auto' : 'override';
}

/**
 * A copy of the response with `information-origin` on every answer (DTR §QuestionnaireResponse: 1..1 per answer;
 * invariant dtrx-1: an author for override and manual answers, none for auto). Existing origin extensions are
 * replaced. `author` is the clinician completing the form (`fhirUser`), as a reference.
 */
export function stampInformationOrigin(
  qr: QuestionnaireResponse,
  initial: AnswerSnapshot,
  author?: string,
): QuestionnaireResponse {
  const copy = structuredClone(qr);
  walk(copy.item, (item) => {
    for (const a of item.answer ?? []) {
      const origin = originOf(item.linkId, a, initial);
      const ext: Extension = { url: INFORMATION_ORIGIN_URL, extension: [{ url: 'source', valueCode: origin }] };
      if (origin !== 'auto' && author) {
        ext.extension!.push({
          url: 'author',
          extension: [
            {
              url: 'role',
              valueCodeableConcept: {
                coding: [
                  {
                    system: 'http://terminology.hl7.org/CodeSystem/practitioner-role',
                    code: 'doctor',
                    display: 'Doctor',
                  },
                ],
              },
            },
            { url: 'practitioner', valueReference: { reference: author } },
          ],
        });
      }
      a.extension = [...(a.extension ?? []).filter((e) => e.url !== INFORMATION_ORIGIN_URL), ext];
    }
  });
  return copy;
}

/** Counts of answers by origin, for the confirmation the clinician sees. */
export function countOrigins(qr: QuestionnaireResponse): Record<Origin, number> {
  const out: Record<Origin, number> = { auto: 0, override: 0, manual: 0 };
  walk(qr.item, (item) => {
    for (const a of item.answer ?? []) {
      const code = a.extension
        ?.find((e) => e.url === INFORMATION_ORIGIN_URL)
        ?.extension?.find((e) => e.url === 'source')?.valueCode;
      if (code === 'auto' || code === 'override' || code === 'manual') out[code]++;
    }
  });
  return out;
}

/** Drops items without answers (LHC-Forms can emit empty groups) so the response satisfies que-1/qrs-1 shapes. */
export function pruneEmpty(items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem[] | undefined {
  const out: QuestionnaireResponseItem[] = [];
  for (const item of items ?? []) {
    const answer = (item.answer ?? []).filter((a) => Object.keys(a).some((k) => k.startsWith('value')));
    const children = pruneEmpty(item.item);
    if (answer.length === 0 && !children) continue;
    const next: QuestionnaireResponseItem = { ...item };
    if (answer.length) next.answer = answer;
    else delete next.answer;
    if (children) next.item = children;
    else delete next.item;
    out.push(next);
  }
  return out.length ? out : undefined;
}

/** The answered questions of a response as a flat list (groups dissolved), as an adaptive response holds them. */
export function flattenAnswered(items: QuestionnaireResponseItem[] | undefined): QuestionnaireResponseItem[] {
  const out: QuestionnaireResponseItem[] = [];
  walk(items, (item) => {
    if (item.answer?.some((a) => Object.keys(a).some((k) => k.startsWith('value'))))
      out.push({
        linkId: item.linkId,
        ...(item.text ? { text: item.text } : {}),
        answer: item.answer.map(({ item: _i, ...a }) => a),
      });
  });
  return out;
}

/**
 * Answers so far plus this step's: every earlier answer to a question not on this step's form, then the form's own
 * answers (a question on the form that the clinician cleared is dropped).
 */
export function mergeAdaptiveAnswers(
  previous: QuestionnaireResponseItem[] | undefined,
  onForm: string[],
  answered: QuestionnaireResponseItem[] | undefined,
): QuestionnaireResponseItem[] {
  const shown = new Set(onForm);
  return [...flattenAnswered(previous).filter((i) => !shown.has(i.linkId)), ...flattenAnswered(answered)];
}
