import type { Bundle, Extension, MedicationRequest, Questionnaire, ValueSet } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { loadContent } from '../../src/content.js';
import { generateQuestionnaireFiles } from '../../src/dtr/questionnaire-files.js';
import { COVERAGE_INFO_URL } from '../../src/coverage/coverage-information.js';
import { buildApp } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { killAll, payerToken, startPriorPath } from '../helpers/priorpath-process.js';
import { repoRoot, storyOrder, storyResources } from '../helpers/stories.js';

// design.md §3: CANONICAL_BASE is the base of the canonical URLs of Questionnaires, ValueSets and Libraries.
const OTHER_BASE = 'https://payer.example.org/fhir/r4';

describe('CANONICAL_BASE other than the default', () => {
  const content = loadContent({ root: repoRoot, canonicalBase: OTHER_BASE });

  it('loads every policy, and every value set and Questionnaire carries a canonical on the configured base', () => {
    expect(content.policies.length).toBeGreaterThan(0);
    const urls = [...content.questionnaires.values()].map((q) => q.url as string);
    expect(urls.length).toBeGreaterThan(0);
    for (const url of urls) expect(url.startsWith(`${OTHER_BASE}/Questionnaire/`)).toBe(true);
    for (const p of content.policies) expect(p.questionnaire.startsWith(`${OTHER_BASE}/Questionnaire/${p.file.id}|`)).toBe(true);
  });

  it('serves the committed Questionnaires unchanged apart from the base (they equal the ones generated on it)', () => {
    for (const f of generateQuestionnaireFiles(content)) {
      expect(content.questionnaires.get(f.questionnaire.url!), f.fileName).toEqual(f.questionnaire);
    }
  });

  it('keeps code systems and extension URLs the EHR data carries (identities, not artifacts)', () => {
    const evidence = content.codeSystems.find((c) => c.url?.endsWith('/CodeSystem/evidence'));
    expect(evidence?.url).toBe('https://priorpath.dev/fhir/CodeSystem/evidence');
  });

  it('CRD names the Questionnaire on the base, and $questionnaire-package answers with it and the ValueSets it binds', async () => {
    const { app } = buildApp({ content });
    const resources = storyResources('centene-missing-mrd');
    const order = storyOrder('centene-missing-mrd', resources);
    const signed = await request(app).post('/cds-services/priorpath-order-sign').send(orderSignRequest(resources, order)).expect(200);
    const resource = signed.body.systemActions[0].resource as MedicationRequest;
    const info = resource.extension!.find((e) => e.url === COVERAGE_INFO_URL)!;
    const questionnaire = info.extension!.find((e: Extension) => e.url === 'questionnaire')!.valueCanonical!;
    expect(questionnaire.startsWith(`${OTHER_BASE}/Questionnaire/centene-blinatumomab`)).toBe(true);

    const coverage = resources.find((r) => r.resourceType === 'Coverage')!;
    const pkg = await request(app)
      .post('/fhir/Questionnaire/$questionnaire-package')
      .send({ resourceType: 'Parameters', parameter: [{ name: 'coverage', resource: coverage }, { name: 'order', resource }] })
      .expect(200);
    const bundles: Bundle[] =
      pkg.body.resourceType === 'Bundle' ? [pkg.body] : pkg.body.parameter.filter((p: { name: string }) => p.name === 'PackageBundle').map((p: { resource: Bundle }) => p.resource);
    expect(bundles).toHaveLength(1);
    const entries = bundles[0].entry!.map((e) => e.resource!);
    const q = entries.find((r) => r.resourceType === 'Questionnaire') as Questionnaire;
    expect(q.url).toBe(questionnaire.split('|')[0]);
    const bound = JSON.stringify(q).match(/"answerValueSet":"[^"]+"/g) ?? [];
    expect(bound.length).toBeGreaterThan(0);
    const served = new Set(entries.filter((r): r is ValueSet => r.resourceType === 'ValueSet').map((v) => v.url));
    for (const b of bound) {
      const url = b.slice('"answerValueSet":"'.length, -1).split('|')[0];
      expect(url.startsWith(`${OTHER_BASE}/ValueSet/`)).toBe(true);
      expect(served.has(url), url).toBe(true);
    }

    const read = await request(app).get('/fhir/Questionnaire').query({ url: q.url }).expect(200);
    expect(read.body.entry?.[0]?.resource?.url).toBe(q.url);
  });
});

describe('the service started with CANONICAL_BASE on another base (npm start, its own process)', () => {
  afterAll(() => killAll());

  it('starts, answers CRD with the Questionnaire on that base, and the payer API serves it there', async () => {
    const proc = await startPriorPath({ CANONICAL_BASE: OTHER_BASE });
    const resources = storyResources('centene-missing-mrd');
    const order = storyOrder('centene-missing-mrd', resources);
    const signed = await fetch(`${proc.base}/cds-services/priorpath-order-sign`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(orderSignRequest(resources, order)),
    });
    expect(signed.status).toBe(200);
    const resource = ((await signed.json()) as { systemActions: { resource: MedicationRequest }[] }).systemActions[0].resource;
    const info = resource.extension!.find((e) => e.url === COVERAGE_INFO_URL)!;
    const canonical = info.extension!.find((e: Extension) => e.url === 'questionnaire')!.valueCanonical!;
    expect(canonical.startsWith(`${OTHER_BASE}/Questionnaire/centene-blinatumomab|`)).toBe(true);
    const token = await payerToken(proc.base);
    const found = await fetch(`${proc.base}/fhir/Questionnaire?url=${encodeURIComponent(canonical.split('|')[0])}`, { headers: { authorization: `Bearer ${token}` } });
    expect(found.status).toBe(200);
    const bundle = (await found.json()) as Bundle;
    expect((bundle.entry ?? []).map((e) => (e.resource as Questionnaire).url)).toEqual([canonical.split('|')[0]]);
  }, 90_000);
});
