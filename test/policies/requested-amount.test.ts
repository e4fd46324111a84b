/**
 * A policy's `requestedAmount` (policy-schema.ts; cds-services/README.md "The policy file"): the fact that is the amount
 * the order asks for, which an amount limit judges. PAS judges and certifies a Claim item's quantity only for a policy
 * that declares one (design.md §8 "What PAS certifies"); before, PAS guessed it from whether a fact's FHIRPath text
 * mentioned `dispenseRequest.quantity` (stop 40 read-through).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Claim } from '@medplum/fhirtypes';
import { afterAll, describe, expect, it } from 'vitest';
import { loadContent } from '../../src/content.js';
import { adjudicate } from '../../src/pas/adjudicate.js';
import { parsePasRequest } from '../../src/pas/request-bundle.js';
import { loadPolicies } from '../../src/policies/policy-loader.js';
import { repoRoot } from '../helpers/stories.js';
import { TODAY, storyBundle } from '../pas/pas-fixtures.js';

const CANONICAL_BASE = 'https://priorpath.dev/fhir';
const content = loadContent({ root: repoRoot, canonicalBase: CANONICAL_BASE });
const MMM = join('policies', 'mmm', 'blinatumomab.yaml');

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A copy of the repository's content with the MMM policy's text changed by `edit`. */
function rootWith(edit: (yaml: string) => string): string {
  const root = mkdtempSync(join(tmpdir(), 'priorpath-requested-amount-'));
  dirs.push(root);
  cpSync(join(repoRoot, 'cds-services'), join(root, 'cds-services'), { recursive: true });
  cpSync(join(repoRoot, 'questionnaires'), join(root, 'questionnaires'), { recursive: true });
  const file = join(root, 'cds-services', MMM);
  writeFileSync(file, edit(readFileSync(file, 'utf8')));
  return root;
}

const loadMmmWith = (edit: (yaml: string) => string) => () =>
  loadPolicies({ root: join(rootWith(edit), 'cds-services'), valueSets: content.valueSets, canonicalBase: CANONICAL_BASE });

describe('requestedAmount: the policies that judge amounts say so', () => {
  it('MMM (Limits A, 980 mcg a cycle) and OHSU (II, 980 J9039 units per 42 days) declare their requested amount; Centene and BCBSNC judge none', () => {
    const declared = Object.fromEntries(content.policies.map((p) => [p.file.id, p.requestedAmount]));
    expect(declared).toEqual({
      'bcbsnc-blinatumomab': undefined,
      'bcbsnc-inotuzumab': undefined,
      'centene-blinatumomab': undefined,
      'mmm-blinatumomab': 'requestedUg',
      'ohsu-blinatumomab': 'requestedUnits',
    });
  });

  it('the loader refuses a requested amount that is no fact, not a number, not read from the order, or judged by no limit', () => {
    const declare = (fact: string) => (y: string) => y.replace('requestedAmount: requestedUg\n', `requestedAmount: ${fact}\n`);
    expect(loadMmmWith(declare('requestedMg'))).toThrow(/requestedAmount.*unknown fact requestedMg/s);
    expect(loadMmmWith(declare('dlbclUse'))).toThrow(/fact dlbclUse is of type boolean: the requested amount is a number/);
    expect(loadMmmWith(declare('doseCapUg'))).toThrow(/fact doseCapUg does not read %order/);
    // An amount read from the order that no limit reads: PAS would certify it unjudged.
    const unjudged = (y: string) => declare('requestedUg')(y).replace('when: requestedUg <= 980', 'when: "true"');
    expect(loadMmmWith(unjudged)).toThrow(/no limit reads requestedUg/);
  });

  it("the loader refuses a quantity proposal (propose.quantity) on a limit that does not read the requested amount, or with an unknown fact", () => {
    // infusion-days judges the days of infusion: a lower dispense quantity would not bring the order within it.
    const onInfusionDays = (y: string) =>
      y.replace('    when: infusionOver28Days.not()\n', '    when: infusionOver28Days.not()\n    propose:\n      quantity: { value: "980", unit: ug }\n');
    expect(loadMmmWith(onInfusionDays)).toThrow(/propose\.quantity.*does not read the policy's requestedAmount \(requestedUg\)/s);
    const unknownFact = (y: string) => y.replace('quantity: { value: "980", unit: ug, display: mcg }', 'quantity: { value: "cycleUg", unit: ug, display: mcg }');
    expect(loadMmmWith(unknownFact)).toThrow(/propose\.quantity\.value.*unknown fact cycleUg/s);
  });
});

describe('PAS judges the item quantity by the declaration, not by the FHIRPath text', () => {
  /** MMM's request for 5000 mcg for one cycle (Limits A: 980 mcg a cycle), adjudicated over `root`'s content. */
  function mmmItem(root: string) {
    const c = loadContent({ root, canonicalBase: CANONICAL_BASE });
    const bundle = storyBundle('mmm-ph-positive-tki');
    (bundle.entry![0].resource as Claim).item![0].quantity = { value: 5000, unit: 'ug', system: 'http://unitsofmeasure.org', code: 'ug' };
    return adjudicate({ content: c, payer: c.payers.get('mmm')!, request: parsePasRequest(bundle as unknown as Record<string, unknown>), today: TODAY })[0];
  }

  it('declared: the 5000 mcg item is judged against 980 mcg a cycle (pended over the limit)', () => {
    const item = mmmItem(repoRoot);
    expect(item.criteria.find((c) => c.id === 'amount-per-cycle')?.result).toBe(false);
    expect(item.quantityNotJudged).toBeUndefined();
  });

  it('not declared: the same policy, whose requestedUg still reads the dispense quantity, judges no item quantity', () => {
    const item = mmmItem(rootWith((y) => y.replace('requestedAmount: requestedUg\n', '')));
    expect(item.quantityNotJudged).toBe(true);
    expect(item.criteria.find((c) => c.id === 'amount-per-cycle')?.result).not.toBe(false);
  });
});
