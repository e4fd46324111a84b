/**
 * Puts the checked state of each LHC-Forms radio button back where the form shows it. ng-zorro's radio cancels the
 * click (preventDefault) after choosing in its own model, and the browser then restores the native `checked` of the
 * choice made before: the ring shows "Yes" while the input still says "Not Answered" is checked, which is what a
 * screen reader announces and what the accessibility tree holds (WCAG 4.1.2: state). Run after the click's dispatch
 * has ended (the restore comes last), it sets each group's `checked` from the drawn choice.
 */
export function syncRadioStates(container: ParentNode): void {
  for (const input of container.querySelectorAll<HTMLInputElement>('input[type=radio].ant-radio-input')) {
    const drawn = !!input.closest('.ant-radio-wrapper')?.classList.contains('ant-radio-wrapper-checked');
    // Setting a radio checked unchecks the rest of its group; only a drawn choice is set, so nothing else changes.
    if (drawn && !input.checked) input.checked = true;
  }
}
