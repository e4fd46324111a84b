import FHIR from 'fhirclient';
import type {
  Bundle,
  Coverage,
  Extension,
  MedicationRequest,
  OperationOutcome,
  Parameters,
  Patient,
  Questionnaire,
  QuestionnaireResponse,
  QuestionnaireResponseItemAnswer,
  Resource,
  ValueSet,
} from '@medplum/fhirtypes';
import { coverageInformationOf, COVERAGE_INFO_URL, formatDate, orderDecisionOf, orderPendedOf, settlesPendedRequest, stillToDocument, summarizeCoverage } from '../shared/coverage.js';
import type { CoverageSummary } from '../shared/coverage.js';
import { announce, byId, describeErrorBody, fetchJson, fill, h, jsonBlock, NetworkError, problemWords } from '../shared/dom.js';
import type { NoticeKind } from '../shared/dom.js';
import { labelAttachmentFields } from './attachment-labels.js';
import { markInvalidFields } from './invalid-fields.js';
import { dateBoundProblems, ONE_SIDED_BOUND, rangeMessages, withExcludedMinimums } from './bounds.js';
import type { BoundProblem } from './bounds.js';
import { syncRadioStates } from './radio-state.js';
import { listEntries, markNeededFields, neededQuestions } from './needed.js';
import { labelUnitFields } from './unit-labels.js';
import { chartSources, originLine } from './chart-origin.js';
import type { ChartData, ChartSource } from './chart-origin.js';
import { DraftSaver, latestResponse } from './draft.js';
import { dropUnsaved, keepUnsaved, takeUnsaved, unsavedKey } from './unsaved-copy.js';
import { fhirpathR4, lforms, responseWithoutInvalid, withContainedValueSets, withPopulationContext, withViewMode } from './lforms.js';
import type { AnswerSnapshot } from './origin.js';
import {
  answerKey,
  countOrigins,
  flattenAnswered,
  INFORMATION_ORIGIN_URL,
  mergeAdaptiveAnswers,
  originOf,
  pruneEmpty,
  snapshotAnswers,
  stampInformationOrigin,
} from './origin.js';

/**
 * The PriorPath DTR SMART app (design.md §2, §7; DTR 2.x §"DTR SMART App"): after the EHR launch it reads the order
 * and Coverage from the EHR, asks the payer for the Questionnaire package, renders it pre-filled with LHC-Forms,
 * saves the completed QuestionnaireResponse to the EHR with `information-origin` on every answer, sends it to the
 * payer and shows the payer's determination in plain words.
 */

type Client = Awaited<ReturnType<typeof FHIR.oauth2.ready>>;

const DTR = 'http://hl7.org/fhir/us/davinci-dtr/StructureDefinition';
const EXT_QR_CONTEXT = `${DTR}/qr-context`;
const EXT_INTENDED_USE = `${DTR}/intendedUse`;
const EXT_ADAPTIVE = 'http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-questionnaireAdaptive';
const CRD_TEMP = 'http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp';

/** The payer's FHIR base: PriorPath serves this app at `{base}/dtr/`, its payer API at `{base}/fhir`. */
const payerBase = new URL('../fhir', location.href).toString().replace(/\/$/, '');

/** What the EHR launch told us (SMART `fhirContext`, and PriorPath's or the CRD RI's `appContext`). */
interface DtrContext {
  patientId?: string;
  orderRef?: string;
  coverageRef?: string;
  assertionId?: string;
  questionnaires: string[];
  returnUrl?: string;
  /** Use the payer's adaptive form (`$next-question`) even for a static Questionnaire. */
  adaptive?: boolean;
}

/** A notice in the page's status or alert region (shared/dom.ts `announce`: errors that stop the user are alerts). */
function setStatus(text: string, kind: NoticeKind = 'busy'): void {
  announce(text, kind);
}

/** appContext is JSON (PriorPath's CRD card and sandbox launch) or `key=value&…` (the CRD reference implementation). */
export function parseAppContext(raw: unknown): Record<string, unknown> {
  if (typeof raw !== 'string' || raw.trim() === '')
    return typeof raw === 'object' && raw ? (raw as Record<string, unknown>) : {};
  try {
    const v: unknown = JSON.parse(raw);
    if (v && typeof v === 'object') return v as Record<string, unknown>;
  } catch {
    // not JSON: the RI's form encoding
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of new URLSearchParams(raw.includes('%') ? decodeURIComponent(raw) : raw)) {
    if (k === 'questionnaire') out.questionnaire = [...((out.questionnaire as string[]) ?? []), v];
    else out[k] = v;
  }
  return out;
}

function readContext(client: Client): DtrContext {
  const token = (client.state.tokenResponse ?? {}) as Record<string, unknown>;
  const app = parseAppContext(token.appContext);
  const ctx: DtrContext = { patientId: client.patient.id ?? undefined, questionnaires: [] };
  for (const item of (token.fhirContext as { reference?: string; canonical?: string; type?: string }[] | undefined) ??
    []) {
    if (item.reference?.startsWith('Coverage/')) ctx.coverageRef = item.reference;
    else if (item.reference && /^(MedicationRequest|ServiceRequest|DeviceRequest)\//.test(item.reference))
      ctx.orderRef = item.reference;
    if (item.canonical && (item.type === 'Questionnaire' || !item.type)) ctx.questionnaires.push(item.canonical);
  }
  ctx.orderRef ??= typeof app.order === 'string' ? app.order : undefined;
  ctx.coverageRef ??= typeof app.coverage === 'string' ? app.coverage : undefined;
  ctx.assertionId = typeof app.coverageAssertionId === 'string' ? app.coverageAssertionId : undefined;
  const q = app.questionnaire;
  for (const c of Array.isArray(q) ? q : typeof q === 'string' ? [q] : [])
    if (typeof c === 'string' && !ctx.questionnaires.includes(c)) ctx.questionnaires.push(c);
  if (typeof app.returnUrl === 'string' && app.returnUrl.startsWith('/')) ctx.returnUrl = app.returnUrl;
  ctx.adaptive = app.adaptive === true || app.adaptive === 'true';
  return ctx;
}

function patientName(p: Patient): string {
  const n = p.name?.[0];
  return n
    ? [...(n.prefix ?? []), ...(n.given ?? []), n.family].filter(Boolean).join(' ')
    : (p.id ?? 'Unknown patient');
}

function renderBanner(p: Patient, order: MedicationRequest | undefined): void {
  const mrn = p.identifier?.find((i) => i.type?.coding?.some((c) => c.code === 'MR'))?.value;
  const parts = [
    h('span', { class: 'banner-name' }, patientName(p)),
    h('span', {}, `Born ${formatDate(p.birthDate)}`),
    p.gender ? h('span', {}, p.gender) : null,
    mrn ? h('span', {}, `MRN ${mrn}`) : null,
    order
      ? h(
          'span',
          { class: 'banner-order' },
          `Order: ${order.medicationCodeableConcept?.text ?? order.medicationCodeableConcept?.coding?.[0]?.display ?? 'medication'}`,
        )
      : null,
  ];
  byId('banner').replaceChildren(...parts.filter((x): x is HTMLSpanElement => x !== null));
  byId('banner').hidden = false;
}

/** Whether a package's Questionnaire computes anything in CQL, which this app's renderer (LHC-Forms) cannot run. */
function needsCql(bundle: Bundle): boolean {
  const q = bundle.entry?.find((e) => e.resource?.resourceType === 'Questionnaire')?.resource;
  let cql = false;
  JSON.stringify(q ?? {}, (k, v: unknown) => {
    if (k === 'language' && typeof v === 'string' && v.startsWith('text/cql')) cql = true;
    return v;
  });
  return cql;
}

/**
 * The package Bundle to render from a `$questionnaire-package` answer: Parameters (2.0.1 `PackageBundle`, 2.2
 * `packagebundle`) or a bare Bundle. A payer may send the same form in both versions; this app pre-fills with FHIRPath
 * and x-fhir-query (SDC), so it takes the first package whose Questionnaire needs no CQL, else the first.
 */
export function firstPackage(answer: Resource): { bundle?: Bundle; outcome?: OperationOutcome } {
  if (answer.resourceType === 'Bundle') return { bundle: answer };
  if (answer.resourceType === 'OperationOutcome') return { outcome: answer };
  if (answer.resourceType === 'Parameters') {
    const params = (answer as Parameters).parameter ?? [];
    const bundles = params
      .filter(
        (p) =>
          (p.name === 'PackageBundle' || p.name === 'packagebundle' || p.name === 'return') &&
          p.resource?.resourceType === 'Bundle',
      )
      .map((p) => p.resource as Bundle);
    const bundle = bundles.find((b) => !needsCql(b)) ?? bundles[0];
    const outcome = params.find((p) => p.resource?.resourceType === 'OperationOutcome')?.resource as
      | OperationOutcome
      | undefined;
    return { bundle, outcome };
  }
  return {};
}

async function readCoverage(client: Client, ctx: DtrContext, order: MedicationRequest | undefined): Promise<Coverage> {
  const ref = ctx.coverageRef ?? order?.insurance?.[0]?.reference;
  if (ref) return client.request<Coverage>(ref);
  const found = await client.request<Bundle>(
    `Coverage?patient=${encodeURIComponent(ctx.patientId ?? '')}&status=active`,
  );
  const coverage = found.entry?.map((e) => e.resource).find((r): r is Coverage => r?.resourceType === 'Coverage');
  if (!coverage) throw new Error('The EHR has no active Coverage for this patient.');
  return coverage;
}

interface FormState {
  client: Client;
  ctx: DtrContext;
  patient: Patient;
  order?: MedicationRequest;
  coverage: Coverage;
  questionnaire: Questionnaire;
  canonical: string;
  initial: AnswerSnapshot;
  /** The pre-filled answers as the clinician read them, for "changed by you (the chart said …)". */
  initialText: Map<string, string>;
  /** linkIds the payer pre-filled from what it read at signing. */
  fromPayer: Set<string>;
  /** Where each pre-filled answer was read from in the chart (filled in once the chart has been read). */
  sources: Map<string, ChartSource>;
  author?: string;
  container: HTMLElement;
  draft?: DraftSaver;
  /** A send is in flight: a second click (or Enter) does nothing. */
  sending: boolean;
  /**
   * The payer has completed the adaptive form (SDC §Adaptive Questionnaires: `$next-question` answered `completed`):
   * that session is over, so nothing on the page can send it again, whatever the determination says.
   */
  completed?: boolean;
  valueSets: ValueSet[];
  prefilled?: QuestionnaireResponse;
  /** The Questionnaire whose items are on the page (the static form, or the adaptive step's), for its bounds (bounds.ts). */
  onPage?: Questionnaire;
  /** Answers outside a bound LHC-Forms does not check (a date's latest day), by linkId: marked on their fields. */
  outOfBounds?: Map<string, string>;
  /**
   * The questions the payer's latest determination says it still needs (needed.ts), by linkId with their text: marked
   * on the form, linked from the "Still to document" line, and asked about before sending without them (review ui s44 M4).
   */
  needed: Map<string, string>;
  /** The clinician chose to send without the questions the payer still needs (after being told which). */
  sendWithoutNeeded?: boolean;
  /** The problems of the answers the draft being saved leaves out because they are not valid (review ui s44 L4). */
  draftLeftOut?: string[];
}

async function main(): Promise<void> {
  setStatus('Connecting to the EHR…');
  const client = await FHIR.oauth2.ready();
  const ctx = readContext(client);
  if (ctx.returnUrl) {
    const back = byId<HTMLAnchorElement>('back');
    back.href = ctx.returnUrl;
    back.hidden = false;
  }
  if (!ctx.patientId) throw new Error('The EHR launch carried no patient.');
  const patient = await client.request<Patient>(`Patient/${encodeURIComponent(ctx.patientId)}`);
  const order = ctx.orderRef ? await client.request<MedicationRequest>(ctx.orderRef) : undefined;
  renderBanner(patient, order);
  const coverage = await readCoverage(client, ctx, order);

  // The order's CRD coverage-information names the form and the assertion when the launch did not (CRD §DTR launch).
  const crd = coverageInformationOf(order)[0];
  const crdSummary = crd ? summarizeCoverage(crd, 'signing') : undefined;
  ctx.assertionId ??= crdSummary?.assertionId;
  if (ctx.questionnaires.length === 0 && crdSummary) ctx.questionnaires.push(...crdSummary.questionnaires);

  setStatus('Asking the payer which documentation it needs…');
  const params: Parameters = {
    resourceType: 'Parameters',
    parameter: [
      { name: 'coverage', resource: coverage },
      ...(order ? [{ name: 'order', resource: order }] : []),
      ...ctx.questionnaires.map((c) => ({ name: 'questionnaire', valueCanonical: c })),
      ...(ctx.assertionId ? [{ name: 'context', valueString: ctx.assertionId }] : []),
    ],
  };
  const answer = await fetchJson<Resource>(`${payerBase}/Questionnaire/$questionnaire-package`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/fhir+json' },
    body: JSON.stringify(params),
  });
  const { bundle, outcome } = firstPackage(answer);
  const questionnaire = bundle?.entry?.[0]?.resource as Questionnaire | undefined;
  if (!bundle || questionnaire?.resourceType !== 'Questionnaire') {
    const why = outcome ? describeErrorBody(outcome) : '';
    setStatus(why || 'The payer has no form for this order.', 'ok');
    return;
  }
  const valueSets = (bundle.entry ?? [])
    .map((e) => e.resource)
    .filter((r): r is ValueSet => r?.resourceType === 'ValueSet');
  const prefilled = (bundle.entry ?? [])
    .map((e) => e.resource)
    .find((r): r is QuestionnaireResponse => r?.resourceType === 'QuestionnaireResponse');
  const canonical = questionnaire.version ? `${questionnaire.url}|${questionnaire.version}` : (questionnaire.url ?? '');
  byId('form-title').textContent = questionnaire.title ?? 'Prior authorization documentation';
  // The order already has its decision (a reviewer's, a PAS answer's, an earlier response's): that is what the
  // clinician reads, not an earlier "Still needed" with an invitation to document an order the payer has decided.
  const decided = orderDecisionOf(outcome);
  // Or a PAS request pends the order for a reviewer: said when the form opens, above it (showPended).
  showPended(decided ? undefined : orderPendedOf(outcome));

  const user = await readUser(client, order);
  const author = client.getFhirUser() ?? order?.requester?.reference ?? undefined;
  const container = byId('form');
  const state: FormState = {
    client,
    ctx,
    patient,
    order,
    coverage,
    questionnaire,
    canonical,
    initial: new Map(),
    initialText: new Map(),
    fromPayer: new Set(),
    sources: new Map(),
    author,
    container,
    sending: false,
    valueSets,
    prefilled,
    needed: new Map(),
  };
  showStillNeeded(state, crdSummary?.reasons ?? []);

  if (
    ctx.adaptive ||
    questionnaire.extension?.some((e) => e.url === EXT_ADAPTIVE && (e.valueBoolean === true || !!e.valueUrl))
  ) {
    if (decided) {
      showOrderDecision(decided, ctx.returnUrl);
      return;
    }
    await runAdaptive(state, user, valueSets, prefilled);
    return;
  }

  lforms().setFHIRContext(client, { patient, ...(user ? { user } : {}) });
  byId<HTMLButtonElement>('save').addEventListener('click', () => {
    void save(state);
  });
  wireForm(state);
  void readChart(state, user);

  // DTR §"Resuming": the newest response for this form and order in the EHR decides where the clinician starts.
  setStatus('Looking for answers already saved in the EHR…');
  const orderRef = order?.id ? `${order.resourceType}/${order.id}` : undefined;
  let unread = false;
  const found = await client
    .request<Bundle>(`QuestionnaireResponse?patient=${encodeURIComponent(patient.id ?? '')}&_count=200`)
    .catch(() => {
      unread = true;
      return undefined;
    });
  const previous = latestResponse(found, canonical, orderRef);
  // The documentation sent for this order already shows the order's decision (its own approval): shown as sent, with
  // Revise, as before. A decision it does not show (a reviewer's after "Still needed") takes the place of the form.
  if (decided && !showsDecision(previous, decided)) {
    showOrderDecision(decided, ctx.returnUrl);
    return;
  }
  // Answers typed after the EHR stopped taking them (an expired sign-in, the network down) come back before the EHR's
  // older draft, and go to the EHR at once with this launch's sign-in.
  const unsaved = takeUnsaved(sessionStorage, unsavedKeyOf(state), previous);
  if (unsaved) {
    await renderForm(state, { ...unsaved, id: previous?.status === 'in-progress' ? previous.id : unsaved.id });
    setStatus(
      `The answers you typed after the EHR last saved them (${formatWhen(unsaved.authored)}) are back. They are being saved in the EHR now.`,
      'ok',
    );
    byId('draft-status').textContent = '';
    void state.draft?.saveNow().catch(() => undefined);
    return;
  }
  if (previous && previous.status !== 'in-progress' && coverageInformationOf(previous).length > 0) {
    showSent(state, previous);
    return;
  }
  await renderForm(state, previous?.status === 'in-progress' ? previous : undefined);
  // Answers saved earlier may exist and were not read: the clinician must not take the fresh form for all there is.
  if (unread)
    setStatus(
      'The EHR did not give the answers saved earlier for this form, if there are any: this form starts from the chart. Reopen it later to get them back.',
      'warn',
    );
}

/**
 * Renders the form: pre-filled from the chart and the payer's copy (a fresh start), or with the answers of a draft
 * saved in the EHR (resuming: nothing is pre-filled over them; each answer keeps the origin it had), or with the
 * answers sent before (revising).
 */
async function renderForm(
  state: FormState,
  draft: QuestionnaireResponse | undefined,
  revising?: QuestionnaireResponse,
): Promise<void> {
  const util = lforms();
  setStatus(draft ? 'Opening the answers saved in the EHR…' : 'Filling in what the chart already shows…');
  util.removeFormsFromPage(state.container);
  let form = util.convertFHIRQuestionnaireToLForms(withContainedValueSets(state.questionnaire, state.valueSets), 'R4');
  const base = draft ?? revising;
  if (base?.item?.length) form = util.mergeFHIRDataIntoLForms('QuestionnaireResponse', base, form, 'R4');
  else if (state.prefilled?.item?.length)
    form = util.mergeFHIRDataIntoLForms('QuestionnaireResponse', state.prefilled, form, 'R4');
  await customElements.whenDefined('wc-lhc-form');
  state.onPage = state.questionnaire;
  await util.addFormToPage(withViewMode(withExcludedMinimums(form, state.questionnaire)), state.container, { prepopulate: !base });
  state.fromPayer = new Set(snapshotAnswers(state.prefilled).keys());
  if (base) {
    // The saved answers' own origins say which were the chart's: those count as pre-filled.
    const initial: AnswerSnapshot = new Map();
    for (const item of flattenAnswered(base.item)) {
      const origins = (item.answer ?? []).map(
        (a) =>
          a.extension?.find((e) => e.url === INFORMATION_ORIGIN_URL)?.extension?.find((e) => e.url === 'source')
            ?.valueCode,
      );
      if (origins.some((o) => o?.startsWith('auto'))) initial.set(item.linkId, (item.answer ?? []).map(answerKey));
      else if (origins.includes('override')) initial.set(item.linkId, ['(changed)']);
    }
    state.initial = initial;
  } else {
    state.initial = snapshotAnswers(currentResponse(state));
  }
  state.initialText = new Map(
    flattenAnswered(currentResponse(state).item)
      .filter((i) => state.initial.has(i.linkId) && !state.initial.get(i.linkId)!.includes('(changed)'))
      .map((i) => [i.linkId, (i.answer ?? []).map(answerText).join(', ')]),
  );

  await state.draft?.stop();
  state.draft = newDraft(state, draft?.id);
  showOrigins(state);
  const filled = [...state.initial.keys()].length;
  setStatus(
    draft
      ? `Your answers saved ${formatWhen(draft.meta?.lastUpdated ?? draft.authored)} are back. Complete the rest and send.`
      : revising
        ? 'The answers you sent are in the form: change what you need and send again.'
        : filled
          ? `${filled} answer${filled === 1 ? '' : 's'} pre-filled from the chart. Complete the rest and save.`
          : 'Complete the form and save.',
    'ok',
  );
  byId('draft-status').textContent = draft ? 'Draft saved in the EHR.' : '';
  byId('result').hidden = true;
  byId('actions').hidden = false;
  const button = byId<HTMLButtonElement>('save');
  button.disabled = false;
  button.textContent = revising ? 'Save and send again' : 'Save and send to the payer';
}

/** The page is going away (pagehide, until a pageshow brings it back from the back/forward cache). */
let leaving = false;

/** Where this tab keeps the answers the EHR refused, for this form and order (unsaved-copy.ts). */
function unsavedKeyOf(state: FormState): string {
  const order = state.order?.id ? `${state.order.resourceType}/${state.order.id}` : `Patient/${state.patient.id}`;
  return unsavedKey(state.canonical, order);
}

/** The answers on the page, kept in this tab because the EHR did not take them (unsaved-copy.ts). */
function keepOnPageAnswers(state: FormState, id: string | undefined): void {
  try {
    const qr = { ...finalResponse(state, draftAnswers(state)), status: 'in-progress' as const };
    keepUnsaved(sessionStorage, unsavedKeyOf(state), id ? { ...qr, id } : qr);
  } catch {
    // The form is gone from the page (sent meanwhile): nothing to keep.
  }
}

/** Autosave of the in-progress response to the EHR (DTR §"Saving": in-progress responses are kept in the EHR). */
function newDraft(state: FormState, id: string | undefined): DraftSaver {
  const saver: DraftSaver = new DraftSaver(
    { serverUrl: state.client.state.serverUrl, authorization: () => state.client.getAuthorizationHeader() },
    () => ({ ...finalResponse(state, draftAnswers(state)), status: 'in-progress' }),
    (at) => {
      dropUnsaved(sessionStorage, unsavedKeyOf(state));
      const left = state.draftLeftOut;
      byId('draft-status').textContent = left
        ? `Draft saved in the EHR at ${at.slice(11, 16)} UTC, without the answer that is not valid: ${left.join(' ') || 'the answer marked on the form.'} Correct it and it is saved too.`
        : `Draft saved in the EHR at ${at.slice(11, 16)} UTC.`;
    },
    (err) => {
      if (err instanceof InvalidAnswers) {
        // Nothing the EHR did: the form cannot be saved anywhere until the answer is corrected, so the clinician is told.
        byId('draft-status').textContent =
          `The draft is not saved while an answer is not valid: ${err.problems.join(' ') || 'check the answers marked on the form.'} Correct it and the draft is saved again.`;
        return;
      }
      // A save the page's own unload cancelled is not the EHR refusing it: the way-out save (flush, keepalive) carries
      // the answers. A copy kept here would be newer than that save and come back on the next launch as answers "typed
      // after the EHR last saved them", which they were not.
      if (leaving) return;
      keepOnPageAnswers(state, saver.id);
      byId('draft-status').textContent =
        // fetch rejects with the browser's own words ("Failed to fetch") when the network fails: say it in ours.
        `The draft could not be saved in the EHR: ${problemWords(err instanceof TypeError ? new NetworkError(false) : err).replace(/\.$/, '')}. Your answers are still on this page, and come back if you open the form again from the EHR in this tab.`;
    },
    1200,
    id,
  );
  return saver;
}

/**
 * The answers a draft saves: the form's response, or while an answer is not valid (LHC-Forms then gives none) every
 * other answer, the invalid one left out and named in `state.draftLeftOut`, so a reload or a closed tab loses only the
 * answer that could not be saved (review ui s44 L4). Throws InvalidAnswers only when even that cannot be had.
 */
function draftAnswers(state: FormState): QuestionnaireResponse {
  try {
    const qr = currentResponse(state);
    state.draftLeftOut = undefined;
    return qr;
  } catch (err) {
    if (!(err instanceof InvalidAnswers)) throw err;
    const partial = responseWithoutInvalid(state.container);
    if (!partial) throw err;
    state.draftLeftOut = err.problems;
    return { ...partial.qr, subject: { reference: `Patient/${state.patient.id}` } };
  }
}

function formatWhen(iso: string | undefined): string {
  return iso ? `on ${formatDate(iso)} at ${iso.slice(11, 16)} UTC` : 'earlier';
}

/** Each answered question's answers as the clinician reads them, by linkId. */
function textsOf(items: QuestionnaireResponse['item']): Map<string, string> {
  return new Map(flattenAnswered(items).map((i) => [i.linkId, (i.answer ?? []).map(answerText).join(', ')]));
}

function answerText(a: QuestionnaireResponseItemAnswer): string {
  if (a.valueBoolean !== undefined) return a.valueBoolean ? 'Yes' : 'No';
  if (a.valueCoding) return a.valueCoding.display ?? a.valueCoding.code ?? '';
  if (a.valueQuantity) return `${a.valueQuantity.value ?? ''} ${a.valueQuantity.unit ?? ''}`.trim();
  if (a.valueDate) return formatDate(a.valueDate);
  const v = Object.entries(a).find(([k]) => k.startsWith('value'))?.[1];
  return v === undefined ? '' : String(v);
}

/**
 * A section with nothing to answer is not shown: when every question of a group is disabled (SDC enableWhen, e.g.
 * the infant pathway for an adult, or the justification of a limit the order is within), LHC-Forms still draws the
 * group's heading over an empty box, which reads as a part of the form that failed to load. The headings come and go
 * with their questions, whatever the Questionnaire (static or adaptive), so this watches the form itself.
 */
function hideEmptyGroups(container: HTMLElement): MutationObserver {
  const update = () => {
    for (const group of container.querySelectorAll<HTMLElement>('lhc-item.lhc-item-group')) {
      const empty = !group.querySelector('lhc-item:not(.lhc-item-group)');
      if (group.hidden !== empty) group.hidden = empty;
    }
  };
  const observer = new MutationObserver(update);
  observer.observe(container, { childList: true, subtree: true });
  update();
  return observer;
}

/** Every edit: show where each answer now comes from, and save the draft after a pause. */
function wireForm(state: FormState): void {
  hideEmptyGroups(state.container);
  // LHC-Forms draws (and redraws, on a toggle or an enableWhen) attachment controls without names, and validation
  // messages tied to no field: name each control, and mark each field with its message.
  new MutationObserver(() => {
    labelAttachmentFields(state.container);
    labelUnitFields(state.container);
    markInvalidFields(state.container, state.outOfBounds, rangesOf(state).byLinkId);
    markNeededFields(state.container, new Set(state.needed.keys()));
  }).observe(state.container, { childList: true, subtree: true, characterData: true });
  const edited = () => {
    showOrigins(state);
    state.draft?.schedule();
  };
  for (const type of ['change', 'input']) state.container.addEventListener(type, edited);
  // The bounds LHC-Forms does not check (bounds.ts) are checked once its model has the answer: a tick after an edit,
  // and when a field is left (its date picker settles the typed date then, with no change event of its own).
  const bounds = () => setTimeout(() => checkBounds(state), 0);
  for (const type of ['change', 'input', 'focusout']) state.container.addEventListener(type, bounds);
  // LHC-Forms' radio groups and autocompletes settle their model after the click; read it a tick later, when the
  // browser has also undone the cancelled radio click (radio-state.ts). Captured: the radio stops the click's bubbling.
  state.container.addEventListener(
    'click',
    () =>
      setTimeout(() => {
        syncRadioStates(state.container);
        edited();
      }, 0),
    true,
  );
  // Arrow keys move between the choices of a radio group without choosing (Space chooses): one stray key press must
  // not silently change a pre-filled answer, as native radio groups do (WAI-ARIA APG radio group, manual selection).
  state.container.addEventListener(
    'keydown',
    (e) => {
      const t = e.target;
      if (!(t instanceof HTMLInputElement) || t.type !== 'radio') return;
      const step = ({ ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 } as Record<string, number>)[e.key];
      if (!step) return;
      e.preventDefault();
      e.stopPropagation();
      const group = [
        ...state.container.querySelectorAll<HTMLInputElement>(`input[type=radio][name="${CSS.escape(t.name)}"]`),
      ];
      group[(group.indexOf(t) + step + group.length) % group.length]?.focus();
    },
    true,
  );
  // Work in progress is kept in the EHR: a closed tab, a refresh or Back saves it on the way out.
  addEventListener('pagehide', () => {
    leaving = true;
    state.draft?.flush();
  });
  addEventListener('pageshow', () => {
    leaving = false;
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') state.draft?.flush();
  });
}

/** Reads the chart searches the form's variables use, to name the resource and date behind each pre-filled answer. */
async function readChart(state: FormState, user: Resource | undefined): Promise<void> {
  const p = encodeURIComponent(state.patient.id ?? '');
  const get = (q: string) => state.client.request<Bundle>(q).catch(() => undefined);
  const [conditions, observations, medications, immunizations] = await Promise.all([
    get(`Condition?patient=${p}`),
    get(`Observation?patient=${p}`),
    get(`MedicationRequest?patient=${p}`),
    get(`Immunization?patient=${p}`),
  ]);
  const data: ChartData = { conditions, observations, medications, immunizations, patient: state.patient, user };
  state.sources = chartSources(state.questionnaire, data);
  showOrigins(state);
}

/** Under every answered question, where its answer came from (DTR information-origin, in words), always visible. */
function showOrigins(state: FormState): void {
  if (!state.container.querySelector('lhc-item')) return;
  let qr: QuestionnaireResponse;
  try {
    qr = currentResponse(state);
  } catch {
    return;
  }
  const answered = new Map(flattenAnswered(qr.item).map((i) => [i.linkId, i.answer ?? []]));
  for (const el of state.container.querySelectorAll<HTMLElement>('lhc-item.lhc-item-question')) {
    const linkId = /^item-(.+?)(\/\d+)+$/.exec(el.id)?.[1];
    if (!linkId) continue;
    const host = el.querySelector<HTMLElement>(':scope > lhc-item-question') ?? el;
    let line = host.querySelector<HTMLElement>(':scope > .origin-line');
    const answers = answered.get(linkId);
    const lineId = `origin-${el.id}`;
    if (!answers?.length) {
      line?.remove();
      describeAnswerBy(host, lineId, false);
      continue;
    }
    const origin = originOf(linkId, answers[0], state.initial);
    if (!line) {
      line = document.createElement('p');
      line.className = 'origin-line';
      line.id = lineId;
      host.append(line);
    }
    describeAnswerBy(host, lineId, true);
    line.dataset.origin = origin;
    line.textContent = originLine(
      origin,
      state.sources.get(linkId),
      state.initialText.get(linkId),
      state.fromPayer.has(linkId),
    );
  }
}

/**
 * Makes the origin line the accessible description of the question's answer fields (WCAG 1.3.1: what the eye sees
 * next to an answer, a screen reader announces with it), keeping any description LHC-Forms set. The fields are
 * found again on every call because LHC-Forms re-renders them.
 */
function describeAnswerBy(host: HTMLElement, lineId: string, on: boolean): void {
  for (const field of host.querySelectorAll<HTMLElement>('input, textarea, select')) {
    const ids = (field.getAttribute('aria-describedby') ?? '').split(/\s+/).filter((x) => x && x !== lineId);
    if (on) ids.push(lineId);
    if (ids.length) field.setAttribute('aria-describedby', ids.join(' '));
    else field.removeAttribute('aria-describedby');
  }
}

/** The clinician (SMART `fhirUser`), else the order's requester: the `user` launch context of the form. */
async function readUser(client: Client, order: MedicationRequest | undefined): Promise<Resource | undefined> {
  const ref = client.getFhirUser() ?? order?.requester?.reference;
  if (!ref) return undefined;
  try {
    return await client.request<Resource>(ref);
  } catch {
    return undefined;
  }
}

/**
 * The form holds an answer LHC-Forms cannot put into a QuestionnaireResponse (letters in a number field, an impossible
 * date): it then gives no response at all, for the whole form. Its `problems` are LHC-Forms' messages, in words.
 */
class InvalidAnswers extends Error {
  constructor(readonly problems: string[]) {
    super(`an answer is not valid: ${problems.join(' ') || 'check the answers marked on the form'}`);
  }
}

/**
 * LHC-Forms' validation messages ("…(within 90 days)must be a decimal number."), with the space it leaves out, and the
 * answers outside a bound LHC-Forms does not check (bounds.ts: a birth date after today), in the same words.
 */
function formProblems(state: FormState): string[] {
  const own = checkBounds(state).map((p) => `${p.text} ${p.message}`);
  const lhc = (lforms().checkValidity(state.container) ?? []).map((p) => p.replace(/(?<=\S)(?=(must|requires) )/, ' '));
  // Letters in a number field are not a number: LHC-Forms also says they are outside its bounds (NaN compares false),
  // which would only repeat the problem; the field's own message is the first, "must be a decimal number."
  const question = (p: string) => p.replace(/ must be .*$/, '');
  const notNumbers = new Set(lhc.filter((p) => / must be (a decimal|an integer) number\.$/.test(p)).map(question));
  // A number past one bound is named with its whole range where the item has one (LHC-Forms names only the side crossed).
  const { byText } = rangesOf(state);
  const ranged = (p: string) => (ONE_SIDED_BOUND.test(p) && byText.has(question(p)) ? `${question(p)} ${byText.get(question(p))}` : p);
  return [...lhc.filter((p) => !(/ must be a value (greater|less) than/.test(p) && notNumbers.has(question(p)))).map(ranged), ...own];
}

/**
 * Checks the answers against the bounds LHC-Forms does not apply (bounds.ts) and marks each field outside them; the
 * problems found. Nothing while an answer cannot be encoded (no response: LHC-Forms names that one itself).
 */
function checkBounds(state: FormState): BoundProblem[] {
  const evaluate = fhirpathR4();
  let problems: BoundProblem[] = [];
  // The form's response read directly, not through currentResponse, whose error names the form's problems (this).
  const qr = state.onPage && evaluate
    ? (lforms().getFormFHIRData('QuestionnaireResponse', 'R4', state.container) as QuestionnaireResponse | null)
    : null;
  if (qr && state.onPage && evaluate) problems = dateBoundProblems(state.onPage, qr, evaluate);
  state.outOfBounds = new Map(problems.map((p) => [p.linkId, p.message]));
  markInvalidFields(state.container, state.outOfBounds, rangesOf(state).byLinkId);
  return problems;
}

/** The whole range of each item bounded on both sides (bounds.ts rangeMessages), for the form on the page. */
const rangeCache = new WeakMap<Questionnaire, ReturnType<typeof rangeMessages>>();
function rangesOf(state: FormState): ReturnType<typeof rangeMessages> {
  const q = state.onPage ?? state.questionnaire;
  let r = rangeCache.get(q);
  if (!r) rangeCache.set(q, (r = rangeMessages(q)));
  return r;
}

function currentResponse(state: FormState): QuestionnaireResponse {
  const qr = lforms().getFormFHIRData('QuestionnaireResponse', 'R4', state.container, {
    subject: { reference: `Patient/${state.patient.id}` },
  }) as QuestionnaireResponse | null;
  if (!qr) throw new InvalidAnswers(formProblems(state));
  return qr;
}

/** The response as DTR wants it (`dtr-questionnaireresponse`, 2.2 after a CRD 2.2 signing): context, intended use, origins, author. */
function finalResponse(state: FormState, from: QuestionnaireResponse): QuestionnaireResponse {
  const extension: Extension[] = [];
  if (state.order?.id)
    extension.push({
      url: EXT_QR_CONTEXT,
      valueReference: { reference: `${state.order.resourceType}/${state.order.id}` },
    });
  extension.push({ url: EXT_QR_CONTEXT, valueReference: { reference: `Coverage/${state.coverage.id}` } });
  extension.push({
    url: EXT_INTENDED_USE,
    valueCodeableConcept: { coding: [{ system: CRD_TEMP, code: 'withpa', display: 'With prior authorization' }] },
  });
  // DTR 2.2: the CRD coverage-information links the response to the assertion made at signing.
  const signing = coverageInformationOf(state.order);
  extension.push(...signing);
  // Signing answered in CRD 2.2's shape (expiry-date, detail): the response claims DTR 2.2, so the payer answers it in
  // that shape too, the approved period as data (allowed-period) as at signing, not only in words (design.md §7).
  const crd22 = signing.some((e) => (e.extension ?? []).some((x) => x.url === 'expiry-date' || x.url === 'detail'));
  const qr: QuestionnaireResponse = {
    resourceType: 'QuestionnaireResponse',
    meta: { profile: [`${DTR}/dtr-questionnaireresponse${crd22 ? '|2.2.0' : ''}`] },
    extension,
    questionnaire: state.canonical,
    status: 'completed',
    subject: { reference: `Patient/${state.patient.id}`, display: patientName(state.patient) },
    item: pruneEmpty(from.item),
  };
  return stampInformationOrigin(signedResponse(qr, state.author), state.initial, state.author);
}

/**
 * The response dated and signed as completed now by `author` (the SMART user), keeping a date or author it already
 * has: the EHR orders a patient's responses by `authored`, so the newest documentation is the one shown and sent with
 * a PAS request. The static form's final response and the adaptive form's completed one both go through here.
 */
function signedResponse(qr: QuestionnaireResponse, author: string | undefined): QuestionnaireResponse {
  return {
    ...qr,
    authored: qr.authored ?? new Date().toISOString(),
    ...(author && !qr.author ? { author: { reference: author } } : {}),
  };
}

/**
 * Questions the clinician can see and has not answered among those `asked` picks: the required ones
 * (Questionnaire.item.required), or those the payer still needs (needed.ts). A question hidden by enableWhen is not
 * shown, so it is not asked.
 */
function unanswered(state: FormState, asked: (item: NonNullable<Questionnaire['item']>[number]) => boolean): { linkId: string; text: string }[] {
  const answered = new Set(flattenAnswered(currentResponse(state).item).map((i) => i.linkId));
  const out: { linkId: string; text: string }[] = [];
  const visit = (items: Questionnaire['item']) => {
    for (const item of items ?? []) {
      const shown = state.container.querySelector(`lhc-item[id^="item-${CSS.escape(item.linkId)}/"]`);
      if (asked(item) && item.type !== 'group' && item.type !== 'display' && shown && !answered.has(item.linkId))
        out.push({ linkId: item.linkId, text: item.text ?? item.linkId });
      visit(item.item);
    }
  };
  // The form on the page: the static form, or the adaptive step's (whose questions the static form may not hold).
  visit((state.onPage ?? state.questionnaire).item);
  return out;
}

/**
 * The payer's reasons above the form, each question it still needs a link to that question on the form (review ui
 * s44 M4), and the questions marked on the form ({@link markNeededFields}): from the order's determination at launch,
 * and from the payer's answer each time the documentation is sent and it still needs more.
 */
function showStillNeeded(state: FormState, reasons: string[]): void {
  state.needed = neededQuestions(state.questionnaire, reasons);
  state.sendWithoutNeeded = false;
  const norm = (t: string) => t.replace(/\s+/g, ' ').trim();
  const parts: (string | HTMLElement)[] = [];
  for (const reason of reasons.filter((r) => !saidInPendedBox(r))) {
    if (parts.length) parts.push(' ');
    const list = stillToDocument(reason);
    if (list === undefined) {
      parts.push(reason);
      continue;
    }
    parts.push(reason.slice(0, reason.length - list.length));
    listEntries(norm(list)).forEach((entry, i) => {
      if (i > 0) parts.push('; ');
      const hit = [...state.needed].find(([, text]) => entry === norm(text) || entry.startsWith(`${norm(text)} (`));
      if (!hit) {
        parts.push(entry);
        return;
      }
      // A link (inline, unlike a button), so that a long entry wraps as text and its "; " follows it on its line
      // instead of falling on a line of its own (review ui s46 L4).
      const a = h('a', { href: '#form', class: 'link' }, hit[1]);
      a.addEventListener('click', (e) => {
        e.preventDefault();
        focusQuestion(state, hit[0]);
      });
      parts.push(a, entry.slice(norm(hit[1]).length));
    });
  }
  byId('form-why').replaceChildren(...parts);
  markNeededFields(state.container, new Set(state.needed.keys()));
}

function focusQuestion(state: FormState, linkId: string): void {
  const el = state.container.querySelector<HTMLElement>(`lhc-item[id^="item-${CSS.escape(linkId)}/"]`);
  el?.scrollIntoView({ block: 'center' });
  (el?.querySelector<HTMLElement>('input, textarea, select') ?? el)?.focus();
}

/**
 * Stops a send once while questions the payer still needs are unanswered (review ui s44 M4): says which, each a link
 * to its question, and offers "Send without them", which sends (`send`) without asking again (the clinician may not know
 * the answer yet, or may want review). The static form's Save and the adaptive form's Continue both stop here. On the
 * adaptive form ($next-question) a question left unanswered is not asked again, and the payer completes the form with
 * what it has: the clinician is told so before, since a completed adaptive form cannot be sent again.
 */
function askBeforeSendingWithout(state: FormState, stillNeeded: { linkId: string; text: string }[], send: () => void, adaptive: boolean): void {
  const list = byId('problems');
  const one = stillNeeded.length === 1;
  const anyway = h('button', { type: 'button', id: 'send-anyway' }, `Send without ${one ? 'it' : 'them'}`);
  anyway.addEventListener('click', () => {
    state.sendWithoutNeeded = true;
    send();
  });
  list.replaceChildren(
    h(
      'p',
      {},
      adaptive
        ? `The payer still needs ${one ? 'this answer' : 'these answers'}; sent without ${one ? 'it' : 'them'}, the payer does not ask for ${one ? 'it' : 'them'} again, and the form it completes comes back "Still needed" (a completed form cannot be sent again):`
        : `The payer still needs ${one ? 'this answer' : 'these answers'}; sent without ${one ? 'it' : 'them'}, the documentation comes back "Still needed":`,
    ),
    h(
      'ul',
      {},
      stillNeeded.map((m) => {
        const b = h('button', { type: 'button', class: 'link' }, m.text);
        b.addEventListener('click', () => focusQuestion(state, m.linkId));
        return h('li', {}, b);
      }),
    ),
    h('p', {}, anyway),
  );
  list.hidden = false;
  setStatus(
    `Not sent yet: ${one ? '1 question the payer needs is' : `${stillNeeded.length} questions the payer needs are`} unanswered. Answer ${one ? 'it' : 'them'}, or send without ${one ? 'it' : 'them'}. ${state.draft ? 'Your answers are kept as a draft.' : 'Your answers are still on this page.'}`,
    'error',
  );
  byId('draft-status').textContent = '';
  void state.draft?.saveNow().catch(() => undefined);
}

async function save(state: FormState): Promise<void> {
  if (state.sending) return;
  const button = byId<HTMLButtonElement>('save');
  const list = byId('problems');
  list.replaceChildren();
  const problems = formProblems(state);
  // While an answer is not valid the form gives no response to check for required ones: its problems are listed alone.
  let missing: { linkId: string; text: string }[] = [];
  let stillNeeded: { linkId: string; text: string }[] = [];
  try {
    missing = unanswered(state, (item) => !!item.required);
    if (!state.sendWithoutNeeded) stillNeeded = unanswered(state, (item) => state.needed.has(item.linkId) && !item.required);
  } catch (err) {
    if (!(err instanceof InvalidAnswers)) throw err;
  }
  // Questions the payer still needs, unanswered: sending now would only bring "Still needed" back (review ui s44 M4).
  if (!missing.length && !problems.length && stillNeeded.length) {
    askBeforeSendingWithout(state, stillNeeded, () => void save(state), false);
    return;
  }
  if (missing.length || problems.length) {
    list.append(
      h(
        'p',
        {},
        missing.length ? 'Answer these required questions before sending:' : 'Please correct the form before saving:',
      ),
      h(
        'ul',
        {},
        missing.map((m) => {
          const b = h('button', { type: 'button', class: 'link' }, m.text);
          b.addEventListener('click', () => focusQuestion(state, m.linkId));
          return h('li', {}, b);
        }),
        problems.map((p) => h('li', {}, p)),
      ),
    );
    list.hidden = false;
    setStatus(
      missing.length
        ? `Not sent: ${missing.length} required question${missing.length === 1 ? ' is' : 's are'} unanswered. Your answers are kept as a draft.`
        : `Not sent: ${problems.length === 1 ? 'an answer is' : `${problems.length} answers are`} not valid; see above the Save button.`,
      'error',
    );
    byId('draft-status').textContent = '';
    void state.draft?.saveNow().catch(() => undefined);
    return;
  }
  list.hidden = true;
  state.sending = true;
  button.disabled = true;
  const draftId = state.draft?.id;
  try {
    await state.draft?.stop();
    const qr = finalResponse(state, currentResponse(state));
    setStatus('Saving the documentation in the EHR…');
    // The draft becomes the completed response: one QuestionnaireResponse per form and order in the EHR.
    const id = state.draft?.id ?? draftId;
    let saved = id
      ? await state.client.update<QuestionnaireResponse>({ ...qr, id } as never)
      : await state.client.create<QuestionnaireResponse>(qr as never);
    state.draft = newDraft(state, saved.id);
    await state.draft.stop();
    setStatus('Sending the documentation to the payer…');
    const decided = await fetchJson<QuestionnaireResponse>(`${payerBase}/QuestionnaireResponse`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json' },
      body: JSON.stringify(qr),
    });
    // The payer has answered: from here a failure is the EHR's, and the answer is shown whatever the EHR does.
    dropUnsaved(sessionStorage, unsavedKeyOf(state));
    let notRecorded: unknown;
    saved = await recordDetermination(state, saved, decided).catch((err: unknown) => {
      notRecorded = err ?? 'failed';
      return saved;
    });
    showDetermination(state, qr, saved, decided, notRecorded);
  } catch (err) {
    button.disabled = false;
    keepOnPageAnswers(state, state.draft?.id ?? draftId);
    setStatus(`Not sent: ${problemWords(err)}. Your answers are still on this page.`, 'error');
    state.draft = newDraft(state, state.draft?.id ?? draftId);
  } finally {
    state.sending = false;
  }
}

/**
 * Keeps the payer's determination with the order in the EHR, as an EHR applies a CRD systemAction update: the order's
 * coverage-information is replaced by the one the payer returned for the completed documentation (DTR 2.2 §"Adaptive
 * forms": the completed response carries coverage-information; CRD: one per coverage).
 */
async function recordOnOrder(state: FormState, decided: QuestionnaireResponse): Promise<void> {
  const ext = coverageInformationOf(decided)[0];
  if (!ext || !state.order?.id) return;
  const current = await state.client.request<MedicationRequest>(`${state.order.resourceType}/${state.order.id}`);
  const updated: MedicationRequest = {
    ...current,
    extension: [...(current.extension ?? []).filter((e) => e.url !== COVERAGE_INFO_URL), ext],
  };
  state.order = await state.client.update<MedicationRequest>(updated as never);
}

/**
 * Records the payer's answer in the EHR: on the order (see {@link recordOnOrder}) and on the saved response, which
 * DTR 2.2 lets carry the coverage-information it produced, so the chart shows what the documentation achieved.
 */
async function recordDetermination(
  state: FormState,
  saved: QuestionnaireResponse,
  decided: QuestionnaireResponse,
): Promise<QuestionnaireResponse> {
  await recordOnOrder(state, decided);
  const ext = coverageInformationOf(decided)[0];
  if (!ext || !saved.id) return saved;
  return state.client.update<QuestionnaireResponse>({
    ...saved,
    extension: [...(saved.extension ?? []).filter((e) => e.url !== COVERAGE_INFO_URL), ext],
  } as never);
}

/**
 * The payer's reasons under the determination's headline, when the headline does not already say them: "Still
 * needed" names what is missing and "Not covered" carries the reasons in full, so repeating them underneath would
 * give the clinician the same long policy text twice; an approval's headline is its number, and the reasons say why.
 * Beside what is still to document, the limit the order is outside is said here.
 */
function reasonsParagraph(summary: CoverageSummary | undefined): HTMLElement | null {
  const said = (r: string) =>
    !!summary?.headline.includes(stillToDocument(r) ?? r.replace(/^Prior authorization needed: documentation (of|for) /, ''));
  const more = (summary?.reasons ?? []).filter((r) => !said(r) && !saidInPendedBox(r));
  return more.length ? h('p', {}, more.join(' ')) : null;
}

/**
 * Whether a reason is the pended sentence (order-record.ts `pendedReview`) while the "Pended for review" box above the
 * form says it, with the request's reference: said once on the page, not again in the reasons (review ui s46 L4).
 */
function saidInPendedBox(reason: string): boolean {
  return !byId('order-pended').hidden && reason.startsWith('A prior authorization request for this order');
}

function showDetermination(
  state: FormState,
  sent: QuestionnaireResponse,
  saved: QuestionnaireResponse,
  decided: QuestionnaireResponse,
  notRecorded?: unknown,
): void {
  const ext = coverageInformationOf(decided)[0];
  const summary = ext ? summarizeCoverage(ext, 'documentation') : undefined;
  const counts = countOrigins(sent);
  const result = byId('result');
  byId('known').hidden = true;
  const tone = summary?.tone ?? 'unclear';
  // Documentation that decided the order settled the pended request: it is no longer pending. Said before the reasons,
  // which leave out the pended sentence while the box says it.
  if (settlesPendedRequest(summary)) showPended(undefined);
  // A completed adaptive form that did not settle it cannot be sent again: the box then says what holds now.
  else if (state.completed && !byId('order-pended').hidden) showPendedUnsettled(!!state.sendWithoutNeeded);
  fill(
    result,
    h('h2', {}, 'Payer determination'),
    h(
      'p',
      { class: `decision decision-${summary?.tone ?? 'unclear'}`, 'data-testid': 'dtr-determination' },
      summary?.headline ?? 'The payer received the documentation but sent no determination.',
    ),
    reasonsParagraph(summary),
    h(
      'p',
      { class: 'saved' },
      `${saved.id ? `Saved in the EHR as QuestionnaireResponse/${saved.id}` : 'Not saved in the EHR'}: ${counts.auto} answer${counts.auto === 1 ? '' : 's'} as pre-filled, ${counts.override} changed, ${counts.manual} entered by hand.`,
    ),
    state.ctx.returnUrl
      ? h('p', {}, h('a', { href: state.ctx.returnUrl, class: 'button' }, 'Return to the EHR'))
      : null,
    h('details', {}, h('summary', {}, 'QuestionnaireResponse sent to the payer'), jsonBlock(sent)),
    h('details', {}, h('summary', {}, "Payer's answer"), jsonBlock(decided)),
  );
  result.hidden = false;
  // When the payer still needs something, the form stays open to complete and send again; a completed adaptive form
  // cannot be sent again ($next-question would only get the completed response back), so it closes like a decided one.
  const still = (tone === 'needed' || tone === 'unclear') && !state.completed;
  // What the payer now still needs is what the form marks (the questions answered meanwhile are no longer named). A
  // form that closes takes its "Still to document" line with it: the determination is the page's one status, and the
  // line's links would point at questions no longer on the page (review ui s46 M1).
  if (still) showStillNeeded(state, summary?.reasons ?? []);
  else byId('form-why').replaceChildren();
  byId('actions').hidden = !still || state.container.childElementCount === 0;
  byId<HTMLButtonElement>('save').textContent = 'Save and send again';
  byId<HTMLButtonElement>('save').disabled = false;
  if (still) state.draft = newDraft(state, saved.id);
  else {
    lforms().removeFormsFromPage(state.container);
    byId('draft-status').textContent = '';
  }
  if (notRecorded !== undefined)
    setStatus(
      `Sent to the payer, but the EHR did not record its answer: ${problemWords(notRecorded).replace(/\.$/, '')}. The determination is below; note it before you leave this page.`,
      'warn',
    );
  else
    setStatus(
      tone === 'approved' || tone === 'no-auth'
        ? 'Saved in the EHR and sent to the payer.'
        : tone === 'not-covered'
          ? 'Saved in the EHR and sent: the payer does not cover this order.'
          : 'Saved in the EHR and sent, but the payer still needs more (see the determination).',
      // A determination, even "not covered", is an outcome the clinician reads, not an error that stopped them.
      tone === 'approved' || tone === 'no-auth' ? 'ok' : 'warn',
    );
  result.focus();
}

/**
 * The documentation for this order was sent before (a refresh, Back, or a new launch): show what the payer answered
 * instead of a blank form, with a way to revise the answers.
 */
function showSent(state: FormState, sent: QuestionnaireResponse): void {
  const ext = coverageInformationOf(sent)[0];
  const summary = ext ? summarizeCoverage(ext, 'documentation') : undefined;
  const result = byId('result');
  const revise = h('button', { type: 'button', id: 'revise' }, 'Revise the answers and send again');
  revise.addEventListener('click', () => {
    void renderForm(state, undefined, sent);
  });
  fill(
    result,
    h('h2', {}, 'Payer determination'),
    h(
      'p',
      { class: `decision decision-${summary?.tone ?? 'unclear'}`, 'data-testid': 'dtr-determination' },
      summary?.headline ?? 'The payer received the documentation but sent no determination.',
    ),
    reasonsParagraph(summary),
    h('p', { class: 'saved' }, `Sent ${formatWhen(sent.authored)}; saved in the EHR.`),
    h(
      'div',
      { class: 'buttons' },
      state.ctx.returnUrl ? h('a', { href: state.ctx.returnUrl, class: 'button' }, 'Return to the EHR') : null,
      revise,
    ),
  );
  result.hidden = false;
  byId('actions').hidden = true;
  setStatus('This documentation was already sent to the payer.', 'ok');
}

/** Whether a response sent to the payer carries the answer that is the order's decision now. */
function showsDecision(sent: QuestionnaireResponse | undefined, decided: { action: 'A1' | 'A3' }): boolean {
  if (!sent || sent.status === 'in-progress') return false;
  const ext = coverageInformationOf(sent)[0];
  const tone = ext ? summarizeCoverage(ext, 'documentation').tone : undefined;
  return decided.action === 'A1' ? tone === 'approved' : tone === 'not-covered';
}

/**
 * What the order is pended for when the form opens (a PAS request in the payer reviewer's queue; X12 306 A4 in the
 * package's outcome), and where what the clinician adds goes: documentation that meets the policy settles the order
 * at once, other answers reach the reviewer only sent as an update of that request (docs/design.md §8 "One
 * authorization per order"). Not a decision, so the form stays below it (review ui s45: "A pended order is not shown").
 */
function showPended(pended: { text: string } | undefined): void {
  const box = byId('order-pended');
  box.hidden = !pended;
  pendedAtOpen = pended?.text;
  if (pended) fill(box, h('h2', { id: 'order-pended-title' }, 'Pended for review'), h('p', {}, pended.text));
  else box.replaceChildren();
}

/** What the payer said of the pended request when the form opened ({@link showPended}). */
let pendedAtOpen: string | undefined;

/**
 * The pended box once a completed adaptive form has not settled the request (review ui s47 #3): the payer's words
 * from the opening ("documentation that meets the policy settles it at once") no longer describe this form, which was
 * sent (after "Send without them", without what the payer needs) and cannot be sent again. It says what holds now: the
 * request waits for the reviewer, who reads it as filed, and only documentation completed again from the EHR, or an
 * update of the request, changes that. The opening words stay behind a disclosure, with the request's reference.
 */
function showPendedUnsettled(withoutNeeded: boolean): void {
  const box = byId('order-pended');
  fill(
    box,
    h('h2', { id: 'order-pended-title' }, 'Pended for review'),
    h(
      'p',
      { 'data-testid': 'pended-now' },
      `${withoutNeeded ? 'Sent without what the payer still needs, this documentation did not settle the prior authorization request' : 'This documentation did not settle the prior authorization request'}, and the completed form cannot be sent again. The request waits for the payer's reviewer, who reads it as it was filed: other answers and documents reach the reviewer only when sent as an update of that request. To have documentation settle it, complete the documentation again from the EHR with what the payer needs.`,
    ),
    pendedAtOpen ? h('details', {}, h('summary', {}, 'What the payer said when the form opened'), h('p', {}, pendedAtOpen)) : null,
  );
}

/**
 * The order's decision in place of the form (review ui s44 L5): approved with its number and period, or denied with
 * the reviewer's reason and how to request again. No form and no "Revise": documentation sent now would not change it.
 */
function showOrderDecision(decided: { action: 'A1' | 'A3'; text: string }, returnUrl: string | undefined): void {
  const headline =
    decided.action === 'A1' ? decided.text.replace(/\. (Approved( on clinical review)?:.*)$/, '.') : decided.text.replace(/\. The denial is the decision.*$/, '.');
  const rest = decided.text.slice(headline.length).trim();
  byId('form-why').replaceChildren();
  fill(
    byId('result'),
    h('h2', {}, 'Payer determination'),
    h('p', { class: `decision decision-${decided.action === 'A1' ? 'approved' : 'not-covered'}`, 'data-testid': 'dtr-determination' }, headline),
    rest ? h('p', {}, rest) : null,
    h(
      'p',
      { class: 'saved' },
      decided.action === 'A1'
        ? 'The payer has approved this order: there is nothing more to document for it.'
        : 'The payer has decided this order: documentation sent for it now would not change the decision.',
    ),
    returnUrl ? h('p', {}, h('a', { href: returnUrl, class: 'button' }, 'Return to the EHR')) : null,
  );
  byId('result').hidden = false;
  byId('actions').hidden = true;
  setStatus(`The payer has already decided this order: ${decided.action === 'A1' ? 'approved' : 'denied'}.`, 'ok');
}

/**
 * Adaptive forms (SDC §Adaptive Questionnaires; DTR §"Adaptive Form"): the payer chooses each next question from the
 * answers so far. The response with its contained Questionnaire goes to `$next-question` until it comes back
 * completed, carrying the determination.
 */
async function runAdaptive(
  state: FormState,
  user: Resource | undefined,
  valueSets: ValueSet[],
  prefilled: QuestionnaireResponse | undefined,
): Promise<void> {
  const util = lforms();
  util.setFHIRContext(state.client, { patient: state.patient, ...(user ? { user } : {}) });
  // The same form behaviour as the static form: an origin under every answer, kept current as the clinician edits.
  wireForm(state);
  void readChart(state, user);
  const adaptiveUrl =
    state.questionnaire.extension?.find((e) => e.url === EXT_ADAPTIVE)?.valueUrl ??
    `${payerBase}/Questionnaire/$next-question`;
  // Population needs the form's launch contexts and x-fhir-query variables (SDC §launchContext, §variable): the
  // payer's contained Questionnaire declares them; the static form's fill in for a payer whose form does not.
  const population = (state.questionnaire.extension ?? []).filter((e) => /launchContext|\/variable$/.test(e.url));
  // The same context and DTR version as the static form's response: after a CRD 2.2 signing the adaptive response
  // claims DTR 2.2 (dtr-questionnaireresponse-adapt|2.2.0), so the payer answers its determination in CRD 2.2's shape.
  const shared = finalResponse(state, { resourceType: 'QuestionnaireResponse', status: 'in-progress' });
  const version = shared.meta?.profile?.[0]?.split('|')[1];
  let qr: QuestionnaireResponse = {
    resourceType: 'QuestionnaireResponse',
    meta: { profile: [`${DTR}/dtr-questionnaireresponse-adapt${version ? `|${version}` : ''}`] },
    contained: [
      {
        resourceType: 'Questionnaire',
        id: 'adaptive',
        status: 'active',
        derivedFrom: [state.canonical],
        extension: [{ url: EXT_ADAPTIVE, valueBoolean: true }],
      },
    ],
    questionnaire: '#adaptive',
    status: 'in-progress',
    subject: { reference: `Patient/${state.patient.id}` },
    extension: shared.extension,
    // What the payer already knows from signing goes first, so it asks only for the rest.
    item: flattenAnswered(prefilled?.item),
  };
  state.initial = snapshotAnswers(prefilled);
  state.fromPayer = new Set(state.initial.keys());
  state.initialText = textsOf(prefilled?.item);
  // The questions of the step on the page: a later step says what it newly asks and takes the focus there, since the
  // page is redrawn while the Continue button is disabled (focus falls to the body) and the status would otherwise
  // read as before; the payer's request for a proving document would go unnoticed below the answered questions.
  let asked: string[] | undefined;
  const step = async (): Promise<void> => {
    setStatus('Asking the payer for the next questions…');
    qr = await fetchJson<QuestionnaireResponse>(adaptiveUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json' },
      body: JSON.stringify(qr),
    });
    if (qr.status === 'completed') {
      state.completed = true;
      // The payer has answered: a failure to record it in the EHR must not pass for "Not sent" (pressing Continue
      // would send the completed response again); the determination is shown whatever the EHR does.
      let notRecorded: unknown;
      const completed = stampInformationOrigin(signedResponse(qr, state.author), state.initial, state.author);
      const saved = await state.client.create<QuestionnaireResponse>(completed as never).catch((err: unknown) => {
        notRecorded = err ?? 'failed';
        return completed;
      });
      // the completed adaptive response already carries the determination (DTR 2.2 §Adaptive forms)
      if (notRecorded === undefined)
        await recordOnOrder(state, qr).catch((err: unknown) => {
          notRecorded = err ?? 'failed';
        });
      showDetermination(state, qr, saved, qr, notRecorded);
      return;
    }
    const contained = qr.contained?.find((r): r is Questionnaire => r.resourceType === 'Questionnaire');
    if (!contained) throw new Error('The payer sent no questions.');
    const renderable = withContainedValueSets(withPopulationContext(contained, population), valueSets);
    let form = util.convertFHIRQuestionnaireToLForms(renderable, 'R4');
    const before = snapshotAnswers(qr);
    // LHC-Forms merges only answers to questions on the form; earlier answers stay in the response.
    const onForm = new Set((contained.item ?? []).map((i) => i.linkId));
    const mine = flattenAnswered(qr.item).filter((i) => onForm.has(i.linkId));
    if (mine.length)
      form = util.mergeFHIRDataIntoLForms(
        'QuestionnaireResponse',
        { resourceType: 'QuestionnaireResponse', status: 'in-progress', item: mine },
        form,
        'R4',
      );
    await customElements.whenDefined('wc-lhc-form');
    state.onPage = contained;
    await util.addFormToPage(withViewMode(withExcludedMinimums(form, contained)), state.container, { prepopulate: true });
    // Answers the form filled in from the chart on this step are the pre-filled ones (origin auto).
    const filled = currentResponse(state);
    const filledText = textsOf(filled.item);
    for (const [k, v] of snapshotAnswers(filled))
      if (!before.has(k) && !state.initial.has(k)) {
        state.initial.set(k, v);
        state.initialText.set(k, filledText.get(k) ?? '');
      }
    showOrigins(state);
    showKnownAnswers(state, qr.item, onForm);
    byId<HTMLButtonElement>('save').disabled = false;
    const questions = (contained.item ?? []).filter((i) => i.type !== 'display');
    const earlier = asked;
    asked = questions.map((i) => i.linkId);
    if (!earlier) {
      setStatus('Answer these questions and continue; the payer asks only what it still needs.', 'ok');
      return;
    }
    const added = questions.filter((i) => !earlier.includes(i.linkId));
    setStatus(nextStepWords(added.map((i) => i.text ?? i.linkId)), 'ok');
    const first = added[0]?.linkId ?? questions[0]?.linkId;
    if (first) focusQuestion(state, first);
  };
  byId('actions').hidden = false;
  const button = byId<HTMLButtonElement>('save');
  button.textContent = 'Continue';
  const next = (): void => {
    if (state.completed || state.sending) return;
    let answered: QuestionnaireResponse;
    try {
      answered = currentResponse(state);
    } catch (err) {
      // An answer the form cannot encode (letters in a number field): say which, and leave the form as it is.
      setStatus(`Not sent: ${problemWords(err).replace(/\.$/, '')}. Correct it and continue.`, 'error');
      return;
    }
    // An answer outside its bounds (MRD 150 %, 0 kg, a birth date after today) is not sent either: the payer could not
    // use it, and one slip would otherwise be taken as the answer (review s44 M1).
    const problems = formProblems(state);
    if (problems.length > 0) {
      setStatus(`Not sent: ${problems.join(' ').replace(/\.$/, '')}. Correct it and continue.`, 'error');
      return;
    }
    // The same stop as the static form's Save: the payer does not ask again a question left unanswered.
    const stillNeeded = state.sendWithoutNeeded ? [] : unanswered(state, (i) => state.needed.has(i.linkId) && !i.required);
    if (stillNeeded.length) {
      askBeforeSendingWithout(state, stillNeeded, next, true);
      return;
    }
    byId('problems').hidden = true;
    state.sending = true;
    button.disabled = true;
    const onForm = (qr.contained?.find((r): r is Questionnaire => r.resourceType === 'Questionnaire')?.item ?? []).map(
      (i) => i.linkId,
    );
    const item = mergeAdaptiveAnswers(qr.item, onForm, pruneEmpty(answered.item));
    qr = { ...qr, item: stampInformationOrigin({ ...qr, item }, state.initial, state.author).item };
    step()
      .catch((err: unknown) => {
        // The answers stay on the form (and in the response): pressing Continue again sends them.
        button.disabled = false;
        setStatus(`Not sent: ${problemWords(err)}. Your answers are still on this page.`, 'error');
      })
      .finally(() => {
        state.sending = false;
      });
  };
  button.addEventListener('click', next);
  await step();
}

/**
 * The status after a later adaptive step: what the payer newly asks (a proving document after a "Yes", a question an
 * answer opened), or that it still needs the questions on the page.
 */
function nextStepWords(added: string[]): string {
  const first = added[0];
  if (first === undefined) return 'The payer still needs the answers below; answer them and continue.';
  const asked = /[.?]$/.test(first) ? first : `${first}.`;
  if (added.length === 1) return `The payer now also asks: ${asked} Answer it and continue.`;
  return `The payer now also asks ${added.length} more questions, starting with: ${asked} Answer them and continue.`;
}

/**
 * The answers an adaptive form carries without asking (the payer's pre-fill from what it read at signing, and the
 * earlier steps' answers), listed under the questions with where each came from: the clinician sends them too, so
 * they can read them, and tell the chart's from their own.
 */
function showKnownAnswers(
  state: FormState,
  items: QuestionnaireResponse['item'],
  onForm: Set<string>,
): void {
  const known = flattenAnswered(items).filter((i) => !onForm.has(i.linkId));
  const box = byId('known');
  if (known.length === 0) {
    box.hidden = true;
    return;
  }
  const texts = new Map<string, string>();
  const visit = (qItems: Questionnaire['item']) => {
    for (const q of qItems ?? []) {
      if (q.text) texts.set(q.linkId, q.text);
      visit(q.item);
    }
  };
  visit(state.questionnaire.item);
  const fromChart = known.filter((i) => (i.answer ?? []).some((a) => originOf(i.linkId, a, state.initial) === 'auto')).length;
  fill(
    box,
    h(
      'summary',
      {},
      `${known.length} answer${known.length === 1 ? '' : 's'} already given, not asked again (${fromChart} pre-filled from the chart)`,
    ),
    h(
      'ul',
      { 'data-testid': 'known-answers' },
      known.map((i) => {
        const answers = i.answer ?? [];
        const origin = answers[0] ? originOf(i.linkId, answers[0], state.initial) : 'manual';
        return h(
          'li',
          {},
          // A question already ends in "?" (or a full stop): the answer follows it without a colon.
          `${texts.get(i.linkId) ?? i.text ?? i.linkId}`.replace(/([^?.])$/, '$1:') + ' ',
          h('strong', {}, answers.map(answerText).join(', ')),
          h(
            'span',
            { class: 'origin-line', 'data-origin': origin },
            originLine(origin, state.sources.get(i.linkId), state.initialText.get(i.linkId), state.fromPayer.has(i.linkId)),
          ),
        );
      }),
    ),
  );
  box.hidden = false;
}

/**
 * The form could not be opened (the EHR or the payer did not answer, the launch was incomplete): why, in words, and a
 * Try again that opens it afresh (the SMART launch is kept in the tab, so a reload resumes it; a draft saved in the
 * EHR comes back with it).
 */
function failToOpen(err: unknown): void {
  setStatus(`The documentation form could not be opened: ${problemWords(err).replace(/\.$/, '')}.`, 'error');
  const again = h('button', { type: 'button', id: 'try-again' }, 'Try again');
  again.addEventListener('click', () => location.reload());
  fill(byId('result'), h('p', {}, again));
  byId('result').hidden = false;
  byId('actions').hidden = true;
}

main().catch(failToOpen);
