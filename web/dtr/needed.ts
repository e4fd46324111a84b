import type { Questionnaire } from '@medplum/fhirtypes';
import { stillToDocument } from '../shared/coverage.js';

/**
 * The questions the payer still needs (review ui s44 M4). The payer's determination (CRD at signing, or DTR after the
 * documentation was sent) names them in its reason, "Prior authorization needed. Still to document (clauses): <question>;
 * <question> (if yes, attach: …)" (src/coverage/determination.ts `stillToDocument`), each quoted as the policy's
 * question, the text the Questionnaire builder gives the item. So the form marks exactly the questions the payer's
 * undecided rules wait for, and nothing the chart already answered.
 *
 * Why not `required` on the package's Questionnaire: the form is one canonical `url|version` served to every order
 * (its package entries are built and serialized once per form: src/dtr/questionnaire-package.ts `formEntries`, for the
 * package's p99 target, design.md §9), while what is still needed is one order's state;
 * an order whose chart answers a question does not need it, so the Questionnaire cannot say it for all of them.
 */
export function neededQuestions(q: Questionnaire, reasons: string[]): Map<string, string> {
  const norm = (t: string) => t.replace(/\s+/g, ' ').trim();
  const entries = reasons
    .map(stillToDocument)
    .filter((l): l is string => l !== undefined)
    .flatMap((l) => listEntries(norm(l)));
  const out = new Map<string, string>();
  if (entries.length === 0) return out;
  const visit = (items: Questionnaire['item']) => {
    for (const item of items ?? []) {
      visit(item.item);
      if (item.type === 'group' || item.type === 'display' || item.readOnly || !item.text) continue;
      const text = norm(item.text);
      // The entry is the question, or the question with a parenthesis of its own ("(if yes, attach: …)").
      if (entries.some((e) => e === text || e.startsWith(`${text} (`))) out.set(item.linkId, item.text);
    }
  };
  visit(q.item);
  return out;
}

/** The entries of a "; "-separated list; a "; " inside parentheses ("(if yes, attach: a; b)") does not split one. */
export function listEntries(list: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let from = 0;
  for (let i = 0; i < list.length; i++) {
    if (list[i] === '(') depth++;
    else if (list[i] === ')') depth = Math.max(0, depth - 1);
    else if (depth === 0 && list.startsWith('; ', i)) {
      out.push(list.slice(from, i));
      from = i + 2;
    }
  }
  out.push(list.slice(from));
  return out;
}

const LINE = 'needed-line';

/**
 * Marks each question the payer still needs on the rendered form: a visible "Needed by the payer" line under the
 * question, part of its fields' accessible description, and `aria-required` on them (WCAG 3.3.2, 1.3.1). Idempotent:
 * LHC-Forms redraws its fields, so this runs after every redraw and changes only what differs.
 */
export function markNeededFields(container: ParentNode, needed: ReadonlySet<string>): void {
  for (const item of container.querySelectorAll<HTMLElement>('lhc-item.lhc-item-question')) {
    const linkId = /^item-(.+?)(\/\d+)+$/.exec(item.id)?.[1];
    if (!linkId) continue;
    const host = item.querySelector<HTMLElement>(':scope > lhc-item-question') ?? item;
    const lineId = `needed-${item.id}`;
    let line = [...host.querySelectorAll<HTMLElement>(`.${LINE}`)].find((l) => l.closest('lhc-item') === item);
    const on = needed.has(linkId);
    if (on && !line) {
      line = Object.assign(document.createElement('p'), {
        className: LINE,
        id: lineId,
        textContent: 'Needed by the payer',
      });
      host.append(line);
    } else if (!on && line) line.remove();
    if (item.classList.contains('needed') !== on) item.classList.toggle('needed', on);
    for (const field of host.querySelectorAll<HTMLElement>('input, textarea, select')) {
      if (field.closest('lhc-item') !== item) continue;
      if (on && field.getAttribute('aria-required') !== 'true') field.setAttribute('aria-required', 'true');
      else if (!on && field.hasAttribute('aria-required')) field.removeAttribute('aria-required');
      const ids = (field.getAttribute('aria-describedby') ?? '').split(/\s+/).filter((x) => x && x !== lineId);
      // Read after the field's validation message (invalid-fields.ts puts it first) and before where its answer came
      // from (the origin line, last): the same order on every redraw.
      if (on) ids.splice(ids.findIndex((x) => x.startsWith('invalid-')) + 1, 0, lineId);
      const described = ids.join(' ');
      if (described && field.getAttribute('aria-describedby') !== described)
        field.setAttribute('aria-describedby', described);
      else if (!described && field.hasAttribute('aria-describedby')) field.removeAttribute('aria-describedby');
    }
  }
}
