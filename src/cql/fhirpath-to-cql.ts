import { createHash } from 'node:crypto';
import fhirpath from 'fhirpath';
import type { FhirModel } from './model-info.js';

/**
 * A FHIRPath-to-CQL translator for the FHIRPath that policy facts are written in (cds-services/README.md "Facts"),
 * so a DTR 2.0.1 client running the generated CQL reads the chart exactly as CRD's FHIRPath does (design.md §7).
 *
 * It works on fhirpath.js's own parse tree and keeps FHIRPath's collection semantics explicit: every translated
 * expression is either one value (CQL null = FHIRPath's empty collection) or a CQL List (never holding nulls), with its
 * type from the FHIR 4.0.1 model info the CQL translator uses. FHIR primitives are unwrapped to System values on
 * access (`status.value`), choice elements are cast where the path or `ofType()` says which type is meant, and
 * FHIRPath's three-valued logic maps onto CQL's (empty ↔ null) operator by operator: `in` and `memberOf()` of an empty
 * input stay empty, `where()` drops items whose criterion is empty, `iif()` takes the otherwise branch on empty.
 *
 * What the translator cannot say in CQL (a variable the DTR client does not have, such as `%user`, or a construct
 * outside the subset) raises {@link Untranslatable} with the reason; the fact is then listed as not expressed.
 */
export class Untranslatable extends Error {}

export type Ty = { k: 'fhir'; name: string } | { k: 'sys'; name: string } | { k: 'choice'; options: string[] } | { k: 'null' };

/** One translated expression: CQL text, its type, and whether it is a List (FHIRPath collection) or one value. */
export interface CqlNode {
  cql: string;
  ty: Ty;
  many: boolean;
  /** The literal value, for string and number literals (function arguments such as value-set ids). */
  literal?: string | number;
  /** For a union of literals (`'cr1' | 'cr2'`): the CQL of each, written as a List selector. */
  literals?: string[];
}

/** What the surrounding Library provides: the variables, value sets and helper definitions. */
export interface TranslationEnv {
  model: FhirModel;
  /** `%name`: a variable or an earlier fact; throws Untranslatable when the CQL has no such thing. */
  variable(name: string): CqlNode;
  /** Registers a value set the CQL names; returns its CQL identifier and the drug names it also matches by. */
  valueSet(ref: string): { identifier: string; names: string[] };
  /** Registers a helper definition the CQL calls (see cql-library-source.ts HELPERS); returns its quoted name. */
  helper(name: string): string;
  /**
   * Registers a define of the Library for a closed sub-expression several facts share (the patient's Observations of
   * one code, the orders in one drug set), so a CQL engine computes it once; returns its quoted name.
   */
  shared(name: string, cql: string): string;
}

interface Ctx {
  /** The focus ($this) for identifiers and functions without an explicit input. */
  focus?: CqlNode;
  fresh(): string;
}

interface Ast {
  type: string;
  text?: string;
  value?: string;
  unit?: string;
  children?: Ast[];
}

const SYS = (name: string): Ty => ({ k: 'sys', name });
const BOOL = SYS('Boolean');
const node = (cql: string, ty: Ty, many = false): CqlNode => ({ cql, ty, many });

/** FHIRPath type names (ofType, as) of primitives → the System type their values have in CQL. */
const PRIMITIVE_SYSTEM: Record<string, string> = {
  boolean: 'Boolean',
  integer: 'Integer',
  positiveInt: 'Integer',
  unsignedInt: 'Integer',
  decimal: 'Decimal',
  string: 'String',
  code: 'String',
  id: 'String',
  uri: 'String',
  url: 'String',
  canonical: 'String',
  markdown: 'String',
  oid: 'String',
  uuid: 'String',
  base64Binary: 'String',
  date: 'Date',
  dateTime: 'DateTime',
  instant: 'DateTime',
  time: 'Time',
};

const CALENDAR_UNITS = new Set([
  'year', 'years', 'month', 'months', 'week', 'weeks', 'day', 'days', 'hour', 'hours', 'minute', 'minutes', 'second', 'seconds', 'millisecond', 'milliseconds',
]);

/**
 * CQL's reserved words that a FHIR element may be named (Timing.repeat.duration, .when): after a dot they must be a
 * quoted identifier, or the translator reads the keyword ("duration in days of") and fails. The keywords CQL also
 * takes as identifiers (start, end, code, display) stay as they are.
 */
const CQL_RESERVED = new Set(['duration', 'when', 'interval', 'between', 'where', 'with', 'without', 'such', 'from', 'let', 'sort', 'return', 'all', 'distinct', 'if', 'then', 'else', 'case', 'is', 'as', 'in', 'and', 'or', 'xor', 'not', 'null', 'true', 'false', 'exists', 'div', 'mod', 'union', 'intersect', 'except', 'implies', 'before', 'after', 'within', 'during', 'singleton', 'width', 'minimum', 'maximum', 'timezone']);

/** An element name as a CQL member: quoted when it is a reserved word ({@link CQL_RESERVED}). */
function memberName(name: string): string {
  return CQL_RESERVED.has(name) ? `"${name}"` : name;
}

/** Parenthesises CQL unless it is a plain identifier, quoted identifier, literal or dotted path. */
const P = (cql: string) => (/^(?:[A-Za-z_][\w]*|"[^"]+"|'[^']*'|-?\d+(?:\.\d+)?)(?:\.[A-Za-z_]\w*)*$/.test(cql) ? cql : `(${cql})`);

/** The CQL type specifier of a translated expression's type (`FHIR.Coding`, `System.Decimal`, `Choice<...>`, `List<...>`). */
export function cqlType(ty: Ty): string {
  switch (ty.k) {
    case 'fhir':
      return `FHIR.${ty.name}`;
    case 'sys':
      return `System.${ty.name}`;
    case 'null':
      return 'System.Any';
    case 'choice':
      throw new Untranslatable(`a choice of ${ty.options.join(' | ')} needs ofType() to say which type is meant`);
  }
}

const tyText = (ty: Ty) => (ty.k === 'choice' ? `choice(${ty.options.join('|')})` : ty.k === 'null' ? 'empty' : ty.name);

/** The collection as a CQL List (a single value becomes a List of it, or an empty List). */
function asList(n: CqlNode, ctx: Ctx): string {
  if (n.many) return n.cql;
  if (n.ty.k === 'null') return 'List<System.Any>{}';
  if (n.literal !== undefined) return `{ ${n.cql} }`;
  const a = ctx.fresh();
  return `({ ${n.cql} }) ${a} where ${a} is not null`;
}

/** The collection as one value: FHIRPath raises an error for more than one item, and so does `singleton from`. */
function one(n: CqlNode): string {
  return n.many ? `singleton from ${P(n.cql)}` : n.cql;
}

/** A window's day (`recent()`, `maybeRecent()`): a Date as it is, a String (an instant's text) as its date. */
function windowDay(arg: CqlNode, fn: string): string {
  if (arg.ty.k === 'sys' && arg.ty.name === 'Date') return one(arg);
  if (arg.ty.k === 'sys' && arg.ty.name === 'String') return `ToDate(${one(arg)})`;
  throw new Untranslatable(`${fn}() from a ${tyText(arg.ty)}`);
}

/** A criterion (where, iif, and/or operands) as one Boolean. */
function truth(n: CqlNode): string {
  if (n.ty.k === 'null') return 'null as System.Boolean';
  if (!(n.ty.k === 'sys' && n.ty.name === 'Boolean')) throw new Untranslatable(`a criterion of type ${tyText(n.ty)} is not a Boolean`);
  return one(n);
}

function unify(a: Ty, b: Ty): Ty {
  if (a.k === 'null') return b;
  if (b.k === 'null') return a;
  if (a.k === 'sys' && b.k === 'sys' && a.name !== b.name) {
    const nums = new Set(['Integer', 'Decimal']);
    if (nums.has(a.name) && nums.has(b.name)) return SYS('Decimal');
    throw new Untranslatable(`cannot combine ${a.name} and ${b.name}`);
  }
  if (a.k === 'fhir' && b.k === 'fhir' && a.name !== b.name) throw new Untranslatable(`cannot combine ${a.name} and ${b.name}`);
  return a;
}

/** The identifier text of a (possibly delimited) FHIRPath identifier. */
function identifier(ast: Ast): string {
  const t = ast.text ?? '';
  return t.startsWith('`') ? t.slice(1, -1) : t;
}

/** The type name an ofType()/is/as argument names (`Quantity`, `FHIR.Quantity`, `System.String`). */
function typeName(ast: Ast): string {
  const parts: string[] = [];
  const walk = (a: Ast) => {
    if (a.type === 'Identifier') parts.push(identifier(a));
    else (a.children ?? []).forEach(walk);
  };
  walk(ast);
  const name = parts.join('.');
  return name.replace(/^(FHIR|System)\./, '');
}

const cqlString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** fhirpath.js's string literal text (quotes and FHIRPath escapes) → its value. */
function stringValue(text: string): string {
  return text.slice(1, -1).replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_m, e: string) => {
    if (e.startsWith('u') && e.length === 5) return String.fromCharCode(parseInt(e.slice(1), 16));
    return { n: '\n', r: '\r', t: '\t', f: '\f' }[e] ?? e;
  });
}

/**
 * Translates a policy fact's FHIRPath (fhirpath.js's parse tree) into CQL over the FHIR 4.0.1 model, so DTR 2.0.1
 * clients get CQL and ELM computing what the server's FHIRPath computes (docs/design.md §7; CQL 1.5 Author's Guide).
 */
/** Whether every query alias or let (X1, X2, …) a CQL expression names is declared in it (`(source) X1`, `let X2:`): no outer one. */
function closedQuery(cql: string): boolean {
  return [...new Set(cql.match(/\bX\d+\b/g) ?? [])].every((x) => new RegExp(`(\\) |let )${x}\\b`).test(cql));
}

/** A parse tree without its source positions, so that one spelling of an expression compares equal wherever it is written. */
function positionless(ast: Ast): string {
  return JSON.stringify(ast, (k, v: unknown) => (k === 'length' || k === 'atRoot' || (k === 'start' && typeof v === 'object') ? undefined : v));
}

/**
 * The start of an order (a MedicationRequest in focus) as the course facts spell it: its first dosage's planned start,
 * else its validity start, else `authoredOn` (design.md §6 "Cycles"). Translated to the helper "MedicationRequest
 * Start" (cql-library-source.ts), the same union and first().
 */
const ORDER_START = positionless(
  (fhirpath.parse('(dosageInstruction.first().timing.repeat.bounds.ofType(Period).start | dispenseRequest.validityPeriod.start | authoredOn).first()') as unknown as Ast)
    .children![0].children![0],
);

export class FhirPathToCql {
  private counter = 0;

  constructor(private readonly env: TranslationEnv) {}

  /** Translates one FHIRPath expression whose context resource ($this at the top) is `focus`. */
  translate(expression: string, focus: CqlNode): CqlNode {
    let ast: Ast;
    try {
      ast = fhirpath.parse(expression) as unknown as Ast;
    } catch (err) {
      throw new Untranslatable(`FHIRPath does not parse: ${(err as Error).message}`);
    }
    const ctx: Ctx = { focus, fresh: () => `X${++this.counter}` };
    return this.visit(ast, ctx);
  }

  private visit(ast: Ast, ctx: Ctx): CqlNode {
    const c = ast.children ?? [];
    switch (ast.type) {
      case 'EntireExpression':
      case 'TermExpression':
      case 'InvocationTerm':
      case 'ParenthesizedTerm':
      case 'LiteralTerm':
        return this.visit(c[0], ctx);
      case 'ExternalConstantTerm': {
        const k = c[0]?.children?.[0];
        const name = k?.type === 'StringLiteral' ? stringValue(k.text ?? "''") : identifier(k ?? { type: 'Identifier' });
        return this.env.variable(name);
      }
      case 'NullLiteral':
        return node('null', { k: 'null' });
      case 'BooleanLiteral':
        return { ...node(ast.text === 'true' ? 'true' : 'false', BOOL), literal: ast.text };
      case 'StringLiteral': {
        const v = stringValue(ast.text ?? "''");
        return { ...node(cqlString(v), SYS('String')), literal: v };
      }
      case 'NumberLiteral': {
        const t = ast.text ?? '0';
        return { ...node(t, SYS(t.includes('.') ? 'Decimal' : 'Integer')), literal: Number(t) };
      }
      case 'DateLiteral':
        return node(ast.text ?? '', SYS('Date'));
      case 'DateTimeLiteral':
        return node(ast.text ?? '', SYS('DateTime'));
      case 'QuantityLiteral': {
        const unit = ast.unit ?? '';
        if (CALENDAR_UNITS.has(unit)) return node(`${ast.value} ${unit}`, SYS('Quantity'));
        return node(`${ast.value} ${unit.startsWith("'") ? unit : cqlString(unit)}`, SYS('Quantity'));
      }
      case 'ThisInvocation':
        if (!ctx.focus) throw new Untranslatable('$this outside a focus');
        return ctx.focus;
      case 'MemberInvocation':
        if (!ctx.focus) throw new Untranslatable(`${identifier(c[0])} has no focus`);
        return this.member(ctx.focus, identifier(c[0]), ctx);
      case 'FunctionInvocation':
        return this.call(ctx.focus, c[0], ctx);
      case 'InvocationExpression': {
        const step = c[1];
        // An order's start as every course fact spells it (ORDER_START): one helper call, not the union written out
        // again at each of its many sites, which the OHSU Library's ELM could no longer afford (design.md §7).
        if (ctx.focus && !ctx.focus.many && ctx.focus.ty.k === 'fhir' && ctx.focus.ty.name === 'MedicationRequest' && positionless(ast) === ORDER_START) {
          const written = this.call(this.visit(c[0], ctx), step.children![0], ctx);
          return node(`${this.env.helper('MedicationRequest Start')}(${ctx.focus.cql})`, written.ty, written.many);
        }
        const input = this.visit(c[0], ctx);
        if (step.type === 'MemberInvocation') return this.member(input, identifier(step.children![0]), ctx);
        if (step.type === 'FunctionInvocation') return this.call(input, step.children![0], ctx);
        throw new Untranslatable(`${step.type} is not translated`);
      }
      case 'IndexerExpression': {
        const input = this.visit(c[0], ctx);
        const index = this.visit(c[1], ctx);
        if (!input.many) return node(`if ${one(index)} = 0 then ${input.cql} else null`, input.ty);
        return node(`${P(input.cql)}[${one(index)}]`, input.ty);
      }
      case 'PolarityExpression': {
        const v = this.visit(c[0], ctx);
        return ast.text === '-' ? node(`-${P(one(v))}`, v.ty) : v;
      }
      case 'MultiplicativeExpression':
      case 'AdditiveExpression':
        return this.arithmetic(ast.text ?? '', this.visit(c[0], ctx), this.visit(c[1], ctx));
      case 'UnionExpression':
        return this.union(this.visit(c[0], ctx), this.visit(c[1], ctx), ctx);
      case 'InequalityExpression':
      case 'EqualityExpression': {
        const a = this.visit(c[0], ctx);
        const b = this.visit(c[1], ctx);
        if (a.ty.k === 'null' || b.ty.k === 'null') return node('null as System.Boolean', BOOL);
        return node(`${P(one(a))} ${ast.text} ${P(one(b))}`, BOOL);
      }
      case 'MembershipExpression': {
        const [l, r] = ast.text === 'in' ? [c[0], c[1]] : [c[1], c[0]];
        return this.membership(this.visit(l, ctx), this.visit(r, ctx));
      }
      case 'AndExpression':
      case 'OrExpression':
      case 'ImpliesExpression': {
        const a = truth(this.visit(c[0], ctx));
        const b = truth(this.visit(c[1], ctx));
        return node(`${P(a)} ${ast.text} ${P(b)}`, BOOL);
      }
      default:
        throw new Untranslatable(`${ast.type} is not translated`);
    }
  }

  /** A path step: `input.name`, across lists, choices and FHIR primitives. */
  private member(input: CqlNode, name: string, ctx: Ctx): CqlNode {
    const ty = input.ty;
    if (ty.k === 'choice') {
      const holders = ty.options.filter((o) => this.env.model.element(o, name));
      if (holders.length !== 1) throw new Untranslatable(`${name} of a choice of ${ty.options.join(' | ')} is ambiguous`);
      return this.member(this.cast(input, holders[0], ctx), name, ctx);
    }
    if (ty.k !== 'fhir') throw new Untranslatable(`${name} of a ${tyText(ty)} value`);
    // %medications carries a referenced Medication's code in place of the reference (evaluation-data.ts
    // withMedicationCode); the CQL reads the drug the same way through "Medication Concept".
    if (ty.name === 'MedicationRequest' && name === 'medication') {
      const fn = this.env.helper('Medication Concept');
      const concept = { k: 'fhir', name: 'CodeableConcept' } as const;
      if (!input.many) return node(`${fn}(${input.cql})`, concept);
      const a = ctx.fresh();
      const v = ctx.fresh();
      return node(`(${input.cql}) ${a} let ${v}: ${fn}(${a}) where ${v} is not null return all ${v}`, concept, true);
    }
    // The server reads ICD-10 diagnosis codes in FHIR's spelling (evaluation-data.ts canonicalConcept); so does the CQL.
    if (ty.name === 'Coding' && name === 'code') {
      const fn = this.env.helper('Coding Code');
      if (!input.many) return node(`${fn}(${input.cql})`, SYS('String'));
      const a = ctx.fresh();
      const v = ctx.fresh();
      return node(`(${input.cql}) ${a} let ${v}: ${fn}(${a}) where ${v} is not null return all ${v}`, SYS('String'), true);
    }
    const el = this.env.model.element(ty.name, name);
    if (!el) throw new Untranslatable(`${ty.name} has no element ${name}`);
    let out: Ty;
    let suffix = '';
    if (el.choices) out = { k: 'choice', options: el.choices };
    else if (el.type!.startsWith('System.')) out = SYS(el.type!.slice(7));
    else {
      const cls = el.type!.replace(/^FHIR\./, '');
      const prim = this.env.model.primitiveValue(cls);
      if (prim) {
        out = SYS(prim);
        suffix = '.value';
      } else out = { k: 'fhir', name: cls };
    }
    const member = memberName(name);
    const path = (x: string) => `${P(x)}.${member}`;
    if (!input.many && !el.list) return node(`${path(input.cql)}${suffix}`, out);
    if (!input.many && el.list) {
      if (!suffix) return node(path(input.cql), out, true);
      const b = ctx.fresh();
      return node(`(${path(input.cql)}) ${b} where ${b}${suffix} is not null return all ${b}${suffix}`, out, true);
    }
    const a = ctx.fresh();
    if (!el.list) return node(`(${input.cql}) ${a} where ${a}.${member}${suffix} is not null return all ${a}.${member}${suffix}`, out, true);
    const flat = `Flatten((${input.cql}) ${a} where ${a}.${member} is not null return all ${a}.${member})`;
    if (!suffix) return node(flat, out, true);
    const b = ctx.fresh();
    return node(`(${flat}) ${b} where ${b}${suffix} is not null return all ${b}${suffix}`, out, true);
  }

  /** `input as FHIR.<type>` for a choice, with the primitive unwrapped. */
  private cast(input: CqlNode, type: string, ctx: Ctx): CqlNode {
    const prim = PRIMITIVE_SYSTEM[type];
    const out: Ty = prim ? SYS(prim) : { k: 'fhir', name: type };
    const suffix = prim ? '.value' : '';
    if (!input.many) return node(`(${P(input.cql)} as FHIR.${type})${suffix}`, out);
    const a = ctx.fresh();
    return node(`(${input.cql}) ${a} where ${a} is FHIR.${type} return all (${a} as FHIR.${type})${suffix}`, out, true);
  }

  private ofType(input: CqlNode, type: string, ctx: Ctx): CqlNode {
    const ty = input.ty;
    if (ty.k === 'null') return input;
    if (ty.k === 'choice') {
      const matches = ty.options.filter((o) => o === type || this.env.model.isA(o, type));
      if (matches.length === 0) return node('null', { k: 'null' });
      if (matches.length > 1) throw new Untranslatable(`ofType(${type}) matches several choices (${matches.join(', ')})`);
      return this.cast(input, matches[0], ctx);
    }
    if (ty.k === 'sys') return PRIMITIVE_SYSTEM[type] === ty.name || type === ty.name ? input : node('null', { k: 'null' });
    if (this.env.model.isA(ty.name, type)) return input;
    if (this.env.model.isA(type, ty.name)) return this.cast(input, type, ctx);
    return node('null', { k: 'null' });
  }

  private arithmetic(op: string, a: CqlNode, b: CqlNode): CqlNode {
    if (a.ty.k === 'null' || b.ty.k === 'null') return node('null', { k: 'null' });
    const x = P(one(a));
    const y = P(one(b));
    const an = a.ty.k === 'sys' ? a.ty.name : '';
    const bn = b.ty.k === 'sys' ? b.ty.name : '';
    if (op === '&') return node(`${x} & ${y}`, SYS('String'));
    if (['Date', 'DateTime'].includes(an) && bn === 'Quantity') return node(`${x} ${op} ${y}`, a.ty);
    if (op === '/') return node(`${x} / ${y}`, SYS('Decimal'));
    if (op === 'div' || op === 'mod') return node(`${x} ${op} ${y}`, an === 'Integer' && bn === 'Integer' ? SYS('Integer') : SYS('Decimal'));
    if (an === 'String' && bn === 'String' && op === '+') return node(`${x} + ${y}`, SYS('String'));
    if (!['Integer', 'Decimal'].includes(an) || !['Integer', 'Decimal'].includes(bn)) throw new Untranslatable(`${an || tyText(a.ty)} ${op} ${bn || tyText(b.ty)}`);
    return node(`${x} ${op} ${y}`, an === 'Integer' && bn === 'Integer' ? SYS('Integer') : SYS('Decimal'));
  }

  private union(a: CqlNode, b: CqlNode, ctx: Ctx): CqlNode {
    if (a.ty.k === 'null') return b.many ? b : node(asList(b, ctx), b.ty, true);
    if (b.ty.k === 'null') return a.many ? a : node(asList(a, ctx), a.ty, true);
    const ty = unify(a.ty, b.ty);
    const literals = (n: CqlNode) => (n.literal !== undefined ? [n.cql] : n.literals);
    const la = literals(a);
    const lb = literals(b);
    if (la && lb) {
      const items = [...new Set([...la, ...lb])];
      return { ...node(`{ ${items.join(', ')} }`, ty, true), literals: items };
    }
    return node(`${P(asList(a, ctx))} union ${P(asList(b, ctx))}`, ty, true);
  }

  /** A filter of a define (closed: no query alias in it) becomes a define of its own, named after what it keeps. */
  private share(input: CqlNode, what: string | ((cql: string) => string), out: CqlNode): CqlNode {
    const m = input.cql.match(/^"([^"]+)"$/);
    if (!m) return out;
    // Aliases renumbered from 1, so the same filter written in two facts is the same define.
    const names = new Map<string, string>();
    const cql = out.cql.replace(/\bX\d+\b/g, (x) => {
      if (!names.has(x)) names.set(x, `R${names.size + 1}`);
      return names.get(x)!;
    });
    const label = typeof what === 'string' ? what : what(cql);
    return node(this.env.shared(`${m[1]} ${label.replace(/"/g, "'")}`, cql), out.ty, true);
  }

  /** `x in list`: empty when x is empty (FHIRPath), where CQL's In would say false. */
  private membership(x: CqlNode, list: CqlNode): CqlNode {
    if (x.ty.k === 'null') return node('null as System.Boolean', BOOL);
    const items = list.many ? list.cql : list.ty.k === 'null' ? null : `{ ${list.cql} }`;
    if (items === null) return node(`if ${P(one(x))} is null then null else false`, BOOL);
    if (x.literal !== undefined) return node(`${x.cql} in ${P(items)}`, BOOL);
    return node(`if ${P(one(x))} is null then null else ${P(one(x))} in ${P(items)}`, BOOL);
  }

  /** The CQL of a resource's coded concept (what `coded()`/`codedIn()` read: code, vaccineCode or the drug). */
  private conceptOf(resource: string, alias: string): string {
    switch (resource) {
      case 'Observation':
      case 'Condition':
        return `${alias}.code`;
      case 'Immunization':
        return `${alias}.vaccineCode`;
      case 'MedicationRequest':
        return `${this.env.helper('Medication Concept')}(${alias})`;
      default:
        throw new Untranslatable(`coded()/codedIn() over ${resource}`);
    }
  }

  /**
   * Membership of one concept in a value set (fhirpath.ts memberOf/codedIn): by a listed code, its system and code
   * normalised as value-sets.ts does, or (drug sets) by a listed name in its text or displays.
   */
  private inValueSet(concept: string, conceptType: string, ref: string): string {
    const vs = this.env.valueSet(ref);
    const codes = this.env.helper('Coding Codes');
    const byCode = (coding: string) => `exists ((${codes}(${coding})) K where K in ${vs.identifier})`;
    if (conceptType === 'Coding') return byCode(concept);
    const x = `X${++this.counter}`;
    const coded = `exists ((${concept}.coding) ${x} where ${byCode(x)})`;
    if (vs.names.length === 0) return coded;
    return `(${coded} or ${this.env.helper('Names Match')}(${concept}, { ${vs.names.map(cqlString).join(', ')} }))`;
  }

  private stringArg(args: Ast[], i: number, ctx: Ctx, fn: string): string {
    const a = args[i];
    if (!a) throw new Untranslatable(`${fn}() needs argument ${i + 1}`);
    const v = this.visit(a, ctx);
    if (typeof v.literal !== 'string') throw new Untranslatable(`${fn}() needs a literal string argument`);
    return v.literal;
  }

  private numberArg(args: Ast[], i: number, ctx: Ctx, fn: string): number {
    const v = args[i] ? this.visit(args[i], ctx) : undefined;
    if (typeof v?.literal !== 'number') throw new Untranslatable(`${fn}() needs a literal number argument`);
    return v.literal;
  }

  /** A function call; `input` is the collection it is invoked on (the focus when written without one). */
  private call(input: CqlNode | undefined, fn: Ast, ctx: Ctx): CqlNode {
    const name = identifier(fn.children![0]);
    const args = fn.children![1]?.children ?? [];
    const within = (n: CqlNode, body: Ast): { alias: string; value: CqlNode } => {
      const alias = ctx.fresh();
      const value = this.visit(body, { ...ctx, focus: node(alias, n.ty) });
      return { alias, value };
    };
    if (name === 'iif') {
      const cond = truth(this.visit(args[0], ctx));
      const a = this.visit(args[1], ctx);
      const b = args[2] ? this.visit(args[2], ctx) : node('null', { k: 'null' });
      const ty = unify(a.ty, b.ty);
      if (a.many || b.many) {
        const empty = ty.k === 'null' ? 'List<System.Any>{}' : `List<${cqlType(ty)}>{}`;
        const la = a.ty.k === 'null' ? empty : asList(a, ctx);
        const lb = b.ty.k === 'null' ? empty : asList(b, ctx);
        return node(`if ${P(cond)} then ${P(la)} else ${P(lb)}`, ty, true);
      }
      const nullOf = (n: CqlNode) => (n.ty.k === 'null' && ty.k !== 'null' ? `null as ${cqlType(ty)}` : n.cql);
      return node(`if ${P(cond)} then ${P(nullOf(a))} else ${P(nullOf(b))}`, ty);
    }
    if (!input) throw new Untranslatable(`${name}() has no input`);
    const n = input;
    if (n.ty.k === 'null' && !['exists', 'empty', 'count', 'all', 'memberOf'].includes(name)) return n;

    switch (name) {
      case 'where': {
        const { alias, value } = within(n, args[0]);
        const out = node(`(${n.cql}) ${alias} where ${truth(value)}`, n.ty, n.many);
        // A filter of a define (the patient's orders themselves, %currentMedications written out:
        // src/policies/current-orders.ts; the results of one code) is a define of its own, so the facts that read it,
        // several times each (a history fact reads its results for the value and again for whether their dates settle
        // it), share one copy in the Library. A FHIRPath where() sees only its own $this and %variables, so the filter
        // is closed unless its translation names a query alias it does not declare.
        return /^"[^"]+"$/.test(n.cql) && closedQuery(out.cql) ? this.share(n, (cql) => `where ${shortHash(cql)}`, out) : out;
      }
      case 'select': {
        const { alias, value } = within(n, args[0]);
        if (value.ty.k === 'null') return node('null', { k: 'null' });
        const v = ctx.fresh();
        if (!n.many) return node(`(${n.cql}) ${alias} let ${v}: ${value.cql} return ${v}`, value.ty, value.many);
        const q = `(${n.cql}) ${alias} let ${v}: ${value.cql} where ${v} is not null return all ${v}`;
        const out = node(value.many ? `Flatten(${q})` : q, value.ty, true);
        // What a define's items say (the dates of one code's results), shared as where() is.
        return /^"[^"]+"$/.test(n.cql) && closedQuery(out.cql) ? this.share(n, (cql) => `select ${shortHash(cql)}`, out) : out;
      }
      case 'exists': {
        const src = args[0] ? this.call(n, { type: 'Functn', children: [{ type: 'Identifier', text: 'where' }, fn.children![1]] }, ctx) : n;
        if (src.ty.k === 'null') return node('false', BOOL);
        return node(src.many ? `exists ${P(src.cql)}` : `${P(src.cql)} is not null`, BOOL);
      }
      case 'empty':
        if (n.ty.k === 'null') return node('true', BOOL);
        return node(n.many ? `not exists ${P(n.cql)}` : `${P(n.cql)} is null`, BOOL);
      case 'count':
        if (n.ty.k === 'null') return node('0', SYS('Integer'));
        return node(n.many ? `Count(${n.cql})` : `if ${P(n.cql)} is null then 0 else 1`, SYS('Integer'));
      case 'first':
      case 'single':
        return n.many ? node(name === 'first' ? `First(${n.cql})` : `singleton from ${P(n.cql)}`, n.ty) : n;
      case 'last':
        return n.many ? node(`Last(${n.cql})`, n.ty) : n;
      case 'sum':
      case 'max':
      case 'min':
        return node(`${{ sum: 'Sum', max: 'Max', min: 'Min' }[name]}(${asList(n, ctx)})`, n.ty);
      case 'distinct':
        return n.many ? node(`distinct ${P(n.cql)}`, n.ty, true) : n;
      case 'not':
        return node(`not ${P(truth(n))}`, BOOL);
      case 'all': {
        if (n.ty.k === 'null') return node('true', BOOL);
        const { alias, value } = within(n, args[0]);
        return node(`not exists ((${asList(n, ctx)}) ${alias} where ${P(truth(value))} is not true)`, BOOL);
      }
      case 'ofType':
        return this.ofType(n, typeName(args[0]), ctx);
      case 'exclude': {
        const other = this.visit(args[0], ctx);
        const a = ctx.fresh();
        if (n.ty.k === 'fhir') {
          const b = ctx.fresh();
          // Resources are the same item when they are the same record (id): fhirpath.js compares them whole.
          return node(`(${asList(n, ctx)}) ${a} where not exists ((${asList(other, ctx)}) ${b} where ${b}.id.value = ${a}.id.value)`, n.ty, true);
        }
        return node(`(${asList(n, ctx)}) ${a} where not (${a} in ${P(asList(other, ctx))})`, n.ty, true);
      }
      case 'union':
        return this.union(n, this.visit(args[0], ctx), ctx);
      case 'toString': {
        if (n.many) return this.call(node(one(n), n.ty), fn, ctx);
        if (n.ty.k === 'sys' && n.ty.name === 'String') return n;
        if (n.ty.k === 'sys') return node(`ToString(${n.cql})`, SYS('String'));
        throw new Untranslatable(`toString() of ${tyText(n.ty)}`);
      }
      case 'toDate': {
        const v = one(n);
        if (n.ty.k === 'sys' && n.ty.name === 'Date') return node(v, n.ty);
        if (n.ty.k === 'sys' && n.ty.name === 'String') return node(`ToDate(${v})`, SYS('Date'));
        // fhirpath.js gives empty for toDate() of a dateTime (cds-services/README.md "Two FHIRPath traps").
        if (n.ty.k === 'sys' && n.ty.name === 'DateTime') return node('null as System.Date', SYS('Date'));
        throw new Untranslatable(`toDate() of ${tyText(n.ty)}`);
      }
      case 'toDateTime': {
        const v = one(n);
        if (n.ty.k === 'sys' && n.ty.name === 'DateTime') return node(v, n.ty);
        if (n.ty.k === 'sys' && (n.ty.name === 'String' || n.ty.name === 'Date')) return node(`ToDateTime(${v})`, SYS('DateTime'));
        throw new Untranslatable(`toDateTime() of ${tyText(n.ty)}`);
      }
      case 'lower':
      case 'upper':
        return node(`${name === 'lower' ? 'Lower' : 'Upper'}(${one(n)})`, SYS('String'));
      case 'length':
        return node(`Length(${one(n)})`, SYS('Integer'));
      case 'contains':
        return node(`PositionOf(${cqlString(this.stringArg(args, 0, ctx, name))}, ${one(n)}) >= 0`, BOOL);
      case 'startsWith':
        return node(`StartsWith(${one(n)}, ${cqlString(this.stringArg(args, 0, ctx, name))})`, BOOL);
      case 'endsWith':
        return node(`EndsWith(${one(n)}, ${cqlString(this.stringArg(args, 0, ctx, name))})`, BOOL);
      case 'matches':
        // FHIRPath matches() finds the pattern anywhere; CQL Matches() must match the whole string.
        return node(`Matches(${one(n)}, ${cqlString(`.*(?:${this.stringArg(args, 0, ctx, name)}).*`)})`, BOOL);
      case 'replaceMatches':
        // Both replace every match (fhirpath.js and cql-execution use a global JavaScript RegExp).
        return node(
          `ReplaceMatches(${one(n)}, ${cqlString(this.stringArg(args, 0, ctx, name))}, ${cqlString(this.stringArg(args, 1, ctx, name))})`,
          SYS('String'),
        );
      case 'substring': {
        const start = this.numberArg(args, 0, ctx, name);
        const len = args[1] ? `, ${this.numberArg(args, 1, ctx, name)}` : '';
        return node(`Substring(${one(n)}, ${start}${len})`, SYS('String'));
      }
      case 'sqrt':
        return node(`Power(${P(one(n))}, 0.5)`, SYS('Decimal'));
      case 'floor':
      case 'ceiling':
        return node(`${name === 'floor' ? 'Floor' : 'Ceiling'}(${one(n)})`, SYS('Integer'));
      case 'abs':
        return node(`Abs(${one(n)})`, n.ty);
      case 'round':
        return node(`Round(${one(n)}${args[0] ? `, ${this.numberArg(args, 0, ctx, name)}` : ''})`, SYS('Decimal'));
      case 'hasValue':
        return node(`${P(one(n))} is not null`, BOOL);
      case 'memberOf': {
        if (n.ty.k === 'null') return node('null as System.Boolean', BOOL);
        if (n.ty.k !== 'fhir' || !['CodeableConcept', 'Coding'].includes(n.ty.name)) throw new Untranslatable(`memberOf() of ${tyText(n.ty)}`);
        const ref = this.stringArg(args, 0, ctx, name);
        const a = ctx.fresh();
        const test = this.inValueSet(a, n.ty.name, ref);
        // true when any input is in the set, empty for an empty input (fhirpath.ts memberOf).
        if (!n.many) return node(`(${n.cql}) ${a} return ${test}`, BOOL);
        return node(`if exists ${P(n.cql)} then exists ((${n.cql}) ${a} where ${test}) else null`, BOOL);
      }
      case 'coded': {
        if (n.ty.k !== 'fhir') throw new Untranslatable(`coded() of ${tyText(n.ty)}`);
        const system = this.stringArg(args, 0, ctx, name);
        const code = this.stringArg(args, 1, ctx, name);
        const a = ctx.fresh();
        const x = ctx.fresh();
        return this.share(
          n,
          `coded ${system}|${code}`,
          node(
            `(${asList(n, ctx)}) ${a} where exists ((${this.conceptOf(n.ty.name, a)}.coding) ${x} where ${x}.system.value = ${cqlString(system)} and ${this.env.helper('Coding Code')}(${x}) = ${cqlString(code)})`,
            n.ty,
            true,
          ),
        );
      }
      case 'codedIn': {
        if (n.ty.k !== 'fhir') throw new Untranslatable(`codedIn() of ${tyText(n.ty)}`);
        const argNode = this.visit(args[0], ctx);
        if (typeof argNode.literal !== 'string') throw new Untranslatable('codedIn() needs a value set id');
        const a = ctx.fresh();
        return this.share(
          n,
          `in ${argNode.literal}`,
          node(`(${asList(n, ctx)}) ${a} where ${this.inValueSet(this.conceptOf(n.ty.name, a), 'CodeableConcept', argNode.literal)}`, n.ty, true),
        );
      }
      case 'recent': {
        if (n.ty.k !== 'fhir') throw new Untranslatable(`recent() of ${tyText(n.ty)}`);
        const days = this.numberArg(args, 1, ctx, name);
        const dayOf = (arg: CqlNode) => windowDay(arg, 'recent');
        const from = dayOf(this.visit(args[0], ctx));
        // The upper end (fhirpath.ts recent: `until`), none when it is null (an order stating no start: %orderStart).
        const until = args.length > 2 ? dayOf(this.visit(args[2], ctx)) : undefined;
        const a = ctx.fresh();
        const day = `${this.env.helper(`${n.ty.name} Date`)}(${a})`;
        const upTo = until === undefined ? '' : ` and (${P(until)} is null or ${day} <= ${P(until)})`;
        const recent = node(`(${asList(n, ctx)}) ${a} where ${day} >= ${P(from)} - ${days} days${upTo}`, n.ty, true);
        return from === '"Order Date"' && (until === undefined || until === '"Order Start"')
          ? this.share(n, until === undefined ? `within ${days} days` : `within ${days} days up to the stated start`, recent)
          : recent;
      }
      case 'statedDay': {
        // fhirpath.ts statedDay: the date each Observation or Condition states, up to the day, by one helper per type
        // (cql-library-source.ts "Observation Stated Day", "Condition Stated Day"), so every history fact reads the
        // same precedence.
        if (n.ty.k !== 'fhir' || !['Observation', 'Condition'].includes(n.ty.name)) throw new Untranslatable(`statedDay() of ${tyText(n.ty)}`);
        if (args.length !== 0) throw new Untranslatable('statedDay() takes no argument');
        const day = this.env.helper(`${n.ty.name} Stated Day`);
        if (!n.many) return node(`${day}(${n.cql})`, SYS('String'));
        const a = ctx.fresh();
        const d = ctx.fresh();
        return node(`((${n.cql}) ${a} return ${day}(${a})) ${d} where ${d} is not null`, SYS('String'), true);
      }
      case 'maybeRecent': {
        // fhirpath.ts maybeRecent: a helper per resource type (cql-library-source.ts), the list read once.
        if (n.ty.k !== 'fhir' || !['Observation', 'Immunization'].includes(n.ty.name)) throw new Untranslatable(`maybeRecent() of ${tyText(n.ty)}`);
        if (args.length !== 3) throw new Untranslatable('maybeRecent() needs a date, a number of days and an upper end');
        const days = this.numberArg(args, 1, ctx, name);
        const dayOf = (arg: CqlNode) => windowDay(arg, 'maybeRecent');
        const from = dayOf(this.visit(args[0], ctx));
        const until = dayOf(this.visit(args[2], ctx));
        return node(`${this.env.helper(`${n.ty.name} Maybe Recent`)}(${asList(n, ctx)}, ${P(from)} - ${days} days, ${until})`, n.ty, true);
      }
      default:
        throw new Untranslatable(`the function ${name}() is not translated`);
    }
  }
}

/** A short, stable name for a shared filter: the first 8 hex digits of its CQL's SHA-256. */
function shortHash(cql: string): string {
  return createHash('sha256').update(cql).digest('hex').slice(0, 8);
}
