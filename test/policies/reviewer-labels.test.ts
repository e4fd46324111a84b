import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadContent } from '../../src/content.js';
import { factLabel } from '../../src/pas/adjudicate.js';
import { repoRoot } from '../helpers/stories.js';

/**
 * What the payer reviewer reads on the trace (design.md §8 "The reviewer API"): every criterion in its text, and
 * every fact a criterion reads in the policy author's words (`label`, or the DTR question), for every policy under
 * cds-services/. The loader refuses a policy that lacks them; this names each gap in the shipped content, and checks
 * that no words are merely the identifier spelled out ("mrdPositive" → "Mrd positive").
 */
const content = loadContent({ root: repoRoot, canonicalBase: 'https://priorpath.dev/fhir' });

/** The ways a name made from an identifier looks: the camelCase or kebab-case name, or its words title-cased. */
function fromIdentifier(words: string, id: string): boolean {
  const spelled = id
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/-/g, ' ')
    .toLowerCase();
  const plain = words.trim().toLowerCase();
  return plain === id.toLowerCase() || plain === spelled || /^[a-z]+([A-Z][a-z0-9]*)+$/.test(words.trim());
}

describe('reviewer-visible words come from the policy files', () => {
  it('loads every policy file under cds-services/policies', () => {
    const files = readdirSync(join(repoRoot, 'cds-services', 'policies'), { recursive: true, encoding: 'utf8' }).filter(
      (f) => /\.ya?ml$/.test(f),
    );
    expect(
      content.policies.map((p) => p.path.replace(/\\/g, '/').replace(/^.*cds-services\/policies\//, '')).sort(),
    ).toEqual(files.map((f) => f.replace(/\\/g, '/')).sort());
  });

  for (const policy of content.policies) {
    it(`${policy.file.id}: each criterion, and each fact a criterion reads, has words of the policy's author`, () => {
      const gaps: string[] = [];
      for (const rule of [...policy.requirements, ...policy.pathways, ...policy.limits]) {
        if (rule.text.trim().length < 3 || fromIdentifier(rule.text, rule.id))
          gaps.push(`${rule.kind} ${rule.id}: text "${rule.text}"`);
        for (const fact of rule.facts) {
          const label = factLabel(policy, fact);
          if (!label || fromIdentifier(label, fact))
            gaps.push(`${rule.id} reads ${fact}: label ${JSON.stringify(label)}`);
          // A label the policy itself writes is traceable to its seed clause, as every criterion is.
          const own = policy.file.facts[fact];
          if (own?.label && !own.cite) gaps.push(`facts.${fact}: a label without a cite`);
        }
      }
      for (const a of policy.attachments)
        if (fromIdentifier(a.text, a.linkId)) gaps.push(`attachment ${a.linkId}: text "${a.text}"`);
      expect(gaps).toEqual([]);
    });
  }

  it("names Centene's MRD-positive criterion's fact as the policy does, not as the identifier mrdPositive", () => {
    const centene = content.policies.find((p) => p.file.id === 'centene-blinatumomab')!;
    const rule = centene.pathways.find((r) => r.facts.includes('mrdPositive'))!;
    expect(rule.text).toMatch(/MRD-positive/);
    expect(factLabel(centene, 'mrdPositive')).toMatch(/^MRD-positive \(minimal residual disease/);
  });
});
