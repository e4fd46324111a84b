/**
 * Ties LHC-Forms' validation message to the field it is about (WCAG 3.3.1, 1.3.1): LHC-Forms draws "must be a
 * decimal number" next to a field in red, but the field itself says nothing to a screen reader, neither that it is
 * invalid nor why. Here each such field gets `aria-invalid` and the message as (part of) its accessible description,
 * and loses both once the answer is corrected. Other descriptions on the field (the answer's origin line) are kept.
 */
export function markInvalidFields(
  container: ParentNode,
  outOfBounds: ReadonlyMap<string, string> = new Map(),
  ranges: ReadonlyMap<string, string> = new Map(),
): void {
  for (const item of container.querySelectorAll<HTMLElement>('lhc-item.lhc-item-question')) {
    const host = item.querySelector<HTMLElement>(':scope > lhc-item-question') ?? item;
    // The message alone ("must be a decimal number."): LHC-Forms puts the question's text before it without a space,
    // and the field's label already says the question.
    let message = [...host.querySelectorAll<HTMLElement>('lhc-validate .validation-error .lhc-error-msg')].find(
      (m) => m.closest('lhc-item') === item && m.textContent?.trim(),
    );
    // An answer outside a bound LHC-Forms does not check (a date's latest day: bounds.ts) gets a message of this
    // app's, drawn under the field as LHC-Forms draws its own, while LHC-Forms has none of its own for the field.
    const linkId = item.id.startsWith('item-') ? item.id.slice(5, item.id.indexOf('/') > 0 ? item.id.indexOf('/') : undefined) : '';
    const own = [...host.querySelectorAll<HTMLElement>('.bound-error')].find((m) => m.closest('lhc-item') === item);
    // LHC-Forms' message for a number past one bound names only that side: for an item bounded on both, the whole
    // range is said instead (bounds.ts rangeMessages), in this app's message under the field, LHC-Forms' own hidden.
    const lhcBox = message?.closest<HTMLElement>('.validation-error');
    const range = message && /^must be a value (greater|less) than/.test(message.textContent?.trim() ?? '') ? ranges.get(linkId) : undefined;
    if (lhcBox) lhcBox.classList.toggle('range-said', !!range);
    if (range) message = undefined;
    const bound = message ? undefined : (range ?? outOfBounds.get(linkId));
    if (bound) {
      const el = own ?? host.appendChild(Object.assign(document.createElement('div'), { className: 'bound-error' }));
      if (el.textContent !== bound) el.textContent = bound;
      message = el;
    } else own?.remove();
    const messageId = `invalid-${item.id}`;
    if (message && message.id !== messageId) message.id = messageId;
    for (const field of host.querySelectorAll<HTMLElement>('input, textarea, select')) {
      if (field.closest('lhc-item') !== item) continue;
      const ids = (field.getAttribute('aria-describedby') ?? '').split(/\s+/).filter((x) => x && x !== messageId);
      if (message) {
        ids.unshift(messageId);
        if (field.getAttribute('aria-invalid') !== 'true') field.setAttribute('aria-invalid', 'true');
      } else if (field.hasAttribute('aria-invalid')) field.removeAttribute('aria-invalid');
      const described = ids.join(' ');
      if (described && field.getAttribute('aria-describedby') !== described) field.setAttribute('aria-describedby', described);
      else if (!described && field.hasAttribute('aria-describedby')) field.removeAttribute('aria-describedby');
    }
  }
}
