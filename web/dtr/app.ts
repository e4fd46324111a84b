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
  Resource,
  ValueSet,
} from '@medplum/fhirtypes';
import { coverageInformationOf, COVERAGE_INFO_URL, formatDate, summarizeCoverage } from '../shared/coverage.js';
import { byId, describeErrorBody, fetchJson, fill, h, HttpError, jsonBlock } from '../shared/dom.js';
import { lforms, withContainedValueSets } from './lforms.js';
import type { AnswerSnapshot } from './origin.js';
import {
  countOrigins,
  flattenAnswered,
  mergeAdaptiveAnswers,
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

const statusEl = () => byId('status');

function setStatus(text: string, kind: 'busy' | 'ok' | 'error' = 'busy'): void {
  const el = statusEl();
  el.textContent = text;
  el.className = `status status-${kind}`;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
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

/** The first package Bundle of a `$questionnaire-package` answer: Parameters (2.0.1 `PackageBundle`, 2.2 `packagebundle`) or a bare Bundle. */
export function firstPackage(answer: Resource): { bundle?: Bundle; outcome?: OperationOutcome } {
  if (answer.resourceType === 'Bundle') return { bundle: answer };
  if (answer.resourceType === 'OperationOutcome') return { outcome: answer };
  if (answer.resourceType === 'Parameters') {
    const params = (answer as Parameters).parameter ?? [];
    const bundle = params.find(
      (p) =>
        (p.name === 'PackageBundle' || p.name === 'packagebundle' || p.name === 'return') &&
        p.resource?.resourceType === 'Bundle',
    )?.resource as Bundle | undefined;
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
  author?: string;
  container: HTMLElement;
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
  if (crdSummary?.reasons.length) byId('form-why').textContent = crdSummary.reasons.join(' ');

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
    author,
    container,
  };

  if (
    ctx.adaptive ||
    questionnaire.extension?.some((e) => e.url === EXT_ADAPTIVE && (e.valueBoolean === true || !!e.valueUrl))
  ) {
    await runAdaptive(state, user, valueSets, prefilled);
    return;
  }

  setStatus('Filling in what the chart already shows…');
  const util = lforms();
  util.setFHIRContext(client, { patient, ...(user ? { user } : {}) });
  let form = util.convertFHIRQuestionnaireToLForms(withContainedValueSets(questionnaire, valueSets), 'R4');
  if (prefilled?.item?.length) form = util.mergeFHIRDataIntoLForms('QuestionnaireResponse', prefilled, form, 'R4');
  await customElements.whenDefined('wc-lhc-form');
  await util.addFormToPage(form, container, { prepopulate: true });
  state.initial = snapshotAnswers(currentResponse(state));
  const filled = [...state.initial.keys()].length;
  setStatus(
    filled
      ? `${filled} answer${filled === 1 ? '' : 's'} pre-filled from the chart. Complete the rest and save.`
      : 'Complete the form and save.',
    'ok',
  );
  byId('actions').hidden = false;
  byId<HTMLButtonElement>('save').addEventListener('click', () => {
    void save(state);
  });
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

function currentResponse(state: FormState): QuestionnaireResponse {
  return lforms().getFormFHIRData('QuestionnaireResponse', 'R4', state.container, {
    subject: { reference: `Patient/${state.patient.id}` },
  }) as QuestionnaireResponse;
}

/** The response as DTR wants it (DTR 2.0.1 `dtr-questionnaireresponse`): context, intended use, origins, author. */
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
  extension.push(...coverageInformationOf(state.order));
  const qr: QuestionnaireResponse = {
    resourceType: 'QuestionnaireResponse',
    meta: { profile: [`${DTR}/dtr-questionnaireresponse`] },
    extension,
    questionnaire: state.canonical,
    status: 'completed',
    subject: { reference: `Patient/${state.patient.id}`, display: patientName(state.patient) },
    authored: new Date().toISOString(),
    ...(state.author ? { author: { reference: state.author } } : {}),
    item: pruneEmpty(from.item),
  };
  return stampInformationOrigin(qr, state.initial, state.author);
}

async function save(state: FormState): Promise<void> {
  const button = byId<HTMLButtonElement>('save');
  const problems = lforms().checkValidity(state.container);
  const list = byId('problems');
  list.replaceChildren();
  if (problems && problems.length) {
    list.append(
      h('p', {}, 'Please correct the form before saving:'),
      h(
        'ul',
        {},
        problems.map((p) => h('li', {}, p)),
      ),
    );
    list.hidden = false;
    setStatus('The form has problems; see above the Save button.', 'error');
    return;
  }
  list.hidden = true;
  button.disabled = true;
  try {
    const qr = finalResponse(state, currentResponse(state));
    setStatus('Saving the documentation in the EHR…');
    let saved = await state.client.create<QuestionnaireResponse>(qr as never);
    setStatus('Sending the documentation to the payer…');
    const decided = await fetchJson<QuestionnaireResponse>(`${payerBase}/QuestionnaireResponse`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json' },
      body: JSON.stringify(qr),
    });
    saved = await recordDetermination(state, saved, decided);
    showDetermination(state, qr, saved, decided);
  } catch (err) {
    button.disabled = false;
    setStatus(`Could not save: ${(err as Error).message}`, 'error');
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

function showDetermination(
  state: FormState,
  sent: QuestionnaireResponse,
  saved: QuestionnaireResponse,
  decided: QuestionnaireResponse,
): void {
  const ext = coverageInformationOf(decided)[0];
  const summary = ext ? summarizeCoverage(ext, 'documentation') : undefined;
  const counts = countOrigins(sent);
  const result = byId('result');
  fill(
    result,
    h('h2', {}, 'Payer determination'),
    h(
      'p',
      { class: `decision decision-${summary?.tone ?? 'unclear'}`, 'data-testid': 'dtr-determination' },
      summary?.headline ?? 'The payer received the documentation but sent no determination.',
    ),
    summary && summary.tone !== 'needed' && summary.reasons.length ? h('p', {}, summary.reasons.join(' ')) : null,
    h(
      'p',
      { class: 'saved' },
      `Saved in the EHR as QuestionnaireResponse/${saved.id ?? '?'}: ${counts.auto} answer${counts.auto === 1 ? '' : 's'} as pre-filled, ${counts.override} changed, ${counts.manual} entered by hand.`,
    ),
    state.ctx.returnUrl
      ? h('p', {}, h('a', { href: state.ctx.returnUrl, class: 'button' }, 'Return to the EHR'))
      : null,
    h('details', {}, h('summary', {}, 'QuestionnaireResponse sent to the payer'), jsonBlock(sent)),
    h('details', {}, h('summary', {}, "Payer's answer"), jsonBlock(decided)),
  );
  result.hidden = false;
  byId('actions').hidden = true;
  setStatus('Documentation saved and sent.', 'ok');
  result.focus();
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
  const adaptiveUrl =
    state.questionnaire.extension?.find((e) => e.url === EXT_ADAPTIVE)?.valueUrl ??
    `${payerBase}/Questionnaire/$next-question`;
  // The payer's contained Questionnaire carries only the questions; population needs the form's launch contexts and
  // x-fhir-query variables, which the static form declares (SDC §launchContext, §variable).
  const population = (state.questionnaire.extension ?? []).filter((e) => /launchContext|\/variable$/.test(e.url));
  let qr: QuestionnaireResponse = {
    resourceType: 'QuestionnaireResponse',
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
    extension: finalResponse(state, { resourceType: 'QuestionnaireResponse', status: 'in-progress' }).extension,
    // What the payer already knows from signing goes first, so it asks only for the rest.
    item: flattenAnswered(prefilled?.item),
  };
  state.initial = snapshotAnswers(prefilled);
  const step = async (): Promise<void> => {
    setStatus('Asking the payer for the next questions…');
    qr = await fetchJson<QuestionnaireResponse>(adaptiveUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json' },
      body: JSON.stringify(qr),
    });
    if (qr.status === 'completed') {
      const saved = await state.client.create<QuestionnaireResponse>(
        stampInformationOrigin(qr, state.initial, state.author) as never,
      );
      // the completed adaptive response already carries the determination (DTR 2.2 §Adaptive forms)
      await recordOnOrder(state, qr);
      showDetermination(state, qr, saved, qr);
      return;
    }
    const contained = qr.contained?.find((r): r is Questionnaire => r.resourceType === 'Questionnaire');
    if (!contained) throw new Error('The payer sent no questions.');
    const renderable = withContainedValueSets(
      { ...contained, extension: [...(contained.extension ?? []), ...population] },
      valueSets,
    );
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
    await util.addFormToPage(form, state.container, { prepopulate: true });
    // Answers the form filled in from the chart on this step are the pre-filled ones (origin auto).
    for (const [k, v] of snapshotAnswers(currentResponse(state)))
      if (!before.has(k) && !state.initial.has(k)) state.initial.set(k, v);
    setStatus('Answer these questions and continue; the payer asks only what it still needs.', 'ok');
    byId<HTMLButtonElement>('save').disabled = false;
  };
  byId('actions').hidden = false;
  const button = byId<HTMLButtonElement>('save');
  button.textContent = 'Continue';
  button.addEventListener('click', () => {
    button.disabled = true;
    const answered = currentResponse(state);
    const onForm = (qr.contained?.find((r): r is Questionnaire => r.resourceType === 'Questionnaire')?.item ?? []).map(
      (i) => i.linkId,
    );
    const item = mergeAdaptiveAnswers(qr.item, onForm, pruneEmpty(answered.item));
    qr = { ...qr, item: stampInformationOrigin({ ...qr, item }, state.initial, state.author).item };
    step().catch((err: unknown) => {
      button.disabled = false;
      fail(err);
    });
  });
  await step();
}

function fail(err: unknown): void {
  const message = err instanceof HttpError ? err.message : ((err as Error)?.message ?? String(err));
  setStatus(`Something went wrong: ${message}`, 'error');
}

main().catch(fail);
