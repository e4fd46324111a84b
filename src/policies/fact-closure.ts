/**
 * The facts `names` and those they are computed from (each name, then its dependencies, depth first), over a policy's
 * compiled facts. One walk shared by the loader (an `askWhen`'s reads, a rule's reads at load), the structure (what
 * an approval period reads) and evaluation (a rule's closure, cached per policy in evaluate-policy.ts `ruleClosure`).
 * A name that is not a fact (a FHIRPath variable, a word) is kept, as the callers filter by what they need.
 * docs/design.md §7 "Questions only limits read".
 */
export function factClosure(facts: ReadonlyMap<string, { deps: readonly string[] }>, names: readonly string[]): string[] {
  const seen = new Set<string>();
  const visit = (n: string) => {
    if (seen.has(n)) return;
    seen.add(n);
    facts.get(n)?.deps.forEach(visit);
  };
  names.forEach(visit);
  return [...seen];
}
