import type { Extension, OperationOutcome, Resource } from '@medplum/fhirtypes';

/** CRD `ext-coverage-information` (CRD 2.0.1 and 2.2). */
export const COVERAGE_INFO_URL = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';

/** X12 306 Action Code: the review action the payer names an order's decision by (A1 certified, A3 not certified, A4 pended). */
const X12_306 = 'https://codesystem.x12.org/005010/306';

/** What one coverage-information extension says, in the words a clinician reads. */
export interface CoverageSummary {
  /** approved: PA satisfied; needed: PA needed; not-covered; no-auth: covered, no PA; unclear: conditional or indeterminate. */
  tone: 'approved' | 'needed' | 'not-covered' | 'no-auth' | 'unclear';
  headline: string;
  /** The payer's reasons, as sent. */
  reasons: string[];
  docNeeded?: string;
  /**
   * The answer is the order's recorded denial: a reason coded X12 306 A3 (src/coverage/order-record.ts
   * `withOrderRecord`), which a provisional "not covered" of the rules never carries.
   */
  recordedDenial: boolean;
  /**
   * The answer is the order's recorded approval, given before this answer: a reason coded X12 306 A1
   * (src/coverage/order-record.ts `withOrderRecord`), as a recorded denial is coded A3.
   */
  recordedApproval: boolean;
  /**
   * A PAS request for the order goes to a payer reviewer: a reason coded X12 306 A4 (after a reviewer's denial the
   * changed order meets the policy, but only a reviewer decides it: src/coverage/order-record.ts `afterReviewDenial`).
   */
  reviewerDecides: boolean;
  questionnaires: string[];
  assertionId?: string;
  paId?: string;
  /** First day of the approved period: CRD 2.2 `detail` allowed-period (absent from the 2.0.1 shape). */
  start?: string;
  expiry?: string;
  coverage?: string;
}

const sub = (ext: Extension, url: string) => (ext.extension ?? []).filter((e) => e.url === url);
const code = (ext: Extension, url: string) => sub(ext, url)[0]?.valueCode;

/** CRD 2.2 `detail` with code allowed-period (category cat-limitation): the period an authorization is valid for. */
function allowedPeriodOf(ext: Extension): { start?: string; end?: string } | undefined {
  for (const d of sub(ext, 'detail')) {
    const codes = sub(d, 'code')[0]?.valueCodeableConcept?.coding ?? [];
    if (codes.some((c) => c.code === 'allowed-period')) return sub(d, 'value')[0]?.valuePeriod;
  }
  return undefined;
}

/** "2027-05-20" → "20 May 2027" (the reader's locale would vary by machine; this page states dates one way). */
export function formatDate(date: string | undefined): string {
  if (!date) return '';
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(date);
  if (!m) return date;
  const months = [
    'January',
    'February',
    'March',
    'April',
    'May',
    'June',
    'July',
    'August',
    'September',
    'October',
    'November',
    'December',
  ];
  return `${Number(m[3])} ${months[Number(m[2]) - 1]} ${m[1]}`;
}

/** Every coverage-information extension on a resource (an order, or a DTR QuestionnaireResponse). */
export function coverageInformationOf(resource: Resource | undefined): Extension[] {
  return ((resource as { extension?: Extension[] } | undefined)?.extension ?? []).filter(
    (e) => e.url === COVERAGE_INFO_URL,
  );
}

/**
 * The questions and documents a reason says are still to document ("Prior authorization needed. Still to document
 * (clauses): …", src/coverage/determination.ts), without its preamble; undefined for any other reason. The clauses may
 * hold parentheses of their own ("I.A.5 (*Prescribed regimen …)").
 */
export function stillToDocument(reason: string): string | undefined {
  const preamble = 'Prior authorization needed. Still to document (';
  if (!reason.startsWith(preamble)) return undefined;
  let depth = 1;
  for (let i = preamble.length; i < reason.length; i++) {
    if (reason[i] === '(') depth++;
    else if (reason[i] === ')' && --depth === 0) return reason.slice(i + 1).replace(/^: /, '');
  }
  return undefined;
}

/**
 * Whether a `satisfied` answer's number was issued before this signing: a reason coded X12 306 A1 says the order's
 * recorded approval answered (given earlier in DTR, in PAS, by a reviewer: src/coverage/order-record.ts
 * `withOrderRecord`), or the EHR already held the number for this order (`known`: from the order's earlier
 * coverage-information or its PAS request). Read from the code, never the reason's words (design.md §8). CRD carries no
 * "issued now" flag, so the page reads only what the extension and its own record say.
 */
export function approvedEarlier(recordedApproval: boolean, paId: string | undefined, known: string[]): boolean {
  return recordedApproval || (!!paId && known.includes(paId));
}

/**
 * Reads a coverage-information extension into plain words (CRD §Coverage Information: covered, pa-needed, doc-needed,
 * satisfied-pa-id, reason). `when` picks the wording: at order signing, or after the DTR form was sent. An approval is
 * "Approved at signing" only when this signing issued its number (see {@link approvedEarlier}; `known` are the numbers
 * the EHR held for the order before signing); otherwise "Prior authorization approved", as the PAS answer says it.
 */
export function summarizeCoverage(ext: Extension, when: 'signing' | 'documentation', known: string[] = []): CoverageSummary {
  const covered = code(ext, 'covered');
  const pa = code(ext, 'pa-needed');
  const docNeeded = code(ext, 'doc-needed');
  const reasons = sub(ext, 'reason')
    .map(
      (r) =>
        r.valueCodeableConcept?.text ??
        r.valueCodeableConcept?.coding?.[0]?.display ??
        r.valueCodeableConcept?.coding?.[0]?.code,
    )
    .filter((t): t is string => !!t);
  const reasonCoded = (action: string) =>
    sub(ext, 'reason').some((r) => (r.valueCodeableConcept?.coding ?? []).some((c) => c.system === X12_306 && c.code === action));
  const base = {
    reasons,
    recordedApproval: reasonCoded('A1'),
    recordedDenial: reasonCoded('A3'),
    reviewerDecides: reasonCoded('A4'),
    docNeeded,
    questionnaires: sub(ext, 'questionnaire')
      .map((q) => q.valueCanonical)
      .filter((q): q is string => !!q),
    assertionId: sub(ext, 'coverage-assertion-id')[0]?.valueString,
    paId: sub(ext, 'satisfied-pa-id')[0]?.valueString,
    start: allowedPeriodOf(ext)?.start,
    expiry: sub(ext, 'expiry-date')[0]?.valueDate,
    coverage: sub(ext, 'coverage')[0]?.valueReference?.reference,
  };
  if (covered === 'not-covered') {
    return {
      ...base,
      tone: 'not-covered',
      headline: `Not covered: ${reasons.join('; ') || 'the payer does not cover this order'}`,
    };
  }
  if (pa === 'satisfied') {
    const until = base.expiry ? ` valid until ${formatDate(base.expiry)}` : '';
    const headline =
      when === 'signing' && !approvedEarlier(base.recordedApproval, base.paId, known)
        ? `Approved at signing: ${base.paId ?? 'prior authorization on file'}${until}`
        : `Prior authorization approved: ${base.paId ?? 'on file'}${until}`;
    return { ...base, tone: 'approved', headline };
  }
  if (pa === 'auth-needed') {
    if (when === 'documentation') {
      // What is still to document, when the payer says so (the missing answers and documents, in the words PAS pends
      // for): named first, rather than the limit they would lift, which the reasons under the headline give.
      const toDocument = reasons.map(stillToDocument).filter((r): r is string => r !== undefined);
      const still = (toDocument.length > 0 ? toDocument : reasons.map((r) => r.replace(/^Prior authorization needed: documentation (of|for) /, ''))).join('; ');
      return { ...base, tone: 'needed', headline: `Still needed: ${still || 'clinical review of the request'}` };
    }
    return {
      ...base,
      tone: 'needed',
      headline: docNeeded ? 'Prior authorization needed — documentation required' : 'Prior authorization needed',
    };
  }
  if (pa === 'no-auth' && covered === 'covered')
    return { ...base, tone: 'no-auth', headline: 'Covered — no prior authorization needed' };
  return {
    ...base,
    tone: 'unclear',
    headline: 'The payer could not decide automatically — submit the request for review',
  };
}

/**
 * Whether the answer from signing no longer speaks for the order once the PAS request has a final decision: the
 * reviewer's approval (A1) or denial (A3) came after it and the signing answer says something else (documentation
 * still required, pended, or the other decision). The page then shows one answer, the decision, and asks to sign
 * again (the next order-sign answers what the decision recorded, docs/design.md §8).
 */
export function supersededByDecision(s: CoverageSummary | undefined, reviewAction: string | undefined): boolean {
  if (!s) return false;
  if (reviewAction === 'A1') return s.tone !== 'approved';
  if (reviewAction === 'A3') return s.tone !== 'not-covered';
  return false;
}

/** The day the payer gave this answer (the extension's `date`, CRD 1..1). */
export function answeredOn(ext: Extension): string | undefined {
  return sub(ext, 'date')[0]?.valueDate;
}

/**
 * Whether a later answer (a PAS decision, the DTR answer to the documentation) came after the signing answer, given
 * when each was made. A signing known only to the day (the extension's `date`) counts any answer of that day or later
 * as after it; with either moment unknown the later answer is taken as the newer, so a contradicting decision is not
 * hidden behind an answer that may predate it (signing again is always safe and refreshes the answer).
 */
export function answeredAfter(answerAt: string | undefined, signedAt: string | undefined): boolean {
  if (!answerAt || !signedAt) return true;
  if (/^\d{4}-\d{2}-\d{2}$/.test(signedAt)) return answerAt.slice(0, 10) >= signedAt;
  const a = Date.parse(answerAt);
  const b = Date.parse(signedAt);
  return Number.isNaN(a) || Number.isNaN(b) ? true : a > b;
}


/**
 * The decision the order's record holds, as a `$questionnaire-package` outcome says it (src/dtr/questionnaire-package.ts
 * `orderDecisionIssue`): an information issue whose details code it A1 or A3, with the reason. Read by the DTR app
 * and by the demo EHR's chart (review ui s44 L5).
 */
export function orderDecisionOf(outcome: OperationOutcome | undefined): { action: 'A1' | 'A3'; text: string } | undefined {
  for (const issue of outcome?.issue ?? []) {
    const code = issue.details?.coding?.find((c) => c.system === X12_306)?.code;
    if ((code === 'A1' || code === 'A3') && issue.details?.text) return { action: code, text: issue.details.text };
  }
  return undefined;
}

/**
 * The review a PAS request pends the order for, as a `$questionnaire-package` outcome says it
 * (src/dtr/questionnaire-package.ts `pendedIssue`): an information issue whose details code it A4, with what the request
 * waits for and where the clinician's answers go. Not a decision: the form stays open, since documentation that meets
 * the policy still settles the order (docs/design.md §8 "One authorization per order").
 */
export function orderPendedOf(outcome: OperationOutcome | undefined): { action: 'A4'; text: string } | undefined {
  for (const issue of outcome?.issue ?? []) {
    const code = issue.details?.coding?.find((c) => c.system === X12_306)?.code;
    if (code === 'A4' && issue.details?.text) return { action: code, text: issue.details.text };
  }
  return undefined;
}

/**
 * Whether a determination settled the PAS request that pends the order, as the service settles it (pas/settle-pended.ts:
 * a pended request takes its order's decision once the order's record is decided, order-record.ts `isDecided`): an
 * approval (the record approved), or the order's recorded denial, which the answer codes X12 306 A3 on its reason
 * ({@link CoverageSummary.recordedDenial}; the words are for the clinician, not for this test). A "not covered" of the
 * rules and a "no prior authorization needed" are provisional: the record stays pended and the request waits for its
 * reviewer (docs/design.md §8 "One authorization per order"; review ui s46 M2).
 */
export function settlesPendedRequest(summary: CoverageSummary | undefined): boolean {
  return summary?.tone === 'approved' || (summary?.tone === 'not-covered' && summary.recordedDenial);
}
