// A careful browser WebSocket client, without dependencies.
//
// - Heartbeat: every `interval` ms a JSON ping {"type":"ping","id","ts"}; the server answers
//   with the same fields and "type":"pong", which gives the round trip. The page answers the
//   server's pings the same way. Its own read deadline: nothing heard for `deadline` ms means
//   the connection is dead, whatever the browser thinks.
// - Reconnect: exponential backoff with full jitter (a random delay in [0, min(cap, base·2^n)]),
//   one reconnect in flight at a time, the attempt count reset once connected.
// - No reconnect after a log-out (the page closes with 1000) or a kick (the server closes
//   with 4000).
//
// Settings come from the query string: heartbeat (json | control), interval, deadline,
// backoff (base) and cap, in ms. With heartbeat=control the page sends no pings of its own:
// the server pings with WebSocket Ping frames, which the browser answers by itself.

'use strict';

const params = new URLSearchParams(location.search);
const config = {
  heartbeat: params.get('heartbeat') === 'control' ? 'control' : 'json',
  interval: Number(params.get('interval') ?? 2000),
  deadline: Number(params.get('deadline') ?? 7000),
  backoffBase: Number(params.get('backoff') ?? 500),
  backoffCap: Number(params.get('cap') ?? 15000),
};
const KICKED = 4000;
const LOGGED_OUT = 1000;

// Everything the page knows, also read by the browser test.
const demo = {
  config,
  state: 'closed',
  socket: null,
  retryTimer: null,
  attempt: 0,
  reconnects: 0,
  final: false, // logged out or kicked: never reconnect
  frozen: false,
  pendingClose: null, // a close that happened while frozen
  lastHeard: 0,
  seq: 0,
  rtts: [],
  server: null,
  events: [],
};
window.demo = demo;

const $ = (id) => document.getElementById(id);

function log(text) {
  demo.events.push({ t: Math.round(performance.now()), text });
  const item = document.createElement('li');
  item.textContent = `${(performance.now() / 1000).toFixed(2)} s  ${text}`;
  $('log').prepend(item);
  while ($('log').children.length > 200) $('log').lastChild.remove();
}

function setState(state, why) {
  demo.state = state;
  log(why ? `${state}: ${why}` : state);
  render();
}

function send(message) {
  const socket = demo.socket;
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function connect() {
  if (demo.socket || demo.final) return; // one connection or attempt at a time
  if (demo.state !== 'reconnecting') setState('connecting');
  const url = new URL('/ws', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('heartbeat', config.heartbeat);
  const socket = new WebSocket(url);
  demo.socket = socket;
  socket.onopen = () => {
    demo.attempt = 0;
    demo.lastHeard = performance.now();
    setState('connected');
  };
  socket.onmessage = (event) => onMessage(event.data);
  socket.onclose = (event) => onClose(socket, event);
}

function onMessage(data) {
  if (demo.frozen) return; // a frozen page hears nothing and answers nothing
  demo.lastHeard = performance.now();
  let message;
  try {
    message = JSON.parse(data);
  } catch {
    log(`text: ${data}`);
    return;
  }
  switch (message.type) {
    case 'ping': // the server's heartbeat: echo every field back
      send({ ...message, type: 'pong' });
      break;
    case 'pong':
      if (typeof message.ts === 'number') addRtt(performance.now() - message.ts);
      break;
    case 'stats':
      demo.server = message;
      render();
      break;
    default:
      log(`message: ${data}`);
  }
}

function onClose(socket, event) {
  if (demo.socket !== socket) return; // an old socket we already gave up on
  demo.socket = null;
  if (demo.frozen) demo.pendingClose = event; // handled when the page thaws, as a frozen tab would
  else afterClose(event);
}

function afterClose(event) {
  if (event.code === KICKED) {
    demo.final = true;
    setState('closed', `kicked by the server (${event.code} ${event.reason})`);
  } else if (demo.final) {
    setState('closed', 'logged out');
  } else {
    scheduleReconnect(`connection closed (${event.code}${event.reason ? ' ' + event.reason : ''})`);
  }
}

function scheduleReconnect(why) {
  if (demo.retryTimer !== null || demo.final) return; // a single reconnect in flight
  const ceiling = Math.min(config.backoffCap, config.backoffBase * 2 ** demo.attempt);
  const delay = Math.random() * ceiling; // full jitter
  demo.attempt += 1;
  demo.reconnects += 1;
  setState('reconnecting', `${why}; attempt ${demo.attempt} in ${Math.round(delay)} ms`);
  demo.retryTimer = setTimeout(() => {
    demo.retryTimer = null;
    connect();
  }, delay);
}

// The page's own heartbeat and read deadline.
setInterval(() => {
  const socket = demo.socket;
  if (demo.frozen || !socket || socket.readyState !== WebSocket.OPEN) return;
  const silent = performance.now() - demo.lastHeard;
  if (silent > config.deadline) {
    demo.socket = null; // forget it first, so its close does not schedule a second reconnect
    socket.close();
    scheduleReconnect(`nothing heard for ${Math.round(silent)} ms`);
    return;
  }
  if (config.heartbeat === 'json') send({ type: 'ping', id: ++demo.seq, ts: performance.now() });
}, config.interval);

function addRtt(ms) {
  demo.rtts.push(ms);
  if (demo.rtts.length > 120) demo.rtts.shift();
  render();
}

function render() {
  $('state').textContent = demo.state;
  $('state').dataset.state = demo.state;
  $('mode').textContent = config.heartbeat;
  $('reconnects').textContent = demo.reconnects;
  const last = demo.rtts[demo.rtts.length - 1];
  $('rtt').textContent = last === undefined ? '–' : `${last.toFixed(1)} ms`;
  $('freeze').setAttribute('aria-pressed', String(demo.frozen));
  $('freeze').textContent = demo.frozen ? 'Thaw' : 'Freeze';
  const s = demo.server;
  if (s) {
    $('s-connected').textContent = s.connected;
    $('s-connections').textContent = s.connections;
    $('s-pings').textContent = s.pings;
    $('s-pongs').textContent = s.pongs;
    $('s-deaths').textContent = s.deaths;
    $('s-heartbeat').textContent =
      `every ${s.interval_ms} ms, dead after ${s.max_missed} missed (within ${s.interval_ms * (s.max_missed + 1)} ms)`;
  }
  drawChart();
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

$('freeze').onclick = () => {
  demo.frozen = !demo.frozen;
  log(demo.frozen ? 'frozen: no longer hearing or answering' : 'thawed');
  if (!demo.frozen) {
    demo.lastHeard = performance.now();
    const closed = demo.pendingClose;
    demo.pendingClose = null;
    if (closed) afterClose(closed);
  }
  render();
};
$('kill').onclick = () => send({ type: 'kill' });
$('kick').onclick = () => send({ type: 'kick' });
$('logout').onclick = () => {
  demo.final = true;
  clearTimeout(demo.retryTimer);
  demo.retryTimer = null;
  if (demo.socket) demo.socket.close(LOGGED_OUT, 'logout');
  else setState('closed', 'logged out');
};
$('login').onclick = () => {
  if (!demo.final) return;
  demo.final = false;
  demo.attempt = 0;
  connect();
};

connect();
