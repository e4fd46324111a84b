/**
 * The payer FHIR API on the wire (design.md §7 DTR contract): metadata, Questionnaire and ValueSet read/search,
 * ValueSet/$expand, $questionnaire-package input checks and shapes, fall-through for paths the PAS router owns.
 */
import type { Bundle, CapabilityStatement, OperationOutcome, Parameters, Questionnaire, QuestionnaireResponse, ValueSet } from '@medplum/fhirtypes';
import type { Express } from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { CANONICAL_BASE, draftOrder, dtrContent, fhirApp, fhirIssues, memberCoverage } from './helpers.js';

const content = dtrContent();
const policy = content.policies.find((p) => p.file.id === 'centene-blinatumomab') ?? content.policies[0];
const qUrl = `${CANONICAL_BASE}/Questionnaire/${policy.file.id}`;
const FHIR = 'application/fhir+json';
const coverage = (payer = policy.file.payer) => memberCoverage(payer);
const packageRequest = (parameter: unknown[], meta?: unknown) => ({
  resourceType: 'Parameters',
  ...(meta ? { meta } : {}),
  parameter,
});

describe('GET /fhir/metadata', () => {
  it('returns a valid R4 CapabilityStatement declaring the DTR and PAS interactions and operations', async () => {
    const { app } = fhirApp();
    const res = await request(app)
      .get('/fhir/metadata')
      .expect(200)
      .expect('Content-Type', /application\/fhir\+json/);
    const cs = res.body as CapabilityStatement;
    expect(cs.resourceType).toBe('CapabilityStatement');
    expect(cs.fhirVersion).toBe('4.0.1');
    expect(fhirIssues(cs)).toEqual([]);
    const resources = Object.fromEntries(cs.rest![0].resource!.map((r) => [r.type, r]));
    expect(resources.Questionnaire.interaction!.map((i) => i.code)).toEqual(['read', 'search-type']);
    expect(resources.Questionnaire.operation!.map((o) => o.name)).toEqual(
      expect.arrayContaining(['questionnaire-package', 'next-question']),
    );
    expect(resources.ValueSet.operation!.map((o) => o.name)).toContain('expand');
    expect(resources.QuestionnaireResponse.interaction!.map((i) => i.code)).toEqual(['create', 'read', 'vread', 'update']);
    expect(resources.Claim.operation!.map((o) => o.name)).toEqual(['submit', 'inquire']);
    // What the Subscription documentation says is what the server does (test/pas/subscription-end.test.ts): at its end a
    // subscription turns off.
    expect(resources.Subscription.documentation).toMatch(/At Subscription\.end the subscription turns off/);
    expect(cs.rest![0].operation!.map((o) => o.name)).toContain('questionnaire-package');
  });

  it('answers 405 with Allow for other methods', async () => {
    const { app } = fhirApp();
    const res = await request(app).post('/fhir/metadata').send({}).expect(405);
    expect(res.headers.allow).toBe('GET');
    expect(res.body.resourceType).toBe('OperationOutcome');
  });
});

describe('the DTR catalog left until after start-up (serve.ts defer)', () => {
  it('hands the catalog to defer, and a request before that work runs answers the same forms as one after it', async () => {
    const deferred: (() => void)[] = [];
    const { app } = fhirApp({ defer: (work) => deferred.push(work) });
    expect(deferred).toHaveLength(1);
    const before = await request(app).get(`/fhir/Questionnaire/${policy.file.id}`).expect(200);
    expect(before.body).toEqual(content.questionnaires.get(policy.questionnaire));
    for (const work of deferred) work();
    const after = await request(app).get('/fhir/Questionnaire').query({ url: qUrl }).expect(200);
    expect((after.body as Bundle).entry?.map((e) => e.resource)).toEqual([before.body]);
  });
});

describe('Questionnaire read and search', () => {
  it('reads every policy Questionnaire by id, identical to the committed file', async () => {
    const { app } = fhirApp();
    for (const p of content.policies) {
      const res = await request(app).get(`/fhir/Questionnaire/${p.file.id}`).expect(200);
      expect(res.body).toEqual(content.questionnaires.get(p.questionnaire));
    }
  });

  it('answers 404 OperationOutcome for an unknown id', async () => {
    const { app } = fhirApp();
    const res = await request(app).get('/fhir/Questionnaire/nope').expect(404);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });

  it('searches by url, by url|version and by _id, as a searchset Bundle', async () => {
    const { app } = fhirApp();
    const byUrl = (await request(app).get('/fhir/Questionnaire').query({ url: qUrl }).expect(200)).body as Bundle;
    expect(byUrl.type).toBe('searchset');
    expect(byUrl.total).toBe(1);
    expect((byUrl.entry![0].resource as Questionnaire).url).toBe(qUrl);
    expect(byUrl.entry![0].fullUrl).toBe(`http://priorpath.test/fhir/Questionnaire/${policy.file.id}`);
    expect(fhirIssues(byUrl)).toEqual([]);
    expect(
      (
        (
          await request(app)
            .get('/fhir/Questionnaire')
            .query({ url: `${qUrl}|${policy.file.version}` })
        ).body as Bundle
      ).total,
    ).toBe(1);
    expect(
      (
        (
          await request(app)
            .get('/fhir/Questionnaire')
            .query({ url: `${qUrl}|1999-01` })
        ).body as Bundle
      ).total,
    ).toBe(0);
    expect(((await request(app).get('/fhir/Questionnaire').query({ _id: policy.file.id })).body as Bundle).total).toBe(
      1,
    );
    // Each policy's standard form and its empty adaptive form (`<policy-id>-adaptive`).
    expect(((await request(app).get('/fhir/Questionnaire')).body as Bundle).total).toBe(2 * content.policies.length);
  });
});

describe('ValueSet read, search and $expand', () => {
  const vs = content.valueSets.get(`${CANONICAL_BASE}/ValueSet/disease-status`)!;

  it('reads by id and searches by url', async () => {
    const { app } = fhirApp();
    expect((await request(app).get('/fhir/ValueSet/disease-status').expect(200)).body.url).toBe(vs.url);
    const b = (
      await request(app)
        .get('/fhir/ValueSet')
        .query({ url: `${vs.url}|${vs.version}` })
        .expect(200)
    ).body as Bundle;
    expect(b.total).toBe(1);
    await request(app).get('/fhir/ValueSet/no-such-set').expect(404);
  });

  it('expands by url (with |version), by id, and by POSTed Parameters; filter, offset and count page the result', async () => {
    const { app } = fhirApp();
    const byUrl = (
      await request(app)
        .get('/fhir/ValueSet/$expand')
        .query({ url: `${vs.url}|${vs.version}` })
        .expect(200)
    ).body as ValueSet;
    expect(byUrl.expansion!.contains!.map((c) => c.code)).toEqual(vs.expansion!.contains!.map((c) => c.code));
    expect(byUrl.expansion!.total).toBe(vs.expansion!.contains!.length);
    expect(fhirIssues(byUrl)).toEqual([]);
    const byId = (
      await request(app).get('/fhir/ValueSet/disease-status/$expand').query({ filter: 'remission' }).expect(200)
    ).body as ValueSet;
    expect(byId.expansion!.contains!.every((c) => /remission/i.test(c.display ?? ''))).toBe(true);
    expect(byId.expansion!.total).toBe(byId.expansion!.contains!.length);
    const paged = (
      await request(app).get('/fhir/ValueSet/$expand').query({ url: vs.url!, offset: '1', count: '2' }).expect(200)
    ).body as ValueSet;
    expect(paged.expansion!.contains!.map((c) => c.code)).toEqual(
      vs.expansion!.contains!.slice(1, 3).map((c) => c.code),
    );
    const posted = (
      await request(app)
        .post('/fhir/ValueSet/$expand')
        .set('Content-Type', FHIR)
        .send(JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'url', valueUri: vs.url }] }))
        .expect(200)
    ).body as ValueSet;
    expect(posted.id).toBe('disease-status');
    await request(app)
      .post(`/fhir/ValueSet/$expand?url=${encodeURIComponent(vs.url!)}`)
      .expect(200);
  });

  it('expands as of the day of the call, not the day the content was written (DTR 2.2 oper-5: the current date as the expansion date)', async () => {
    const day = '2027-01-15';
    const { app } = fhirApp({ today: () => day });
    expect(vs.expansion!.timestamp!.slice(0, 10)).not.toBe(day);
    const answers = [
      await request(app).get('/fhir/ValueSet/$expand').query({ url: vs.url! }).expect(200),
      await request(app).get('/fhir/ValueSet/disease-status/$expand').query({ count: '1' }).expect(200),
      await request(app)
        .post('/fhir/ValueSet/$expand')
        .set('Content-Type', FHIR)
        .send(JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'url', valueUri: vs.url }] }))
        .expect(200),
    ];
    for (const res of answers) expect((res.body as ValueSet).expansion!.timestamp).toBe(day);
    // The ValueSet as read keeps the expansion it was written with.
    expect(((await request(app).get('/fhir/ValueSet/disease-status').expect(200)).body as ValueSet).expansion!.timestamp).toBe(vs.expansion!.timestamp);
  });

  it('answers 400 without url, 404 for an unknown url, 400 for a bad count', async () => {
    const { app } = fhirApp();
    expect((await request(app).get('/fhir/ValueSet/$expand').expect(400)).body.resourceType).toBe('OperationOutcome');
    await request(app).get('/fhir/ValueSet/$expand').query({ url: 'http://example.org/nope' }).expect(404);
    await request(app).get('/fhir/ValueSet/$expand').query({ url: vs.url!, count: '-1' }).expect(400);
  });
});

describe('paths the router does not own', () => {
  it('pass through untouched, with the request body unread, to a router mounted after it (the PAS router)', async () => {
    const { app } = fhirApp();
    const res = await request(app)
      .post('/fhir/Claim/$submit')
      .set('Content-Type', FHIR)
      .send(JSON.stringify({ resourceType: 'Bundle', type: 'collection' }))
      .expect(299);
    expect(res.body).toEqual({ passedThrough: true, body: { resourceType: 'Bundle', type: 'collection' } });
    expect((await request(app).get('/fhir/Claim').expect(298)).body.path).toBe('/Claim');
    expect((await request(app).get('/fhir/Encounter/abc').expect(298)).body.path).toBe('/Encounter/abc');
    await request(app).get('/fhir/Patient/1').expect(298);
  });
});

describe('POST $questionnaire-package: input checks', () => {
  const post = (app: Express, body: unknown, path = '/fhir/Questionnaire/$questionnaire-package') =>
    request(app).post(path).set('Content-Type', FHIR).send(JSON.stringify(body));

  it('answers 400 OperationOutcome when the body is not Parameters', async () => {
    const { app } = fhirApp();
    const res = await post(app, { resourceType: 'Bundle' }).expect(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });

  it('answers 400 without a coverage parameter', async () => {
    const { app } = fhirApp();
    const res = await post(app, packageRequest([{ name: 'questionnaire', valueCanonical: qUrl }])).expect(400);
    expect(res.body.issue[0].diagnostics).toMatch(/coverage/);
  });

  it('answers 400 when coverage carries no Coverage, or order no order resource', async () => {
    const { app } = fhirApp();
    await post(
      app,
      packageRequest([
        { name: 'coverage', resource: { resourceType: 'Patient' } },
        { name: 'questionnaire', valueCanonical: qUrl },
      ]),
    ).expect(400);
    await post(
      app,
      packageRequest([
        { name: 'coverage', resource: coverage() },
        { name: 'order', valueString: 'MedicationRequest/1' },
      ]),
    ).expect(400);
    await post(
      app,
      packageRequest([
        { name: 'coverage', resource: coverage() },
        { name: 'questionnaire', valueInteger: 3 },
      ]),
    ).expect(400);
  });

  it('answers 400 for dtr-1: no order, questionnaire or context', async () => {
    const { app } = fhirApp();
    const res = await post(app, packageRequest([{ name: 'coverage', resource: coverage() }])).expect(400);
    expect(res.body.issue[0].diagnostics).toMatch(/dtr-1/);
  });

  it('answers 415 for a non-JSON body and 400 for malformed JSON', async () => {
    const { app } = fhirApp();
    await request(app).post('/fhir/$questionnaire-package').set('Content-Type', 'text/plain').send('hello').expect(415);
    await request(app)
      .post('/fhir/$questionnaire-package')
      .set('Content-Type', FHIR)
      .send('{"resourceType":')
      .expect(400);
  });

  it('answers 405 for GET', async () => {
    const { app } = fhirApp();
    const res = await request(app).get('/fhir/Questionnaire/$questionnaire-package').expect(405);
    expect(res.headers.allow).toBe('POST');
  });
});

describe('POST $questionnaire-package: forms and shapes', () => {
  const post = (app: Express, body: unknown, path = '/fhir/Questionnaire/$questionnaire-package') =>
    request(app).post(path).set('Content-Type', FHIR).send(JSON.stringify(body));

  it('returns the requested Questionnaire with its ValueSets, a 2.0.1 PackageBundle and a 2.2 packagebundle by default', async () => {
    const { app } = fhirApp();
    const res = await post(
      app,
      packageRequest([
        { name: 'coverage', resource: coverage() },
        { name: 'questionnaire', valueCanonical: `${qUrl}|${policy.file.version}` },
      ]),
    ).expect(200);
    const out = res.body as Parameters;
    expect(out.parameter!.map((p) => p.name)).toEqual(['PackageBundle', 'packagebundle']);
    const bundle = out.parameter![0].resource as Bundle;
    const bundle22 = out.parameter![1].resource as Bundle;
    // The same form (url, version, questions); the 2.0.1 one pre-populates with CQL, the 2.2 one with FHIRPath.
    const [q201, q22] = [bundle, bundle22].map((b) => b.entry![0].resource as Questionnaire);
    expect([q201.url, q201.version]).toEqual([q22.url, q22.version]);
    const linkIds = (q: Questionnaire) => JSON.stringify(q.item).match(/"linkId":"[^"]+"/g);
    expect(linkIds(q201)).toEqual(linkIds(q22));
    expect(bundle.type).toBe('collection');
    expect(bundle.entry![0].resource!.resourceType).toBe('Questionnaire');
    expect((bundle.entry![0].resource as Questionnaire).url).toBe(qUrl);
    // The answer ValueSets (the 2.0.1 bundle also carries the ValueSets its CQL Libraries name, checked elsewhere).
    const valueSetUrls = bundle22
      .entry!.filter((e) => e.resource!.resourceType === 'ValueSet')
      .map((e) => `${(e.resource as ValueSet).url}|${(e.resource as ValueSet).version}`);
    const bound =
      JSON.stringify(bundle.entry![0].resource)
        .match(/"answerValueSet":"([^"]+)"/g)
        ?.map((m) => m.slice(18, -1)) ?? [];
    expect(valueSetUrls.sort()).toEqual([...new Set(bound)].sort());
    // No CRD context: each bundle still holds one draft response, without answers, in its version's shape.
    const qrOf = (b: Bundle) => b.entry!.filter((e) => e.resource!.resourceType === 'QuestionnaireResponse').map((e) => e.resource as QuestionnaireResponse);
    const [qr201] = qrOf(bundle);
    const [qr22] = qrOf(bundle22);
    expect(qrOf(bundle)).toHaveLength(1);
    expect(qrOf(bundle22)).toHaveLength(1);
    const answers = (qr: QuestionnaireResponse) => JSON.stringify(qr.item ?? []).includes('"answer"');
    expect(answers(qr201) || answers(qr22)).toBe(false);
    expect(qr201.item!.length).toBeGreaterThan(0);
    const urls = (qr: QuestionnaireResponse) => qr.extension!.map((e) => e.url.split('/').pop());
    expect(urls(qr201)).toContain('qr-context');
    expect(urls(qr201)).not.toContain('qr-coverage');
    expect(urls(qr22)).toContain('qr-coverage');
    expect(fhirIssues(out)).toEqual([]);
  });

  it('serves the system-level path too, and follows the DTR version the input profile announces', async () => {
    const { app } = fhirApp();
    const params = [
      { name: 'coverage', resource: coverage() },
      { name: 'questionnaire', valueCanonical: qUrl },
    ];
    const v22 = (
      await post(
        app,
        packageRequest(params, {
          profile: ['http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-qpackage-input-parameters|2.2.0'],
        }),
        '/fhir/$questionnaire-package',
      ).expect(200)
    ).body as Parameters;
    expect(v22.parameter!.map((p) => p.name)).toEqual(['packagebundle']);
    const v201 = (
      await post(
        app,
        packageRequest(params, {
          profile: ['http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-qpackage-input-parameters|2.0.1'],
        }),
      )
    ).body as Parameters;
    expect(v201.parameter!.map((p) => p.name)).toEqual(['PackageBundle']);
  });

  it('answers an outcome part, not an error, when nothing applies', async () => {
    const { app } = fhirApp();
    const unknown = (
      await post(
        app,
        packageRequest([
          { name: 'coverage', resource: coverage() },
          { name: 'questionnaire', valueCanonical: 'http://example.org/Questionnaire/x' },
        ]),
      ).expect(200)
    ).body as Parameters;
    expect(unknown.parameter!.map((p) => p.name)).toEqual(['operationOutcome', 'outcome']);
    expect(unknown.parameter![0].resource!.resourceType).toBe('OperationOutcome');
    const ungoverned = draftOrder('o1', { system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '161' });
    const none = (
      await post(
        app,
        packageRequest([
          { name: 'coverage', resource: coverage() },
          { name: 'order', resource: ungoverned },
        ]),
      ).expect(200)
    ).body as Parameters;
    expect(none.parameter!.map((p) => p.name)).toEqual(['operationOutcome', 'outcome']);
  });

  it('answers a Coverage of a payer it does not serve with a 400 naming the payor, as CRD and PAS do, when the payer would choose the form', async () => {
    const { app } = fhirApp();
    const order = draftOrder('o1', { system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '1605168', display: 'blinatumomab' });
    for (const selector of [{ name: 'order', resource: order }, { name: 'context', valueString: 'b0c5e7e6-0000-4000-8000-000000000000' }]) {
      const res = await post(app, packageRequest([{ name: 'coverage', resource: coverage('nobody') }, selector])).expect(400);
      expect(res.body.issue[0]).toMatchObject({ severity: 'error', code: 'invalid', expression: ["Parameters.parameter.where(name = 'coverage').resource.payor"] });
      expect(res.body.issue[0].diagnostics).toMatch(/^Unknown payer: the Coverage names no payer PriorPath serves/);
    }
    // A form asked for by its canonical is the form, whatever payer the Coverage names.
    const named = (await post(app, packageRequest([{ name: 'coverage', resource: coverage('nobody') }, { name: 'questionnaire', valueCanonical: qUrl }])).expect(200)).body as Parameters;
    expect(named.parameter!.map((p) => p.name)).toEqual(expect.arrayContaining(['PackageBundle', 'packagebundle']));
  });

  it('answers a context it cannot use, when nothing else names a form, with a 404 naming the context', async () => {
    const { app } = fhirApp();
    const res = await post(app, packageRequest([{ name: 'coverage', resource: coverage() }, { name: 'context', valueString: 'b0c5e7e6-0000-4000-8000-000000000000' }])).expect(404);
    expect(res.body.issue[0]).toMatchObject({ severity: 'error', code: 'not-found', expression: ['Parameters.parameter[1].valueString'] });
    expect(res.body.issue[0].diagnostics).toMatch(/context b0c5e7e6-0000-4000-8000-000000000000 is not a coverage-assertion-id this payer recorded/);
  });

  it('picks the form from the policy governing the order for the coverage payer; an unknown context id only means no pre-fill', async () => {
    const { app } = fhirApp();
    const drug = content.valueSets.get(`${CANONICAL_BASE}/ValueSet/${policy.file.drug}`)!.expansion!.contains![0];
    const order = draftOrder('o1', { system: drug.system, code: drug.code });
    const out = (
      await post(
        app,
        packageRequest([
          { name: 'coverage', resource: coverage() },
          { name: 'order', resource: order },
          { name: 'context', valueString: 'no-such-assertion' },
        ]),
      ).expect(200)
    ).body as Parameters;
    const bundles = out.parameter!.filter((p) => p.name === 'PackageBundle').map((p) => p.resource as Bundle);
    expect(bundles.map((b) => (b.entry![0].resource as Questionnaire).url)).toEqual([qUrl]);
    const qrs = bundles[0].entry!.filter((e) => e.resource!.resourceType === 'QuestionnaireResponse');
    expect(qrs).toHaveLength(1);
    expect(JSON.stringify(qrs[0].resource)).not.toContain('"answer"');
  });

  it('honours changedsince: a package unchanged since then is left out with an outcome saying so; one changed after it is sent', async () => {
    const { app } = fhirApp();
    const ask = (since?: Record<string, string>) =>
      post(app, packageRequest([{ name: 'coverage', resource: coverage() }, { name: 'questionnaire', valueCanonical: qUrl }, ...(since ? [{ name: 'changedsince', ...since }] : [])]), '/fhir/$questionnaire-package');
    // A client that last retrieved the form before this payer first served it: the form is new to it, so it is sent.
    const before = (await ask({ valueDateTime: '2025-01-15' }).expect(200)).body as Parameters;
    expect(before.parameter!.map((p) => p.name)).toEqual(['PackageBundle', 'packagebundle']);
    expect(((before.parameter![0].resource as Bundle).entry![0].resource as Questionnaire).url).toBe(qUrl);

    // A client resuming a draft whose package it retrieved after that: nothing changed, so nothing is sent again.
    const retrieved = new Date().toISOString();
    for (const since of [{ valueDateTime: retrieved }, { valueInstant: retrieved }] as Record<string, string>[]) {
      const after = (await ask(since).expect(200)).body as Parameters;
      expect(after.parameter!.map((p) => p.name)).toEqual(['operationOutcome', 'outcome']);
      const outcome = after.parameter![1].resource as OperationOutcome;
      expect(outcome.issue).toEqual([expect.objectContaining({ severity: 'information', code: 'informational' })]);
      expect(outcome.issue[0].diagnostics).toContain(`Nothing has changed since ${retrieved}`);
      expect(outcome.issue[0].diagnostics).toContain(qUrl);
    }
    // Without changedsince the package is sent as always.
    expect(((await ask().expect(200)).body as Parameters).parameter!.map((p) => p.name)).toEqual(['PackageBundle', 'packagebundle']);
  });

  it('answers 400 naming changedsince when it is not a dateTime, or given twice', async () => {
    const { app } = fhirApp();
    const base = [{ name: 'coverage', resource: coverage() }, { name: 'questionnaire', valueCanonical: qUrl }];
    const bad = await post(app, packageRequest([...base, { name: 'changedsince', valueDateTime: 'yesterday' }])).expect(400);
    expect(bad.body.issue[0].expression).toEqual(['Parameters.parameter[2].valueDateTime']);
    const twice = [{ name: 'changedsince', valueDateTime: '2026-11-01' }, { name: 'changedsince', valueDateTime: '2026-11-02' }];
    await post(app, packageRequest([...base, ...twice])).expect(400);
  });
});

describe('Compressed responses', () => {
  const body = JSON.stringify(packageRequest([{ name: 'coverage', resource: coverage() }, { name: 'questionnaire', valueCanonical: qUrl }]));
  const post = (app: Express, encoding?: string) => {
    const r = request(app).post('/fhir/Questionnaire/$questionnaire-package').set('Content-Type', FHIR);
    if (encoding) r.set('Accept-Encoding', encoding);
    else r.unset('Accept-Encoding');
    return r.send(body).expect(200);
  };
  const withoutIds = (p: Parameters) => JSON.parse(JSON.stringify(p).replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, 'x').replace(/"(authored|timestamp)":"[^"]+"/g, '"$1":"t"')) as Parameters;

  it('sends a package gzip-encoded to a client that accepts gzip, at a fraction of the size, with the same content', async () => {
    const { app } = fhirApp();
    const plain = await post(app);
    const gzipped = await post(app, 'gzip, deflate, br');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(gzipped.headers['content-encoding']).toBe('gzip');
    expect(gzipped.headers.vary).toMatch(/Accept-Encoding/i);
    expect(Number(gzipped.headers['content-length'])).toBeLessThan(Number(plain.headers['content-length']) / 3);
    expect(withoutIds(gzipped.body as Parameters)).toEqual(withoutIds(plain.body as Parameters));
    // A second request reuses the compressed resources and is still whole.
    const again = await post(app, 'gzip');
    expect(withoutIds(again.body as Parameters)).toEqual(withoutIds(plain.body as Parameters));
  });

  it('sends plain JSON when the client refuses gzip, and small responses plain', async () => {
    const { app } = fhirApp();
    expect((await post(app, 'gzip;q=0, identity')).headers['content-encoding']).toBeUndefined();
    const outcome = await request(app).post('/fhir/Questionnaire/$questionnaire-package').set('Content-Type', FHIR).set('Accept-Encoding', 'gzip').send('{}').expect(400);
    expect(outcome.headers['content-encoding']).toBeUndefined();
    expect(outcome.body.resourceType).toBe('OperationOutcome');
  });
});
