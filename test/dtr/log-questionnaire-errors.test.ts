/**
 * DTR `$log-questionnaire-errors`: a DTR client tells the payer which of its forms failed and how
 * (https://hl7.org/fhir/us/davinci-dtr/OperationDefinition-log-questionnaire-errors.html). The DTR versions name the
 * two inputs differently; whichever a client uses, the payer must read the report it answers "logged" to.
 */
import type { OperationOutcome } from '@medplum/fhirtypes';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';

const FORM = 'https://priorpath.dev/fhir/Questionnaire/centene-blinatumomab|2026-11';
const report = (): OperationOutcome => ({
  resourceType: 'OperationOutcome',
  issue: [
    { severity: 'error', code: 'exception', diagnostics: 'DTR app 2.1.0: CQL "CenteneBlinatumomab".mrdPercent returned an error', expression: ['Questionnaire.item[1].item[0]'] },
    { severity: 'warning', code: 'not-found', diagnostics: 'DTR app 2.1.0: ValueSet disease-status could not be expanded' },
  ],
});

describe('POST /fhir/Questionnaire/$log-questionnaire-errors', () => {
  it.each([
    ['Questionnaire', 'OperationOutcome'],
    ['questionnaire', 'outcome'],
    ['questionnaire', 'operationOutcome'],
  ])('reads a report whose inputs are named %s / %s', async (q, o) => {
    const { app, lines } = buildApp();
    const res = await request(app)
      .post('/fhir/Questionnaire/$log-questionnaire-errors')
      .set('Content-Type', 'application/fhir+json')
      .send(JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: q, valueCanonical: FORM }, { name: o, resource: report() }] }))
      .expect(200);
    expect((res.body as OperationOutcome).issue![0].diagnostics).toBe('Logged 2 issue(s)');
    const logged = lines.map((l) => JSON.parse(l) as { msg?: string; questionnaire?: string; issues?: number }).find((l) => l.msg === 'questionnaire errors reported by a DTR client');
    expect(logged).toMatchObject({ questionnaire: FORM, issues: 2 });
  });

  it("logs the issues' codes and form paths, never the client's free text (which may quote the patient's data)", async () => {
    const { app, lines } = buildApp();
    const leaking: OperationOutcome = {
      resourceType: 'OperationOutcome',
      issue: [
        {
          severity: 'error',
          code: 'processing',
          diagnostics: 'Pre-fill of mrd-percent failed for Patient/centene-missing-mrd (Odalys Ferreira-Lund, born 1979-04-12): MRD 0.6 % has no effectiveDateTime',
          expression: ['Questionnaire.item[1].item[0]', "%patient.name.where(family = 'Ferreira-Lund')"],
        },
      ],
    };
    await request(app)
      .post('/fhir/Questionnaire/$log-questionnaire-errors')
      .set('Content-Type', 'application/fhir+json')
      .send(JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'questionnaire', valueCanonical: FORM }, { name: 'operationOutcome', resource: leaking }] }))
      .expect(200);
    const text = lines.join('');
    expect(text).not.toContain('Ferreira');
    expect(text).not.toContain('1979-04-12');
    const logged = lines.map((l) => JSON.parse(l) as { msg?: string; reported?: unknown }).find((l) => l.msg === 'questionnaire errors reported by a DTR client');
    expect(logged?.reported).toEqual([{ severity: 'error', code: 'processing', expression: ['Questionnaire.item[1].item[0]'] }]);
  });

  it('answers 400 naming the parameter, not 500, for a parameter without a name', async () => {
    const { app } = buildApp();
    const res = await request(app)
      .post('/fhir/Questionnaire/$log-questionnaire-errors')
      .set('Content-Type', 'application/fhir+json')
      .send(JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'questionnaire', valueCanonical: FORM }, { resource: report() }] }))
      .expect(400);
    expect((res.body as OperationOutcome).issue![0].expression).toEqual(['Parameters.parameter[1]']);
  });

  it('answers 400 for a report that carries no OperationOutcome, rather than "logged"', async () => {
    const { app } = buildApp();
    const res = await request(app)
      .post('/fhir/Questionnaire/$log-questionnaire-errors')
      .set('Content-Type', 'application/fhir+json')
      .send(JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'questionnaire', valueCanonical: FORM }] }))
      .expect(400);
    expect((res.body as OperationOutcome).issue![0].expression).toEqual(['Parameters.parameter']);
  });
});
