import type { AnswerProblem } from '../coverage/questionnaire-answers.js';
import { DTR_QR, DTR_QR_ADAPT } from '../fhir/dtr-urls.js';

const STATUSES = new Set(['in-progress', 'completed', 'amended', 'entered-in-error', 'stopped']);
const VALUE_KEYS = [
  'valueBoolean',
  'valueDecimal',
  'valueInteger',
  'valueDate',
  'valueDateTime',
  'valueTime',
  'valueString',
  'valueUri',
  'valueAttachment',
  'valueCoding',
  'valueQuantity',
  'valueReference',
];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Structural checks of a QuestionnaireResponse (FHIR R4): status code, questionnaire canonical, the item tree, one
 * value[x] of the right JSON type per answer, and invariant qrs-1 (nested items go under an answer or beside it,
 * not both). Enough to answer 400 with a path before evaluating; not a profile validator.
 */
export function responseShapeProblems(body: unknown, opts: { requireQuestionnaire?: boolean } = {}): AnswerProblem[] {
  const problems: AnswerProblem[] = [];
  if (!isObject(body) || body.resourceType !== 'QuestionnaireResponse')
    return [{ path: 'QuestionnaireResponse', message: 'expected a QuestionnaireResponse resource' }];
  if (typeof body.status !== 'string' || !STATUSES.has(body.status)) {
    problems.push({
      path: 'QuestionnaireResponse.status',
      message: `status must be one of ${[...STATUSES].join(', ')}`,
    });
  }
  if (body.questionnaire !== undefined && typeof body.questionnaire !== 'string')
    problems.push({ path: 'QuestionnaireResponse.questionnaire', message: 'questionnaire must be a canonical string' });
  if (opts.requireQuestionnaire && typeof body.questionnaire !== 'string')
    problems.push({ path: 'QuestionnaireResponse.questionnaire', message: 'questionnaire is required' });
  if (body.contained !== undefined && !Array.isArray(body.contained))
    problems.push({ path: 'QuestionnaireResponse.contained', message: 'contained must be an array' });
  // A local reference resolves only to a resource contained here (R4 References §contained; dom-3): an adaptive
  // response naming `#id` without that Questionnaire is invalid, not a response to an unknown form (DTR 2.2 spec-147).
  if (typeof body.questionnaire === 'string' && body.questionnaire.startsWith('#')) {
    const id = body.questionnaire.slice(1);
    const contained = Array.isArray(body.contained) ? body.contained : [];
    if (!contained.some((c: unknown) => isObject(c) && c.resourceType === 'Questionnaire' && c.id === id))
      problems.push({
        path: 'QuestionnaireResponse.questionnaire',
        message: `questionnaire ${body.questionnaire} names no contained Questionnaire: send the adaptive Questionnaire (derivedFrom the form's canonical) in contained`,
      });
  }

  const items = (value: unknown, path: string) => {
    if (value === undefined) return;
    if (!Array.isArray(value)) {
      problems.push({ path, message: 'item must be an array' });
      return;
    }
    value.forEach((item: unknown, i) => {
      const here = `${path}[${i}]`;
      if (!isObject(item)) {
        problems.push({ path: here, message: 'an item must be an object' });
        return;
      }
      if (typeof item.linkId !== 'string' || item.linkId === '')
        problems.push({ path: `${here}.linkId`, message: 'linkId is required' });
      if (item.answer !== undefined && !Array.isArray(item.answer))
        problems.push({ path: `${here}.answer`, message: 'answer must be an array' });
      if (Array.isArray(item.answer) && item.answer.length > 0 && Array.isArray(item.item) && item.item.length > 0) {
        problems.push({ path: here, message: 'qrs-1: nested items belong under answer, not beside it' });
      }
      (Array.isArray(item.answer) ? item.answer : []).forEach((a: unknown, j) => {
        const at = `${here}.answer[${j}]`;
        if (!isObject(a)) {
          problems.push({ path: at, message: 'an answer must be an object' });
          return;
        }
        const keys = Object.keys(a).filter((k) => k.startsWith('value'));
        if (keys.length !== 1 || !VALUE_KEYS.includes(keys[0])) {
          problems.push({ path: at, message: 'an answer needs exactly one value[x]' });
          return;
        }
        const v = a[keys[0]];
        const ok =
          keys[0] === 'valueBoolean'
            ? typeof v === 'boolean'
            : keys[0] === 'valueDecimal' || keys[0] === 'valueInteger'
              ? typeof v === 'number' && Number.isFinite(v)
              : ['valueCoding', 'valueQuantity', 'valueReference', 'valueAttachment'].includes(keys[0])
                ? isObject(v)
                : typeof v === 'string';
        if (!ok) problems.push({ path: `${at}.${keys[0]}`, message: `${keys[0]} has the wrong JSON type` });
        items(a.item, `${at}.item`);
      });
      items(item.item, `${here}.item`);
    });
  };
  items(body.item, 'QuestionnaireResponse.item');
  return problems;
}

/**
 * The CRD coverage-information shape a response's determination is answered in: CRD 2.2's (`expiry-date`, `detail`
 * allowed-period: the approved period as data, as order-sign answers a 2.2 request) when the response claims a DTR 2.2
 * QuestionnaireResponse profile (`dtr-questionnaireresponse` or `-adapt`, its version read two-part: DTR 2.2 is the
 * version that lets a response carry coverage-information, and it binds CRD 2.2's extension); otherwise the shape CRD
 * 2.0.1 and 2.2 share, whose reasons say the period in words (design.md §4 "Versions", §7).
 */
export function coverageShapeOf(qr: { meta?: { profile?: string[] } }): '2.0' | '2.2' {
  return /^2\.2(\.|$)/.test(claimedDtrVersion(qr) ?? '') ? '2.2' : '2.0';
}

/**
 * The DTR version a response claims with its QuestionnaireResponse profile (`dtr-questionnaireresponse` or `-adapt`,
 * `|2.2.0`), if it claims one: `$next-question` answers each step claiming the same version, so the client's next step
 * and the completed determination keep the shape it declared (DTR 2.2 `dtr-questionnaireresponse-adapt`).
 */
export function claimedDtrVersion(qr: { meta?: { profile?: string[] } }): string | undefined {
  for (const p of qr.meta?.profile ?? []) {
    const [url, version] = p.split('|');
    if ((url === DTR_QR || url === DTR_QR_ADAPT) && version) return version;
  }
  return undefined;
}
