import { describe, expect, it } from 'vitest';
import type { LookupAddress } from 'node:dns';
import { ehrAddressProblem, ehrLookup } from '../../src/hooks/ehr-address.js';
import { httpGet } from '../../src/hooks/http-get.js';

/** docs/design.md §4 "Prefetch": where the EHR is read. */
describe('addresses that are never an EHR', () => {
  it('refuses cloud metadata and other link-local, unspecified and multicast addresses, in any IPv6 spelling', () => {
    for (const a of ['169.254.169.254', '169.254.0.1', 'fe80::1', '::ffff:169.254.169.254', '0.0.0.0', '::', '224.0.0.1', 'ff02::1']) {
      expect(ehrAddressProblem(a), a).toBeDefined();
    }
  });

  it('allows loopback, private networks (where hospital EHRs live) and public addresses', () => {
    for (const a of ['127.0.0.1', '::1', '10.1.2.3', '172.16.5.4', '192.168.1.10', 'fd12:3456::1', '8.8.8.8', '2001:4860:4860::8888']) {
      expect(ehrAddressProblem(a), a).toBeUndefined();
    }
  });

  it('an EHR read to a link-local address fails before any connection is made', async () => {
    await expect(httpGet('http://169.254.169.254/latest/meta-data', { headers: {} })).rejects.toThrow(/link-local address, which is never an EHR/);
  });

  it('the EHR connections resolve names as the system does, answering every address when asked for all', async () => {
    const all = await new Promise<LookupAddress[]>((resolve, reject) =>
      ehrLookup('localhost', { all: true }, ((err: Error | null, addresses: LookupAddress[]) => (err ? reject(err) : resolve(addresses))) as never),
    );
    expect(all.length).toBeGreaterThan(0);
    expect(all.every((a) => ehrAddressProblem(a.address) === undefined)).toBe(true);
    const one = await new Promise<string>((resolve, reject) => ehrLookup('localhost', {}, (err, address) => (err ? reject(err) : resolve(address as string))));
    expect(['127.0.0.1', '::1']).toContain(one);
  });
});
