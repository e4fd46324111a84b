import type { Library, Questionnaire, QuestionnaireResponse } from '@medplum/fhirtypes';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { adaptiveQuestionnaireUrl } from '../policies/questionnaire-names.js';
import { orderDateItem, orderStartItem } from './questionnaire-builder.js';
import {
  DTR_ADAPT_QUESTIONNAIRE,
  DTR_ADAPT_SEARCH_QUESTIONNAIRE,
  DTR_QR_ADAPT,
  EXT_ADAPTIVE,
  SDC_ADAPT_QUESTIONNAIRE,
} from '../fhir/dtr-urls.js';
import { EXT_CQF_LIBRARY } from './cql-questionnaire.js';
import { EXT_INFORMATION_ORIGIN } from '../fhir/dtr-urls.js';

/** The id of the Questionnaire a draft adaptive response contains (the one `$next-question` grows). */
export const CONTAINED_ADAPTIVE_ID = 'adaptive';

const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * The narrative of the Questionnaire an adaptive response contains: DTR 2.0.1 `dtr-questionnaire-adapt` makes `text`
 * 1..1 (https://hl7.org/fhir/us/davinci-dtr/STU2/StructureDefinition-dtr-questionnaire-adapt.html), and the HL7
 * validator checks a contained resource against the profiles it claims.
 */
export function adaptiveNarrative(title: string | undefined, asked: number): Questionnaire['text'] {
  const what = asked === 0 ? 'No question asked yet' : `${asked} question${asked === 1 ? '' : 's'} asked so far`;
  return {
    status: 'generated',
    div: `<div xmlns="http://www.w3.org/1999/xhtml">${title ? `<p><b>${escapeHtml(title)}</b></p>` : ''}<p>Adaptive form, grown by $next-question: ${what}.</p></div>`,
  };
}

/**
 * The adaptive form as a DTR 2.2 package carries it: without `cqf-library`. A 2.2 client is served FHIRPath throughout
 * (DTR 2.2 spec-61: expressions that are valid FHIRPath are identified as FHIRPath), so the form names no Library and
 * its package holds none; the 2.0.1 package keeps both, and its draft's contained form naming the Library is what
 * makes `$next-question` answer in CQL (next-question.ts).
 */
export function withoutLibrary(adaptive: Questionnaire): Questionnaire {
  return { ...adaptive, extension: (adaptive.extension ?? []).filter((e) => e.url !== EXT_CQF_LIBRARY) };
}

/**
 * A policy's empty adaptive form (DTR `dtr-questionnaire-adapt-search`,
 * https://hl7.org/fhir/us/davinci-dtr/StructureDefinition-dtr-questionnaire-adapt-search.html): no items (DTR 2.2:
 * item 0..0), `questionnaireAdaptive` naming the FHIR base that answers `$next-question` (a url, as on the forms
 * `$next-question` returns), `cqf-library` naming the policy's Library when it has one (the CQL the questions'
 * pre-population reads), `derivedFrom` the standard form. Same version as the standard form: both follow the policy.
 */
export function adaptiveQuestionnaire(
  standard: Questionnaire,
  policy: CompiledPolicy,
  opts: { canonicalBase: string; fhirBase?: string; library?: Library },
): Questionnaire {
  const title = standard.title ?? policy.file.id;
  return {
    resourceType: 'Questionnaire',
    id: `${policy.file.id}-adaptive`,
    meta: { profile: [DTR_ADAPT_SEARCH_QUESTIONNAIRE] },
    text: {
      status: 'generated',
      div: `<div xmlns="http://www.w3.org/1999/xhtml"><p><b>${escapeHtml(title)}</b></p><p>Adaptive form: its questions are asked through $next-question, only those still needed.</p></div>`,
    },
    extension: [
      // Without a served base (a catalog built outside the HTTP server) `true`: SDC and DTR 2.0.1 allow either.
      opts.fhirBase ? { url: EXT_ADAPTIVE, valueUrl: opts.fhirBase } : { url: EXT_ADAPTIVE, valueBoolean: true },
      ...(opts.library?.url ? [{ url: EXT_CQF_LIBRARY, valueCanonical: opts.library.url }] : []),
    ],
    url: adaptiveQuestionnaireUrl(opts.canonicalBase, policy.file.id),
    ...(standard.version ? { version: standard.version } : {}),
    ...(standard.name ? { name: `${standard.name}Adaptive` } : {}),
    title,
    derivedFrom: [standard.version ? `${standard.url}|${standard.version}` : standard.url!],
    status: standard.status,
    subjectType: ['Patient'],
    ...(standard.publisher ? { publisher: standard.publisher } : {}),
  };
}

/**
 * The draft response of an adaptive package: the package's response (its qr-context, qr-coverage, intendedUse,
 * subject) reshaped as the first `$next-question` input (SDC adaptive: `questionnaire` `#id` of a contained copy of the
 * form, `derivedFrom` its canonical; DTR `dtr-questionnaireresponse-adapt`), with no questions yet: only the hidden
 * order-date item the payer filled, so `$next-question` judges the order on the date CRD did (design.md §8). The copy keeps the form's extensions as the package carries it (with `cqf-library` in 2.0.1, without in 2.2),
 * which decides the expression language of the questions `$next-question` adds. A client can post it as it is.
 */
export function adaptiveDraftResponse(
  draft: QuestionnaireResponse,
  adaptive: Questionnaire,
  orderDate?: string,
  dtrVersion: '2.0.1' | '2.2' = '2.2',
  /** The start the order states: the hidden order-start item the questions' recency windows end on (design.md §6). */
  orderStart?: string,
): QuestionnaireResponse {
  const canonical = adaptive.version ? `${adaptive.url}|${adaptive.version}` : adaptive.url!;
  const contained: Questionnaire = {
    resourceType: 'Questionnaire',
    id: CONTAINED_ADAPTIVE_ID,
    meta: { profile: [DTR_ADAPT_QUESTIONNAIRE, SDC_ADAPT_QUESTIONNAIRE] },
    text: adaptiveNarrative(adaptive.title, 0),
    extension: adaptive.extension,
    url: adaptive.url,
    ...(adaptive.version ? { version: adaptive.version } : {}),
    title: adaptive.title,
    derivedFrom: [canonical],
    status: adaptive.status,
    subjectType: ['Patient'],
  };
  const { item: _items, ...rest } = draft;
  // The payer filled the order date (and the start the order states): like every answer of
  // dtr-questionnaireresponse-adapt each carries its information-origin (auto in 2.0.1, auto-server in 2.2; design.md §7).
  const filled = (date: string) => [{ valueDate: date, extension: [{ url: EXT_INFORMATION_ORIGIN, extension: [{ url: 'source', valueCode: dtrVersion === '2.2' ? 'auto-server' : 'auto' }] }] }];
  const hidden = [
    ...(orderDate ? [{ question: orderDateItem(), answer: filled(orderDate) }] : []),
    ...(orderDate && orderStart ? [{ question: orderStartItem(), answer: filled(orderStart) }] : []),
  ];
  if (hidden.length > 0) contained.item = hidden.map((h) => h.question);
  return {
    ...rest,
    ...(hidden.length > 0 ? { item: hidden.map((h) => ({ linkId: h.question.linkId, text: h.question.text, answer: h.answer })) } : {}),
    meta: { profile: [DTR_QR_ADAPT] },
    contained: [contained],
    questionnaire: `#${CONTAINED_ADAPTIVE_ID}`,
  };
}
