// The dashboard's picture of the agent: refreshed from the API when an
// event says something changed (and every 10 s, for what changes without
// an event, such as volume use), shared by every page.
import { get, streamEvents } from './api.js';

export const state = {
  loaded: false,
  error: null, // the last refresh's error, shown on the page
  live: false, // the event stream is connected
  apps: [],
  byId: new Map(),
  tasks: [], // every task of every app
  deployments: [], // in progress
  queue: new Map(), // app id -> queue item
  status: null, // /mesolite/v1/status, when a page needs it
  volumes: null, // /mesolite/v1/volumes?usage=false, when a page needs it
  events: [], // newest first, at most maxEvents
  seenDeployments: new Map(), // id -> {id, appId, steps, currentStep, started, finished, result}
  fetchedAt: 0,
};

const maxEvents = 300;
const listeners = new Set();
const needs = new Set();

export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

// need says what the current page reads beyond apps, tasks, deployments
// and the queue: 'status', 'volumes'.
export function need(...what) {
  needs.clear();
  for (const w of what) needs.add(w);
}

function notify(kind) {
  for (const fn of listeners) {
    try { fn(kind); } catch (e) { console.warn('render failed', e); }
  }
}

let inFlight = null;
let again = false;
let timer = null;

// refresh reads the API again; calls made while one runs fold into one
// more run after it.
export function refresh() {
  if (inFlight) { again = true; return inFlight; }
  inFlight = load().finally(() => {
    inFlight = null;
    if (again) { again = false; refresh(); }
  });
  return inFlight;
}

// soon refreshes after a short pause, so a burst of events costs one read.
export function soon(ms = 120) {
  if (timer) return;
  timer = setTimeout(() => { timer = null; refresh(); }, ms);
}

async function load() {
  try {
    const q = '?embed=apps.tasks&embed=apps.lastTaskFailure&embed=apps.mesolite';
    const reads = [get('/v2/apps' + q), get('/v2/deployments'), get('/v2/queue?embed=mesolite')];
    reads.push(needs.has('status') ? get('/mesolite/v1/status') : null);
    reads.push(needs.has('volumes') ? get('/mesolite/v1/volumes?usage=false') : null);
    const [apps, deployments, queue, status, volumes] = await Promise.all(reads);
    state.apps = apps.apps || [];
    state.byId = new Map(state.apps.map((a) => [a.id, a]));
    state.tasks = state.apps.flatMap((a) => a.tasks || []);
    state.deployments = deployments || [];
    state.queue = new Map((queue.queue || []).map((q) => [q.app.id, { ...q, at: Date.now() }]));
    if (status) state.status = status;
    if (volumes) state.volumes = volumes.volumes || [];
    for (const d of state.deployments) noteDeployment(d.id, d.affectedApps[0], d.steps, d.currentStep);
    state.error = null;
    state.loaded = true;
    state.fetchedAt = Date.now();
  } catch (e) {
    state.error = e;
  }
  notify('data');
}

// noteDeployment remembers a deployment seen in progress, so the page can
// still show its steps once it is done.
function noteDeployment(id, appId, steps, currentStep) {
  const d = state.seenDeployments.get(id) || { id, appId, started: Date.now() };
  d.steps = (steps || []).map((s) => (s.actions || []).map((a) => a.action));
  if (currentStep) d.currentStep = currentStep;
  if (appId) d.appId = appId;
  state.seenDeployments.set(id, d);
  return d;
}

function finishDeployment(id, plan, result) {
  const d = noteDeployment(id, plan && plan.steps && plan.steps[0] && plan.steps[0].actions[0] && plan.steps[0].actions[0].app,
    plan && plan.steps);
  d.finished = Date.now();
  d.result = result;
  d.currentStep = d.steps.length;
}

// watch a deployment an action just started, before any event about it.
export function watchDeployment(id, appId) {
  if (!id) return;
  const d = state.seenDeployments.get(id) || { id, appId, started: Date.now(), steps: [] };
  state.seenDeployments.set(id, d);
}

// onEvent keeps the list of events and decides whether to read again.
function onEvent(type, data) {
  state.events.unshift({ type, data, at: Date.now() });
  if (state.events.length > maxEvents) state.events.length = maxEvents;
  switch (type) {
    case 'deployment_info':
      if (data.plan) {
        const apps = (data.currentStep && data.currentStep.actions || []).map((a) => a.app);
        noteDeployment(data.plan.id, apps[0], data.plan.steps);
      }
      break;
    case 'deployment_success':
      finishDeployment(data.id, data.plan, 'success');
      break;
    case 'deployment_failed':
      finishDeployment(data.id, data.plan, 'failed');
      break;
    default:
  }
  notify('event');
  if (type !== 'event_stream_attached' && type !== 'event_stream_detached') soon();
}

let started = false;

// start opens the event stream and the slow timer, once.
export function start() {
  if (started) return;
  started = true;
  const ctl = new AbortController();
  streamEvents(onEvent, (live) => {
    state.live = live;
    notify('live');
    // What happened while the stream was down is read again.
    if (live) refresh();
  }, ctl.signal);
  setInterval(() => { if (!document.hidden) refresh(); }, 10000);
  refresh();
}
