import type { Library, Questionnaire, QuestionnaireItem, ValueSet } from '@medplum/fhirtypes';
import type { Content } from '../content.js';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { policyStructure } from '../policies/policy-structure.js';
import type { PolicyStructure } from '../policies/policy-structure.js';
import { cqlQuestionnaire, libraryClosure, valueSetsOfLibrary } from './cql-questionnaire.js';
import { buildQuestionnaire, flattenItems } from './questionnaire-builder.js';
import { prebuildJson } from '../fhir/prebuilt-json.js';
import { adaptiveQuestionnaire } from './adaptive-questionnaire.js';

/** The Questionnaires the payer serves, indexed once when the router is built (content is immutable). */
export interface DtrCatalog {
  /** Every Questionnaire, current policy versions first. */
  all: Questionnaire[];
  byId: Map<string, Questionnaire>;
  /** By `url` (the current version) and by `url|version`. */
  byCanonical: Map<string, Questionnaire>;
  policyOf: Map<Questionnaire, CompiledPolicy>;
  /** The current Questionnaire of a policy. */
  forPolicy: Map<string, Questionnaire>;
  structureOf: Map<string, PolicyStructure>;
  /** The ValueSets a Questionnaire's items bind (`answerValueSet`), resolved against local content. */
  valueSetsOf(q: Questionnaire): ValueSet[];
  /** The DTR 2.0.1 form of a Questionnaire (CQL pre-population) and its Libraries, when its policy has a Library. */
  cqlFormOf(q: Questionnaire): { questionnaire: Questionnaire; libraries: Library[]; valueSets: ValueSet[] } | undefined;
  /** Every Library, for `/fhir/Library`. */
  libraries: Library[];
  /** Each policy's empty adaptive form (adaptive-questionnaire.ts) → the standard form it is derived from. */
  standardOf: Map<Questionnaire, Questionnaire>;
}

/** Options of {@link buildCatalog}. */
export interface CatalogOptions {
  /** `{PUBLIC_BASE_URL}/fhir`, where `$next-question` is answered: the adaptive forms' `questionnaireAdaptive`. */
  fhirBase?: string;
}

/**
 * Indexes the committed Questionnaires (`questionnaires/<policy-id>.json`, proven equal to the generated ones by the
 * content test) and, for a policy whose file is missing or stale, the Questionnaire generated from the policy itself,
 * so a policy never goes without its form. Each policy also gets an empty adaptive form (`<policy-id>-adaptive`), derived
 * from its standard form and its Library, for the `$next-question` route (DTR §"Adaptive Form").
 */
export function buildCatalog(content: Content, opts: CatalogOptions = {}): DtrCatalog {
  const byId = new Map<string, Questionnaire>();
  const byCanonical = new Map<string, Questionnaire>();
  const policyOf = new Map<Questionnaire, CompiledPolicy>();
  const forPolicy = new Map<string, Questionnaire>();
  const structureOf = new Map<string, PolicyStructure>();
  const all: Questionnaire[] = [];

  for (const policy of content.policies) {
    const structure = policyStructure(policy);
    structureOf.set(policy.file.id, structure);
    const committed = content.questionnaires.get(policy.questionnaire) as unknown as Questionnaire | undefined;
    const q =
      committed ??
      buildQuestionnaire(
        policy,
        {
          canonicalBase: content.canonicalBase,
          valueSets: content.valueSets,
          payerLabel: content.payers.get(policy.file.payer)?.label,
        },
        structure,
      );
    all.push(q);
    policyOf.set(q, policy);
    forPolicy.set(policy.file.id, q);
    if (q.id) byId.set(q.id, q);
    if (q.url) {
      byCanonical.set(q.url, q);
      if (q.version) byCanonical.set(`${q.url}|${q.version}`, q);
    }
  }
  // Other committed forms (e.g. an earlier version kept for responses in flight) stay readable.
  for (const raw of new Set(content.questionnaires.values())) {
    const q = raw as unknown as Questionnaire;
    if (all.some((x) => x === q || (x.url === q.url && x.version === q.version))) continue;
    all.push(q);
    if (q.id && !byId.has(q.id)) byId.set(q.id, q);
    if (q.url && !byCanonical.has(q.url)) byCanonical.set(q.url, q);
    if (q.url && q.version) byCanonical.set(`${q.url}|${q.version}`, q);
  }

  const vsCache = new Map<Questionnaire, ValueSet[]>();
  const valueSetsOf = (q: Questionnaire): ValueSet[] => {
    let out = vsCache.get(q);
    if (!out) {
      const refs = [
        ...new Set(
          flattenItems(q.item as QuestionnaireItem[] | undefined)
            .map((i) => i.answerValueSet)
            .filter((r): r is string => !!r),
        ),
      ];
      out = refs
        .map((r) => content.valueSets.get(r) ?? content.valueSets.get(r.split('|')[0]))
        .filter((v): v is ValueSet => !!v);
      out = [...new Set(out)];
      out.forEach(prebuildJson);
      vsCache.set(q, out);
    }
    return out;
  };

  // DTR 2.0.1 forms are derived once here, from the committed Libraries (content is immutable).
  const libraries = [...content.libraries.values()];
  const libraryByCanonical = (canonical: string) => {
    const [url, version] = canonical.split('|');
    return libraries.find((l) => l.url === url && (version === undefined || l.version === version));
  };
  const cqlForms = new Map<Questionnaire, { questionnaire: Questionnaire; libraries: Library[]; valueSets: ValueSet[] }>();
  for (const [q, policy] of policyOf) {
    const library = content.libraries.get(policy.file.id);
    if (!library || library.version !== policy.file.version) continue;
    const closure = libraryClosure(library, libraryByCanonical);
    const bound = new Set(valueSetsOf(q));
    const valueSets = [
      ...new Set(closure.flatMap(valueSetsOfLibrary).map((url) => content.valueSets.get(url)).filter((v): v is ValueSet => !!v && !bound.has(v))),
    ];
    cqlForms.set(q, { questionnaire: cqlQuestionnaire(q, policy, library), libraries: closure, valueSets });
  }
  const cqlFormOf = (q: Questionnaire) => cqlForms.get(q);

  // Adaptive forms come last in `all` (a search lists the standard forms first), and never in `forPolicy`: a package
  // holds one only when a client names it.
  const standardOf = new Map<Questionnaire, Questionnaire>();
  for (const policy of content.policies) {
    const standard = forPolicy.get(policy.file.id)!;
    const library = cqlForms.get(standard)?.libraries[0];
    const a = adaptiveQuestionnaire(standard, policy, { canonicalBase: content.canonicalBase, fhirBase: opts.fhirBase, library });
    if (byId.has(a.id!) || byCanonical.has(a.url!)) continue;
    standardOf.set(a, standard);
    policyOf.set(a, policy);
    all.push(a);
    byId.set(a.id!, a);
    byCanonical.set(a.url!, a);
    if (a.version) byCanonical.set(`${a.url}|${a.version}`, a);
  }

  // Every resource a package carries unchanged is serialised once, here (src/fhir/prebuilt-json.ts).
  for (const q of all) prebuildJson(q);
  for (const form of cqlForms.values()) [form.questionnaire, ...form.libraries, ...form.valueSets].forEach(prebuildJson);

  return { all, byId, byCanonical, policyOf, forPolicy, structureOf, valueSetsOf, cqlFormOf, libraries, standardOf };
}
