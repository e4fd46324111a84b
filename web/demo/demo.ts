import type {
  Bundle,
  BundleEntry,
  Claim,
  ClaimResponse,
  Coverage,
  Extension,
  MedicationRequest,
  OperationOutcome,
  Parameters,
  Patient,
  PractitionerRole,
  QuestionnaireResponse,
  Resource,
} from '@medplum/fhirtypes';
import {
  answeredAfter,
  answeredOn,
  coverageInformationOf,
  formatDate,
  orderDecisionOf,
  summarizeCoverage,
  supersededByDecision,
} from '../shared/coverage.js';
import type { CoverageSummary } from '../shared/coverage.js';
import { announce, byId, fetchJson, fill, h, HttpError, jsonBlock, markdownBlock, problemWords } from '../shared/dom.js';
import type { NoticeKind } from '../shared/dom.js';
import { applyForm, describeOrder, DRUGS, formOf, UNIT_DISPLAY, validCycles } from './order.js';
import type { DrugKey, OrderForm } from './order.js';
import { newestFirst, payerAnswersOn, savedAt } from './responses.js';

/**
 * The demo EHR page (design.md §1, §2): a small EHR over the sandbox FHIR server. It lists the sandbox stories, opens
 * a chart with the story's draft order, signs it through PriorPath's real CDS Hooks endpoint (order-sign, a signed
 * client JWT, full prefetch), applies the systemAction, shows cards and the coverage-information in plain words next
 * to the raw messages, launches the DTR SMART app, and submits a PAS request.
 */

interface Story {
  id: string;
  patientId?: string;
  patientName?: string;
  payer?: string;
  orderId?: string;
  story?: string;
  expected?: string;
}
interface StoriesAnswer {
  stories: Story[];
  publicBaseUrl?: string;
  fhirServer?: string;
}
interface Card {
  uuid?: string;
  summary: string;
  detail?: string;
  indicator: string;
  source: { label: string; url?: string };
  links?: { label: string; url: string; type: string; appContext?: string }[];
  suggestions?: {
    label: string;
    uuid?: string;
    actions?: { type: string; description?: string; resource?: Resource }[];
  }[];
}
interface HookResponse {
  cards?: Card[];
  systemActions?: { type: string; description?: string; resource?: Resource }[];
}

const SERVICE = 'priorpath-order-sign';
const PAS_TEMP = 'http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes';
/** PAS 2.2.1 extension-infoChanged: what a Claim Update adds or changes (design.md §8 "Claim updates"). */
const INFO_CHANGED = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-infoChanged';
const REVIEW_ACTION = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewAction';
const REVIEW_ACTION_CODE = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewActionCode';

/** Every URL is relative to the page, so the demo works under a path prefix too. */
const here = (path: string) => new URL(path, document.baseURI).toString();
const fhirUrl = (path: string) => here(`sandbox/fhir/${path}`);
let publicBase = new URL('.', document.baseURI).toString().replace(/\/$/, '');
/**
 * The `fhirServer` the hooks name: this server's sandbox EHR, or FHIR_SANDBOX_URL when the service runs on an external
 * one (the service queries it directly; this page reads the same data through `sandbox/fhir`).
 */
let hookFhirServer: string | undefined;

const state: {
  stories: Story[];
  story?: Story;
  patient?: Patient;
  coverage?: Coverage;
  order?: MedicationRequest;
  chartOrder?: MedicationRequest;
  role?: PractitionerRole;
  lastSummary?: CoverageSummary;
  signedOrder?: MedicationRequest;
  /** The order form as it was signed: the payer's answer on screen belongs to exactly this order. */
  signedForm?: OrderForm;
  signing: boolean;
  /** A PAS request is in flight: the submit buttons are disabled until it answers. */
  submitting: boolean;
  /** Polls `$inquire` while the order's request is pended, so the reviewer's decision shows when it arrives. */
  inquiryTimer?: ReturnType<typeof setTimeout>;
  /**
   * The PAS decision (A1 approved, A3 denied) that came after the signing answer on screen and contradicts it: the
   * signing answer is then out of date (its "documentation required", its actions) until the order is signed again.
   */
  supersededBy?: 'A1' | 'A3';
  /** The coverage assertions the payer answered the latest documentation on file (DTR) with. */
  documentationAssertions: string[];
  /** The payer's answer to the latest documentation on file (DTR), when it gave one. */
  documentationSummary?: CoverageSummary;
  /** The order's decision as the payer's record holds it (checkOrderDecision), in the payer's words. */
  orderDecision?: string;
} = { stories: [], signing: false, submitting: false, documentationAssertions: [] };

/** m2 → m² wherever a unit is written for a person (the wire keeps UCUM's m2). */
const readable = (t: string) => t.replace(/\bm2\b/g, 'm²');

/** Whether the order on the form differs from the order as signed. */
function changedSinceSigning(): boolean {
  return !!state.signedForm && JSON.stringify(readForm()) !== JSON.stringify(state.signedForm);
}

/**
 * Any edit after signing (dose, unit, drug, phase, cycles, planned start) takes the payer's answer off the screen: it was for the
 * order as signed. Undoing the edit brings it back. So does a PAS decision that arrived after signing and contradicts
 * the answer ({@link supersededByDecision}): the page shows one answer for the order, the decision, until signing again.
 */
function markStale(): void {
  const result = byId('result');
  if (result.hidden || !state.signedForm) return;
  const changed = changedSinceSigning();
  const stale = changed || !!state.supersededBy;
  result.classList.toggle('stale', stale);
  const note = byId('stale-note');
  note.hidden = !stale;
  if (changed) setStatus('');
  if (changed && state.order)
    note.textContent = `The order changed after signing (now: ${readable(describeOrder(applyForm(state.order, readForm())))}). The payer's answer was for the order as signed: sign again.`;
  else if (state.supersededBy)
    note.textContent = `The payer has since decided the prior authorization request: ${state.supersededBy === 'A1' ? 'approved' : 'denied'} (below). The answer from signing is out of date: sign again to see the payer's answer for the order now.`;
}

function uuid(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((n) => n.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** A notice in the page's status or alert region (shared/dom.ts `announce`: errors that stop the user are alerts). */
function setStatus(text: string, kind: NoticeKind = 'ok'): void {
  announce(text, kind);
}

const fhirGet = <T>(path: string) => fetchJson<T>(fhirUrl(path));
const fhirPut = <T extends Resource>(r: T) =>
  fetchJson<T>(fhirUrl(`${r.resourceType}/${encodeURIComponent(r.id ?? '')}`), {
    method: 'PUT',
    headers: { 'Content-Type': 'application/fhir+json' },
    body: JSON.stringify(r),
  });
const entries = <T extends Resource>(b: Bundle | undefined, type?: string) =>
  (b?.entry ?? []).map((e) => e.resource).filter((r): r is T => !!r && (!type || r.resourceType === type));

function patientName(p: Patient | undefined): string {
  const n = p?.name?.[0];
  return n ? [...(n.given ?? []), n.family].filter(Boolean).join(' ') : (p?.id ?? '');
}

function age(birthDate: string | undefined): string {
  if (!birthDate) return '';
  const b = new Date(`${birthDate}T00:00:00Z`);
  const now = new Date();
  let years = now.getUTCFullYear() - b.getUTCFullYear();
  if (
    now.getUTCMonth() < b.getUTCMonth() ||
    (now.getUTCMonth() === b.getUTCMonth() && now.getUTCDate() < b.getUTCDate())
  )
    years--;
  return years >= 2
    ? `${years} years`
    : `${Math.max(0, Math.floor((now.getTime() - b.getTime()) / (30.44 * 86_400_000)))} months`;
}

// ---------------------------------------------------------------------------------------------------------------
// Patient list

async function showPatients(): Promise<void> {
  const answer = await fetchJson<StoriesAnswer>(here('sandbox/stories'));
  state.stories = answer.stories;
  if (answer.publicBaseUrl) publicBase = answer.publicBaseUrl;
  hookFhirServer = answer.fhirServer;
  const rows = answer.stories
    .filter((s) => s.patientId)
    .map((s) =>
      h(
        'tr',
        {},
        h('th', { scope: 'row' }, h('a', { href: `?story=${encodeURIComponent(s.id)}` }, s.patientName ?? s.id)),
        h('td', {}, (s.payer ?? '').toUpperCase()),
        h('td', {}, s.story ?? ''),
      ),
    );
  fill(
    byId('patient-list'),
    h(
      'table',
      { class: 'patients' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', { scope: 'col' }, 'Patient'),
          h('th', { scope: 'col' }, 'Payer'),
          h('th', { scope: 'col' }, 'Story'),
        ),
      ),
      h('tbody', {}, rows),
    ),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Chart

const draftKey = (id: string) => `priorpath-demo:draft:${id}`;

function readForm(): OrderForm {
  const num = (id: string) => {
    const v = byId<HTMLInputElement>(id).value.trim();
    return v === '' ? undefined : Number(v);
  };
  return {
    drug: byId<HTMLSelectElement>('drug').value as DrugKey,
    dose: num('dose'),
    unit: byId<HTMLSelectElement>('unit').value,
    phase: byId<HTMLSelectElement>('phase').value,
    cycles: num('cycles'),
    start: byId<HTMLInputElement>('start').value || undefined,
  };
}

function writeForm(f: OrderForm): void {
  byId<HTMLSelectElement>('drug').value = f.drug;
  byId<HTMLInputElement>('dose').value = f.dose === undefined ? '' : String(f.dose);
  byId<HTMLSelectElement>('unit').value = f.unit in UNIT_DISPLAY ? f.unit : DRUGS[f.drug].defaultDose.unit;
  byId<HTMLSelectElement>('phase').value = f.phase;
  byId<HTMLInputElement>('cycles').value = f.cycles === undefined ? '' : String(f.cycles);
  byId<HTMLInputElement>('start').value = f.start ?? '';
  updateOrderText();
}

function updateOrderText(): void {
  if (!state.order) return;
  byId('order-text').textContent = readable(describeOrder(applyForm(state.order, readForm())));
}

function saveDraft(): void {
  if (state.story) sessionStorage.setItem(draftKey(state.story.id), JSON.stringify(readForm()));
}

async function openChart(storyId: string): Promise<void> {
  const story = state.stories.find((s) => s.id === storyId);
  if (!story?.patientId) {
    setStatus(`No sandbox patient ${storyId}.`, 'error');
    return;
  }
  state.story = story;
  byId<HTMLButtonElement>('sign').disabled = true;
  byId<HTMLButtonElement>('reset').disabled = true;
  byId('patients').hidden = true;
  byId('chart').hidden = false;
  setStatus('Opening the chart…', 'busy');
  const [patient, coverages] = await Promise.all([
    fhirGet<Patient>(`Patient/${encodeURIComponent(story.patientId)}`),
    fhirGet<Bundle>(`Coverage?patient=${encodeURIComponent(story.patientId)}&status=active`),
  ]);
  state.patient = patient;
  state.coverage = entries<Coverage>(coverages, 'Coverage')[0];
  if (story.orderId)
    state.order = await fhirGet<MedicationRequest>(`MedicationRequest/${encodeURIComponent(story.orderId)}`);
  state.chartOrder = state.order;
  const requester = state.order?.requester?.reference;
  if (requester?.startsWith('PractitionerRole/'))
    state.role = await fhirGet<PractitionerRole>(requester).catch(() => undefined);

  byId('chart-title').textContent = patientName(patient);
  document.title = `${patientName(patient)} — PriorPath demo EHR`;
  const mrn = patient.identifier?.find((i) => i.type?.coding?.some((c) => c.code === 'MR'))?.value;
  fill(
    byId('patient-banner'),
    h('span', { class: 'banner-name' }, patientName(patient)),
    h('span', {}, `${age(patient.birthDate)} · ${patient.gender ?? ''}`),
    h('span', {}, `Born ${formatDate(patient.birthDate)}`),
    mrn ? h('span', {}, `MRN ${mrn}`) : null,
    state.coverage ? h('span', {}, `Coverage: ${coverageName(state.coverage)}`) : null,
  );
  byId('story').textContent = story.story ?? '';
  byId('ehr-user').textContent = state.role?.practitioner?.display
    ? `Signed in: ${state.role.practitioner.display}`
    : '';

  const saved = sessionStorage.getItem(draftKey(story.id));
  const form = saved
    ? (JSON.parse(saved) as OrderForm)
    : state.order
      ? formOf(state.order)
      : { drug: 'blinatumomab' as DrugKey, dose: 28, unit: 'ug/d', phase: '', cycles: 1 };
  writeForm(form);
  await showDocumentation();
  const pas = loadPas(state.order?.id);
  showAnswerOnFile();
  if (pas) renderPas(pas);
  if (state.order && coverageInformationOf(state.order).length > 0) checkSuperseded(pas, signedAtOf(state.order));
  if (!state.supersededBy) void checkOrderDecision();
  byId('sign').textContent = state.order && coverageInformationOf(state.order).length > 0 ? 'Sign again' : 'Sign order';
  // The buttons stay disabled until the chart's order is loaded: a click before then had nothing to sign and was
  // silently dropped.
  byId<HTMLButtonElement>('sign').disabled = !state.order;
  byId<HTMLButtonElement>('reset').disabled = !state.chartOrder;
  setStatus('');
}

/**
 * The payer's latest answer the order carries (the EHR stored the order with its coverage-information: CDS Hooks
 * systemActions at signing, or the DTR app after the documentation was answered): shown on opening the chart, so a
 * refresh or another browser still shows the answer and the authorization number (design.md §1), dated, said as an
 * answer at signing or to the documentation, and marked out of date if the draft was edited since.
 */
function showAnswerOnFile(): void {
  const order = state.order;
  const infos = order ? coverageInformationOf(order) : [];
  if (!order || infos.length === 0) return;
  const assertion = infos[0].extension?.find((e) => e.url === 'coverage-assertion-id')?.valueString;
  const from = assertion && state.documentationAssertions.includes(assertion) ? 'documentation' : 'signing';
  renderResult({ systemActions: [{ type: 'update', resource: order }] }, { answeredOn: answeredOn(infos[0]) ?? '', from });
  state.signedOrder = order;
  state.signedForm = formOf(order);
  markStale();
}

/** When the order was last signed: the EHR stored it with the payer's answer then (else the answer's day). */
function signedAtOf(order: MedicationRequest): string | undefined {
  return order.meta?.lastUpdated ?? answeredOn(coverageInformationOf(order)[0]);
}

/**
 * On opening the chart: a PAS decision that came after the order's stored answer and contradicts it puts that answer
 * out of date (see markStale), as when the decision arrives on the open page.
 */
function checkSuperseded(pas: PasRecord | undefined, signedAt: string | undefined): void {
  const action = pas ? reviewActionOf(pas.claimResponse) : undefined;
  if (pas && (action === 'A1' || action === 'A3') && answeredAfter(pas.decidedAt ?? pas.sentAt, signedAt)) overtakeSigningAnswer(action);
}

/**
 * The decision the payer's record of the order holds, when the answer on file still asks for documentation (review ui
 * s44 L5): a reviewer may have decided the order's PAS request since, and this browser may hold no record of that
 * request to inquire about (another session, another EHR user). The EHR asks the payer's DTR API for the order's
 * package, whose outcome names the order's decision (src/dtr/questionnaire-package.ts `orderDecisionIssue`); the
 * answer on file is then out of date, as after a PAS decision (markStale), and the decision is shown below it.
 */
async function checkOrderDecision(): Promise<void> {
  const { order, coverage } = state;
  const tone = state.lastSummary?.tone;
  if (!order?.id || !coverage || (tone !== 'needed' && tone !== 'unclear')) return;
  let answer: Parameters;
  try {
    answer = await fetchJson<Parameters>(here('fhir/Questionnaire/$questionnaire-package'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json' },
      body: JSON.stringify({
        resourceType: 'Parameters',
        parameter: [
          { name: 'coverage', resource: coverage },
          { name: 'order', resource: order },
        ],
      }),
    });
  } catch {
    return; // The answer on file stays; signing again asks the payer anyway.
  }
  // Another chart opened meanwhile, or a PAS answer on this page decided it first.
  if (state.order?.id !== order.id || state.supersededBy) return;
  const outcome = answer.parameter?.find((p) => p.resource?.resourceType === 'OperationOutcome')?.resource as
    | OperationOutcome
    | undefined;
  const decided = orderDecisionOf(outcome);
  if (!decided) return;
  const approved = decided.action === 'A1';
  state.orderDecision = decided.text;
  fill(
    byId('pas'),
    h('h2', {}, "The payer's decision on this order"),
    h('p', { class: `decision decision-${approved ? 'approved' : 'not-covered'}`, 'data-testid': 'order-decision' }, readable(decided.text)),
    h('p', { class: 'muted' }, "From the payer's record of the order, read when the chart was opened."),
  );
  byId('pas').hidden = false;
  overtakeSigningAnswer(decided.action);
}

/** "OHSU Health employee medical plan", not "OHSU Health OHSU Health employee medical plan". */
function coverageName(c: Coverage): string {
  const payer = c.payor?.[0]?.display ?? '';
  const plan = c.class?.find((k) => k.type?.coding?.some((x) => x.code === 'plan'))?.name ?? '';
  if (!plan) return payer;
  return plan.toLowerCase().startsWith(payer.toLowerCase()) ? plan : `${payer} · ${plan}`;
}

/** "2 December 2026, 14:05 UTC": the page's one way of writing a moment. */
function when(iso: string | undefined): string {
  if (!iso) return '';
  return /T\d{2}:\d{2}/.test(iso)
    ? `${formatDate(iso)}, ${new Date(iso).toISOString().slice(11, 16)} UTC`
    : formatDate(iso);
}

/** What the chart already holds from DTR: the latest QuestionnaireResponse for this patient. */
async function showDocumentation(): Promise<void> {
  if (!state.patient?.id) return;
  const found = await fhirGet<Bundle>(`QuestionnaireResponse?patient=${encodeURIComponent(state.patient.id)}`).catch(
    () => undefined,
  );
  const responses = entries<QuestionnaireResponse>(found, 'QuestionnaireResponse').sort(newestFirst);
  const latest = responses[0];
  const box = byId('documentation');
  state.documentationAssertions = [];
  state.documentationSummary = undefined;
  if (!latest) {
    box.hidden = true;
    return;
  }
  const at = when(savedAt(latest));
  const answers = payerAnswersOn(latest);
  const decided = answers
    .map((e) => summarizeCoverage(e, 'documentation'))
    .filter((s) => s.tone !== 'needed' || s.reasons.length > 0)[0];
  state.documentationAssertions = answers
    .map((e) => e.extension?.find((x) => x.url === 'coverage-assertion-id')?.valueString)
    .filter((a): a is string => !!a);
  fill(
    box,
    h('h2', {}, 'Documentation on file'),
    h(
      'p',
      { 'data-testid': 'documentation-on-file' },
      latest.status === 'in-progress'
        ? `Prior authorization questionnaire started, not sent yet${at ? ` (last saved ${at})` : ''}.`
        : `Prior authorization questionnaire completed${at ? ` ${at}` : ''}.`,
    ),
    decided
      ? h(
          'p',
          { class: `decision decision-${decided.tone}` },
          `Payer's answer to the documentation: ${decided.headline}`,
        )
      : null,
    h('div', { id: 'documentation-request' }),
    h(
      'details',
      { class: 'tech' },
      h('summary', {}, 'Details'),
      h('p', { class: 'mono' }, `QuestionnaireResponse/${latest.id}`),
    ),
  );
  state.documentationSummary = decided;
  box.hidden = false;
  renderRequestOffer();
}

/** What the page knows the order's prior authorization stands at: approved (with its period) or denied, else open. */
type Settled =
  | { action: 'A1'; number?: string; start?: string; end?: string; text?: string; reasons?: string[] }
  | { action: 'A3'; reasons: string[] }
  | { action: 'no-auth' };

/**
 * Whether the order is settled, on the latest answer the page holds (review ui s47 #1): the PAS decision or the order's
 * recorded decision when it overtook the answer on screen (`supersededBy`), else the answer on screen (from signing or,
 * stored on the order, the documentation's), else the documentation's own answer. A PAS request for a settled order is
 * answered with what settled it (design.md §8: the order's decision from every edge; a denial is the decision on the
 * order as it was denied), so the page offers none: it says what holds instead.
 */
function settledOrder(): Settled | undefined {
  if (state.supersededBy) {
    const cr = loadPas(state.order?.id)?.claimResponse;
    const fromPas = cr && reviewActionOf(cr) === state.supersededBy;
    if (state.supersededBy === 'A1')
      return fromPas
        ? { action: 'A1', number: cr.preAuthRef, start: cr.preAuthPeriod?.start, end: cr.preAuthPeriod?.end }
        : { action: 'A1', text: state.orderDecision };
    const notes = fromPas ? (cr.processNote ?? []).map((n) => n.text).filter((t): t is string => !!t) : [];
    return { action: 'A3', reasons: notes.length ? notes : state.orderDecision ? [state.orderDecision] : [] };
  }
  const s = state.lastSummary ?? state.documentationSummary;
  if (s?.tone === 'approved') return { action: 'A1', number: s.paId, start: s.start, end: s.expiry, reasons: s.reasons };
  if (s?.tone === 'not-covered') return { action: 'A3', reasons: s.reasons };
  if (s?.tone === 'no-auth') return { action: 'no-auth' };
  return undefined;
}

/**
 * The PAS request's button, named for what the payer does with it: after a reviewer's denial the changed order goes to
 * a reviewer (the answer's reason coded X12 306 A4; PAS pends it, design.md §8 "A denial is the decision on the order
 * as it was denied"), so the button says so rather than promise a decision the rules would make.
 */
function submitLabel(s: CoverageSummary | undefined): string {
  if (pendedRequest()) return UPDATE_LABEL;
  return s?.reviewerDecides ? "Submit prior authorization for a reviewer's decision" : 'Submit prior authorization';
}

/** The button that sends the chart's documentation to the order's pended request, as its update. */
const UPDATE_LABEL = 'Send the documentation to the pended request';

/**
 * The order's PAS request while it is pended (X12 306 A4) and can be updated: the chart's documentation then goes to
 * it as a PAS Claim Update, never as a second request (design.md §8 "One authorization per order": the reviewer reads
 * the request as filed, and other answers and documents reach the reviewer only as an update of that request).
 */
function pendedRequest(): PasRecord | undefined {
  const r = loadPas(state.order?.id);
  return r?.claimIdentifier && reviewActionOf(r.claimResponse) === 'A4' ? r : undefined;
}

/**
 * Under the documentation on file: the prior authorization request with it while the order is open, or, once the order
 * is settled, what settled it and no button (a request would only be answered with that same approval or denial).
 */
function renderRequestOffer(): void {
  const slot = document.getElementById('documentation-request');
  if (!slot) return;
  const settled = settledOrder();
  if (!settled) {
    const pended = pendedRequest();
    fill(
      slot,
      h(
        'p',
        { class: 'muted', 'data-testid': 'documentation-offer' },
        pended
          ? `The prior authorization request for this order (reference ${pended.claimResponse.id ?? 'on file'}) is pended for review: this documentation goes to it as an update, not as a second request. The reviewer reads the request with it.`
          : "Sign the order again to get the payer's answer at signing, or submit the prior authorization request with this documentation.",
      ),
      h('div', { class: 'buttons' }, h('button', { type: 'button', id: 'submit-pas-doc', disabled: state.submitting }, submitLabel(state.lastSummary))),
    );
    document.getElementById('submit-pas-doc')?.addEventListener('click', () => {
      void submitPas();
    });
    return;
  }
  if (settled.action === 'A1') {
    const period =
      settled.start && settled.end
        ? `, valid from ${formatDate(settled.start)} to ${formatDate(settled.end)}`
        : settled.end
          ? `, valid until ${formatDate(settled.end)}`
          : '';
    fill(
      slot,
      h(
        'p',
        { class: 'decision decision-approved', 'data-testid': 'order-authorization' },
        settled.text ? readable(settled.text) : `Prior authorization approved: ${settled.number ?? 'on file'}${period}.`,
      ),
      // The shared (CRD 2.0.1) shape, which the DTR answer has, carries no period: its reasons say it in words.
      !settled.start && settled.reasons?.length ? h('p', {}, readable(settled.reasons.join(' '))) : null,
      h('p', { class: 'muted' }, 'The order is authorized: there is no request to submit.'),
    );
    return;
  }
  if (settled.action === 'no-auth') {
    fill(slot, h('p', { class: 'muted', 'data-testid': 'order-authorization' }, 'Covered: this order needs no prior authorization, so there is no request to submit.'));
    return;
  }
  fill(
    slot,
    h(
      'p',
      { class: 'decision decision-not-covered', 'data-testid': 'order-authorization' },
      `Denied: ${readable(settled.reasons.join(' ') || 'the payer does not cover this order as it stands.')}`,
    ),
    h(
      'p',
      { class: 'muted' },
      'No request is offered: sent as the order now stands, it would get the same answer. Change the order (its dose, cycles or start) and sign again to be answered afresh.',
    ),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Signing (CDS Hooks order-sign)

/** The prefetch PriorPath's discovery asks for (design.md §4), read from the sandbox FHIR server as an EHR would. */
async function buildPrefetch(patientId: string, userRef: string | undefined): Promise<Record<string, unknown>> {
  const p = encodeURIComponent(patientId);
  const [patient, coverage, user, conditions, observations, medications, immunizations] = await Promise.all([
    fhirGet<Patient>(`Patient/${p}`),
    fhirGet<Bundle>(`Coverage?patient=${p}&status=active`),
    userRef ? fhirGet<Resource>(userRef).catch(() => null) : Promise.resolve(null),
    fhirGet<Bundle>(`Condition?patient=${p}`),
    fhirGet<Bundle>(`Observation?patient=${p}`),
    fhirGet<Bundle>(`MedicationRequest?patient=${p}`),
    fhirGet<Bundle>(`Immunization?patient=${p}`),
  ]);
  return { patient, coverage, user, conditions, observations, medications, immunizations };
}

async function sign(): Promise<void> {
  if (!state.order || !state.patient?.id || state.signing) return;
  const form = readForm();
  if (form.dose === undefined || !Number.isFinite(form.dose) || form.dose <= 0) {
    refuseField('dose', 'Enter a dose greater than zero before signing.');
    return;
  }
  // A value the order cannot carry (0, 2.5, empty) was signed silently as the chart's draft cycles: say so instead.
  if (!validCycles(form.cycles)) {
    refuseField('cycles', 'Enter a whole number of cycles from 1 to 12 before signing.');
    return;
  }
  state.signing = true;
  // The authorization numbers the EHR already holds for this order: an approval naming one was not issued by this signing.
  const known = knownNumbers(state.order);
  const button = byId<HTMLButtonElement>('sign');
  button.disabled = true;
  try {
    saveDraft();
    setStatus('Signing: asking the payer (CDS Hooks order-sign)…', 'busy');
    // The EHR keeps the draft as edited, so the DTR app reads the same order.
    const draft = await fhirPut(applyForm(state.order, form));
    state.order = draft;
    const aud = `${publicBase}/cds-services/${SERVICE}`;
    const auth = await fetchJson<{ token: string; fhirAuthorization?: Record<string, unknown> }>(
      here('sandbox/auth/cds-token'),
      {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ aud, patient: state.patient.id }),
      },
    );
    const userId = state.order.requester?.reference;
    const ownFhir = `${publicBase}/sandbox/fhir`;
    const fhirServer = hookFhirServer ?? ownFhir;
    const request = {
      hook: 'order-sign',
      hookInstance: uuid(),
      fhirServer,
      // The sandbox's token is for its own FHIR base: an external server is sent none.
      ...(auth.fhirAuthorization && fhirServer === ownFhir ? { fhirAuthorization: auth.fhirAuthorization } : {}),
      context: {
        ...(userId ? { userId } : {}),
        patientId: state.patient.id,
        draftOrders: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: draft }] },
      },
      prefetch: await buildPrefetch(state.patient.id, userId),
      extension: { 'davinci-crd.requestedVersion': '2.2' },
    };
    let response: HookResponse;
    try {
      response = await fetchJson<HookResponse>(here(`cds-services/${SERVICE}`), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${auth.token}` },
        body: JSON.stringify(request),
      });
    } catch (err) {
      showRaw(request, err instanceof HttpError ? err.body : String(err));
      throw err;
    }
    await applySystemActions(response);
    state.signedForm = form;
    renderResult(response, undefined, known);
    showRaw(request, response);
    button.textContent = 'Sign again';
    setStatus(
      `Order signed. ${state.lastSummary ? plainStatus(state.lastSummary) : 'The payer sent no coverage information.'}`,
      'ok',
    );
    byId('result').focus();
  } catch (err) {
    // In words ("the service had a problem (status 503)…"), never the request line the error carries.
    setStatus(`Signing failed: ${problemWords(err).replace(/\.$/, '')}.`, 'error');
  } finally {
    state.signing = false;
    button.disabled = false;
    // The button was disabled while it held the focus, which fell to the page: give it back, to sign again.
    if (document.activeElement === document.body) button.focus();
  }
}

/** The authorization numbers on the order's stored coverage-information and on its PAS request's approval. */
function knownNumbers(order: MedicationRequest): string[] {
  const onOrder = coverageInformationOf(order).flatMap((e) =>
    (e.extension ?? []).filter((x) => x.url === 'satisfied-pa-id').map((x) => x.valueString),
  );
  const pas = loadPas(order.id)?.claimResponse.preAuthRef;
  return [...onOrder, pas].filter((n): n is string => !!n);
}

/** A field whose value cannot be signed: marked invalid, said in the alert region, and focused. */
function refuseField(id: string, message: string): void {
  const field = byId(id);
  field.setAttribute('aria-invalid', 'true');
  setStatus(message, 'error');
  field.focus();
}

/** CDS Hooks §systemActions: the EHR applies each `update` (the order with coverage-information) to its record. */
async function applySystemActions(response: HookResponse): Promise<void> {
  for (const action of response.systemActions ?? []) {
    const r = action.resource;
    if (action.type !== 'update' || r?.resourceType !== 'MedicationRequest' || r.id !== state.order?.id) continue;
    state.order = await fhirPut(r as MedicationRequest);
    state.signedOrder = state.order;
  }
}

/** The status line after signing, in a few words that match the answer. */
function plainStatus(s: CoverageSummary): string {
  switch (s.tone) {
    case 'approved':
      return 'Approved by the payer.';
    case 'no-auth':
      return 'Covered; no prior authorization needed.';
    case 'needed':
      return s.docNeeded ? 'The payer needs documentation.' : 'Prior authorization is needed.';
    case 'not-covered':
      return 'The payer does not cover this order.';
    case 'unclear':
      return 'The payer could not decide automatically.';
  }
}

/**
 * The payer's answer: from a signing just made, or (`onFile`) the latest one the order carries (from its last signing or
 * the documentation); `known` are the authorization numbers the EHR held for the order before this signing.
 */
function renderResult(
  response: HookResponse,
  onFile?: { answeredOn: string; from: 'signing' | 'documentation' },
  known: string[] = [],
): void {
  const coverageBox = byId('coverage');
  const infos = (response.systemActions ?? []).flatMap((a) => coverageInformationOf(a.resource));
  const summaries = infos.map((e) => summarizeCoverage(e, onFile?.from ?? 'signing', known));
  state.lastSummary = summaries[0];
  const payer = response.cards?.[0]?.source.label;
  fill(
    coverageBox,
    onFile
      ? h(
          'p',
          { class: 'muted', 'data-testid': 'answer-on-file' },
          `As the payer answered ${onFile.from === 'signing' ? 'at the last signing' : 'the documentation (DTR)'}${onFile.answeredOn ? `, ${formatDate(onFile.answeredOn)}` : ''}.`,
        )
      : null,
    summaries.length === 0
      ? h('p', { class: 'decision decision-unclear' }, 'The payer sent no coverage information for this order.')
      : null,
    summaries.map((s) =>
      h(
        'div',
        { class: 'coverage' },
        h(
          'p',
          { class: `decision decision-${s.tone}`, 'data-testid': 'coverage-headline' },
          s.tone === 'not-covered' ? `Not covered${payer ? ` by ${payer}` : ''}` : readable(s.headline),
        ),
        h(
          'dl',
          {},
          payer ? [h('dt', {}, 'Payer'), h('dd', {}, payer)] : null,
          s.reasons.length
            ? [
                h('dt', {}, s.tone === 'approved' ? 'Why' : s.reasons.length > 1 ? 'Reasons' : 'Reason'),
                h(
                  'dd',
                  {},
                  s.reasons.length > 1
                    ? h(
                        'ul',
                        { class: 'reasons' },
                        s.reasons.map((r) => h('li', {}, readable(r))),
                      )
                    : readable(s.reasons[0]),
                ),
              ]
            : null,
          s.paId ? [h('dt', {}, 'Authorization number'), h('dd', { 'data-testid': 'pa-number' }, s.paId)] : null,
          s.start && s.expiry
            ? [h('dt', {}, 'Valid'), h('dd', {}, `from ${formatDate(s.start)} to ${formatDate(s.expiry)}`)]
            : s.expiry
              ? [h('dt', {}, 'Valid until'), h('dd', {}, formatDate(s.expiry))]
              : null,
        ),
        s.questionnaires.length || s.assertionId
          ? h(
              'details',
              { class: 'tech' },
              h('summary', {}, 'Details'),
              h(
                'dl',
                {},
                s.questionnaires.length
                  ? [h('dt', {}, 'Form'), h('dd', { class: 'mono' }, s.questionnaires.join(', '))]
                  : null,
                s.assertionId ? [h('dt', {}, 'Coverage assertion'), h('dd', { class: 'mono' }, s.assertionId)] : null,
              ),
            )
          : null,
      ),
    ),
  );

  const actions = byId('actions');
  const s = summaries[0];
  // What the coverage block already says is not repeated by a card.
  const shown = new Set(summaries.flatMap((x) => x.reasons));
  fill(
    actions,
    s?.docNeeded
      ? h('button', { type: 'button', class: 'primary', id: 'complete-doc' }, 'Complete documentation')
      : null,
    s?.docNeeded
      ? h('button', { type: 'button', id: 'complete-doc-adaptive' }, 'Complete documentation (adaptive form)')
      : null,
    s && (s.tone === 'needed' || s.tone === 'unclear')
      ? h('button', { type: 'button', id: 'submit-pas' }, submitLabel(s))
      : null,
  );
  document.getElementById('complete-doc')?.addEventListener('click', () => launchDtr(s!));
  document.getElementById('complete-doc-adaptive')?.addEventListener('click', () => launchDtr(s!, true));
  document.getElementById('submit-pas')?.addEventListener('click', () => {
    void submitPas();
  });

  fill(
    byId('cards'),
    (response.cards ?? []).length ? h('h3', {}, `Cards (${response.cards!.length})`) : null,
    (response.cards ?? []).map((c) => renderCard(c, shown)),
  );
  byId('result').hidden = false;
  byId('result').classList.remove('stale');
  byId('stale-note').hidden = true;
  state.supersededBy = undefined;
  byId('pas').hidden = !loadPas(state.order?.id);
  renderRequestOffer();
}

const INDICATOR_WORDS: Record<string, string> = { info: 'Information', warning: 'Warning', critical: 'Critical' };

function renderCard(card: Card, shown: Set<string>): HTMLElement {
  return h(
    'article',
    { class: `card card-${card.indicator}` },
    h(
      'p',
      { class: 'card-source' },
      h('span', { class: `indicator indicator-${card.indicator}` }, INDICATOR_WORDS[card.indicator] ?? card.indicator),
      ` ${card.source.label}`,
    ),
    h('h4', {}, readable(card.summary)),
    card.detail && !shown.has(card.detail.trim()) ? markdownBlock(readable(card.detail)) : null,
    (card.links ?? []).length
      ? h(
          'ul',
          { class: 'links' },
          card.links!.map((l) =>
            l.type === 'smart'
              ? h('li', {}, h('button', { type: 'button', 'data-smart': l.url }, l.label))
              : h('li', {}, h('a', { href: l.url, target: '_blank', rel: 'noopener' }, l.label)),
          ),
        )
      : null,
    (card.suggestions ?? []).map((sg) => {
      const button = h('button', { type: 'button' }, sg.label);
      button.addEventListener('click', () => applySuggestion(sg));
      return h('p', { class: 'suggestion' }, button);
    }),
  );
}

/** A Propose Alternate Request suggestion: take its updated order's dose into the form (the clinician signs again). */
function applySuggestion(sg: NonNullable<Card['suggestions']>[number]): void {
  const updated = sg.actions?.find((a) => a.resource?.resourceType === 'MedicationRequest')?.resource as
    | MedicationRequest
    | undefined;
  if (!updated) return;
  const f = formOf(updated);
  writeForm({ ...readForm(), dose: f.dose, unit: f.unit });
  saveDraft();
  markStale();
  setStatus(`Dose changed to ${f.dose} ${UNIT_DISPLAY[f.unit] ?? f.unit}. Sign again to send it to the payer.`, 'ok');
  byId('dose').focus();
}

function showRaw(request: unknown, response: unknown): void {
  fill(
    byId('raw'),
    h('h2', {}, 'Raw messages'),
    h('details', {}, h('summary', {}, 'CDS Hooks request (order-sign, with prefetch)'), jsonBlock(request)),
    h('details', {}, h('summary', {}, 'CDS Hooks response'), jsonBlock(response)),
  );
  byId('raw').hidden = false;
}

// ---------------------------------------------------------------------------------------------------------------
// DTR launch (SMART EHR launch through the sandbox authorization server)

function launchDtr(s: CoverageSummary, adaptive = false): void {
  if (!state.patient?.id || !state.order?.id || !state.story) return;
  const q = new URLSearchParams({
    patient: state.patient.id,
    order: `MedicationRequest/${state.order.id}`,
    ...(state.coverage?.id ? { coverage: `Coverage/${state.coverage.id}` } : {}),
    ...(s.assertionId ? { coverageAssertionId: s.assertionId } : {}),
    ...(state.order.requester?.reference ? { user: state.order.requester.reference } : {}),
    return: `${new URL('.', document.baseURI).pathname}?story=${encodeURIComponent(state.story.id)}`,
    ...(adaptive ? { adaptive: '1' } : {}),
  });
  for (const c of s.questionnaires) q.append('questionnaire', c);
  setStatus('Opening the documentation app (DTR)…', 'busy');
  location.assign(here(`sandbox/auth/launch?${q.toString()}`));
}

// ---------------------------------------------------------------------------------------------------------------
// PAS (Claim/$submit)

async function buildPasBundle(): Promise<Bundle> {
  const patient = state.patient!;
  const order = state.order!;
  const coverage = state.coverage!;
  const p = encodeURIComponent(patient.id!);
  const [conditions, observations, medications, immunizations, responses] = await Promise.all(
    [
      `Condition?patient=${p}`,
      `Observation?patient=${p}`,
      `MedicationRequest?patient=${p}`,
      `Immunization?patient=${p}`,
      `QuestionnaireResponse?patient=${p}`,
    ].map((q) => fhirGet<Bundle>(q)),
  );
  const qr = entries<QuestionnaireResponse>(responses, 'QuestionnaireResponse')
    .filter((r) => r.status === 'completed')
    .sort(newestFirst)[0];
  const refs = new Map<string, Resource>();
  const add = (r: Resource | undefined | null) => {
    if (r?.id) refs.set(`${r.resourceType}/${r.id}`, r);
  };
  [patient, coverage, order, qr].forEach(add);
  for (const b of [conditions, observations, medications, immunizations]) entries<Resource>(b).forEach(add);
  const role = state.role;
  add(role);
  for (const ref of [role?.practitioner?.reference, role?.organization?.reference, coverage.payor?.[0]?.reference]) {
    if (ref && !refs.has(ref)) add(await fhirGet<Resource>(ref).catch(() => null));
  }
  const drug = DRUGS[formOf(order).drug];
  const dose = order.dosageInstruction?.[0]?.doseAndRate?.[0]?.doseQuantity;
  const claim: Claim = {
    resourceType: 'Claim',
    id: uuid(),
    identifier: [{ system: `${publicBase}/sandbox/claim`, value: uuid() }],
    status: 'active',
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
    use: 'preauthorization',
    patient: { reference: `Patient/${patient.id}` },
    created: new Date().toISOString(),
    insurer: coverage.payor?.[0]?.reference
      ? { reference: coverage.payor[0].reference }
      : { display: coverage.payor?.[0]?.display ?? 'payer' },
    provider: role?.id ? { reference: `PractitionerRole/${role.id}` } : { display: 'requesting provider' },
    priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/processpriority', code: 'normal' }] },
    insurance: [{ sequence: 1, focal: true, coverage: { reference: `Coverage/${coverage.id}` } }],
    ...(qr
      ? {
          supportingInfo: [
            {
              sequence: 1,
              category: { coding: [{ system: PAS_TEMP, code: 'additionalInformation' }] },
              valueReference: { reference: `QuestionnaireResponse/${qr.id}` },
            },
          ],
        }
      : {}),
    item: [
      {
        sequence: 1,
        extension: [
          {
            url: 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-requestedService',
            valueReference: { reference: `MedicationRequest/${order.id}` },
          },
        ],
        category: {
          coding: [{ system: 'https://codesystem.x12.org/005010/1365', code: '1', display: 'Medical Care' }],
        },
        productOrService: {
          coding: [
            {
              system: 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets',
              code: drug.hcpcs.code,
              display: drug.hcpcs.display,
            },
          ],
        },
        ...(dose?.value !== undefined ? { quantity: { value: dose.value, unit: dose.unit } } : {}),
      },
    ],
  };
  const fhirBase = `${publicBase}/sandbox/fhir`;
  const entry: BundleEntry[] = [
    { fullUrl: `${fhirBase}/Claim/${claim.id}`, resource: claim },
    ...[...refs.values()].map((r) => ({ fullUrl: `${fhirBase}/${r.resourceType}/${r.id}`, resource: r })),
  ];
  return {
    resourceType: 'Bundle',
    identifier: { system: `${publicBase}/sandbox/pas-request`, value: uuid() },
    type: 'collection',
    timestamp: new Date().toISOString(),
    entry,
  };
}

function reviewActionOf(cr: ClaimResponse): string | undefined {
  for (const item of cr.item ?? [])
    for (const adj of item.adjudication ?? [])
      for (const ext of adj.extension ?? [])
        if (ext.url === REVIEW_ACTION) {
          const code = (ext.extension ?? []).find((e: Extension) => e.url === REVIEW_ACTION_CODE)?.valueCodeableConcept
            ?.coding?.[0]?.code;
          if (code) return code;
        }
  return undefined;
}

/** The demo EHR's record of the order's prior authorization request: what it sent and the payer's latest answer. */
interface PasRecord {
  orderId: string;
  /** The request Bundle's identifier, which `$inquire` finds the request by. */
  identifier: { system: string; value: string };
  /** The request's Claim identifier: a Claim Update names the request it updates by it (PAS `related.claim`). */
  claimIdentifier?: { system: string; value: string };
  claimResponse: ClaimResponse;
  sentAt: string;
  /** When this page last sent an update of the request (its documentation), if it did. */
  updatedAt?: string;
  /** When this page first saw the final decision (A1/A3): a decision after the last signing overtakes its answer. */
  decidedAt?: string;
}
const pasKey = (orderId: string) => `priorpath-demo:pas:${orderId}`;

function loadPas(orderId: string | undefined): PasRecord | undefined {
  if (!orderId) return undefined;
  try {
    return (JSON.parse(localStorage.getItem(pasKey(orderId)) ?? 'null') as PasRecord | null) ?? undefined;
  } catch {
    return undefined;
  }
}

function savePas(r: PasRecord): void {
  localStorage.setItem(pasKey(r.orderId), JSON.stringify(r));
}

function setSubmitting(on: boolean): void {
  state.submitting = on;
  for (const id of ['submit-pas', 'submit-pas-doc']) {
    const b = document.getElementById(id) as HTMLButtonElement | null;
    if (!b) continue;
    b.disabled = on;
    b.setAttribute('aria-busy', String(on));
  }
}

/** Shows the order's prior authorization request as the payer last answered it. */
function renderPas(r: PasRecord, extra: (HTMLElement | null)[] = []): void {
  const box = byId('pas');
  const cr = r.claimResponse;
  const code = reviewActionOf(cr);
  const period = cr.preAuthPeriod;
  const notes = (cr.processNote ?? []).map((n) => n.text).filter((t): t is string => !!t);
  const needed = notes.filter((n) => /^Needed: /.test(n)).map((n) => n.replace(/^Needed: /, ''));
  const other = notes.filter((n) => !/^Needed: /.test(n));
  const headline =
    code === 'A1'
      ? `Prior authorization approved: ${cr.preAuthRef ?? ''}${period?.end ? ` valid until ${formatDate(period.end)}` : ''}`
      : code === 'A3'
        ? 'Prior authorization denied'
        : code === 'A4'
          ? 'Pended for review'
          : `The payer answered${code ? ` (${code})` : ''}`;
  const tone = code === 'A1' ? 'approved' : code === 'A3' ? 'not-covered' : 'needed';
  fill(
    box,
    h('h2', {}, 'Prior authorization request (PAS)'),
    h('p', { class: `decision decision-${tone}`, 'data-testid': 'pas-decision' }, headline),
    h('p', { class: 'muted', 'data-testid': 'pas-sent' }, `Sent ${when(r.sentAt)}.${r.updatedAt ? ` Documentation sent to it as an update ${when(r.updatedAt)}.` : ''}`),
    needed.length
      ? h(
          'div',
          {},
          h('p', {}, 'The payer still needs:'),
          h(
            'ul',
            { class: 'notes' },
            needed.map((n) => h('li', {}, readable(n))),
          ),
        )
      : null,
    other.length
      ? h(
          'ul',
          { class: 'notes' },
          other.map((n) => h('li', {}, readable(n))),
        )
      : null,
    code === 'A4'
      ? h(
          'p',
          { class: 'muted', 'data-testid': 'pas-waiting' },
          'A reviewer decides pended requests; the answer appears here when it arrives.',
        )
      : null,
    ...extra,
    h(
      'details',
      { class: 'tech' },
      h('summary', {}, 'Details'),
      h('p', { class: 'mono' }, `ClaimResponse/${cr.id ?? ''} · request ${r.identifier.value}`),
    ),
  );
  box.hidden = false;
  clearTimeout(state.inquiryTimer);
  if (code === 'A4') state.inquiryTimer = setTimeout(() => void inquire(r), INQUIRY_EVERY_MS);
}

/** A PAS decision just received that contradicts the signing answer on screen puts that answer out of date. */
function overtakeSigningAnswer(action: 'A1' | 'A3'): void {
  if (!supersededByDecision(state.lastSummary, action)) return;
  state.supersededBy = action;
  markStale();
  renderRequestOffer();
}

/** How often the page asks the payer about a pended request (PAS `$inquire`); the sandbox reviewer is quick. */
const INQUIRY_EVERY_MS = 3000;

/** PAS `$inquire` by the request's identifier: a pended request's decision, once a reviewer has made it. */
async function inquire(r: PasRecord): Promise<void> {
  if (state.order?.id !== r.orderId) return;
  try {
    const answer = await fetchJson<Parameters | Bundle>(here('fhir/Claim/$inquire'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json' },
      body: JSON.stringify({
        resourceType: 'Parameters',
        parameter: [{ name: 'identifier', valueIdentifier: r.identifier }],
      }),
    });
    // PAS 2.0.1 answers the Bundle itself, 2.2.1 a Parameters holding it.
    const bundle =
      answer.resourceType === 'Bundle'
        ? answer
        : (answer.parameter?.find((p) => p.resource?.resourceType === 'Bundle')?.resource as Bundle | undefined);
    const cr = bundle?.entry
      ?.map((e) => e.resource)
      .find((x): x is ClaimResponse => x?.resourceType === 'ClaimResponse');
    if (cr && reviewActionOf(cr) !== reviewActionOf(r.claimResponse)) {
      const action = reviewActionOf(cr);
      const final = action === 'A1' || action === 'A3';
      const next = { ...r, claimResponse: cr, ...(final ? { decidedAt: new Date().toISOString() } : {}) };
      savePas(next);
      renderPas(next);
      // The signing answer above (documentation required, pended) is now out of date: one answer for the order.
      if (final) overtakeSigningAnswer(action);
      setStatus(
        `The payer decided the prior authorization request: ${reviewActionOf(cr) === 'A1' ? 'approved' : 'denied'}.`,
        'ok',
      );
      return;
    }
  } catch {
    // The next poll tries again; the page keeps showing the pended request.
  }
  clearTimeout(state.inquiryTimer);
  state.inquiryTimer = setTimeout(() => void inquire(r), INQUIRY_EVERY_MS);
}

/**
 * The request Bundle as a PAS Claim Update of the pended request (PAS 2.2.1 "Updating Authorization Requests"): the
 * Claim names the prior Claim by its identifier (`related.claim`, relationship prior) and marks its documentation
 * `infoChanged` added, so the payer decides the pended item again over it (design.md §8 "Claim updates").
 */
function asUpdateOf(bundle: Bundle, pended: PasRecord): Bundle {
  const claim = bundle.entry![0].resource as Claim;
  claim.related = [
    {
      claim: { identifier: pended.claimIdentifier },
      relationship: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship', code: 'prior' }] },
    },
  ];
  claim.supportingInfo = claim.supportingInfo?.map((i) => ({ ...i, extension: [...(i.extension ?? []), { url: INFO_CHANGED, valueCode: 'added' }] }));
  return bundle;
}

async function submitPas(): Promise<void> {
  if (state.submitting) return;
  const box = byId('pas');
  box.hidden = false;
  setSubmitting(true);
  const pended = pendedRequest();
  fill(box, h('h2', {}, 'Prior authorization request (PAS)'), h('p', {}, pended ? 'Sending the update of the pended request…' : 'Sending the request…'));
  let request: Bundle | undefined;
  try {
    request = pended ? asUpdateOf(await buildPasBundle(), pended) : await buildPasBundle();
    const answer = await fetchJson<Bundle>(here('fhir/Claim/$submit'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json' },
      body: JSON.stringify(request),
    });
    const cr = answer.entry?.[0]?.resource as ClaimResponse | undefined;
    if (!cr || cr.resourceType !== 'ClaimResponse') throw new Error('the payer sent no ClaimResponse');
    const action = reviewActionOf(cr);
    const final = action === 'A1' || action === 'A3';
    const sentAt = new Date().toISOString();
    const claim = request.entry?.[0]?.resource as Claim;
    // An update keeps the request it updates: its identifiers, which $inquire and a later update find it by.
    const record: PasRecord = pended
      ? { ...pended, claimResponse: cr, updatedAt: sentAt, ...(final ? { decidedAt: sentAt } : {}) }
      : {
          orderId: state.order!.id!,
          identifier: request.identifier as { system: string; value: string },
          claimIdentifier: claim.identifier?.[0] as { system: string; value: string },
          claimResponse: cr,
          sentAt,
          ...(final ? { decidedAt: sentAt } : {}),
        };
    savePas(record);
    renderPas(record, [
      h('details', {}, h('summary', {}, 'PAS request Bundle'), jsonBlock(request)),
      h('details', {}, h('summary', {}, 'PAS response Bundle'), jsonBlock(answer)),
    ]);
    if (final) overtakeSigningAnswer(action);
    // Pended now (or still): every button that sent it becomes the update of this request (pendedRequest).
    renderRequestOffer();
    const top = document.getElementById('submit-pas');
    if (top) top.textContent = submitLabel(state.lastSummary);
  } catch (err) {
    const missing = err instanceof HttpError && err.status === 404;
    fill(
      box,
      h('h2', {}, 'Prior authorization request (PAS)'),
      h(
        'p',
        { class: 'decision decision-unclear' },
        missing
          ? 'Prior authorization submission (PAS) is not available on this server.'
          : `The request failed: ${problemWords(err).replace(/\.$/, '')}.`,
      ),
      request ? h('details', {}, h('summary', {}, 'PAS request Bundle'), jsonBlock(request)) : null,
    );
  } finally {
    setSubmitting(false);
    // The pressed button was disabled while in flight and the focus fell to the page: the answer (or why there is
    // none) is where the clinician reads on.
    if (document.activeElement === document.body) box.focus();
  }
}

// ---------------------------------------------------------------------------------------------------------------

function wire(): void {
  byId('order-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void sign();
  });
  byId('order-form').addEventListener('input', (e) => {
    (e.target as HTMLElement).removeAttribute('aria-invalid');
    updateOrderText();
    saveDraft();
    markStale();
  });
  byId('order-form').addEventListener('change', markStale);
  byId('drug').addEventListener('change', () => {
    const drug = byId<HTMLSelectElement>('drug').value as DrugKey;
    writeForm({ ...readForm(), dose: DRUGS[drug].defaultDose.value, unit: DRUGS[drug].defaultDose.unit });
    saveDraft();
    markStale();
  });
  byId('reset').addEventListener('click', () => {
    if (!state.story || !state.chartOrder) return;
    sessionStorage.removeItem(draftKey(state.story.id));
    writeForm(formOf(state.chartOrder));
    markStale();
    setStatus("Back to the chart's draft order.", 'ok');
  });
  document.addEventListener('click', (e) => {
    const smart = (e.target as HTMLElement).closest('[data-smart]');
    if (smart && state.lastSummary) launchDtr(state.lastSummary);
  });
}

async function main(): Promise<void> {
  wire();
  await showPatients();
  const story = new URLSearchParams(location.search).get('story');
  if (story) await openChart(story);
}

main().catch((err: unknown) => setStatus(`The demo EHR could not load: ${(err as Error).message}`, 'error'));
