import { createHash } from 'node:crypto';
import type { Resource } from '@medplum/fhirtypes';
import { ShapeError, assertFhirResource } from '../fhir/fhir-shape.js';
import { httpGet } from './http-get.js';
import { requestDeadline } from '../http/request-deadline.js';

/** A failed EHR query: unreachable, timed out, or a non-2xx answer. */
export class EhrQueryError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'EhrQueryError';
  }
}

/**
 * What `EhrClient` reads of an HTTP answer. A WHATWG `Response` (fetch, the tests' fakes) has it, and so does the
 * lighter answer of `httpGet`, which skips the Response's header copy and body stream (about 13 µs a query, eight
 * queries a hook).
 */
export interface EhrResponse {
  readonly ok: boolean;
  readonly status: number;
  /** The body decoded as UTF-8, a leading byte-order mark dropped (as the Fetch standard's `text()` does). */
  text(): Promise<string>;
  readonly body?: { cancel(): Promise<void> } | null;
}

export type FetchLike = (url: string, init: RequestInit) => Promise<EhrResponse>;

/**
 * Reads from the EHR's FHIR API with the hook's access token (CDS Hooks §FHIR Resource Access), bounded by a timeout
 * on every call (design.md §3 EHR_TIMEOUT_MS) and by one deadline for all of the hook's reads (EHR_BUDGET_MS, from the
 * call's arrival): a read waits at most the smaller of the two, so reads in sequence (the prefetch, then the
 * requester and Medications, then the payor Organization; each next page of a search) cannot add up past CRD's 5 s.
 */
export class EhrClient {
  /**
   * @param deadlineAt - when the hook's EHR budget is spent (a `performance.now()` time); Infinity: no budget. Once
   *   spent, a read fails at once without asking the EHR.
   */
  constructor(
    private readonly baseUrl: string,
    private readonly accessToken: string | undefined,
    private readonly timeoutMs: number,
    private readonly fetchImpl: FetchLike = httpGet,
    private readonly deadlineAt = Infinity,
  ) {}

  /**
   * Reads that failed in this hook, by URL: asked again (a `user` PractitionerRole read again as the order's
   * requester) they fail the same way at once, rather than waiting on the same slow or failing EHR a second time.
   */
  private readonly failed = new Map<string, EhrQueryError>();

  /** One line per successful read: the query and a digest of the bytes answered (see `answersDigest`). */
  private readonly answered: string[] = [];

  /**
   * A digest of every answer read so far, independent of the order the reads completed in: with the request body's
   * digest it names the data a hook's record was built from, for the evaluation cache (no re-serialisation).
   */
  answersDigest(): string {
    return [...this.answered].sort().join('\n');
  }

  async get(relative: string): Promise<Resource> {
    return this.read(`${this.baseUrl}/${relative.replace(/^\/+/, '')}`, relative);
  }

  /**
   * Reads a page link the EHR gave (a searchset's `next`), as given. Only a URL on this FHIR server is read: the
   * access token is never sent anywhere else.
   */
  async getPage(url: string): Promise<Resource> {
    if (url !== this.baseUrl && !url.startsWith(`${this.baseUrl}/`) && !url.startsWith(`${this.baseUrl}?`)) {
      throw new EhrQueryError('gave a page link outside fhirServer');
    }
    return this.read(url, url);
  }

  private async read(url: string, relative: string): Promise<Resource> {
    const failed = this.failed.get(url);
    if (failed) throw failed;
    try {
      return await this.readOnce(url, relative);
    } catch (err) {
      if (err instanceof EhrQueryError) this.failed.set(url, err);
      throw err;
    }
  }

  private async readOnce(url: string, relative: string): Promise<Resource> {
    const left = this.deadlineAt - performance.now();
    if (left <= 0) throw new EhrQueryError("was not read: the hook's EHR time (EHR_BUDGET_MS) is spent");
    const waitMs = Math.min(this.timeoutMs, Math.ceil(left));
    const headers: Record<string, string> = { Accept: 'application/fhir+json' };
    if (this.accessToken) headers.Authorization = `Bearer ${this.accessToken}`;
    // The timeout bounds the whole exchange, body included, and is cleared as soon as the body is read. Not
    // `AbortSignal.timeout`: its timer and signal stay allocated for the full EHR_TIMEOUT_MS after the answer, and
    // eight queries a hook at a few hundred hooks a second kept tens of MB of them alive (README "Memory").
    const deadline = requestDeadline(waitMs);
    let text: string;
    try {
      let res: EhrResponse;
      try {
        res = await this.fetchImpl(url, { headers, signal: deadline.signal, redirect: 'error' });
      } catch (err) {
        const name = (err as Error).name;
        throw new EhrQueryError(name === 'TimeoutError' || name === 'AbortError' ? waitMs < this.timeoutMs ? `timed out after ${waitMs} ms, when the hook's EHR time (EHR_BUDGET_MS) was spent` : `timed out after ${this.timeoutMs} ms` : `unreachable (${(err as Error).message})`);
      }
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        throw new EhrQueryError(`answered ${res.status}`, res.status);
      }
      try {
        text = await res.text();
      } catch {
        throw new EhrQueryError('answered with a body that is not JSON');
      }
    } finally {
      deadline.clear();
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new EhrQueryError('answered with a body that is not JSON');
    }
    if (!body || typeof body !== 'object' || typeof (body as Resource).resourceType !== 'string') throw new EhrQueryError('answered with something that is not a FHIR resource');
    // What the EHR answers is read by the same code as prefetch, so it must have the same FHIR shape.
    try {
      assertFhirResource(body);
    } catch (err) {
      if (err instanceof ShapeError) throw new EhrQueryError(`answered with invalid FHIR JSON (${err.path}: ${err.problem})`);
      throw err;
    }
    this.answered.push(`${relative} ${createHash('sha256').update(text).digest('base64')}`);
    return body as Resource;
  }
}
