import { createHash } from 'node:crypto';
import type {
  Bundle,
  BundleEntry,
  Claim,
  ClaimItem,
  Coding,
  Coverage,
  Identifier,
  Patient,
  QuestionnaireResponse,
  Reference,
  Resource,
} from '@medplum/fhirtypes';
import { HttpError, badRequest, outcome } from '../errors.js';
import { otherPatientField, resourceLabel, samePatientId } from '../fhir/one-patient.js';
import { localReference } from '../fhir/references.js';
import { isKnownResourceType } from '../fhir/fhir-shape.js';
import { EXT_REQUESTED_SERVICE } from './pas-urls.js';
import { cancelsRequest, isCancelledEntry, isClaimUpdate, readClaimUpdate } from './claim-update-request.js';
import type { ClaimUpdate } from './claim-update-request.js';

/** `system|value` of an identifier (`|value` without a system), the form identifiers are stored and matched in. */
export function identifierKey(i: Identifier | undefined): string | undefined {
  if (!i?.value) return undefined;
  return `${i.system ?? ''}|${i.value}`;
}

/** The most items one PAS request may carry (docs/design.md §4 "Errors"): a drug prior authorization names one or a few. */
export const MAX_CLAIM_ITEMS = 20;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The PAS operation input: the Bundle itself, or a Parameters whose `resource` parameter holds it (PAS 2.2.1
 * OperationDefinition Claim-submit / Claim-inquiry, parameter `resource`; a single resource input may be posted bare).
 */
export function unwrapOperationInput(body: unknown, operation: '$submit' | '$inquire'): Record<string, unknown> {
  if (!isObject(body)) throw badRequest(`${operation} expects a Bundle or a Parameters resource`);
  if (body.resourceType === 'Parameters') {
    const params = Array.isArray(body.parameter) ? body.parameter : [];
    const p = params.find((x): x is Record<string, unknown> => isObject(x) && x.name === 'resource');
    if (!p || !isObject(p.resource)) throw badRequest(`${operation}: the Parameters has no "resource" parameter holding the request Bundle`, ['Parameters.parameter']);
    return p.resource;
  }
  return body;
}

/** A Bundle entry with where it sits, for error paths. */
interface Located {
  resource: Resource;
  fullUrl?: string;
  path: string;
}

/** Resolves references between the resources of one Bundle (FHIR R4 Bundle §"Resolving references in Bundles"). */
export class BundleIndex {
  private readonly byFullUrl = new Map<string, Located>();
  private readonly byTypeId = new Map<string, Located>();
  readonly all: Located[] = [];

  constructor(entries: BundleEntry[], path = 'Bundle') {
    entries.forEach((e, i) => this.add(e, `${path}.entry[${i}]`));
  }

  private add(e: BundleEntry, path: string): void {
    const r = e.resource;
    if (!r || typeof r.resourceType !== 'string') return;
    // FHIR R4 Bundle.entry.fullUrl: a fullUrl that is not a urn:uuid "SHALL NOT disagree with the id in the resource", so
    // a RESTful one (`…/MedicationRequest/123`) names its resource whether or not the resource repeats the id. One left
    // without it takes the fullUrl's: `MedicationRequest/123` then resolves to it, and the order is named, with a record
    // to keep its one decision (docs/design.md §8 "An order that cannot be named"). An id that disagrees is the 400 of
    // assertFullUrlsAgree, at $submit.
    const named = r.id === undefined ? restfulIdOf(e.fullUrl, r.resourceType) : undefined;
    if (named) r.id = named;
    const located: Located = { resource: r, fullUrl: e.fullUrl, path: `${path}.resource` };
    this.all.push(located);
    if (e.fullUrl) this.byFullUrl.set(e.fullUrl, located);
    if (r.id) this.byTypeId.set(`${r.resourceType}/${r.id}`, located);
    // A DTR QuestionnaireResponse Bundle (or any nested Bundle) brings its own resources as evidence.
    if (r.resourceType === 'Bundle') (r.entry ?? []).forEach((n, j) => this.add(n, `${path}.resource.entry[${j}]`));
  }

  /** The resource a literal reference names, or undefined. Contained (`#id`) references are resolved by the caller. */
  resolve(reference: string): Located | undefined {
    const ref = reference.replace(/\/_history\/[^/]+$/, '');
    const exact = this.byFullUrl.get(ref);
    if (exact) return exact;
    const m = ref.match(/(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/);
    return m ? this.byTypeId.get(`${m[1]}/${m[2]}`) : undefined;
  }

  /** How other resources refer to `r`: its fullUrl and `Type/id`, for a reference map keyed both ways. */
  static keysOf(l: Located): string[] {
    return [l.fullUrl, l.resource.id ? `${l.resource.resourceType}/${l.resource.id}` : undefined].filter((k): k is string => !!k);
  }
}

/** A RESTful URL's last two segments, `Type/id` (FHIR R4 §3.1.0.1.1 literal references). */
const RESTFUL = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/;

/**
 * The id a RESTful fullUrl (`[base/]Type/id`, FHIR R4 §3.1.0.1.1 literal references) gives a resource of this type, or
 * undefined when the fullUrl is not one (a `urn:uuid:`, `urn:oid:`, any other URI) or names another type.
 */
function restfulIdOf(fullUrl: string | undefined, resourceType: string): string | undefined {
  const m = typeof fullUrl === 'string' ? fullUrl.match(RESTFUL) : null;
  return m && m[1] === resourceType ? m[2] : undefined;
}

/**
 * Every entry's resource agrees with its RESTful fullUrl (FHIR R4 Bundle.entry.fullUrl: it "SHALL NOT disagree with the
 * id in the resource"): `…/MedicationRequest/123` over a MedicationRequest whose id is 456, or over a Patient (another
 * resource type), does not say which resource the Bundle's references to `MedicationRequest/123` mean, nor which
 * order's record a decision belongs to, so it is a 400 naming the entry, never one of the two picked. Checked at
 * $submit and $inquire ({@link assertEntriesAgree}), not in `parsePasRequest`, which also re-reads stored requests.
 */
export function assertFullUrlsAgree(req: PasRequest): void {
  assertEntriesAgree(req.index);
}

/**
 * {@link assertFullUrlsAgree} over a Bundle's indexed entries (a PAS request's, an inquiry's). A fullUrl ending in
 * `Type/id` whose `Type` is a FHIR resource type is RESTful; any other URI (`urn:uuid:`, `urn:oid:`, a URL not naming a
 * resource) names nothing and is not compared.
 */
export function assertEntriesAgree(index: Pick<BundleIndex, 'all'>): void {
  for (const l of index.all) {
    const m = typeof l.fullUrl === 'string' ? l.fullUrl.match(RESTFUL) : null;
    if (!m || !isKnownResourceType(m[1])) continue;
    const at = l.path.replace(/\.resource$/, '.fullUrl');
    if (m[1] !== l.resource.resourceType) {
      throw badRequest(
        `${at} is ${l.fullUrl}, which names a ${m[1]}, but its resource is a ${l.resource.resourceType}: a fullUrl that is not a urn:uuid must name its resource (FHIR Bundle.entry.fullUrl)`,
        [at, `${l.path}.resourceType`],
      );
    }
    if (l.resource.id !== m[2]) {
      throw badRequest(
        `${at} is ${l.fullUrl}, but its ${l.resource.resourceType}'s id is ${JSON.stringify(l.resource.id)}: a fullUrl that is not a urn:uuid must agree with the resource's id (FHIR Bundle.entry.fullUrl)`,
        [at, `${l.path}.id`],
      );
    }
  }
}

/** Every `reference` string inside a value, with its FHIRPath-like location. */
function* referencesIn(value: unknown, path: string): Generator<{ reference: string; path: string }> {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) yield* referencesIn(value[i], `${path}[${i}]`);
  } else if (isObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'contained') continue;
      if (k === 'reference' && typeof v === 'string') yield { reference: v, path };
      else yield* referencesIn(v, `${path}.${k}`);
    }
  }
}

/** One Claim item as PAS asks for it. */
export interface RequestedItem {
  item: ClaimItem;
  sequence: number;
  codings: Coding[];
  /** The order named by the item's requestedService extension, when it is in the Bundle. */
  requestedService?: Resource;
  /** FHIRPath of the item from the request Bundle (`Bundle.entry[0].resource.item[1]`), for an error to name it. */
  path: string;
}

/** A structurally valid PAS request: the Claim and what it references, all resolved inside the Bundle. */
export interface PasRequest {
  bundle: Bundle;
  /** `system|value` of Bundle.identifier: the idempotency key. */
  bundleIdentifier: string;
  requestHash: string;
  claim: Claim;
  claimFullUrl?: string;
  patient: Patient;
  patientFullUrl?: string;
  coverage: Coverage;
  items: RequestedItem[];
  /** QuestionnaireResponses named by Claim.supportingInfo (directly or as the first entry of a DTR QR Bundle). */
  questionnaireResponses: QuestionnaireResponse[];
  index: BundleIndex;
  /** Every resource of the Bundle, nested Bundles included (the evidence the policy reads). */
  resources: Resource[];
  /** Resources keyed by fullUrl and by `Type/id`. */
  byReference: Map<string, Resource>;
  /** Set when the Claim is a PAS Claim Update of an earlier request (`related.claim`). */
  update?: ClaimUpdate;
}

/** JSON with object keys sorted: the same content always hashes the same, whatever the key order on the wire. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isObject(v)) {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => v[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * The idempotency fingerprint of a request Bundle: SHA-256 of its canonical JSON without `id`, `meta` and
 * `timestamp`, which a client may regenerate when it resends the same request.
 */
export function requestHash(bundle: Record<string, unknown>): string {
  const { id: _id, meta: _meta, timestamp: _ts, ...content } = bundle;
  return createHash('sha256').update(canonicalJson(content)).digest('hex');
}

/**
 * Validates a PAS request Bundle (PAS 2.2.1 PASRequestBundle, PASClaim; specification §"Submitting a prior
 * authorization": spec-12, spec-13): a collection Bundle with an identifier, one preauthorization Claim with items,
 * a Patient and a Coverage, and every reference of the Claim resolvable inside the Bundle. Throws a 400 naming the
 * first problem; never looks at content (payers, policies), so the same parse serves re-rendering stored requests.
 */
export function parsePasRequest(input: Record<string, unknown>): PasRequest {
  if (input.resourceType !== 'Bundle') {
    throw badRequest(`Claim/$submit expects a PAS request Bundle, got ${typeof input.resourceType === 'string' ? input.resourceType : 'no resourceType'}`, ['Bundle']);
  }
  const bundle = input as unknown as Bundle;
  if (bundle.type !== 'collection') throw badRequest(`A PAS request Bundle has type "collection", got ${JSON.stringify(bundle.type ?? null)}`, ['Bundle.type']);
  const bundleIdentifier = identifierKey(bundle.identifier);
  if (!bundleIdentifier) throw badRequest('A PAS request Bundle needs an identifier with a value (PASRequestBundle identifier 1..1): it makes $submit idempotent', ['Bundle.identifier']);
  if (!Array.isArray(bundle.entry) || bundle.entry.length === 0) throw badRequest('The PAS request Bundle has no entries: it carries the prior authorization Claim', ['Bundle.entry']);

  // PASRequestBundle's ClaimFirst asks for the Claim as the first entry; it is read wherever it stands (design.md §8), so
  // no message here demands it first.
  // The request as sent is its fingerprint: taken before the index gives a resource its fullUrl's id.
  const hash = requestHash(input);
  const index = new BundleIndex(bundle.entry);
  const claims = bundle.entry.map((e, i) => ({ e, i })).filter(({ e }) => e.resource?.resourceType === 'Claim');
  if (claims.length === 0) throw badRequest('The PAS request Bundle holds no Claim: a PAS request carries the prior authorization Claim', ['Bundle.entry']);
  const submitted = submittedClaim(claims, index);
  const claim = submitted.e.resource as Claim;
  const prior = claims.find((c) => c !== submitted)?.e.resource as Claim | undefined;
  const claimPath = `Bundle.entry[${submitted.i}].resource`;
  if (claim.use !== 'preauthorization') throw badRequest(`Claim.use must be "preauthorization", got ${JSON.stringify(claim.use ?? null)}`, [`${claimPath}.use`]);
  // A Claim Update cancelling the whole request needs no items (PAS spec "Updating Authorization Requests").
  if (!Array.isArray(claim.item) || claim.item.length === 0) {
    if (!cancelsRequest(claim)) throw badRequest('The Claim has no items: name the drug requested in Claim.item.productOrService', [`${claimPath}.item`]);
  }

  for (const { reference, path } of referencesIn(claim, claimPath)) {
    if (reference.startsWith('#')) {
      if (!claim.contained?.some((c) => c.id === reference.slice(1))) throw badRequest(`Contained reference ${reference} does not resolve`, [path]);
      continue;
    }
    if (!index.resolve(reference)) throw badRequest(`Reference ${reference} does not resolve inside the Bundle (every resource the Claim references must be included)`, [path]);
  }

  const target = <T extends Resource>(ref: Reference | undefined, type: T['resourceType'], path: string, what: string): { resource: T; fullUrl?: string } => {
    if (!ref?.reference) throw badRequest(`The Claim names no ${what}`, [path]);
    const found = ref.reference.startsWith('#') ? { resource: claim.contained?.find((c) => c.id === ref.reference!.slice(1)), fullUrl: undefined } : index.resolve(ref.reference);
    if (found?.resource?.resourceType !== type) throw badRequest(`${path} must reference a ${type}, found ${found?.resource?.resourceType ?? 'nothing'}`, [path]);
    return { resource: found.resource as T, fullUrl: found.fullUrl };
  };

  const patient = target<Patient>(claim.patient, 'Patient', `${claimPath}.patient`, 'patient');
  // The one Coverage the request is adjudicated under (FHIR Claim.insurance.focal: "to be used for adjudication"; PAS
  // asks prior authorization of one payer, design.md §4 "Payer"): several focal entries do not say which payer's policy
  // decides, so none is picked. With none marked focal the first is the one.
  const focal = (claim.insurance ?? []).filter((i) => i.focal === true);
  if (focal.length > 1) {
    throw badRequest(`${focal.length} Claim.insurance entries are focal: mark only the Coverage the request is to be adjudicated under focal`, [`${claimPath}.insurance`]);
  }
  const insurance = focal[0] ?? claim.insurance?.[0];
  const coverage = target<Coverage>(insurance?.coverage, 'Coverage', `${claimPath}.insurance.coverage`, 'Coverage (Claim.insurance.coverage)');

  const items: RequestedItem[] = (claim.item ?? []).map((item, i) => {
    const path = `${claimPath}.item[${i}]`;
    if (typeof item.sequence !== 'number') throw badRequest('Every Claim item needs a sequence', [`${path}.sequence`]);
    const codings = (item.productOrService?.coding ?? []).filter((c) => c.code);
    if (codings.length === 0) throw badRequest('Claim item has no productOrService code (HCPCS, RxNorm or NDC of the drug)', [`${path}.productOrService`]);
    // A quantity is what an approval certifies (itemAuthorizedDetail echoes it): a count that is not positive is not
    // one to certify (FHIR SimpleQuantity of an amount requested), whatever the rules say of the order.
    const quantity = item.quantity?.value;
    if (item.quantity && (typeof quantity !== 'number' || !Number.isFinite(quantity) || quantity <= 0)) {
      throw badRequest('Claim item quantity must be a positive number (the amount requested)', [`${path}.quantity`]);
    }
    const ref = item.extension?.find((e) => e.url === EXT_REQUESTED_SERVICE)?.valueReference?.reference;
    return { item, sequence: item.sequence, codings, requestedService: ref ? index.resolve(ref)?.resource : undefined, path };
  });
  // Each item is decided over a record that holds the others' orders, so a request's cost grows faster than its items:
  // 150 items held every route for 15 s (docs/design.md §4 "Errors", the hooks' bound of 20 governed orders).
  if (items.length > MAX_CLAIM_ITEMS) {
    throw new HttpError(400, outcome('error', 'too-costly', `More than ${MAX_CLAIM_ITEMS} Claim items in one request; send them in requests of at most ${MAX_CLAIM_ITEMS}`, [`${claimPath}.item`]));
  }
  const sequences = new Set(items.map((i) => i.sequence));
  if (sequences.size !== items.length) throw badRequest('Claim item sequences must be unique', [`${claimPath}.item`]);

  const questionnaireResponses: QuestionnaireResponse[] = [];
  (claim.supportingInfo ?? []).forEach((s) => {
    // Documentation a Claim Update cancelled is no longer evidence (PAS spec-69).
    if (isCancelledEntry(s)) return;
    const ref = s.valueReference?.reference;
    const found = ref ? index.resolve(ref)?.resource : undefined;
    if (found?.resourceType === 'QuestionnaireResponse') questionnaireResponses.push(found);
    if (found?.resourceType === 'Bundle') {
      for (const e of found.entry ?? []) if (e.resource?.resourceType === 'QuestionnaireResponse') questionnaireResponses.push(e.resource);
    }
  });

  const byReference = new Map<string, Resource>();
  for (const l of index.all) for (const k of BundleIndex.keysOf(l)) byReference.set(k, l.resource);

  return {
    bundle,
    bundleIdentifier,
    requestHash: hash,
    claim,
    claimFullUrl: claims[0].e.fullUrl,
    patient: patient.resource,
    patientFullUrl: patient.fullUrl,
    coverage: coverage.resource,
    items,
    questionnaireResponses,
    index,
    resources: index.all.map((l) => l.resource),
    byReference,
    ...(isClaimUpdate(claim) ? { update: readClaimUpdate(claim, claimPath, prior, identifierKey) } : {}),
  };
}

/**
 * Every resource of a PAS request must be about the Claim's patient (docs/design.md §4 "One patient", the rule of
 * src/fhir/one-patient.ts that CRD applies to prefetch): an Observation, Condition, MedicationRequest or Coverage whose
 * subject/patient/beneficiary is another patient, or a QuestionnaireResponse (Claim.supportingInfo, DTR's answers) about
 * another patient, would lend that patient's record to this one's decision. Throws a 400 naming the first such entry.
 * A reference is resolved inside the Bundle (`urn:uuid:` fullUrls included); one that does not resolve names this
 * patient only as `Patient/<Claim.patient's id>`. Checked at $submit, not in `parsePasRequest`, which also re-reads
 * stored requests.
 */
export function assertOnePatient(req: PasRequest): void {
  const byId = samePatientId(req.patient.id);
  const samePatient = (reference: string) => {
    if (reference.startsWith('#')) return true;
    const found = req.index.resolve(reference)?.resource;
    if (!found) return req.patient.id !== undefined ? byId(reference) : !localReference(reference)?.startsWith('Patient/');
    return found.resourceType !== 'Patient' || found === req.patient || (!!found.id && found.id === req.patient.id);
  };
  for (const l of req.index.all) {
    const field = otherPatientField(l.resource, samePatient);
    if (field) throw badRequest(`${l.path} holds ${resourceLabel(l.resource)} whose ${field} is another patient than Claim.patient: a PAS request carries one patient's record`, [`${l.path}.${field}`]);
  }
}

/**
 * The Claim under submission: the only one, or of two the Claim Update whose `related.claim` names the other, the prior
 * Claim it updates (PAS PASRequestBundle: Claim slice 1..2; spec-65: the updated Claim is referenced and included).
 */
function submittedClaim(claims: { e: BundleEntry; i: number }[], index: BundleIndex): { e: BundleEntry; i: number } {
  if (claims.length === 1) return claims[0];
  const names = (a: Claim, b: { e: BundleEntry }) =>
    (a.related ?? []).some((r) => {
      const ref = r.claim?.reference;
      if (ref) return index.resolve(ref)?.resource === b.e.resource;
      const key = identifierKey(r.claim?.identifier);
      return !!key && ((b.e.resource as Claim).identifier ?? []).some((i) => identifierKey(i) === key);
    });
  const updates = claims.length === 2 ? claims.filter((c, n) => names(c.e.resource as Claim, claims[1 - n])) : [];
  if (updates.length !== 1) {
    throw badRequest(
      'A PAS request Bundle holds one Claim, or a Claim Update and the prior Claim it names in related.claim (PAS spec-65); this one holds Claims that are neither',
      ['Bundle.entry'],
    );
  }
  return updates[0];
}
