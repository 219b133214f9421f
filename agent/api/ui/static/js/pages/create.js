// Create an app from JSON, or change one: a JSON editor that shows a 422's
// details at their paths, on the lines they are about.
import { h, replace, appHref } from '../dom.js';
import { request, get, deploymentOf, APIError } from '../api.js';
import { state, watchDeployment, refresh } from '../store.js';
import { locate, lineOf, spotOf, JSONSyntaxError } from '../json.js';
import { toast } from '../actions.js';
import { definitionOf } from './app.js';

const examples = [
  { name: 'testapp', file: 'examples/testapp.json', label: 'Test app: a key-value store on a persistent volume' },
  { name: 'postgres', file: 'examples/postgres-offline.json', label: 'PostgreSQL 15 (image built by make postgres-image)' },
];

const starter = `{
  "id": "/my-app",
  "instances": 1,
  "cpus": 0.1,
  "mem": 64,
  "container": {
    "type": "DOCKER",
    "docker": { "image": "mesolite/testapp:latest" }
  }
}
`;

let draft = null; // what the user typed on the create page, kept across pages

export function mount(root, params) {
  const editing = params.id || '';
  const ta = h('textarea', {
    id: 'json-editor', spellcheck: 'false', autocomplete: 'off', autocapitalize: 'off', wrap: 'off',
    'aria-label': 'App definition (JSON)', 'aria-describedby': 'editor-help editor-errors',
  });
  const gutter = h('div', { class: 'gutter', 'aria-hidden': 'true' });
  const backdrop = h('div', { class: 'backdrop', 'aria-hidden': 'true' });
  const errors = h('ul', { class: 'errors', id: 'editor-errors', 'aria-live': 'assertive' });
  const summary = h('p', { class: 'error', id: 'editor-message', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'button primary', id: 'editor-submit' }, editing ? 'Save changes' : 'Create app');
  const pick = h('select', { id: 'example' }, h('option', { value: '' }, 'Insert an example…'),
    examples.map((e) => h('option', { value: e.file }, e.label)));
  let details = []; // the last answer's [{path, errors}], kept in place while the text changes

  const form = h('form', { id: 'editor-form', novalidate: true },
    h('div', { class: 'editor' }, gutter, h('div', { class: 'code' }, backdrop, ta)),
    summary, errors,
    h('div', { class: 'form-row' },
      editing ? null : [h('label', { for: 'example' }, 'Example'), pick],
      h('span', { class: 'spacer' }),
      h('a', { class: 'button', href: editing ? appHref(editing) : '#/apps' }, 'Cancel'), submit));

  root.append(
    h('div', { class: 'page-head' }, h('h1', null, editing ? `Edit ${editing}` : 'Create an app')),
    h('section', { class: 'panel' },
      h('p', { id: 'editor-help', class: 'muted' }, 'Marathon app JSON, as ',
        h('code', null, 'POST /v2/apps'), editing ? ' (here PUT /v2/apps/…) ' : ' ', 'takes it. Errors are shown on the lines they are about. ',
        'Ctrl+Enter submits.'),
      form));

  // Layout: the backdrop and gutter follow the textarea's scrolling.
  const sync = () => {
    backdrop.style.transform = `translate(${-ta.scrollLeft}px, ${-ta.scrollTop}px)`;
    gutter.scrollTop = ta.scrollTop;
  };
  ta.addEventListener('scroll', sync);

  // paint redraws the line numbers and the error marks from the text and
  // the details of the last answer.
  function paint() {
    const text = ta.value;
    const lines = text.split('\n');
    const marks = new Map(); // line -> [messages]
    let spots = null;
    let syntax = null;
    try { spots = locate(text); } catch (e) { if (e instanceof JSONSyntaxError) syntax = e; }
    const items = [];
    for (const d of details) {
      let line = 0;
      if (spots) {
        const s = spotOf(spots, d.path);
        line = lineOf(text, s.pos);
      }
      const msg = `${d.path}: ${d.errors.join('; ')}`;
      if (line) marks.set(line, [...(marks.get(line) || []), msg]);
      items.push(h('li', { dataset: { path: d.path, line: String(line) } },
        h('button', { type: 'button', class: 'link path', onclick: () => goTo(line) }, d.path),
        line ? h('span', { class: 'muted' }, ` (line ${line})`) : null, ': ', d.errors.join('; ')));
    }
    if (syntax && text.trim()) {
      const line = lineOf(text, syntax.pos);
      marks.set(line, [...(marks.get(line) || []), `JSON: ${syntax.message}`]);
    }
    replace(errors, items);
    replace(gutter, lines.map((_, i) => h('div', { class: marks.has(i + 1) ? 'err' : '' }, marks.has(i + 1) ? `● ${i + 1}` : String(i + 1))));
    replace(backdrop, lines.map((l, i) => {
      const m = marks.get(i + 1);
      return h('span', { class: m ? 'ln err' : 'ln', dataset: m ? { line: String(i + 1) } : undefined }, l,
        m ? h('span', { class: 'msg', dataset: { line: String(i + 1) } }, '◀ ' + m.join(' · ')) : null);
    }));
    sync();
  }

  function goTo(line) {
    if (!line) return;
    const lines = ta.value.split('\n');
    const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    ta.focus();
    ta.setSelectionRange(start, start + lines[line - 1].length);
    const lh = parseFloat(getComputedStyle(ta).lineHeight) || 20;
    ta.scrollTop = Math.max(0, (line - 4) * lh);
  }

  let timer = null;
  ta.addEventListener('input', () => {
    if (!editing) draft = ta.value;
    clearTimeout(timer);
    timer = setTimeout(paint, 150);
  });
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
  });

  async function insert(file) {
    try {
      const res = await fetch(file, { cache: 'no-store' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      ta.value = await res.text();
      draft = ta.value;
      details = [];
      summary.textContent = '';
      paint();
    } catch (e) { toast('bad', `Cannot load the example: ${e.message}`); }
  }
  pick.addEventListener('change', async () => {
    if (!pick.value) return;
    await insert(pick.value);
    pick.value = '';
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    let body;
    try {
      locate(ta.value);
      body = JSON.parse(ta.value);
    } catch (err) {
      details = [];
      summary.textContent = `Not valid JSON: ${err.message}${err.pos !== undefined ? ` (line ${lineOf(ta.value, err.pos)})` : ''}`;
      paint();
      return;
    }
    submit.disabled = true;
    summary.textContent = '';
    try {
      const r = editing
        ? await request('PUT', '/v2/apps' + editing.split('/').map(encodeURIComponent).join('/'), body)
        : await request('POST', '/v2/apps', body);
      const id = editing || (r.body && r.body.id) || body.id;
      const dep = deploymentOf(r);
      watchDeployment(dep, id);
      toast('ok', editing ? `Saved ${id}` : `Created ${id}`, dep ? ` · deployment ${dep.slice(0, 8)} started` : '');
      if (!editing) draft = null;
      details = [];
      refresh();
      location.hash = appHref(id);
    } catch (err) {
      if (err instanceof APIError && err.status === 422 && Array.isArray(err.body.details)) {
        details = err.body.details;
        summary.textContent = `${err.body.message || 'Object is not valid'}: ${details.length} error${details.length === 1 ? '' : 's'}, marked below and in the editor.`;
      } else if (err instanceof APIError) {
        details = [];
        const more = err.body && typeof err.body.details === 'string' ? ` (${err.body.details})` : '';
        summary.textContent = `${err.message}${more}`;
      } else {
        details = [];
        summary.textContent = String(err.message || err);
      }
      paint();
      const first = errors.querySelector('li');
      if (first) goTo(Number(first.dataset.line));
    } finally {
      submit.disabled = false;
    }
  });

  // Fill the editor: the app's definition, the draft, or a starter.
  (async () => {
    if (editing) {
      let app = state.byId.get(editing);
      if (!app) {
        try { app = (await get('/v2/apps' + editing.split('/').map(encodeURIComponent).join('/'))).app; } catch (e) { summary.textContent = e.message; }
      }
      ta.value = app ? JSON.stringify(definitionOf(app), null, 2) + '\n' : '';
    } else {
      const ex = examples.find((e) => e.name === params.example);
      if (ex) await insert(ex.file);
      else ta.value = draft ?? starter;
    }
    paint();
    ta.focus();
  })();

  return { update() {}, needs: [] };
}
