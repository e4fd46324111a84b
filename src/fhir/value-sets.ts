import type { Coding, ValueSet } from '@medplum/fhirtypes';

/** CRD ext-billing-options: likely billing codes a client puts on the ordered item's code (CRD BillingOptions.fsh). */
export const BILLING_OPTIONS_URL = 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options';

/**
 * The codings of a concept together with the billing codes its `ext-billing-options` extensions carry: a server
 * SHALL consider them (CRD [billopt-3]), e.g. HCPCS J9039 alongside an EHR's local drug code.
 */
export function codingsWithBillingOptions(concept: { coding?: Coding[]; extension?: { url: string; valueCodeableConcept?: { coding?: Coding[] } }[] } | undefined): Coding[] {
  if (!concept) return [];
  const billing = (concept.extension ?? []).filter((e) => e.url === BILLING_OPTIONS_URL).flatMap((e) => e.valueCodeableConcept?.coding ?? []);
  return billing.length > 0 ? [...(concept.coding ?? []), ...billing] : (concept.coding ?? []);
}

/** The HCPCS Level II system URI PriorPath emits (CRD `aliases.fsh`); see `cds-services/README.md`. */
export const HCPCS_SYSTEM = 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets';
export const NDC_SYSTEM = 'http://hl7.org/fhir/sid/ndc';
/** ICD-10-CM and WHO ICD-10: codes written with a dot after the category (C91.00), as FHIR's code system pages say. */
export const ICD10_SYSTEMS: ReadonlySet<string> = new Set(['http://hl7.org/fhir/sid/icd-10-cm', 'http://hl7.org/fhir/sid/icd-10']);

/**
 * ICD-10-CM chapters that name no disease (design.md §6 "Clinical readings", diagnosis): 18, symptoms, signs and
 * abnormal findings (R00-R99: R50.9 fever, R53.83 fatigue); 20, external causes (V00-Y99); 21, factors influencing
 * health status and contact with services (Z00-Z99: Z51.11 chemotherapy encounter, Z79.x long-term drug therapy). The
 * server (src/policies/evaluation-data.ts namesDisease), the DTR pre-fill (src/dtr/expressions.ts) and the CQL (src/cql/cql-library-source.ts "Names Disease") read the same
 * first letters; bcbsnc `cancerDiagnosis` counts only the other letters as naming an indication.
 */
export const ICD10CM_NO_DISEASE_LETTERS = 'RVWXYZ';

const ICD10_UNDOTTED = /^[A-Za-z][0-9][0-9A-Za-z][0-9A-Za-z]{1,4}$/;

/**
 * The canonical spelling of an ICD-10(-CM) code: trimmed, upper case, with the dot after the three-character
 * category. Claims data and many EHR interfaces drop the dot (C9100 for C91.00); the dot's place is fixed, so the
 * reading is unambiguous (docs/design.md §6 "Standard codes first"). Other strings come back trimmed and
 * upper-cased; a code already canonical comes back as the same string.
 */
export function canonicalIcd10Code(code: string): string {
  const t = code.trim().toUpperCase();
  return ICD10_UNDOTTED.test(t) ? `${t.slice(0, 3)}.${t.slice(3)}` : t;
}
/**
 * ValueSet extension naming a drug (ingredient or brand) whose orders belong to the set even when no listed code is on
 * them: design.md §6 "Clinical readings" (match by RxNorm at any level, and by ingredient name as a fallback).
 */
export const MATCH_NAME_EXT = 'https://priorpath.dev/fhir/StructureDefinition/valueset-match-name';

/**
 * Other spellings of a code system seen in the wild, mapped to the one we store. HCPCS arrives under three URIs
 * (CRD IG, THO/PAS, and the Inferno kits); all three mean the same codes.
 */
const SYSTEM_ALIASES: Record<string, string> = {
  'http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets': HCPCS_SYSTEM,
  'https://bluebutton.cms.gov/resources/codesystem/hcpcs': HCPCS_SYSTEM,
  'http://bluebutton.cms.gov/resources/codesystem/hcpcs': HCPCS_SYSTEM,
};

/** Canonical form of a code system URI. */
export function normalizeSystem(system: string | undefined): string | undefined {
  return system === undefined ? undefined : (SYSTEM_ALIASES[system] ?? system);
}

/**
 * Normalises an NDC to the 11-digit 5-4-2 form. Accepts 10-digit hyphenated forms (4-4-2, 5-3-2, 5-4-1) and
 * 11-digit forms with or without hyphens; returns undefined when the string is not an NDC.
 */
export function normalizeNdc(code: string): string | undefined {
  const trimmed = code.trim();
  if (/^\d{11}$/.test(trimmed)) return trimmed;
  const parts = trimmed.split('-');
  if (parts.length === 3 && parts.every((p) => /^\d+$/.test(p))) {
    const [a, b, c] = parts;
    const total = a.length + b.length + c.length;
    if (total === 11 && a.length === 5 && b.length === 4 && c.length === 2) return a + b + c;
    if (total === 10) return a.padStart(5, '0') + b.padStart(4, '0') + c.padStart(2, '0');
  }
  return undefined;
}

/** The key a Coding is stored under: normalised system, a pipe, normalised code (NDC 11-digit, ICD-10 dotted). */
export function codingKey(system: string | undefined, code: string | undefined): string | undefined {
  if (!system || !code) return undefined;
  const sys = normalizeSystem(system) as string;
  const c = sys === NDC_SYSTEM ? (normalizeNdc(code) ?? code) : ICD10_SYSTEMS.has(sys) ? canonicalIcd10Code(code) : code.trim();
  return `${sys}|${c}`;
}

/** `codingKey` by system and code, remembered (a bound, not an eviction policy): see `storedKey`. */
const storedKeys = new Map<unknown, Map<unknown, string | undefined>>();
let storedKeyCount = 0;
/**
 * `codingKey`, made once per system and code: membership is asked hundreds of times a hook (every `memberOf` over a
 * diagnosis's codings, every drug-set filter over the orders), nearly always of the same few codes, and the key is a
 * function of the two strings alone.
 */
function storedKey(system: string | undefined, code: string | undefined): string | undefined {
  let bySystem = storedKeys.get(system);
  if (bySystem === undefined) storedKeys.set(system, (bySystem = new Map()));
  if (bySystem.has(code)) return bySystem.get(code);
  const key = codingKey(system, code);
  if (++storedKeyCount > 50_000) {
    storedKeys.clear();
    storedKeyCount = 0;
  } else bySystem.set(code, key);
  return key;
}

/**
 * Local value sets indexed for O(1) membership tests. PriorPath never calls a terminology server at run time
 * (design.md §4 "Governed orders": no terminology server): membership is decided on each ValueSet's local `expansion`.
 */
export class ValueSetIndex {
  private readonly byUrl = new Map<string, { resource: ValueSet; keys: Set<string>; products: Set<string>; names: string[] }>();

  add(vs: ValueSet): void {
    if (!vs.url) throw new Error(`ValueSet ${vs.id ?? '?'} has no url`);
    const keys = new Set<string>();
    // The labeler-product part (first 9 of 11 digits) of every package NDC the set lists: an order may name the product
    // without its package (see ndcProductReadings).
    const products = new Set<string>();
    for (const c of vs.expansion?.contains ?? []) {
      const key = codingKey(c.system, c.code);
      if (key) keys.add(key);
      const ndc = normalizeSystem(c.system) === NDC_SYSTEM && c.code ? normalizeNdc(c.code) : undefined;
      if (ndc) products.add(ndc.slice(0, 9));
    }
    const names = (vs.extension ?? [])
      .filter((e) => e.url === MATCH_NAME_EXT && typeof e.valueString === 'string' && e.valueString.trim().length > 2)
      .map((e) => e.valueString!.trim().toLowerCase());
    this.byUrl.set(vs.url, { resource: vs, keys, products, names });
    if (vs.version) this.byUrl.set(`${vs.url}|${vs.version}`, { resource: vs, keys, products, names });
  }

  /** The drug names a set also matches by (lower case; empty for sets matched by code only). */
  namesOf(url: string): string[] {
    return this.byUrl.get(url)?.names ?? [];
  }

  /**
   * The set's drug name found in a concept's text or coding displays (case-insensitive), or undefined. The fallback
   * for orders no listed code recognises (design.md §6 "Clinical readings"): e.g. "ponatinib" in
   * `medicationCodeableConcept.text`.
   */
  nameIn(url: string, concept: { text?: string; coding?: { display?: string }[] } | undefined): string | undefined {
    const names = this.byUrl.get(url)?.names;
    if (!names || names.length === 0 || !concept) return undefined;
    const texts = [concept.text, ...(concept.coding ?? []).map((c) => c.display)]
      .filter((t): t is string => typeof t === 'string')
      .map((t) => t.toLowerCase());
    return names.find((n) => texts.some((t) => t.includes(n)));
  }

  has(url: string): boolean {
    return this.byUrl.has(url);
  }

  get(url: string): ValueSet | undefined {
    return this.byUrl.get(url)?.resource;
  }

  all(): ValueSet[] {
    return [...new Set([...this.byUrl.values()].map((v) => v.resource))];
  }

  /** True when the coding is in the value set; throws for an unknown value set (a content error, caught at load). */
  contains(url: string, coding: Pick<Coding, 'system' | 'code'>): boolean {
    const entry = this.byUrl.get(url);
    if (!entry) throw new Error(`Unknown value set ${url}`);
    const key = storedKey(coding.system, coding.code);
    if (key !== undefined && entry.keys.has(key)) return true;
    // A 10-digit NDC written without hyphens could be 4-4-2, 5-3-2 or 5-4-1: it matches when any reading does.
    if (normalizeSystem(coding.system) === NDC_SYSTEM && coding.code && /^\d{10}$/.test(coding.code.trim())) {
      return tenDigitNdcReadings(coding.code.trim()).some((c) => entry.keys.has(`${NDC_SYSTEM}|${c}`));
    }
    // A product-level NDC (labeler-product, no package: 55513-160, 55513-0160) matches the packages the set lists of
    // that product (docs/terminology.md §5: NDCs also arrive product-only; contract review F6).
    if (normalizeSystem(coding.system) === NDC_SYSTEM && coding.code) {
      return ndcProductReadings(coding.code).some((p) => entry.products.has(p));
    }
    return false;
  }
}

/**
 * The 9-digit labeler-product forms (5-4, as in the 11-digit package code) a product-level NDC may stand for: hyphenated
 * 5-4, 5-3 or 4-4 (one reading each), 9 digits (5-4), or 8 digits without hyphens (5-3 or 4-4: both). Empty for any
 * other string, a package code included.
 */
export function ndcProductReadings(code: string): string[] {
  const t = code.trim();
  const parts = t.split('-');
  if (parts.length === 2 && parts.every((p) => /^\d+$/.test(p))) {
    const [labeler, product] = parts;
    if (labeler.length === 5 && (product.length === 4 || product.length === 3)) return [labeler + product.padStart(4, '0')];
    if (labeler.length === 4 && product.length === 4) return [`0${labeler}${product}`];
    return [];
  }
  if (/^\d{9}$/.test(t)) return [t];
  if (/^\d{8}$/.test(t)) return [`${t.slice(0, 5)}0${t.slice(5)}`, `0${t}`];
  return [];
}

/** The three 11-digit forms an unhyphenated 10-digit NDC may stand for (4-4-2, 5-3-2, 5-4-1). */
export function tenDigitNdcReadings(code: string): string[] {
  return [`0${code}`, `${code.slice(0, 5)}0${code.slice(5)}`, `${code.slice(0, 9)}0${code.slice(9)}`];
}
