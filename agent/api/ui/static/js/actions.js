// What the buttons do: each action calls the API, says what it started
// (the deployment, the tasks killed) and lets the event stream show the
// rest. Destructive ones ask first, naming the host paths they delete.
import { request, deploymentOf, APIError } from './api.js';
import { h, replace, appHref, shortID } from './dom.js';
import { state, refresh, watchDeployment } from './store.js';

const $ = (id) => document.getElementById(id);

export function toast(kind, ...content) {
  const el = h('div', { class: `toast ${kind}` }, ...content);
  $('toasts').appendChild(el);
  setTimeout(() => el.remove(), kind === 'bad' ? 12000 : 6000);
}

export function failed(what, err) {
  const msg = err instanceof APIError ? `${err.message} (HTTP ${err.status})` : String(err.message || err);
  toast('bad', h('strong', null, `${what} failed: `), msg);
}

// confirm shows the confirmation dialog and resolves true when the user
// accepts.
export function confirm(title, body, okText) {
  const dlg = $('confirm-dialog');
  $('confirm-title').textContent = title;
  replace($('confirm-body'), body);
  $('confirm-ok').textContent = okText;
  return new Promise((resolve) => {
    const done = (v) => { dlg.removeEventListener('close', onClose); resolve(v); };
    const onClose = () => done(dlg.returnValue === 'ok');
    dlg.addEventListener('close', onClose);
    dlg.returnValue = '';
    dlg.showModal();
    $('confirm-cancel').focus();
  });
}

// askNumber shows the scale dialog.
export function askNumber(title, value) {
  const dlg = $('scale-dialog');
  const input = $('scale-input');
  $('scale-title').textContent = title;
  input.value = String(value);
  return new Promise((resolve) => {
    const form = $('scale-form');
    const cleanup = () => {
      form.removeEventListener('submit', onSubmit);
      $('scale-cancel').removeEventListener('click', onCancel);
      dlg.removeEventListener('cancel', onCancel);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      if (!input.reportValidity()) return;
      cleanup();
      dlg.close();
      resolve(Number(input.value));
    };
    const onCancel = (e) => { e.preventDefault(); cleanup(); dlg.close(); resolve(null); };
    form.addEventListener('submit', onSubmit);
    $('scale-cancel').addEventListener('click', onCancel);
    dlg.addEventListener('cancel', onCancel);
    dlg.showModal();
    input.select();
  });
}

// started reports the deployment an answer started.
function started(what, appId, r) {
  const id = deploymentOf(r);
  watchDeployment(id, appId);
  toast('ok', `${what}: `, id ? ['deployment ', h('a', { href: appHref(appId) + '#deployments' }, shortID(id)), ' started'] : 'done');
  refresh();
  return id;
}

const appPath = (id) => '/v2/apps' + id.split('/').map(encodeURIComponent).join('/');

export async function scale(app, n) {
  try {
    const r = await request('PUT', appPath(app.id), { id: app.id, instances: n });
    return started(`Scale ${app.id} to ${n}`, app.id, r);
  } catch (e) { failed(`Scale ${app.id}`, e); }
}

export async function stop(app) {
  try {
    const r = await request('PUT', appPath(app.id), { id: app.id, instances: 0 });
    return started(`Stop ${app.id}`, app.id, r);
  } catch (e) { failed(`Stop ${app.id}`, e); }
}

// start brings a stopped app back with as many instances as it has
// stopped reservations (at least one), so each comes back on its volume.
export async function start(app) {
  const n = Math.max(1, (app.tasks || []).length);
  try {
    const r = await request('PUT', appPath(app.id), { id: app.id, instances: n });
    return started(`Start ${app.id}`, app.id, r);
  } catch (e) { failed(`Start ${app.id}`, e); }
}

export async function restart(app) {
  try {
    const r = await request('POST', appPath(app.id) + '/restart', {});
    return started(`Restart ${app.id}`, app.id, r);
  } catch (e) { failed(`Restart ${app.id}`, e); }
}

// hostPathsOf lists the host directories of a task's (or every task's of
// an app) persistent volumes.
export function hostPathsOf(tasks) {
  const byId = new Map((state.volumes || []).map((v) => [v.persistenceId, v.path]));
  const out = [];
  for (const t of tasks) {
    for (const v of t.localVolumes || []) out.push(byId.get(v.persistenceId) || `(volume ${v.persistenceId})`);
  }
  return out;
}

function pathList(paths) {
  return h('ul', { class: 'paths' }, paths.map((p) => h('li', null, p)));
}

export async function kill(task) {
  try {
    await request('POST', '/v2/tasks/delete', { ids: [task.id] });
    toast('ok', `Killed ${task.id}: it is relaunched on the same reservation`);
    refresh();
  } catch (e) { failed('Kill', e); }
}

export async function killWipe(task) {
  const paths = hostPathsOf([task]);
  const ok = await confirm('Kill and wipe this task?', [
    h('p', null, 'The task ', h('code', null, task.id), ' is killed, its reservation released and a new instance launched with new, empty volumes.'),
    paths.length ? [h('p', null, h('strong', null, 'This deletes, on the host:')), pathList(paths)] : h('p', null, 'It has no persistent volume.'),
  ], 'Kill and wipe');
  if (!ok) return;
  try {
    await request('POST', '/v2/tasks/delete?wipe=true', { ids: [task.id] });
    toast('ok', `Killed and wiped ${task.id}`);
    refresh();
  } catch (e) { failed('Kill and wipe', e); }
}

export async function remove(app) {
  const paths = hostPathsOf(app.tasks || []);
  const ok = await confirm(`Remove ${app.id}?`, [
    h('p', null, 'Its tasks are killed and its reservations released.'),
    paths.length ? [h('p', null, h('strong', null, 'This deletes, on the host:')), pathList(paths)] : h('p', null, 'It has no persistent volume.'),
  ], 'Remove app');
  if (!ok) return false;
  try {
    const r = await request('DELETE', appPath(app.id));
    started(`Remove ${app.id}`, app.id, r);
    return true;
  } catch (e) { failed(`Remove ${app.id}`, e); return false; }
}

export async function resetDelay(app) {
  try {
    await request('DELETE', '/v2/queue' + app.id.split('/').map(encodeURIComponent).join('/') + '/delay');
    toast('ok', `The launch delay of ${app.id} is reset`);
    refresh();
  } catch (e) { failed('Reset delay', e); }
}

export async function removeOrphan(vol) {
  const ok = await confirm('Delete this orphaned volume?', [
    h('p', null, 'No reservation owns it. Its data is deleted for good:'), pathList([vol.path]),
  ], 'Delete volume');
  if (!ok) return;
  try {
    await request('DELETE', '/mesolite/v1/volumes/' + encodeURIComponent(vol.persistenceId));
    toast('ok', `Deleted ${vol.path}`);
    refresh();
  } catch (e) { failed('Delete volume', e); }
}

export { appPath };
