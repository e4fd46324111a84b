/**
 * The payer API access token for the sandbox pages (design.md §8 "Who may call"). The payer FHIR API needs a SMART
 * Backend Services token; the sandbox EHR's back end obtains one with its own key (`POST /sandbox/payer-token`) and
 * hands the page only the short-lived access token, never a private key. Cached until shortly before it expires.
 */
let cached: { header: string; until: number } | undefined;
let pending: Promise<string> | undefined;

/** `{base}/fhir/...` on this page's origin → `{base}/sandbox/payer-token`; undefined for any other URL (the sandbox EHR too). */
function tokenUrlFor(url: string): string | undefined {
  const u = new URL(url, location.href);
  if (u.origin !== location.origin) return undefined;
  const at = u.pathname.indexOf('/fhir/');
  // `/sandbox/fhir/` is the sandbox EHR, not the payer API; metadata is public.
  if (at < 0 || u.pathname.slice(0, at).endsWith('/sandbox') || u.pathname.slice(at).startsWith('/fhir/metadata')) return undefined;
  return `${u.origin}${u.pathname.slice(0, at)}/sandbox/payer-token`;
}

/** An `Authorization` header for a call to the payer FHIR API at `url`, or none for any other URL. */
export async function payerAuthorization(url: string, opts: { renew?: boolean } = {}): Promise<Record<string, string>> {
  const tokenUrl = tokenUrlFor(url);
  if (!tokenUrl) return {};
  if (opts.renew) cached = undefined;
  if (cached && cached.until > Date.now()) return { Authorization: cached.header };
  pending ??= (async () => {
    try {
      const res = await fetch(tokenUrl, { method: 'POST', headers: { Accept: 'application/json' } });
      if (!res.ok) throw new Error(`the sandbox could not get a payer API token (${res.status})`);
      const body = (await res.json()) as { access_token: string; expires_in: number };
      cached = { header: `Bearer ${body.access_token}`, until: Date.now() + Math.max(10, body.expires_in - 30) * 1000 };
      return cached.header;
    } finally {
      pending = undefined;
    }
  })();
  return { Authorization: await pending };
}
