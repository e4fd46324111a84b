import type { Resource } from '@medplum/fhirtypes';
import type { FetchLike } from '../../src/hooks/ehr-client.js';
import { searchset } from './hook-requests.js';

/** An injected EHR FHIR API answering reads and `?patient=` searches from a list of resources; records calls. */
export function fakeEhr(resources: Resource[]) {
  const calls: { url: string; auth?: string }[] = [];
  const fetchImpl: FetchLike = async (url, init) => {
    calls.push({ url, auth: (init.headers as Record<string, string>)?.Authorization });
    const u = new URL(url);
    const segments = u.pathname.split('/').filter(Boolean);
    const path = segments.slice(segments.findIndex((x) => /^[A-Z]/.test(x))).join('/');
    const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/fhir+json' } });
    const [type, id] = path.split('/');
    if (id) {
      const r = resources.find((x) => x.resourceType === type && x.id === id);
      return r ? json(r) : json({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] }, 404);
    }
    const matches = resources.filter((r) => r.resourceType === type && (type !== 'Coverage' || (r as { status?: string }).status === 'active'));
    return json(searchset(matches));
  };
  return { fetchImpl, calls };
}

/**
 * An EHR that accepts the connection and never answers; only the request's abort signal ends the wait. Records each
 * request and the reason its signal gave when aborted, so a test can see the hung request was cut off rather than
 * left open.
 */
export function silentEhr() {
  const calls: { url: string; abortedBy?: string }[] = [];
  const fetchImpl: FetchLike = (url, init) =>
    new Promise((_resolve, reject) => {
      const call: { url: string; abortedBy?: string } = { url };
      calls.push(call);
      init.signal?.addEventListener('abort', () => {
        const reason = init.signal?.reason as Error | undefined;
        call.abortedBy = reason?.name ?? 'AbortError';
        reject(reason ?? Object.assign(new Error('aborted'), { name: 'AbortError' }));
      });
    });
  return { fetchImpl, calls };
}
