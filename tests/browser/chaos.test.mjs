// A session through a hostile network: HeartbeatSocket (js/ws-heartbeat.js) with `resume: true`
// in Node 20, with the `ws` package as its WebSocket, against the demo server's /session,
// through a TCP relay on 127.0.0.1 that cuts every connection at a random byte offset (both
// directions counted together, so mid-frame as often as not; a FIN or a RST) and about 1 in 8
// times freezes it instead (nothing more passes either way, both sockets stay open: only the
// heartbeats can find it). Both sides heartbeat every 200 ms with 2 missed (dead within 600 ms).
// While the page sends 10 000 numbered messages (echoed by the server; every fifth one escaped,
// as it could pass for a heartbeat) and the server streams 10 000 items, at least 50
// connections are cut or frozen; then every message must have arrived on each side exactly
// once and in order, with one handler call and no session lost, and the page's Close must end
// the session on the server. The summary line gives the time from each cut or freeze to the
// page's next welcome. Run from the repository root, after `npm ci` in tests/browser:
//
//   node --test tests/browser/chaos.test.mjs          (CHAOS_SEED=n repeats a run's dice;
//                                                      CHAOS_DEBUG=1 prints the slow recoveries)
//
// Real time; every wait has a deadline and every loop a bound.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import { HeartbeatSocket } from '../../js/ws-heartbeat.js';
import { DemoServer, sleep, until } from './support.mjs';

const INTERVAL = 200;
const MAX_MISSED = 2;
const MESSAGES = 10000; // each way
const ITEM_BYTES = 100;
const MIN_CHAOS = 50; // cuts and freezes while the messages flow
const FREEZE_ONE_IN = 8;
const DEADLINE = 180000; // the whole test

// Knobs for exploring (the defaults are what CI runs): the heartbeat shape (json, text or binary:
// a page on control frames cannot find a frozen path), and the page's session buffer in bytes.
const HEARTBEAT = process.env.CHAOS_HEARTBEAT ?? 'json';
const BUFFER = Number(process.env.CHAOS_BUFFER ?? 1 << 20);
const SERVER_BUFFER = process.env.CHAOS_SERVER_BUFFER; // the server's (1 MiB unless given)
const SEED = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 32)) >>> 0;

/** mulberry32: a small seeded generator of floats in [0, 1). */
function seeded(seed) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * The relay. Each connection gets its fate when it arrives: the byte (both directions
 * together) at which it is cut or frozen. About one in seven offsets falls in the first 600
 * bytes (the HTTP upgrade, the hello, the welcome); the rest anywhere in the first 48 000.
 * Once `calm`, new connections pass everything. It notes when a session's `welcome` passes
 * on each connection, to tell a recovery from the welcome of the connection it cuts.
 */
class ChaosRelay {
  events = []; // { t, kind: 'cut' | 'freeze', how, at, connection }
  welcomes = []; // { t, connection }: a welcome passed to the page
  connections = 0;
  bytes = { up: 0, down: 0 }; // passed to the server, to the page
  calm = false;
  calmFrom = Infinity; // the first connection made calm
  #sockets = new Set();
  #pairs = new Map(); // connection -> its two sockets
  #server = null;
  #dice;
  #target;

  constructor(target, dice) {
    this.#target = target;
    this.#dice = dice;
  }

  async listen() {
    this.#server = net.createServer((client) => this.#relay(client));
    await new Promise((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return this.#server.address().port;
  }

  close() {
    this.#server?.close();
    for (const socket of this.#sockets) socket.destroy();
  }

  /** No more chaos: the connections open now are dropped, later ones pass everything. */
  settle() {
    this.calm = true;
    this.calmFrom = this.connections + 1;
    for (const pair of this.#pairs.values()) for (const socket of pair) socket.destroy();
  }

  #fate() {
    const dice = this.#dice;
    const kind = dice() < 1 / FREEZE_ONE_IN ? 'freeze' : 'cut';
    const at = Math.floor(dice() < 0.15 ? dice() * 600 : dice() * 48000);
    return { kind, at, how: dice() < 0.5 ? 'fin' : 'rst' };
  }

  #relay(client) {
    const connection = ++this.connections;
    const fate = this.calm ? null : this.#fate();
    const server = net.connect(this.#target.port, this.#target.hostname);
    this.#pairs.set(connection, [client, server]);
    client.on('close', () => this.#pairs.delete(connection));
    for (const socket of [client, server]) {
      this.#sockets.add(socket);
      socket.setNoDelay(true);
      socket.on('error', () => {});
      socket.on('close', () => this.#sockets.delete(socket));
    }
    let passed = 0;
    let state = 'open';
    let tail = ''; // the end of what the server sent, in case a welcome straddles two chunks
    const welcome = (bytes) => {
      const text = tail + bytes.toString('latin1');
      if (text.includes('\u0010welcome ')) this.welcomes.push({ t: Date.now(), connection });
      tail = text.slice(-16);
    };
    const pass = (from, to, chunk) => {
      if (state !== 'open') return; // frozen (read and dropped) or cut
      if (fate && passed + chunk.length >= fate.at) {
        const head = chunk.subarray(0, fate.at - passed);
        passed = fate.at;
        if (head.length > 0) to.write(head);
        this.bytes[to === client ? 'down' : 'up'] += head.length;
        if (to === client) welcome(head);
        this.events.push({ t: Date.now(), kind: fate.kind, how: fate.how, at: fate.at, connection });
        if (fate.kind === 'freeze') {
          state = 'frozen';
        } else {
          state = 'cut';
          for (const socket of [client, server]) {
            if (fate.how === 'rst') socket.resetAndDestroy();
            else socket.end(); // what was written goes first, then the FIN
          }
        }
        return;
      }
      passed += chunk.length;
      this.bytes[to === client ? 'down' : 'up'] += chunk.length;
      if (to === client) welcome(chunk);
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    };
    client.on('data', (chunk) => pass(client, server, chunk));
    server.on('data', (chunk) => pass(server, client, chunk));
    // A frozen path passes no FIN either: only an open one relays the end of a side.
    client.on('end', () => state === 'open' && server.end());
    server.on('end', () => state === 'open' && client.end());
  }
}

/**
 * The page's numbered message `seq`. Every fifth could pass for a JSON heartbeat (it holds
 * "ping", "pong" and a backslash): it travels escaped both ways, and is kept and replayed so.
 */
const numbered = (seq) => JSON.stringify(seq % 5 === 0 ? { type: 'msg', seq, note: 'ping pong \\' } : { type: 'msg', seq });

/** What one side expects: numbers 1, 2, ... once each and in order. */
const tally = () => ({ count: 0, last: 0, errors: [] });
function record(t, seq) {
  if (seq !== t.last + 1 && t.errors.length < 20) t.errors.push(`${seq} after ${t.last}`);
  t.count += 1;
  t.last = Math.max(t.last, seq);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : Math.round((s[s.length / 2 - 1] + s[s.length / 2]) / 2);
};
const spread = (xs) => (xs.length === 0 ? 'none' : `${Math.min(...xs)}/${median(xs)}/${Math.max(...xs)} ms`);

const server = new DemoServer({
  interval: INTERVAL,
  maxMissed: MAX_MISSED,
  args: SERVER_BUFFER ? ['--session-buffer', SERVER_BUFFER] : [],
});
let relay;

before(async () => {
  await server.start();
  relay = new ChaosRelay(new URL(server.base), seeded(SEED));
});

after(() => {
  relay?.close();
  server.stop();
});

test(`a session survives ${MIN_CHAOS}+ cuts and freezes at random offsets while ${MESSAGES} messages flow each way`, { timeout: DEADLINE }, async () => {
  console.log(`chaos seed ${SEED} (CHAOS_SEED=${SEED} repeats the dice), heartbeat ${HEARTBEAT}, page buffer ${BUFFER} bytes, server buffer ${SERVER_BUFFER ?? 'default'}`);
  const started = Date.now();
  const left = () => DEADLINE - 10000 - (Date.now() - started);
  const port = await relay.listen();
  const before = (await server.stats()).sessions;

  const socket = new HeartbeatSocket(`ws://127.0.0.1:${port}/session?heartbeat=${HEARTBEAT}`, {
    heartbeat: HEARTBEAT,
    interval: INTERVAL,
    maxMissed: MAX_MISSED,
    resume: { buffer: BUFFER },
    backoff: { initial: 50, max: 300 },
    connectTimeout: 2000, // a freeze before the upgrade is found by this alone
    WebSocket,
  });
  const items = tally();
  const echoes = tally();
  const states = [];
  const lost = [];
  let id = null;
  socket.addEventListener('state', (e) => states.push({ t: Date.now(), state: e.state, why: e.why, code: e.code }));
  socket.addEventListener('sessionlost', (e) => lost.push({ cause: e.cause, unconfirmed: e.unconfirmed, reason: e.reason }));
  socket.addEventListener('message', (e) => {
    const message = JSON.parse(e.data);
    if (message.type === 'item') {
      record(items, message.seq);
    } else if (message.type === 'msg') {
      record(echoes, message.seq);
      if (e.data !== numbered(message.seq) && echoes.errors.length < 20) echoes.errors.push(`echo ${message.seq} changed: ${e.data}`);
    } else if (message.type === 'session') {
      id = message.id;
    }
  });

  let pump;
  try {
    await until(() => id !== null, 30000, 'the session started (through the relay)');
    // Both flows at 500 messages a second, so that they last 20 s at least.
    assert.ok(socket.send(JSON.stringify({ type: 'stream', count: MESSAGES, size: ITEM_BYTES, every_ms: 2 })));
    let sent = 0;
    let refused = 0;
    pump = setInterval(() => {
      for (let i = 0; i < 2 && sent < MESSAGES; i += 1) {
        if (!socket.send(numbered(sent + 1))) {
          refused += 1; // the outbox is full: again at the next tick
          break;
        }
        sent += 1;
      }
      if (sent === MESSAGES) clearInterval(pump);
    }, 4);
    await until(() => items.count >= MESSAGES && echoes.count >= MESSAGES, left(), `all ${MESSAGES} items and echoes`).catch((error) => {
      throw new Error(`${error.message}: the page got ${items.count} items and ${echoes.count} echoes, sent ${sent}`);
    });
    const chaos = relay.events.length;
    relay.settle();
    // The session resumes on a calm connection; whatever was doubled would arrive meanwhile.
    await until(() => socket.state === 'connected' && relay.welcomes.some((w) => w.connection >= relay.calmFrom), 10000, 'resumed on a calm connection');
    await sleep(3 * INTERVAL * (MAX_MISSED + 1));
    await until(async () => (await server.stats()).sessions.list.find((s) => s.id === id)?.numbered >= MESSAGES, 10000, 'the server counted every message');
    const after = (await server.stats()).sessions;
    const counted = after.list.find((s) => s.id === id);

    // Time lost per cut or freeze: to the page's next `connected` state event (the welcome) on
    // a later connection than the one cut (whose own welcome may pass just before its cut).
    const regained = states.filter((s) => s.state === 'connected');
    const lostMs = { cut: [], freeze: [] };
    for (const event of relay.events) {
      const next = relay.welcomes.find((w) => w.connection > event.connection);
      const back = next && regained.find((s) => s.t >= next.t);
      if (back) lostMs[event.kind].push(back.t - event.t);
      if (process.env.CHAOS_DEBUG && back && back.t - event.t > 1500) {
        console.log(`slow: ${JSON.stringify(event)} -> ${JSON.stringify(next)}; states ${JSON.stringify(states.filter((s) => s.t >= event.t - 50 && s.t <= back.t))}; relay ${JSON.stringify(relay.events.filter((e) => e.t >= event.t && e.t <= back.t))}`);
      }
    }
    const freezes = relay.events.filter((e) => e.kind === 'freeze').length;
    const stats = socket.stats;
    if (process.env.CHAOS_DEBUG) console.log(`relayed ${JSON.stringify(relay.bytes)}; page stats ${JSON.stringify(stats)}`);
    console.log(
      `chaos seed ${SEED}: ${relay.connections} connections, ${chaos - freezes} cuts (time to the next welcome min/median/max ${spread(lostMs.cut)}), ` +
        `${freezes} freezes (${spread(lostMs.freeze)}), ${stats.resumes} resumes, ${stats.deaths} found dead by the page, ` +
        `the page got ${items.count} items and ${echoes.count} echoes (${items.errors.length + echoes.errors.length} out of order, doubled or changed), ` +
        `the server ${counted?.numbered} numbered messages (runs ${JSON.stringify(counted?.seq_runs.slice(0, 3))}), ` +
        `${refused} sends refused (outbox full), ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );

    assert.ok(chaos >= MIN_CHAOS, `only ${chaos} cuts and freezes while the messages flowed`);
    assert.ok(freezes >= 1, 'no freeze: the heartbeats were not put to the test');
    assert.deepEqual(lost, [], 'no session lost');
    assert.deepEqual(items, { count: MESSAGES, last: MESSAGES, errors: [] }, 'the page got every item once, in order');
    assert.deepEqual(echoes, { count: MESSAGES, last: MESSAGES, errors: [] }, 'the page got every echo once, in order');
    assert.equal(after.calls, before.calls + 1, 'the handler was called once');
    assert.ok(counted, JSON.stringify(after));
    assert.deepEqual(
      { numbered: counted.numbered, runs: counted.seq_runs, duplicates: counted.duplicates, out_of_order: counted.out_of_order },
      { numbered: MESSAGES, runs: [[1, MESSAGES]], duplicates: 0, out_of_order: 0 },
      'the server got every numbered message once, in order',
    );
    assert.equal(counted.received, MESSAGES + 1, 'the numbered messages and the stream command');
    assert.equal(counted.sent, 1 + 2 * MESSAGES, 'the greeting, the items, the echoes');
    assert.equal(counted.ended, null, 'the session lives on');

    // The page's Close ends the session: the handler returns, the server holds nothing.
    socket.close();
    await until(async () => (await server.stats()).sessions.list.find((s) => s.id === id).ended !== null, 5000, 'the session ended on the server');
    const end = (await server.stats()).sessions;
    assert.equal(end.list.find((s) => s.id === id).ended, 'closed');
    assert.deepEqual([end.running, end.live, end.parked], [0, 0, 0], 'no handler running, no session held');
  } catch (error) {
    console.log(`chaos seed ${SEED} failed; the page's last states: ${JSON.stringify(states.slice(-12))}; relay: ${JSON.stringify(relay.events.slice(-6))}`);
    throw error;
  } finally {
    clearInterval(pump);
    socket.close();
  }
});
