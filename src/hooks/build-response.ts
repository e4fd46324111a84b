import type { Extension, MedicationRequest } from '@medplum/fhirtypes';
import type { Content, Payer } from '../content.js';
import { assertionFor, buildCoverageInformation, COVERAGE_INFO_URL } from '../coverage/coverage-information.js';
import type { OrderDecision } from '../coverage/decide-orders.js';
import { determinationFor } from '../coverage/decide-orders.js';
import type { OrderResource } from '../coverage/order.js';
import { isOrder } from '../coverage/order.js';
import type { Proposal } from '../policies/evaluate-policy.js';
import type { Card } from './cards.js';
import { dtrLaunchCard, externalReferenceCard, instructionsCard, proposeAlternateCard, summaryNaming } from './cards.js';
import type { HookRequest } from './hook-request.js';
import { localReference } from '../fhir/references.js';

/** CDS Hooks response body (CDS Hooks 2.0 §CDS Service Response). */
export interface HookResponse {
  cards: Card[];
  systemActions?: { type: 'update'; description: string; resource: OrderResource }[];
}

/** Configuration the request asked for, with the defaults discovery advertises ([dev-14], [dev-15], [dev-17]). */
export interface EffectiveConfiguration {
  coverageInfo: boolean;
  /**
   * `unsolicited-determ` (a kind of coverage-info): whether an order the rules approve may get an authorization number
   * without a prior-authorization request. A "what if" call sends false (CRD [found-35]); so does coverage-info false.
   */
  unsolicitedDeterminations: boolean;
  guideline: boolean;
  alternatives: boolean;
  dtrCard: boolean;
  /** `dtr-launch-query`: the DTR card's appContext in the reference implementations' query form (implies the card). */
  dtrCardForm: 'json' | 'query';
  maxCards: number;
}

/**
 * The request's `extension["davinci-crd.configuration"]` with the default of every option the service declares in
 * discovery (CRD 2.2 §Configuration options; design.md §4): unknown or mistyped values fall back to the default.
 */
export function effectiveConfiguration(c: Record<string, unknown>): EffectiveConfiguration {
  const bool = (k: string, d: boolean) => (typeof c[k] === 'boolean' ? (c[k] as boolean) : d);
  const max = c['max-cards'];
  return {
    coverageInfo: bool('coverage-info', true),
    unsolicitedDeterminations: bool('coverage-info', true) && bool('unsolicited-determ', true),
    guideline: bool('guideline', true),
    alternatives: bool('therapy-alternatives-req', true),
    dtrCard: bool('dtr-clin', false) || bool('dtr-launch-query', false),
    dtrCardForm: bool('dtr-launch-query', false) ? 'query' : 'json',
    maxCards: typeof max === 'number' && Number.isInteger(max) && max >= 0 ? max : 10,
  };
}

/**
 * The order as received plus the new coverage-information [resp-37]: it replaces the order's earlier
 * coverage-information about the same Coverage, and keeps what another Coverage's payer asserted (an order insured by
 * two payers carries one repetition per Coverage, CRD [resp-32]).
 */
function withCoverageInfo(order: OrderResource, ext: ReturnType<typeof buildCoverageInformation>): OrderResource {
  const coverageOf = (e: Extension) => {
    const ref = e.extension?.find((s) => s.url === 'coverage')?.valueReference?.reference;
    return localReference(ref) ?? ref;
  };
  const ours = coverageOf(ext);
  const sameCoverage = (e: Extension) => e.url === COVERAGE_INFO_URL && (coverageOf(e) === undefined || coverageOf(e) === ours);
  return { ...order, extension: [...(order.extension ?? []).filter((e) => !sameCoverage(e)), ext] };
}

function doseLabel(value: number, unit: string, display?: string): string {
  const v = Math.round(value * 10) / 10;
  return `${v} ${display ?? unit}`;
}

/** What the answer reads of the hook request (nothing of its prefetch or record: see handleHook's two steps). */
export type RespondedRequest = Pick<HookRequest, 'hook' | 'configuration' | 'requestedVersion' | 'draftResources' | 'dispatchedRefs'>;

/**
 * Shapes decisions into the CDS Hooks response: one systemAction update per governed order with the extension
 * (never a card for coverage information, [resp-25]), and the accompanying cards of design.md §4.
 */
export function buildHookResponse(opts: {
  req: RespondedRequest;
  content: Content;
  payer: Payer;
  coverageRef?: string;
  decisions: OrderDecision[];
  today: string;
  publicBaseUrl: string;
  /**
   * The DTR SMART app's launch page, when this process serves it (the sandbox's web apps); undefined otherwise, and
   * then no DTR launch card is built: a link to a page that is not served is no launch (contract review F9). Without
   * it the EHR still has the coverage-information's `questionnaire` canonical and the payer's $questionnaire-package.
   */
  dtrLaunchUrl?: string;
}): HookResponse {
  const { req, payer, decisions, today } = opts;
  const cfg = effectiveConfiguration(req.configuration);
  const version = req.requestedVersion ?? '2.0';
  const cards: Card[] = [];
  // One External Reference card per policy: orders under the same policy share it (it names each of them).
  const policyCards = new Map<string, Card>();
  const systemActions: NonNullable<HookResponse['systemActions']> = [];

  for (const d of decisions) {
    const orderRef = `${d.order.resourceType}/${d.order.id ?? 'unknown'}`;
    const drug = orderLabel(d.order);
    const determination = determinationFor(d, today);
    if (opts.coverageRef && cfg.coverageInfo) {
      const assertion = assertionFor(determination, {
        coverageRef: opts.coverageRef,
        assertionId: d.assertionId,
        date: today,
        billingCodes: d.policy?.file.billingCodes,
        // CRD [hook-19]: order-select may carry coverage information but must not ask for documentation.
        askForDocumentation: req.hook !== 'order-select',
        ...(d.policy ? { policyUrl: `${opts.publicBaseUrl}/policies/${d.policy.file.id}` } : {}),
      });
      const ext = buildCoverageInformation(assertion, version);
      systemActions.push({
        type: 'update',
        description: `${payer.label}: coverage information for ${drug} (${determination.summary})`,
        resource: withCoverageInfo(d.order, ext),
      });
    }
    if (!d.policy || !d.evaluation) continue;
    const ev = d.evaluation;
    const policy = d.policy.file;
    if (cfg.coverageInfo) {
      if (determination.outcome === 'documentation-needed') {
        const lines = determination.needed.map((q) => `- ${q}`);
        // CRD [hook-19]: order-select informs and does not ask for documentation; signing offers the questionnaire.
        const selecting = req.hook === 'order-select';
        cards.push(
          instructionsCard(
            payer.label,
            summaryNaming((n) => (selecting ? `Prior authorization needed for ${n}: the record does not yet show all the policy needs` : `Prior authorization needed for ${n}: documentation required`), drug),
            `${policy.source.id} needs information that the record does not show yet:\n\n${lines.join('\n')}\n\n${selecting ? "When the order is signed, the payer's questionnaire (DTR) is offered with the answers already in the chart pre-filled." : "Complete the payer's questionnaire (DTR) with the prior authorization request; answers already in the chart are pre-filled."}${determination.reasons
              .slice(1)
              .map((r) => `\n\n${r.text}`)
              .join('')}`,
            'info',
            orderRef,
          ),
        );
      } else if (determination.outcome === 'limit-exceeded') {
        cards.push(
          instructionsCard(
            payer.label,
            summaryNaming((n) => `Prior authorization needed for ${n}: the order exceeds the policy limit`, drug),
            `${ev.failed.map((r) => `- ${r.text} (${r.cite})`).join('\n')}\n\n${d.policy.limits.find((l) => ev.failed.some((f) => f.id === l.id) && l.justification)?.justification ? `The payer accepts: ${d.policy.limits.find((l) => ev.failed.some((f) => f.id === l.id) && l.justification)!.justification}.` : ''}${determination.reasons
              .slice(1)
              .map((r) => `\n\n${r.text}`)
              .join('')}`.trim(),
            // design.md §4 (the shared contract): cards are info, warning only for not covered. An order over a limit is
            // covered (a limit review, with the Propose Alternate Request card), so it is info.
            'info',
            orderRef,
          ),
        );
      } else if (determination.outcome === 'not-covered') {
        const summary = summaryNaming((n) => (d.record?.state === 'denied' ? `Prior authorization for ${n} was denied` : `${n} is not covered under ${policy.source.id} for this patient`), drug);
        cards.push(instructionsCard(payer.label, summary, determination.reasons[0].text, 'warning', orderRef));
      }
    }
    if (cfg.alternatives && req.hook !== 'order-dispatch' && determination.outcome === 'limit-exceeded') {
      const alternate = alternateOrder(d.order as MedicationRequest, ev.proposals);
      if (alternate) {
        const detail = `${ev.failed.map((r) => `${r.text} (${r.cite})`).join('; ')}.`;
        // Only an order the rules would approve as changed is "covered without review"; with evidence still missing
        // the changed order needs the same documentation, and the card must not promise otherwise.
        const promise = ev.alternateApproved ? 'is covered without review' : 'is within it (documentation still needed)';
        cards.push(proposeAlternateCard(payer.label, summaryNaming((n) => `${n} ${alternate.exceeds} above ${policy.source.id} limit: ${alternate.within} ${promise}`, drug), detail, alternate.label, alternate.order, orderRef));
      }
    }
    const shared = cfg.guideline ? policyCards.get(policy.id) : undefined;
    if (shared) {
      (shared.extension!['davinci-crd.associated-resource'] as string[]).push(orderRef);
    } else if (cfg.guideline) {
      const links = [{ label: `${policy.source.id}: ${policy.title}`, url: `${opts.publicBaseUrl}/policies/${policy.id}` }];
      if (policy.source.url) links.push({ label: `${policy.source.title} (payer site)`, url: policy.source.url });
      const criteria = d.policy.pathways.map((p) => `- ${p.text} (${p.cite})`).slice(0, 12).join('\n');
      const reference = externalReferenceCard(payer.label, summaryNaming((n) => `${payer.label} coverage policy for ${n}: ${policy.source.id}`, drug), `Covered uses under ${policy.source.id}:\n\n${criteria}`, links, orderRef);
      policyCards.set(policy.id, reference);
      cards.push(reference);
    }
    if (opts.dtrLaunchUrl && cfg.coverageInfo && cfg.dtrCard && req.hook !== 'order-select' && (determination.outcome === 'documentation-needed' || determination.outcome === 'limit-exceeded')) {
      cards.push(
        dtrLaunchCard(
          payer.label,
          opts.dtrLaunchUrl,
          { questionnaire: [d.policy.questionnaire], order: orderRef, coverage: opts.coverageRef, coverageAssertionId: d.assertionId },
          orderRef,
          cfg.dtrCardForm,
        ),
      );
    }
  }
  nameAssociatedOrders(cards, req, decisions);
  const order: Record<Card['indicator'], number> = { critical: 0, warning: 1, info: 2 };
  cards.sort((a, b) => order[a.indicator] - order[b.indicator]);
  const response: HookResponse = { cards: cards.slice(0, cfg.maxCards) };
  if (systemActions.length > 0) response.systemActions = systemActions;
  return response;
}

/**
 * CRD [dev-24]: when the hook carries several orders, a card about only some of them says which in its `detail`, in
 * words a clinician tells apart (drug and dose; the order's reference only where two orders read the same). The
 * `davinci-crd.associated-resource` extension says it to the machine ([dev-25]).
 */
function nameAssociatedOrders(cards: Card[], req: Pick<HookRequest, 'hook' | 'draftResources' | 'dispatchedRefs'>, decisions: OrderDecision[]): void {
  const refOf = (o: OrderResource) => `${o.resourceType}/${o.id ?? 'unknown'}`;
  const context = new Map<string, OrderResource>();
  for (const o of req.draftResources.filter(isOrder)) context.set(refOf(o), o);
  for (const d of decisions) context.set(refOf(d.order), d.order);
  const contextCount = req.hook === 'order-dispatch' ? Math.max(req.dispatchedRefs.length, context.size) : context.size;
  if (contextCount < 2) return;
  const described = new Map([...context].map(([ref, o]) => [ref, orderDescription(o)]));
  const counts = new Map<string, number>();
  for (const text of described.values()) counts.set(text, (counts.get(text) ?? 0) + 1);
  const name = (ref: string) => {
    const text = described.get(ref) ?? ref;
    return (counts.get(text) ?? 0) > 1 ? `${text} (${ref})` : text;
  };
  for (const card of cards) {
    const refs = (card.extension?.['davinci-crd.associated-resource'] as string[] | undefined) ?? [];
    if (refs.length === 0 || refs.length >= contextCount) continue;
    const line = `${refs.length === 1 ? 'Applies to the order' : 'Applies to the orders'}: ${refs.map(name).join('; ')}.`;
    card.detail = card.detail ? `${card.detail}\n\n${line}` : line;
  }
}

/** An order as a clinician tells it from the others: what is ordered and, for a drug, its first dose. */
function orderDescription(order: OrderResource): string {
  const label = orderLabel(order);
  if (order.resourceType !== 'MedicationRequest') return label;
  const instruction = order.dosageInstruction?.find((i) => i.doseAndRate?.[0]?.doseQuantity?.value !== undefined) ?? order.dosageInstruction?.[0];
  const q = instruction?.doseAndRate?.[0]?.doseQuantity;
  const dose = q?.value !== undefined ? `${q.value} ${q.unit ?? q.code ?? ''}`.trim() : instruction?.text;
  return dose ? `${label}, ${dose}` : label;
}

/** How a clinician names the ordered item: the drug text, the code display, else the resource type. */
function orderLabel(order: OrderResource): string {
  const concept =
    order.resourceType === 'MedicationRequest'
      ? order.medicationCodeableConcept
      : order.resourceType === 'DeviceRequest'
        ? order.codeCodeableConcept
        : order.resourceType === 'ServiceRequest'
          ? order.code
          : undefined;
  return concept?.text ?? concept?.coding?.[0]?.display ?? (order.resourceType === 'MedicationRequest' ? 'this drug' : `this ${order.resourceType}`);
}

/**
 * The same order within every limit it exceeds (design.md §4 Propose Alternate Request, §6 "Limits"): the dose at
 * the policy maximum, the dispense quantity at the amount limit and the number of cycles the course still allows, each
 * where the evaluation proposes one.
 * Undefined when there is nothing to propose or the order carries no dose to lower.
 */
function alternateOrder(order: MedicationRequest, proposals: Proposal[]): { order: MedicationRequest; label: string; exceeds: string; within: string } | undefined {
  const dose = proposals.find((p) => p.kind === 'dose');
  const cycles = proposals.find((p) => p.kind === 'cycles');
  const quantity = proposals.find((p) => p.kind === 'quantity');
  if (!dose && !cycles && !quantity) return undefined;
  const updated = structuredClone(order);
  const changes: string[] = [];
  const within: string[] = [];
  let today = '';
  if (dose) {
    // An order written per m² is proposed per m² (design.md §6 "Limits": "15 mcg/m²/day below" 45 kg), so that the
    // accepted order still follows the patient's BSA; its label gives today's mcg/day equivalent. A flat order keeps the
    // flat dose.
    const perM2 = dose.perM2 && perM2DoseAbove(order, dose.perM2.value, dose.perM2.unit) ? dose.perM2 : undefined;
    // Without today's BSA the proposal is its per-m² form alone, which only an order written per m² can take.
    if (!perM2 && dose.perM2 && dose.unit === dose.perM2.unit) return undefined;
    const shown = perM2 ?? dose;
    const target = { value: Math.round(shown.value * 10) / 10, unit: shown.display ?? shown.unit, system: 'http://unitsofmeasure.org', code: shown.unit };
    if (!proposeDose(updated, target)) return undefined;
    const label = doseLabel(shown.value, shown.unit, shown.display);
    changes.push(`the dose to ${label}`);
    within.push(label);
    if (perM2 && dose.unit !== perM2.unit) today = `; ${doseLabel(dose.value, dose.unit, dose.display)} at today's BSA`;
  }
  if (quantity) {
    // The amount limit is per cycle (or per its period): the same cycles with less drug dispensed, so the order's
    // schedule, days supply and validity stay as written; only dispenseRequest.quantity changes (design.md §6 "Limits").
    const unit = quantity.display ?? quantity.unit;
    updated.dispenseRequest = { ...updated.dispenseRequest, quantity: { value: quantity.value, unit, system: 'http://unitsofmeasure.org', code: quantity.unit } };
    changes.push(`the quantity dispensed to ${quantity.value} ${unit}`);
    within.push(`${quantity.value} ${unit}`);
  }
  if (cycles) {
    // An order asks for 1 + numberOfRepeatsAllowed cycles (design.md §6 "Cycles").
    updated.dispenseRequest = { ...updated.dispenseRequest, numberOfRepeatsAllowed: cycles.value - 1 };
    const count = `${cycles.value} ${cycles.value === 1 ? 'cycle' : 'cycles'}`;
    changes.push(`the request to ${count}`);
    within.push(count);
  }
  return {
    order: updated,
    label: `Change ${changes.join(' and ')} (policy maximum${today})`,
    exceeds: [dose && 'dose', quantity && 'quantity', cycles && 'cycles'].filter((w): w is string => !!w).join(' and '),
    within: within.join(', '),
  };
}

/**
 * Writes the proposed dose into the order: every instruction whose dose in the same unit exceeds it (a step-dosed
 * cycle keeps its lower first-week dose), or, when units differ, the instruction holding the highest dose (the last).
 * Returns false when the order has no dose to change.
 */
export function proposeDose(order: MedicationRequest, target: { value: number; unit: string; system: string; code: string }): boolean {
  const dosed = (order.dosageInstruction ?? []).filter((i) => !!i.doseAndRate?.[0]?.doseQuantity);
  if (dosed.length === 0) return false;
  const sameUnit = (q: { code?: string; unit?: string }) =>
    q.code === target.code ||
    (target.code === 'ug/d' && (q.code === 'mcg/d' || q.unit === 'mcg/d')) ||
    (PER_M2_CODES.has(target.code) && isPerM2(q)) ||
    (q.code === undefined && q.unit !== undefined && (UNIT_TEXTS[target.code] ?? [target.code]).includes(q.unit));
  const over = dosed.filter((i) => sameUnit(i.doseAndRate![0].doseQuantity!) && (i.doseAndRate![0].doseQuantity!.value ?? 0) > target.value);
  for (const instruction of over.length > 0 ? over : [dosed[dosed.length - 1]]) {
    const dose = instruction.doseAndRate![0];
    const before = dose.doseQuantity!.value;
    dose.doseQuantity = { ...target };
    // The sig keeps its route and schedule, but never states the dose it replaced: an accepted suggestion whose text
    // said 60 mcg/day over a structured 28 would be an order that contradicts itself.
    if (instruction.text && before !== undefined) instruction.text = restateDose(instruction.text, before, `${target.value} ${target.unit}`);
  }
  return true;
}

/**
 * Rewrites each "60 mcg/day" (or "60mcg daily", "60 micrograms/m2/d", "1.8 mg/m2", ...) stating `before` in a sig as
 * `after`.
 */
function restateDose(text: string, before: number, after: string): string {
  const value = String(before).replace('.', '\\.');
  const stated = new RegExp(
    `(?<![\\d.])${value}(?:\\.0+)?\\s*(?:mcg|µg|ug|micrograms?|mg|milligrams?)(?:\\s*/\\s*m(?:2|²))?(?:\\s*/\\s*(?:day|d)\\b|\\s+(?:per|a)\\s+day\\b|\\s+daily\\b)?`,
    'gi',
  );
  return text.replace(stated, after);
}

/** UCUM codes (and, without a code, unit texts) of a dose per m² of body surface area per day, as the dose facts read. */
const PER_M2_CODES = new Set(['ug/m2/d', 'ug/(m2.d)', 'mcg/m2/d']);
const PER_M2_UNITS = new Set(['mcg/m2/day', 'mcg/m2/d']);

function isPerM2(q: { code?: string; unit?: string }): boolean {
  return q.code !== undefined ? PER_M2_CODES.has(q.code) : q.unit !== undefined && PER_M2_UNITS.has(q.unit);
}

/** Unit texts (a dose with no UCUM code) that state a proposal's UCUM unit, where they differ from the code. */
const UNIT_TEXTS: Record<string, string[]> = { 'mg/m2': ['mg/m2', 'mg/m²'] };

/**
 * Whether the order states a dose per m² above `limit` in the proposal's per-m² unit `unit` (the exceeding dose is
 * written per m²): mcg/m²/day for Blincyto, mg/m² a dose for Besponsa.
 */
function perM2DoseAbove(order: MedicationRequest, limit: number, unit: string): boolean {
  const perM2 = (q: { code?: string; unit?: string }) =>
    PER_M2_CODES.has(unit) ? isPerM2(q) : q.code !== undefined ? q.code === unit : q.unit !== undefined && (UNIT_TEXTS[unit] ?? [unit]).includes(q.unit);
  return (order.dosageInstruction ?? []).some((i) => {
    const q = i.doseAndRate?.[0]?.doseQuantity;
    return !!q && perM2(q) && (q.value ?? 0) > limit;
  });
}
