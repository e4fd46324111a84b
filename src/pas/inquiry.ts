import type { Bundle, Claim, Extension, Identifier, Patient } from '@medplum/fhirtypes';
import { badRequest } from '../errors.js';
import type { PasQuery, PasSubmission } from '../storage/storage.js';
import { EXT_ADMINISTRATION_REFERENCE_NUMBER, EXT_AUTHORIZATION_NUMBER } from './pas-urls.js';
import { BundleIndex, assertEntriesAgree, identifierKey } from './request-bundle.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What an inquiry asks for: search keys, and the member identifiers a match must share (when the inquiry names a patient). */
export interface Inquiry {
  query: PasQuery;
  patientIdentifiers: string[];
  /**
   * The patient's requests, asked when `query` finds none and the inquiry names no REF-NT or REF-BB: in PAS 2.2.1 the
   * inquiry Claim's identifier is the inquiry's own TRN (FHIR-55616), so it finds a request only when a client reuses
   * the original Claim's identifier there (as PAS 2.0.1 clients and the Inferno presets do). For 2.2.1 inquiries only.
   */
  byPatient?: PasQuery;
}

function stringsOf(extensions: Extension[] | undefined, url: string): string[] {
  return (extensions ?? []).filter((e) => e.url === url && typeof e.valueString === 'string' && e.valueString !== '').map((e) => e.valueString!);
}

function fromInquiryBundle(bundle: Bundle): Inquiry {
  const entries = Array.isArray(bundle.entry) ? bundle.entry : [];
  const claim = entries.find((e) => e.resource?.resourceType === 'Claim')?.resource as Claim | undefined;
  if (!claim) throw badRequest('A PAS inquiry Bundle holds the Claim (PASClaimInquiry) to search by; this one has none', ['Bundle.entry']);
  const index = new BundleIndex(entries);
  // An entry whose RESTful fullUrl disagrees with its resource does not say which patient or Claim it is (as at $submit).
  assertEntriesAgree(index);
  const patient = claim.patient?.reference ? index.resolve(claim.patient.reference)?.resource : undefined;
  const patientIdentifiers = patient?.resourceType === 'Patient' ? ((patient as Patient).identifier ?? []).map(identifierKey).filter((k): k is string => !!k) : [];

  const identifiers = (claim.identifier ?? []).map(identifierKey).filter((k): k is string => !!k);
  const authorizationNumbers = [...stringsOf(claim.extension, EXT_AUTHORIZATION_NUMBER), ...(claim.item ?? []).flatMap((i) => stringsOf(i.extension, EXT_AUTHORIZATION_NUMBER))];
  const references = [...stringsOf(claim.extension, EXT_ADMINISTRATION_REFERENCE_NUMBER), ...(claim.item ?? []).flatMap((i) => stringsOf(i.extension, EXT_ADMINISTRATION_REFERENCE_NUMBER))];
  const query: PasQuery = {
    claimIdentifiers: identifiers,
    bundleIdentifiers: identifiers,
    preAuthRefs: [...authorizationNumbers, ...references],
    ids: references,
  };
  const keys = identifiers.length + authorizationNumbers.length + references.length;
  if (keys === 0 && patientIdentifiers.length === 0) {
    throw badRequest('The inquiry names nothing to search by: give the original Claim identifier, an authorization number (REF-BB) or a reference number (REF-NT), or the patient member identifier', ['Claim']);
  }
  if (keys === 0) query.patientIdentifiers = patientIdentifiers;
  const refs = authorizationNumbers.length + references.length;
  return { query, patientIdentifiers, ...(refs === 0 && identifiers.length > 0 && patientIdentifiers.length > 0 ? { byPatient: { patientIdentifiers } } : {}) };
}

/**
 * Reads a `Claim/$inquire` request (PAS 2.2.1 Claim-inquiry): a PAS inquiry Bundle (bare or as the Parameters
 * `resource`), searched by the authorization number (REF-BB) or PriorPath's reference number (REF-NT, the
 * ClaimResponse id), or by the original Claim's identifier, within the inquiry's patient; an inquiry naming neither
 * REF number whose Claim identifier is its own TRN (PAS 2.2.1, FHIR-55616) finds the patient's requests
 * (`byPatient`). For tools and tests, a Parameters may instead name `identifier` (the original request Bundle's or
 * Claim's identifier, as valueIdentifier or "system|value") and `preAuthRef` (valueString) directly.
 */
export function parseInquiry(body: unknown): Inquiry {
  if (!isObject(body)) throw badRequest('Claim/$inquire expects a PAS inquiry Bundle or a Parameters resource');
  if (body.resourceType === 'Bundle') return fromInquiryBundle(body as unknown as Bundle);
  if (body.resourceType !== 'Parameters') throw badRequest(`Claim/$inquire expects a PAS inquiry Bundle or a Parameters resource, got ${String(body.resourceType ?? 'no resourceType')}`);
  const params = (Array.isArray(body.parameter) ? body.parameter : []).filter(isObject);
  const resource = params.find((p) => p.name === 'resource')?.resource;
  if (isObject(resource)) {
    if (resource.resourceType !== 'Bundle') throw badRequest('The "resource" parameter of $inquire must be a PAS inquiry Bundle', ['Parameters.parameter']);
    return fromInquiryBundle(resource as unknown as Bundle);
  }
  const identifiers: string[] = [];
  const refs: string[] = [];
  for (const p of params) {
    if (p.name === 'identifier') {
      const k = isObject(p.valueIdentifier) ? identifierKey(p.valueIdentifier as Identifier) : typeof p.valueString === 'string' ? p.valueString : undefined;
      if (k) identifiers.push(k.includes('|') ? k : `|${k}`);
    }
    if (p.name === 'preAuthRef' && typeof p.valueString === 'string' && p.valueString) refs.push(p.valueString);
  }
  if (identifiers.length === 0 && refs.length === 0) {
    throw badRequest('Claim/$inquire: the Parameters names no "resource" (inquiry Bundle), "identifier" or "preAuthRef"', ['Parameters.parameter']);
  }
  return { query: { bundleIdentifiers: identifiers, claimIdentifiers: identifiers, preAuthRefs: refs, ids: refs }, patientIdentifiers: [] };
}

/** PAS spec-53: when both the inquiry and the stored request name the patient's identifiers, they must share one. */
export function samePatient(inquiry: Inquiry, s: PasSubmission): boolean {
  if (inquiry.patientIdentifiers.length === 0 || s.patientIdentifiers.length === 0) return true;
  return inquiry.patientIdentifiers.some((i) => s.patientIdentifiers.includes(i));
}
