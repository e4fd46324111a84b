import { z } from 'zod';

/**
 * The policy file format (`cds-services/policies/<payer>/<drug>.yaml`), design.md §5. Documented field by field in
 * `cds-services/README.md`; keep the two in step.
 */

const citation = z
  .string()
  .min(3)
  .describe('Seed clause this criterion comes from, e.g. "CP.PHAR.312 I.A.4.b.i"');

/**
 * A pathway's approval: its length, and optionally the date fact it runs from (design.md §5 "satisfied"). Without
 * `from` the period runs from the order's planned start; with it, it ends `from` + length (a course's initial
 * authorization counted from the course's first cycle), still starting on the order's date. An order that starts after
 * that end is outside the pathway's authorization: a limit exceeded, never an approval (cds-services/README.md).
 */
const approval = z
  .object({
    days: z.number().int().positive().optional(),
    weeks: z.number().int().positive().optional(),
    months: z.number().int().positive().optional(),
    from: z
      .string()
      .regex(/^[a-zA-Z][a-zA-Z0-9]*$/, 'a date fact name')
      .optional()
      .describe(
        "A date fact the period is counted from (e.g. courseFirstCycleStart): the period ends that date + the length; unknown, it is counted from the order's start",
      ),
    covers: z
      .string()
      .regex(/^[a-zA-Z][a-zA-Z0-9]*$/, 'a date fact name')
      .optional()
      .describe(
        "With `from`: a date fact, the last day the order's period must reach (e.g. the end of its first cycle's infusion). A period from `from` that ends before it does not cover the order: as if it had ended before the order's start (see afterEnd)",
      ),
    afterEnd: z
      .enum(['review', 'order'])
      .optional()
      .describe(
        "With `from`: an order that starts after that period ended is a limit exceeded (`review`, the default: the seed states the period) or approved for the length from its own start (`order`: the period is the policy's own reading, the seed states none)",
      ),
  })
  .strict()
  .refine((d) => [d.days, d.weeks, d.months].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of days, weeks, months',
  });

export const factTypes = ['boolean', 'decimal', 'integer', 'code', 'string', 'date'] as const;
export type FactType = (typeof factTypes)[number];

/** A named fact: FHIRPath over the hook's data, and the Questionnaire item that asks for it. */
export const factSchema = z
  .object({
    type: z.enum(factTypes),
    fhirpath: z.string().min(1).describe('Expression over %order, %patient, %conditions, ...; empty result = unknown'),
    linkId: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'kebab-case linkId').optional(),
    question: z.string().min(3).optional().describe('Question text shown in DTR'),
    label: z
      .string()
      .min(3)
      .optional()
      .describe(
        "The fact in the policy's words, as a payer reviewer reads it beside a criterion (the PAS trace), e.g. \"MRD-positive (MRD ≥ 0.1 %)\"; a fact a rule reads needs a label or a question",
      ),
    help: z.string().optional(),
    unit: z.string().optional().describe('UCUM unit of a decimal fact, shown in DTR'),
    answerValueSet: z.string().optional().describe('Value set id or URL of the allowed codes of a code fact'),
    cite: citation.optional(),
    absent: z
      .enum(['unknown', 'false'])
      .default('unknown')
      .describe('What an empty search means: unknown (findings) or false (history, diagnosis); documentation only'),
    askable: z.boolean().default(true).describe('false for facts the clinician is never asked (derived values)'),
    dateOf: z
      .enum(['record', 'order', 'plan'])
      .default('record')
      .describe(
        "A date fact's source: 'record', a date the record states (not after the order date or today); 'order', an order's planned start, which may be ahead of today (not after this order's date); 'plan', a day this order plans after its start (the end of its cycles), not bounded",
      ),
    min: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe(
        "The least possible value of an integer count, when it is more than 0: a count of what the request asks for (cycles requested) is at least 1, since a request for none requests nothing",
      ),
    askWhen: z
      .string()
      .min(1)
      .optional()
      .describe(
        'FHIRPath over the facts (and %orderDate): the question is asked only of the patients it concerns; false hides it, unknown shows it',
      ),
    reasonRole: z
      .enum(['audience', 'request'])
      .optional()
      .describe(
        "How a not-covered reason reads a covered use that failed on this fact (design.md §5): 'audience', the fact says whom the use is for (age, renewal), so a use failed on it alone is for other patients and not cited; 'request', it says what the order asks for (its treatment phase), so a use missed only by it is named after the uses the order misses by a criterion",
      ),
  })
  .strict();
export type FactDefinition = z.infer<typeof factSchema>;

const ruleBase = {
  id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'kebab-case id'),
  when: z.string().min(1).describe('FHIRPath over the facts (three-valued)'),
  cite: citation,
  text: z.string().min(3).describe('The criterion in words, as the clinician reads it'),
};

export const requirementSchema = z
  .object({
    ...ruleBase,
    notCovered: z.string().optional().describe('Reason shown when this requirement is false'),
    outsideUse: z
      .literal(true)
      .optional()
      .describe(
        "A failure is a use outside the policy (an indication or diagnosis the policy does not cover, or one the seed's off-label text names): the not-covered reason then names the policy's offLabel route. Unset on safety, prescriber and renewal requirements, whose failure the off-label route does not answer",
      ),
  })
  .strict();

export const pathwaySchema = z
  .object({
    ...ruleBase,
    approval: approval.describe('Approval period when this pathway is met (and the date fact it runs from)'),
    cycles: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('Cycles one approval covers: an order asking for more (fact cyclesRequested) is a limit exceeded'),
  })
  .strict();

export const limitSchema = z
  .object({
    ...ruleBase,
    propose: z
      .union([
        z
          .object({
            value: z.string().min(1).describe('FHIRPath over the facts giving the highest allowed dose'),
            unit: z.string().min(1).describe('UCUM code of the proposed dose, e.g. ug/d'),
            display: z.string().optional().describe('Human unit, e.g. mcg/day'),
            perM2: z
              .object({
                value: z.string().min(1).describe('FHIRPath over the facts giving the highest allowed dose per m² of BSA; empty: propose the flat dose'),
                unit: z.string().min(1).describe('UCUM code of the proposed dose per m², e.g. ug/m2/d'),
                display: z.string().optional().describe('Human unit, e.g. mcg/m²/day'),
              })
              .strict()
              .optional()
              .describe('The same proposal for an order written per m² of body surface area: proposed in that form, not converted to a flat dose'),
          })
          .strict(),
        z
          .object({
            quantity: z
              .object({
                value: z.string().min(1).describe('FHIRPath over the facts giving the most the order may dispense (its dispenseRequest.quantity), in `unit`'),
                unit: z.string().min(1).describe('UCUM code of the proposed dispense quantity, e.g. ug'),
                display: z.string().optional().describe('Human unit, e.g. mcg'),
              })
              .strict()
              .describe("For a limit on the amount the order asks for (the policy's requestedAmount): the dispense quantity at the limit"),
          })
          .strict(),
      ])
      .optional()
      .describe('What the Propose Alternate Request card offers when the limit is exceeded: a dose, or a dispense quantity'),
    justification: z
      .string()
      .optional()
      .describe('What the payer accepts instead (asked in DTR), e.g. "supported by practice guidelines"'),
    names: z
      .record(z.string(), z.string().min(3))
      .optional()
      .describe(
        'Facts whose values an exceeded limit names after its text, each with the words before its value (e.g. { treatmentPhase: "the order says" }): the record the limit read, for the reviewer and the card (design.md §6 "Clinical readings")',
      ),
  })
  .strict();

/** A document the seed asks the prescriber to submit: a Questionnaire `attachment` item (design.md §6 "Clinical readings"). */
export const attachmentSchema = z
  .object({
    linkId: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'kebab-case linkId'),
    text: z.string().min(3).describe('What to attach, as the clinician reads it'),
    cite: citation,
    askWhen: z.string().min(1).optional().describe('FHIRPath over the facts: shown unless this is false'),
    proves: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe(
        'Boolean facts (attestations) this document proves: a true answer counts only with this item attached, else the fact is unknown',
      ),
  })
  .strict();
export type AttachmentDefinition = z.infer<typeof attachmentSchema>;

export const policySchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/),
    version: z.string().min(1),
    payer: z.string().min(1),
    drug: z.string().min(1).describe('Value set id of the orders this policy governs'),
    title: z.string().min(3),
    source: z
      .object({
        id: z.string().min(2).describe('The seed document id, e.g. CP.PHAR.312'),
        title: z.string().min(3),
        url: z.string().url().optional(),
        effective: z.string().optional(),
      })
      .strict(),
    billingCodes: z
      .array(z.object({ system: z.string(), code: z.string(), display: z.string().optional() }).strict())
      .default([]),
    imports: z.array(z.string()).default([]).describe('Fact libraries from cds-services/facts/<name>.yaml'),
    facts: z.record(z.string().regex(/^[a-zA-Z][a-zA-Z0-9]*$/, 'camelCase fact name'), factSchema).default({}),
    requirements: z.array(requirementSchema).default([]),
    pathways: z.array(pathwaySchema).min(1),
    limits: z.array(limitSchema).default([]),
    attachments: z.array(attachmentSchema).default([]).describe('Documents the seed asks for, as attachment items'),
    requestedAmount: z
      .string()
      .regex(/^[a-zA-Z][a-zA-Z0-9]*$/, 'a fact name')
      .optional()
      .describe(
        'The fact that is the amount the order asks for (a decimal or integer fact reading %order, judged by a limit): PAS judges and certifies a Claim item quantity only for a policy that names one',
      ),
    offLabel: z.string().optional().describe('Where a use outside this policy goes (named in not-covered reasons)'),
    notes: z.array(z.string()).default([]).describe('Reading decisions on ambiguous seed text, with citations'),
  })
  .strict();
export type PolicyFile = z.infer<typeof policySchema>;

export const factLibrarySchema = z
  .object({
    description: z.string().optional(),
    facts: z.record(z.string().regex(/^[a-zA-Z][a-zA-Z0-9]*$/), factSchema),
  })
  .strict();
export type FactLibraryFile = z.infer<typeof factLibrarySchema>;
