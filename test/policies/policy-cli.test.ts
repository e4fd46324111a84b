import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { explain } from '../../src/cli/policy-cli.js';
import { testContent } from '../helpers/app.js';
import { orderSignRequest } from '../helpers/hook-requests.js';
import { repoRoot, storyOrder, storyResources } from '../helpers/stories.js';

async function explained(input: unknown): Promise<string> {
  const lines: string[] = [];
  await explain(testContent(), input, { out: (l) => lines.push(l) });
  return lines.join('\n');
}

const story = (id: string) => JSON.parse(readFileSync(join(repoRoot, 'sandbox', `${id}.json`), 'utf8')) as Bundle;

/** `npm run policy -- explain` (issue 10 acceptance: each story's answer, and why, with citations). */
describe('npm run policy -- explain', () => {
  it('explains a patient story Bundle as an order-sign of its draft order: facts, cited criteria, the answer', async () => {
    const text = await explained(story('mmm-ph-positive-tki'));
    expect(text).toMatch(/^payer: mmm /);
    expect(text).toContain('policy mmm-blinatumomab');
    expect(text).toMatch(/withTki\s+true/);
    expect(text).toMatch(/\[true\s*\] pathway\s+with-tki\s+MP-RX-FP-14-23 A\.iv-vi/);
    expect(text).toMatch(/outcome: satisfied via with-tki/);
    expect(text).toContain('"valueCode": "satisfied"');
  });

  it('names what is missing for a chart without the MRD result, and gives the same answer for the story as a hook request', async () => {
    const fromBundle = await explained(story('centene-missing-mrd'));
    expect(fromBundle).toMatch(/mrdPercent\s+unknown/);
    expect(fromBundle).toMatch(/outcome: documentation-needed; missing: [^\n]*mrdPercent/);
    const fromRequest = await explained(orderSignRequest(storyResources('centene-missing-mrd'), storyOrder('centene-missing-mrd')));
    const outcome = (t: string) => t.match(/outcome: .*/)![0];
    expect(outcome(fromRequest)).toBe(outcome(fromBundle));
  });

  it('refuses a Bundle with no draft order, saying so', async () => {
    const b = story('centene-missing-mrd');
    b.entry = b.entry!.filter((e) => !(e.resource?.resourceType === 'MedicationRequest' && e.resource.status === 'draft'));
    await expect(explained(b)).rejects.toThrow(/no draft MedicationRequest/);
  });
});
