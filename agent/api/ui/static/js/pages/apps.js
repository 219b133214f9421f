// The apps page: every app with its status and instances, in the tree of
// groups its id makes, and the deployments in progress.
import { h, replace, appHref, num, mib } from '../dom.js';
import { state } from '../store.js';
import { appStatus, statusBadge, instancesBar, imageOf, groupsOf, allApps, legend } from '../model.js';
import { deploymentCard } from './common.js';

const collapsed = new Set(); // group ids the user folded

export function mount(root) {
  const summary = h('div', { class: 'summary', id: 'apps-summary' });
  const deploys = h('section', { class: 'panel', id: 'deployments', 'aria-labelledby': 'deployments-title', hidden: true });
  const table = h('section', { class: 'panel', 'aria-labelledby': 'apps-title' });
  root.append(
    h('div', { class: 'page-head' }, h('h1', { id: 'apps-title' }, 'Apps'), h('span', { class: 'spacer' })),
    summary, deploys, table);

  function update(kind) {
    if (kind === 'event') return;
    if (!state.loaded) {
      replace(table, h('p', { class: 'muted' }, state.error ? `Cannot read the apps: ${state.error.message}` : 'Loading…'));
      return;
    }
    const apps = state.apps;
    const running = state.tasks.filter((t) => t.state === 'TASK_RUNNING').length;
    const healthy = apps.reduce((n, a) => n + (a.tasksHealthy || 0), 0);
    replace(summary,
      stat(apps.length, apps.length === 1 ? 'app' : 'apps'),
      stat(running, 'tasks running'),
      stat(healthy, 'healthy'),
      stat(state.deployments.length, state.deployments.length === 1 ? 'deployment' : 'deployments'));

    deploys.hidden = state.deployments.length === 0;
    replace(deploys, h('h2', { id: 'deployments-title' }, 'Deployments in progress'),
      state.deployments.map((d) => deploymentCard(state.seenDeployments.get(d.id) || { id: d.id, appId: d.affectedApps[0] }, true)));

    if (!apps.length) {
      replace(table, h('div', { class: 'empty' },
        h('p', null, 'No apps yet.'),
        h('div', { class: 'form-row', style: { justifyContent: 'center' } },
          h('a', { class: 'button primary', href: '#/create?example=testapp', id: 'try-testapp' }, 'Try the test app: a key-value store on a persistent volume'),
          h('a', { class: 'button', href: '#/create' }, '+ Create an app from JSON'))));
      return;
    }
    const rows = [];
    const tree = groupsOf(apps);
    const walk = (g, depth) => {
      for (const a of g.apps) rows.push(appRow(a, depth));
      for (const sub of [...g.groups.values()].sort((x, y) => x.id.localeCompare(y.id))) {
        rows.push(groupRow(sub, depth, update));
        if (!collapsed.has(sub.id)) walk(sub, depth + 1);
      }
    };
    walk(tree, 0);
    replace(table,
      h('div', { class: 'table-wrap' }, h('table', { id: 'apps-table' },
        h('caption', { class: 'muted', hidden: true }, 'Apps'),
        h('thead', null, h('tr', null,
          h('th', { scope: 'col' }, 'App'), h('th', { scope: 'col' }, 'Status'),
          h('th', { scope: 'col' }, 'Instances'), h('th', { scope: 'col', class: 'num' }, 'CPUs'),
          h('th', { scope: 'col', class: 'num' }, 'Memory'), h('th', { scope: 'col' }, 'Image or command'))),
        h('tbody', null, rows))),
      legend());
  }
  return { update, needs: [] };
}

function stat(n, label) {
  return h('div', { class: 'stat' }, h('div', { class: 'n' }, String(n)), h('div', { class: 'l' }, label));
}

function indent(depth) {
  const s = h('span');
  s.style.display = 'inline-block';
  s.style.width = `${depth * 1.5}rem`;
  return s;
}

function appRow(a, depth) {
  const status = appStatus(a, state.queue.get(a.id));
  const img = imageOf(a);
  const name = depth ? a.id.slice(a.id.lastIndexOf('/') + 1) : a.id;
  return h('tr', { dataset: { app: a.id, status } },
    h('td', { class: 'id' }, indent(depth), h('a', { href: appHref(a.id), dataset: { key: 'app:' + a.id } }, name)),
    h('td', null, statusBadge(status)),
    h('td', null, instancesBar(a)),
    h('td', { class: 'num' }, num(a.cpus)),
    h('td', { class: 'num' }, mib(a.mem)),
    h('td', null, h('code', { title: img.kind }, img.text)));
}

function groupRow(g, depth, update) {
  const apps = allApps(g);
  const open = !collapsed.has(g.id);
  const running = apps.reduce((n, a) => n + (a.tasksRunning || 0), 0);
  const target = apps.reduce((n, a) => n + (a.instances || 0), 0);
  return h('tr', { class: 'group', dataset: { group: g.id } },
    h('td', { colspan: 2 }, indent(depth), h('button', {
      type: 'button', class: 'tree-toggle', 'aria-expanded': String(open), dataset: { key: 'group:' + g.id },
      onclick: () => { if (open) collapsed.add(g.id); else collapsed.delete(g.id); update(); },
    }, h('span', { class: 'chev', 'aria-hidden': 'true' }, '▸'), ` ${g.id.slice(g.id.lastIndexOf('/') + 1)}/`,
    h('span', { class: 'muted' }, ` group · ${apps.length} app${apps.length === 1 ? '' : 's'}`))),
    h('td', null, `${running}/${target} running`),
    h('td', { class: 'num' }, num(apps.reduce((n, a) => n + (a.cpus || 0) * (a.instances || 0), 0))),
    h('td', { class: 'num' }, mib(apps.reduce((n, a) => n + (a.mem || 0) * (a.instances || 0), 0))),
    h('td', null));
}
