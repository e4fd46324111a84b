/**
 * Names the controls LHC-Forms draws for an attachment question (the documents a payer asks for: the guideline
 * supporting a dose over a limit, the compendium citation, the chart notes), which it leaves nameless or named by a
 * symbol: its file input is not the target of the question's `<label for>` (that points at the wrapping div, which no
 * label can name), and its URL toggle reads "↯". A screen-reader user would hear "Choose File, button" and "↯" with
 * no word of which document they attach (WCAG 1.3.1, 4.1.2). Each control is named after its question here; the
 * URL fields carry the question too, so two attachment questions do not read alike.
 */
export function labelAttachmentFields(container: ParentNode): void {
  for (const box of container.querySelectorAll<HTMLElement>('lhc-item-attachment')) {
    const file = box.querySelector<HTMLInputElement>('input.lhc-attachment-upload');
    // The file input's id is "file-<linkId>/<n>/<n>"; the question's label is "label-<linkId>/<n>/<n>".
    const key = file?.id.replace(/^file-/, '');
    const label = key ? box.ownerDocument.getElementById(`label-${key}`) : null;
    const question = label?.textContent?.trim().replace(/\s+/g, ' ');
    if (!file || !label || !question) continue;
    if (file.getAttribute('aria-labelledby') !== label.id) file.setAttribute('aria-labelledby', label.id);
    const named: [HTMLElement | null, string][] = [
      [box.querySelector<HTMLElement>('button.toggle-attachment-fields'), urlToggleWords(box)],
      [box.querySelector<HTMLElement>('input.lhc-attachment-url'), 'Web address (URL) of the document'],
      [box.querySelector<HTMLElement>('input.lhc-attachment-name'), 'File name of the document (optional)'],
    ];
    for (const [el, words] of named) {
      const name = `${words}: ${question}`;
      if (el && el.getAttribute('aria-label') !== name) el.setAttribute('aria-label', name);
    }
  }
}

/** What the URL toggle does now: LHC-Forms says it in the button's title ("Show URL field" / "Hide URL field"). */
function urlToggleWords(box: HTMLElement): string {
  const open = !!box.querySelector('input.lhc-attachment-url');
  return open ? 'Hide the web address (URL) fields' : 'Give a web address (URL) instead of a file';
}
