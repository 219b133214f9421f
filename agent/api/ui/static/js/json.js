// JSON helpers: a parser that remembers where each value is (to show a
// 422's details at their paths), a renderer that marks the fields a user
// set, and a line diff.
import { h } from './dom.js';

// Marathon writes paths as /container/volumes(0)/containerPath.
export function childPath(parent, key) {
  if (typeof key === 'number') return `${parent === '/' ? '' : parent}(${key})`;
  return `${parent === '/' ? '' : parent}/${key}`;
}

export class JSONSyntaxError extends Error {
  constructor(message, pos) {
    super(message);
    this.pos = pos;
  }
}

// locate parses text and returns a Map from each value's path to the
// offset where its key (or, in arrays, the value) starts. It throws a
// JSONSyntaxError with the offset of the first error.
export function locate(text) {
  const spots = new Map();
  let i = 0;
  const fail = (what) => { throw new JSONSyntaxError(what, Math.min(i, text.length)); };
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++; };
  const str = () => {
    if (text[i] !== '"') fail('expected a string');
    i++;
    let out = '';
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') {
        const e = text[i + 1];
        if (e === 'u') { out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16)); i += 6; continue; }
        out += { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f' }[e] ?? e;
        i += 2;
        continue;
      }
      if (text[i] === '\n') fail('unterminated string');
      out += text[i++];
    }
    if (text[i] !== '"') fail('unterminated string');
    i++;
    return out;
  };
  const value = (path, at) => {
    ws();
    spots.set(path, at ?? i);
    const c = text[i];
    if (c === '{') {
      i++; ws();
      if (text[i] === '}') { i++; return; }
      for (;;) {
        ws();
        const keyAt = i;
        const k = str();
        ws();
        if (text[i] !== ':') fail("expected ':' after a key");
        i++;
        value(childPath(path, k), keyAt);
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return; }
        fail("expected ',' or '}'");
      }
    } else if (c === '[') {
      i++; ws();
      if (text[i] === ']') { i++; return; }
      for (let n = 0; ; n++) {
        value(childPath(path, n));
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return; }
        fail("expected ',' or ']'");
      }
    } else if (c === '"') {
      str();
    } else {
      const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?|^true|^false|^null/.exec(text.slice(i, i + 400));
      if (!m) fail('expected a value');
      i += m[0].length;
    }
  };
  value('/');
  ws();
  if (i < text.length) fail('unexpected text after the end');
  return spots;
}

// lineOf is the 1-based line of an offset.
export function lineOf(text, pos) {
  let n = 1;
  for (let k = 0; k < pos && k < text.length; k++) if (text[k] === '\n') n++;
  return n;
}

// spotOf finds where a path is, or its nearest ancestor that is there (a
// missing field is reported on the object that lacks it).
export function spotOf(spots, path) {
  let p = path || '/';
  for (;;) {
    if (spots.has(p)) return { pos: spots.get(p), exact: p === path };
    if (p === '/' || p === '') return { pos: 0, exact: false };
    const cut = Math.max(p.lastIndexOf('/'), p.lastIndexOf('('));
    p = cut <= 0 ? '/' : p.slice(0, cut);
  }
}

// render draws a value as indented JSON; isSet(path, value) says whether a
// leaf was set by the user (it is then highlighted).
export function render(value, isSet) {
  const lines = [];
  const tok = (cls, text) => h('span', { class: cls }, text);
  const scalar = (v) => {
    if (typeof v === 'string') return tok('s', JSON.stringify(v));
    if (typeof v === 'number') return tok('n', String(v));
    return tok('b', String(v));
  };
  const walk = (v, path, indent, prefix, comma) => {
    const pad = '  '.repeat(indent);
    const isObj = v && typeof v === 'object';
    const entries = isObj ? (Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v)) : [];
    if (!isObj || entries.length === 0) {
      const text = isObj ? (Array.isArray(v) ? '[]' : '{}') : null;
      const set = path !== '/' && isSet(path, v);
      lines.push(h('span', { class: `line${set ? ' set' : ''}`, dataset: { path } }, pad, prefix, text ?? scalar(v), comma));
      return;
    }
    const [open, close] = Array.isArray(v) ? ['[', ']'] : ['{', '}'];
    lines.push(h('span', { class: 'line frame', dataset: { path } }, pad, prefix, open));
    entries.forEach(([k, x], n) => {
      const p = childPath(path, k);
      const pre = typeof k === 'number' ? [] : [tok('k', JSON.stringify(k)), ': '];
      walk(x, p, indent + 1, pre, n < entries.length - 1 ? ',' : '');
    });
    lines.push(h('span', { class: 'line frame' }, pad, close, comma));
  };
  walk(value, '/', 0, [], '');
  return lines;
}

// diffLines returns the lines of a and b as [op, text] with op ' ', '-' or
// '+' (longest common subsequence; definitions are a few hundred lines).
export function diffLines(a, b) {
  const n = a.length;
  const m = b.length;
  if (n * m > 4e6) return [...a.map((l) => ['-', l]), ...b.map((l) => ['+', l])];
  const w = m + 1;
  const dp = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      dp[i * w + j] = a[i] === b[j] ? dp[(i + 1) * w + j + 1] + 1 : Math.max(dp[(i + 1) * w + j], dp[i * w + j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { out.push([' ', a[i]]); i++; j++; }
    else if (dp[(i + 1) * w + j] >= dp[i * w + j + 1]) out.push(['-', a[i++]]);
    else out.push(['+', b[j++]]);
  }
  while (i < n) out.push(['-', a[i++]]);
  while (j < m) out.push(['+', b[j++]]);
  return out;
}

// sorted returns a copy with object keys in order, so two versions
// compare line by line.
export function sorted(v) {
  if (Array.isArray(v)) return v.map(sorted);
  if (v && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = sorted(v[k]);
    return out;
  }
  return v;
}

export function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== typeof b || !a || !b || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual(a[k], b[k]));
}
