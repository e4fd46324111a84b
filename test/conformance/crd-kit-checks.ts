import type { Extension, Resource } from '@medplum/fhirtypes';

/**
 * The response checks of the Inferno CRD server suite (inferno-framework/davinci-crd-test-kit, suite `crd_server`,
 * CRD 2.0.1) that need neither Ruby nor the HL7 validator, restated as functions over a CDS Hooks response. Each
 * returns the problems it finds (empty: the kit test would pass on this response), so a test asserts `[]` and the
 * checks themselves are tested on broken responses (test/conformance/crd-server.test.ts).
 */

/** A CDS Hooks response as JSON (CDS Hooks 2.0 §CDS Service Response). */
export interface HookResponseJson {
  cards?: unknown;
  systemActions?: unknown;
}
type Json = Record<string, unknown>;

export const COVERAGE_INFO_URL = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';
const ORDER_TYPES = ['DeviceRequest', 'MedicationRequest', 'NutritionOrder', 'ServiceRequest', 'VisionPrescription'];
/** Hooks whose response must carry a `systemActions` array (kit: appointment-book, order-sign, order-dispatch). */
const SYSTEM_ACTIONS_REQUIRED = ['appointment-book', 'order-sign', 'order-dispatch'];

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isHttpUrl = (v: unknown) => {
  if (typeof v !== 'string') return false;
  try {
    return ['http:', 'https:'].includes(new URL(v).protocol);
  } catch {
    return false;
  }
};
const cardsOf = (body: HookResponseJson): Json[] => (Array.isArray(body.cards) ? body.cards.filter(isObject) : []);
const actionsOf = (body: HookResponseJson): Json[] => (Array.isArray(body.systemActions) ? body.systemActions.filter(isObject) : []);

/** One action of a suggestion or a system action: type create/update/delete with description, resource or resourceId. */
function actionProblems(a: Json, where: string): string[] {
  const out: string[] = [];
  if (!['create', 'update', 'delete'].includes(a.type as string)) out.push(`${where}: type ${String(a.type)}`);
  if (typeof a.description !== 'string' || a.description === '') out.push(`${where}: description`);
  if ((a.type === 'create' || a.type === 'update') && !(isObject(a.resource) && typeof a.resource.resourceType === 'string')) out.push(`${where}: resource`);
  if (a.type === 'delete' && !(typeof a.resourceId === 'string' && /^[A-Z][A-Za-z]+\/[^/]+$/.test(a.resourceId))) out.push(`${where}: resourceId Type/id`);
  return out;
}

/**
 * `crd_service_response_validation`: a `cards` array; `systemActions` an array where the hook requires it; each card
 * with `summary` (a string under 140 characters), `indicator` info/warning/critical, `source.label`,
 * `source.topic.code` and `.system`; each system action valid (type, description, resource/resourceId).
 */
export function serviceResponseProblems(body: HookResponseJson, hook: string): string[] {
  const out: string[] = [];
  if (!Array.isArray(body.cards)) return ['cards is not an array'];
  if (SYSTEM_ACTIONS_REQUIRED.includes(hook) && !Array.isArray(body.systemActions)) out.push(`systemActions missing for ${hook}`);
  if (body.systemActions !== undefined && !Array.isArray(body.systemActions)) out.push('systemActions is not an array');
  body.cards.forEach((c, i) => {
    const at = `cards[${i}]`;
    if (!isObject(c)) return void out.push(`${at}: not an object`);
    if (typeof c.summary !== 'string') out.push(`${at}: summary`);
    else if (c.summary.length >= 140) out.push(`${at}: summary is 140 characters or more`);
    if (!['info', 'warning', 'critical'].includes(c.indicator as string)) out.push(`${at}: indicator ${String(c.indicator)}`);
    const source = c.source;
    if (!isObject(source)) return void out.push(`${at}: source`);
    if (typeof source.label !== 'string') out.push(`${at}: source.label`);
    if (!isObject(source.topic) || typeof source.topic.code !== 'string' || typeof source.topic.system !== 'string') out.push(`${at}: source.topic code/system`);
  });
  actionsOf(body).forEach((a, i) => out.push(...actionProblems(a, `systemActions[${i}]`)));
  return out;
}

/**
 * `crd_card_optional_fields_validation`: optional fields of the right type; `selectionBehavior` (at-most-one or any)
 * when there are suggestions; override reasons with code, system, display; links with label, type absolute/smart and
 * an http(s) url, no `appContext` on an absolute link; suggestions with a label and a non-empty list of valid actions.
 */
export function cardOptionalFieldProblems(body: HookResponseJson): string[] {
  const out: string[] = [];
  cardsOf(body).forEach((c, i) => {
    const at = `cards[${i}]`;
    for (const [field, ok] of [
      ['uuid', (v: unknown) => typeof v === 'string'],
      ['detail', (v: unknown) => typeof v === 'string'],
      ['suggestions', Array.isArray],
      ['overrideReasons', Array.isArray],
      ['links', Array.isArray],
    ] as const) {
      if (c[field] !== undefined && !ok(c[field])) out.push(`${at}: ${field} type`);
    }
    const suggestions = Array.isArray(c.suggestions) ? c.suggestions.filter(isObject) : [];
    if (suggestions.length > 0 && !['at-most-one', 'any'].includes(c.selectionBehavior as string)) out.push(`${at}: selectionBehavior`);
    for (const r of Array.isArray(c.overrideReasons) ? c.overrideReasons : []) {
      if (!isObject(r) || ['code', 'system', 'display'].some((f) => typeof r[f] !== 'string')) out.push(`${at}: overrideReasons coding`);
    }
    (Array.isArray(c.links) ? c.links : []).forEach((l, j) => {
      const lat = `${at}.links[${j}]`;
      if (!isObject(l)) return void out.push(`${lat}: not an object`);
      if (typeof l.label !== 'string') out.push(`${lat}: label`);
      if (!isHttpUrl(l.url)) out.push(`${lat}: url`);
      if (!['absolute', 'smart'].includes(l.type as string)) out.push(`${lat}: type ${String(l.type)}`);
      else if (l.type === 'absolute' && l.appContext !== undefined) out.push(`${lat}: appContext on an absolute link`);
    });
    suggestions.forEach((s, j) => {
      const sat = `${at}.suggestions[${j}]`;
      if (typeof s.label !== 'string') out.push(`${sat}: label`);
      if (s.actions === undefined) return;
      if (!Array.isArray(s.actions) || s.actions.length === 0) return void out.push(`${sat}: actions empty`);
      s.actions.forEach((a, k) => out.push(...(isObject(a) ? actionProblems(a, `${sat}.actions[${k}]`) : [`${sat}.actions[${k}]: not an object`])));
    });
  });
  return out;
}

/** `crd_external_reference_card_validation`: a card whose links are all `absolute`. */
export const externalReferenceCards = (body: HookResponseJson) =>
  cardsOf(body).filter((c) => Array.isArray(c.links) && c.links.length > 0 && c.links.every((l) => isObject(l) && l.type === 'absolute'));

/** `crd_launch_smart_app_card_validation`: a card whose links are all `smart`. */
export const smartAppCards = (body: HookResponseJson) =>
  cardsOf(body).filter((c) => Array.isArray(c.links) && c.links.length > 0 && c.links.every((l) => isObject(l) && l.type === 'smart'));

/** `crd_valid_instructions_card_received`: a card with neither links nor suggestions. */
export const instructionsCards = (body: HookResponseJson) =>
  cardsOf(body).filter((c) => (!Array.isArray(c.links) || c.links.length === 0) && (!Array.isArray(c.suggestions) || c.suggestions.length === 0));

/**
 * `crd_coverage_info_system_action_received`: the system actions whose resource is an order (for the order hooks)
 * carrying the coverage-information extension.
 */
export const coverageInfoActions = (body: HookResponseJson) =>
  actionsOf(body).filter(
    (a) => isObject(a.resource) && ORDER_TYPES.includes(a.resource.resourceType as string) && ((a.resource.extension as Extension[] | undefined) ?? []).some((e) => e.url === COVERAGE_INFO_URL),
  );

/**
 * `crd_coverage_info_system_action_validation`, without the profile validation: type `update`; the coverage-information
 * repetitions of one resource that name the same Coverage share exactly one `coverage-assertion-id` and at most one
 * `satisfied-pa-id`, and those naming different Coverages have distinct ids. What the validator would add for the
 * order itself (a complete order, not a fragment) is checked against the draft orders sent: the resource equals the
 * draft order of the same id apart from the extension.
 */
export function coverageInfoActionProblems(body: HookResponseJson, draftOrders: Resource[]): string[] {
  const out: string[] = [];
  coverageInfoActions(body).forEach((a, i) => {
    const at = `systemActions[${i}]`;
    if (a.type !== 'update') out.push(`${at}: type ${String(a.type)}`);
    const resource = a.resource as Resource & { extension?: Extension[] };
    const byCoverage = new Map<string, Extension[]>();
    for (const e of (resource.extension ?? []).filter((x) => x.url === COVERAGE_INFO_URL)) {
      const coverage = e.extension?.find((s) => s.url === 'coverage')?.valueReference?.reference ?? '(none)';
      byCoverage.set(coverage, [...(byCoverage.get(coverage) ?? []), e]);
    }
    const seenAssertions = new Set<string>();
    const seenPa = new Set<string>();
    for (const [coverage, exts] of byCoverage) {
      const ids = (url: string) => [...new Set(exts.map((e) => e.extension?.find((s) => s.url === url)?.valueString).filter((v): v is string => !!v))];
      const assertion = ids('coverage-assertion-id');
      const pa = ids('satisfied-pa-id');
      if (assertion.length !== 1) out.push(`${at}: ${coverage} has ${assertion.length} coverage-assertion-ids`);
      if (pa.length > 1) out.push(`${at}: ${coverage} has ${pa.length} satisfied-pa-ids`);
      if (assertion[0] && seenAssertions.has(assertion[0])) out.push(`${at}: coverage-assertion-id shared by different coverages`);
      if (pa[0] && seenPa.has(pa[0])) out.push(`${at}: satisfied-pa-id shared by different coverages`);
      if (assertion[0]) seenAssertions.add(assertion[0]);
      if (pa[0]) seenPa.add(pa[0]);
    }
    const draft = draftOrders.find((d) => d.resourceType === resource.resourceType && d.id === resource.id) as (Resource & { extension?: Extension[] }) | undefined;
    if (!draft) out.push(`${at}: ${resource.resourceType}/${resource.id} is not an order of the request`);
    else {
      const strip = (r: Resource & { extension?: Extension[] }) => {
        const { extension, ...rest } = r;
        const kept = (extension ?? []).filter((e) => e.url !== COVERAGE_INFO_URL);
        return kept.length > 0 ? { ...rest, extension: kept } : rest;
      };
      if (JSON.stringify(sortKeys(strip(resource))) !== JSON.stringify(sortKeys(strip(draft)))) out.push(`${at}: the resource is not the order as sent plus coverage-information`);
    }
  });
  return out;
}

/**
 * `crd_propose_alternate_request_card_validation`: each suggestion that changes the order either `update`s a
 * `Type/id` present in the request's draftOrders, or `delete`s one and `create`s a resource of the same type.
 */
export function proposeAlternateProblems(body: HookResponseJson, draftOrders: Resource[]): string[] {
  const out: string[] = [];
  const ids = new Set(draftOrders.map((d) => `${d.resourceType}/${d.id}`));
  cardsOf(body).forEach((c, i) => {
    (Array.isArray(c.suggestions) ? c.suggestions.filter(isObject) : []).forEach((s, j) => {
      const actions = (Array.isArray(s.actions) ? s.actions : []).filter(isObject);
      const at = `cards[${i}].suggestions[${j}]`;
      for (const a of actions.filter((x) => x.type === 'update')) {
        const r = a.resource as Resource | undefined;
        if (!r || !ids.has(`${r.resourceType}/${r.id}`)) out.push(`${at}: update of ${r?.resourceType}/${r?.id}, not a draft order`);
      }
      for (const a of actions.filter((x) => x.type === 'delete')) {
        if (!ids.has(a.resourceId as string)) out.push(`${at}: delete of ${String(a.resourceId)}, not a draft order`);
        const type = String(a.resourceId).split('/')[0];
        if (!actions.some((x) => x.type === 'create' && (x.resource as Resource | undefined)?.resourceType === type)) out.push(`${at}: delete without a create of ${type}`);
      }
    });
  });
  return out;
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (!isObject(v)) return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
}
