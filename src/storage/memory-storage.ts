import type {
  ApiAccessRecord,
  AssertionRecord,
  AuthorizationRecord,
  FeedbackRecord,
  HookAuditRecord,
  IssuedAuthorization,
  JtiRecord,
  NewPasSubmission,
  PasQuery,
  PasSubmission,
  PendedSummary,
  ReviewDecisionInput,
  Storage,
} from './storage.js';

const overlaps = (a: string[] | undefined, b: string[]) => !!a && a.some((x) => b.includes(x));

/** In-process storage for unit tests; same contract as the SQL backends, nothing survives the process. */
export class MemoryStorage implements Storage {
  readonly assertions = new Map<string, AssertionRecord>();
  readonly audit: HookAuditRecord[] = [];
  readonly feedback = new Map<string, FeedbackRecord>();
  readonly authorizations = new Map<string, IssuedAuthorization>();
  readonly submissions = new Map<string, PasSubmission>();
  readonly jtis = new Map<string, number>();
  readonly access: ApiAccessRecord[] = [];

  async saveAssertion(a: AssertionRecord): Promise<void> {
    this.assertions.set(a.assertionId, structuredClone(a));
    if (a.authorization && !this.authorizations.has(a.authorization.number)) {
      this.authorizations.set(a.authorization.number, { ...a.authorization, payer: a.payer, source: 'crd', assertionId: a.assertionId, issuedAt: a.createdAt });
    }
  }
  async getAssertion(id: string): Promise<AssertionRecord | undefined> {
    const a = this.assertions.get(id);
    return a ? structuredClone(a) : undefined;
  }
  async saveAudit(a: HookAuditRecord): Promise<void> {
    this.audit.push({ ...a });
    if (this.audit.length > 10_000) this.audit.splice(0, this.audit.length - 10_000);
  }
  async listAudit(limit = 100): Promise<HookAuditRecord[]> {
    return this.audit.slice(-limit).reverse().map((a) => ({ ...a }));
  }
  async saveFeedback(f: FeedbackRecord): Promise<boolean> {
    const key = [f.service, f.card, f.outcome, f.outcomeTimestamp].join('|');
    if (this.feedback.has(key)) return false;
    this.feedback.set(key, structuredClone(f));
    return true;
  }
  async listFeedback(limit = 100): Promise<FeedbackRecord[]> {
    return [...this.feedback.values()].slice(-limit).reverse().map((f) => structuredClone(f));
  }
  async getAuthorization(number: string): Promise<IssuedAuthorization | undefined> {
    const a = this.authorizations.get(number);
    return a ? { ...a } : undefined;
  }

  async createPasSubmission(s: NewPasSubmission, authorization?: AuthorizationRecord): Promise<{ created: boolean; submission: PasSubmission }> {
    // No await before the insert: the check and the insert are one step, like the SQL unique index.
    const existing = [...this.submissions.values()].find((x) => x.bundleIdentifier === s.bundleIdentifier);
    if (existing) return { created: false, submission: structuredClone(existing) };
    const stored: PasSubmission = { ...structuredClone(s), updatedAt: s.createdAt, decisions: [] };
    this.submissions.set(s.id, stored);
    if (authorization) {
      this.authorizations.set(authorization.number, { ...authorization, payer: s.payer, source: 'pas', submissionId: s.id, issuedAt: s.createdAt });
    }
    return { created: true, submission: structuredClone(stored) };
  }
  async getPasSubmission(id: string): Promise<PasSubmission | undefined> {
    const s = this.submissions.get(id);
    return s ? structuredClone(s) : undefined;
  }
  async getPasSubmissionByBundleIdentifier(bundleIdentifier: string): Promise<PasSubmission | undefined> {
    for (const s of this.submissions.values()) if (s.bundleIdentifier === bundleIdentifier) return structuredClone(s);
    return undefined;
  }
  async findPasSubmissions(q: PasQuery): Promise<PasSubmission[]> {
    return [...this.submissions.values()]
      .filter(
        (s) =>
          q.ids?.includes(s.id) ||
          q.bundleIdentifiers?.includes(s.bundleIdentifier) ||
          (s.preAuthRef !== undefined && q.preAuthRefs?.includes(s.preAuthRef)) ||
          s.decisions.some((d) => d.authorizationNumber && q.preAuthRefs?.includes(d.authorizationNumber)) ||
          overlaps(q.claimIdentifiers, s.claimIdentifiers) ||
          overlaps(q.patientIdentifiers, s.patientIdentifiers),
      )
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
      .slice(0, q.limit ?? 50)
      .map((s) => structuredClone(s));
  }
  async listPendedSubmissions(limit = 100): Promise<PendedSummary[]> {
    return [...this.submissions.values()]
      .filter((s) => s.status === 'pended' || s.status === 'partial')
      .filter((s) => s.reviewAction === 'A4')
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
      .slice(0, limit)
      .map((s) => ({ id: s.id, bundleIdentifier: s.bundleIdentifier, payer: s.payer, policyId: s.policyId, policyVersion: s.policyVersion, createdAt: s.createdAt, needed: [...s.needed] }));
  }
  async recordReviewDecision(input: ReviewDecisionInput): Promise<{ applied: boolean; submission?: PasSubmission }> {
    const s = this.submissions.get(input.decision.submissionId);
    if (!s) return { applied: false };
    if (s.reviewAction !== 'A4') return { applied: false, submission: structuredClone(s) };
    Object.assign(s, structuredClone(input.next), { updatedAt: input.decision.decidedAt });
    s.decisions.push({ ...input.decision });
    if (input.authorization) {
      const a = input.authorization;
      this.authorizations.set(a.number, { ...a, payer: s.payer, source: 'review', submissionId: s.id, issuedAt: input.decision.decidedAt });
    }
    return { applied: true, submission: structuredClone(s) };
  }

  async recordJti(r: JtiRecord, nowMs: number = Date.now()): Promise<boolean> {
    const key = JSON.stringify([r.issuer, r.jti]);
    const until = this.jtis.get(key);
    if (until !== undefined && until > nowMs) return false;
    if (this.jtis.size >= 100_000) for (const [k, t] of this.jtis) if (t <= nowMs) this.jtis.delete(k);
    this.jtis.set(key, r.expiresAtMs);
    return true;
  }
  readonly settings = new Map<string, string>();
  async sharedSetting(key: string, initial: string): Promise<string> {
    if (!this.settings.has(key)) this.settings.set(key, initial);
    return this.settings.get(key)!;
  }
  async saveApiAccess(a: ApiAccessRecord): Promise<void> {
    this.access.push({ ...a, resourceIds: [...a.resourceIds] });
    if (this.access.length > 10_000) this.access.splice(0, this.access.length - 10_000);
  }
  async listApiAccess(limit = 100): Promise<ApiAccessRecord[]> {
    return this.access.slice(-limit).reverse().map((a) => ({ ...a, resourceIds: [...a.resourceIds] }));
  }

  async ping(): Promise<void> {}
  async close(): Promise<void> {}
}
