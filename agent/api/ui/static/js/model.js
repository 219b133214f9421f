// What the pages derive from the API's answers.
import { h, badge, bar } from './dom.js';

// appStatus is the status DC/OS's UI shows: delayed (a backoff delay
// runs), waiting (an instance cannot be placed, and the agent says why),
// deploying, waiting (queued), suspended or running, the first that
// applies.
export function appStatus(app, queued) {
  if (queued && queued.delay && !queued.delay.overdue && delayLeft(queued) > 0) return 'delayed';
  if ((queued && queued.waitingReason) || app.waitingReason) return 'waiting';
  if ((app.deployments || []).length) return 'deploying';
  if (queued) return 'waiting';
  if (app.instances === 0 && (app.tasksRunning || 0) === 0) return 'suspended';
  return 'running';
}

// delayLeft is the seconds a queued app still waits, counted down since
// it was read.
export function delayLeft(queued) {
  if (!queued || !queued.delay) return 0;
  return Math.max(0, Math.round(queued.delay.timeLeftSeconds - (Date.now() - queued.at) / 1000));
}

export function statusBadge(status, big) {
  return badge(status, status[0].toUpperCase() + status.slice(1), big ? 'big' : '');
}

// instancesBar draws healthy, running, staged and unhealthy instances
// against the target.
export function instancesBar(app) {
  const running = app.tasksRunning || 0;
  const healthy = app.tasksHealthy || 0;
  const unhealthy = app.tasksUnhealthy || 0;
  const staged = app.tasksStaged || 0;
  const target = app.instances || 0;
  const label = `${running} of ${target} running: ${healthy} healthy, ${staged} staged, ${unhealthy} unhealthy`;
  const segs = [
    { cls: 'healthy', n: healthy },
    { cls: 'running', n: Math.max(0, running - healthy - unhealthy) },
    { cls: 'unhealthy', n: unhealthy },
    { cls: 'staged', n: staged },
  ];
  return h('div', { class: 'bar-wrap' }, bar(segs, target, label), h('span', { class: 'bar-label', 'aria-hidden': 'true' }, `${running}/${target}`));
}

export function legend() {
  return h('div', { class: 'legend', 'aria-hidden': 'true' },
    h('span', null, h('i', { class: 'healthy' }), 'healthy'),
    h('span', null, h('i', { class: 'running' }), 'running'),
    h('span', null, h('i', { class: 'unhealthy' }), 'unhealthy'),
    h('span', null, h('i', { class: 'staged' }), 'staged'));
}

export function imageOf(app) {
  const img = app.container && app.container.docker && app.container.docker.image;
  if (img) return { kind: 'image', text: img };
  if (app.cmd) return { kind: 'cmd', text: app.cmd };
  if (app.args && app.args.length) return { kind: 'args', text: app.args.join(' ') };
  return { kind: '', text: '—' };
}

const stateClass = {
  TASK_RUNNING: 'running', TASK_STAGING: 'staging', TASK_STARTING: 'staging', TASK_KILLING: 'killing',
  TASK_KILLED: 'killed', TASK_FINISHED: 'killed', TASK_FAILED: 'failed', TASK_ERROR: 'failed', TASK_LOST: 'failed',
};

export function taskState(t) {
  const s = t.state || 'TASK_UNKNOWN';
  const text = t.state === 'TASK_KILLED' && !t.startedAt ? 'stopped' : s.replace('TASK_', '').toLowerCase();
  return badge(stateClass[s] || 'idle', text);
}

// taskHealth: healthy when every check answered alive, unhealthy when one
// did not, pending while checks have no result yet.
export function taskHealth(t, app) {
  const checks = (app && app.healthChecks || []).length;
  const rs = t.healthCheckResults || [];
  if (t.state !== 'TASK_RUNNING') return { cls: 'none', text: '—' };
  if (!checks) return { cls: 'none', text: 'no checks' };
  if (rs.some((r) => !r.alive)) {
    const cause = rs.map((r) => r.lastFailureCause).filter(Boolean)[0];
    return { cls: 'unhealthy', text: 'unhealthy', cause };
  }
  if (rs.length >= checks) return { cls: 'healthy', text: 'healthy' };
  return { cls: 'staging', text: 'pending' };
}

// splitTaskID splits "<app>.instance-<uuid>._app.<n>" into the instance
// and n.
export function splitTaskID(id) {
  const m = /^(.*\.instance-[0-9a-f-]{36})\._app\.(\d+)$/.exec(id || '');
  return m ? { instance: m[1], n: Number(m[2]) } : null;
}

// groupsOf builds the group tree from app ids: {id, apps, groups}.
export function groupsOf(apps) {
  const root = { id: '/', apps: [], groups: new Map() };
  for (const a of apps) {
    const parts = a.id.split('/').filter(Boolean);
    let g = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const gid = '/' + parts.slice(0, i + 1).join('/');
      if (!g.groups.has(gid)) g.groups.set(gid, { id: gid, apps: [], groups: new Map() });
      g = g.groups.get(gid);
    }
    g.apps.push(a);
  }
  return root;
}

export function allApps(g) {
  return [...g.apps, ...[...g.groups.values()].flatMap(allApps)];
}
