// The demo page. The heartbeat, the dead-server check, the round trips and the reconnects are
// all `HeartbeatSocket`'s (served by the demo at /ws-heartbeat.js, the crate's
// `ws_heartbeat::browser::SCRIPT`); this file only draws the page and wires its buttons.
//
// Settings come from the query string: heartbeat (json | text | binary | control), interval
// and maxMissed (the page's own heartbeat), backoff and cap (its reconnect delays), in ms.
// With resume=1 the page keeps a session on /session (`resume: true`): every message reaches
// the other side once and in order across reconnects. It then counts the server's items and
// echoes instead of logging them, and logs the session's events (resumed, sessionlost).

import { HeartbeatSocket } from '/ws-heartbeat.js';

const params = new URLSearchParams(location.search);
const number = (name, fallback) => Number(params.get(name) ?? fallback);
const heartbeat = params.get('heartbeat') ?? 'json';
const resume = params.get('resume') === '1';

// "Freeze" makes the page deaf and mute, like a tab the browser has put to sleep: while frozen
// the socket below sends nothing and delivers nothing, and a close waits until the page thaws.
let frozen = false;
const held = [];
class FreezableWebSocket extends WebSocket {
  addEventListener(type, listener, options) {
    super.addEventListener(type, (event) => {
      if (!frozen) listener(event);
      else if (type === 'close' || type === 'error') held.push(() => listener(event));
    }, options);
  }

  send(data) {
    if (!frozen) super.send(data);
  }
}

const url = new URL(resume ? '/session' : '/ws', location.href);
url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
url.searchParams.set('heartbeat', heartbeat);
const socket = new HeartbeatSocket(url, {
  heartbeat,
  interval: number('interval', 2000),
  maxMissed: number('maxMissed', 3),
  backoff: { initial: number('backoff', 500), max: number('cap', 15000) },
  WebSocket: FreezableWebSocket,
  resume,
});

// Everything the page shows, also read by the browser test.
const demo = { socket, events: [], rtts: [], server: null, metrics: null, freeze, thaw };
window.demo = demo;

// The session's traffic (resume=1): the server's items and the echoes of the page's numbered
// messages, each expected once and in order from 1; `errors` lists what was not.
const tally = () => ({ count: 0, last: 0, errors: [] });
demo.session = { id: null, items: tally(), echoes: tally(), sent: 0, lost: null, fresh: 0, stream, pump };

function count(t, seq) {
  if (seq !== t.last + 1 && t.errors.length < 20) t.errors.push(`${seq} after ${t.last}`);
  t.count += 1;
  t.last = Math.max(t.last, seq);
}

/** Asks the server for `count` items of `size` bytes, one every `everyMs` (0: at once). */
function stream(count, size = 100, everyMs = 0) {
  socket.send(JSON.stringify({ type: 'stream', count, size, every_ms: everyMs }));
}

/** Sends `count` numbered messages, `batch` every `everyMs`; resolves when all are taken. */
function pump(count, everyMs = 10, batch = 5) {
  const s = demo.session;
  const last = s.sent + count;
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      for (let i = 0; i < batch && s.sent < last; i += 1) {
        if (!socket.send(JSON.stringify({ type: 'msg', seq: s.sent + 1 }))) break; // full: next tick
        s.sent += 1;
      }
      if (s.sent >= last) {
        clearInterval(timer);
        resolve(s.sent);
      }
    }, everyMs);
  });
}

const $ = (id) => document.getElementById(id);

function log(text) {
  demo.events.push({ t: Math.round(performance.now()), text });
  const item = document.createElement('li');
  item.textContent = `${(performance.now() / 1000).toFixed(2)} s  ${text}`;
  $('log').prepend(item);
  while ($('log').children.length > 200) $('log').lastChild.remove();
}

socket.addEventListener('state', (e) => {
  const details = [e.why, e.code && `code ${e.code}`, e.reason, e.delay !== undefined && `next try in ${Math.round(e.delay)} ms`];
  log(`${e.state}: ${details.filter(Boolean).join(', ')}`);
  render();
});
socket.addEventListener('sessionlost', (e) => {
  demo.session.lost = { cause: e.cause, unconfirmed: e.unconfirmed, code: e.code, reason: e.reason };
  log(`session lost: ${e.cause}, ${e.unconfirmed} messages unconfirmed`);
  render();
});
// A server that restarts finishes the session (PROTOCOL.md, section 8): everything arrived
// once, and a new session starts on the next server with what the page sent meanwhile. Its
// handler is a new one: the items it streams count from 1 again, as after a fresh start.
socket.addEventListener('sessionnew', (e) => {
  demo.session.fresh += 1;
  demo.session.items = tally();
  demo.session.id = null;
  log(`new session: the server finished the old one (code ${e.code}), ${e.kept} messages carried over`);
  render();
});
socket.addEventListener('rtt', (e) => {
  demo.rtts.push(e.rtt);
  if (demo.rtts.length > 120) demo.rtts.shift();
  render();
});
socket.addEventListener('message', (e) => {
  let message;
  try {
    message = JSON.parse(e.data);
  } catch {
    return log(`message: ${e.data}`);
  }
  if (message.type === 'stats') {
    demo.server = message;
    render();
  } else if (resume && message.type === 'item') {
    count(demo.session.items, message.seq);
  } else if (resume && message.type === 'msg') {
    count(demo.session.echoes, message.seq);
  } else if (resume && message.type === 'session') {
    demo.session.id = message.id;
    log(`session ${message.id}`);
  } else {
    log(`message: ${e.data}`);
  }
});

// A sleeping tab's timers stop too: the page's heartbeat is put off for a day, so that the page
// does not give up on its server while it cannot hear it (its ping, like everything it
// sends while frozen, never leaves). Thawing restores the interval.
let awakeInterval;
function freeze() {
  frozen = true;
  awakeInterval = socket.interval;
  socket.setInterval(24 * 60 * 60 * 1000);
  log('frozen: no longer hearing or answering');
  render();
}

function thaw() {
  frozen = false;
  socket.setInterval(awakeInterval);
  log('thawed');
  for (const deliver of held.splice(0)) deliver();
  render();
}

function render() {
  $('state').textContent = socket.state;
  $('state').dataset.state = socket.state;
  $('mode').textContent = heartbeat;
  $('reconnects').textContent = socket.stats.reconnects;
  $('resumes').textContent = resume ? socket.stats.resumes : 'no session';
  $('rtt').textContent = socket.rtt === undefined ? '–' : `${socket.rtt} ms`;
  $('freeze').setAttribute('aria-pressed', String(frozen));
  $('freeze').textContent = frozen ? 'Thaw' : 'Freeze';
  const s = demo.server;
  if (s) {
    $('s-heartbeat').textContent =
      `every ${s.interval_ms} ms, dead after ${s.max_missed} missed (within ${s.interval_ms * (s.max_missed + 1)} ms)`;
  }
  const m = demo.metrics;
  if (m) {
    $('s-connected').textContent = m.open;
    $('s-connections').textContent = m.opened;
    $('s-pings').textContent = m.pings;
    $('s-deaths').textContent = m.deaths;
    $('s-deaths-rate').textContent = m.deathsPerMinute === null ? '–' : m.deathsPerMinute.toFixed(1);
    $('s-sessions').textContent = `${m.sessionsLive} live, ${m.sessionsParked} parked, ${m.resumes} resumes`;
    drawHistogram(m.rtt);
  }
  drawChart();
}

// --- the server's metrics ---------------------------------------------------------------

/** Prometheus text: every sample as { name, labels, value }. */
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    const found = line.match(/^([a-z_]+)(?:\{(.*)\})? (\S+)$/);
    if (!found) continue;
    const labels = Object.fromEntries([...(found[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    samples.push({ name: found[1], labels, value: Number(found[3]) });
  }
  return samples;
}

const sum = (samples, name, where = () => true) =>
  samples.filter((s) => s.name === name && where(s.labels)).reduce((total, s) => total + s.value, 0);

/** Fetches /metrics and keeps what the panel shows; deaths per minute from the last two looks. */
async function pollMetrics() {
  let text;
  try {
    text = await (await fetch('/metrics')).text();
  } catch {
    return; // the server is away: the panel keeps its last values
  }
  const samples = parseMetrics(text);
  const now = performance.now();
  const deaths = sum(samples, 'ws_heartbeat_deaths_total');
  const before = demo.metrics;
  const deathsPerMinute = before ? ((deaths - before.deaths) * 60000) / (now - before.at) : null;
  // The RTT histogram, all layers together: the count in each bucket, not cumulative.
  const bounds = [...new Set(samples.filter((s) => s.name === 'ws_heartbeat_rtt_seconds_bucket').map((s) => s.labels.le))];
  const cumulative = bounds.map((le) => ({ le, count: sum(samples, 'ws_heartbeat_rtt_seconds_bucket', (l) => l.le === le) }));
  cumulative.sort((a, b) => Number(a.le) - Number(b.le));
  const rtt = cumulative.map((b, i) => ({ le: b.le, count: b.count - (i > 0 ? cumulative[i - 1].count : 0) }));
  demo.metrics = {
    at: now,
    open: sum(samples, 'ws_heartbeat_connections'),
    opened: sum(samples, 'ws_heartbeat_connections_total'),
    pings: sum(samples, 'ws_heartbeat_pings_sent_total'),
    deaths,
    deathsPerMinute,
    sessionsLive: sum(samples, 'ws_heartbeat_sessions', (l) => l.state === 'live'),
    sessionsParked: sum(samples, 'ws_heartbeat_sessions', (l) => l.state === 'parked'),
    resumes: sum(samples, 'ws_heartbeat_session_resumes_total'),
    rtt,
  };
  render();
}
setInterval(pollMetrics, 2000);
pollMetrics();

/** The server's RTT histogram as bars, one per bucket (upper bound below). */
function drawHistogram(buckets) {
  const canvas = $('rtt-histogram');
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  if (buckets.length === 0) return;
  const top = Math.max(1, ...buckets.map((b) => b.count));
  const w = width / buckets.length;
  ctx.font = '10px sans-serif';
  buckets.forEach((b, i) => {
    const h = ((height - 16) * b.count) / top;
    ctx.fillStyle = '#1a73e8';
    ctx.fillRect(i * w + 2, height - 14 - h, w - 4, h);
    ctx.fillStyle = '#666';
    const label = b.le === '+Inf' ? '∞' : Number(b.le) < 1 ? `${Number(b.le) * 1000}ms` : `${b.le}s`;
    ctx.fillText(label, i * w + 2, height - 2);
  });
}

function drawChart() {
  const canvas = $('chart');
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const samples = demo.rtts;
  if (samples.length === 0) return;
  const top = Math.max(1, ...samples) * 1.2;
  ctx.strokeStyle = '#ddd';
  ctx.fillStyle = '#888';
  ctx.font = '11px sans-serif';
  ctx.beginPath();
  ctx.moveTo(0, height / 2);
  ctx.lineTo(width, height / 2);
  ctx.stroke();
  ctx.fillText(`${(top / 2).toFixed(1)} ms`, 4, height / 2 - 4);
  ctx.strokeStyle = '#1a73e8';
  ctx.lineWidth = 2;
  ctx.beginPath();
  samples.forEach((ms, i) => {
    const x = samples.length === 1 ? width / 2 : (i / (samples.length - 1)) * width;
    const y = height - (ms / top) * height;
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

$('freeze').onclick = () => (frozen ? thaw() : freeze());
$('kill').onclick = () => socket.send(JSON.stringify({ type: 'kill' }));
$('kick').onclick = () => socket.send(JSON.stringify({ type: 'kick' }));
$('logout').onclick = () => socket.close(1000, 'logout');
$('stream').hidden = !resume;
$('stream').onclick = () => {
  stream(2000, 200, 2);
  pump(2000).then(() => log('sent 2000 numbered messages'));
};
// Going to the background: a slower heartbeat, which the server follows (seed 004).
$('background').onclick = () => {
  socket.setInterval(socket.interval * 4);
  log(`interval now ${socket.interval} ms`);
};
render();
