import type { AssertionRecord, FeedbackRecord, HookAuditRecord, Storage } from './storage.js';

/** In-process storage: tests and the interim default until the durable store lands (issue #7). */
export class MemoryStorage implements Storage {
  readonly assertions = new Map<string, AssertionRecord>();
  readonly audit: HookAuditRecord[] = [];
  readonly feedback = new Map<string, FeedbackRecord>();

  async saveAssertion(a: AssertionRecord): Promise<void> {
    this.assertions.set(a.assertionId, structuredClone(a));
  }
  async getAssertion(id: string): Promise<AssertionRecord | undefined> {
    const a = this.assertions.get(id);
    return a ? structuredClone(a) : undefined;
  }
  async saveAudit(a: HookAuditRecord): Promise<void> {
    this.audit.push(a);
    if (this.audit.length > 10_000) this.audit.splice(0, this.audit.length - 10_000);
  }
  async saveFeedback(f: FeedbackRecord): Promise<boolean> {
    const key = [f.service, f.card, f.outcome, f.outcomeTimestamp].join('|');
    if (this.feedback.has(key)) return false;
    this.feedback.set(key, f);
    return true;
  }
  async ping(): Promise<void> {}
  async close(): Promise<void> {}
}
