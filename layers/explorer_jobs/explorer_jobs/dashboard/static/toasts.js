// Toasts: short notices in a live region, so screen readers announce them as they appear.

import { h } from './dom.js';

const LIFETIME_MS = { info: 6000, success: 6000, error: 12000 };
const MAX_SHOWN = 5;

export class Toasts {
  constructor(region) {
    this.region = region;
  }

  /** Show a toast; `kind` is 'info', 'success' or 'error' (errors stay longer). */
  show({ title, body = '', kind = 'info' }) {
    const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss' }, '×');
    const toast = h('div', { class: `toast toast-${kind}`, 'data-kind': kind },
      h('div', { class: 'toast-text' }, h('strong', {}, title), body ? h('div', {}, body) : null),
      close);
    const dismiss = () => toast.remove();
    close.addEventListener('click', dismiss);
    // A burst (a replay after a reconnect) must not bury the page: keep the newest few.
    while (this.region.children.length >= MAX_SHOWN) this.region.firstElementChild.remove();
    this.region.append(toast);
    setTimeout(dismiss, LIFETIME_MS[kind] ?? LIFETIME_MS.info);
    return toast;
  }
}
