import type { Extension } from '@medplum/fhirtypes';
import { X12_306_REVIEW_ACTION } from '../fhir/dtr-urls.js';
import type { CoveredCode, Determination, PaNeededCode } from './determination.js';

/** http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information (CRD 2.0.1 and 2.2.1). */
export const COVERAGE_INFO_URL = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';
/** Reason codes (CRD coverageAssertionReasons, temp code system). */
export const CRD_TEMP_SYSTEM = 'http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp';
/**
 * The reason codes CRD 2.0.1's temp code system defines (2.2 adds no-member-found, no-active-coverage,
 * coverage-not-found, auth-out-network, technical). A 2.0.1 validator refuses any other code in that system.
 */
const REASON_CODES_2_0_1 = new Set(['gold-card', 'detail-code']);

/** What one coverage-information repetition asserts, before it is shaped for a CRD version. */
export interface CoverageAssertion {
  coverageRef: string;
  assertionId: string;
  date: string;
  covered: CoveredCode;
  paNeeded?: PaNeededCode;
  docNeeded?: 'clinical';
  docPurpose?: 'withpa';
  infoNeeded?: 'OTH';
  questionnaire?: string;
  reasons: Determination['reasons'];
  satisfiedPaId?: string;
  expiryDate?: string;
  /** First day of the approved period (with `expiryDate`, the 2.2 `detail` allowed-period). */
  authorizationStart?: string;
  /** The payer policy document this assertion applies (the 2.2 `detail` policy-link). */
  policyUrl?: string;
  billingCodes?: { system: string; code: string; display?: string }[];
}

/** X12 306 review action displays, as PAS answers them (PAS 2.2.1 X12 306 value set). */
const REVIEW_ACTION_DISPLAY = { A1: 'Certified in total', A3: 'Not Certified', A4: 'Pended' } as const;

/** CRD 2.2 coverage detail codes (HL7 terminology crd-coverage-detail; `detail.code`). */
export const CRD_COVERAGE_DETAIL_SYSTEM = 'http://terminology.hl7.org/CodeSystem/crd-coverage-detail';

/**
 * The assertion a determination makes about one order and coverage (design.md §5 table). `askForDocumentation` is
 * false where documentation must not be requested (CRD [hook-19]: order-select): the codes stay, doc-needed goes.
 */
export function assertionFor(
  d: Determination,
  opts: { coverageRef: string; assertionId: string; date: string; billingCodes?: CoverageAssertion['billingCodes']; askForDocumentation?: boolean; policyUrl?: string },
): CoverageAssertion {
  const asks = (opts.askForDocumentation ?? true) && !!d.questionnaire;
  return {
    coverageRef: opts.coverageRef,
    assertionId: opts.assertionId,
    date: opts.date,
    billingCodes: opts.billingCodes ?? [],
    covered: d.covered,
    ...(d.paNeeded ? { paNeeded: d.paNeeded } : {}),
    ...(asks ? { docNeeded: 'clinical' as const, docPurpose: 'withpa' as const, questionnaire: d.questionnaire } : {}),
    reasons: d.reasons,
    ...(d.paNeeded === 'satisfied' ? { satisfiedPaId: d.authorization?.number, expiryDate: d.authorization?.end, authorizationStart: d.authorization?.start } : {}),
    ...(opts.policyUrl ? { policyUrl: opts.policyUrl } : {}),
  };
}

/**
 * The CRD versions whose coverage-information shape this module builds, two-part as CRD declares them (CRD 2.2
 * deviations.md "CRD Version declaration" [dev-1, dev-2]; the patch part never changes interoperability). A service may
 * declare only these in discovery (content.ts checks it at start-up). 2.1 (STU 2.1.0) is answered in the default shape,
 * what 2.0.1 and 2.2 share, which every 2.x client reads (design.md §4 "Versions"; contract review F4): only 2.2 gets
 * the full 2.2 form.
 * @see https://hl7.org/fhir/us/davinci-crd/STU2.2/deviations.html#crd-version-declaration
 */
export const CRD_VERSIONS = ['2.0', '2.1', '2.2'] as const;
export type CrdVersion = (typeof CRD_VERSIONS)[number];

/**
 * Builds the extension. Default: only what CRD 2.0.1 and 2.2 share (design.md §4 "Versions"): no indeterminate, no
 * expiry-date. With `version === '2.2'` the full 2.2 form: expiry-date, and indeterminate stays indeterminate.
 * The caller decides the codes; this function shapes them and enforces crd-ci-q1…q9.
 */
export function buildCoverageInformation(a: CoverageAssertion, version: CrdVersion): Extension {
  let { covered, paNeeded, infoNeeded } = a;
  const reasons = [...a.reasons];
  if (version !== '2.2') {
    // 2.0.1 has no indeterminate: an internal failure is "conditional" with info-needed OTH and a reason.
    if (covered === 'indeterminate') covered = 'conditional';
    if (paNeeded === 'indeterminate') paNeeded = 'conditional';
  }
  const anyConditional = covered === 'conditional' || paNeeded === 'conditional';
  if (anyConditional && !infoNeeded) infoNeeded = 'OTH';
  if (covered === 'not-covered') paNeeded = undefined;

  const ext: Extension[] = [{ url: 'coverage', valueReference: { reference: a.coverageRef } }, { url: 'covered', valueCode: covered }];
  if (paNeeded) ext.push({ url: 'pa-needed', valueCode: paNeeded });
  const docNeeded = covered === 'not-covered' || paNeeded === 'satisfied' ? undefined : a.docNeeded;
  if (docNeeded) ext.push({ url: 'doc-needed', valueCode: docNeeded });
  if (docNeeded && a.docPurpose) ext.push({ url: 'doc-purpose', valueCode: a.docPurpose });
  if (infoNeeded) ext.push({ url: 'info-needed', valueCode: infoNeeded });
  for (const b of a.billingCodes ?? []) ext.push({ url: 'billingCode', valueCoding: b });
  for (const r of reasons) {
    // The shared form codes a reason only with a code CRD 2.0.1 defines; the text says the same (e.g. `technical`).
    const coded = r.code && (version === '2.2' || REASON_CODES_2_0_1.has(r.code));
    const coding = [
      ...(coded ? [{ system: CRD_TEMP_SYSTEM, code: r.code! }] : []),
      // What a PAS request for the order gets, coded as PAS answers it (X12 306: A1 the order's recorded approval, given
      // before this answer; A3 its recorded denial; A4 a reviewer decides it): the reason binding is extensible and the
      // coding comes with its text (crd-ci-q7), in every version's shape (design.md §8 "One authorization per order").
      // A client reads the decision from the code, never from the words.
      ...(r.reviewAction ? [{ system: X12_306_REVIEW_ACTION, code: r.reviewAction, display: REVIEW_ACTION_DISPLAY[r.reviewAction] }] : []),
    ];
    ext.push({ url: 'reason', valueCodeableConcept: coding.length ? { coding, text: r.text } : { text: r.text } });
  }
  if (docNeeded && a.questionnaire) ext.push({ url: 'questionnaire', valueCanonical: a.questionnaire });
  ext.push({ url: 'date', valueDate: a.date });
  ext.push({ url: 'coverage-assertion-id', valueString: a.assertionId });
  if (paNeeded === 'satisfied' && a.satisfiedPaId) ext.push({ url: 'satisfied-pa-id', valueString: a.satisfiedPaId });
  if (version === '2.2') {
    if (a.expiryDate) ext.push({ url: 'expiry-date', valueDate: a.expiryDate });
    // 2.2 `detail` (category, code, value): the approved period as a limitation, and the policy applied.
    if (paNeeded === 'satisfied' && a.authorizationStart && a.expiryDate) ext.push(detail('cat-limitation', 'allowed-period', { valuePeriod: { start: a.authorizationStart, end: a.expiryDate } }));
    if (a.policyUrl) ext.push(detail('cat-other', 'policy-link', { valueUrl: a.policyUrl }));
  }
  return { url: COVERAGE_INFO_URL, extension: ext };
}

function detail(category: 'cat-limitation' | 'cat-decisional' | 'cat-other', code: string, value: Omit<Extension, 'url'>): Extension {
  return {
    url: 'detail',
    extension: [
      { url: 'category', valueCode: category },
      { url: 'code', valueCodeableConcept: { coding: [{ system: CRD_COVERAGE_DETAIL_SYSTEM, code }] } },
      { url: 'value', ...value },
    ],
  };
}

/**
 * Checks invariants crd-ci-q1…q9 (CRD 2.2.1 ext-coverage-information) and the 2.0.1∩2.2 rules of design.md §4.
 * Returns the broken rules; empty when the extension is valid. Used by the builder's tests and by every HTTP test.
 */
export function coverageInformationProblems(ext: Extension, version: '2.0' | '2.2' = '2.0'): string[] {
  const subs = ext.extension ?? [];
  const all = (url: string) => subs.filter((s) => s.url === url);
  const code = (url: string) => all(url).map((s) => s.valueCode);
  const problems: string[] = [];
  const covered = code('covered');
  const pa = code('pa-needed');
  const doc = code('doc-needed');
  const purpose = code('doc-purpose');
  const info = code('info-needed');
  const reason = all('reason');
  if (ext.url !== COVERAGE_INFO_URL) problems.push('url');
  if (all('coverage').length !== 1) problems.push('coverage 1..1');
  if (covered.length !== 1) problems.push('covered 1..1');
  if (all('date').length !== 1) problems.push('date 1..1');
  if (all('coverage-assertion-id').length !== 1) problems.push('coverage-assertion-id 1..1');
  if (pa.length > 1) problems.push('pa-needed 0..1');
  if (all('questionnaire').length > 0 && doc.length === 0) problems.push('crd-ci-q1');
  if (covered[0] === 'not-covered' && pa.length > 0) problems.push('crd-ci-q2');
  if ([...covered, ...pa, ...doc].includes('conditional') && info.length === 0) problems.push('crd-ci-q3');
  if (['satisfied', 'no-auth', 'not-covered'].includes(pa[0] ?? '') && purpose.includes('withpa')) problems.push('crd-ci-q4');
  if ((all('satisfied-pa-id').length > 0) !== (pa[0] === 'satisfied')) problems.push('crd-ci-q5');
  if (info.includes('OTH') && reason.length === 0) problems.push('crd-ci-q6');
  for (const r of reason) {
    const cc = r.valueCodeableConcept;
    if (cc?.coding?.some((c) => c.system !== CRD_TEMP_SYSTEM) && !cc.text) problems.push('crd-ci-q7');
  }
  if (purpose.some((p) => p !== 'conditional') && reason.length === 0) problems.push('crd-ci-q8');
  if ([...covered, ...pa, ...doc].includes('indeterminate') && reason.length === 0) problems.push('crd-ci-q9');
  if (version === '2.0') {
    if ([...covered, ...pa, ...doc].includes('indeterminate')) problems.push('2.0.1: no indeterminate');
    for (const u of ['expiry-date', 'detail', 'contact', 'patient']) if (all(u).length > 0) problems.push(`2.0.1: no ${u}`);
    if (covered[0] !== 'not-covered' && pa.length === 0) problems.push('pa-needed present unless not-covered');
    if (doc.length > 1) problems.push('2.0.1: doc-needed 0..1');
    for (const r of reason) for (const c of r.valueCodeableConcept?.coding ?? []) if (c.system === CRD_TEMP_SYSTEM && !REASON_CODES_2_0_1.has(c.code ?? '')) problems.push(`2.0.1: no reason code ${c.code}`);
  }
  if ((info.length > 0) !== [...covered, ...pa, ...doc].includes('conditional') && version === '2.0') problems.push('info-needed iff conditional');
  for (const d of all('detail')) {
    const parts = (u: string) => (d.extension ?? []).filter((x) => x.url === u);
    const category = parts('category');
    const value = parts('value');
    if (category.length !== 1 || !['cat-limitation', 'cat-decisional', 'cat-other'].includes(category[0].valueCode ?? '')) problems.push('detail.category 1..1');
    if (parts('code').length !== 1 || !parts('code')[0].valueCodeableConcept?.coding?.length) problems.push('detail.code 1..1');
    if (value.length !== 1 || Object.keys(value[0]).filter((k) => k.startsWith('value')).length !== 1) problems.push('detail.value 1..1');
  }
  return problems;
}
