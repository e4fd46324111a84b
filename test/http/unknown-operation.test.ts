/**
 * An operation the payer FHIR API does not serve is one answer wherever it is asked (design.md §4 "Errors"): a 404
 * `not-supported` OperationOutcome naming it, whatever the resource type or method. A `:id` route never takes it as an
 * id (a FHIR id holds no `$`), so `POST /Questionnaire/$foo` is not a 405 "use GET" read of id `$foo`; an operation
 * the API serves, asked with another method, stays a 405 with Allow.
 */
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';

const FHIR = 'application/fhir+json';

describe('unknown operations on the payer FHIR API', () => {
  it('answers every unknown operation with the same 404 not-supported, under any resource type and method', async () => {
    const { app } = buildApp();
    const answers = [];
    const cases = [
      ['post', '/fhir/Questionnaire/$foo'],
      ['get', '/fhir/Questionnaire/$foo'],
      ['post', '/fhir/Claim/$foo'],
      ['put', '/fhir/QuestionnaireResponse/$foo'],
      ['get', '/fhir/ValueSet/$foo'],
      ['delete', '/fhir/Subscription/$foo'],
      ['get', '/fhir/ClaimResponse/$foo'],
      ['post', '/fhir/$foo'],
    ] as const;
    for (const [method, path] of cases) {
      const res = await request(app)[method](path).set('Content-Type', FHIR).send(method === 'get' || method === 'delete' ? undefined : '{"resourceType":"Parameters"}');
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.headers.allow, `${method} ${path}`).toBeUndefined();
      answers.push(res.body);
    }
    for (const body of answers) {
      expect(body.resourceType).toBe('OperationOutcome');
      expect(body.issue[0]).toMatchObject({ severity: 'error', code: 'not-supported' });
      expect(body.issue[0].diagnostics).toMatch(/^Unknown operation \$foo: this payer API serves .*\$questionnaire-package.*\$submit/);
    }
    // Served operations and reads are untouched: a known operation with another method is its 405, an id is read.
    const wrongMethod = await request(app).get('/fhir/Questionnaire/$questionnaire-package');
    expect([wrongMethod.status, wrongMethod.headers.allow]).toEqual([405, 'POST']);
    expect((await request(app).get('/fhir/Questionnaire/centene-blinatumomab')).status).toBe(200);
  });

  it('a served operation asked under another resource type is a 404 saying where it is served (review diff1 s47 F4)', async () => {
    const { app } = buildApp();
    const res = await request(app).post('/fhir/Claim/$questionnaire-package').set('Content-Type', FHIR).send('{"resourceType":"Parameters"}');
    expect(res.status).toBe(404);
    expect(res.body.issue[0]).toMatchObject({ severity: 'error', code: 'not-supported' });
    expect(res.body.issue[0].diagnostics).toBe(
      'Operation $questionnaire-package is not served at /fhir/Claim/$questionnaire-package: it is served at /fhir/Questionnaire/$questionnaire-package, /fhir/$questionnaire-package',
    );
  });

  it('asks for a token first when the payer API requires one: an unauthenticated caller learns nothing of the path', async () => {
    const { app } = buildApp({ env: { PAYER_API_AUTH: 'required' } });
    for (const path of ['/fhir/Questionnaire/$foo', '/fhir/Claim/$foo']) {
      expect((await request(app).post(path).set('Content-Type', FHIR).send('{}')).status, path).toBe(401);
    }
  });
});
