import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { CodeSystem, Library, MedicationRequest, ValueSet } from '@medplum/fhirtypes';
import { z } from 'zod';
import { readYamlFile } from './content-yaml.js';
import { CRD_VERSIONS } from './coverage/coverage-information.js';
import { resolveValueSetUrl } from './fhir/fhirpath.js';
import { codingsWithBillingOptions, ValueSetIndex } from './fhir/value-sets.js';
import type { CompiledPolicy } from './policies/compiled-policy.js';
import { ContentError, loadPolicies } from './policies/policy-loader.js';
import type { ContentProblem } from './policies/policy-loader.js';

/** A payer file, `cds-services/payers/<key>.yaml` (design.md §4 "Payer"). */
export const payerSchema = z
  .object({
    key: z.string().regex(/^[a-z0-9-]+$/),
    label: z.string().min(2).max(80),
    identifiers: z.array(z.object({ system: z.string(), value: z.string() }).strict()).min(1),
    contact: z
      .object({ phone: z.string().optional(), url: z.string().optional(), email: z.string().optional(), note: z.string().optional() })
      .passthrough()
      .optional(),
    topicUrl: z.string().optional(),
    defaultAnswer: z
      .union([
        z.literal('none'),
        z.object({ covered: z.enum(['covered', 'not-covered', 'conditional']), paNeeded: z.enum(['no-auth', 'auth-needed', 'conditional']).optional() }).strict(),
      ])
      .default('none'),
  })
  .passthrough();
export type Payer = z.infer<typeof payerSchema>;

/** A discovery entry, `cds-services/services/<id>.yaml` (CDS Hooks §Discovery). */
export const serviceSchema = z
  .object({
    id: z.string(),
    hook: z.enum(['order-sign', 'order-select', 'order-dispatch']),
    title: z.string().optional(),
    description: z.string(),
    prefetch: z.record(z.string(), z.string()).optional(),
    usageRequirements: z.string().optional(),
    extension: z
      .object({
        // CRD deviations.md [dev-1, dev-2]: every version the service declares is one whose shape PriorPath builds.
        'davinci-crd.version': z.array(z.enum(CRD_VERSIONS)).min(1).optional(),
      })
      .catchall(z.unknown())
      .optional(),
  })
  .passthrough();
export type ServiceDefinition = z.infer<typeof serviceSchema>;

/** The payer identifier system of design.md §4. */
export const PAYER_ID_SYSTEM = 'https://priorpath.dev/fhir/sid/payer';

/**
 * The CANONICAL_BASE the committed content files are written with (value sets, generated Questionnaires and
 * Libraries). Code systems, identifier systems and extension URLs under it are identities the EHR data carries, so
 * they never move; only the canonicals of the payer's own knowledge artifacts follow CANONICAL_BASE.
 */
export const AUTHORING_BASE = 'https://priorpath.dev/fhir';

const ARTIFACT_URL = /https:\/\/priorpath\.dev\/fhir\/(ValueSet|Questionnaire|Library)\//g;

/**
 * Rewrites the artifact canonicals (`…/ValueSet/`, `…/Questionnaire/`, `…/Library/`) of a content file's JSON text
 * from AUTHORING_BASE to `canonicalBase` (design.md §3 `CANONICAL_BASE`), before the text is parsed.
 */
export function rebaseContentText(text: string, canonicalBase: string): string {
  if (canonicalBase === AUTHORING_BASE) return text;
  // JSON-escaped, so a base with unusual characters cannot break the document.
  const escaped = JSON.stringify(canonicalBase).slice(1, -1);
  return text.replace(ARTIFACT_URL, (_m, type: string) => `${escaped}/${type}/`);
}

/** Everything loaded from `cds-services/` and `questionnaires/` at start-up; immutable afterwards. */
export interface Content {
  services: ServiceDefinition[];
  payers: Map<string, Payer>;
  valueSets: ValueSetIndex;
  codeSystems: CodeSystem[];
  policies: CompiledPolicy[];
  /** Questionnaires by canonical URL (and `url|version`). */
  questionnaires: Map<string, Record<string, unknown>>;
  /** CQL + ELM Libraries generated from the policies (`libraries/<id>.json`, `npm run libraries`), by id. */
  libraries: Map<string, Library>;
  canonicalBase: string;
  loadedAt: Date;
  loadMs: number;
}

function files(dir: string, ext: string[]): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => ext.some((e) => f.endsWith(e)))
    .sort()
    .map((f) => join(dir, f));
}

/**
 * A content YAML file's data checked against its schema; undefined with the file's problems recorded (a file that is
 * not YAML included), so that every bad file is named at once.
 */
function readContentFile<T>(path: string, schema: z.ZodType<T>, problems: ContentProblem[]): T | undefined {
  let raw: unknown;
  try {
    raw = readYamlFile(path);
  } catch (err) {
    problems.push({ file: path, field: '(yaml)', message: (err as Error).message });
    return undefined;
  }
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  for (const i of parsed.error.issues) problems.push({ file: path, field: i.path.join('.'), message: i.message });
  return undefined;
}

/**
 * Loads and compiles all content. Throws ContentError naming every bad file and field; the service refuses to
 * start on it (design.md §5).
 */
export function loadContent(opts: { root: string; canonicalBase: string }): Content {
  const started = performance.now();
  const problems: ContentProblem[] = [];
  const cds = join(opts.root, 'cds-services');

  const valueSets = new ValueSetIndex();
  const codeSystems: CodeSystem[] = [];
  for (const path of files(join(cds, 'valuesets'), ['.json'])) {
    try {
      const res = JSON.parse(rebaseContentText(readFileSync(path, 'utf8'), opts.canonicalBase)) as ValueSet | CodeSystem;
      if (res.resourceType === 'ValueSet') valueSets.add(res);
      else if (res.resourceType === 'CodeSystem') codeSystems.push(res);
      else problems.push({ file: path, field: 'resourceType', message: 'expected ValueSet or CodeSystem' });
    } catch (err) {
      problems.push({ file: path, field: '(json)', message: (err as Error).message });
    }
  }

  const payers = new Map<string, Payer>();
  for (const path of files(join(cds, 'payers'), ['.yaml', '.yml'])) {
    const parsed = readContentFile(path, payerSchema, problems);
    if (!parsed) continue;
    // The file name is the key: start-up checks DEFAULT_PAYER against the file names before this loads (config.ts
    // payerKeysOnDisk), and a policy directory is named by it too.
    const fileKey = basename(path).replace(/\.ya?ml$/, '');
    if (parsed.key !== fileKey) problems.push({ file: path, field: 'key', message: `must equal the file name (${fileKey})` });
    if (!parsed.identifiers.some((i) => i.system === PAYER_ID_SYSTEM && i.value === parsed.key)) {
      problems.push({ file: path, field: 'identifiers', message: `must include {system: ${PAYER_ID_SYSTEM}, value: ${parsed.key}}` });
    }
    payers.set(parsed.key, parsed);
  }

  const services: ServiceDefinition[] = [];
  for (const path of files(join(cds, 'services'), ['.yaml', '.yml'])) {
    const parsed = readContentFile(path, serviceSchema, problems);
    if (parsed) services.push(parsed);
  }

  const hookOrder = ['order-sign', 'order-select', 'order-dispatch'];
  services.sort((a, b) => hookOrder.indexOf(a.hook) - hookOrder.indexOf(b.hook));

  const questionnaires = new Map<string, Record<string, unknown>>();
  for (const path of files(join(opts.root, 'questionnaires'), ['.json'])) {
    try {
      const q = JSON.parse(rebaseContentText(readFileSync(path, 'utf8'), opts.canonicalBase)) as {
        resourceType?: string;
        url?: string;
        version?: string;
      };
      if (q.resourceType !== 'Questionnaire' || !q.url) {
        problems.push({ file: path, field: 'url', message: 'expected a Questionnaire with a url' });
        continue;
      }
      questionnaires.set(q.url, q);
      if (q.version) questionnaires.set(`${q.url}|${q.version}`, q);
    } catch (err) {
      problems.push({ file: path, field: '(json)', message: (err as Error).message });
    }
  }

  const libraries = new Map<string, Library>();
  for (const path of files(join(opts.root, 'libraries'), ['.json'])) {
    try {
      const l = JSON.parse(rebaseContentText(readFileSync(path, 'utf8'), opts.canonicalBase)) as Library;
      // The CQL and ELM name value sets by canonical too: rebase inside the base64 content as well.
      if (opts.canonicalBase !== AUTHORING_BASE) {
        for (const c of l.content ?? []) {
          if (c.data) c.data = Buffer.from(rebaseContentText(Buffer.from(c.data, 'base64').toString('utf8'), opts.canonicalBase), 'utf8').toString('base64');
        }
      }
      if (l.resourceType !== 'Library' || !l.id || !l.url) {
        problems.push({ file: path, field: 'url', message: 'expected a Library with an id and a url' });
        continue;
      }
      libraries.set(l.id, l);
    } catch (err) {
      problems.push({ file: path, field: '(json)', message: (err as Error).message });
    }
  }

  let policies: CompiledPolicy[] = [];
  try {
    policies = loadPolicies({ root: cds, valueSets, canonicalBase: opts.canonicalBase });
  } catch (err) {
    if (err instanceof ContentError) problems.push(...err.problems);
    else throw err;
  }
  for (const p of policies) {
    if (!payers.has(p.file.payer)) problems.push({ file: p.path, field: 'payer', message: `unknown payer ${p.file.payer}` });
  }

  if (problems.length > 0) throw new ContentError(problems);
  return {
    services,
    payers,
    valueSets,
    codeSystems,
    policies,
    questionnaires,
    libraries,
    canonicalBase: opts.canonicalBase,
    loadedAt: new Date(),
    loadMs: performance.now() - started,
  };
}

/** The policies of a payer that govern any of these drug codings (design.md §4 "Governed orders"). */
export function policiesForCodings(content: Content, payer: string, codings: { system?: string; code?: string }[]): CompiledPolicy[] {
  if (codings.length === 0) return [];
  const base = `${content.canonicalBase}/ValueSet`;
  return content.policies.filter(
    (p) => p.file.payer === payer && codings.some((c) => content.valueSets.contains(resolveValueSetUrl(p.file.drug, base), c)),
  );
}

/**
 * The policies of a payer that govern an order, by the order's drug codes (a medicationReference resolved first) and
 * the billing codes the client gave in `ext-billing-options` (CRD [billopt-3]).
 */
export function policiesFor(content: Content, payer: string, order: MedicationRequest): CompiledPolicy[] {
  const byCode = policiesForCodings(content, payer, codingsWithBillingOptions(order.medicationCodeableConcept));
  if (byCode.length > 0) return byCode;
  const named = drugNamedOnly(content, order);
  return named ? content.policies.filter((p) => p.file.payer === payer && resolveValueSetUrl(p.file.drug, `${content.canonicalBase}/ValueSet`) === named.url) : [];
}

/**
 * The drug set an order belongs to by name alone (design.md §6 "Clinical readings": code lists are incomplete; match
 * by code and, as a fallback, by ingredient or brand name in the coding display or text): e.g. Besponsa ordered by an
 * EHR-local code or an NDC no value set lists, its display "BESPONSA (inotuzumab ozogamicin)".
 * Only when no value set lists any of the order's codes (a listed code says which drug it is), and the concept names
 * the drugs of exactly one set with match names (a text naming another drug too, "dexamethasone premedication for
 * Blincyto", or "blinded study drug", is not this drug). Undefined otherwise. The name is lower case, as listed.
 */
export function drugNamedOnly(content: Content, order: MedicationRequest): { url: string; name: string; text: string } | undefined {
  const concept = order.medicationCodeableConcept;
  if (!concept) return undefined;
  const codings = codingsWithBillingOptions(concept);
  const sets = content.valueSets.all();
  if (codings.some((c) => sets.some((vs) => content.valueSets.contains(vs.url!, c)))) return undefined;
  const named = sets.filter((vs) => content.valueSets.nameIn(vs.url!, concept) !== undefined);
  // Sets may share a drug (every set listing inotuzumab names it by "inotuzumab"): what decides is that every name the
  // concept holds is a name of one drug set, the policy's.
  const texts = [concept.text, ...(concept.coding ?? []).map((c) => c.display)].filter((t): t is string => !!t).map((t) => t.toLowerCase());
  const held = new Set(named.flatMap((vs) => content.valueSets.namesOf(vs.url!).filter((n) => texts.some((t) => t.includes(n)))));
  const drugSets = content.policies.map((p) => resolveValueSetUrl(p.file.drug, `${content.canonicalBase}/ValueSet`));
  const owner = [...new Set(drugSets)].find((url) => {
    const names = content.valueSets.namesOf(url);
    return held.size > 0 && [...held].every((n) => names.includes(n));
  });
  if (!owner) return undefined;
  const name = content.valueSets.nameIn(owner, concept)!;
  return { url: owner, name, text: (concept.text ?? concept.coding?.find((c) => c.display)?.display ?? '').slice(0, 80) };
}
