// The dashboard's entry: routes #/… addresses to pages, asks for the
// token when the API wants one, and shows whether the event stream is live.
import { setTokenAsker, token, forgetToken } from './api.js';
import { state, start, subscribe, need, refresh } from './store.js';
import * as apps from './pages/apps.js';
import * as app from './pages/app.js';
import * as create from './pages/create.js';
import * as log from './pages/log.js';
import * as agent from './pages/agent.js';

const $ = (id) => document.getElementById(id);

// route reads the address: #/apps, #/app/<id>, #/create, #/edit/<id>,
// #/log/<task>?file=stderr, #/agent.
function route() {
  const raw = location.hash.replace(/^#/, '') || '/apps';
  const [path, query] = raw.split('?');
  const q = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  switch (parts[0]) {
    case 'app': return { page: app, nav: 'apps', params: { id: '/' + parts.slice(1).join('/') }, title: parts.slice(1).join('/') };
    case 'create': return { page: create, nav: 'create', params: { example: q.get('example') }, title: 'Create an app' };
    case 'edit': return { page: create, nav: 'apps', params: { id: '/' + parts.slice(1).join('/') }, title: 'Edit' };
    case 'log': return { page: log, nav: 'apps', params: { task: parts[1] || '', file: q.get('file') }, title: 'Log' };
    case 'agent': return { page: agent, nav: 'agent', params: {}, title: 'Agent' };
    default: return { page: apps, nav: 'apps', params: {}, title: 'Apps' };
  }
}

let current = null;

function show() {
  if (current && current.unmount) current.unmount();
  const r = route();
  const main = $('main');
  main.replaceChildren();
  current = r.page.mount(main, r.params);
  need(...(current.needs || []));
  document.title = `${r.title} · mesolite`;
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === r.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  current.update('data');
  if (current.needs && current.needs.length) refresh();
  // Keyboard and screen reader users land on the new page's content.
  if (document.activeElement === document.body || !main.contains(document.activeElement)) {
    if (r.page !== create) main.focus({ preventScroll: true });
  }
  window.scrollTo(0, 0);
}

function showConn() {
  const el = $('conn');
  el.classList.toggle('live', state.live);
  el.classList.toggle('down', !state.live && state.loaded);
  el.querySelector('.conn-text').textContent = state.live ? 'Live' : state.loaded ? 'Reconnecting…' : 'Connecting…';
  el.title = state.live ? 'Receiving /v2/events' : 'The event stream is down; retrying';
  $('forget-token').hidden = !token();
}

// askToken shows the token dialog; it resolves with what the user typed.
function askToken(refused) {
  const dlg = $('token-dialog');
  const input = $('token-input');
  $('token-error').hidden = !refused;
  input.value = '';
  return new Promise((resolve, reject) => {
    const form = $('token-form');
    const cleanup = () => {
      form.removeEventListener('submit', onSubmit);
      $('token-cancel').removeEventListener('click', onCancel);
      dlg.removeEventListener('cancel', onCancel);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      if (!input.value) return;
      cleanup();
      dlg.close();
      resolve(input.value);
      showConn();
    };
    const onCancel = (e) => {
      e.preventDefault();
      cleanup();
      dlg.close();
      reject(new Error('the API needs a token; reload the page to enter it'));
    };
    form.addEventListener('submit', onSubmit);
    $('token-cancel').addEventListener('click', onCancel);
    dlg.addEventListener('cancel', onCancel);
    if (!dlg.open) dlg.showModal();
    input.focus();
  });
}

setTokenAsker(askToken);
$('forget-token').addEventListener('click', () => { forgetToken(); location.reload(); });
subscribe((kind) => {
  if (kind === 'live') showConn();
  if (current) current.update(kind);
});
window.addEventListener('hashchange', show);
show();
showConn();
start();
