/**
 * The reviewer's chart facts are sorted newest first by the instant each was taken (src/pas/review-case.ts), with
 * each fact's date parsed once, not once per comparison (the keyed sort byTimeTaken in evaluation-data.ts uses too).
 * The count of parses is read through fhir-instant.ts, whose every caller this file counts.
 */
import type { BundleEntry, Observation } from '@medplum/fhirtypes';
import { describe, expect, it, vi } from 'vitest';
import type * as FhirInstant from '../../src/fhir/fhir-instant.js';
import { parsePasRequest } from '../../src/pas/request-bundle.js';
import { reviewCase } from '../../src/pas/review-case.js';
import { storyBundle } from './pas-fixtures.js';

const parses = vi.hoisted(() => ({ count: 0 }));

vi.mock('../../src/fhir/fhir-instant.js', async (importOriginal) => {
  const real = await importOriginal<typeof FhirInstant>();
  const instantOf = (value: string | undefined) => {
    parses.count++;
    return real.instantOf(value);
  };
  // byInstant parses through the counted instantOf, so a comparator sort is counted as well.
  const byInstant = (a: string | undefined, b: string | undefined) => {
    const x = instantOf(a) ?? -Infinity;
    const y = instantOf(b) ?? -Infinity;
    return x < y ? -1 : x > y ? 1 : 0;
  };
  return { ...real, instantOf, byInstant };
});

describe("the reviewer's chart facts, sorted", () => {
  it('parse each date once (was twice per comparison), newest first, undated last, equal instants in Bundle order', () => {
    const bundle = storyBundle('centene-missing-mrd');
    const patient = bundle.entry!.find((e) => e.resource?.resourceType === 'Patient')!.resource!;
    // LOINC 29463-7 body weight, one a week back from November 2026, some with the same instant in other offsets.
    const weight = (id: string, at: string | undefined, kg: number): BundleEntry => ({
      fullUrl: `urn:uuid:${id}`,
      resource: {
        resourceType: 'Observation',
        id,
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] },
        subject: { reference: `Patient/${patient.id}` },
        ...(at ? { effectiveDateTime: at } : {}),
        valueQuantity: { value: kg, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
      } as Observation,
    });
    for (let week = 0; week < 30; week++) {
      const day = new Date(Date.UTC(2026, 10, 28) - week * 7 * 86_400_000).toISOString().slice(0, 10);
      bundle.entry!.push(weight(`w-${week}`, `${day}T08:00:00Z`, 70 + (week % 5)));
    }
    bundle.entry!.push(weight('w-same-east', '2026-11-28T13:00:00+05:00', 71), weight('w-undated', undefined, 72));
    const req = parsePasRequest(bundle as unknown as Record<string, unknown>);
    parses.count = 0;
    const facts = reviewCase(req).facts;
    expect(parses.count).toBeLessThanOrEqual(facts.length);

    const real = (d: string | undefined) => (d === undefined ? -Infinity : Date.parse(d));
    const times = facts.map((f) => real(f.date));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    expect(facts.at(-1)?.date).toBeUndefined();
    // 08:00 UTC on 28 November, written twice: the Bundle's order is kept.
    const first = facts.filter((f) => f.date === '2026-11-28T08:00:00Z' || f.date === '2026-11-28T13:00:00+05:00').map((f) => f.date);
    expect(first).toEqual(['2026-11-28T08:00:00Z', '2026-11-28T13:00:00+05:00']);
  });
});
