// Small DOM helpers. Every element is built with createElement and textContent, never from HTML strings,
// so text that comes from the API (names, notes, audit details) can never become markup.

/** h('button', {class: 'btn', onclick: fn, 'data-testid': 'x'}, 'Label', child, [more]) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** The same for SVG elements (charts). */
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setProps(el, props);
  append(el, children);
  return el;
}

function setProps(el, props) {
  if (!props) return;
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k === 'text') el.textContent = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'selected' || k === 'disabled' || k === 'multiple') {
      el[k] = Boolean(v);
    } else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces all children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A labelled form field: <div class="field"><label for>..</label> control hint</div>. */
let fieldSeq = 0;
export function field(label, control, hint) {
  if (!control.id) control.id = `f${++fieldSeq}`;
  const parts = [h('label', { for: control.id }, label), control];
  if (hint) {
    const hid = `${control.id}-hint`;
    control.setAttribute('aria-describedby', hid);
    parts.push(h('p', { class: 'hint', id: hid }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

/** <select> from [[value, label], ...]. */
export function select(props, options, selected) {
  return h(
    'select',
    props,
    options.map(([v, l]) => h('option', { value: v, selected: String(v) === String(selected ?? '') }, l)),
  );
}

/** A message box next to a form: role=alert so screen readers read it when it appears. */
export function messageBox(testid) {
  const box = h('div', { class: 'msg', role: 'alert', 'data-testid': testid, hidden: true });
  return {
    el: box,
    error(text) {
      box.className = 'msg msg-error';
      box.textContent = text;
      box.hidden = false;
    },
    ok(text) {
      box.className = 'msg msg-ok';
      box.textContent = text;
      box.hidden = false;
    },
    clear() {
      box.hidden = true;
      box.textContent = '';
    },
  };
}

/** Disables a button while `fn` runs, so a double click does not send twice. */
export async function busy(button, fn) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/** A form's submit handler: keeps the page, clears `msg`, runs `action` with `button` disabled, and shows a
 *  failure next to the form (the hub's messages are written for people; `errorText` turns an error into text).
 *  `action` checks its own inputs first (`return msg.error(...)` sends nothing); `onError` replaces the plain
 *  error report where a form shows more (which photo was refused, say). */
export function submitting(button, msg, errorText, action, onError = (e) => msg.error(errorText(e))) {
  return (ev) => {
    ev.preventDefault();
    msg.clear();
    busy(button, async () => {
      try {
        await action();
      } catch (e) {
        onError(e);
      }
    });
  };
}

/** Reads a File or Blob as base64 (without the data: prefix), for the API's *_jpeg_b64 fields. */
export function fileBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ''));
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}
