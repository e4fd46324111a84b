/**
 * The CQL-to-ELM translation of `npm run libraries`, with the CQL framework's own translator (@cqframework/cql) and
 * the model info and FHIRHelpers it needs (cql/framework/, Apache-2.0). Generation time only: the service never
 * translates CQL.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CqlCompilerOptions,
  CqlTranslator,
  LibraryBuilder,
  LibraryManager,
  ModelManager,
  createLibrarySourceProvider,
  createModelInfoProvider,
  createUcumService,
  stringAsSource,
} from '@cqframework/cql/cql-to-elm';

const framework = join(import.meta.dirname, '..', 'cql', 'framework');
const read = (f: string) => readFileSync(join(framework, f), 'utf8');

export interface Translation {
  elm: Record<string, unknown>;
  errors: string[];
}

/** A translator with System and FHIR 4.0.1 model info and FHIRHelpers 4.0.1 registered, plus any extra libraries. */
export function createTranslator(extraLibraries: Record<string, string> = {}) {
  const models = new ModelManager();
  models.modelInfoLoader.registerModelInfoProvider(
    createModelInfoProvider((id: string) => {
      if (id === 'System') return stringAsSource(read('system-modelinfo.xml'));
      if (id === 'FHIR') return stringAsSource(read('fhir-modelinfo-4.0.1.xml'));
      return null;
    }),
  );
  // The framework's default options (annotations, locators, no list promotion or demotion), but without UCUM unit
  // validation: the JavaScript build ships no UCUM service, and the only units the generated CQL writes are the
  // calendar durations of date arithmetic (`90 days`, `18 years`), which need none. A unit conversion the translator
  // would have to perform at translation time is refused rather than guessed.
  const options = CqlCompilerOptions.defaultOptions();
  options.validateUnits = false;
  // No source annotations: the Library already carries the CQL text beside the ELM, and the annotations (the CQL of
  // every expression again, with locators) doubled the size of every DTR 2.0.1 package for no engine's use.
  options.options.asJsSetView().delete(CqlCompilerOptions.Options.EnableAnnotations);
  // No operator signatures: the translator has already made every implicit conversion explicit in the operands, and
  // engines resolve operators from the operands' types, as cql-execution (what the DTR reference app and the tests run)
  // does at run time. The framework's default (Overloads: a signature on every call of an overloaded operator) was 29 %
  // of the ELM, and Differing (only where operand types differ) still about 7 %; the ELM must fit one FHIR string
  // (1 MiB of base64), and the largest policy's (OHSU) had grown past it again with the s41 course readings.
  options.signatureLevel = LibraryBuilder.SignatureLevel.None;
  const refuse = (): never => {
    throw new Error('UCUM unit arithmetic is not available at translation time');
  };
  const ucum = createUcumService(refuse, () => null, refuse, refuse);
  const libraries = new LibraryManager(models, options, null, ucum);
  libraries.librarySourceLoader.registerProvider(
    createLibrarySourceProvider((id: string) => {
      if (id === 'FHIRHelpers') return stringAsSource(read('FHIRHelpers-4.0.1.cql'));
      return extraLibraries[id] !== undefined ? stringAsSource(extraLibraries[id]) : null;
    }),
  );
  return (cql: string): Translation => {
    const t = CqlTranslator.fromText(cql, libraries);
    const errors: string[] = [];
    for (const e of t.errors?.asJsReadonlyArrayView?.() ?? []) {
      const at = e.locator as { startLine?: number; startChar?: number } | null | undefined;
      errors.push(at?.startLine ? `${String(e.message)} (line ${at.startLine}:${at.startChar ?? 0})` : String(e.message));
    }
    return { elm: JSON.parse(t.toJson(), compactElm) as Record<string, unknown>, errors };
  };
}

/**
 * Drops what only points back into the CQL source (`locator`, `localId`, and the empty `annotation` list every node
 * carries once annotations are off): no engine evaluates them, and they made up 40 % of the ELM. Drops too the empty
 * `signature` list every operator call carries at SignatureLevel.None: an absent list is the same empty list to an ELM
 * reader (the ELM schema's `signature` is an optional repeated element), and cql-execution never reads it; it was
 * 4,609 empty lists, about 9 % of the OHSU ELM. A Library's `content.data` is a FHIR base64Binary held in one JSON
 * string, which FHIR validators (Medplum's among them) refuse past 1 MiB (test/dtr/questionnaires.test.ts guards it);
 * the largest policy's ELM had grown past that again with the s42 request-order course limits (1,051,924).
 * Empty `relationship` and `let` lists of a Query go too (about 3 %): both are optional repeated elements of the ELM
 * Query, and cql-execution builds an absent one as the empty list.
 */
const EMPTY_DROPPED = new Set(['annotation', 'signature', 'relationship', 'let']);

function compactElm(key: string, value: unknown): unknown {
  if (key === 'locator' || key === 'localId') return undefined;
  if (EMPTY_DROPPED.has(key) && Array.isArray(value) && value.length === 0) return undefined;
  return value;
}
