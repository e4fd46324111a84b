import type { Claim, ClaimItem, ClaimSupportingInfo, Extension, Identifier } from '@medplum/fhirtypes';
import { badRequest } from '../errors.js';
import { EXT_CERTIFICATION_TYPE, EXT_INFO_CANCELLED, EXT_INFO_CHANGED, PAS_CLAIM_UPDATE, X12_1322 } from './pas-urls.js';

/** What a PAS Claim Update asks of one item of the request it updates. */
export type ItemChange = 'added' | 'changed' | 'cancelled';

/**
 * A PAS Claim Update as read from its Claim (PAS 2.2.1 `profile-claim-update`; specification §"Updating Authorization
 * Requests", spec-65 to spec-72): the prior Claim it names, whether it cancels the whole request, and each item's
 * change. Sequences are the request's own: they stay the same across every version of the request (PAS item.sequence).
 */
export interface ClaimUpdate {
  /** `system|value` identifiers naming the prior request: `related.claim.identifier`, else the identifiers of the prior Claim in the Bundle. */
  priorIdentifiers: string[];
  /** `certificationType` 3 (Cancel) on the Claim: the whole request is cancelled. */
  cancelAll: boolean;
  /** Item sequence → what changed: cancelled (infoCancelled or item certificationType 3), else infoChanged added/changed. */
  items: Map<number, ItemChange>;
  /** A supportingInfo entry was added, changed or cancelled (new documentation for the pended items). */
  supportingInfoChanged: boolean;
}

const codeOf = (exts: Extension[] | undefined, url: string) =>
  exts?.find((e) => e.url === url)?.valueCodeableConcept?.coding?.find((c) => !c.system || c.system === X12_1322)?.code;

/** True when an item or supportingInfo entry is cancelled (PAS spec-69 infoCancelled; spec-70 certificationType 3). */
export function isCancelledEntry(e: ClaimItem | ClaimSupportingInfo): boolean {
  if (e.modifierExtension?.some((m) => m.url === EXT_INFO_CANCELLED && m.valueBoolean === true)) return true;
  return codeOf(e.extension, EXT_CERTIFICATION_TYPE) === '3';
}

/** True when the Claim is a PAS Claim Update: it names the prior Claim it updates (`related.claim`), or claims the profile. */
export function isClaimUpdate(claim: Claim): boolean {
  return !!claim.related?.some((r) => r.claim?.reference || r.claim?.identifier) || !!claim.meta?.profile?.some((p) => p.split('|')[0] === PAS_CLAIM_UPDATE);
}

/** True when a Claim Update cancels the whole request (certificationType 3 on the Claim, PAS spec "cancel the entire request"). */
export function cancelsRequest(claim: Claim): boolean {
  return isClaimUpdate(claim) && codeOf(claim.extension, EXT_CERTIFICATION_TYPE) === '3';
}

/**
 * Reads the update of a Claim Update. `priorIdentifiers` are the prior Claim's (found by the caller in the Bundle) or
 * `related.claim.identifier`. Throws a 400 when the Claim names no prior Claim that can be found by identifier.
 */
export function readClaimUpdate(claim: Claim, claimPath: string, prior: Claim | undefined, keyOf: (i: Identifier) => string | undefined): ClaimUpdate {
  const related = claim.related?.find((r) => r.claim?.reference || r.claim?.identifier);
  const priorIdentifiers = [
    ...(related?.claim?.identifier ? [keyOf(related.claim.identifier)] : []),
    ...(prior?.identifier ?? []).map(keyOf),
  ].filter((k): k is string => !!k);
  if (priorIdentifiers.length === 0) {
    throw badRequest(
      'A Claim Update names the request it updates in Claim.related.claim: a reference to the prior Claim included in the Bundle (PAS spec-65), with that Claim\'s identifier, or the identifier itself',
      [`${claimPath}.related`],
    );
  }
  const items = new Map<number, ItemChange>();
  for (const item of claim.item ?? []) {
    if (typeof item.sequence !== 'number') continue;
    if (isCancelledEntry(item)) items.set(item.sequence, 'cancelled');
    else {
      const mode = item.extension?.find((e) => e.url === EXT_INFO_CHANGED)?.valueCode;
      if (mode === 'added' || mode === 'changed') items.set(item.sequence, mode);
    }
  }
  const supportingInfoChanged = (claim.supportingInfo ?? []).some((s) => isCancelledEntry(s) || s.extension?.some((e) => e.url === EXT_INFO_CHANGED));
  return { priorIdentifiers, cancelAll: cancelsRequest(claim), items, supportingInfoChanged };
}
