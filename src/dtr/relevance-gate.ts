import type { CompiledPolicy, CompiledRule } from '../policies/compiled-policy.js';
import { tokenize } from '../fhir/fhirpath-tokens.js';
import type { Token } from '../fhir/fhirpath-tokens.js';
import { ruleOverAnswers } from './expressions.js';
import type { AnswerContext } from './expressions.js';

/**
 * When a question's answer can no longer change any rule (design.md §6 "Clinical readings": questions are asked only of
 * the patients they concern). A question a limit reads, e.g. OHSU's "given with a TKI?", which the dose limits read
 * only for Ph-positive disease, is hidden once the answers so far make every place it is read decided without it.
 *
 * Each place the fact is read (in a rule's condition, or in a derived fact a rule reads) is decided when an enclosing
 * parenthesised group, or the whole expression, has a value over the answers with this question left unanswered: a
 * monotone expression (no `iif`, `exists`, ...; `isMonotone`) that has a value without the answer has the same value
 * whatever the answer (three-valued logic: an empty operand changes nothing once `and` has a false side or `or` a true
 * one). A derived fact read in a place that is not decided is itself checked the same way against its own readers.
 */

/** The `%fact` references of a derived fact's expression written bare, as a rule's condition names facts. */
function bareFacts(policy: CompiledPolicy, expr: string): Token[] {
  return tokenize(expr).map((t) =>
    t.kind === 'var' && policy.factsByName.has(t.name!) ? { kind: 'ident', text: t.name!, name: t.name } : t,
  );
}

function previous(tokens: Token[], i: number): Token | undefined {
  for (let j = i - 1; j >= 0; j--) if (tokens[j].kind !== 'space') return tokens[j];
  return undefined;
}

const text = (tokens: Token[]) => tokens.map((t) => t.text).join('');

/**
 * The expressions enclosing token `at`, innermost first: each grouping parenthesis around it, and each argument of a
 * function call around it (e.g. the criterion of an `iif`), which is an expression of its own.
 */
function enclosingGroups(tokens: Token[], at: number): string[] {
  const stack: number[] = [];
  const ranges: [number, number][] = [];
  tokens.forEach((t, i) => {
    if (t.text === '(') stack.push(i);
    else if (t.text === ')') {
      const open = stack.pop();
      if (open === undefined || !(open < at && at < i)) return;
      if (previous(tokens, open)?.kind !== 'ident') {
        ranges.push([open, i]);
        return;
      }
      // A call: the argument around `at`, between the top-level commas.
      let depth = 0;
      let start = open + 1;
      for (let j = open + 1; j < i; j++) {
        const c = tokens[j].text;
        if (c === '(' || c === '[' || c === '{') depth++;
        else if (c === ')' || c === ']' || c === '}') depth--;
        else if (c === ',' && depth === 0) {
          if (at < j) {
            ranges.push([start, j - 1]);
            return;
          }
          start = j + 1;
        }
      }
      ranges.push([start, i - 1]);
    }
  });
  return ranges.sort((a, b) => a[1] - a[0] - (b[1] - b[0])).map(([a, b]) => text(tokens.slice(a, b + 1)).trim());
}

/**
 * FHIRPath over the answers (`%resource`) that is true when `fact`'s answer can change no rule of `rules`, or undefined
 * when that cannot be shown in the renderer. `ctx.unknown` must hold `fact` (and any question that may be hidden).
 */
export function irrelevanceCondition(
  policy: CompiledPolicy,
  fact: string,
  rules: { rule: CompiledRule; when: string }[],
  ctx: AnswerContext,
  seen: Set<string> = new Set([fact]),
): string | undefined {
  const readers: { tokens: Token[]; derived?: string }[] = rules
    .filter((r) => r.rule.facts.includes(fact))
    .map((r) => ({ tokens: tokenize(r.when) }));
  for (const f of policy.facts) {
    if (f.def.askable || !f.deps.includes(fact) || seen.has(f.name)) continue;
    readers.push({ tokens: bareFacts(policy, f.def.fhirpath), derived: f.name });
  }
  const parts = new Set<string>();
  for (const reader of readers) {
    const { tokens } = reader;
    // A derived fact no rule reads, directly or not, decides nothing; one that is read is checked against its readers.
    const derivedIrrelevant = reader.derived
      ? irrelevanceCondition(policy, reader.derived, rules, ctx, new Set([...seen, reader.derived]))
      : undefined;
    tokens.forEach((t, i) => {
      if (t.kind !== 'ident' || t.name !== fact) return;
      const before = previous(tokens, i);
      if (before?.text === '.') return;
      const groups = [...enclosingGroups(tokens, i), text(tokens)];
      const options = groups
        .map((g) => ruleOverAnswers(policy, g, ctx))
        .filter((e): e is string => e !== undefined)
        .map((e) => `(${e}).exists()`);
      if (derivedIrrelevant !== undefined) options.push(`(${derivedIrrelevant})`);
      parts.add(options.length === 0 ? 'false' : options.length === 1 ? options[0] : `(${[...new Set(options)].join(' or ')})`);
    });
  }
  if (parts.has('false')) return undefined;
  // Nothing reads it: no rule can change with it.
  if (parts.size === 0) return 'true';
  return [...parts].join(' and ');
}
