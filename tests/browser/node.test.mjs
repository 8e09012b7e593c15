// HeartbeatSocket (js/ws-heartbeat.js) in Node 20, with the `ws` package as its WebSocket,
// against the real Rust server: the demo example, heartbeating every 300 ms with 3 missed
// (dead within 1 200 ms). Run from the repository root, after `npm ci` in tests/browser:
//
//   node --test tests/browser/node.test.mjs
//
// Real time on 127.0.0.1: every bound states its slack (SLACK, support.mjs).

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import WebSocket from 'ws';
import { HeartbeatSocket } from '../../js/ws-heartbeat.js';
import { DemoServer, INTERVAL, MAX_MISSED, DEAD_BOUND, SLACK, sleep, until } from './support.mjs';

const BACKOFF = { initial: 200, max: 1000 };
const server = new DemoServer();
const open = new Set();

before(() => server.start());
after(() => server.stop());
afterEach(() => {
  for (const socket of open) socket.close();
  open.clear();
});

/** A HeartbeatSocket on the demo with the server's own heartbeat, recording what it sees. */
function connect(heartbeat, options = {}) {
  const url = `${server.ws}?heartbeat=${heartbeat}`;
  const socket = new HeartbeatSocket(url, { heartbeat, interval: INTERVAL, maxMissed: MAX_MISSED, backoff: BACKOFF, WebSocket, ...options });
  const seen = { states: [], data: [], rtts: [] };
  socket.addEventListener('state', (e) => seen.states.push({ t: Date.now(), state: e.state, why: e.why, code: e.code }));
  socket.addEventListener('message', (e) => {
    if (typeof e.data === 'string' && e.data.startsWith('{"type":"stats"')) return; // the demo's pushes
    seen.data.push(e.data);
  });
  socket.addEventListener('rtt', (e) => seen.rtts.push(e.rtt));
  open.add(socket);
  return { socket, seen };
}

const connected = (socket) => until(() => socket.state === 'connected', 5000, 'connected');

for (const heartbeat of ['json', 'text', 'binary']) {
  test(`${heartbeat}: both sides' pings are answered and hidden, data passes unchanged`, async () => {
    const { socket, seen } = connect(heartbeat);
    await connected(socket);
    const before = await server.stats();
    const payload = heartbeat === 'binary' ? new Uint8Array([0, 100, 0, 0, 0, 2, 7]) /* declares 2 bytes, has 1 */ : heartbeat === 'json' ? '{"type":"chat"}' : 'ping me';
    socket.send(payload); // looks like a heartbeat, is not one: echoed back as data
    await sleep(6 * INTERVAL);
    const after = await server.stats();
    assert.equal(socket.state, 'connected');
    assert.equal(seen.data.length, 1, `only the echo is data: ${seen.data}`);
    const echoed = heartbeat === 'binary' ? [...new Uint8Array(seen.data[0])] : seen.data[0];
    assert.deepEqual(echoed, heartbeat === 'binary' ? [...payload] : payload);
    // The page's pings: at least one per interval after the first, each answered on loopback.
    assert.ok(socket.stats.pings >= 5 && socket.stats.answers >= socket.stats.pings - 1, JSON.stringify(socket.stats));
    assert.ok(seen.rtts.length >= 4 && seen.rtts.every((ms) => ms >= 0 && ms < 100), `rtts ${seen.rtts}`);
    // The server's pings: answered by the page (6 intervals: at least 5 pongs).
    assert.ok(after.pongs - before.pongs >= 5, `server counted ${after.pongs - before.pongs} pongs`);
    assert.equal(after.deaths, before.deaths);
  });
}

test('control: the page sends no pings, ws answers the server Ping frames, the connection lives', async () => {
  const { socket, seen } = connect('control');
  await connected(socket);
  const before = await server.stats();
  await sleep(10 * INTERVAL);
  const after = await server.stats();
  assert.equal(socket.state, 'connected');
  assert.equal(socket.stats.pings, 0);
  assert.equal(seen.rtts.length, 0);
  assert.ok(after.pongs - before.pongs >= 9, `${after.pongs - before.pongs} pongs`);
  assert.equal(after.deaths, before.deaths);
});

test('server killed and restarted: reconnected within the backoff once it listens again', async () => {
  const { socket, seen } = connect('json');
  await connected(socket);
  await server.kill();
  await until(() => socket.state === 'reconnecting', DEAD_BOUND + SLACK, 'noticed');
  await sleep(1500); // a few refused attempts, the ceiling reaches the cap
  await server.restart();
  const took = await until(() => socket.state === 'connected', BACKOFF.max + SLACK, 'reconnected');
  console.log(`reconnected ${took} ms after the server listened again (backoff cap ${BACKOFF.max} ms)`);
  assert.ok(seen.states.filter((s) => s.state === 'reconnecting').length >= 2);
});

test('server frozen (SIGSTOP): found dead within the bound, reconnected after SIGCONT', async () => {
  const { socket, seen } = connect('json');
  await connected(socket);
  await sleep(2 * INTERVAL);
  const { connections } = await server.stats();
  const frozenAt = Date.now();
  server.signal('SIGSTOP');
  let took;
  try {
    await until(() => seen.states.some((s) => s.why === 'dead'), DEAD_BOUND + SLACK, 'found dead');
    took = seen.states.find((s) => s.why === 'dead').t - frozenAt;
    await sleep(1000); // attempts against the frozen server hang in its handshake
  } finally {
    server.signal('SIGCONT');
  }
  // Last heard at most one interval before the freeze: dead more than interval x (max_missed - 1) after it.
  assert.ok(took > INTERVAL * (MAX_MISSED - 1) && took <= DEAD_BOUND + SLACK, `dead ${took} ms after the freeze`);
  console.log(`frozen server found dead ${took} ms after SIGSTOP (bound ${DEAD_BOUND} ms)`);
  await until(() => socket.state === 'connected', 5000, 'reconnected after SIGCONT');
  // One attempt in flight: every new connection the server saw is one attempt of the page.
  const after = await server.stats();
  assert.ok(after.connections - connections <= socket.stats.reconnects, `${after.connections - connections} connections`);
});

test('kick: the page stays closed', async () => {
  const { socket, seen } = connect('json');
  await connected(socket);
  socket.send(JSON.stringify({ type: 'kick' }));
  await until(() => socket.state === 'closed', 2000, 'closed');
  assert.deepEqual(seen.states.at(-1).why, 'final-code');
  assert.equal(seen.states.at(-1).code, 4000);
  const { connections } = await server.stats();
  await sleep(10 * INTERVAL);
  assert.equal(socket.state, 'closed');
  assert.equal((await server.stats()).connections, connections);
});

/** A HeartbeatSocket in a child process (node_client.mjs), to be frozen with SIGSTOP. */
async function child(options) {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'node_client.mjs');
  const proc = spawn(process.execPath, [script, `${server.ws}?heartbeat=json`, JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = [];
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk) => lines.push(...chunk.split('\n').filter(Boolean).map((l) => JSON.parse(l))));
  await until(() => lines.some((l) => l.state === 'connected'), 5000, 'child connected');
  return { proc, lines };
}

test('page frozen (SIGSTOP): the server declares it dead within its bound', async () => {
  const { proc } = await child({ heartbeat: 'json', interval: INTERVAL });
  try {
    await sleep(2 * INTERVAL);
    const { deaths } = await server.stats();
    proc.kill('SIGSTOP');
    const took = await until(async () => (await server.stats()).deaths === deaths + 1, DEAD_BOUND + SLACK, 'server found it dead');
    assert.ok(took > INTERVAL * (MAX_MISSED - 1), `dead only ${took} ms after the freeze`);
    console.log(`frozen page declared dead by the server ${took} ms after SIGSTOP (bound ${DEAD_BOUND} ms)`);
  } finally {
    proc.kill('SIGKILL');
  }
});

test('setInterval to a longer interval: the server follows, keeps the page past the old bound, finds it dead within the new one', async () => {
  const longer = 1000;
  const { proc, lines } = await child({ heartbeat: 'json', interval: INTERVAL });
  try {
    proc.stdin.write(`interval ${longer}\n`);
    await until(() => lines.some((l) => l.why === 'interval'), 2000, 'interval changed');
    await until(async () => (await server.stats()).intervals_ms.includes(longer), 2 * INTERVAL, 'server follows');
    await sleep(longer); // a ping at the new cadence has gone out and been answered
    const { deaths } = await server.stats();
    proc.kill('SIGSTOP');
    const bound = longer * (MAX_MISSED + 1);
    const took = await until(async () => (await server.stats()).deaths === deaths + 1, bound + SLACK, 'dead within the new bound');
    // Last heard at most one new interval before the freeze.
    assert.ok(took > longer * (MAX_MISSED - 1) && took > DEAD_BOUND, `dead ${took} ms after the freeze`);
    console.log(`after setInterval(${longer}): declared dead ${took} ms after the freeze (old bound ${DEAD_BOUND}, new ${bound})`);
  } finally {
    proc.kill('SIGKILL');
  }
});
