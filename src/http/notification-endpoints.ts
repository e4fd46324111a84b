import { lookup } from 'node:dns/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { LookupFunction } from 'node:net';

/**
 * Where PAS subscription notifications may go (design.md §8 "Notification endpoints"). A Subscription's
 * `channel.endpoint` is chosen by a client, and the payer server POSTs to it: without limits a client could point it
 * at the server's own network (loopback, cloud metadata on link-local 169.254.169.254, private ranges) and use the
 * notifier as a proxy (server-side request forgery, OWASP SSRF Prevention Cheat Sheet). So an endpoint must resolve
 * only to public addresses, unless SUBSCRIPTION_ENDPOINTS_ALLOW names its host or the network it resolves into; in
 * production it must be https. Checked when the Subscription is created or updated, and again on the address each
 * notification is actually sent to (DNS can change between the two).
 */

/** One SUBSCRIPTION_ENDPOINTS_ALLOW entry: a network (CIDR or single address) or a host name pattern. */
export type AllowEntry = { kind: 'network'; version: 4 | 6; base: bigint; prefix: number } | { kind: 'host'; host: string; subdomains: boolean };

/** Resolves a host name to every address it has (tests inject one; default the system resolver). */
export type HostResolver = (host: string) => Promise<{ address: string; family: number }[]>;

export interface EndpointPolicy {
  /** Production: only `https` endpoints. */
  httpsOnly: boolean;
  allow: AllowEntry[];
  resolve?: HostResolver;
}

/**
 * What SUBSCRIPTION_ENDPOINTS_ALLOW defaults to outside production: loopback and the private ranges (RFC 1918,
 * fc00::/7), so local receivers, tests and a conformance kit's listener on a Docker network work in a sandbox.
 * Link-local (cloud metadata) and carrier-grade NAT stay refused everywhere unless named.
 */
export const DEV_ENDPOINTS_ALLOW = '127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7';

/** An endpoint PriorPath will not send to; `reason` says why, without any notification content. */
export class EndpointRefused extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'EndpointRefused';
  }
}

interface Ip {
  version: 4 | 6;
  value: bigint;
}

const V4_BITS = 32;
const V6_BITS = 128;

function parseV4(s: string): bigint {
  return s.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function parseV6(s: string): bigint {
  let text = s;
  // A trailing dotted quad (::ffff:10.0.0.1) is the last two groups.
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = parseV4(dotted[2]);
    text = `${dotted[1]}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** An IP address literal (brackets and an IPv6 zone allowed), or undefined when `s` is not one. */
export function parseIp(s: string): Ip | undefined {
  const bare = s.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  const version = isIP(bare);
  if (version === 4) return { version: 4, value: parseV4(bare) };
  if (version === 6) return { version: 6, value: parseV6(bare) };
  return undefined;
}

const inNetwork = (ip: Ip, version: 4 | 6, base: bigint, prefix: number): boolean => {
  if (ip.version !== version) return false;
  const shift = BigInt((version === 4 ? V4_BITS : V6_BITS) - prefix);
  return ip.value >> shift === base >> shift;
};

const net = (cidr: string, name: string) => {
  const [addr, prefix] = cidr.split('/');
  const ip = parseIp(addr)!;
  return { version: ip.version, base: ip.value, prefix: Number(prefix), name };
};

/** Addresses no notification goes to unless allowed (IANA special-purpose registries, RFC 6890). */
const SPECIAL = [
  net('0.0.0.0/8', 'unspecified'),
  net('127.0.0.0/8', 'loopback'),
  net('169.254.0.0/16', 'link-local'),
  net('10.0.0.0/8', 'private'),
  net('172.16.0.0/12', 'private'),
  net('192.168.0.0/16', 'private'),
  // Carrier-grade NAT space: some clouds serve instance metadata from it (100.100.100.200).
  net('100.64.0.0/10', 'shared (carrier-grade NAT)'),
  net('192.0.0.0/24', 'reserved'),
  net('198.18.0.0/15', 'reserved'),
  net('224.0.0.0/4', 'multicast'),
  net('240.0.0.0/4', 'reserved'),
  net('::/128', 'unspecified'),
  net('::1/128', 'loopback'),
  net('fe80::/10', 'link-local'),
  net('fc00::/7', 'private'),
  net('fec0::/10', 'private'),
  net('ff00::/8', 'multicast'),
];

/**
 * The IPv4 address an IPv6 address stands for when it embeds one (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96,
 * IPv4-compatible ::/96, 6to4 2002::/16): `::ffff:127.0.0.1` reaches 127.0.0.1 and is judged as it.
 */
function effective(ip: Ip): Ip {
  if (ip.version === 4) return ip;
  const top96 = ip.value >> 32n;
  if (top96 === 0xffffn || top96 === 0x64ff9bn << 64n || (top96 === 0n && ip.value > 1n)) return { version: 4, value: ip.value & 0xffffffffn };
  if (ip.value >> 112n === 0x2002n) return { version: 4, value: (ip.value >> 80n) & 0xffffffffn };
  return ip;
}

/** Why an address is not public (`loopback`, `link-local`, `private`, …), or undefined for a public address. */
export function addressCategory(address: string): string | undefined {
  const ip = parseIp(address);
  if (!ip) return undefined;
  const e = effective(ip);
  return SPECIAL.find((n) => inNetwork(e, n.version, n.base, n.prefix))?.name;
}

/**
 * Parses SUBSCRIPTION_ENDPOINTS_ALLOW: comma- or space-separated CIDRs (`10.20.0.0/16`, `fd12:3456::/48`), single
 * addresses, host names (`ehr.partner.example`) and `*.`-prefixed domains (`*.partner.example`: its subdomains).
 * Throws naming the bad entry.
 */
export function parseEndpointAllowList(text: string): AllowEntry[] {
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((entry): AllowEntry => {
      const [addr, prefixText, extra] = entry.split('/');
      const ip = parseIp(addr);
      if (ip) {
        const max = ip.version === 4 ? V4_BITS : V6_BITS;
        const prefix = prefixText === undefined ? max : Number(prefixText);
        if (extra !== undefined || !/^\d*$/.test(prefixText ?? '') || !Number.isInteger(prefix) || prefix < 0 || prefix > max) {
          throw new Error(`"${entry}" is not a CIDR (prefix 0 to ${max})`);
        }
        return { kind: 'network', version: ip.version, base: ip.value, prefix };
      }
      const m = /^(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)$/i.exec(entry);
      if (!m) throw new Error(`"${entry}" is neither a CIDR, an IP address, a host name nor *.domain`);
      return { kind: 'host', host: m[2].toLowerCase(), subdomains: Boolean(m[1]) };
    });
}

const hostAllowed = (host: string, allow: AllowEntry[]) =>
  allow.some((a) => a.kind === 'host' && (a.subdomains ? host.endsWith(`.${a.host}`) : host === a.host));

const addressAllowed = (address: string, allow: AllowEntry[]) => {
  const ip = parseIp(address);
  if (!ip) return false;
  const e = effective(ip);
  return allow.some((a) => a.kind === 'network' && (inNetwork(e, a.version, a.base, a.prefix) || inNetwork(ip, a.version, a.base, a.prefix)));
};

const systemResolver: HostResolver = async (host) => lookup(host, { all: true, verbatim: true });

/** The URL problems that need no lookup: scheme (https in production) and credentials in the URL. */
export function endpointUrlProblem(url: URL, policy: EndpointPolicy): string | undefined {
  if (url.protocol !== 'https:' && (policy.httpsOnly || url.protocol !== 'http:')) {
    return policy.httpsOnly ? 'must be an https URL' : 'must be an absolute http(s) URL';
  }
  // Credentials belong in channel.header (Authorization), not in a URL that is logged and shown back.
  if (url.username || url.password) return 'must not carry credentials (send them in channel.header)';
  return undefined;
}

/**
 * The addresses a notification to `url` may be sent to: every address its host resolves to, each public or allowed
 * (a host the allow list names may resolve anywhere). Throws EndpointRefused when the URL or any address is not
 * allowed, or the host does not resolve; other resolver errors (a DNS server not answering) are thrown as they are.
 */
export async function allowedAddresses(url: URL, policy: EndpointPolicy): Promise<{ address: string; family: number }[]> {
  const problem = endpointUrlProblem(url, policy);
  if (problem) throw new EndpointRefused(problem);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  const literal = parseIp(host);
  let addresses: { address: string; family: number }[];
  if (literal) addresses = [{ address: host, family: literal.version }];
  else {
    try {
      addresses = await (policy.resolve ?? systemResolver)(host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') throw new EndpointRefused(`host ${host} does not resolve`);
      throw err;
    }
    if (addresses.length === 0) throw new EndpointRefused(`host ${host} does not resolve`);
  }
  if (!literal && hostAllowed(host, policy.allow)) return addresses;
  for (const a of addresses) {
    const category = addressCategory(a.address);
    if (category && !addressAllowed(a.address, policy.allow)) {
      throw new EndpointRefused(`${literal ? host : `host ${host} resolves to ${a.address}`}, a ${category} address (allow it in SUBSCRIPTION_ENDPOINTS_ALLOW)`);
    }
  }
  return addresses;
}

/** How one notification is POSTed; `address` is the checked address to connect to (tests inject a fake). */
export type NotifyFetch = (
  url: string,
  init: { method: 'POST'; headers: Record<string, string>; body: string; signal: AbortSignal; address?: { address: string; family: number } },
) => Promise<{ ok: boolean; status: number }>;

/**
 * POSTs a notification to the checked address and nowhere else: the connection's lookup answers with that address,
 * so a DNS answer that changed after the check is never used (no rebinding), and redirects are not followed (a 3xx is
 * a failed delivery). TLS still verifies the certificate against the URL's host name.
 */
export const pinnedPost: NotifyFetch = (url, init) =>
  new Promise((resolve, reject) => {
    const target = new URL(url);
    const pinned: LookupFunction | undefined = init.address
      ? (_host, options, callback) => {
          const { address, family } = init.address!;
          if ((options as { all?: boolean }).all) (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family }]);
          else callback(null, address, family);
        }
      : undefined;
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(target, { method: 'POST', headers: { ...init.headers, 'Content-Length': String(Buffer.byteLength(init.body)) }, signal: init.signal, ...(pinned ? { lookup: pinned } : {}) }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ok: (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300, status: res.statusCode ?? 0 }));
      res.on('error', reject);
    });
    req.on('error', (err) => reject(init.signal.aborted ? Object.assign(new Error('timeout'), { name: 'TimeoutError' }) : err));
    req.end(init.body);
  });
