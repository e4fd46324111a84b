import { readdirSync, existsSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { ZodError } from 'zod';
import { readYamlFile } from '../content-yaml.js';
import { factClosure } from './fact-closure.js';
import { compileFhirPath, referencedValueSets, resolveValueSetUrl } from '../fhir/fhirpath.js';
import type { FhirPathOptions } from '../fhir/fhirpath.js';
import type { ValueSetIndex } from '../fhir/value-sets.js';
import { expandMedicationMacros, CURRENT_MEDICATIONS_VARIABLE, REGIMEN_MEDICATIONS_VARIABLE, MEDICATIONS_BEFORE_VARIABLE } from './current-orders.js';
import { applicabilityOf, passesWhenUnknown, splitTopLevel } from './limit-applicability.js';
import type { CompiledFact, CompiledPolicy, CompiledRule, RuleKind } from './compiled-policy.js';
import { factLibrarySchema, policySchema } from './policy-schema.js';
import type { FactDefinition, PolicyFile } from './policy-schema.js';

/** Variables every fact expression can read; facts may not take these names. */
export const RESERVED_VARIABLES = [
  'order',
  'patient',
  'coverage',
  'user',
  'conditions',
  'observations',
  'medications',
  'requestOrdersBefore',
  'requestOrdersBeforeAny',
  CURRENT_MEDICATIONS_VARIABLE,
  REGIMEN_MEDICATIONS_VARIABLE,
  MEDICATIONS_BEFORE_VARIABLE,
  'immunizations',
  'diagnoses',
  'diagnosesComplete',
  'policyDrug',
  'orderDate',
  'orderDateTime',
  'orderStart',
  'today',
  'resource',
  'context',
  'rootResource',
  'ucum',
  'sct',
  'loinc',
] as const;

/** Words of FHIRPath itself that may stand bare in a rule; anything else bare must be a fact name. */
const FHIRPATH_WORDS = new Set([
  'and',
  'or',
  'xor',
  'implies',
  'in',
  'contains',
  'div',
  'mod',
  'is',
  'as',
  'true',
  'false',
  'year',
  'years',
  'month',
  'months',
  'week',
  'weeks',
  'day',
  'days',
  'hour',
  'hours',
  'minute',
  'minutes',
  'second',
  'seconds',
  'millisecond',
  'milliseconds',
  '$this',
  '$index',
  '$total',
]);

/** One content problem, located by file and field (design.md §5: "a criterion that fails to compile stops start-up"). */
export interface ContentProblem {
  file: string;
  field: string;
  message: string;
}

/** Thrown when content does not load; its message lists every problem, one per line. */
export class ContentError extends Error {
  constructor(readonly problems: ContentProblem[]) {
    super(
      `Content failed to load:\n${problems.map((p) => `  ${p.file}: ${p.field}: ${p.message}`).join('\n')}`,
    );
    this.name = 'ContentError';
  }
}

/** Bare identifiers of a rule expression that are not FHIRPath words, functions, members or strings. */
export function bareIdentifiers(expression: string): string[] {
  const stripped = expression.replace(/'(?:[^'\\]|\\.)*'/g, "''").replace(/`[^`]*`/g, '');
  const out = new Set<string>();
  for (const m of stripped.matchAll(/(?<![.%@\w$])([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()/g)) {
    if (!FHIRPATH_WORDS.has(m[1])) out.add(m[1]);
  }
  return [...out];
}

/** `%name` references of a fact expression. */
export function variableReferences(expression: string): string[] {
  const stripped = expression.replace(/'(?:[^'\\]|\\.)*'/g, "''");
  return [...new Set([...stripped.matchAll(/%([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]))];
}

function zodProblems(file: string, err: ZodError): ContentProblem[] {
  return err.issues.map((i) => ({ file, field: i.path.join('.') || '(root)', message: i.message }));
}

/** A content YAML file's data, or undefined with the parser's message recorded as the file's problem. */
function readYaml(path: string, file: string, problems: ContentProblem[]): unknown {
  try {
    return readYamlFile(path);
  } catch (err) {
    problems.push({ file, field: '(yaml)', message: (err as Error).message });
    return undefined;
  }
}

function listYaml(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listYaml(p));
    else if (name.endsWith('.yaml') || name.endsWith('.yml')) out.push(p);
  }
  return out;
}

/** Options for loading the policies of one content root. */
export interface LoadPoliciesOptions {
  /** The `cds-services` directory. */
  root: string;
  valueSets: ValueSetIndex;
  /** CANONICAL_BASE, e.g. https://priorpath.dev/fhir */
  canonicalBase: string;
}

/**
 * Loads, validates and compiles every policy under `<root>/policies`, with the fact libraries under `<root>/facts`.
 * Collects every problem before failing, so an author sees all of them at once.
 */
export function loadPolicies(opts: LoadPoliciesOptions): CompiledPolicy[] {
  const problems: ContentProblem[] = [];
  const rel = (p: string) => relative(join(opts.root, '..'), p);
  const valueSetBase = `${opts.canonicalBase}/ValueSet`;

  const libraries = new Map<string, Record<string, FactDefinition>>();
  for (const path of listYaml(join(opts.root, 'facts'))) {
    const name = path.slice(path.lastIndexOf('/') + 1).replace(/\.ya?ml$/, '');
    const raw = readYaml(path, rel(path), problems);
    if (raw === undefined) continue;
    const parsed = factLibrarySchema.safeParse(raw);
    if (!parsed.success) problems.push(...zodProblems(rel(path), parsed.error));
    else libraries.set(name, parsed.data.facts);
  }

  const policies: CompiledPolicy[] = [];
  for (const path of listYaml(join(opts.root, 'policies'))) {
    const raw = readYaml(path, rel(path), problems);
    if (raw === undefined) continue;
    const parsed = policySchema.safeParse(raw);
    if (!parsed.success) {
      problems.push(...zodProblems(rel(path), parsed.error));
      continue;
    }
    const compiled = compilePolicy(parsed.data, rel(path), libraries, { ...opts, valueSetBase }, problems);
    if (compiled) policies.push(compiled);
  }

  const ids = new Set<string>();
  for (const p of policies) {
    if (ids.has(p.file.id)) problems.push({ file: p.path, field: 'id', message: `duplicate policy id ${p.file.id}` });
    ids.add(p.file.id);
  }
  if (problems.length > 0) throw new ContentError(problems);
  return policies;
}

/**
 * The drug value sets with match names that a fact reads (`codedIn`/`memberOf`, `%policyDrug` included), turned into a
 * test for an order that belongs to one of them by name only. Undefined when the fact reads no such set.
 */
function nameOnlyMatcher(
  expression: string,
  drug: string,
  opts: { valueSets: LoadPoliciesOptions['valueSets']; valueSetBase: string },
): ((order: unknown) => string | undefined) | undefined {
  const urls = referencedValueSets(expression, opts.valueSetBase);
  if (/codedIn\(\s*%policyDrug\s*\)/.test(expression)) urls.push(resolveValueSetUrl(drug, opts.valueSetBase));
  const named = [...new Set(urls)].filter((u) => opts.valueSets.has(u) && opts.valueSets.namesOf(u).length > 0);
  if (named.length === 0) return undefined;
  return (order: unknown) => {
    const concept = (order as { medicationCodeableConcept?: { text?: string; coding?: { system?: string; code?: string; display?: string }[] } })
      ?.medicationCodeableConcept;
    if (!concept) return undefined;
    for (const url of named) {
      if ((concept.coding ?? []).some((c) => opts.valueSets.contains(url, c))) continue;
      const name = opts.valueSets.nameIn(url, concept);
      if (name) return `${name} recognised by name in "${(concept.text ?? concept.coding?.find((c) => c.display)?.display ?? '').slice(0, 80)}", not by a listed code`;
    }
    return undefined;
  };
}

function compilePolicy(
  file: PolicyFile,
  path: string,
  libraries: Map<string, Record<string, FactDefinition>>,
  opts: LoadPoliciesOptions & { valueSetBase: string },
  problems: ContentProblem[],
): CompiledPolicy | undefined {
  const before = problems.length;
  const fpResources: FhirPathOptions = { valueSets: opts.valueSets, valueSetBase: opts.valueSetBase, model: 'r4' };
  const fpFacts: FhirPathOptions = { ...fpResources, model: 'none' };

  const expected = path.replace(/\\/g, '/').match(/policies\/([^/]+)\/([^/]+)\.ya?ml$/);
  if (expected && (expected[1] !== file.payer || `${file.payer}-${expected[2]}` !== file.id)) {
    problems.push({ file: path, field: 'id', message: `expected id ${expected[1]}-${expected[2]} and payer ${expected[1]}` });
  }
  const drugUrl = resolveValueSetUrl(file.drug, opts.valueSetBase);
  if (!opts.valueSets.has(drugUrl)) problems.push({ file: path, field: 'drug', message: `unknown value set ${file.drug}` });

  // Imported facts first, so a policy can override a library fact by name.
  const defs: Record<string, FactDefinition> = {};
  for (const lib of file.imports) {
    const facts = libraries.get(lib);
    if (!facts) problems.push({ file: path, field: 'imports', message: `unknown fact library ${lib}` });
    else Object.assign(defs, facts);
  }
  Object.assign(defs, file.facts);

  const compiledFacts = new Map<string, CompiledFact>();
  for (const [name, written] of Object.entries(defs)) {
    const field = `facts.${name}`;
    // %currentMedications, %regimenMedications and %medicationsBefore written out before anything reads the expression (current-orders.ts),
    // so every engine reads one definition.
    const def = { ...written, fhirpath: expandMedicationMacros(written.fhirpath) };
    if ((RESERVED_VARIABLES as readonly string[]).includes(name)) {
      problems.push({ file: path, field, message: `"${name}" is a reserved variable name` });
      continue;
    }
    for (const url of referencedValueSets(def.fhirpath, opts.valueSetBase)) {
      if (!opts.valueSets.has(url)) problems.push({ file: path, field: `${field}.fhirpath`, message: `unknown value set ${url}` });
    }
    if (def.answerValueSet && !opts.valueSets.has(resolveValueSetUrl(def.answerValueSet, opts.valueSetBase))) {
      problems.push({ file: path, field: `${field}.answerValueSet`, message: `unknown value set ${def.answerValueSet}` });
    }
    if (def.askable && (!def.linkId || !def.question)) {
      problems.push({ file: path, field, message: 'an askable fact needs linkId and question' });
    }
    const deps = variableReferences(def.fhirpath).filter((v) => !(RESERVED_VARIABLES as readonly string[]).includes(v));
    for (const d of deps) {
      if (!(d in defs)) problems.push({ file: path, field: `${field}.fhirpath`, message: `unknown variable %${d}` });
    }
    try {
      const nameOnly = nameOnlyMatcher(def.fhirpath, file.drug, opts);
      compiledFacts.set(name, { name, def, deps, expr: compileFhirPath(def.fhirpath, fpResources), shareKey: '', dated: false, ...(nameOnly ? { nameOnly } : {}) });
    } catch (err) {
      problems.push({ file: path, field: `${field}.fhirpath`, message: `FHIRPath does not compile: ${(err as Error).message}` });
    }
  }
  const linkIds = new Map<string, string>();
  for (const f of compiledFacts.values()) {
    if (!f.def.linkId) continue;
    const other = linkIds.get(f.def.linkId);
    if (other) problems.push({ file: path, field: `facts.${f.name}.linkId`, message: `linkId ${f.def.linkId} also used by ${other}` });
    linkIds.set(f.def.linkId, f.name);
  }

  const ordered = orderFacts(compiledFacts, path, problems);
  // Dependencies come first in `ordered`, so every fact's dependencies have their keys when it is reached.
  for (const f of ordered) {
    const reads = variableReferences(f.def.fhirpath);
    const deps = f.deps.map((d) => compiledFacts.get(d)).filter((d): d is CompiledFact => d !== undefined);
    f.dated = f.def.type === 'date' || reads.includes('orderDate') || reads.includes('orderDateTime') || reads.includes('orderStart') || deps.some((d) => d.dated);
    // A number computed from the order's record-only amounts (startingDoseUg from the dose the order writes per day or
    // per m², split out so that DTR keeps the order's side: design.md §7 "One record of what CRD knew") is asked as
    // they are: it moves with what the order asks.
    if (
      (f.def.type === 'decimal' || f.def.type === 'integer') &&
      (reads.includes('order') || (!f.def.askable && deps.some((d) => d.asked && !d.def.askable)))
    )
      f.asked = true;
    const pureOf = pureVariables(f.def, reads, compiledFacts);
    if (pureOf) f.pureOf = pureOf;
    if (reads.includes('order')) f.readsOrder = true;
    f.shareKey = shareKeyOf(
      JSON.stringify([f.def.type, f.def.unit ?? null, f.def.fhirpath, reads.includes('policyDrug') ? file.drug : null, deps.map((d) => [d.name, d.shareKey])]),
    );
  }

  /** Compiles an `askWhen` over the facts; every name it reads must be a fact. */
  const compileAskWhen = (expr: string, field: string) => {
    for (const f of bareIdentifiers(expr)) {
      if (!compiledFacts.has(f)) problems.push({ file: path, field, message: `unknown fact ${f}` });
    }
    try {
      return compileFhirPath(expr, fpFacts);
    } catch (err) {
      problems.push({ file: path, field, message: `FHIRPath does not compile: ${(err as Error).message}` });
      return undefined;
    }
  };
  for (const f of compiledFacts.values()) {
    if (!f.def.askWhen) continue;
    f.askWhen = compileAskWhen(f.def.askWhen, `facts.${f.name}.askWhen`);
    f.askWhenReads = factClosure(compiledFacts, bareIdentifiers(f.def.askWhen).filter((n) => compiledFacts.has(n)));
  }
  const attachments = file.attachments.map((a, i) => ({
    linkId: a.linkId,
    text: a.text,
    cite: a.cite,
    ...(a.askWhen ? { askWhen: compileAskWhen(a.askWhen, `attachments[${i}].askWhen`), askWhenText: a.askWhen } : {}),
    ...(a.proves ? { proves: a.proves } : {}),
  }));
  file.attachments.forEach((a, i) => problems.push(...provesProblems(compiledFacts, a).map((message) => ({ file: path, field: `attachments[${i}].proves`, message }))));
  for (const a of file.attachments) {
    if (linkIds.has(a.linkId)) problems.push({ file: path, field: 'attachments', message: `linkId ${a.linkId} also used by ${linkIds.get(a.linkId)}` });
    linkIds.set(a.linkId, `attachment ${a.linkId}`);
  }

  const compileRule = (kind: RuleKind, index: number, r: PolicyFile['limits'][number] | PolicyFile['pathways'][number] | PolicyFile['requirements'][number]): CompiledRule | undefined => {
    const field = `${kind === 'requirement' ? 'requirements' : kind === 'pathway' ? 'pathways' : 'limits'}[${index}]`;
    const facts = bareIdentifiers(r.when);
    const unknownPasses = kind === 'limit' ? passesWhenUnknown(r.when) : undefined;
    if (unknownPasses !== undefined)
      problems.push({
        file: path,
        field: `${field}.when`,
        message:
          `iif(${unknownPasses}, ..., true) passes ${r.id} when its condition is unknown: write "(${unknownPasses}) implies ..." so ` +
          `an unknown condition is asked, or "iif(${unknownPasses}, true, false) implies ..." where an unknown condition means another use`,
      });
    for (const f of facts) {
      const fact = compiledFacts.get(f);
      if (!fact) problems.push({ file: path, field: `${field}.when`, message: `unknown fact ${f}` });
      else if (!reviewerLabel(fact.def))
        problems.push({
          file: path,
          field: `${field}.when`,
          message: `fact ${f} is shown to the payer reviewer as evidence for ${r.id} but has no label: give facts.${f}${file.facts[f] ? '' : ' (imported)'} a label in the policy's words, or a question`,
        });
    }
    try {
      const rule: CompiledRule = { kind, id: r.id, cite: r.cite, text: r.text, facts, when: compileFhirPath(r.when, fpFacts) };
      if ('notCovered' in r) rule.notCovered = r.notCovered;
      if ('outsideUse' in r && r.outsideUse) rule.outsideUse = true;
      if ('approval' in r) {
        rule.approval = r.approval;
        for (const key of ['from', 'covers'] as const) {
          const name = r.approval[key];
          const fact = name === undefined ? undefined : compiledFacts.get(name);
          if (name !== undefined && !fact) problems.push({ file: path, field: `${field}.approval.${key}`, message: `unknown fact ${name}` });
          else if (fact && fact.def.type !== 'date')
            problems.push({
              file: path,
              field: `${field}.approval.${key}`,
              message: `fact ${name} is of type ${fact.def.type}: ${key === 'from' ? 'an approval runs from a date fact' : 'approval.covers names a date fact (the last day the order needs covered)'}`,
            });
        }
        if (r.approval.covers !== undefined && r.approval.from === undefined)
          problems.push({ file: path, field: `${field}.approval.covers`, message: 'covers needs from: it says whether a period counted from a date reaches far enough' });
      }
      if ('cycles' in r && r.cycles !== undefined) rule.cycles = r.cycles;
      if ('justification' in r) rule.justification = r.justification;
      if ('names' in r && r.names) {
        rule.names = Object.entries(r.names).map(([fact, words]) => ({ fact, words }));
        for (const { fact } of rule.names) {
          if (!compiledFacts.has(fact)) problems.push({ file: path, field: `${field}.names.${fact}`, message: `unknown fact ${fact}` });
        }
      }
      if (kind === 'pathway') {
        rule.conjuncts = splitTopLevel(r.when.trim(), /^\s+and\s+/).map((text) => ({
          text: text.trim(),
          when: compileFhirPath(text.trim(), fpFacts),
          facts: bareIdentifiers(text),
        }));
      }
      const applies = kind === 'limit' ? applicabilityOf(r.when) : undefined;
      if (applies !== undefined) {
        rule.applies = compileFhirPath(applies, fpFacts);
        rule.appliesFacts = bareIdentifiers(applies);
      }
      const propose = 'propose' in r ? r.propose : undefined;
      if (propose && 'quantity' in propose) {
        const q = propose.quantity;
        for (const f of bareIdentifiers(q.value)) {
          if (!compiledFacts.has(f)) problems.push({ file: path, field: `${field}.propose.quantity.value`, message: `unknown fact ${f}` });
        }
        // A quantity is proposed for the amount the order asks for: on a limit that does not read it (the policy's
        // requestedAmount where it declares one, else at least a fact of the order), lowering the order's dispense
        // quantity would change nothing the limit judges. Whether it does is checked again on every proposal
        // (evaluate-policy.ts quantityWithinLimits).
        const read = factClosure(compiledFacts, bareIdentifiers(r.when));
        if (file.requestedAmount ? !read.includes(file.requestedAmount) : !read.some((f) => compiledFacts.get(f)?.readsOrder)) {
          problems.push({
            file: path,
            field: `${field}.propose.quantity`,
            message: file.requestedAmount
              ? `the limit does not read the policy's requestedAmount (${file.requestedAmount}): a quantity is proposed only for an amount limit`
              : 'the limit reads no fact of the order: a quantity is proposed only for an amount limit',
          });
        }
        rule.proposeQuantity = { unit: q.unit, ...(q.display ? { display: q.display } : {}), value: compileFhirPath(q.value, fpFacts) };
        rule.proposeFacts = bareIdentifiers(q.value).filter((f) => compiledFacts.has(f));
      } else if (propose) {
        for (const f of bareIdentifiers(propose.value)) {
          if (!compiledFacts.has(f)) problems.push({ file: path, field: `${field}.propose.value`, message: `unknown fact ${f}` });
        }
        const perM2 = propose.perM2;
        for (const f of perM2 ? bareIdentifiers(perM2.value) : []) {
          if (!compiledFacts.has(f)) problems.push({ file: path, field: `${field}.propose.perM2.value`, message: `unknown fact ${f}` });
        }
        const { perM2: _perM2Source, ...flat } = propose;
        rule.propose = { ...flat, value: compileFhirPath(propose.value, fpFacts), ...(perM2 ? { perM2: { ...perM2, value: compileFhirPath(perM2.value, fpFacts) } } : {}) };
        rule.proposeFacts = [...new Set([...bareIdentifiers(propose.value), ...(perM2 ? bareIdentifiers(perM2.value) : [])])].filter((f) => compiledFacts.has(f));
      }
      return rule;
    } catch (err) {
      problems.push({ file: path, field: `${field}.when`, message: `FHIRPath does not compile: ${(err as Error).message}` });
      return undefined;
    }
  };

  const ruleIds = new Set<string>();
  for (const [i, r] of [...file.requirements, ...file.pathways, ...file.limits].entries()) {
    if (ruleIds.has(r.id)) problems.push({ file: path, field: `rules[${i}].id`, message: `duplicate rule id ${r.id}` });
    ruleIds.add(r.id);
  }

  const requirements = file.requirements.map((r, i) => compileRule('requirement', i, r));
  const pathways = file.pathways.map((r, i) => compileRule('pathway', i, r));
  const limits = file.limits.map((r, i) => compileRule('limit', i, r));
  problems.push(...requestedAmountProblems(file, compiledFacts).map((message) => ({ file: path, field: 'requestedAmount', message })));
  if (problems.length > before) return undefined;

  // Imported facts no rule reads are dropped: they cost evaluation time on every order and would be asked in DTR
  // for nothing. Facts the policy defines itself are kept.
  const used = new Set<string>();
  const use = (name: string) => {
    const f = compiledFacts.get(name);
    if (!f || used.has(name)) return;
    used.add(name);
    f.deps.forEach(use);
    if (f.def.askWhen) bareIdentifiers(f.def.askWhen).forEach(use);
  };
  for (const r of [...file.requirements, ...file.pathways, ...file.limits]) {
    bareIdentifiers(r.when).forEach(use);
    if ('approval' in r && r.approval.from) use(r.approval.from);
    if ('approval' in r && r.approval.covers) use(r.approval.covers);
    const propose = 'propose' in r ? r.propose : undefined;
    if (propose && 'quantity' in propose) bareIdentifiers(propose.quantity.value).forEach(use);
    else if (propose) {
      bareIdentifiers(propose.value).forEach(use);
      if (propose.perM2) bareIdentifiers(propose.perM2.value).forEach(use);
    }
  }
  Object.keys(file.facts).forEach(use);
  for (const a of file.attachments) if (a.askWhen) bareIdentifiers(a.askWhen).forEach(use);
  const kept = ordered.filter((f) => used.has(f.name));
  for (const name of [...compiledFacts.keys()]) if (!used.has(name)) compiledFacts.delete(name);

  return {
    file,
    path,
    facts: kept,
    factsByName: compiledFacts,
    requirements: requirements as CompiledRule[],
    pathways: pathways as CompiledRule[],
    limits: limits as CompiledRule[],
    attachments: attachments.map((a) =>
      a.askWhen === undefined
        ? { linkId: a.linkId, text: a.text, cite: a.cite, ...(a.proves ? { proves: a.proves } : {}) }
        : (a as CompiledPolicy['attachments'][number]),
    ),
    questionnaire: `${opts.canonicalBase}/Questionnaire/${file.id}|${file.version}`,
    ...(file.requestedAmount ? { requestedAmount: file.requestedAmount } : {}),
  };
}

/**
 * What is wrong with a policy's `requestedAmount` (policy-schema.ts): the fact it names must be a number the order
 * states (a decimal or integer fact whose expression reads `%order`: PAS gives it the Claim item's quantity as the
 * order's `dispenseRequest.quantity`), and a limit must judge it, itself or through the facts it reads. Otherwise PAS
 * would certify an item quantity that no limit judged (design.md §8 "What PAS certifies").
 */
function requestedAmountProblems(file: PolicyFile, facts: Map<string, CompiledFact>): string[] {
  const name = file.requestedAmount;
  if (name === undefined) return [];
  const fact = facts.get(name);
  if (!fact) return [`unknown fact ${name}`];
  const problems: string[] = [];
  if (fact.def.type !== 'decimal' && fact.def.type !== 'integer') problems.push(`fact ${name} is of type ${fact.def.type}: the requested amount is a number (decimal or integer)`);
  if (!variableReferences(fact.def.fhirpath).includes('order')) problems.push(`fact ${name} does not read %order: the requested amount is the amount the order asks for`);
  const judged = file.limits.some((l) => {
    const seen = new Set<string>();
    const reaches = (f: string): boolean => {
      if (f === name) return true;
      if (seen.has(f)) return false;
      seen.add(f);
      return (facts.get(f)?.deps ?? []).some(reaches);
    };
    return bareIdentifiers(l.when).some(reaches);
  });
  if (!judged) problems.push(`no limit reads ${name}: a requested amount is declared for an amount limit to judge`);
  return problems;
}

/**
 * What is wrong with an attachment's `proves` (policy-schema.ts attachmentSchema): each proved fact must be an askable
 * boolean (an attestation the form asks), and the item must be shown exactly when one of them is answered true.
 */
function provesProblems(facts: Map<string, CompiledFact>, a: PolicyFile['attachments'][number]): string[] {
  if (!a.proves) return [];
  const problems: string[] = [];
  for (const name of a.proves) {
    const f = facts.get(name);
    if (!f) problems.push(`${a.linkId} proves ${name}, which is not a fact of this policy`);
    else if (f.def.type !== 'boolean' || !f.def.askable || !f.def.linkId) problems.push(`${a.linkId} proves ${name}, which is not an asked boolean fact`);
  }
  // Closed while the attestation is unanswered: an askWhen is "shown unless false", and the document belongs only
  // beside a "Yes".
  const expected = `iif(${a.proves.map((n) => `${n} = true`).join(' or ')}, true, false)`;
  if ((a.askWhen ?? '').replace(/\s+/g, ' ').trim() !== expected) {
    problems.push(`${a.linkId} proves ${a.proves.join(', ')}: its askWhen must be "${expected}" (shown when the attestation is answered true)`);
  }
  return problems;
}

/**
 * The words the payer reviewer reads for a fact beside a criterion it decides (the PAS trace, design.md §8 "The
 * reviewer API"): the policy author's `label`, else the DTR question. Never a name made from the fact's identifier:
 * a fact a rule reads without either fails at load.
 */
export function reviewerLabel(def: Pick<FactDefinition, 'label' | 'question'>): string | undefined {
  return def.label ?? def.question;
}

/** Variables besides facts whose values a fact computed from facts may read. */
const PURE_INPUTS = new Set(['orderDate', 'orderDateTime', 'policyDrug']);

/**
 * The variables a fact reads when it is computed from facts alone: it names no record variable, reaches nothing from
 * the root (no bare member, no `$this`, no function at the root but `iif`), asks no clock (`today()`, `now()`), and is
 * not a date (plausibility of a date depends on today). Undefined otherwise.
 */
function pureVariables(def: FactDefinition, reads: string[], facts: Map<string, CompiledFact>): string[] | undefined {
  if (def.type === 'date') return undefined;
  if (!reads.every((v) => PURE_INPUTS.has(v) || facts.has(v))) return undefined;
  const text = def.fhirpath.replace(/'(?:[^'\\]|\\.)*'/g, "''");
  if (/\$(this|index|total)|\b(today|now|timeOfDay)\s*\(/.test(text)) return undefined;
  if (bareIdentifiers(def.fhirpath).length > 0) return undefined;
  for (const m of text.matchAll(/(?<![.%\w$])([A-Za-z_][A-Za-z0-9_]*)\s*\(/g)) if (m[1] !== 'iif') return undefined;
  return reads;
}

const shareKeys = new Map<string, string>();
/** A short, stable name for a fact's full definition text (interned: the same text always gets the same key). */
function shareKeyOf(definition: string): string {
  let key = shareKeys.get(definition);
  if (key === undefined) shareKeys.set(definition, (key = `f${shareKeys.size}`));
  return key;
}

/** Topological order of facts by their `%fact` references; a cycle is a content error. */
function orderFacts(facts: Map<string, CompiledFact>, path: string, problems: ContentProblem[]): CompiledFact[] {
  const out: CompiledFact[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, trail: string[]) => {
    const f = facts.get(name);
    if (!f || state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      problems.push({ file: path, field: `facts.${name}`, message: `circular fact reference ${[...trail, name].join(' -> ')}` });
      return;
    }
    state.set(name, 'visiting');
    for (const d of f.deps) visit(d, [...trail, name]);
    state.set(name, 'done');
    out.push(f);
  };
  for (const name of facts.keys()) visit(name, []);
  return out;
}
