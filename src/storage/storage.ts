/** A CRD coverage assertion as kept for DTR context, PAS and disputes (design.md §2 "Storage"; CRD [found-11]). */
export interface AssertionRecord {
  assertionId: string;
  createdAt: string;
  payer: string;
  policyId?: string;
  policyVersion?: string;
  patientId: string;
  orderRef: string;
  hookInstance: string;
  outcome: string;
  /** Fact values by name (clinical facts: kept for DTR pre-fill and disputes, never logged). */
  facts: Record<string, unknown>;
  missingFacts: string[];
  authorization?: AuthorizationRecord;
}

/** An authorization number issued at signing ("real-time approval", design.md §5). */
export interface AuthorizationRecord {
  number: string;
  start: string;
  end: string;
}

/** One audit line per hook call: ids, hashes and outcomes, never clinical content. */
export interface HookAuditRecord {
  requestId: string;
  at: string;
  service: string;
  hookInstance: string;
  clientIss?: string;
  patientIdHash: string;
  status: number;
  outcome: string;
  latencyMs: number;
}

export interface FeedbackRecord {
  service: string;
  card: string;
  outcome: string;
  acceptedSuggestions: string[];
  overrideReason?: unknown;
  outcomeTimestamp: string;
}

/** The storage seam; the embedded and PostgreSQL backends implement it (issue #7). */
export interface Storage {
  saveAssertion(a: AssertionRecord): Promise<void>;
  getAssertion(assertionId: string): Promise<AssertionRecord | undefined>;
  saveAudit(a: HookAuditRecord): Promise<void>;
  /** Idempotent on (service, card, outcome, outcomeTimestamp). Returns false for a duplicate. */
  saveFeedback(f: FeedbackRecord): Promise<boolean>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
