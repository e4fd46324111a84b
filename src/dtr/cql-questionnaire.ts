import type { Library, Questionnaire, QuestionnaireItem } from '@medplum/fhirtypes';
import type { CompiledPolicy } from '../policies/compiled-policy.js';
import { codingDefine, shownDefine } from '../cql/define-names.js';
import { EXT_INITIAL_EXPRESSION, EXT_VARIABLE } from '../fhir/dtr-urls.js';

/** SDC / CQF: the Library whose definitions a Questionnaire's CQL expressions name. */
export const EXT_CQF_LIBRARY = 'http://hl7.org/fhir/StructureDefinition/cqf-library';

/**
 * The form a DTR 2.0.1 client receives (DTR 2.0.1 requirements #62, #64, #83, #98: CQL SHALL be used for
 * pre-population; the Inferno 2.0.1 payer tests require `text/cql` item and root expressions and a `cqf-library`
 * equal to a packaged Library's url). Same items, wording and enable logic as the FHIRPath form; pre-population moves
 * to the policy's Library: an item whose fact the Library expresses gets the `text/cql` initialExpression
 * `"Library".fact` (also facts about the order, which the CQL reads); an item whose fact it does not express loses
 * its FHIRPath initialExpression (the package's
 * QuestionnaireResponse still carries what CRD read from the chart), and the FHIRPath/x-fhir-query variables go, since
 * only those expressions used them.
 */
export function cqlQuestionnaire(q: Questionnaire, policy: CompiledPolicy, library: Library): Questionnaire {
  const defines = new Set(definesOf(library));
  const factByLinkId = new Map<string, string>();
  for (const f of policy.facts) if (f.def.linkId) factByLinkId.set(f.def.linkId, f.name);

  const items = (list: QuestionnaireItem[] | undefined): QuestionnaireItem[] | undefined =>
    list?.map((item) => {
      const fact = factByLinkId.get(item.linkId);
      // The CQL can read the order (parameter medication_request), so facts about the order get an expression here
      // even where the FHIRPath form, which has no order in its launch context, has none.
      const extension = (item.extension ?? []).filter((e) => e.url !== EXT_INITIAL_EXPRESSION);
      // A choice item is pre-filled with a Coding: the fact's Coding define where the Library has one, else nothing
      // (a bare code string is not an answer a client can select).
      // A computed amount is pre-filled rounded as the form shows it (its `shownDefine`, "<fact>AsShown";
      // display-precision.ts).
      const define =
        item.type === 'choice' || item.type === 'open-choice'
          ? fact && defines.has(codingDefine(fact))
            ? codingDefine(fact)
            : undefined
          : fact && defines.has(shownDefine(fact))
            ? shownDefine(fact)
            : fact;
      if (fact && define && defines.has(define) && item.type !== 'group' && item.type !== 'display') {
        extension.push({ url: EXT_INITIAL_EXPRESSION, valueExpression: { language: 'text/cql', expression: `"${library.name}".${define}` } });
      }
      const out: QuestionnaireItem = { ...item, ...(item.item ? { item: items(item.item) } : {}) };
      if (extension.length > 0) out.extension = extension;
      else delete out.extension;
      return out;
    });

  return {
    ...q,
    extension: [...(q.extension ?? []).filter((e) => e.url !== EXT_VARIABLE), { url: EXT_CQF_LIBRARY, valueCanonical: library.url }],
    item: items(q.item),
  };
}

interface ElmLibrary {
  library?: { statements?: { def?: { name: string }[] }; valueSets?: { def?: { id: string }[] } };
}

/** What this module reads of a Library's ELM, by Library: content is immutable, and each ELM is about 1 MB. */
const elmNames = new WeakMap<Library, { defines: string[]; valueSets: string[] }>();

/**
 * The names a Library's ELM defines and the value sets it names, read once per Library: the catalog asks for a
 * shared Library (FHIRHelpers) once per policy, and decoding and parsing every ELM again was a tenth of start-up.
 */
function elmOf(library: Library): { defines: string[]; valueSets: string[] } {
  let names = elmNames.get(library);
  if (!names) {
    const data = library.content?.find((c) => c.contentType === 'application/elm+json')?.data;
    const elm = data ? (JSON.parse(Buffer.from(data, 'base64').toString('utf8')) as ElmLibrary) : {};
    names = {
      defines: (elm.library?.statements?.def ?? []).map((d) => d.name).filter((n) => n !== 'Patient'),
      valueSets: (elm.library?.valueSets?.def ?? []).map((d) => d.id),
    };
    elmNames.set(library, names);
  }
  return names;
}

/** The expression definitions of a Library's ELM (`application/elm+json` content). */
export function definesOf(library: Library): string[] {
  return [...elmOf(library).defines];
}

/** The value set canonicals a Library's ELM names (the package carries them, expanded: DTR "external ValueSets"). */
export function valueSetsOfLibrary(library: Library): string[] {
  return [...elmOf(library).valueSets];
}

/** A Library and, recursively, the Libraries it depends on (relatedArtifact depends-on), each once. */
export function libraryClosure(library: Library, byCanonical: (canonical: string) => Library | undefined): Library[] {
  const out: Library[] = [];
  const visit = (l: Library) => {
    if (out.includes(l)) return;
    out.push(l);
    for (const r of l.relatedArtifact ?? []) {
      const dep = r.type === 'depends-on' && r.resource ? byCanonical(r.resource) : undefined;
      if (dep) visit(dep);
    }
  };
  visit(library);
  return out;
}
