import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The FHIR 4.0.1 model as the CQL translator sees it (cql/framework/fhir-modelinfo-4.0.1.xml): each class's elements
 * with their type, whether they repeat, and the choices of a `[x]` element. The FHIRPath-to-CQL translator reads it to
 * know what a path step yields (a list or one value, a FHIR primitive to unwrap, a choice to cast), so the CQL it
 * writes type-checks exactly as the translator will check it.
 */
export interface ModelElement {
  /** Qualified type (`FHIR.CodeableConcept`, `System.String`); absent for a choice. */
  type?: string;
  list: boolean;
  /** Unqualified FHIR type names of a choice element (`value[x]`). */
  choices?: string[];
}

export interface ModelClass {
  name: string;
  base?: string;
  elements: Map<string, ModelElement>;
}

/** The FHIR 4.0.1 model info (classes, elements, base types) that the CQL translation types its expressions against. */
export class FhirModel {
  constructor(private readonly classes: Map<string, ModelClass>) {}

  has(name: string): boolean {
    return this.classes.has(name);
  }

  /** The element `name` of class `cls` or of one of its base classes. */
  element(cls: string, name: string): ModelElement | undefined {
    for (let c = this.classes.get(cls); c; c = c.base ? this.classes.get(c.base) : undefined) {
      const e = c.elements.get(name);
      if (e) return e;
    }
    return undefined;
  }

  /** The System type a FHIR primitive class wraps in its `value` element (FHIR.code → String), else undefined. */
  primitiveValue(cls: string): string | undefined {
    const c = this.classes.get(cls);
    const v = c?.elements.get('value');
    return v?.type?.startsWith('System.') && c?.base !== undefined ? v.type.slice('System.'.length) : undefined;
  }

  /** Whether `cls` is `ancestor` or derives from it (SimpleQuantity and Age are Quantities). */
  isA(cls: string, ancestor: string): boolean {
    for (let c: string | undefined = cls; c; c = this.classes.get(c)?.base) if (c === ancestor) return true;
    return false;
  }
}

const attr = (tag: string, name: string) => tag.match(new RegExp(`\\s${name}="([^"]*)"`))?.[1];
const unqualified = (t: string | undefined) => t?.replace(/^FHIR\./, '');

/** Parses the FHIR model info once (the file is regular XML written by the CQL framework's tooling). */
export function loadFhirModel(root: string): FhirModel {
  const xml = readFileSync(join(root, 'cql', 'framework', 'fhir-modelinfo-4.0.1.xml'), 'utf8');
  const classes = new Map<string, ModelClass>();
  for (const m of xml.matchAll(/<(?:ns4:)?typeInfo\b([^>]*?)(\/>|>([\s\S]*?)<\/(?:ns4:)?typeInfo>)/g)) {
    const head = m[1];
    if (attr(head, 'xsi:type') !== 'ClassInfo') continue;
    const name = attr(head, 'name');
    if (!name) continue;
    const base = attr(head, 'baseType');
    const elements = new Map<string, ModelElement>();
    for (const e of (m[3] ?? '').matchAll(/<element\b([^>]*?)(\/>|>([\s\S]*?)<\/element>)/g)) {
      const ename = attr(e[1], 'name');
      if (!ename) continue;
      const direct = attr(e[1], 'elementType');
      if (direct) {
        elements.set(ename, { type: direct, list: false });
        continue;
      }
      const body = e[3] ?? '';
      const spec = body.match(/<elementTypeSpecifier\b([^>]*?)(\/>|>([\s\S]*?)<\/elementTypeSpecifier>)/);
      if (!spec) continue;
      const kind = attr(spec[1], 'xsi:type');
      if (kind === 'ListTypeSpecifier') {
        const inner = attr(spec[1], 'elementType');
        if (inner) elements.set(ename, { type: inner, list: true });
      } else if (kind === 'ChoiceTypeSpecifier') {
        const choices = [...(spec[3] ?? '').matchAll(/<choice\b([^>]*?)\/>/g)]
          .map((c) => (attr(c[1], 'namespace') === 'FHIR' ? attr(c[1], 'name') : undefined))
          .filter((c): c is string => !!c);
        elements.set(ename, { list: false, choices });
      } else if (kind === 'NamedTypeSpecifier') {
        const ns = attr(spec[1], 'namespace');
        const n = attr(spec[1], 'name');
        if (ns && n) elements.set(ename, { type: `${ns}.${n}`, list: false });
      }
    }
    classes.set(name, { name, base: base?.startsWith('FHIR.') ? unqualified(base) : undefined, elements });
  }
  return new FhirModel(classes);
}
