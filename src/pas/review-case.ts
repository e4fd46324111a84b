import type {
  Attachment,
  CodeableConcept,
  Coverage,
  HumanName,
  MedicationRequest,
  QuestionnaireResponse,
  QuestionnaireResponseItem,
  QuestionnaireResponseItemAnswer,
  Resource,
} from '@medplum/fhirtypes';
import type { PasRequest } from './request-bundle.js';
import { instantOf } from '../fhir/fhir-instant.js';
import { conditionStatedDate, UNPLACED_ONSET } from '../fhir/fhirpath.js';
import { prescribedDose } from '../fhir/dose.js';
import { longDate, longDateTime } from '../fhir/long-date.js';
import { coverageFirstDay, coverageLastDay } from '../coverage/payer.js';

/** DTR `information-origin` (2.0.1 and 2.2 URL). */
const INFORMATION_ORIGIN = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin';

/** One question and its answer as the clinician sent it, with who supplied the answer. */
export interface ReviewAnswer {
  linkId: string;
  question: string;
  answer: string;
  /** DTR information-origin: auto (from the chart), override (changed by the clinician), manual (entered). */
  origin?: string;
}

/** A document sent with the request: inline (its size) or by URL. */
export interface ReviewAttachment {
  title: string;
  contentType?: string;
  size?: number;
  date?: string;
  url?: string;
  /** Inline content as base64, so the reviewer can open it (PAS carries attachments inline). */
  data?: string;
}

/** One chart fact the request carries, with its date, in plain words. */
export interface ReviewFact {
  kind: 'Condition' | 'Observation' | 'Medication' | 'Immunization' | 'Procedure';
  what: string;
  value?: string;
  status?: string;
  date?: string;
  /**
   * A Condition whose onset is on record in a form that states no date (an age, words, a range): its onset is unknown,
   * and `date` is absent; `recorded` is its `recordedDate`, the latest the onset can be, never shown as the onset
   * (design.md §6 "A Condition's date", as `statedDay()` reads it).
   */
  onsetUnknown?: { recorded?: string };
}

/** What a clinical reviewer reads about a pended request: the patient, the order, the documentation and the chart. */
export interface ReviewCase {
  patient: { name: string; birthDate?: string; gender?: string; memberId?: string };
  payerName?: string;
  /** The member's Coverage period as the request carries it: no approval outlives it (docs/design.md §4 "Payer"). */
  coverage?: { start?: string; end?: string };
  orders: { sequence: number; drug: string; dose?: string; sig?: string; cycles?: number; start?: string }[];
  answers: { questionnaire?: string; authored?: string; items: ReviewAnswer[] }[];
  attachments: ReviewAttachment[];
  facts: ReviewFact[];
}

/** A patient's name for the reviewer: the official name (else the first), its text or "given family". */
export function nameOf(n: HumanName[] | undefined): string {
  const name = n?.find((x) => x.use === 'official') ?? n?.[0];
  if (!name) return 'Unnamed patient';
  if (name.text) return name.text;
  return [...(name.given ?? []), name.family].filter(Boolean).join(' ') || 'Unnamed patient';
}

function conceptText(c: CodeableConcept | undefined): string | undefined {
  return c?.text ?? c?.coding?.find((x) => x.display)?.display ?? c?.coding?.[0]?.code;
}

/** The member id: Coverage.identifier typed MB, else subscriberId (US Core Coverage). */
export function memberIdOf(coverage: Coverage | undefined): string | undefined {
  return (
    coverage?.identifier?.find((i) => i.type?.coding?.some((c) => c.code === 'MB'))?.value ??
    coverage?.subscriberId ??
    coverage?.identifier?.[0]?.value
  );
}

/**
 * A quantity in the words the clinician's screens use (the demo page and DTR say "mcg/day", "mcg/m²/day"): the unit as
 * written, else its UCUM code, with `ug` read as mcg, `/d` as per day and `m2` as m².
 */
function quantityText(q: { value?: number; unit?: string; code?: string } | undefined): string | undefined {
  if (q?.value === undefined) return undefined;
  const unit = (q.unit ?? q.code ?? '')
    .replace(/\bug\b/g, 'mcg')
    .replace(/m2\b/g, 'm²')
    .replace(/\/d\b/g, '/day');
  return `${q.value} ${unit}`.trim();
}

/**
 * The order's drug and every dose step, in the words the order uses (design.md §6 "Limits": the reviewer checks the
 * highest daily dose, so a step-dosed order, 9 mcg/day on days 1-7 then 28 mcg/day on days 8-28, is shown whole):
 * `dose` the steps' doses in order ("9 mcg/day, then 28 mcg/day"), `sig` every step's text.
 */
export function orderSummary(order: MedicationRequest | undefined): {
  drug: string;
  dose?: string;
  sig?: string;
  start?: string;
  cycles?: number;
} {
  const drug = conceptText(order?.medicationCodeableConcept) ?? order?.medicationReference?.display ?? 'Medication';
  const steps = order?.dosageInstruction ?? [];
  const di = steps[0];
  // A step repeating the dose before it (another timing, the same dose) is not another dose.
  const doses = steps.map((d) => quantityText(prescribedDose(d)?.doseQuantity)).filter((d): d is string => !!d).filter((d, i, all) => i === 0 || d !== all[i - 1]);
  const sig = steps.map((d) => d.text).filter((t): t is string => !!t).join('; ');
  const repeats = order?.dispenseRequest?.numberOfRepeatsAllowed;
  return {
    drug,
    ...(doses.length > 0 ? { dose: doses.join(', then ') } : {}),
    ...(sig ? { sig } : {}),
    start: di?.timing?.repeat?.boundsPeriod?.start ?? order?.dispenseRequest?.validityPeriod?.start,
    ...(typeof repeats === 'number' ? { cycles: repeats + 1 } : {}),
  };
}

function answerText(a: QuestionnaireResponseItemAnswer): string {
  if (a.valueBoolean !== undefined) return a.valueBoolean ? 'Yes' : 'No';
  if (a.valueCoding) return a.valueCoding.display ?? a.valueCoding.code ?? '';
  if (a.valueQuantity) return quantityText(a.valueQuantity) ?? '';
  if (a.valueDecimal !== undefined) return String(a.valueDecimal);
  if (a.valueInteger !== undefined) return String(a.valueInteger);
  // Dates as the rest of the case writes them ("18 March 1985"), not as FHIR stores them.
  if (a.valueDate) return longDate(a.valueDate);
  if (a.valueDateTime) return longDateTime(a.valueDateTime);
  if (a.valueString !== undefined) return a.valueString;
  if (a.valueAttachment) return a.valueAttachment.title ?? 'Attachment';
  if (a.valueReference) return a.valueReference.display ?? a.valueReference.reference ?? '';
  return '';
}

function originCode(a: QuestionnaireResponseItemAnswer): string | undefined {
  const code = a.extension
    ?.find((e) => e.url === INFORMATION_ORIGIN)
    ?.extension?.find((e) => e.url === 'source')?.valueCode;
  // DTR 2.2's auto-client / auto-server both mean "from the record".
  return code?.startsWith('auto') ? 'auto' : code;
}

/** A response item's question text from the Questionnaire it answers, for items sent without their text. */
export type QuestionText = (qr: QuestionnaireResponse, linkId: string) => string | undefined;

function answersOf(
  qr: QuestionnaireResponse,
  attachments: ReviewAttachment[],
  questionText: QuestionText,
): ReviewAnswer[] {
  const out: ReviewAnswer[] = [];
  const visit = (items: QuestionnaireResponseItem[] | undefined) => {
    for (const item of items ?? []) {
      const answers = item.answer ?? [];
      const texts = answers.map(answerText).filter((t) => t !== '');
      if (texts.length)
        out.push({
          linkId: item.linkId,
          // The form's words: the item's own text, else the Questionnaire's; the linkId only when neither is known.
          question: item.text ?? questionText(qr, item.linkId) ?? item.linkId,
          answer: texts.join('; '),
          ...(answers[0] && originCode(answers[0]) ? { origin: originCode(answers[0]) } : {}),
        });
      for (const a of answers) {
        if (a.valueAttachment) attachments.push(attachmentOf(a.valueAttachment));
        visit(a.item);
      }
      visit(item.item);
    }
  };
  visit(qr.item);
  return out;
}

/**
 * The largest attachment (decoded) the reviewer receives inline (docs/design.md §8 "The reviewer API"): 2 MiB, a
 * scanned PDF of a few pages; a larger one is listed with its size and without its data.
 */
export const MAX_INLINE_ATTACHMENT_BYTES = 2 * 1_048_576;

/** The decoded size of base64 data (4 characters hold 3 bytes, less the padding). */
function decodedSize(data: string): number {
  const padding = data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0;
  return Math.floor((data.length * 3) / 4) - padding;
}

function attachmentOf(a: Attachment): ReviewAttachment {
  const size = a.data ? decodedSize(a.data) : undefined;
  return {
    title: a.title ?? a.url?.split('/').pop() ?? 'Attachment',
    ...(a.contentType ? { contentType: a.contentType } : {}),
    ...(a.size !== undefined ? { size: Number(a.size) } : size !== undefined ? { size } : {}),
    ...(a.creation ? { date: a.creation } : {}),
    ...(a.url ? { url: a.url } : {}),
    ...(a.data && size! <= MAX_INLINE_ATTACHMENT_BYTES ? { data: a.data } : {}),
  };
}

type Dated = Resource & Record<string, unknown>;

/** The date a chart resource speaks for: when it happened, else when it was recorded. */
function dateOf(r: Dated): string | undefined {
  const pick = (...keys: string[]) => {
    for (const k of keys) {
      const v = r[k];
      if (typeof v === 'string') return v;
      if (v && typeof v === 'object' && typeof (v as { start?: unknown }).start === 'string')
        return (v as { start: string }).start;
    }
    return undefined;
  };
  return pick(
    'effectiveDateTime',
    'effectivePeriod',
    'onsetDateTime',
    'onsetPeriod',
    'occurrenceDateTime',
    'performedDateTime',
    'performedPeriod',
    'issued',
    'authoredOn',
    'recordedDate',
    'recorded',
  );
}

function valueOf(r: Dated): string | undefined {
  if (r.valueQuantity) return quantityText(r.valueQuantity as { value?: number; unit?: string });
  if (r.valueCodeableConcept) return conceptText(r.valueCodeableConcept as CodeableConcept);
  if (typeof r.valueString === 'string') return r.valueString;
  if (typeof r.valueBoolean === 'boolean') return r.valueBoolean ? 'Yes' : 'No';
  if (typeof r.valueInteger === 'number') return String(r.valueInteger);
  return undefined;
}

function factOf(r: Resource, orderRefs: Set<string>): ReviewFact | undefined {
  const d = r as Dated;
  const date = dateOf(d);
  const base = date ? { date } : {};
  if (r.resourceType === 'Condition') {
    // One reading of a Condition's date with the rules (fhirpath.ts statedDay): the onset, else with no onset at all
    // the date it was recorded; an onset as an age or words is not placed by the recorded date.
    const stated = conditionStatedDate(d);
    const recorded = typeof d.recordedDate === 'string' ? d.recordedDate : undefined;
    return {
      kind: 'Condition',
      what: conceptText(r.code) ?? 'Condition',
      status: conceptText(r.clinicalStatus),
      ...(stated === UNPLACED_ONSET
        ? { onsetUnknown: recorded ? { recorded } : {} }
        : typeof stated === 'string'
          ? { date: stated }
          : {}),
    };
  }
  if (r.resourceType === 'Observation')
    return {
      kind: 'Observation',
      what: conceptText(r.code) ?? 'Observation',
      value: valueOf(d),
      status: r.status,
      ...base,
    };
  if (r.resourceType === 'MedicationRequest') {
    if (orderRefs.has(`MedicationRequest/${r.id}`)) return undefined;
    return {
      kind: 'Medication',
      what: conceptText(r.medicationCodeableConcept) ?? r.medicationReference?.display ?? 'Medication',
      status: r.status,
      ...base,
    };
  }
  if (r.resourceType === 'MedicationStatement' || r.resourceType === 'MedicationAdministration')
    return {
      kind: 'Medication',
      what: conceptText(r.medicationCodeableConcept) ?? 'Medication',
      status: r.status,
      ...base,
    };
  if (r.resourceType === 'Immunization')
    return { kind: 'Immunization', what: conceptText(r.vaccineCode) ?? 'Immunization', status: r.status, ...base };
  if (r.resourceType === 'Procedure')
    return { kind: 'Procedure', what: conceptText(r.code) ?? 'Procedure', status: r.status, ...base };
  return undefined;
}

/**
 * Chart facts newest first by the instant each was taken, not by its text (results written with different time-zone
 * offsets: fhir-instant.ts), a Condition of unknown onset by the day it was recorded (the latest its onset can be). Each
 * date is parsed once, not once per comparison; undated facts come last, and facts of
 * the same instant keep the Bundle's order (as byTimeTaken in policies/evaluation-data.ts).
 */
function newestTakenFirst(facts: ReviewFact[]): ReviewFact[] {
  const keyed = facts.map((f, i) => ({ f, i, at: instantOf(f.date ?? f.onsetUnknown?.recorded) ?? -Infinity }));
  keyed.sort((a, b) => (a.at > b.at ? -1 : a.at < b.at ? 1 : a.i - b.i));
  return keyed.map((k) => k.f);
}

/**
 * The reviewer's reading of a PAS request (PAS §"Request": the Claim, its supporting information and the DTR
 * QuestionnaireResponse; X12 278 "additional information"): the patient and member id, each requested order, every
 * answered question with its origin (in the form's words: `questionText` supplies the Questionnaire's text for an
 * item sent without its own), the attachments, and the chart facts the Bundle carries, each with its date, newest
 * first. It holds clinical content: it is served to authenticated reviewers and never logged.
 */
export function reviewCase(req: PasRequest, questionText: QuestionText = () => undefined): ReviewCase {
  const attachments: ReviewAttachment[] = [];
  for (const info of req.claim.supportingInfo ?? [])
    if (info.valueAttachment) attachments.push(attachmentOf(info.valueAttachment));
  for (const r of req.resources)
    if (r.resourceType === 'DocumentReference')
      for (const c of r.content ?? [])
        attachments.push({ ...attachmentOf(c.attachment), ...(r.date ? { date: r.date } : {}) });

  const orderRefs = new Set<string>();
  const orders = req.items.map((it) => {
    const order = it.requestedService?.resourceType === 'MedicationRequest' ? it.requestedService : undefined;
    if (order?.id) orderRefs.add(`MedicationRequest/${order.id}`);
    const s = orderSummary(order);
    return {
      sequence: it.sequence,
      ...s,
      drug: order ? s.drug : (conceptText(it.item.productOrService) ?? s.drug),
      dose: s.dose ?? quantityText(it.item.quantity),
    };
  });
  const seen = new Set<string>();
  const facts = req.resources
    .filter((r) => {
      if (!r.id) return true;
      const key = `${r.resourceType}/${r.id}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .map((r) => factOf(r, orderRefs))
    .filter((f): f is ReviewFact => !!f);
  const newestFirst = newestTakenFirst(facts);
  const payer = req.coverage.payor?.[0];
  const payerOrg = payer?.reference ? req.byReference.get(payer.reference) : undefined;
  const coverageStart = coverageFirstDay(req.coverage);
  const coverageEnd = coverageLastDay(req.coverage);
  return {
    patient: {
      name: nameOf(req.patient.name),
      ...(req.patient.birthDate ? { birthDate: req.patient.birthDate } : {}),
      ...(req.patient.gender ? { gender: req.patient.gender } : {}),
      ...(memberIdOf(req.coverage) ? { memberId: memberIdOf(req.coverage) } : {}),
    },
    // As full dates: the Coverage's last day as the service reads it (a partial end, "2026-12", is its last day), and
    // the start's date part, so the workbench compares dates with dates.
    ...(coverageStart || coverageEnd
      ? { coverage: { ...(coverageStart ? { start: coverageStart } : {}), ...(coverageEnd ? { end: coverageEnd } : {}) } }
      : {}),
    ...((payerOrg as { name?: string } | undefined)?.name || payer?.display
      ? { payerName: (payerOrg as { name?: string } | undefined)?.name ?? payer?.display }
      : {}),
    orders,
    answers: req.questionnaireResponses.map((qr) => ({
      ...(qr.questionnaire ? { questionnaire: qr.questionnaire } : {}),
      ...(qr.authored ? { authored: qr.authored } : {}),
      items: answersOf(qr, attachments, questionText),
    })),
    attachments,
    facts: newestFirst,
  };
}
