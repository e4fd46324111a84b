import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle, MedicationRequest } from '@medplum/fhirtypes';
import { afterAll, describe, expect, it } from 'vitest';
import {
  anchorDate,
  daysBetween,
  describeStories,
  loadSandboxBundles,
  shiftBundleDates,
  shiftDateString,
  STORY_EXTENSIONS,
} from '../../src/sandbox/sandbox-bundles.js';

const sandboxDir = join(import.meta.dirname, '..', '..', 'sandbox');

describe('shiftDateString', () => {
  it.each([
    ['2026-11-16', 3, '2026-11-19'],
    ['2026-11-16', -20, '2026-10-27'],
    ['2026-12-30', 5, '2027-01-04'],
    ['2028-02-27', 2, '2028-02-29'],
    ['2027-02-27', 2, '2027-03-01'],
    ['2026-11-16T10:42:00-05:00', 15, '2026-12-01T10:42:00-05:00'],
    ['2026-11-16T23:59:59Z', 1, '2026-11-17T23:59:59Z'],
    ['2026-11-17T14:05:00.123Z', -400, '2025-10-13T14:05:00.123Z'],
    ['2026-11-16T09:00:00+05:30', 0, '2026-11-16T09:00:00+05:30'],
  ])('%s moved %i days is %s (same precision and zone)', (input, days, expected) => {
    expect(shiftDateString(input, days)).toBe(expected);
    expect(shiftDateString(input, days)).toHaveLength(input.length);
  });

  it('moves partial dates by their middle and keeps their precision', () => {
    expect(shiftDateString('2026-11', 10)).toBe('2026-11');
    expect(shiftDateString('2026-11', 20)).toBe('2026-12');
    expect(shiftDateString('2026', 100)).toBe('2026');
    expect(shiftDateString('2026', 200)).toBe('2027');
  });

  it('leaves everything that is not a date alone', () => {
    for (const s of [
      '1597262',
      'C91.02',
      '2026-13-01',
      '2026-02-30',
      'not a date',
      '12:00:00',
      'Patient/2026-11-16',
      '2026-11-16 10:00',
    ]) {
      expect(shiftDateString(s, 30)).toBe(s);
    }
    expect(shiftDateString('2026-11', 30, false)).toBe('2026-11');
  });

  it('counts days between calendar dates', () => {
    expect(daysBetween('2026-11-16', '2026-11-16')).toBe(0);
    expect(daysBetween('2026-11-16', '2027-11-16')).toBe(365);
    expect(daysBetween('2026-03-01', '2026-02-01')).toBe(-28);
    expect(() => daysBetween('2026-11-16', '16/11/2026')).toThrow(/not a date/);
  });
});

describe('shiftBundleDates', () => {
  const bundle: Bundle = {
    resourceType: 'Bundle',
    id: 'tiny',
    meta: {
      extension: [
        { url: STORY_EXTENSIONS.anchor, valueDate: '2026-11-16' },
        { url: STORY_EXTENSIONS.story, valueString: '2026-11-16' },
      ],
    },
    type: 'transaction',
    entry: [
      {
        resource: {
          resourceType: 'Patient',
          id: 'p',
          birthDate: '1974-03-08',
          identifier: [{ system: 'urn:x', value: '2026-11-16' }],
        },
        request: { method: 'PUT', url: 'Patient/p' },
      },
      {
        resource: {
          resourceType: 'MedicationRequest',
          id: 'm',
          status: 'draft',
          intent: 'order',
          subject: { reference: 'Patient/p' },
          authoredOn: '2026-11-16T10:42:00-05:00',
          dosageInstruction: [{ timing: { repeat: { boundsPeriod: { start: '2026-11-19', end: '2026-12-16' } } } }],
          dispenseRequest: { validityPeriod: { start: '2026-11-19', end: '2027-01-11' }, numberOfRepeatsAllowed: 1 },
          medicationCodeableConcept: {
            coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '1597262', version: '2026-11' }],
          },
        },
        request: { method: 'PUT', url: 'MedicationRequest/m' },
      },
      {
        resource: {
          resourceType: 'Coverage',
          id: 'c',
          status: 'active',
          beneficiary: { reference: 'Patient/p' },
          payor: [{ reference: 'Patient/p' }],
          period: { start: '2026-01' },
        },
        request: { method: 'PUT', url: 'Coverage/c' },
      },
    ],
  };

  it('moves every date by today − anchor, the anchor becoming today', () => {
    const out = shiftBundleDates(bundle, '2026-12-01');
    expect(anchorDate(out)).toBe('2026-12-01');
    const [patient, order, coverage] = out.entry!.map((e) => e.resource) as unknown as [
      { birthDate: string; identifier: { value: string }[] },
      MedicationRequest,
      { period: { start: string } },
    ];
    expect(patient.birthDate).toBe('1974-03-23');
    expect(order.authoredOn).toBe('2026-12-01T10:42:00-05:00');
    expect(order.dosageInstruction![0].timing!.repeat!.boundsPeriod).toEqual({
      start: '2026-12-04',
      end: '2026-12-31',
    });
    expect(order.dispenseRequest!.validityPeriod).toEqual({ start: '2026-12-04', end: '2027-01-26' });
    expect(coverage.period.start).toBe('2026-01');
    // identifiers, codes, versions and numbers are not dates to move; a date-shaped story text is (it is a date)
    expect(patient.identifier[0].value).toBe('2026-11-16');
    expect(order.medicationCodeableConcept!.coding![0]).toEqual({
      system: 'http://www.nlm.nih.gov/research/umls/rxnorm',
      code: '1597262',
      version: '2026-11',
    });
    expect(order.dispenseRequest!.numberOfRepeatsAllowed).toBe(1);
  });

  it('is pure and deterministic', () => {
    const before = JSON.stringify(bundle);
    const a = shiftBundleDates(bundle, '2027-05-04');
    const b = shiftBundleDates(bundle, '2027-05-04');
    expect(a).toEqual(b);
    expect(JSON.stringify(bundle)).toBe(before);
    expect(shiftBundleDates(bundle, '2026-11-16')).toEqual(bundle);
    // shifting the shifted bundle to the same day is a no-op: its anchor is now that day
    expect(shiftBundleDates(a, '2027-05-04')).toEqual(a);
  });

  it('copies a bundle without an anchor unchanged', () => {
    const plain: Bundle = { resourceType: 'Bundle', type: 'transaction', entry: bundle.entry };
    const out = shiftBundleDates(plain, '2030-01-01');
    expect(out).toEqual(plain);
    expect(out).not.toBe(plain);
  });
});

describe('loadSandboxBundles', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'priorpath-sandbox-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('reads every story, sorted by file name, and moves each to the given day', () => {
    const files = readdirSync(sandboxDir)
      .filter((f) => f.endsWith('.json'))
      .sort();
    const raw = files.map((f) => JSON.parse(readFileSync(join(sandboxDir, f), 'utf8')) as Bundle);
    const today = '2027-03-09';
    const loaded = loadSandboxBundles(sandboxDir, { today });
    expect(loaded.map((b) => b.id)).toEqual(raw.map((b) => b.id));
    expect(loadSandboxBundles(sandboxDir, { today })).toEqual(loaded);
    loaded.forEach((b, i) => {
      expect(anchorDate(b)).toBe(today);
      const shift = daysBetween(anchorDate(raw[i])!, today);
      // every string keeps its length; those that changed are dates moved by exactly `shift` days
      const before = strings(raw[i]);
      const after = strings(b);
      expect(after).toHaveLength(before.length);
      const wrong = before.filter((s, j) => {
        const t = after[j];
        if (t === s) return false;
        const moved = /^\d{4}-\d{2}-\d{2}/.test(s) && daysBetween(s.slice(0, 10), t.slice(0, 10)) === shift;
        return !moved || t.length !== s.length || t.slice(10) !== s.slice(10);
      });
      expect(wrong, `${b.id}: strings changed other than by a ${shift}-day move`).toEqual([]);
      expect(before.filter((s, j) => s !== after[j]).length).toBeGreaterThan(10);
    });
  });

  it('keeps each story the same distance from today: the order starts the same number of days after the anchor', () => {
    const a = loadSandboxBundles(sandboxDir, { today: '2026-11-16' });
    const b = loadSandboxBundles(sandboxDir, { today: '2031-01-31' });
    a.forEach((bundle, i) => {
      const start = (x: Bundle) => {
        const order = x
          .entry!.map((e) => e.resource)
          .find((r) => r?.resourceType === 'MedicationRequest' && r.status === 'draft') as MedicationRequest;
        return order.dosageInstruction![0].timing!.repeat!.boundsPeriod!.start!;
      };
      expect(daysBetween('2026-11-16', start(bundle))).toBe(daysBetween('2031-01-31', start(b[i])));
    });
  });

  it('defaults to the current UTC date', () => {
    const today = new Date().toISOString().slice(0, 10);
    expect(loadSandboxBundles(sandboxDir).every((b) => anchorDate(b) === today)).toBe(true);
  });

  it('ignores other files, refuses a JSON file that is not a transaction Bundle, and a bad today', () => {
    writeFileSync(join(tmp, 'README.md'), '# not a story');
    writeFileSync(
      join(tmp, 'a.json'),
      JSON.stringify({ resourceType: 'Bundle', id: 'a', type: 'transaction', entry: [] }),
    );
    expect(loadSandboxBundles(tmp, { today: '2026-11-16' }).map((b) => b.id)).toEqual(['a']);
    expect(() => loadSandboxBundles(tmp, { today: '11/16/2026' })).toThrow(/not a date/);
    writeFileSync(join(tmp, 'b.json'), JSON.stringify({ resourceType: 'Patient', id: 'b' }));
    expect(() => loadSandboxBundles(tmp, { today: '2026-11-16' })).toThrow(
      /b\.json: not a transaction or batch Bundle/,
    );
    writeFileSync(join(tmp, 'b.json'), '{ nope');
    expect(() => loadSandboxBundles(tmp, { today: '2026-11-16' })).toThrow(/b\.json: not valid JSON/);
  });

  it('describes each story for the demo page', () => {
    const list = describeStories(loadSandboxBundles(sandboxDir, { today: '2026-11-16' }));
    const mrd = list.find((s) => s.id === 'centene-mrd-positive')!;
    expect(mrd).toMatchObject({
      patientId: 'centene-mrd-positive',
      payer: 'centene',
      orderId: 'centene-mrd-positive-order',
    });
    expect(mrd.patientName).toMatch(/Daniela/);
    expect(mrd.expected).toMatch(/^centene-blinatumomab: satisfied/);
    expect(list.every((s) => s.story && s.expected && s.orderId === `${s.id}-order`)).toBe(true);
  });
});

function strings(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) value.forEach((v) => strings(v, out));
  else if (value && typeof value === 'object') Object.values(value).forEach((v) => strings(v, out));
  return out;
}
