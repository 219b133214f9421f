// The agent's page: what it offers and what is reserved, what its last
// start recovered, what it could not read or does not own, and the event
// stream as it arrives.
import { h, replace, bar, mib, num, when, clock, appHref } from '../dom.js';
import { state } from '../store.js';
import * as act from '../actions.js';

export function mount(root) {
  const facts = h('section', { class: 'panel', 'aria-labelledby': 'agent-title' });
  const resources = h('section', { class: 'panel', id: 'resources', 'aria-labelledby': 'res-title' });
  const recovery = h('section', { class: 'panel', id: 'recovery', 'aria-labelledby': 'rec-title' });
  const problems = h('section', { class: 'panel', id: 'problems', 'aria-labelledby': 'prob-title' });
  const events = h('section', { class: 'panel', id: 'events', 'aria-labelledby': 'ev-title' });
  const filter = h('input', { type: 'search', id: 'event-filter', placeholder: 'status_update_event', 'aria-label': 'Filter events by type' });
  const list = h('ol', { class: 'events', id: 'event-list', reversed: true });
  const evCount = h('span', { class: 'hint' });
  events.append(h('h2', { id: 'ev-title' }, 'Event stream', evCount),
    h('div', { class: 'toolbar' }, h('label', { for: 'event-filter' }, 'Type'), filter,
      h('span', { class: 'muted' }, 'newest first, since this page was opened')), list);
  filter.addEventListener('input', () => drawEvents());

  root.append(h('div', { class: 'page-head' }, h('h1', { id: 'agent-title' }, 'Agent')),
    facts, h('div', { class: 'grid2' }, resources, recovery), h('div', { class: 'stack' }, problems, events));
  problems.style.marginTop = '1.25rem';

  let drawn = null; // the newest event drawn
  function drawEvents() {
    const f = filter.value.trim().toLowerCase();
    const shown = state.events.filter((e) => !f || e.type.toLowerCase().includes(f)).slice(0, 150);
    evCount.textContent = `${state.events.length}`;
    replace(list, shown.map((e) => h('li', { dataset: { type: e.type } },
      h('details', null, h('summary', null, h('span', { class: 'etime' }, clock(new Date(e.at).toISOString())),
        h('span', { class: 'etype' }, e.type), ' ', h('span', { class: 'muted' }, describe(e))),
      h('pre', null, JSON.stringify(e.data, null, 2))))));
    drawn = state.events[0];
  }

  function update(kind) {
    if (kind === 'event' || kind === 'live') {
      if (state.events[0] !== drawn) drawEvents();
      if (kind === 'event') return;
    }
    const s = state.status;
    if (!s) {
      replace(facts, h('p', { class: 'muted' }, state.error ? state.error.message : 'Loading…'));
      return;
    }
    replace(facts, h('dl', { class: 'kv', id: 'agent-facts' },
      h('dt', null, 'Agent id'), h('dd', { class: 'mono' }, s.agentId),
      h('dt', null, 'Framework id'), h('dd', { class: 'mono' }, s.frameworkId),
      h('dt', null, 'Version'), h('dd', null, s.version || '—'),
      h('dt', null, 'Work directory'), h('dd', { class: 'mono' }, s.workDir),
      h('dt', null, 'Docker'), h('dd', null, s.dockerUp ? 'answering' : h('strong', { class: 'error' }, 'not answering: tasks show their last known state')),
      h('dt', null, 'Apps, tasks'), h('dd', null, `${s.apps} apps, ${s.tasks} tasks`),
      h('dt', null, 'Event stream'), h('dd', null, state.live ? 'connected' : 'reconnecting…')));
    resourcesPart(resources, s);
    recoveryPart(recovery, s.recovery || {});
    problemsPart(problems, s);
    drawEvents();
  }
  return { update, needs: ['status', 'volumes'] };
}

// reserved sums what the instances hold: the agent's own figures when it
// gives them, else each task's app's resources.
function reserved(s) {
  if (s.reserved) return s.reserved;
  const out = { cpus: 0, mem: 0, disk: 0, ports: 0 };
  for (const t of state.tasks) {
    const a = state.byId.get(t.appId);
    if (!a) continue;
    out.cpus += a.cpus || 0;
    out.mem += a.mem || 0;
    out.disk += (a.disk || 0) + (t.volumes || []).reduce((n, v) => n + v.sizeMiB, 0);
    out.ports += (t.ports || []).length;
  }
  return out;
}

function resourcesPart(el, s) {
  const r = s.resources || {};
  const used = reserved(s);
  const [lo, hi] = String(r.ports || '0-0').split('-').map(Number);
  const row = (name, have, taken, fmt) => {
    const label = `${fmt(taken)} reserved of ${fmt(have)} offered`;
    return h('div', { class: 'resource', dataset: { resource: name } }, h('h3', null, name),
      h('div', { class: 'bar-wrap' }, bar([{ cls: 'used', n: taken }], have, label), h('span', { class: 'bar-label' }, label)));
  };
  replace(el, h('h2', { id: 'res-title' }, 'Resources', h('span', { class: 'hint' }, 'reserved of offered')),
    h('div', { class: 'stack' },
      row('CPUs', r.cpus, used.cpus, (n) => num(n)),
      row('Memory', r.mem, used.mem, mib),
      row('Disk', r.disk, used.disk, mib),
      row(`Host ports ${r.ports}`, hi - lo + 1, used.ports, (n) => String(n))));
}

function recoveryPart(el, rec) {
  replace(el, h('h2', { id: 'rec-title' }, 'Last start', h('span', { class: 'hint' }, 'what recovery found')),
    rec.done ? h('dl', { class: 'kv', id: 'recovery-facts' },
      h('dt', null, 'Recovered'), h('dd', null, when(rec.at)),
      h('dt', null, 'Took'), h('dd', null, `${num(rec.tookSeconds, 3)} s`),
      h('dt', null, 'Containers adopted'), h('dd', null, String(rec.adopted)),
      h('dt', null, 'Tasks relaunched'), h('dd', null, String(rec.relaunched)),
      h('dt', null, 'Orphaned containers'), h('dd', null, String(rec.orphans)),
      h('dt', null, 'Unreadable records'), h('dd', null, String(rec.unreadable)))
      : h('p', { class: 'muted' }, 'Recovery has not finished yet (Docker may not answer).'));
}

function problemsPart(el, s) {
  const orphans = (state.volumes || []).filter((v) => v.orphan);
  const unreadable = s.unreadableRecords || [];
  replace(el, h('h2', { id: 'prob-title' }, 'Orphans and unreadable records'),
    !orphans.length && !unreadable.length ? h('p', { class: 'muted', id: 'no-problems' }, 'None: every volume has an owner and every record was read.') : null,
    orphans.length ? [h('h3', null, 'Volumes no reservation owns (never deleted automatically)'),
      h('table', { id: 'orphan-volumes' }, h('tbody', null, orphans.map((v) => h('tr', null,
        h('td', { class: 'mono' }, v.path),
        h('td', { class: 'actions' }, h('button', { type: 'button', class: 'button small ghost-danger', onclick: () => act.removeOrphan(v) }, 'Delete…'))))))] : null,
    unreadable.length ? [h('h3', null, 'Records set aside at start (renamed *.corrupt-…)'),
      h('ul', { id: 'unreadable' }, unreadable.map((p) => h('li', { class: 'mono' }, p)))] : null);
}

// describe is one line about an event.
function describe(e) {
  const d = e.data || {};
  const parts = [];
  if (d.appId) parts.push(d.appId);
  if (d.taskId) parts.push(d.taskId);
  if (d.taskStatus) parts.push(d.taskStatus);
  if (d.instanceId && !d.taskId) parts.push(d.instanceId);
  if (d.condition) parts.push(d.condition);
  if (d.alive !== undefined) parts.push(d.alive ? 'alive' : 'not alive');
  if (d.plan && d.plan.id) parts.push(`deployment ${d.plan.id.slice(0, 8)}`);
  if (d.id && e.type.startsWith('deployment')) parts.push(`deployment ${String(d.id).slice(0, 8)}`);
  if (d.remoteAddress) parts.push(d.remoteAddress);
  if (d.message) parts.push(d.message);
  return parts.join(' · ');
}

export { appHref };
