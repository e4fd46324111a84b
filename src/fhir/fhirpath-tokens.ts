/**
 * A lexical pass over FHIRPath text, good enough for rewriting it and for seeing which `%variables` it reads: the DTR
 * renderer expressions (dtr/expressions.ts) and the answers' evaluation (coverage/evaluate-response.ts) both read
 * policy FHIRPath this way. It never evaluates (FHIRPath N1 §Lexical elements).
 *
 * @see https://hl7.org/fhirpath/N1/#lexical-elements
 * @module
 */

/** One lexical piece of a FHIRPath expression. */
export interface Token {
  kind: 'string' | 'var' | 'ident' | 'space' | 'other';
  text: string;
  /** Variable or identifier name. */
  name?: string;
}

/** A lexical pass good enough for rewriting: strings, `%vars`, identifiers, and everything else verbatim. */
export function tokenize(expr: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const n = expr.length;
  while (i < n) {
    const c = expr[i];
    if (c === "'" || c === '`') {
      let j = i + 1;
      while (j < n && expr[j] !== c) j += expr[j] === '\\' ? 2 : 1;
      out.push({ kind: c === "'" ? 'string' : 'other', text: expr.slice(i, j + 1) });
      i = j + 1;
    } else if (c === '%' && /[A-Za-z_]/.test(expr[i + 1] ?? '')) {
      const m = /^%([A-Za-z_][A-Za-z0-9_]*)/.exec(expr.slice(i))!;
      out.push({ kind: 'var', text: m[0], name: m[1] });
      i += m[0].length;
    } else if (c === '@') {
      const m = /^@[0-9A-Za-z:\-+.]*/.exec(expr.slice(i))!;
      out.push({ kind: 'other', text: m[0] });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(expr.slice(i))!;
      out.push({ kind: 'ident', text: m[0], name: m[0] });
      i += m[0].length;
    } else if (c === '$' || /[0-9]/.test(c)) {
      const m = /^(\$[A-Za-z_]+|\d+(\.\d+)?)/.exec(expr.slice(i));
      const text = m?.[0] ?? c;
      out.push({ kind: 'other', text });
      i += text.length;
    } else if (/\s/.test(c)) {
      const m = /^\s+/.exec(expr.slice(i))!;
      out.push({ kind: 'space', text: m[0] });
      i += m[0].length;
    } else {
      out.push({ kind: 'other', text: c });
      i++;
    }
  }
  return out;
}
