import type { Extension, MedicationRequest } from '@medplum/fhirtypes';
import type { Content, Payer } from '../content.js';
import { assertionFor, buildCoverageInformation, COVERAGE_INFO_URL } from '../coverage/coverage-information.js';
import type { OrderDecision } from '../coverage/decide-orders.js';
import { determinationFor } from '../coverage/decide-orders.js';
import type { OrderResource } from '../coverage/order.js';
import { isOrder } from '../coverage/order.js';
import { alternateOrder } from '../policies/alternate-order.js';
import type { Card } from './cards.js';
import { dtrLaunchCard, externalReferenceCard, instructionsCard, proposeAlternateCard, summaryNaming } from './cards.js';
import type { HookRequest } from './hook-request.js';
import { localReference } from '../fhir/references.js';
import { prescribedDose } from '../fhir/dose.js';

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
    // Across a plan change each order names the Coverage it was decided under (design.md §4 "Payer").
    const coverageRef = d.coverageRef ?? opts.coverageRef;
    if (coverageRef && cfg.coverageInfo) {
      const assertion = assertionFor(determination, {
        coverageRef,
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
    if (d.noActiveCoverage && cfg.coverageInfo) {
      // The order is not judged: the card says why it is not covered and what to do, as a denial's does.
      cards.push(instructionsCard(payer.label, summaryNaming((n) => `${n} is not covered: no active Coverage on its start date`, drug), determination.reasons[0].text, 'warning', orderRef));
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
          { questionnaire: [d.policy.questionnaire], order: orderRef, coverage: coverageRef, coverageAssertionId: d.assertionId },
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
  const instruction = order.dosageInstruction?.find((i) => prescribedDose(i)?.doseQuantity?.value !== undefined) ?? order.dosageInstruction?.[0];
  const q = prescribedDose(instruction)?.doseQuantity;
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
