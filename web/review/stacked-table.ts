/**
 * Lets a workbench table stack on a narrow screen: each row becomes a block whose cells read one under another, each
 * under its column's name (workbench.css, `table.stack`), instead of a table wider than the phone that shows a sliver
 * of the criterion and none of its evidence. The column names come from the table's own header row, so the narrow
 * view cannot disagree with the wide one. Explicit ARIA roles keep the table a table to assistive technology, which
 * some browsers stop exposing once a table's parts are laid out as blocks.
 */
export function stackOnNarrow(table: HTMLTableElement): HTMLTableElement {
  table.classList.add('stack');
  table.setAttribute('role', 'table');
  const names = [...(table.tHead?.rows[0]?.cells ?? [])].map((c) => c.textContent?.trim() ?? '');
  for (const group of [table.tHead, ...table.tBodies]) group?.setAttribute('role', 'rowgroup');
  for (const row of table.rows) {
    row.setAttribute('role', 'row');
    [...row.cells].forEach((cell, i) => {
      const scope = cell.getAttribute('scope');
      cell.setAttribute('role', scope === 'col' ? 'columnheader' : scope === 'row' ? 'rowheader' : 'cell');
      if (row.parentElement !== table.tHead && names[i]) cell.dataset.label = names[i];
    });
  }
  return table;
}
