// DOM helpers. Text from the API always goes in as text nodes, never as
// HTML: app ids, labels and log lines are whatever users wrote.

// h builds an element: h('a', {href: '#', class: 'x', onclick: fn}, 'text', child).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'style') Object.assign(el.style, v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// replace swaps a region's content, keeping keyboard focus on the element
// with the same data-key (a re-render must not throw the user's place away).
export function replace(el, ...children) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.dataset.key : undefined;
  el.replaceChildren();
  append(el, children);
  if (key) {
    const again = el.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

export function badge(cls, text, extra) {
  return h('span', { class: `badge ${cls}${extra ? ' ' + extra : ''}` }, text);
}

// bar draws segments [{cls, n}] out of total, with a text label for
// screen readers.
export function bar(segments, total, label) {
  const el = h('div', { class: 'bar', role: 'img', 'aria-label': label });
  const sum = segments.reduce((a, s) => a + s.n, 0);
  const whole = Math.max(total, sum, 1);
  for (const s of segments) {
    if (s.n <= 0) continue;
    const seg = h('span', { class: s.cls });
    seg.style.width = `${(100 * s.n) / whole}%`;
    el.appendChild(seg);
  }
  return el;
}

export function bytes(n) {
  if (n === undefined || n === null || n < 0) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export function mib(n) {
  if (n === undefined || n === null) return '—';
  return n >= 1024 ? `${(n / 1024).toFixed(n % 1024 ? 1 : 0)} GiB` : `${+n.toFixed(1)} MiB`;
}

export function num(n, digits = 2) {
  if (n === undefined || n === null) return '—';
  return String(+Number(n).toFixed(digits));
}

// ago is "12 s ago", "3 min ago", …
export function ago(iso) {
  if (!iso) return '';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function clock(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function when(iso) {
  if (!iso) return null;
  return h('time', { datetime: iso, title: iso }, clock(iso), h('span', { class: 'ago' }, ago(iso)));
}

export function shortID(id) {
  return id ? id.slice(0, 8) : '';
}

// appHref is the dashboard's address of an app page.
export function appHref(id) {
  return '#/app' + id.split('/').map(encodeURIComponent).join('/');
}

export function logHref(taskID, file) {
  return `#/log/${encodeURIComponent(taskID)}${file && file !== 'stdout' ? '?file=' + file : ''}`;
}
