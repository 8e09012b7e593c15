// The demo page. The heartbeat, the dead-server check, the round trips and the reconnects are
// all `HeartbeatSocket`'s (served by the demo at /ws-heartbeat.js, the crate's
// `ws_heartbeat::browser::SCRIPT`); this file only draws the page and wires its buttons.
//
// Settings come from the query string: heartbeat (json | text | binary | control), interval
// and maxMissed (the page's own heartbeat), backoff and cap (its reconnect delays), in ms.

import { HeartbeatSocket } from '/ws-heartbeat.js';

const params = new URLSearchParams(location.search);
const number = (name, fallback) => Number(params.get(name) ?? fallback);
const heartbeat = params.get('heartbeat') ?? 'json';

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

const url = new URL('/ws', location.href);
url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
url.searchParams.set('heartbeat', heartbeat);
const socket = new HeartbeatSocket(url, {
  heartbeat,
  interval: number('interval', 2000),
  maxMissed: number('maxMissed', 3),
  backoff: { initial: number('backoff', 500), max: number('cap', 15000) },
  WebSocket: FreezableWebSocket,
});

// Everything the page shows, also read by the browser test.
const demo = { socket, events: [], rtts: [], server: null, freeze, thaw };
window.demo = demo;

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
  $('rtt').textContent = socket.rtt === undefined ? '–' : `${socket.rtt} ms`;
  $('freeze').setAttribute('aria-pressed', String(frozen));
  $('freeze').textContent = frozen ? 'Thaw' : 'Freeze';
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

$('freeze').onclick = () => (frozen ? thaw() : freeze());
$('kill').onclick = () => socket.send(JSON.stringify({ type: 'kill' }));
$('kick').onclick = () => socket.send(JSON.stringify({ type: 'kick' }));
$('logout').onclick = () => socket.close(1000, 'logout');
// Going to the background: a slower heartbeat, which the server follows (seed 004).
$('background').onclick = () => {
  socket.setInterval(socket.interval * 4);
  log(`interval now ${socket.interval} ms`);
};
render();
