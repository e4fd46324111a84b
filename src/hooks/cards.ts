import { randomUUID } from 'node:crypto';
import type { MedicationRequest } from '@medplum/fhirtypes';

/** CDS Hooks card (CDS Hooks 2.0 §Card Attributes), with only the fields PriorPath sends. */
export interface Card {
  uuid: string;
  summary: string;
  detail?: string;
  indicator: 'info' | 'warning' | 'critical';
  source: { label: string; url?: string; topic: { system: string; code: string; display?: string } };
  suggestions?: Suggestion[];
  selectionBehavior?: 'at-most-one' | 'any';
  links?: { label: string; url: string; type: 'absolute' | 'smart'; appContext?: string }[];
  extension?: Record<string, unknown>;
}

export interface Suggestion {
  label: string;
  uuid: string;
  isRecommended?: boolean;
  actions: { type: 'create' | 'update' | 'delete'; description: string; resource?: unknown; resourceId?: string }[];
}

/** Card topics: the CRD response-type codes, equal to the configuration option that turns the card off. */
export const CARD_TYPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/cdshooks-card-type';

/** CDS Hooks: summary SHALL be under 140 characters. Cuts at a word and adds an ellipsis when needed. */
export function summaryOf(text: string): string {
  const clean = text.replace(/\s+/g, ' ').trim();
  if (clean.length < 140) return clean;
  const cut = clean.slice(0, 136);
  return `${cut.slice(0, cut.lastIndexOf(' ') > 80 ? cut.lastIndexOf(' ') : 136)}…`;
}

/**
 * A summary naming the drug, under 140 characters with its verdict whole: a long drug text (the EHR's full product
 * description) is shortened, at a word, with an ellipsis, never the words after it that say what happened ("was
 * denied", "documentation required"). Falls back to summaryOf when the template alone leaves no room for a name.
 */
export function summaryNaming(template: (drug: string) => string, drug: string): string {
  const name = drug.replace(/\s+/g, ' ').trim();
  const full = template(name).replace(/\s+/g, ' ').trim();
  if (full.length < 140) return full;
  const room = 139 - template('').replace(/\s+/g, ' ').trim().length - 1;
  if (room < 12) return summaryOf(full);
  const cut = name.slice(0, room);
  const atWord = cut.lastIndexOf(' ') >= room / 2 ? cut.slice(0, cut.lastIndexOf(' ')) : cut;
  return template(`${atWord.replace(/[\s,;:(-]+$/, '')}…`).replace(/\s+/g, ' ').trim();
}

function card(label: string, topic: string, display: string, c: Omit<Card, 'uuid' | 'source'> & { sourceUrl?: string }): Card {
  const { sourceUrl, ...rest } = c;
  // Object.assign, not a spread with properties after it: see factEnvironment (evaluate-policy.ts).
  return Object.assign({ uuid: randomUUID() }, rest, {
    summary: summaryOf(c.summary),
    source: { label, ...(sourceUrl ? { url: sourceUrl } : {}), topic: { system: CARD_TYPE_SYSTEM, code: topic, display } },
  });
}

/** Instructions card: text only, no links or suggestions (CRD cards.md "Instructions"). */
export function instructionsCard(label: string, summary: string, detail: string, indicator: Card['indicator'], orderRef: string): Card {
  return card(label, 'coverage-info', 'Coverage Information', {
    summary,
    detail,
    indicator,
    extension: { 'davinci-crd.associated-resource': [orderRef] },
  });
}

/** External Reference card: links only of type absolute, with a summary of what they hold ([resp-18..20]). */
export function externalReferenceCard(label: string, summary: string, detail: string, links: { label: string; url: string }[], orderRef: string): Card {
  return card(label, 'guideline', 'Guideline', {
    summary,
    detail,
    indicator: 'info',
    links: links.map((l) => ({ ...l, type: 'absolute' as const })),
    extension: { 'davinci-crd.associated-resource': [orderRef] },
  });
}

/** Propose Alternate Request: one suggestion updating the draft order ([resp-53]). */
export function proposeAlternateCard(label: string, summary: string, detail: string, suggestionLabel: string, updated: MedicationRequest, orderRef: string): Card {
  return card(label, 'therapy-alternatives-req', 'Therapy Alternatives Required', {
    summary,
    detail,
    indicator: 'info',
    selectionBehavior: 'at-most-one',
    suggestions: [
      {
        label: suggestionLabel,
        uuid: randomUUID(),
        isRecommended: false,
        actions: [{ type: 'update', description: suggestionLabel, resource: updated }],
      },
    ],
    extension: { 'davinci-crd.associated-resource': [orderRef] },
  });
}

/**
 * How the DTR launch context travels in a smart link's `appContext` (CDS Hooks 2.0 §Link: an opaque string): `json`
 * is PriorPath's own (`{"questionnaire":[…],"order":…,"coverage":…,"coverageAssertionId":…}`); `query` is the
 * `questionnaire=…&order=…&coverage=…` form the Da Vinci CRD and DTR reference implementations exchange, with the
 * coverage-assertion-id added as `context` (the key the DTR reference app forwards as the `$questionnaire-package`
 * `context` parameter) and as `coverageAssertionId` (the key PriorPath's own DTR app reads).
 */
export type AppContextForm = 'json' | 'query';

/** The DTR launch context of one order. */
export interface DtrLaunchContext {
  questionnaire: string[];
  order: string;
  coverage?: string;
  coverageAssertionId?: string;
}

/**
 * The `key=value&…` form: values as the reference implementations send them, escaped only where they must be. The
 * DTR reference app URI-decodes the whole string (after turning `+` into a space), then splits on `&` and `=`, and
 * keeps the first value of a key.
 */
export function queryAppContext(ctx: DtrLaunchContext): string {
  const esc = (v: string) => (/[&=#%+\s]/.test(v) ? encodeURIComponent(v) : v);
  const parts = ctx.questionnaire.map((q) => `questionnaire=${esc(q)}`);
  parts.push(`order=${esc(ctx.order)}`);
  if (ctx.coverage) parts.push(`coverage=${esc(ctx.coverage)}`);
  if (ctx.coverageAssertionId) parts.push(`context=${esc(ctx.coverageAssertionId)}`, `coverageAssertionId=${esc(ctx.coverageAssertionId)}`);
  return parts.join('&');
}

/**
 * SMART-link card that launches DTR, for clients that cannot read coverage-information (opt-in, `dtr-clin`). Its topic
 * is `coverage-info`, the response type whose definition includes "requires additional documentation or data
 * collection" (CRD [resp-5]: `dtr-clin` is the option's name, not a code of the card-type code system), so
 * `coverage-info: false` turns it off with the other coverage cards ([dev-5]).
 */
export function dtrLaunchCard(label: string, url: string, ctx: DtrLaunchContext, orderRef: string, form: AppContextForm = 'json'): Card {
  const appContext = form === 'query' ? queryAppContext(ctx) : JSON.stringify(ctx);
  return card(label, 'coverage-info', 'Coverage Information', {
    summary: 'Complete the prior authorization documentation for this order',
    indicator: 'info',
    links: [{ label: 'Open documentation form (DTR)', url, type: 'smart', appContext }],
    extension: { 'davinci-crd.associated-resource': [orderRef] },
  });
}
