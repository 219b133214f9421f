// Pieces more than one page shows.
import { h, badge, appHref, shortID } from '../dom.js';

const actionWords = {
  StartApplication: 'Start', ScaleApplication: 'Scale', RestartApplication: 'Restart',
  StopApplication: 'Stop', ResolveArtifacts: 'Resolve artifacts',
};

// deploymentCard shows a deployment and its steps: done, current, to come.
export function deploymentCard(d, showApp) {
  const steps = d.steps || [];
  const cur = d.currentStep || 0;
  let state;
  if (d.result === 'success') state = badge('ok', `Done in ${secs(d.finished - d.started)}`);
  else if (d.result === 'failed') state = badge('bad', 'Failed or replaced');
  else state = badge('deploying', 'In progress');
  const items = steps.map((actions, i) => {
    let cls = '';
    let mark = '○';
    if (d.result === 'success' || i < cur - 1) { cls = 'done'; mark = '✓'; }
    else if (i === cur - 1) {
      if (d.result === 'failed') { cls = 'failed'; mark = '✕'; } else { cls = 'current'; mark = '●'; }
    }
    const words = actions.map((a) => actionWords[a] || a).join(' + ');
    return h('li', { class: cls, dataset: { action: actions.join(',') } },
      h('span', { class: 'mark', 'aria-hidden': 'true' }, mark), `${i + 1}. ${words}`,
      h('span', { class: 'sr-only' }, cls ? ` (${cls})` : ' (to come)'));
  });
  return h('div', { class: 'deploy', dataset: { deployment: d.id, result: d.result || 'running' } },
    h('div', { class: 'head' },
      state,
      showApp && d.appId ? h('a', { href: appHref(d.appId) }, d.appId) : null,
      h('span', { class: 'id', title: d.id }, `deployment ${shortID(d.id)}`)),
    items.length ? h('ol', { class: 'steps', 'aria-label': 'Steps' }, items) : null);
}

function secs(ms) {
  if (!(ms >= 0)) return '—';
  return ms < 10000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}
