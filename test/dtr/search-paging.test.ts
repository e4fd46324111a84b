/**
 * Every search the payer FHIR API serves pages its matches (FHIR R4 search.html "Paging", http.html "search"):
 * `_count` limits a page, `total` counts every match, `next` links walk the rest; unsupported parameters are ignored
 * (and left out of `self`) unless the client asks for strict handling.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import type { Express } from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../helpers/app.js';
import { pasSubscription } from '../pas/pas-fixtures.js';
import { dtrContent, fhirApp, fhirIssues, FHIR_BASE } from './helpers.js';

const content = dtrContent();
const link = (b: Bundle, relation: string) => b.link?.find((l) => l.relation === relation)?.url;
const ids = (b: Bundle) => (b.entry ?? []).map((e) => (e.resource as Resource).id);

/** Follows `next` from the first page to the last, as a FHIR client does, and returns every page. */
async function walk(app: Express, first: string): Promise<Bundle[]> {
  const pages: Bundle[] = [];
  let url: string | undefined = first;
  while (url && pages.length < 500) {
    const page = (await request(app).get(url.replace(/^http:\/\/priorpath\.test/, '')).expect(200)).body as Bundle;
    pages.push(page);
    url = link(page, 'next');
  }
  return pages;
}

describe.each(['Questionnaire', 'ValueSet', 'Library'])('GET /fhir/%s search paging', (type) => {
  it('_count=1 answers one match with the total and a next link; walking next yields every match once', async () => {
    const { app } = fhirApp();
    const all = (await request(app).get(`/fhir/${type}`).expect(200)).body as Bundle;
    const every = ids(all);
    expect(every.length).toBeGreaterThan(1);
    expect(all.total).toBe(every.length);

    const first = (await request(app).get(`/fhir/${type}?_count=1`).expect(200)).body as Bundle;
    expect(first.entry).toHaveLength(1);
    expect(first.total).toBe(every.length);
    expect(link(first, 'self')).toBe(`${FHIR_BASE}/${type}?_count=1`);
    expect(link(first, 'next')).toBeDefined();
    expect(fhirIssues(first)).toEqual([]);

    const pages = await walk(app, `/fhir/${type}?_count=2`);
    expect(pages.flatMap(ids)).toEqual(every);
    expect(pages.every((p) => (p.entry ?? []).length <= 2 && p.total === every.length)).toBe(true);
    expect(link(pages.at(-1)!, 'next')).toBeUndefined();
    expect(link(pages.at(-1)!, 'previous')).toBeDefined();
  });

  it('_count=0 and _summary=count answer the total alone; a bad _count is a 400 naming it', async () => {
    const { app } = fhirApp();
    const total = (await request(app).get(`/fhir/${type}`).expect(200)).body.total as number;
    const none = (await request(app).get(`/fhir/${type}?_count=0`).expect(200)).body as Bundle;
    expect([none.total, none.entry]).toEqual([total, undefined]);
    expect(fhirIssues(none)).toEqual([]);
    const summary = (await request(app).get(`/fhir/${type}?_summary=count`).expect(200)).body as Bundle;
    expect([summary.total, summary.entry, link(summary, 'self')]).toEqual([total, undefined, `${FHIR_BASE}/${type}?_summary=count`]);
    for (const bad of ['-1', 'ten', '1.5']) {
      const res = await request(app).get(`/fhir/${type}?_count=${bad}`).expect(400);
      expect(res.body.issue[0].expression).toEqual(['_count']);
    }
  });

  it('an unsupported parameter is ignored and left out of self, unless Prefer: handling=strict; a modifier is a 400', async () => {
    const { app } = fhirApp();
    const lenient = (await request(app).get(`/fhir/${type}?_count=1&_summary=true&publisher=x`).expect(200)).body as Bundle;
    expect(lenient.entry).toHaveLength(1);
    expect(link(lenient, 'self')).toBe(`${FHIR_BASE}/${type}?_count=1`);
    const strict = await request(app).get(`/fhir/${type}?publisher=x`).set('Prefer', 'handling=strict').expect(400);
    expect(strict.body.issue[0].expression).toEqual(['publisher']);
    const modified = await request(app).get(`/fhir/${type}?name:exact=x`).expect(400);
    expect(modified.body.issue[0].expression).toEqual(['name:exact']);
  });
});

describe('search filters and paging together', () => {
  it('pages the matches of a filter, and the links keep the filter', async () => {
    const { app } = fhirApp();
    // Each policy's standard form and its adaptive form (named after it).
    const bcbsnc = content.policies.filter((p) => p.file.payer === 'bcbsnc').flatMap((p) => [p.file.id, `${p.file.id}-adaptive`]).sort();
    expect(bcbsnc.length).toBeGreaterThan(1);
    const first = (await request(app).get('/fhir/Questionnaire?name=bcbsnc&_count=1').expect(200)).body as Bundle;
    expect([first.total, first.entry?.length]).toEqual([bcbsnc.length, 1]);
    expect(link(first, 'next')).toBe(`${FHIR_BASE}/Questionnaire?name=bcbsnc&_count=1&_offset=1`);
    const pages = await walk(app, '/fhir/Questionnaire?name=bcbsnc&_count=1');
    expect(pages.flatMap(ids).sort()).toEqual(bcbsnc);
  });
});

describe('GET /fhir/Subscription search paging', () => {
  it('honours _count with the total and next links, and filters by status', async () => {
    const { app, storage } = buildApp({ today: '2026-11-23' });
    const at = '2026-11-23T10:00:00.000Z';
    const saved: string[] = [];
    for (const [i, status] of (['active', 'active', 'error'] as const).entries()) {
      const resource = pasSubscription(`https://ehr.example.org/notify/${i}`, 'U5521039476');
      const id = randomUUID();
      saved.push(id);
      await storage.saveSubscription({ id, status, topic: resource.criteria, filters: ['patient=U5521039476'], endpoint: resource.channel.endpoint, headers: [], content: 'full-resource', resource, eventsCount: 0, createdAt: at, updatedAt: at });
    }
    const first = (await request(app).get('/fhir/Subscription?_count=2').expect(200)).body as Bundle;
    expect([first.total, first.entry?.length]).toEqual([3, 2]);
    expect(fhirIssues(first)).toEqual([]);
    const pages = await walk(app, '/fhir/Subscription?_count=2');
    expect(pages.flatMap(ids).sort()).toEqual([...saved].sort());
    const active = (await request(app).get('/fhir/Subscription?status=active&_count=1').expect(200)).body as Bundle;
    expect([active.total, active.entry?.length, link(active, 'next')]).toEqual([2, 1, `${FHIR_BASE}/Subscription?status=active&_count=1&_offset=1`]);
  });
});
