import { z } from 'zod';
import { badRequest } from '../errors.js';
import type { FeedbackRecord } from '../storage/storage.js';

const feedbackSchema = z.object({
  feedback: z
    .array(
      z
        .object({
          card: z.string().min(1),
          outcome: z.enum(['accepted', 'overridden']),
          acceptedSuggestions: z.array(z.object({ id: z.string().min(1) }).passthrough()).optional(),
          overrideReason: z
            .object({ reason: z.object({ code: z.string().optional(), system: z.string().optional(), display: z.string().optional() }).passthrough().optional(), userComment: z.string().optional() })
            .passthrough()
            .optional(),
          outcomeTimestamp: z.string().min(1),
        })
        .passthrough(),
    )
    .min(1),
});

/**
 * Parses a feedback body (CDS Hooks 2.0 §Feedback; cds-fb-1, cds-fb-2, cds-fb-3). `accepted` needs
 * acceptedSuggestions; an `overrideReason`, when sent, carries a `reason` or a `userComment`.
 */
export function parseFeedback(body: unknown, service: string): FeedbackRecord[] {
  const parsed = feedbackSchema.safeParse(body);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw badRequest(`Invalid feedback: ${i.path.join('.') || '(root)'}: ${i.message}`, [i.path.join('.')]);
  }
  return parsed.data.feedback.map((f, idx) => {
    if (f.outcome === 'accepted' && (!f.acceptedSuggestions || f.acceptedSuggestions.length === 0)) {
      throw badRequest(`Invalid feedback: feedback.${idx}.acceptedSuggestions is required when outcome is accepted`, [`feedback.${idx}.acceptedSuggestions`]);
    }
    if (f.overrideReason && !f.overrideReason.reason && !f.overrideReason.userComment) {
      throw badRequest(`Invalid feedback: feedback.${idx}.overrideReason needs a reason or a userComment`, [`feedback.${idx}.overrideReason`]);
    }
    return {
      service,
      card: f.card,
      outcome: f.outcome,
      acceptedSuggestions: (f.acceptedSuggestions ?? []).map((s) => s.id),
      overrideReason: f.overrideReason,
      outcomeTimestamp: f.outcomeTimestamp,
    };
  });
}
