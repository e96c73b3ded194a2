// "Correct the label" control: a class picker that PUTs /v1/classifications/{id}/label.
import { putJson } from './api.js';
import { el, classes, fillSelect, toast } from './ui.js';

export function labelControl(item) {
  const select = el('select', { 'aria-label': 'Correct label', className: 'label-select' });
  const status = el('span.saved');
  const button = el('button.button.small', {
    type: 'button',
    onclick: async () => {
      if (!select.value) return;
      button.disabled = true;
      try {
        const answer = await putJson(`/v1/classifications/${item.id}/label`, { label: select.value });
        status.textContent = answer.agrees ? '✓ confirmed' : `✓ labelled ${answer.label}`;
      } catch (e) {
        toast(e.message, true);
      } finally {
        button.disabled = false;
      }
    },
  }, 'Save');
  classes().then(list => {
    fillSelect(select, list, 'label…');
    if (item.predicted_class) select.value = item.predicted_class;
  });
  return el('span.label-row', {}, select, button, status);
}
