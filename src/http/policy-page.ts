import type { Request, Response } from 'express';
import type { Content } from '../content.js';
import { notFound } from '../errors.js';

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/**
 * A readable summary of a computable policy, linked from External Reference cards: every criterion with its seed
 * citation, so a clinician sees what the payer checks (CRD cards.md "External Reference", [resp-20], [resp-21]).
 */
export function policyPageHandler(content: Content) {
  return (req: Request, res: Response): void => {
    const p = content.policies.find((x) => x.file.id === req.params.id);
    if (!p) throw notFound(`Unknown policy ${String(req.params.id)}`);
    const f = p.file;
    const payer = content.payers.get(f.payer);
    const list = (title: string, rules: { id: string; text: string; cite: string }[]) =>
      rules.length === 0 ? '' : `<h2>${esc(title)}</h2><ul>${rules.map((r) => `<li id="${esc(r.id)}">${esc(r.text)} <small>(${esc(r.cite)})</small></li>`).join('')}</ul>`;
    res.type('html').send(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(f.title)} – ${esc(payer?.label ?? f.payer)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}small{color:#555}</style></head><body>
<h1>${esc(f.title)}</h1><p>${esc(payer?.label ?? f.payer)} · ${esc(f.source.id)}: ${esc(f.source.title)}${f.source.effective ? ` · ${esc(f.source.effective)}` : ''} · computable version ${esc(f.version)}</p>
${list('Every request must meet', p.requirements)}${list('Covered uses (any one)', p.pathways)}${list('Limits', p.limits)}
${f.offLabel ? `<h2>Other uses</h2><p>${esc(f.offLabel)}</p>` : ''}
${f.source.url ? `<p><a href="${esc(f.source.url)}">The payer's policy document</a></p>` : ''}</body></html>`);
  };
}
