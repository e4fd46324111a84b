/**
 * Names the read-only unit field LHC-Forms draws beside a number ("%", "kg", "mcg/day"). It points its
 * `aria-labelledby` at the units column header of LHC-Forms' table layout ("th_Units"), which this form's layout does
 * not draw, so the field had no name: a screen reader read "%, read-only edit" with no word of what it belongs to
 * (WCAG 4.1.2). It is named "Unit" here, read right after the number field it follows; not after the question, so
 * the question's name still finds its one answer field.
 */
export function labelUnitFields(container: ParentNode): void {
  for (const unit of container.querySelectorAll<HTMLInputElement>('input[id^="unit_"]')) {
    const name = 'Unit';
    if (unit.getAttribute('aria-label') !== name) unit.setAttribute('aria-label', name);
    if (unit.hasAttribute('aria-labelledby') && !unit.ownerDocument.getElementById(unit.getAttribute('aria-labelledby') ?? ''))
      unit.removeAttribute('aria-labelledby');
  }
}
