/**
 * The CQL-to-ELM translation of `npm run libraries`, with the CQL framework's own translator (@cqframework/cql) and
 * the model info and FHIRHelpers it needs (cql/framework/, Apache-2.0). Generation time only: the service never
 * translates CQL.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CqlTranslator,
  LibraryManager,
  ModelManager,
  createLibrarySourceProvider,
  createModelInfoProvider,
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
  const libraries = new LibraryManager(models);
  libraries.librarySourceLoader.registerProvider(
    createLibrarySourceProvider((id: string) => {
      if (id === 'FHIRHelpers') return stringAsSource(read('FHIRHelpers-4.0.1.cql'));
      return extraLibraries[id] !== undefined ? stringAsSource(extraLibraries[id]) : null;
    }),
  );
  return (cql: string): Translation => {
    const t = CqlTranslator.fromText(cql, libraries);
    const errors: string[] = [];
    for (const e of t.errors?.asJsReadonlyArrayView?.() ?? []) errors.push(String(e.message));
    return { elm: JSON.parse(t.toJson()) as Record<string, unknown>, errors };
  };
}
