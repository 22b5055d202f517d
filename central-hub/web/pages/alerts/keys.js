// The alerts page's keyboard: j / ↓ next, k / ↑ previous, n note, c confirm, x dismiss (Esc leaves the note:
// the review box handles it), and the card that lists them.

import { h } from '../../dom.js';
import { t } from '../../i18n.js';

/** The shortcuts, folded away under the page. */
export function shortcutsHelp() {
  return h(
    'details',
    { class: 'shortcuts card', 'data-testid': 'shortcuts' },
    h('summary', null, t('alerts.shortcuts')),
    h(
      'dl',
      { class: 'keys' },
      [
        ['j / ↓', t('alerts.key_next')],
        ['k / ↑', t('alerts.key_prev')],
        ['n', t('alerts.key_note')],
        ['c', t('alerts.key_confirm')],
        ['x', t('alerts.key_dismiss')],
        ['Esc', t('alerts.key_escape')],
      ].map(([k, d]) => [h('dt', null, h('kbd', null, k)), h('dd', null, d)]),
    ),
  );
}

/**
 * Listens for the shortcuts on the whole document, except while typing and in the top bar and navigation.
 * `move(delta)` steps through the list; `note()` returns the note field to focus, if any; `decide(decision)`
 * confirms or dismisses. Returns the function that stops listening.
 */
export function bindKeys({ move, note, decide }) {
  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const tag = (e.target.tagName || '').toLowerCase();
    if (['input', 'textarea', 'select'].includes(tag) || e.target.isContentEditable) return;
    if (e.target.closest && e.target.closest('.topbar, .sidebar')) return;
    switch (e.key) {
      case 'j':
      case 'ArrowDown':
        e.preventDefault();
        move(1);
        break;
      case 'k':
      case 'ArrowUp':
        e.preventDefault();
        move(-1);
        break;
      case 'n': {
        const el = note();
        if (el) {
          e.preventDefault();
          el.focus();
        }
        break;
      }
      case 'c':
        e.preventDefault();
        decide('confirm');
        break;
      case 'x':
        e.preventDefault();
        decide('dismiss');
        break;
      default:
    }
  }
  document.addEventListener('keydown', onKey);
  return () => document.removeEventListener('keydown', onKey);
}
