// Small DOM and formatting helpers. Text always goes in through textContent (never innerHTML), so
// names from users' databases and messages from the server cannot inject markup.

/**
 * Build an element: h('button', {type: 'button', class: 'link', onclick: fn}, 'Cancel').
 * Attributes whose value is null, undefined or false are left out; `true` sets an empty attribute.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else if (name in element && typeof value !== 'string') {
      element[name] = value;  // properties such as `checked`, `value`, `hidden`, `indeterminate`
    } else {
      element.setAttribute(name, value === true ? '' : value);
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's content. */
export function replaceChildren(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element;
}

/** "1 table", "14 tables"; `plural` for words that do not take an s. */
export function count(n, singular, plural = `${singular}s`) {
  return `${n.toLocaleString()} ${n === 1 ? singular : plural}`;
}

// 24-hour clock: a narrow, unambiguous column whatever the locale.
const timeOnly = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
});
const dateAndTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** A <time> for an ISO timestamp: the time alone when it is today, else date and time; "—" for null. */
export function timeElement(iso) {
  if (!iso) return h('span', { class: 'muted', 'aria-label': 'not yet' }, '—');
  const when = new Date(iso);
  const today = when.toDateString() === new Date().toDateString();
  return h('time', { datetime: iso, title: dateAndTime.format(when) },
    today ? timeOnly.format(when) : dateAndTime.format(when));
}

export function formatDateTime(iso) {
  return iso ? dateAndTime.format(new Date(iso)) : '—';
}

/** "850 ms", "12.4 s", "3 min 5 s". */
export function formatDuration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60000);
  return `${minutes} min ${Math.round((ms % 60000) / 1000)} s`;
}

/** "schema_training" -> "Schema training". */
export function humanize(name) {
  const words = String(name).replaceAll('_', ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** A random id for Idempotency-Key; getRandomValues works on plain http too, unlike randomUUID. */
export function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
