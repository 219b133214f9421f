// An app's page: its status and actions, why it waits or what failed last,
// its deployments, tasks, volumes, versions and definition.
import { h, replace, badge, bar, bytes, mib, num, when, ago, logHref, appHref } from '../dom.js';
import { get } from '../api.js';
import { state } from '../store.js';
import { appStatus, statusBadge, instancesBar, imageOf, taskState, taskHealth, delayLeft, legend } from '../model.js';
import { render, diffLines, sorted, deepEqual } from '../json.js';
import * as act from '../actions.js';
import { deploymentCard } from './common.js';

// Fields of GET /v2/apps that are state, not definition.
const stateFields = ['tasks', 'tasksStaged', 'tasksRunning', 'tasksHealthy', 'tasksUnhealthy', 'deployments',
  'lastTaskFailure', 'waitingReason', 'version', 'versionInfo', 'readinessCheckResults', 'taskStats'];

export function definitionOf(app) {
  const out = {};
  for (const [k, v] of Object.entries(app)) if (!stateFields.includes(k)) out[k] = v;
  return out;
}

let defaults = null; // /ui/defaults.json, read once
async function loadDefaults() {
  if (!defaults) defaults = get('/ui/defaults.json').catch(() => ({}));
  return defaults;
}

export function mount(root, params) {
  const id = params.id;
  const head = h('div');
  const alerts = h('div', { id: 'alerts' });
  const deploys = h('section', { class: 'panel', id: 'deployments', 'aria-labelledby': 'dep-title', hidden: true });
  const overview = h('section', { class: 'panel', 'aria-labelledby': 'ov-title' });
  const tasks = h('section', { class: 'panel', id: 'tasks', 'aria-labelledby': 'tasks-title' });
  const volumes = h('section', { class: 'panel', id: 'volumes', 'aria-labelledby': 'vol-title' });
  const versions = h('section', { class: 'panel', id: 'versions', 'aria-labelledby': 'ver-title' });
  const definition = h('section', { class: 'panel', id: 'definition', 'aria-labelledby': 'def-title' });
  const rest = h('div', { class: 'stack' }, tasks, deploys, versions, definition);
  rest.style.marginTop = '1.25rem';
  root.append(head, alerts, h('div', { class: 'grid2' }, overview, volumes), rest);

  const ver = versionsPanel(versions, id);
  const def = definitionPanel(definition);
  let gone = false;

  function update(kind) {
    if (kind === 'event') return;
    const app = state.byId.get(id);
    if (!state.loaded) {
      replace(head, h('h1', null, id), h('p', { class: 'muted' }, state.error ? state.error.message : 'Loading…'));
      return;
    }
    if (!app) {
      gone = true;
      replace(head, crumbs(id), h('div', { class: 'page-head' }, h('h1', null, id)),
        h('div', { class: 'alert info', id: 'app-gone' }, h('span', { class: 'body' }, `App ${id} does not exist (any more). `,
          h('a', { href: '#/apps' }, 'Back to the apps'))));
      for (const s of [alerts, overview, tasks, volumes, versions, definition]) s.hidden = true;
      deploys.hidden = true;
      return;
    }
    if (gone) {
      gone = false;
      for (const s of [alerts, overview, tasks, volumes, versions, definition]) s.hidden = false;
    }
    const queued = state.queue.get(id);
    const status = appStatus(app, queued);
    headPart(head, app, status);
    alertsPart(alerts, app, queued);
    deploysPart(deploys, app);
    overviewPart(overview, app);
    tasksPart(tasks, app);
    volumesPart(volumes, app);
    ver.update(app);
    def.update(app);
  }
  return { update, needs: ['volumes'] };
}

function crumbs(id) {
  const parts = id.split('/').filter(Boolean);
  return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/apps' }, 'Apps'),
    parts.slice(0, -1).map((p, i) => [' / ', h('span', null, p)]), ' / ');
}

function headPart(el, app, status) {
  const stopped = app.instances === 0;
  const b = (label, cls, fn, key, title) => h('button', { type: 'button', class: `button ${cls}`, dataset: { key, action: key }, onclick: fn, title }, label);
  replace(el, crumbs(app.id), h('div', { class: 'page-head' },
    h('h1', { id: 'app-title' }, app.id), h('span', { id: 'app-status', dataset: { status } }, statusBadge(status, true)),
    h('span', { class: 'spacer' }),
    h('div', { class: 'actions', role: 'group', 'aria-label': 'App actions' },
      b('Scale…', '', async () => {
        const n = await act.askNumber(`Scale ${app.id}`, app.instances);
        if (n !== null) act.scale(app, n);
      }, 'scale'),
      stopped
        ? b('▶ Start', 'primary', () => act.start(app), 'start', 'Start again on the stopped reservations')
        : b('■ Stop', '', () => act.stop(app), 'stop', 'Scale to 0: tasks stop, reservations and volumes stay'),
      b('↻ Restart', '', () => act.restart(app), 'restart', 'Kill each task and relaunch it on its reservation', stopped),
      h('a', { class: 'button', href: '#/edit' + app.id, dataset: { key: 'edit' } }, 'Edit JSON'),
      b('Remove…', 'ghost-danger', async () => {
        if (await act.remove(app)) location.hash = '#/apps';
      }, 'remove', 'Kill the tasks and delete the volumes'))));
  const restart = el.querySelector('[data-action="restart"]');
  if (restart) restart.disabled = stopped;
}

function alertsPart(el, app, queued) {
  const out = [];
  const left = delayLeft(queued);
  if (queued && left > 0) {
    out.push(h('div', { class: 'alert delay', id: 'alert-delay' }, h('span', { class: 'what' }, 'Delayed'),
      h('span', { class: 'body' }, `The next launch waits ${left} s more (backoff after a failure). `),
      h('button', { type: 'button', class: 'button small', onclick: () => act.resetDelay(app), dataset: { key: 'reset-delay' } }, 'Launch now')));
  }
  const why = (queued && queued.waitingReason) || app.waitingReason;
  if (why) {
    out.push(h('div', { class: 'alert warn', id: 'alert-waiting' }, h('span', { class: 'what' }, 'Waiting'), h('span', { class: 'body' }, why)));
  }
  const f = app.lastTaskFailure;
  if (f) {
    out.push(h('div', { class: 'alert bad', id: 'alert-failure' }, h('span', { class: 'what' }, 'Last failure'),
      h('span', { class: 'body' }, h('strong', null, f.state.replace('TASK_', '')), ` ${ago(f.timestamp)}: `, f.message || '(no message)',
        h('span', { class: 'sub mono muted' }, f.taskId))));
  }
  replace(el, out);
}

function deploysPart(el, app) {
  const mine = [...state.seenDeployments.values()].filter((d) => d.appId === app.id);
  const current = new Set(app.deployments.map((d) => d.id));
  for (const d of state.deployments) {
    const seen = state.seenDeployments.get(d.id);
    if (seen) { seen.steps = d.steps.map((s) => s.actions.map((a) => a.action)); seen.currentStep = d.currentStep; }
  }
  const shown = mine.filter((d) => current.has(d.id) || d.result || Date.now() - d.started < 60000)
    .sort((a, b) => b.started - a.started).slice(0, 3);
  el.hidden = shown.length === 0;
  replace(el, h('h2', { id: 'dep-title' }, 'Deployments', h('span', { class: 'hint' }, 'the latest, with their steps')),
    shown.map((d) => deploymentCard(d, false)));
}

function overviewPart(el, app) {
  const img = imageOf(app);
  const pms = (app.container && app.container.portMappings) || app.portDefinitions || [];
  replace(el, h('h2', { id: 'ov-title' }, 'Overview'),
    instancesBar(app), legend(),
    h('dl', { class: 'kv' },
      h('dt', null, 'Instances'), h('dd', null, `${app.tasksRunning || 0} running of ${app.instances} wanted · ${app.tasksHealthy || 0} healthy · ${app.tasksStaged || 0} staged · ${app.tasksUnhealthy || 0} unhealthy`,
        stoppedCount(app) ? h('span', { class: 'sub' }, `${stoppedCount(app)} stopped: reservation and volumes kept for the next start`) : null),
      h('dt', null, 'Resources'), h('dd', null, `${num(app.cpus)} CPUs · ${mib(app.mem)} memory${app.disk ? ' · ' + mib(app.disk) + ' disk' : ''} per instance`),
      h('dt', null, img.kind === 'image' ? 'Image' : 'Command'), h('dd', null, h('code', null, img.text)),
      pms.length ? [h('dt', null, 'Ports'), h('dd', null, pms.map((p) => `${p.containerPort ?? p.port}/${p.protocol || 'tcp'}${p.name ? ' (' + p.name + ')' : ''}`).join(', '))] : null,
      (app.healthChecks || []).length ? [h('dt', null, 'Health checks'), h('dd', null, app.healthChecks.map((c) => `${c.protocol}${c.path ? ' ' + c.path : ''} every ${c.intervalSeconds} s`).join(', '))] : null,
      h('dt', null, 'Version'), h('dd', null, when(app.version))));
}

function stoppedCount(app) {
  return (app.tasks || []).filter((t) => t.state === 'TASK_KILLED' && !t.startedAt).length;
}

function tasksPart(el, app) {
  const ts = [...(app.tasks || [])].sort((a, b) => (a.instanceId || a.id).localeCompare(b.instanceId || b.id));
  const rows = ts.map((t) => {
    const hl = taskHealth(t, app);
    const ports = (t.ports || []).map((p) => h('a', { href: `http://${t.host}:${p}/`, target: '_blank', rel: 'noopener' }, String(p)));
    return h('tr', { dataset: { task: t.id, instance: t.instanceId || '', state: t.state, incarnation: String(t.incarnation || '') } },
      h('td', { class: 'task-id' }, t.id, t.message ? h('span', { class: 'sub' }, t.message) : null),
      h('td', null, taskState(t)),
      h('td', { class: 'health' }, hl.cls === 'none' ? h('span', { class: 'muted' }, hl.text) : badge(hl.cls, hl.text),
        hl.cause ? h('span', { class: 'sub' }, hl.cause) : null),
      h('td', { class: 'ports' }, ports.length ? ports.flatMap((p, i) => (i ? [', ', p] : [p])) : '—'),
      h('td', { class: 'started' }, t.startedAt ? when(t.startedAt) : h('span', { class: 'muted' }, 'not running')),
      h('td', { class: 'num incarnation' }, String(t.incarnation || '—')),
      h('td', { class: 'actions' },
        h('a', { class: 'button small', href: logHref(t.id), dataset: { key: 'log:' + t.id, action: 'log' } }, 'Log'),
        h('button', { type: 'button', class: 'button small', dataset: { key: 'kill:' + t.id, action: 'kill' }, onclick: () => act.kill(t), title: 'Kill: relaunched in place, data kept' }, 'Kill'),
        h('button', { type: 'button', class: 'button small ghost-danger', dataset: { key: 'wipe:' + t.id, action: 'wipe' }, onclick: () => act.killWipe(t), title: 'Kill, delete the volumes, relaunch as a new instance' }, 'Kill & wipe…')));
  });
  replace(el, h('h2', { id: 'tasks-title' }, 'Tasks', h('span', { class: 'hint' }, `${ts.length}`)),
    ts.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'tasks-table', 'aria-labelledby': 'tasks-title' },
      h('thead', null, h('tr', null, ['Task', 'State', 'Health', 'Host ports', 'Started', 'Incarnation', ''].map((c, i) =>
        h('th', { scope: 'col', class: i === 5 ? 'num' : '' }, c || h('span', { class: 'sr-only' }, 'Actions'))))),
      h('tbody', null, rows))) : h('p', { class: 'muted' }, 'No tasks.'));
}

function volumesPart(el, app) {
  const paths = new Map((state.volumes || []).map((v) => [v.persistenceId, v.path]));
  const rows = [];
  for (const t of app.tasks || []) {
    for (const v of t.volumes || []) {
      const size = v.sizeMiB * 1024 * 1024;
      const used = v.usedBytes;
      const frac = used >= 0 && size > 0 ? used / size : 0;
      const seg = { cls: `used${frac >= 1 ? ' full' : frac >= 0.9 ? ' warn' : ''}`, n: Math.min(used >= 0 ? used : 0, size) };
      const label = used >= 0 ? `${bytes(used)} of ${mib(v.sizeMiB)} (${Math.round(frac * 100)}%)` : `${mib(v.sizeMiB)}, use measured every 30 s`;
      rows.push(h('div', { class: 'volume', dataset: { persistence: v.persistenceId } },
        h('h3', null, v.containerPath, h('span', { class: 'muted' }, ` · ${t.instanceId ? t.instanceId.slice(t.instanceId.indexOf('instance-')) : t.id}`)),
        h('div', { class: 'bar-wrap' }, bar([seg], size, label), h('span', { class: 'bar-label' }, label)),
        h('div', { class: 'mono muted hostpath', title: 'host path' }, paths.get(v.persistenceId) || v.persistenceId)));
    }
  }
  el.hidden = rows.length === 0 && !(app.container && (app.container.volumes || []).some((v) => v.persistent));
  replace(el, h('h2', { id: 'vol-title' }, 'Persistent volumes', h('span', { class: 'hint' }, 'use against size · host path')),
    rows.length ? h('div', { class: 'stack' }, rows) : h('p', { class: 'muted' }, 'No volume reserved.'));
}

// versionsPanel lists the app's versions and shows the difference between
// two of them.
function versionsPanel(el, id) {
  const docs = new Map();
  let list = [];
  let seenVersion = '';
  const from = h('select', { id: 'diff-from' });
  const to = h('select', { id: 'diff-to' });
  const out = h('pre', { class: 'diff', id: 'diff', tabindex: '0', 'aria-label': 'Difference between the versions' });
  const count = h('span', { class: 'hint' });
  el.append(h('h2', { id: 'ver-title' }, 'Versions', count),
    h('div', { class: 'toolbar' },
      h('label', { for: 'diff-from' }, 'Compare'), from, h('label', { for: 'diff-to' }, 'with'), to),
    out);
  const path = '/v2/apps' + id.split('/').map(encodeURIComponent).join('/');
  const doc = async (v) => {
    if (!docs.has(v)) docs.set(v, get(`${path}/versions/${encodeURIComponent(v)}`));
    return docs.get(v);
  };
  async function showDiff() {
    if (!from.value || !to.value) { replace(out, h('span', { class: 'gap' }, 'Only one version so far: change the app to compare.')); return; }
    try {
      const [a, b] = await Promise.all([doc(from.value), doc(to.value)]);
      const strip = (d) => { const c = { ...d }; delete c.version; delete c.versionInfo; return JSON.stringify(sorted(c), null, 2).split('\n'); };
      const lines = diffLines(strip(a), strip(b));
      const shown = [];
      lines.forEach(([op, text], i) => {
        const near = lines.slice(Math.max(0, i - 2), i + 3).some(([o]) => o !== ' ');
        if (op !== ' ' || near) shown.push(h('span', { class: `line ${op === '+' ? 'add' : op === '-' ? 'del' : 'ctx'}` }, `${op} ${text}`));
        else if (shown.length && !shown[shown.length - 1].classList.contains('gap')) shown.push(h('span', { class: 'line gap' }, '  …'));
      });
      const changed = lines.some(([op]) => op !== ' ');
      replace(out, changed ? shown : h('span', { class: 'gap' }, 'No difference in the definition (a version made by scaling may differ only in instances).'));
    } catch (e) {
      replace(out, `Cannot read the versions: ${e.message}`);
    }
  }
  from.addEventListener('change', showDiff);
  to.addEventListener('change', showDiff);
  return {
    async update(app) {
      const key = `${app.version}`;
      if (key === seenVersion) return;
      seenVersion = key;
      try {
        list = (await get(`${path}/versions`)).versions || [];
      } catch { return; }
      count.textContent = `${list.length}`;
      const opts = (sel, pick) => {
        const keep = sel.value;
        replace(sel, list.map((v, i) => h('option', { value: v }, `${new Date(v).toLocaleString()}${i === 0 ? ' (current)' : ''}`)));
        sel.value = list.includes(keep) && keep !== list[pick === 0 ? 1 : 0] ? keep : (list[pick] || '');
      };
      opts(to, 0);
      opts(from, Math.min(1, list.length - 1));
      if (list.length < 2) from.value = '';
      if (list.length >= 2 && from.value === to.value) { to.value = list[0]; from.value = list[1]; }
      showDiff();
    },
  };
}

// definitionPanel shows the definition as JSON with the fields the user
// set (those that differ from Marathon's defaults) highlighted.
function definitionPanel(el) {
  const pre = h('pre', { class: 'json', id: 'definition-json', tabindex: '0', 'aria-label': 'App definition' });
  const only = h('input', { type: 'checkbox', id: 'only-set' });
  const copy = h('button', { type: 'button', class: 'button small' }, 'Copy JSON');
  let last = '';
  let current = null;
  only.addEventListener('change', () => pre.classList.toggle('only-set', only.checked));
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(JSON.stringify(current, null, 2));
      act.toast('ok', 'Definition copied');
    } catch (e) { act.failed('Copy', e); }
  });
  el.append(h('h2', { id: 'def-title' }, 'Definition', h('span', { class: 'hint' }, 'highlighted: the fields set, where they differ from the defaults')),
    h('div', { class: 'toolbar' }, h('label', null, only, ' Only the fields set'), copy), pre);
  return {
    async update(app) {
      const d = definitionOf(app);
      const text = JSON.stringify(d);
      if (text === last) return;
      last = text;
      current = d;
      const defs = await loadDefaults();
      const resident = ((app.container && app.container.volumes) || []).some((v) => v.persistent);
      const base = (resident ? defs.resident : defs.host) || {};
      replace(pre, render(d, (path, value) => !isDefault(base, path, value)));
    },
  };
}

// isDefault looks the path up in the defaults, any array element standing
// for the first.
function isDefault(base, path, value) {
  if (path.startsWith('/networks') && value === 'host') return true;
  // Service ports are assigned by the agent when the definition has 0.
  if (/\/servicePorts?(\(\d+\))?$/.test(path)) return true;
  const parts = path.split(/\/|(?=\()/).filter(Boolean);
  let cur = base;
  for (const p of parts) {
    if (cur === undefined || cur === null) return false;
    if (p.startsWith('(')) cur = Array.isArray(cur) ? cur[0] : undefined;
    else cur = cur[p];
  }
  return cur !== undefined && deepEqual(cur, value);
}
