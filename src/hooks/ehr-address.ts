import { lookup } from 'node:dns';
import type { LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { addressCategory } from '../http/notification-endpoints.js';

/**
 * Addresses that are never an EHR's FHIR server (docs/design.md §4 "Prefetch", where the EHR is read). A hook's `fhirServer` is
 * named by the caller, and the service sends its reads there with the hook's access token: without a limit a caller
 * could point it at the host's cloud metadata (link-local 169.254.169.254, fe80::/10) and use the service as a proxy
 * (server-side request forgery, OWASP SSRF Prevention Cheat Sheet). Loopback and the private ranges stay allowed:
 * hospital EHRs live on private networks, and a sandbox's on loopback.
 */
const NEVER_AN_EHR = new Set(['unspecified', 'link-local', 'multicast', 'reserved']);

/** Why `address` (an IP literal) cannot be an EHR, or undefined when it can. */
export function ehrAddressProblem(address: string): string | undefined {
  const category = addressCategory(address);
  return category && NEVER_AN_EHR.has(category) ? `a ${category} address` : undefined;
}

/** Why the URL's host, when it is an IP literal, cannot be an EHR; undefined for a name or an allowed address. */
export function ehrUrlProblem(url: URL): string | undefined {
  return ehrAddressProblem(url.hostname.replace(/^\[(.*)\]$/, '$1'));
}

/**
 * The EHR connections' name lookup: the system resolver, refusing a name that resolves to an address that is never an
 * EHR. Checked at connection time, on the address actually connected to, so a DNS answer cannot steer a kept-alive
 * agent to the metadata service (IP literals skip the lookup; `ehrUrlProblem` checks them before the request).
 */
export const ehrLookup: LookupFunction = (hostname, options, callback) => {
  lookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
    if (err) return (callback as (e: NodeJS.ErrnoException) => void)(err);
    const refused = addresses.find((a) => ehrAddressProblem(a.address));
    if (refused) {
      const e: NodeJS.ErrnoException = new Error(`host ${hostname} resolves to ${refused.address}, ${ehrAddressProblem(refused.address)}, which is never an EHR`);
      e.code = 'EHR_ADDRESS_REFUSED';
      return (callback as (e: NodeJS.ErrnoException) => void)(e);
    }
    if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
    callback(null, addresses[0].address, addresses[0].family);
  });
};
