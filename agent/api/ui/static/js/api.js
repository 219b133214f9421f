// The API client: same origin, the token (when the agent asks for one)
// kept in sessionStorage for this tab, JSON bodies sent as
// application/json. The event stream is read with fetch, not EventSource,
// because EventSource cannot send the Authorization header.

const TOKEN_KEY = 'mesolite.token';

// base is the API's root: "" at /ui/, "/service/marathon" at
// /service/marathon/ui/.
export const base = location.pathname.replace(/\/ui\/.*$/, '');

export class APIError extends Error {
  constructor(status, body, method, path) {
    super(messageOf(status, body));
    this.status = status;
    this.body = body;
    this.method = method;
    this.path = path;
  }
}

function messageOf(status, body) {
  if (body && typeof body === 'object' && body.message) return body.message;
  if (typeof body === 'string' && body) return body;
  return `HTTP ${status}`;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra) {
  const hs = { Accept: 'application/json', ...extra };
  const t = token();
  if (t) hs.Authorization = `token=${t}`;
  return hs;
}

// askToken is set by the page: it shows the token dialog and resolves with
// the token, or rejects when the user cancels. Concurrent 401s share one
// dialog.
let asking = null;
let tokenAsker = async () => { throw new Error('no token'); };
export function setTokenAsker(fn) { tokenAsker = fn; }

async function needToken(refused) {
  if (!asking) {
    asking = tokenAsker(refused).then((t) => {
      sessionStorage.setItem(TOKEN_KEY, t);
      return t;
    }).finally(() => { asking = null; });
  }
  return asking;
}

// request sends one API call and returns {status, body, headers}; a
// status of 400 and above throws an APIError. A 401 asks for the token and
// tries again.
export async function request(method, path, body, { signal } = {}) {
  for (let attempt = 0; ; attempt++) {
    const init = { method, headers: headers(), signal, cache: 'no-store' };
    if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
      init.headers['Content-Type'] = 'application/json';
      init.body = body === undefined ? '{}' : JSON.stringify(body);
    }
    const sent = token();
    const res = await fetch(base + path, init);
    const text = await res.text();
    let parsed = text;
    if ((res.headers.get('Content-Type') || '').includes('json') && text) {
      try { parsed = JSON.parse(text); } catch { /* keep the text */ }
    }
    if (res.status === 401 && attempt < 5) {
      // Another request may have just been given a token.
      if (token() && token() !== sent) continue;
      await needToken(Boolean(sent));
      continue;
    }
    if (res.status >= 400) throw new APIError(res.status, parsed, method, path);
    return { status: res.status, body: parsed, headers: res.headers };
  }
}

export const get = (path, opts) => request('GET', path, undefined, opts).then((r) => r.body);

// deploymentOf reads the deployment an answer started.
export function deploymentOf(r) {
  return r.headers.get('Marathon-Deployment-Id') || (r.body && r.body.deploymentId) || '';
}

// streamEvents reads /v2/events until signal aborts, calling onEvent(type,
// data) for each event and onState(connected) when the stream opens or
// breaks. It reconnects with a growing pause (up to 10 s).
export async function streamEvents(onEvent, onState, signal) {
  let pause = 500;
  while (!signal.aborted) {
    try {
      const res = await fetch(base + '/v2/events', {
        headers: headers({ Accept: 'text/event-stream' }), signal, cache: 'no-store',
      });
      if (res.status === 401) {
        await res.body.cancel();
        await needToken(Boolean(token()));
        continue;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      pause = 500;
      onState(true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          parseFrame(frame, onEvent);
        }
      }
    } catch (e) {
      if (signal.aborted) return;
    }
    onState(false);
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(pause * 2, 10000);
  }
}

function parseFrame(frame, onEvent) {
  let type = 'message';
  const data = [];
  for (const line of frame.split('\n')) {
    if (line.startsWith(':')) continue; // keep-alive comment
    if (line.startsWith('event:')) type = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  if (!data.length) return;
  let parsed;
  try { parsed = JSON.parse(data.join('\n')); } catch { parsed = { raw: data.join('\n') }; }
  onEvent(type, parsed);
}
