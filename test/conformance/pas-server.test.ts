import type { Bundle, Claim, ClaimResponse, Extension, Parameters, Patient, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { buildApp } from '../helpers/app.js';
import { claimResponseOf, reviewActions, storyBundle } from '../pas/pas-fixtures.js';

/**
 * The substance of the Inferno PAS server suites (inferno-framework/davinci-pas-test-kit, `davinci_pas_server_suite_v201`
 * and `davinci_pas_server_suite_v221`) that runs without the HL7 validator: each `it` names the kit test group or the
 * PAS rule it mirrors. Requests are PAS request Bundles built from the sandbox stories.
 */
const X12 = 'https://codesystem.x12.org/005010/306';
const PAS = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition';
const FHIR_JSON = 'application/fhir+json';

function app(env: Record<string, string> = {}) {
  return buildApp({ env, storage: new MemoryStorage() }).app;
}
const submit = (a: ReturnType<typeof app>, body: unknown) => request(a).post('/fhir/Claim/$submit').set('Content-Type', FHIR_JSON).send(JSON.stringify(body));
const inquire = (a: ReturnType<typeof app>, body: unknown) => request(a).post('/fhir/Claim/$inquire').set('Content-Type', FHIR_JSON).send(JSON.stringify(body));

function withVersion(bundle: Bundle, version: string): Bundle {
  return { ...bundle, meta: { profile: [`${PAS}/profile-pas-request-bundle|${version}`] } };
}

/** Every relative reference in the response that names a resource type resolves to exactly one entry of the Bundle. */
function unresolved(bundle: Bundle): string[] {
  const keys = bundle.entry!.map((e) => `${e.resource!.resourceType}/${e.resource!.id}`);
  const refs: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        if (k === 'reference' && typeof x === 'string') refs.push(x);
        else walk(x);
      }
  };
  bundle.entry!.forEach((e) => walk(e.resource));
  return refs.filter((r) => /^[A-Z][A-Za-z]+\/[^/]+$/.test(r)).filter((r) => keys.filter((k) => k === r).length !== 1);
}

const approval = () => storyBundle('centene-missing-mrd', { answers: { 'mrd-percent': [{ valueDecimal: 0.52 }] } });
const pended = () => storyBundle('centene-missing-mrd');
// MMM D.i denies DLBCL outright; BCBSNC asks about label/compendia support for T-cell ALL instead (design.md §6
// "Clinical readings"), so the T-ALL story is pended, not denied.
const denial = () => storyBundle('mmm-dlbcl-offlabel');

describe('PAS server: approval, denial, pended (kit groups 2.1-2.3, v2.0.1 and v2.2.1)', () => {
  it.each([
    ['approval', 'A1', approval],
    ['denial', 'A3', denial],
    ['pended', 'A4', pended],
  ] as const)('%s: 200, a collection Bundle with the ClaimResponse first and reviewActionCode %s', async (_name, code, make) => {
    const a = app();
    const res = await submit(a, make());
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.headers['content-type']).toMatch(/json/);
    const out = res.body as Bundle;
    expect(out.type).toBe('collection');
    expect(out.entry![0].resource!.resourceType).toBe('ClaimResponse');
    expect(reviewActions(claimResponseOf(out))).toEqual([`${X12}#${code}`]);
  });

  it('echoes the PractitionerRole with the Practitioner and Organization it references, each exactly once (PAS: every referenced resource once)', async () => {
    const res = await submit(app(), approval());
    const out = res.body as Bundle;
    expect(unresolved(out)).toEqual([]);
    const types = out.entry!.map((e) => (e.resource as Resource).resourceType);
    expect(types.filter((t) => t === 'PractitionerRole')).toHaveLength(1);
    expect(types.filter((t) => t === 'Practitioner')).toHaveLength(1);
    const ids = out.entry!.map((e) => `${e.resource!.resourceType}/${e.resource!.id}`);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toContain('Organization/centene-missing-mrd-clinic');
    expect(ids).toContain('Practitioner/centene-missing-mrd-practitioner');
  });
});

describe('PAS 2.2.1 shapes (request profile |2.2.1, or no version signal)', () => {
  it('names the authorized provider by its Practitioner, typed with the extension-authorizedProviderType URL', async () => {
    const cr = claimResponseOf((await submit(app(), withVersion(approval(), '2.2.1'))).body);
    const provider = cr.item![0].extension!.find((e) => e.url === `${PAS}/extension-itemAuthorizedProvider`)!;
    expect(provider.extension!.map((e) => e.url)).toEqual(['provider', `${PAS}/extension-authorizedProviderType`]);
    expect(provider.extension![0].valueReference!.reference).toBe('Practitioner/centene-missing-mrd-practitioner');
  });

  it('reads the Claim wherever it stands in the request Bundle, and no refusal demands it first', async () => {
    const bundle = approval();
    bundle.entry = [...bundle.entry!.slice(1), bundle.entry![0]];
    expect(reviewActions(claimResponseOf((await submit(app(), bundle).expect(200)).body))).toEqual([`${X12}#A1`]);
    const empty = await submit(app(), { ...approval(), entry: [] }).expect(400);
    const noClaim = await submit(app(), { ...approval(), entry: approval().entry!.slice(1) }).expect(400);
    for (const res of [empty, noClaim]) expect(res.body.issue[0].diagnostics).not.toMatch(/first/);
  });

  it('names only a provider the response carries: a requesting PractitionerRole whose Practitioner the request left out is named by its Organization, else by the Practitioner\'s identifier', async () => {
    const providerOf = (out: Bundle) => claimResponseOf(out).item![0].extension!.find((e) => e.url === `${PAS}/extension-itemAuthorizedProvider`)?.extension?.find((e) => e.url === 'provider')?.valueReference;
    const held = (out: Bundle, ref: string) => out.entry!.some((e) => `${e.resource!.resourceType}/${e.resource!.id}` === ref);
    const withoutPractitioner = (role: (r: Resource & { practitioner?: unknown; organization?: unknown }) => void) => {
      const bundle = approval();
      bundle.entry = bundle.entry!.filter((e) => e.resource!.resourceType !== 'Practitioner');
      role(bundle.entry.find((e) => e.resource!.resourceType === 'PractitionerRole')!.resource as Resource);
      return bundle;
    };
    for (const version of ['2.2.1', '2.0.1']) {
      const byOrganization = (await submit(app(), withVersion(withoutPractitioner(() => {}), version)).expect(200)).body as Bundle;
      expect(providerOf(byOrganization)).toEqual({ reference: 'Organization/centene-missing-mrd-clinic' });
      expect(held(byOrganization, 'Organization/centene-missing-mrd-clinic')).toBe(true);
      const npi = { system: 'http://hl7.org/fhir/sid/us-npi', value: '1740283956' };
      const byIdentifier = (
        await submit(
          app(),
          withVersion(
            withoutPractitioner((r) => {
              r.practitioner = { reference: 'Practitioner/centene-missing-mrd-practitioner', identifier: npi };
              delete r.organization;
            }),
            version,
          ),
        ).expect(200)
      ).body as Bundle;
      expect(providerOf(byIdentifier)).toEqual({ identifier: npi });
    }
  });

  it('echoes each item\'s trace number (itemTraceNumber, 2000F TRN) and the service date it asked for (requestedServiceDate)', async () => {
    const bundle = approval();
    const claim = bundle.entry![0].resource as Claim;
    const trace = { system: 'urn:oid:2.16.840.1.113883.3.7204.1.4', value: 'TRN-7731-01' };
    claim.item![0].extension = [...(claim.item![0].extension ?? []), { url: `${PAS}/extension-itemTraceNumber`, valueIdentifier: trace }];
    const day = claim.item![0].servicedPeriod?.start ?? '2026-11-30';
    delete claim.item![0].servicedPeriod;
    claim.item![0].servicedDate = day;
    const cr = claimResponseOf((await submit(app(), bundle)).body);
    const ext = (url: string) => cr.item![0].extension!.filter((e) => e.url === `${PAS}/${url}`);
    expect(ext('extension-itemTraceNumber').map((e) => e.valueIdentifier)).toEqual([trace]);
    expect(ext('extension-itemRequestedServiceDate').map((e) => e.valueDateTime)).toEqual([day]);
  });

  it('keeps administrationReferenceNumber inside its contexts (ClaimResponse.item), not on the root', async () => {
    const cr = claimResponseOf((await submit(app(), approval())).body) as ClaimResponse;
    expect((cr.extension ?? []).some((e: Extension) => e.url === `${PAS}/extension-administrationReferenceNumber`)).toBe(false);
    expect(cr.item![0].extension!.find((e) => e.url === `${PAS}/extension-administrationReferenceNumber`)!.valueString).toBe(cr.id);
  });

  it('says what a certified item is authorized for (authorizedItemDetail: its code and quantity), and nothing of it on a pended or denied item (kit group 3 must support)', async () => {
    // MMM judges the amount a request dispenses (Limits A: 784 mcg per cycle), so its approval certifies the quantity.
    const bundle = storyBundle('mmm-ph-positive-tki');
    const claim = bundle.entry![0].resource as Claim;
    const cr = claimResponseOf((await submit(app(), bundle)).body);
    const detail = cr.item![0].extension!.filter((e) => e.url === `${PAS}/extension-itemAuthorizedDetail`);
    expect(detail).toHaveLength(1);
    expect(detail[0].extension).toEqual([
      { url: 'productOrServiceCode', valueCodeableConcept: claim.item![0].productOrService },
      { url: 'quantity', valueQuantity: claim.item![0].quantity },
    ]);
    // Centene's policy states no amount limit: its approval certifies the drug, never a quantity nobody judged
    // (design.md §8 "What PAS certifies").
    const centene = approval();
    const unjudged = claimResponseOf((await submit(app(), centene)).body);
    expect(unjudged.item![0].extension!.find((e) => e.url === `${PAS}/extension-itemAuthorizedDetail`)?.extension).toEqual([
      { url: 'productOrServiceCode', valueCodeableConcept: (centene.entry![0].resource as Claim).item![0].productOrService },
    ]);
    for (const make of [pended, denial]) {
      const other = claimResponseOf((await submit(app(), make())).body);
      expect(other.item![0].extension!.some((e) => e.url === `${PAS}/extension-itemAuthorizedDetail`)).toBe(false);
    }
  });

  it('echoes the previous authorization an item cites (Claim.item authorizationNumber, 2000F REF*BB) in the previousAuthorizationNumber slice (kit group 3 must support)', async () => {
    const bundle = pended();
    const claim = bundle.entry![0].resource as Claim;
    claim.item![0].extension = [...(claim.item![0].extension ?? []), { url: `${PAS}/extension-authorizationNumber`, valueString: 'PA-CENTENE-20260601-PRIOR001' }];
    const cr = claimResponseOf((await submit(app(), bundle)).body);
    expect(cr.item![0].extension!.filter((e) => e.url === `${PAS}/extension-authorizationNumber`).map((e) => e.valueString)).toEqual(['PA-CENTENE-20260601-PRIOR001']);
  });

  it('$inquire answers a Parameters of return Bundles (kit group 3, v2.2.1)', async () => {
    const a = app();
    const bundle = approval();
    await submit(a, bundle).expect(200);
    const res = await inquire(a, { resourceType: 'Parameters', parameter: [{ name: 'identifier', valueIdentifier: bundle.identifier }] });
    expect(res.status).toBe(200);
    expect(res.body.resourceType).toBe('Parameters');
    expect(res.body.parameter.map((p: { name: string }) => p.name)).toEqual(['return']);
    expect(res.body.parameter[0].resource.entry[0].resource.resourceType).toBe('ClaimResponse');
  });
});

describe('PAS 2.0.1 shapes (request profile |2.0.1, or PAS_VERSION=2.0.1)', () => {
  it('types the authorized provider with the providerType sub-extension', async () => {
    const cr = claimResponseOf((await submit(app(), withVersion(approval(), '2.0.1'))).body);
    const provider = cr.item![0].extension!.find((e) => e.url === `${PAS}/extension-itemAuthorizedProvider`)!;
    expect(provider.extension!.map((e) => e.url)).toEqual(['provider', 'providerType']);
  });

  it('leaves authorizedItemDetail off a certified item: 2.0.1 defines it only "if different from what was requested"', async () => {
    const cr = claimResponseOf((await submit(app(), withVersion(approval(), '2.0.1'))).body);
    expect(reviewActions(cr)).toEqual([`${X12}#A1`]);
    expect(cr.item![0].extension!.some((e) => e.url === `${PAS}/extension-itemAuthorizedDetail`)).toBe(false);
  });

  it('answers 2.0.1 shapes to a request without a version when PAS_VERSION=2.0.1', async () => {
    const cr = claimResponseOf((await submit(app({ PAS_VERSION: '2.0.1' }), approval())).body);
    const provider = cr.item![0].extension!.find((e) => e.url === `${PAS}/extension-itemAuthorizedProvider`)!;
    expect(provider.extension![1].url).toBe('providerType');
  });

  it('$inquire answers the matching response Bundle itself (Claim-inquiry return 1..1 Bundle), 404 when nothing matches', async () => {
    const a = app({ PAS_VERSION: '2.0.1' });
    const bundle = pended();
    const submitted = await submit(a, bundle).expect(200);
    const inquiry = { resourceType: 'Bundle', type: 'collection', entry: (bundle.entry ?? []).map((e) => ({ ...e })) } as Bundle;
    const res = await inquire(a, inquiry);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.resourceType).toBe('Bundle');
    expect(claimResponseOf(res.body).id).toBe(claimResponseOf(submitted.body).id);
    const other = storyBundle('centene-missing-mrd');
    const none = await inquire(a, { resourceType: 'Bundle', type: 'collection', entry: other.entry });
    expect(none.status).toBe(404);
    expect(none.body.resourceType).toBe('OperationOutcome');
  });
});

describe('CapabilityStatement: the Subscription server PAS requires (subscriptions test kit, capability statement group)', () => {
  it('declares the backport Subscription profile in supportedProfile, the PAS topic, and the backport R4 server it instantiates', async () => {
    const cs = (await request(app()).get('/fhir/metadata').expect(200)).body as {
      instantiates: string[];
      rest: { mode: string; resource: { type: string; supportedProfile?: string[]; extension?: Extension[]; operation?: { name: string }[] }[] }[];
    };
    const subscription = cs.rest.find((r) => r.mode === 'server')!.resource.find((r) => r.type === 'Subscription')!;
    // subscriptions_r4_server_cs_conformance looks for exactly this URL among the supported profiles.
    expect(subscription.supportedProfile).toEqual(
      expect.arrayContaining(['http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription', `${PAS}/profile-subscription`]),
    );
    expect(subscription.extension).toContainEqual({
      url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical',
      valueCanonical: 'http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic',
    });
    expect(subscription.operation?.map((o) => o.name)).toContain('status');
    expect(cs.instantiates).toContain('http://hl7.org/fhir/uv/subscriptions-backport/CapabilityStatement/backport-subscription-server-r4');
  });
});

describe('PAS error handling (kit group 4: nonconformant_pas_bundle.json)', () => {
  it.each(['$submit', '$inquire'])('answers an empty Bundle to %s with a non-2xx OperationOutcome', async (op) => {
    const res = await request(app()).post(`/fhir/Claim/${op}`).set('Content-Type', FHIR_JSON).send(JSON.stringify({ resourceType: 'Bundle', type: 'collection', entry: [] }));
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });
});

/**
 * Every reference in a Bundle resolves to exactly one entry: a `urn:` or absolute reference by `fullUrl`, a relative
 * `Type/id` by the entry with that type and id (PAS: every resource referenced SHALL be in the Bundle, once;
 * Bundle reference resolution). References by identifier only, or to contained resources, need no entry.
 */
function closureProblems(bundle: Bundle): string[] {
  const entries = bundle.entry ?? [];
  const problems: string[] = [];
  const refs: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        if (k === 'reference' && typeof x === 'string') refs.push(x);
        else if (k !== 'contained') walk(x);
      }
  };
  entries.forEach((e) => walk(e.resource));
  for (const ref of refs) {
    if (ref.startsWith('#')) continue;
    const matches = /^(urn:|https?:)/.test(ref)
      ? entries.filter((e) => e.fullUrl === ref)
      : entries.filter((e) => `${e.resource!.resourceType}/${e.resource!.id}` === ref);
    if (matches.length !== 1) problems.push(`${ref} resolves to ${matches.length} entries`);
  }
  const fullUrls = entries.map((e) => e.fullUrl);
  if (fullUrls.some((f) => !f)) problems.push('an entry without fullUrl');
  if (new Set(fullUrls).size !== fullUrls.length) problems.push('a fullUrl twice');
  const keys = entries.map((e) => `${e.resource!.resourceType}/${e.resource!.id}`);
  if (new Set(keys).size !== keys.length) problems.push('a resource twice');
  return problems;
}

describe.each(['2.0.1', '2.2.1'] as const)('PAS %s response Bundle (kit: response Bundle conformant, ClaimResponse first, referenced resources present)', (version) => {
  it.each([
    ['approval', 'A1', approval],
    ['denial', 'A3', denial],
    ['pended', 'A4', pended],
  ] as const)('%s: PASResponseBundle shape, reference closure, PASClaimResponse fields', async (_name, code, make) => {
    const requestBundle = withVersion(make(), version);
    const claim = requestBundle.entry![0].resource as Claim;
    const res = await submit(app(), requestBundle);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const out = res.body as Bundle;
    expect(out.type).toBe('collection');
    expect(out.identifier, 'PASResponseBundle.identifier (1..1 in 2.2.1)').toEqual(requestBundle.identifier);
    expect(out.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    for (const e of out.entry!) expect(e.request ?? e.response ?? e.search, 'no request/response/search on entries').toBeUndefined();
    expect(closureProblems(out)).toEqual([]);
    const cr = claimResponseOf(out);
    expect(cr.status).toBe('active');
    expect(cr.use).toBe('preauthorization');
    expect(['complete', 'partial', 'error']).toContain(cr.outcome);
    expect(cr.request!.identifier ?? cr.request!.reference, 'request names the Claim').toEqual(claim.identifier![0]);
    expect(cr.patient!.reference).toBe(claim.patient!.reference);
    expect(cr.item!.map((i) => i.itemSequence)).toEqual(claim.item!.map((i) => i.sequence));
    for (const item of cr.item!) {
      expect(item.adjudication![0].category.coding![0].code, 'adjudication.category fixed to submitted').toBe('submitted');
      // The administration reference number (REF-NT) sits on the item, where both versions allow it.
      expect(item.extension!.filter((e) => e.url === `${PAS}/extension-administrationReferenceNumber`)).toHaveLength(1);
    }
    expect((cr.extension ?? []).map((e: Extension) => e.url)).not.toContain(`${PAS}/extension-administrationReferenceNumber`);
    expect(reviewActions(cr)).toEqual([`${X12}#${code}`]);
    if (code === 'A1') {
      expect(cr.preAuthRef).toBeTruthy();
      expect(cr.preAuthPeriod?.start).toBeTruthy();
      expect(cr.item![0].extension!.find((e) => e.url === `${PAS}/extension-itemPreAuthPeriod`)?.valuePeriod).toEqual(cr.preAuthPeriod);
    } else {
      expect(cr.preAuthRef).toBeUndefined();
      expect((cr.processNote ?? []).length, 'the reasons or what is needed').toBeGreaterThan(0);
    }
    const provider = cr.item![0].extension!.find((e) => e.url === `${PAS}/extension-itemAuthorizedProvider`)!;
    expect(provider.extension!.map((e) => e.url)).toEqual(['provider', version === '2.0.1' ? 'providerType' : `${PAS}/extension-authorizedProviderType`]);
  });

  it('$inquire with the kit\'s inquiry Bundle (Claim with the original identifier, Patient): the current decision, in this version\'s envelope', async () => {
    const a = app();
    const requestBundle = withVersion(pended(), version);
    const submitted = (await submit(a, requestBundle).expect(200)).body as Bundle;
    const claim = requestBundle.entry![0].resource as Claim;
    const patient = requestBundle.entry!.find((e) => e.resource?.resourceType === 'Patient')!.resource as Patient;
    const inquiry: Bundle = {
      resourceType: 'Bundle',
      meta: { profile: [`${PAS}/profile-pas-inquiry-request-bundle|${version}`] },
      identifier: { system: 'urn:ehr.example.org:pas-inquiry', value: `INQ-${version}` },
      type: 'collection',
      timestamp: '2026-11-23T10:00:00Z',
      entry: [
        { fullUrl: 'urn:uuid:3f0c2a43-inq-claim', resource: { resourceType: 'Claim', identifier: claim.identifier, status: 'active', use: 'preauthorization', patient: { reference: 'urn:uuid:3f0c2a43-inq-patient' } } as Claim },
        { fullUrl: 'urn:uuid:3f0c2a43-inq-patient', resource: { resourceType: 'Patient', id: patient.id, identifier: patient.identifier } },
      ],
    };
    const res = await inquire(a, inquiry);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const bundles: Bundle[] = version === '2.0.1' ? [res.body as Bundle] : ((res.body as Parameters).parameter ?? []).filter((p) => p.name === 'return').map((p) => p.resource as Bundle);
    expect(res.body.resourceType).toBe(version === '2.0.1' ? 'Bundle' : 'Parameters');
    expect(bundles).toHaveLength(1);
    expect(claimResponseOf(bundles[0]).id).toBe(claimResponseOf(submitted).id);
    expect(reviewActions(claimResponseOf(bundles[0]))).toEqual([`${X12}#A4`]);
    expect(closureProblems(bundles[0])).toEqual([]);
    // Claim-inquiry `return` is a PASInquiryResponseBundle led by a PASClaimInquiryResponse (FHIR-55687), not the
    // submit pair: the kit validates an inquiry answer against the inquiry profiles and the profiles it claims.
    expect(bundles[0].meta?.profile).toEqual([`${PAS}/profile-pas-inquiry-response-bundle`]);
    expect(claimResponseOf(bundles[0]).meta?.profile).toEqual([`${PAS}/profile-claiminquiryresponse`]);
    // The submit answer keeps the submit profiles, also after the inquiry.
    const again = (await submit(a, requestBundle).expect(200)).body as Bundle;
    expect(again.meta?.profile).toEqual([`${PAS}/profile-pas-response-bundle`]);
    expect(claimResponseOf(again).meta?.profile).toEqual([`${PAS}/profile-claimresponse`]);
  });
});

describe('PASResponseBundle.identifier is the submitted transaction\'s (PAS: "Submitted Transaction Identifier")', () => {
  it('a second request for an order another request already pends is answered under its own Bundle identifier, also when resent', async () => {
    const a = app();
    const first = pended();
    const firstAnswer = (await submit(a, first).expect(200)).body as Bundle;
    const second = pended();
    expect(second.identifier).not.toEqual(first.identifier);
    const answer = (await submit(a, second).expect(200)).body as Bundle;
    // The same pended request (one case per order), but the answer names the transaction it answers.
    expect(claimResponseOf(answer).id).toBe(claimResponseOf(firstAnswer).id);
    expect(answer.identifier).toEqual(second.identifier);
    expect(((await submit(a, second).expect(200)).body as Bundle).identifier).toEqual(second.identifier);
    expect(((await submit(a, first).expect(200)).body as Bundle).identifier).toEqual(first.identifier);
  });
});

describe('A pended request decided later is answered in the PAS version it was first answered in', () => {
  const REVIEW = 'review-token-for-pas-version';
  const reviewerOf = (cr: ClaimResponse) => (cr.extension ?? []).filter((e: Extension) => e.url === `${PAS}/extension-claimResponseReviewer`);
  const providerTypeOf = (cr: ClaimResponse) => cr.item![0].extension!.find((e) => e.url === `${PAS}/extension-itemAuthorizedProvider`)!.extension![1].url;

  it.each([
    ['2.0.1', 'PAS_VERSION=2.0.1, a request with no version signal', { PAS_VERSION: '2.0.1' }, (b: Bundle) => b, 'providerType', 0],
    ['2.0.1', 'a request announcing |2.0.1', {}, (b: Bundle) => withVersion(b, '2.0.1'), 'providerType', 0],
    ['2.2.1', 'a request with no version signal', {}, (b: Bundle) => b, `${PAS}/extension-authorizedProviderType`, 1],
  ] as const)('%s (%s): after the reviewer approves, the same shapes, and claimResponseReviewer only where the version defines it', async (_v, _how, env, shape, providerType, reviewers) => {
    const a = buildApp({ env: { ...env, REVIEW_TOKEN: REVIEW }, storage: new MemoryStorage() }).app;
    const bundle = shape(pended());
    const first = claimResponseOf((await submit(a, bundle).expect(200)).body);
    expect(reviewActions(first)).toEqual([`${X12}#A4`]);
    expect(providerTypeOf(first)).toBe(providerType);
    await request(a)
      .post(`/review/${first.id}/decision`)
      .set('Authorization', `Bearer ${REVIEW}`)
      .send({ decision: 'approve', reviewer: 'Dr. M. Alvarez (oncology reviewer)', reason: 'MRD 0.3 % on the attached flow report' })
      .expect(200);
    const decided = claimResponseOf((await submit(a, bundle).expect(200)).body);
    expect(reviewActions(decided)).toEqual([`${X12}#A1`]);
    expect(providerTypeOf(decided)).toBe(providerType);
    // PASClaimResponse 2.2.1 defines extension-claimResponseReviewer; 2.0.1 has no such extension.
    expect(reviewerOf(decided)).toHaveLength(reviewers);
  });
});

describe('PAS 2.2.1 inquiry by example: the inquiry Claim.identifier is the inquiry\'s own TRN (FHIR-55616)', () => {
  /** An inquiry Bundle of a 2.2.1 client: a fresh TRN as the Claim identifier, the member, and the REF numbers it knows. */
  function inquiryFor(requestBundle: Bundle, refs: { referenceNumber?: string } = {}): Bundle {
    const patient = requestBundle.entry!.find((e) => e.resource?.resourceType === 'Patient')!.resource as Patient;
    return {
      resourceType: 'Bundle',
      meta: { profile: [`${PAS}/profile-pas-inquiry-request-bundle|2.2.1`] },
      identifier: { system: 'urn:ehr.example.org:pas-inquiry', value: 'INQ-5521' },
      type: 'collection',
      timestamp: '2026-11-23T10:00:00Z',
      entry: [
        {
          fullUrl: 'urn:uuid:7d1e6b90-inq-claim',
          resource: {
            resourceType: 'Claim',
            identifier: [{ system: 'urn:ehr.example.org:pas-inquiry-trn', value: 'TRN-INQ-5521' }],
            ...(refs.referenceNumber ? { extension: [{ url: `${PAS}/extension-administrationReferenceNumber`, valueString: refs.referenceNumber }] } : {}),
            status: 'active',
            use: 'preauthorization',
            patient: { reference: 'urn:uuid:7d1e6b90-inq-patient' },
          } as Claim,
        },
        { fullUrl: 'urn:uuid:7d1e6b90-inq-patient', resource: { resourceType: 'Patient', id: patient.id, identifier: patient.identifier } },
      ],
    };
  }

  it('finds the member\'s request by the patient when the TRN names no request and no REF number is given', async () => {
    const a = app();
    const requestBundle = withVersion(pended(), '2.2.1');
    const submitted = (await submit(a, requestBundle).expect(200)).body as Bundle;
    const res = await inquire(a, inquiryFor(requestBundle));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const returned = ((res.body as Parameters).parameter ?? []).map((p) => p.resource as Bundle);
    expect(returned.map((b) => claimResponseOf(b).id)).toEqual([claimResponseOf(submitted).id]);
  });

  it('a REF number it never issued narrows to nothing (the patient is not searched instead)', async () => {
    const a = app();
    const requestBundle = withVersion(pended(), '2.2.1');
    await submit(a, requestBundle).expect(200);
    const res = await inquire(a, inquiryFor(requestBundle, { referenceNumber: 'NT-0000-unknown' }));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ resourceType: 'Parameters' });
  });
});

describe('PAS error handling, both versions (kit group 4 and PAS "4xx SHALL return one OperationOutcome")', () => {
  it.each(['2.0.1', '2.2.1'])('a request Bundle without identifier (PASRequestBundle.identifier 1..1): 400 OperationOutcome, and nothing stored (%s)', async (version) => {
    const a = app();
    const b = withVersion(approval(), version);
    const res = await submit(a, { ...b, identifier: undefined });
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].severity).toBe('error');
    // Nothing was kept: the same request, well formed, is decided afresh (A1).
    expect(reviewActions(claimResponseOf((await submit(a, b).expect(200)).body))).toEqual([`${X12}#A1`]);
  });

  it('ClaimFirst is the submitter\'s duty: a Bundle with the Claim elsewhere is still read (tolerant reader), and the response keeps ClaimResponseFirst', async () => {
    const b = approval();
    const res = await submit(app(), { ...b, entry: [...b.entry!.slice(1), b.entry![0]] });
    expect(res.status).toBe(200);
    expect(reviewActions(claimResponseOf(res.body))).toEqual([`${X12}#A1`]);
  });
});

/**
 * PAS 2.2.1 pended workflow as the kit drives it (group 1 "Subscription Setup", group 2.3 "Pended"): the tester's
 * Subscription filters on its sending system (spec-58: `org-identifier` = the ISA06 sender id the Claim carries in
 * TransmissionIdentifiers; several may be listed with commas), gets a handshake, and when the pended request is
 * decided a full-resource event-notification whose SubscriptionStatus comes first and whose `notification-event.focus`
 * resolves to an entry holding the PAS response Bundle (a collection, the ClaimResponse first) with the decision.
 */
describe('PAS 2.2.1 pended request notified to its sending system (kit groups 1 and 2.3; spec-57, spec-58)', () => {
  const TRANSMISSION = `${PAS}/extension-TransmissionIdentifiers`;
  const REVIEW = 'review-token-for-pas-kit-notification';

  /** The story's pended request (or one for another order of the patient) as sent by an EHR whose ISA06 is `isa06`. */
  function sentBy(isa06: string, orderId?: string): Bundle {
    const b = withVersion(storyBundle('centene-missing-mrd', orderId ? { orderId } : {}), '2.2.1');
    const claim = b.entry![0].resource as Claim;
    claim.extension = [
      ...(claim.extension ?? []),
      {
        url: TRANSMISSION,
        extension: [
          { url: 'applicationSenderCode', valueString: 'PRIORPATH-EHR' },
          { url: 'applicationReceiverCode', valueString: 'CENTENE-UM' },
          { url: 'interchangeSenderID', valueString: isa06 },
          { url: 'interchangeReceiverID', valueString: '042017500' },
        ],
      },
    ];
    return b;
  }

  it.each([
    ['its ISA06 sender id', 'org-identifier=EHR4471920'],
    ['a list of sender ids holding it', 'org-identifier=N123456,EHR4471920'],
  ])('a Subscription filtered on %s hears the decision, in the notification shape the kit checks', async (_name, filter) => {
    const sent: { url: string; bundle: Bundle }[] = [];
    const { app } = buildApp({
      env: { REVIEW_TOKEN: REVIEW },
      storage: new MemoryStorage(),
      notifyFetch: async (url, init) => {
        sent.push({ url, bundle: JSON.parse(init.body) as Bundle });
        return { ok: true, status: 200 };
      },
    });
    const notifier = app.locals.subscriptionNotifier as { idle(): Promise<void>; kick(): void };
    const endpoint = 'http://127.0.0.1:9/inferno/notification_listener';
    const subscription = {
      resourceType: 'Subscription',
      meta: { profile: [`${PAS}/profile-subscription`] },
      status: 'requested',
      reason: 'PAS pended prior authorization updates',
      criteria: 'http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic',
      _criteria: { extension: [{ url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria', valueString: filter }] },
      channel: {
        type: 'rest-hook',
        endpoint,
        payload: 'application/fhir+json',
        _payload: { extension: [{ url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content', valueCode: 'full-resource' }] },
      },
    };
    const created = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR_JSON).send(JSON.stringify(subscription)).expect(201);
    expect(created.body.status).toBe('requested');
    // It stays the PASSubscription the tester sent (and the CapabilityStatement's supportedProfile), on the backport.
    expect(created.body.meta.profile).toEqual(['http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription', `${PAS}/profile-subscription`]);
    expect((await request(app).get(`/fhir/Subscription/${created.body.id}`).expect(200)).body.meta.profile).toEqual(created.body.meta.profile);
    // An id-only payload is outside PASSubscription (content fixed to full-resource): it does not claim the profile.
    const idOnly = structuredClone(subscription);
    idOnly.channel._payload.extension[0].valueCode = 'id-only';
    idOnly.channel.endpoint = 'http://127.0.0.1:9/inferno/id-only-listener';
    const plain = await request(app).post('/fhir/Subscription').set('Content-Type', FHIR_JSON).send(JSON.stringify(idOnly)).expect(201);
    expect(plain.body.meta.profile).toEqual(['http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription']);
    await request(app).delete(`/fhir/Subscription/${plain.body.id}`).expect((r) => expect(r.status).toBeLessThan(300));

    const cr = claimResponseOf((await submit(app, sentBy('EHR4471920')).expect(200)).body);
    expect(reviewActions(cr)).toEqual([`${X12}#A4`]);
    // Another sending system's request is not this subscription's to hear.
    const other = claimResponseOf((await submit(app, sentBy('OTHEREHR0001', 'centene-missing-mrd-order-2')).expect(200)).body);
    expect(other.id).not.toBe(cr.id);
    for (const id of [cr.id, other.id]) {
      await request(app)
        .post(`/review/${id}/decision`)
        .set('Authorization', `Bearer ${REVIEW}`)
        .send({ decision: 'approve', reviewer: 'Dr. R. Okafor (medical director)', reason: 'MRD 0.4 % on the attached flow report' })
        .expect(200);
    }
    notifier.kick();
    await notifier.idle();

    const status = (b: Bundle) => b.entry![0].resource as Parameters;
    const param = (b: Bundle, name: string) => (status(b).parameter ?? []).find((p) => p.name === name);
    const notes = sent.filter((s) => s.url === endpoint).map((s) => s.bundle);
    expect(notes.map((b) => param(b, 'type')?.valueCode)).toEqual(['handshake', 'event-notification']);
    const note = notes[1];
    expect(note.type).toBe('history');
    expect(status(note).resourceType).toBe('Parameters');
    const focus = (status(note).parameter ?? []).filter((p) => p.name === 'notification-event').flatMap((p) => (p.part ?? []).filter((x) => x.name === 'focus').map((x) => x.valueReference!.reference!));
    expect(focus).toHaveLength(1);
    const entry = note.entry!.slice(1).find((e) => e.fullUrl === focus[0]);
    const response = entry!.resource as Bundle;
    expect(response.resourceType).toBe('Bundle');
    expect(response.type).toBe('collection');
    const decided = claimResponseOf(response);
    expect(decided.id).toBe(cr.id);
    expect(reviewActions(decided)).toEqual([`${X12}#A1`]);
    expect(JSON.stringify(note)).not.toContain(other.id!);
  });
});
