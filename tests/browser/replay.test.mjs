// A replay through cuts, in real sockets: HeartbeatSocket (js/ws-heartbeat.js) with `resume` in
// Node 20, the `ws` package as its WebSocket, against the demo server's /session (which echoes),
// through a TCP relay on 127.0.0.1. The page's session buffer and the server's are 64 KiB; the
// page sends 10 000 numbered messages as fast as the session lets it (again at each message that
// arrives, and 1 ms after a refusal), through a relay that passes everything, then through one
// that cuts every connection it carries every 200 ms (a RST both ways, mid-frame as often as
// not): three rounds after a warm-up. Each run must deliver every message once and in order (the
// server's count, and its echo back), and the median rate with cuts must be at least half the
// median without. At every look the module takes at the socket's `bufferedAmount`, it must be
// under its bound (a quarter of the buffer, 16 KiB) plus one message and the page's own small
// frames. (Over loopback the kernel takes a whole 64 KiB buffer at once: `bufferedAmount` stays
// at 0 and the bound never holds anything back; js/test/resume.test.mjs paces on a slow link.)
// Run from the repository root, after `npm ci` in tests/browser:
//
//   node --test tests/browser/replay.test.mjs       (REPLAY_DEBUG=1 prints each run's progress
//                                                    every 20 ms: sent, echoed, kept)
//
// The messages are about 8 KiB so that a run spans several cuts: 10 000 of 1 KiB were through in
// 0.4 s here. Real time; every wait has a deadline and every loop a bound.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import { HeartbeatSocket } from '../../js/ws-heartbeat.js';
import { DemoServer, until } from './support.mjs';

const MESSAGES = 10000;
const BUFFER = 64 * 1024; // the page's session buffer and the server's
const BOUND = BUFFER / 4; // the module's bufferedAmount bound for it (ResumeOptions.buffer)
const CUT_EVERY = 200; // ms
const PAD = 8000; // characters of padding in each message
const INTERVAL = 300; // both sides' heartbeat
const MIN_RATIO = 0.5; // progress with cuts against without
const MIN_CUTS = 3; // a run with cuts must have gone through this many at least
const ROUNDS = 3; // pairs of runs, uncut then cut; the medians are compared
const WARM_UP = 1000; // messages of an unmeasured first run (the JIT, the server's first session)
const RUN_DEADLINE = 60000;
// `ws` counts a frame's header in bufferedAmount: at most 8 bytes for a client's frame under
// 64 KiB. Between two looks the page may also send an ack and answer or send a heartbeat.
const FRAME_HEADER = 8;
const OWN_FRAMES = 256;

/** The page's numbered message `seq`: JSON the demo counts and echoes. */
const numbered = (seq) => JSON.stringify({ type: 'msg', seq, pad: 'x'.repeat(PAD) });
const MESSAGE_BYTES = numbered(MESSAGES).length;

/**
 * A relay on 127.0.0.1 to the demo. With `cutEvery`, a timer cuts every connection it holds
 * at that period, from the first connection on: both sockets reset at once, whatever they are
 * carrying (an upgrade, a welcome, half a frame).
 */
class CuttingRelay {
  cuts = 0; // cut moments that found at least one connection
  connections = 0;
  #pairs = new Set();
  #server = null;
  #timer = null;
  #target;
  #cutEvery;

  constructor(target, cutEvery) {
    this.#target = target;
    this.#cutEvery = cutEvery;
  }

  async listen() {
    this.#server = net.createServer((client) => this.#relay(client));
    await new Promise((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return this.#server.address().port;
  }

  close() {
    clearInterval(this.#timer);
    this.#server?.close();
    for (const pair of this.#pairs) for (const socket of pair) socket.destroy();
  }

  #cut() {
    if (this.#pairs.size > 0) this.cuts += 1;
    for (const pair of this.#pairs) for (const socket of pair) socket.resetAndDestroy();
    this.#pairs.clear();
  }

  #relay(client) {
    this.connections += 1;
    if (this.#cutEvery && this.#timer === null) this.#timer = setInterval(() => this.#cut(), this.#cutEvery);
    const server = net.connect(this.#target.port, this.#target.hostname);
    const pair = [client, server];
    this.#pairs.add(pair);
    for (const socket of pair) {
      socket.setNoDelay(true);
      socket.on('error', () => {});
      socket.on('close', () => this.#pairs.delete(pair));
    }
    // Backpressure both ways, as a link has: pipe() pauses a side whose far end is full.
    client.pipe(server);
    server.pipe(client);
  }
}

const server = new DemoServer({ interval: INTERVAL, maxMissed: 3, args: ['--session-buffer', String(BUFFER)] });

before(async () => {
  await server.start();
});

after(() => server.stop());

/**
 * One run through a relay (cutting every `cutEvery` ms, or not): the rate in messages a second
 * from the first send to the last echo, and what was seen on the way.
 */
async function run(cutEvery, messages = MESSAGES) {
  const relay = new CuttingRelay(new URL(server.base), cutEvery);
  const port = await relay.listen();
  // Every look the module takes at bufferedAmount, and the largest.
  const looks = { count: 0, max: 0, atBound: 0 };
  class Watched extends WebSocket {
    get bufferedAmount() {
      const amount = super.bufferedAmount;
      looks.count += 1;
      looks.max = Math.max(looks.max, amount);
      if (amount >= BOUND) looks.atBound += 1;
      return amount;
    }
  }
  const socket = new HeartbeatSocket(`ws://127.0.0.1:${port}/session?heartbeat=json`, {
    heartbeat: 'json',
    interval: INTERVAL,
    resume: { buffer: BUFFER },
    // A short backoff (as tests/resume_chaos.rs): the time a cut costs is then mostly the new
    // connection and the replay, which is what this test is about.
    backoff: { initial: 5, max: 50 },
    WebSocket: Watched,
  });
  const echoes = { count: 0, last: 0, errors: [] };
  const lost = [];
  let id = null;
  let sent = 0;
  let first = null;
  let last = null;
  let retry = null;
  const timeline = []; // with REPLAY_DEBUG: [ms, sent, echoed, kept] every 20 ms
  let tl = null;
  const pump = () => {
    if (id === null) return;
    while (sent < messages && socket.send(numbered(sent + 1))) {
      sent += 1;
      first ??= performance.now();
    }
    if (sent < messages && retry === null) {
      retry = setTimeout(() => {
        retry = null;
        pump();
      }, 1);
    }
  };
  socket.addEventListener('sessionlost', (e) => lost.push(e.cause));
  socket.addEventListener('message', (e) => {
    const message = JSON.parse(e.data);
    if (message.type === 'session') id = message.id;
    else if (message.type === 'msg') {
      if (message.seq !== echoes.last + 1 && echoes.errors.length < 20) echoes.errors.push(`${message.seq} after ${echoes.last}`);
      echoes.count += 1;
      echoes.last = Math.max(echoes.last, message.seq);
      if (echoes.count === messages) last = performance.now();
    }
    pump();
  });
  try {
    await until(() => id !== null, 10000, 'the session started');
    pump();
    if (process.env.REPLAY_DEBUG) tl = setInterval(() => timeline.push([Math.round(performance.now() - first), sent, echoes.count, socket.stats.kept]), 20);
    await until(() => echoes.count >= messages || lost.length > 0, RUN_DEADLINE, `${messages} echoes`).catch((error) => {
      throw new Error(`${error.message}: sent ${sent}, ${echoes.count} echoes, ${relay.cuts} cuts, lost ${lost}`);
    });
    const counted = (await server.stats()).sessions.list.find((s) => s.id === id);
    const stats = socket.stats;
    if (process.env.REPLAY_DEBUG) console.log(JSON.stringify(timeline));
    return { ms: last - first, rate: (messages * 1000) / (last - first), cuts: relay.cuts, connections: relay.connections, echoes, lost, counted, looks, resumes: stats.resumes };
  } finally {
    clearInterval(tl);
    clearTimeout(retry);
    socket.close();
    relay.close();
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1];

/** Every message once and in order on both sides, and the bound kept at every look. */
function check(name, r, messages = MESSAGES) {
  assert.deepEqual(r.lost, [], `${name}: no session lost`);
  assert.deepEqual(r.echoes, { count: messages, last: messages, errors: [] }, `${name}: every echo once, in order`);
  assert.ok(r.counted, `${name}: the server lists the session`);
  assert.deepEqual(
    { numbered: r.counted.numbered, runs: r.counted.seq_runs, duplicates: r.counted.duplicates, out_of_order: r.counted.out_of_order },
    { numbered: messages, runs: [[1, messages]], duplicates: 0, out_of_order: 0 },
    `${name}: the server got every message once, in order`,
  );
  const allowed = BOUND - 1 + MESSAGE_BYTES + FRAME_HEADER + OWN_FRAMES;
  assert.ok(r.looks.max <= allowed, `${name}: bufferedAmount ${r.looks.max} at a look, over ${allowed}`);
}

test(`${MESSAGES} messages with a ${BUFFER / 1024} KiB session buffer: cut every ${CUT_EVERY} ms, at least ${MIN_RATIO} of the uncut rate, each once and in order`, { timeout: (2 * ROUNDS + 1) * RUN_DEADLINE }, async () => {
  check('warm-up', await run(null, WARM_UP), WARM_UP);
  const rates = { uncut: [], cut: [] };
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const [name, cutEvery] of [
      ['uncut', null],
      ['cut', CUT_EVERY],
    ]) {
      const r = await run(cutEvery);
      console.log(
        `round ${round}, ${name}: ${MESSAGES} messages of ${MESSAGE_BYTES} B in ${r.ms.toFixed(0)} ms, ${r.rate.toFixed(0)} messages/s; ` +
          `${r.cuts} cuts, ${r.connections} connections, ${r.resumes} resumes; bufferedAmount at ${r.looks.count} looks: max ${r.looks.max}, ${r.looks.atBound} at the bound`,
      );
      check(`round ${round}, ${name}`, r);
      if (cutEvery === null) assert.equal(r.cuts, 0);
      else assert.ok(r.cuts >= MIN_CUTS, `round ${round}: only ${r.cuts} cuts: the run is too short to say anything (bigger messages?)`);
      rates[name].push(r.rate);
    }
  }
  const [uncut, cut] = [median(rates.uncut), median(rates.cut)];
  const ratio = cut / uncut;
  console.log(`medians: uncut ${uncut.toFixed(0)} messages/s, cut every ${CUT_EVERY} ms ${cut.toFixed(0)} messages/s: ${(ratio * 100).toFixed(0)}% of the uncut rate`);
  assert.ok(ratio >= MIN_RATIO, `with cuts ${cut.toFixed(0)} messages/s, uncut ${uncut.toFixed(0)}: ${ratio.toFixed(2)}`);
});
