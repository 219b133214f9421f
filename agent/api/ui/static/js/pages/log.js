// A task's stdout or stderr, followed as it grows and, as
// "mesolite task log --follow" does, across a relaunch to the instance's
// next incarnation.
import { h, replace, appHref, logHref } from '../dom.js';
import { get, APIError } from '../api.js';
import { state } from '../store.js';
import { splitTaskID } from '../model.js';

const pollMs = 1000;
const initialBytes = 64 * 1024;
const chunk = 1024 * 1024;
const keepChars = 2 * 1024 * 1024;

export function mount(root, params) {
  let task = params.task;
  const file = params.file === 'stderr' ? 'stderr' : 'stdout';
  const appId = () => (state.tasks.find((t) => t.id === task) || {}).appId || appOfTask(task);
  const title = h('h1', { id: 'log-title' });
  const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' });
  const out = h('pre', { class: 'log', id: 'log', tabindex: '0', 'aria-label': `${file} of the task`, 'aria-live': 'off' });
  const follow = h('input', { type: 'checkbox', id: 'follow', checked: true });
  const status = h('span', { class: 'muted', id: 'log-status', role: 'status' });
  const tab = (name) => h('button', {
    type: 'button', role: 'tab', 'aria-selected': String(name === file), id: `tab-${name}`,
    onclick: () => { location.hash = logHref(task, name); },
  }, name);
  root.append(crumbs, h('div', { class: 'page-head' }, title),
    h('section', { class: 'panel' },
      h('div', { class: 'toolbar' },
        h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Output' }, tab('stdout'), tab('stderr')),
        h('label', null, follow, ' Follow'), status),
      out));

  const heading = () => {
    replace(title, `${file} of `, h('span', { class: 'mono' }, task));
    const a = appId();
    replace(crumbs, h('a', { href: '#/apps' }, 'Apps'), ' / ', a ? h('a', { href: appHref(a) }, a) : '…', ' / log');
  };
  heading();

  let offset = -1; // the next byte to read; -1 before the first read
  let stopped = false;
  let timer = null;

  const read = (t, off, len) => get(`/files/read?task=${encodeURIComponent(t)}&path=${file}&offset=${off}&length=${len}`);
  const size = async (t) => {
    try {
      return (await read(t, -1, 0)).offset;
    } catch (e) {
      if (e instanceof APIError && e.status === 404) return 0; // not written yet
      throw e;
    }
  };

  const write = (text, cls) => {
    const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 40;
    out.appendChild(cls ? h('span', { class: cls }, text) : document.createTextNode(text));
    if (out.textContent.length > keepChars) {
      while (out.firstChild && out.textContent.length > keepChars * 0.75) out.removeChild(out.firstChild);
    }
    if (atEnd) out.scrollTop = out.scrollHeight;
  };

  // copyNew writes the bytes from offset to the file's size now; each
  // read asks for exactly the bytes it counts, as task log does.
  const copyNew = async () => {
    const end = await size(task);
    if (end < offset) offset = 0; // truncated or replaced: start over
    while (offset < end) {
      const len = Math.min(chunk, end - offset);
      const r = await read(task, offset, len);
      if (r.offset < offset) { offset = 0; return; }
      write(r.data);
      offset += len;
    }
  };

  // successor is the current task of this task's instance when it is a
  // later incarnation that has been running for a moment (its output file
  // is made just after it starts).
  const successor = () => {
    const me = splitTaskID(task);
    if (!me) return '';
    for (const t of state.tasks) {
      const o = splitTaskID(t.id);
      if (o && o.instance === me.instance && o.n > me.n && t.state === 'TASK_RUNNING' &&
          t.startedAt && Date.now() - Date.parse(t.startedAt) > 1000) return t.id;
    }
    return '';
  };

  async function first() {
    const end = await size(task);
    const from = Math.max(0, end - initialBytes);
    if (from > 0) write(`… (the first ${from} bytes are not shown)\n`, 'note');
    offset = from;
    await copyNew();
  }

  async function tick() {
    if (stopped) return;
    try {
      if (offset < 0) await first();
      else if (follow.checked) {
        const next = successor();
        await copyNew();
        if (next) {
          write(`==> task ${task} was relaunched as ${next}\n`, 'note');
          task = next;
          offset = 0;
          heading();
          history.replaceState(null, '', logHref(task, file));
          await copyNew();
        }
      }
      status.textContent = follow.checked ? 'following' : 'paused';
    } catch (e) {
      status.textContent = `cannot read: ${e.message}`;
    }
    if (!stopped) timer = setTimeout(tick, pollMs);
  }
  tick();

  return {
    update: heading,
    unmount() { stopped = true; clearTimeout(timer); },
    needs: [],
  };
}

// appOfTask guesses the app of a task id ("shop_db.instance-…" is /shop/db)
// until the tasks are read.
function appOfTask(id) {
  const i = id.indexOf('.instance-');
  return i > 0 ? '/' + id.slice(0, i).replace(/_/g, '/') : '';
}
