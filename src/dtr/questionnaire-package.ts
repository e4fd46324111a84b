import { randomUUID } from 'node:crypto';
import type {
  Bundle,
  BundleEntry,
  Coverage,
  Extension,
  MedicationRequest,
  OperationOutcome,
  OperationOutcomeIssue,
  Parameters,
  ParametersParameter,
  Questionnaire,
  QuestionnaireResponseItem,
  Resource,
} from '@medplum/fhirtypes';
import type { Content } from '../content.js';
import { policiesFor } from '../content.js';
import { badRequest, HttpError, outcome } from '../errors.js';
import { COVERAGE_INFO_URL } from '../coverage/coverage-information.js';
import { coverageLastDay, identifyPayer, notActiveOn } from '../coverage/payer.js';
import { decidesOrder } from '../coverage/decide-orders.js';
import type { Logger } from '../logger.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { orderStartOf, statedStartOf, withMedicationCode } from '../policies/evaluation-data.js';
import { localReference } from '../fhir/references.js';
import type { AssertionRecord, OrderKey, OrderRecord, Storage } from '../storage/storage.js';
import { latestEvent } from '../storage/storage.js';
import { reviewedOrderOf, sameOrderAsReviewed } from '../coverage/reviewed-approval.js';
import { prefilledResponse } from '../coverage/questionnaire-answers.js';
import { assertionIsAbout, assertionSpeaksFor, requestPatientIds } from '../coverage/assertion-speaks-for.js';
import type { DtrCatalog } from './catalog.js';
import { adaptiveDraftResponse, withoutLibrary } from './adaptive-questionnaire.js';
import { fhirInstant, packageChangedAt } from './package-changes.js';
import { coverageAssertionIds } from '../coverage/evaluate-response.js';
import { ASSERTION_READ_THROUGH_MS, mayBeOurAssertionId, readAssertions } from '../coverage/read-assertions.js';
import { DTR_PACKAGE_BUNDLE, DTR_PACKAGE_OUTPUT, X12_306_REVIEW_ACTION as X12_306 } from '../fhir/dtr-urls.js';
import { orderKeyOf, pendedReview, recordedDecision } from '../coverage/order-record.js';
import { longDate } from '../fhir/long-date.js';
import { prebuildArrayHead } from '../fhir/prebuilt-json.js';
import type { DtrVersion } from '../fhir/dtr-urls.js';

/** Which DTR wire shape a package response takes: one version's, or both (`PackageBundle` and `packagebundle`). */
export type PackageShape = DtrVersion | 'both';

export interface PackageDeps {
  content: Content;
  storage: Storage;
  catalog: DtrCatalog;
  /** `{PUBLIC_BASE_URL}/fhir`: where the package's resources can be read back (Bundle.entry.fullUrl). */
  fhirBase: string;
  /** DEFAULT_PAYER: the payer used when a Coverage names none PriorPath serves (design.md §3). */
  defaultPayer?: string;
  /** The shape when the request carries no DTR version signal. Default `both`. */
  defaultShape?: PackageShape;
  /**
   * Today (YYYY-MM-DD): the order date of an order that states none and of which no CRD assertion tells one, for
   * whether a Coverage is in force (design.md §4 "Payer"); the clock's day when absent.
   */
  today?: () => string;
  log: Logger;
}

const ORDER_TYPES = new Set([
  'Appointment',
  'Encounter',
  'CommunicationRequest',
  'DeviceRequest',
  'ImmunizationRecommendation',
  'MedicationRequest',
  'NutritionOrder',
  'ServiceRequest',
  'SupplyRequest',
  'VisionPrescription',
]);

/** The inputs of `$questionnaire-package` (DTR `dtr-qpackage-input-parameters`, 2.0.1 and 2.2 read leniently). */
export interface PackageRequest {
  coverages: Coverage[];
  orders: Resource[];
  questionnaires: string[];
  context?: string;
  /** Where the context parameter is (`Parameters.parameter[i].valueString`), to name it in an answer. */
  contextAt?: string;
  referenced: Resource[];
  shape?: DtrVersion;
  /** `changedsince` as sent and as an instant: only the packages changed after it are returned. */
  changedSince?: { value: string; at: number };
}

/**
 * Reads and checks the input Parameters; a malformed request is a 400 OperationOutcome naming the parameter
 * (DTR: coverage 1..* (1..1 in 2.2), order 0..*, questionnaire 0..* canonical, context 0..1 string, invariant dtr-1:
 * at least one of order, questionnaire, context).
 */
export function parsePackageRequest(body: unknown): PackageRequest {
  if (typeof body !== 'object' || body === null || (body as { resourceType?: unknown }).resourceType !== 'Parameters') {
    throw badRequest('$questionnaire-package takes a Parameters resource', ['Parameters']);
  }
  const params = (body as Parameters).parameter;
  if (params !== undefined && !Array.isArray(params))
    throw badRequest('Parameters.parameter must be an array', ['Parameters.parameter']);
  const req: PackageRequest = { coverages: [], orders: [], questionnaires: [], referenced: [] };
  (params ?? []).forEach((p: ParametersParameter, i) => {
    const at = `Parameters.parameter[${i}]`;
    if (typeof p !== 'object' || p === null || typeof p.name !== 'string')
      throw badRequest('Every parameter needs a name', [at]);
    const resource = p.resource as Resource | undefined;
    switch (p.name) {
      case 'coverage':
        if (resource?.resourceType !== 'Coverage')
          throw badRequest('Parameter coverage must carry a Coverage resource', [`${at}.resource`]);
        req.coverages.push(resource);
        break;
      case 'order':
        if (!resource || typeof resource.resourceType !== 'string' || !ORDER_TYPES.has(resource.resourceType)) {
          throw badRequest(`Parameter order must carry an order resource (${[...ORDER_TYPES].join(', ')})`, [
            `${at}.resource`,
          ]);
        }
        req.orders.push(resource);
        break;
      case 'questionnaire': {
        const v = p.valueCanonical ?? p.valueUri ?? p.valueUrl ?? p.valueString;
        if (typeof v !== 'string' || v.trim() === '')
          throw badRequest('Parameter questionnaire must carry a canonical (valueCanonical)', [`${at}.valueCanonical`]);
        req.questionnaires.push(v.trim());
        break;
      }
      case 'context': {
        const v = p.valueString ?? p.valueId ?? p.valueCode;
        if (typeof v !== 'string' || v.trim() === '')
          throw badRequest('Parameter context must carry a string (valueString)', [`${at}.valueString`]);
        if (req.context !== undefined) throw badRequest('Parameter context may appear once', [at]);
        req.context = v.trim();
        req.contextAt = `${at}.valueString`;
        break;
      }
      case 'referenced':
        if (resource && typeof resource.resourceType === 'string') req.referenced.push(resource);
        break;
      case 'changedsince': {
        // dateTime in the 2.0.1 OperationDefinition, instant in 2.2's input profile: either is read.
        const v = p.valueDateTime ?? p.valueInstant;
        const instant = typeof v === 'string' ? fhirInstant(v.trim()) : undefined;
        if (instant === undefined)
          throw badRequest('Parameter changedsince must carry a dateTime (valueDateTime, e.g. 2026-11-23T10:00:00Z)', [`${at}.valueDateTime`]);
        if (req.changedSince !== undefined) throw badRequest('Parameter changedsince may appear once', [at]);
        req.changedSince = { value: (v as string).trim(), at: instant };
        break;
      }
      default:
        // Parameters of later versions are accepted and not acted on.
        break;
    }
  });
  if (req.coverages.length === 0)
    throw badRequest('$questionnaire-package needs a coverage parameter (a Coverage resource)', [
      'Parameters.parameter',
    ]);
  if (req.orders.length === 0 && req.questionnaires.length === 0 && req.context === undefined) {
    throw badRequest('dtr-1: give at least one of order, questionnaire or context', ['Parameters.parameter']);
  }
  req.shape = shapeSignal(body as Parameters);
  // DTR 2.2's input profile takes one Coverage (coverage 1..1, FHIR-51736); 2.0.1's takes several.
  if (req.shape === '2.2' && req.coverages.length > 1)
    throw badRequest(`DTR 2.2 takes one coverage parameter; this request has ${req.coverages.length}`, ['Parameters.parameter']);
  return req;
}

/** The DTR versions whose input profile a request may claim, read two-part (2.0.1 answers 2.0 and 2.1). */
const DTR_VERSIONS: Record<string, DtrVersion> = { '2.0': '2.0.1', '2.1': '2.0.1', '2.2': '2.2' };

/**
 * The DTR version a request announces, if any: the version of the input-parameters profile it claims in
 * `meta.profile` (`…/dtr-qpackage-input-parameters|2.2.0`), the only in-band signal DTR defines. A version this
 * service does not serve is a 400 `not-supported` naming those it does, as CRD's `requestedVersion` is (design.md §7).
 */
function shapeSignal(p: Parameters): DtrVersion | undefined {
  for (const [i, prof] of (Array.isArray(p.meta?.profile) ? p.meta.profile : []).entries()) {
    const m = typeof prof === 'string' ? /\/dtr-qpackage-input-parameters\|(.*)$/.exec(prof) : null;
    if (!m) continue;
    const two = /^(\d+)\.(\d+)(?:\.\d+)?(?:-[A-Za-z0-9.-]+)?$/.exec(m[1]);
    const version = two ? DTR_VERSIONS[`${Number(two[1])}.${Number(two[2])}`] : undefined;
    if (!version) {
      throw new HttpError(
        400,
        outcome('error', 'not-supported', `DTR version ${m[1]} (dtr-qpackage-input-parameters) is not supported: this payer serves ${Object.keys(DTR_VERSIONS).join(', ')}`, [`Parameters.meta.profile[${i}]`]),
      );
    }
    return version;
  }
  return undefined;
}

function issue(
  severity: OperationOutcomeIssue['severity'],
  code: OperationOutcomeIssue['code'],
  diagnostics: string,
): OperationOutcomeIssue {
  return { severity, code, diagnostics };
}

/**
 * The canonicals named by `coverage-information.questionnaire` on an order (CRD: the forms DTR should use), except
 * those of a coverage-information whose `coverage-assertion-id` is in `notAbout`: an assertion recorded for another
 * patient chooses no form, the form it named included (it may be another payer's, from another chart).
 */
function extensionQuestionnaires(order: Resource, notAbout: ReadonlySet<string>): string[] {
  const exts = ((order as { extension?: Extension[] }).extension ?? []).filter((e) => e.url === COVERAGE_INFO_URL);
  return exts
    .filter((e) => {
      const id = e.extension?.find((s) => s.url === 'coverage-assertion-id')?.valueString;
      return !(id && notAbout.has(id));
    })
    .flatMap((e) => (e.extension ?? []).filter((s) => s.url === 'questionnaire').map((s) => s.valueCanonical))
    .filter((v): v is string => !!v);
}

/**
 * The coverage-assertion-ids of a request worth waiting for when storage does not hold them yet (read-assertions.ts):
 * those shaped like PriorPath's, given as the `context` (DTR: the id CRD gave with the form) or in an order's
 * coverage-information that does not name a Coverage of this request whose payer PriorPath does not serve. An order
 * may carry another payer's CRD answer too (an EHR asks every payer of the patient); that payer's id will never be
 * ours, and waiting for it would only delay every package of the order.
 */
function awaitedAssertionIds(req: PackageRequest, payers: ReadonlyMap<Coverage, unknown>): Set<string> {
  const ids = new Set<string>();
  if (req.context && mayBeOurAssertionId(req.context)) ids.add(req.context);
  const otherPayers = new Set(req.coverages.filter((c) => !payers.has(c)).map(refOf).filter((r): r is string => !!r));
  for (const o of req.orders) {
    for (const e of (o as { extension?: Extension[] }).extension ?? []) {
      if (e.url !== COVERAGE_INFO_URL) continue;
      const id = e.extension?.find((s) => s.url === 'coverage-assertion-id')?.valueString;
      const coverage = localReference(e.extension?.find((s) => s.url === 'coverage')?.valueReference?.reference);
      if (id && mayBeOurAssertionId(id) && !(coverage && otherPayers.has(coverage))) ids.add(id);
    }
  }
  return ids;
}

function refOf(r: Resource | undefined): string | undefined {
  return r?.id ? `${r.resourceType}/${r.id}` : undefined;
}

/**
 * `$questionnaire-package` (DTR §"Retrieving Questionnaire Packages"; design.md §7). Chooses the forms — the
 * requested canonicals when given (DTR 2.2: they limit the result), otherwise the union of the orders'
 * coverage-information `questionnaire`s, the policies of the CRD assertions named by `context` or by the orders'
 * `coverage-assertion-id`, and the policy governing each order's drug for the coverage's payer — and returns one
 * collection Bundle per form: the Questionnaire, the ValueSets it binds (with their local expansions) and, when a CRD
 * assertion for that policy is found, a QuestionnaireResponse pre-filled from the facts recorded at signing.
 * With `changedsince`, a form whose package has not changed since then is left out, and the outcome says so
 * (package-changes.ts). Nothing applicable is an `outcome` part, never an HTTP error. An assertion id storage does not
 * hold yet is read through for a moment (another replica may still be writing it: read-assertions.ts); one of ours
 * still unknown then means no pre-fill and a warning saying so (another payer's id: no pre-fill, silently), and an
 * assertion recorded for another patient than the request names is not used at all (a warning says so).
 */
export async function questionnairePackage(req: PackageRequest, deps: PackageDeps): Promise<Parameters> {
  const { content, catalog } = deps;
  const shape: PackageShape = req.shape ?? deps.defaultShape ?? 'both';
  const issues: OperationOutcomeIssue[] = [];

  // The payer each Coverage names (DTR 2.0.1 takes several): a form belongs to one payer, and its response names that
  // payer's Coverage, not merely the first one sent.
  const byReference = new Map<string, Resource>();
  for (const r of [...req.referenced, ...req.orders, ...req.coverages]) {
    const ref = refOf(r);
    if (ref) byReference.set(ref, r);
  }
  const today = deps.today?.() ?? new Date().toISOString().slice(0, 10);
  const payers = new Map<Coverage, { key: string; defaulted: boolean }>();
  let unknownPayer: unknown;
  for (const coverage of req.coverages) {
    try {
      // The payer the Coverage names, and whether it is active: whether it is in force is judged below, on the dates of
      // the orders the package is for, once the CRD assertions that date them are read.
      const m = await identifyPayer({ content, coverages: [coverage], byReference, defaultPayer: deps.defaultPayer });
      payers.set(coverage, { key: m.payer.key, defaulted: m.defaulted });
    } catch (err) {
      // Names no payer PriorPath serves, or is not active: said below when it was asked to choose a form.
      unknownPayer ??= err;
    }
  }
  // A request that leaves the choice of form to the payer (orders, context) while none of its Coverages names a payer
  // PriorPath serves is not for this payer: a 400, as on CRD and PAS (design.md §4 "Payer"). A request naming its forms
  // (questionnaire canonicals) gets them whatever the Coverage says; one of several Coverages (DTR 2.0.1 takes
  // several) naming another payer is only noted.
  if (payers.size === 0 && req.questionnaires.length === 0) {
    const why = unknownPayer instanceof Error ? unknownPayer.message : 'The Coverage names no payer PriorPath serves';
    throw badRequest(`Unknown payer: ${why.charAt(0).toLowerCase()}${why.slice(1)}`, ['Parameters.parameter.where(name = \'coverage\').resource.payor']);
  }
  // CRD assertions: the context parameter and every order's coverage-assertion-id, read through to what another
  // replica may still be writing (read-assertions.ts: the signing's assertion reaches the shared database moments after
  // its answer, and a package asked for on another replica in between is otherwise drafted as if there were none).
  const assertionIds = [
    ...new Set([
      ...(req.context ? [req.context] : []),
      ...req.orders.flatMap((o) => coverageAssertionIds(o as { extension?: Extension[] })),
    ]),
  ];
  const ours = awaitedAssertionIds(req, payers);
  const reads = await readAssertions(deps.storage, assertionIds, { waitFor: (id) => ours.has(id) });
  const assertions: AssertionRecord[] = [];
  // Assertion ids recorded for another patient: their coverage-information chooses no form either.
  const otherPatient = new Set<string>();
  let contextUnknown = false;
  let contextOtherPatient = false;
  const patients = requestPatientIds(req.coverages, req.orders);
  for (const id of assertionIds) {
    const read = reads.get(id)!;
    if ('found' in read) {
      const a = read.found;
      if (assertionIsAbout(a, patients)) assertions.push(a);
      else {
        otherPatient.add(id);
        if (id === req.context) contextOtherPatient = true;
        issues.push(
          issue(
            'warning',
            'business-rule',
            `The coverage-assertion-id ${id} was recorded for another patient than the one this request names: it neither chooses nor pre-fills a form`,
          ),
        );
        deps.log.warn({ coverageAssertionId: id }, 'questionnaire-package: coverage-assertion-id of another patient, not used');
      }
    } else if ('missing' in read) {
      if (id === req.context) contextUnknown = true;
      // One of ours not found even after the wait: the draft is not what signing saw, and the client is told, not
      // handed a near-empty form as if the order carried no assertion (QA s40 F9). Another payer's id (its
      // coverage-information names that payer's Coverage) is not ours to know: no pre-fill, as always.
      if (read.waited) {
        issues.push(
          issue(
            'warning',
            'not-found',
            `The coverage-assertion-id ${id} is not known to this payer: the draft QuestionnaireResponse is not pre-filled from the data seen at order signing. If the order was signed moments ago, ask for the package again`,
          ),
        );
        deps.log.warn({ coverageAssertionId: id, waitedMs: ASSERTION_READ_THROUGH_MS }, 'questionnaire-package: coverage-assertion-id not found after waiting, no pre-fill');
      } else deps.log.info({ coverageAssertionId: id }, 'questionnaire-package: unknown coverage-assertion-id, no pre-fill');
    } else {
      issues.push(
        issue(
          'warning',
          'transient',
          `The coverage-assertion-id ${id} could not be read now: the draft QuestionnaireResponse is not pre-filled from the data seen at order signing. Ask for the package again`,
        ),
      );
      deps.log.warn({ err: read.failed, coverageAssertionId: id }, 'questionnaire-package: assertion lookup failed, no pre-fill');
    }
  }

  // A Coverage is judged on the order dates of the orders it would decide (design.md §4 "Payer", §6; as CRD and PAS
  // judge it): the package's orders its payer's policies govern, each on the start it states, else the date the CRD
  // assertion it carries judged it on, else today; with no such order, the dates of this payer's CRD assertions the
  // request names (its `context`), else today. One not in force on them is no coverage to draft a form under: left out
  // as a Coverage naming no payer is, and a 400 when it was the request's only way to a form. DEFAULT_PAYER's stand-in
  // for a Coverage naming no payer PriorPath serves is not judged, as CRD does not judge it (payer.ts identifyPayer).
  let lapsed: string | undefined;
  for (const [coverage, { key, defaulted }] of [...payers]) {
    if (defaulted) continue;
    const payer = content.payers.get(key);
    const mine = assertions.filter((a) => a.payer === key);
    const orderDates = req.orders
      .filter((o): o is MedicationRequest => o.resourceType === 'MedicationRequest' && !!payer && decidesOrder(content, payer, o, { byReference }))
      .map((o) => orderStartOf(o) ?? mine.find((a) => a.orderDate && coverageAssertionIds(o).includes(a.assertionId))?.orderDate ?? today);
    const asserted = mine.map((a) => a.orderDate).filter((d): d is string => !!d);
    const dates = orderDates.length > 0 ? orderDates : asserted.length > 0 ? asserted : [today];
    const why = notActiveOn(coverage, [...new Set(dates)].sort());
    if (why) {
      payers.delete(coverage);
      lapsed ??= `No active Coverage for the patient: ${why}`;
    }
  }
  if (lapsed && payers.size === 0 && req.questionnaires.length === 0) {
    throw badRequest(lapsed, ['Parameters.parameter.where(name = \'coverage\').resource.period']);
  }

  const coverageFor = (payer: string): Coverage | undefined =>
    req.coverages.find((c) => payers.get(c)?.key === payer && !payers.get(c)!.defaulted) ??
    req.coverages.find((c) => payers.get(c)?.key === payer) ??
    req.coverages[0];

  // The order a form is for: the first order whose drug the form's policy governs under its payer (an order sent
  // beside it, e.g. a premedication, is not the one the response documents).
  const orderFor = (policy: CompiledPolicy): Resource | undefined =>
    req.orders.find(
      (o) =>
        o.resourceType === 'MedicationRequest' &&
        policiesFor(content, policy.file.payer, withMedicationCode(o as MedicationRequest, { byReference })).some(
          (p) => p.file.id === policy.file.id,
        ),
    );

  const chosen: Questionnaire[] = [];
  const add = (q: Questionnaire | undefined) => {
    if (q && !chosen.includes(q)) chosen.push(q);
  };
  if (req.questionnaires.length > 0) {
    // A named form is one payer's: when the Coverages name payers PriorPath serves and none of them is the form's, the
    // form is not this member's (a completed form decides under its policy and can carry an authorization number,
    // design.md §4 "Payer", §8 "One authorization per order"). Coverages naming no payer PriorPath serves leave the
    // choice to the client, as before.
    const named = new Set([...payers.values()].filter((p) => !p.defaulted).map((p) => p.key));
    for (const c of req.questionnaires) {
      let q = catalog.byCanonical.get(c);
      // A version this payer no longer offers (a client's cached canonical): the form's current version is what the
      // payer decides on now, so it is given, and the outcome says which version replaced the one asked for.
      const [url, asked] = c.split('|');
      if (!q && asked !== undefined && catalog.byCanonical.get(url)) {
        q = catalog.byCanonical.get(url)!;
        issues.push(issue('information', 'not-found', `Questionnaire ${url} version ${asked} is no longer offered; its current version ${q.version} is given`));
      }
      const formPayer = q ? catalog.policyOf.get(q)?.file.payer : undefined;
      if (q && formPayer && named.size > 0 && !named.has(formPayer)) {
        issues.push(
          issue('error', 'business-rule', `Questionnaire ${c} is payer ${formPayer}'s form; the Coverage names payer ${[...named].join(', ')}`),
        );
      } else if (q) add(q);
      else issues.push(issue('warning', 'not-found', `Questionnaire ${c} is not offered by this payer`));
    }
  } else {
    for (const o of req.orders) {
      for (const c of extensionQuestionnaires(o, otherPatient)) {
        const q = catalog.byCanonical.get(c);
        if (q) add(q);
        else
          issues.push(
            issue(
              'warning',
              'not-found',
              `Questionnaire ${c} named by the order's coverage-information is not offered by this payer`,
            ),
          );
      }
    }
    for (const a of assertions) if (a.policyId) add(catalog.forPolicy.get(a.policyId));
    const meds = req.orders.filter((o): o is MedicationRequest => o.resourceType === 'MedicationRequest');
    if (meds.length > 0) {
      for (const coverage of req.coverages) {
        const payerKey = payers.get(coverage)?.key;
        if (!payerKey) {
          issues.push(
            issue(
              'information',
              'not-found',
              `Coverage${coverage.id ? ` ${coverage.id}` : ''} names no payer PriorPath serves, or is not active`,
            ),
          );
          continue;
        }
        for (const order of meds)
          for (const p of policiesFor(content, payerKey, withMedicationCode(order, { byReference })))
            add(catalog.forPolicy.get(p.file.id));
      }
    }
  }

  // Orders no policy governs (design.md §7; DTR: "a warning SHALL be provided in the outcome"): one warning each, naming
  // the order, whether or not the request's other orders got forms, so the client knows which orders have none.
  const servedPayers = [...new Set([...payers.values()].map((p) => p.key))];
  if (servedPayers.length > 0) {
    req.orders.forEach((o, n) => {
      const coded = o.resourceType === 'MedicationRequest' ? withMedicationCode(o as MedicationRequest, { byReference }) : undefined;
      if (coded && servedPayers.some((key) => policiesFor(content, key, coded).length > 0)) return;
      const code = coded?.medicationCodeableConcept?.coding?.find((c) => c.code)?.code;
      issues.push({
        severity: 'warning',
        code: 'not-found',
        diagnostics: `No payer Questionnaire applies to order ${refOf(o) ?? `${o.resourceType} (order parameter ${n + 1})`}: no policy of payer ${servedPayers.join(', ')} governs it${code ? ` (code ${code})` : ''}`,
        expression: [`Parameters.parameter.where(name = 'order')[${n}].resource`],
      });
    });
  }

  // changedsince (DTR): a form whose package has not changed since then is left out (the client resuming a draft keeps
  // the package it has); a form whose change time cannot be read now counts as changed.
  const changed = req.changedSince
    ? await Promise.all(
        chosen.map((q) =>
          packageChangedAt(q, catalog, deps.storage).then(
            (t) => t > req.changedSince!.at,
            (err: unknown) => {
              deps.log.warn({ err, questionnaire: q.id }, 'questionnaire-package: change time unknown, package sent');
              return true;
            },
          ),
        ),
      )
    : chosen.map(() => true);
  const unchanged = chosen.filter((_, i) => !changed[i]);
  if (unchanged.length > 0) {
    const forms = unchanged.map((q) => `${q.url}|${q.version}`).join(', ');
    issues.push(
      issue(
        'information',
        'informational',
        unchanged.length === chosen.length
          ? `Nothing has changed since ${req.changedSince!.value}: the package of ${forms} (the Questionnaire, its Libraries and ValueSets) is as it was, and is not sent again`
          : `Unchanged since ${req.changedSince!.value}, and not sent again: the package of ${forms}`,
      ),
    );
  }

  // Each part holds the shape of its version: `PackageBundle` parts 2.0.1 bundles, `packagebundle` parts 2.2 bundles
  // (FHIR parameter names are case-sensitive). 2.0.1 parts come first: the DTR reference app reads parameter[0].
  // The decision the order's record holds for each form's order, when it has one (orderDecisionIssue).
  const sent = chosen.filter((_, i) => changed[i]);
  const context = { coverageFor, orderFor, patientIds: patients };
  for (const q of sent) {
    const policy = catalog.policyOf.get(q);
    const decided = policy ? await orderDecisionIssue(policy, formOrder(policy, req, assertions, context), deps, today) : undefined;
    if (decided) issues.push(decided);
  }
  const versions: DtrVersion[] = shape === 'both' ? ['2.0.1', '2.2'] : [shape];
  const parameter: ParametersParameter[] = [];
  const bundles: Bundle[] = [];
  for (const v of versions) {
    for (const q of sent) {
      const b = packageBundle(q, req, assertions, v, deps, context);
      bundles.push(b);
      parameter.push({ name: v === '2.2' ? 'packagebundle' : 'PackageBundle', resource: b });
    }
  }
  // A context that is the request's only way to a form, and that PriorPath cannot use (not a coverage-assertion-id it
  // recorded, or one recorded for another patient), names a record PriorPath does not hold for this patient: a 404
  // naming it, as a Claim Update naming an unknown prior Claim (design.md §8), not a 200 that reads as "no form".
  if (chosen.length === 0 && req.orders.length === 0 && req.questionnaires.length === 0 && (contextUnknown || contextOtherPatient)) {
    throw new HttpError(
      404,
      outcome(
        'error',
        'not-found',
        contextOtherPatient
          ? `The context ${req.context} was recorded for another patient than the one this request names: it chooses no form. Send the order (or the Questionnaire) the form is for`
          : `The context ${req.context} is not a coverage-assertion-id this payer recorded: it chooses no form. Send the order (or the Questionnaire) the form is for`,
        [req.contextAt ?? 'Parameters.parameter'],
      ),
    );
  }
  if (chosen.length === 0) {
    const flagged = assertions.some(
      (a) => a.missingFacts.length > 0 || a.outcome === 'documentation-needed' || a.outcome === 'limit-exceeded',
    );
    issues.unshift(
      issue(
        flagged ? 'warning' : 'information',
        'not-found',
        flagged
          ? 'Documentation was flagged at order signing but no payer form applies to these orders; submit the prior authorization request with supporting documentation, or contact the payer.'
          : contextOtherPatient
            ? `No payer Questionnaire applies: the context ${req.context} was recorded for another patient, and no order or Questionnaire given names a form.`
            : contextUnknown
              ? `No payer Questionnaire applies: the context ${req.context} is not a coverage-assertion-id this payer recorded, and no order or Questionnaire given names a form.`
              : req.questionnaires.length > 0
                ? 'No payer Questionnaire applies: none of the requested Questionnaires is offered by this payer.'
                : 'No payer Questionnaire applies: PriorPath holds no policy for these orders under this coverage, and none was requested.',
      ),
    );
  }
  if (issues.length > 0) {
    const outcome: OperationOutcome = { resourceType: 'OperationOutcome', issue: issues };
    // DTR 2.0.1 names the part `operationOutcome` (dtr-qpackage-output-parameters slice Outcome), 2.2 `outcome`.
    if (shape !== '2.2') parameter.push({ name: 'operationOutcome', resource: outcome });
    if (shape !== '2.0.1') parameter.push({ name: 'outcome', resource: outcome });
  }
  deps.log.info(
    {
      forms: chosen.map((q) => q.id),
      unchanged: unchanged.length,
      prefilled: bundles.filter((b) =>
        b.entry?.some((e) => e.resource?.resourceType === 'QuestionnaireResponse' && (e.resource.item ?? []).some(hasAnswer)),
      ).length,
      shape,
    },
    'questionnaire-package',
  );
  // The output profile (same URL in 2.0.1 and 2.2) is claimed only where it holds: 2.0.1 needs a PackageBundle.
  const conforms = shape === '2.2' || bundles.length > 0;
  return { resourceType: 'Parameters', ...(conforms ? { meta: { profile: [DTR_PACKAGE_OUTPUT] } } : {}), parameter };
}

function hasAnswer(item: QuestionnaireResponseItem): boolean {
  return (item.answer ?? []).length > 0 || (item.item ?? []).some(hasAnswer);
}

/** What a form's package is about: the order it documents, its Coverage and patient, and the CRD assertion for it. */
interface FormOrder {
  assertion?: AssertionRecord;
  order?: Resource;
  coverage?: Coverage;
  subject?: { reference: string };
  orderRef?: string;
}

/**
 * The order a form's package documents (the one carrying the form's CRD assertion, else the first its policy governs,
 * else the first sent), the Coverage of the form's payer, the patient (the Coverage's beneficiary, else the
 * assertion's) and the order's reference (else the assertion's).
 */
function formOrder(
  policy: CompiledPolicy,
  req: PackageRequest,
  assertions: AssertionRecord[],
  context: { coverageFor: (payer: string) => Coverage | undefined; orderFor: (policy: CompiledPolicy) => Resource | undefined },
): FormOrder {
  const assertion = assertions.find((a) => a.policyId === policy.file.id);
  const order =
    (assertion &&
      req.orders.find((o) => coverageAssertionIds(o as { extension?: Extension[] }).includes(assertion.assertionId))) ??
    context.orderFor(policy) ??
    req.orders[0];
  const coverage = context.coverageFor(policy.file.payer);
  const subject = coverage?.beneficiary?.reference
    ? { reference: coverage.beneficiary.reference }
    : assertion?.patientId
      ? { reference: `Patient/${assertion.patientId}` }
      : undefined;
  const orderRef =
    refOf(order) ?? (assertion?.orderRef && !assertion.orderRef.endsWith('/') ? assertion.orderRef : undefined);
  return { assertion, order, coverage, subject, orderRef };
}

/**
 * The decision the order's one record holds for a form's order (approved while it lasts, or denied: order-record.ts
 * `recordedDecision`), as an `information` issue of the package's outcome: the X12 306 review action (A1 certified,
 * A3 not certified) in `details.coding`, the reason in `details.text` and `diagnostics`. A DTR client launched for an
 * order a reviewer (or PAS, or an earlier response) has decided then shows that decision rather than "Still needed"
 * from the EHR's copy of an earlier answer, and does not invite documentation for an order already decided
 * (design.md §8 "One authorization per order": DTR shows the order's decision; review ui s44 L5). An order a PAS
 * request pends has no decision yet: it is named pended (A4, {@link pendedIssue}). Nothing while the order is
 * otherwise undecided, cannot be named, or its record cannot be read now (the package is still useful without it).
 */
async function orderDecisionIssue(policy: CompiledPolicy, form: FormOrder, deps: PackageDeps, today: string): Promise<OperationOutcomeIssue | undefined> {
  const patientId = localReference(form.subject?.reference)?.replace(/^Patient\//, '');
  const key = orderKeyOf({ payer: policy.file.payer, patientId, orderRef: form.orderRef, drug: policy.file.drug });
  if (!key) return undefined;
  const record = await deps.storage.getOrderRecord(key).catch((err: unknown) => {
    deps.log.warn({ err }, 'questionnaire-package: order record not read, no decision noted');
    return undefined;
  });
  const decided = recordedDecision(record, today, coverageLastDay(form.coverage));
  if (!decided) return pendedIssue(record, key.orderRef);
  // An approval covers the order as it was approved, and the package is not judged against it (review-diff s45 H4: an
  // order re-signed at twice the approved dose, which CRD answers auth-needed, was shown "Certified in total"). So an
  // approval is named only when it is news to the order the EHR holds: the order carries the signing assertion this
  // form is for, and the approval was given after that signing. A signing after the approval already gave the EHR
  // CRD's own answer on the order as it now stands; an order without an assertion cannot be placed. Nor is it named
  // for an order the EHR has changed since what was approved (the dose raised and not yet signed again): an approval
  // given in PAS or by a reviewer is compared with the order the approved request held, by the one definition of the
  // same order CRD and PAS use (reviewed-approval.ts sameOrderAsReviewed). A denial stands for the order until it is
  // changed and signed again (which reopens the record), so it is always named.
  if (decided.reviewAction === 'A1') {
    const approvedBy = record && latestEvent(record, 'approved');
    if (!form.assertion || !approvedBy || form.assertion.createdAt >= approvedBy.at) return undefined;
    if (approvedBy.submissionId && form.order && (await changedSinceApproved(policy, form.order, approvedBy.submissionId, key, deps))) return undefined;
  }
  const text =
    decided.reviewAction === 'A1'
      ? `Prior authorization approved: ${decided.authorization.number}, valid from ${longDate(decided.authorization.start)} to ${longDate(decided.authorization.end)}. ${decided.reason}`
      : decided.reason;
  return {
    severity: 'information',
    code: 'informational',
    details: {
      coding: [{ system: X12_306, code: decided.reviewAction, display: decided.reviewAction === 'A1' ? 'Certified in total' : 'Not Certified' }],
      text,
    },
    diagnostics: `The order ${key.orderRef} has its decision: ${text}`,
  };
}

/**
 * Whether the EHR's order a package is for is not the order the PAS request `submissionId` (whose approval the record
 * holds) asked for: what it asks (dose, quantity, cycles, supply) differs from that request's order
 * (reviewed-approval.ts sameOrderAsReviewed). False when the request or its order cannot be read: nothing tells.
 */
async function changedSinceApproved(policy: CompiledPolicy, order: Resource, submissionId: string, key: OrderKey, deps: PackageDeps): Promise<boolean> {
  const approved = await reviewedOrderOf(deps.storage, submissionId, key).catch((err: unknown) => {
    deps.log.warn({ err }, 'questionnaire-package: approved request not read, the approval named as recorded');
    return undefined;
  });
  return !!approved && !sameOrderAsReviewed(policy, { order }, approved);
}

/**
 * An order a PAS request pends for a payer reviewer (the order's record `pended`, order-record.ts `pendedReview`), as
 * an `information` issue of the package's outcome coded X12 306 A4 (Pended), with what the request waits for and
 * where the clinician's answers go: documentation that meets the policy settles it at once, other answers reach the
 * reviewer only sent as an update of that request (design.md §8 "One authorization per order"). The form is still
 * sent, since documentation may still settle the order; a DTR client says, when the form opens, what is pending
 * rather than show nothing until the documentation is sent (review ui s45 "A pended order is not shown").
 */
function pendedIssue(record: OrderRecord | undefined, orderRef: string): OperationOutcomeIssue | undefined {
  const pended = pendedReview(record, { naming: true });
  if (!pended) return undefined;
  // What the request waits for: the questions or documents it still needs, as the PAS answer's `needed` names them
  // ("clinical review" when it waits for a reviewer's judgement alone).
  const waits = pended.waitsFor && pended.waitsFor !== 'clinical review' ? ` It waits for: ${pended.waitsFor.replace(/\.$/, '')}.` : ' It waits for a clinical reviewer.';
  const text = `${pended.pended}${waits} ${pended.advice}`;
  return {
    severity: 'information',
    code: 'informational',
    details: { coding: [{ system: X12_306, code: 'A4', display: 'Pended' }], text },
    diagnostics: `The order ${orderRef} is pended: ${text}`,
  };
}

/** By form, then by DTR version and FHIR base: the entries every package Bundle of that form starts with. */
const formEntriesCache = new WeakMap<Questionnaire, Map<string, { form: Questionnaire; entries: readonly BundleEntry[] }>>();

/**
 * The form a package Bundle carries in the shape of one DTR version, and the entries the Bundle starts with (the form,
 * its Libraries, its ValueSets), made once per form, version and FHIR base: content never changes after it loads.
 * The entries are frozen and their JSON is made once (prebuildArrayHead), so a package response writes them from
 * pieces made once and, gzip-encoded, from one segment compressed once.
 */
function formEntries(q: Questionnaire, version: DtrVersion, deps: PackageDeps): { form: Questionnaire; entries: readonly BundleEntry[] } {
  const key = `${version} ${deps.fhirBase}`;
  let byKey = formEntriesCache.get(q);
  const cached = byKey?.get(key);
  if (cached) return cached;
  const { catalog } = deps;
  // An adaptive form (named by the request) carries the ValueSets of the standard form whose questions $next-question
  // asks; in 2.0.1 also the Libraries its cqf-library names, in 2.2 neither (FHIRPath: withoutLibrary).
  const standard = catalog.standardOf.get(q);
  // DTR 2.0.1 clients pre-populate with CQL: they get the CQL form and its Libraries (CQL + ELM, with dependencies).
  // 2.2 clients get the FHIRPath forms and no Library: with both shapes in one response, each Library is there once
  // (the Inferno 2.0.1 kit reads every package Bundle of a response and fails a Library name seen twice).
  const cqlForm = version === '2.0.1' ? catalog.cqlFormOf(standard ?? q) : undefined;
  const form = standard ? (version === '2.0.1' ? q : withoutLibrary(q)) : (cqlForm?.questionnaire ?? q);
  const entries: BundleEntry[] = [{ fullUrl: `${deps.fhirBase}/Questionnaire/${q.id}`, resource: form }];
  for (const lib of cqlForm?.libraries ?? []) entries.push({ fullUrl: `${deps.fhirBase}/Library/${lib.id}`, resource: lib });
  for (const vs of [...catalog.valueSetsOf(standard ?? q), ...(cqlForm?.valueSets ?? [])]) entries.push({ fullUrl: `${deps.fhirBase}/ValueSet/${vs.id}`, resource: vs });
  const made = { form, entries: prebuildArrayHead(entries) };
  if (!byKey) formEntriesCache.set(q, (byKey = new Map()));
  byKey.set(key, made);
  return made;
}

/**
 * One package Bundle (DTR-QPackageBundle, invariant dtrb-1: the Questionnaire first), in the shape of one DTR
 * version, always with exactly one draft QuestionnaireResponse (2.0.1 "one or more", 2.2 oper-18 "exactly one"):
 * pre-filled from the CRD assertion for this policy when one was found, otherwise with no answers.
 */
function packageBundle(
  q: Questionnaire,
  req: PackageRequest,
  assertions: AssertionRecord[],
  version: DtrVersion,
  deps: PackageDeps,
  context: {
    coverageFor: (payer: string) => Coverage | undefined;
    orderFor: (policy: CompiledPolicy) => Resource | undefined;
    /** The request's patients (`requestPatientIds`), read once per request rather than once per form. */
    patientIds: Set<string>;
  },
): Bundle {
  const { catalog, content } = deps;
  const standard = catalog.standardOf.get(q);
  const { form, entries } = formEntries(q, version, deps);
  const entry: BundleEntry[] = [...entries];

  const policy = catalog.policyOf.get(q);
  if (policy) {
    const { assertion, order, coverage, subject, orderRef } = formOrder(policy, req, assertions, context);
    const coverageInfo = assertion
      ? ((order as { extension?: Extension[] } | undefined)?.extension ?? []).filter(
          (e) => e.url === COVERAGE_INFO_URL && coverageAssertionIds({ extension: [e] }).includes(assertion.assertionId),
        )
      : [];
    const id = randomUUID();
    // The date CRD judged this order on, for the form's age and askWhen gates and the server's reading (design.md §8):
    // the start the order states, only from an order about the response's patient (another patient's order says
    // nothing of this one's); else the date the CRD assertion for this order recorded (a request naming only the
    // `context`, or an order stating no start, which CRD judged on the day it was signed). Today only when neither.
    const orderSubject = localReference((order as { subject?: { reference?: string } } | undefined)?.subject?.reference);
    const aboutSubject = !orderSubject || !subject || orderSubject === localReference(subject.reference);
    // The assertion pre-fills and dates the form only where it speaks for the form's order (design.md §8, one rule for
    // every edge): one recorded for another order of the patient (the context of an earlier cycle beside this cycle's
    // order, or an order copied from the last cycle with its coverage-information) neither pre-fills nor dates it.
    const ofOrder =
      assertion &&
      assertionSpeaksFor(assertion, {
        patientIds: context.patientIds,
        orderRef: refOf(order),
        carriedIds: [...coverageAssertionIds(order as { extension?: Extension[] } | undefined), ...(req.context ? [req.context] : [])],
      })
        ? assertion
        : undefined;
    const ownDate = order && aboutSubject ? orderStartOf(order as MedicationRequest) : undefined;
    const orderDate = ownDate ?? ofOrder?.orderDate;
    // The start the order states, for the form's recency windows (docs/design.md §6 "Order date"), from where the date
    // came: the order itself, else the CRD assertion that dated it (a request naming only the `context`: the start
    // signing read off the order, `AssertionRecord.orderStart`; none when the order stated none, never authoredOn).
    // Without it a context-only form's windows had no upper end (review-diff s44 D4).
    const orderStart = ownDate !== undefined ? statedStartOf(order as MedicationRequest) : orderDate && ofOrder?.orderStart === orderDate ? ofOrder.orderStart : undefined;
    const qr = prefilledResponse(policy, q, ofOrder?.facts ?? {}, {
      valueSets: content.valueSets,
      canonicalBase: content.canonicalBase,
      subject,
      coverage: refOf(coverage) ? { reference: refOf(coverage) } : undefined,
      orders: orderRef ? [{ reference: orderRef }] : [],
      dtrVersion: version,
      // DTR 2.2 lets the response carry the CRD coverage-information, which links it to the assertion for PAS.
      extension: version === '2.2' ? coverageInfo : [],
      id,
      orderDate,
      orderStart,
    });
    entry.push({ fullUrl: `urn:uuid:${id}`, resource: standard ? adaptiveDraftResponse(qr, form, orderDate, version, orderStart) : qr });
  }
  return {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { profile: [DTR_PACKAGE_BUNDLE] },
    type: 'collection',
    timestamp: new Date().toISOString(),
    entry,
  };
}
