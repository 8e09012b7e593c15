// Tests of js/ws-heartbeat.js (HeartbeatSocket) on a paused clock: `node --test js/test/`.
//
// Node's mock timers stand in for tokio's paused clock: time moves only when a test says so
// (`to(t)` goes to absolute time t), `Date.now()` follows, and Math.random is stubbed in every
// test (0.5 unless the test sets `draws`), so each bound is asserted exactly. The network is a
// fake WebSocket class the tests drive: `open()`, `receive(data)`, `serverClose(code)`, `fail()`.
// No dependencies.

import { describe, it, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { HeartbeatSocket } from '../ws-heartbeat.js';

const [CONNECTING, OPEN, CLOSING, CLOSED] = [0, 1, 2, 3];
const utf8 = new TextEncoder();

// --- the clock and the dice ---------------------------------------------------------------

/** What Math.random returns: a number every time, or an array consumed in order. */
let draws;

beforeEach(() => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 0 });
  draws = 0.5;
  mock.method(Math, 'random', () => {
    if (!Array.isArray(draws)) return draws;
    assert.ok(draws.length > 0, 'the test ran out of Math.random draws');
    return draws.shift();
  });
});

afterEach(() => {
  mock.timers.reset();
  mock.restoreAll();
});

/**
 * Moves the paused clock to absolute time t (ms), firing the timers due on the way. It steps one
 * millisecond at a time: in one `mock.timers.tick(ms)` Node 20 runs every due callback with
 * `Date.now()` already at the end of the step, so a callback would see the wrong time.
 */
function to(t) {
  assert.ok(t >= Date.now(), `to(${t}): the clock is already at ${Date.now()}`);
  while (Date.now() < t) mock.timers.tick(Math.min(1, t - Date.now()));
  mock.timers.tick(0); // timers due exactly at t
}

/** Moves the clock on by ms. */
const wait = (ms) => to(Date.now() + ms);

/** Lets pending promise jobs run (the onConnect hook); setImmediate is not mocked. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

// --- the fake network ---------------------------------------------------------------------

/** A WebSocket class whose instances record what the page does and act as the test says. */
function fakeNet() {
  const sockets = [];
  class FakeWebSocket extends EventTarget {
    constructor(url, protocols) {
      super();
      Object.assign(this, { url, protocols, readyState: CONNECTING, binaryType: 'blob' });
      this.createdAt = Date.now();
      this.sent = []; // { t, data } for every send while OPEN
      this.closes = []; // { code, reason } for every close() call
      this.autoPong = null; // ms: the server answers each heartbeat ping after this long
      sockets.push(this);
    }

    send(data) {
      if (this.readyState === CONNECTING) throw new DOMException('still connecting', 'InvalidStateError');
      if (this.readyState !== OPEN) return; // a browser discards it silently
      this.sent.push({ t: Date.now(), data });
      const pong = this.autoPong === null ? undefined : pongFor(data);
      if (pong !== undefined) setTimeout(() => this.readyState === OPEN && this.receive(pong), this.autoPong);
    }

    close(code, reason = '') {
      // The browser's checks: a page may send 1000 or 3000-4999, and at most 123 bytes of reason.
      if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
        throw new DOMException(`close code ${code}`, 'InvalidAccessError');
      }
      if (utf8.encode(reason).length > 123) throw new DOMException('reason over 123 bytes', 'SyntaxError');
      this.closes.push({ code, reason });
      if (this.readyState < CLOSING) this.readyState = CLOSING;
    }

    // The test's side.
    open() {
      this.readyState = OPEN;
      this.dispatchEvent(new Event('open'));
    }
    receive(data) {
      this.dispatchEvent(Object.assign(new Event('message'), { data }));
    }
    emitError() {
      this.dispatchEvent(new Event('error'));
    }
    emitClose(code, reason = '') {
      this.readyState = CLOSED;
      this.dispatchEvent(Object.assign(new Event('close'), { code, reason, wasClean: code !== 1006 }));
    }
    serverClose(code, reason = '') {
      this.emitClose(code, reason);
    }
    /** The connection breaks the way a browser reports it: error, then close 1006. */
    fail() {
      this.readyState = CLOSED;
      this.emitError();
      this.emitClose(1006);
    }
  }
  return { WebSocket: FakeWebSocket, sockets };
}

/** The answer a well-behaved server gives to a heartbeat ping (JSON, text, binary), if any. */
function pongFor(data) {
  if (data === 'ping') return 'pong';
  if (typeof data === 'string') {
    const ping = jsonPing(data);
    return ping && JSON.stringify({ ...ping, type: 'pong' });
  }
  if (data instanceof ArrayBuffer && data.byteLength >= 6 && new DataView(data).getUint16(0) === 100) {
    return frame(101, new Uint8Array(data, 6));
  }
  return undefined;
}

function jsonPing(data) {
  try {
    const message = JSON.parse(data);
    return message?.type === 'ping' ? message : null;
  } catch {
    return null;
  }
}

/** The page's JSON pings a socket carried: { t, seq, interval }. */
const pingsOf = (ws) => ws.sent.flatMap(({ t, data }) => (typeof data === 'string' && jsonPing(data) ? [{ t, ...JSON.parse(data) }] : []));
/** Everything else the page sent on a socket. */
const dataOf = (ws) => ws.sent.map(({ data }) => data).filter((data) => typeof data !== 'string' || !jsonPing(data));

/** A binary command message: BE u16 command, BE u32 length (declared), payload. */
function frame(command, payload, declared = payload.length) {
  const bytes = new Uint8Array(6 + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, command);
  view.setUint32(2, declared);
  bytes.set(payload, 6);
  return bytes.buffer;
}
const bytesOf = (buffer) => [...new Uint8Array(buffer)];

// --- the socket under test ----------------------------------------------------------------

/**
 * A HeartbeatSocket on a fake network: interval 1000, no first-tick jitter, backoff 100 × 2 up
 * to 1000, unless the test says otherwise. `log` records every event with its time.
 */
function start(options = {}) {
  const net = fakeNet();
  const hb = new HeartbeatSocket('ws://example.test/ws', {
    WebSocket: net.WebSocket,
    interval: 1000,
    jitter: false,
    ...options,
    backoff: { initial: 100, factor: 2, max: 1000, ...options.backoff },
  });
  const log = { states: [], messages: [], rtts: [] };
  hb.addEventListener('state', (e) => log.states.push({ t: Date.now(), ...stateFields(e) }));
  hb.addEventListener('message', (e) => log.messages.push(e.data));
  hb.addEventListener('rtt', (e) => log.rtts.push(e.rtt));
  return {
    hb,
    net,
    log,
    get ws() {
      return net.sockets.at(-1);
    },
    /** 'state/why' of every state event so far. */
    get path() {
      return log.states.map((s) => `${s.state}/${s.why}`);
    },
    get last() {
      return log.states.at(-1);
    },
  };
}

function stateFields(e) {
  const keys = ['state', 'previous', 'why', 'code', 'reason', 'attempt', 'delay', 'unconfirmed', 'unsent', 'cause'];
  return Object.fromEntries(keys.filter((k) => e[k] !== undefined).map((k) => [k, e[k]]));
}

const deaths = (s) => s.log.states.filter((e) => e.why === 'dead');

// --- the tests ----------------------------------------------------------------------------

describe('death bound: silence for more than interval × maxMissed, found within one interval more', () => {
  it('a server silent since open is dead after t0+3000 and by t0+4000, after exactly 3 pings (jitter off)', () => {
    // t=250 open (t0); t0+1000, +2000, +3000 pings 1-3; t0+3000 alive; t0+4000 dead: close(3008)
    const s = start({ interval: 1000, maxMissed: 3 });
    to(250);
    s.ws.open();
    to(3250);
    assert.equal(s.hb.state, 'connected');
    assert.deepEqual(deaths(s), []);
    const pings = pingsOf(s.ws);
    assert.deepEqual(pings.map((p) => p.t), [1250, 2250, 3250]);
    const first = pings[0].seq;
    assert.deepEqual(s.ws.sent.map((m) => m.data), [0, 1, 2].map((i) => `{"type":"ping","seq":${first + i},"interval":1000}`));
    to(4250);
    assert.deepEqual(s.path, ['connected/open', 'reconnecting/dead']);
    assert.equal(s.last.code, 3008);
    assert.ok(s.last.t > 3250 && s.last.t <= 4250);
    assert.equal(pingsOf(s.ws).length, 3);
    assert.equal(s.ws.closes.length, 1);
    assert.equal(s.ws.closes[0].code, 3008);
    assert.match(s.ws.closes[0].reason, /silent/);
    assert.equal(s.hb.stats.deaths, 1);
  });

  for (const draw of [0, 0.999999]) {
    it(`with first-tick jitter (Math.random = ${draw}) the same bound holds: alive at t0+3000, dead by t0+4000`, () => {
      // t=0 open; first ping at ceil(draw × 1000) (at least 1), then every 1000; death in (3000, 4000]
      draws = draw;
      const s = start({ interval: 1000, maxMissed: 3, jitter: true });
      const ws = s.ws;
      ws.open();
      const firstPing = Math.max(1, Math.ceil(draw * 1000));
      to(3000);
      assert.deepEqual(deaths(s), []);
      assert.deepEqual(pingsOf(ws).map((p) => p.t), [firstPing, firstPing + 1000, firstPing + 2000]);
      to(4000);
      assert.equal(deaths(s).length, 1);
      assert.ok(deaths(s)[0].t > 3000);
      assert.equal(pingsOf(ws).length, 3);
      assert.equal(ws.closes[0].code, 3008);
    });
  }

  it('silence of exactly interval × maxMissed is not death, even with maxMissed pings out for an interval', () => {
    // t=0 open, setInterval(1000) at once → ping at t=0; pings 1000, 2000; t=3000 silent exactly 3000 with 3 pings
    // out, the latest 1000 ms old: alive (it sends ping 4); dead by t=4000
    const s = start();
    s.ws.open();
    s.hb.setInterval(1000);
    to(3000);
    assert.deepEqual(deaths(s), []);
    assert.deepEqual(pingsOf(s.ws).map((p) => p.t), [0, 1000, 2000, 3000]);
    to(4000);
    assert.equal(deaths(s).length, 1);
  });

  it('a server that answers every ping within 10 ms is never dead over 60 s, and every rtt is exactly 10', () => {
    // t=0 open; t=k×1000 ping k, its pong at +10 ms; t=60010: 60 pings, 60 rtt events of 10, no death
    const s = start();
    s.ws.autoPong = 10;
    s.ws.open();
    to(60010);
    assert.deepEqual(s.path, ['connected/open']);
    assert.equal(pingsOf(s.ws).length, 60);
    assert.deepEqual(s.log.rtts, Array(60).fill(10));
    assert.equal(s.hb.rtt, 10);
    assert.equal(s.hb.stats.answers, 60);
    assert.deepEqual(s.log.messages, []);
  });

  it('any inbound data message counts as life: silence is measured from it', () => {
    // t=0 open; t=1000-3000 pings unanswered; t=3500 data; t=4000 alive (would be dead without it);
    // t=4000-6000 pings; t=6500 alive (3000 after the data); dead by t=7500 (4000 after)
    const s = start();
    s.ws.open();
    to(3500);
    s.ws.receive('hello');
    to(6500);
    assert.deepEqual(deaths(s), []);
    to(7500);
    assert.equal(deaths(s).length, 1);
    assert.ok(deaths(s)[0].t > 6500);
    assert.deepEqual(s.log.messages, ['hello']);
  });
});

describe('heartbeat shapes', () => {
  it("json: the server's ping is answered with the same object as a pong and never shown; our pong is hidden", () => {
    // t=0 open; t=10 server {"type":"ping","seq":5,"x":1} → page {"type":"pong","seq":5,"x":1};
    // t=1000 page ping N; t=1010 server {"type":"pong","seq":N} → rtt 10, no message event
    const s = start({ heartbeat: 'json' });
    s.ws.open();
    to(10);
    s.ws.receive('{"type":"ping","seq":5,"x":1}');
    assert.deepEqual(s.ws.sent.map((m) => m.data), ['{"type":"pong","seq":5,"x":1}']);
    to(1000);
    const [ping] = pingsOf(s.ws);
    to(1010);
    s.ws.receive(`{"type":"pong","seq":${ping.seq}}`);
    assert.deepEqual(s.log.rtts, [10]);
    assert.deepEqual(s.log.messages, []);
  });

  it("text: 'ping' → 'pong' on exact match only; 'ping ', 'PING', 'pong ' are data", () => {
    // t=0 open; t=10 'ping' answered 'pong'; t=20 lookalikes delivered, unanswered; t=1000 page 'ping'; t=1010 'pong' → rtt 10
    const s = start({ heartbeat: 'text' });
    s.ws.open();
    to(10);
    s.ws.receive('ping');
    assert.deepEqual(s.ws.sent.map((m) => m.data), ['pong']);
    to(20);
    for (const data of ['ping ', 'PING', 'pong ', ' pong']) s.ws.receive(data);
    assert.deepEqual(s.log.messages, ['ping ', 'PING', 'pong ', ' pong']);
    assert.equal(s.ws.sent.length, 1);
    to(1000);
    assert.deepEqual(s.ws.sent.map((m) => m.data), ['pong', 'ping']);
    to(1010);
    s.ws.receive('pong');
    assert.deepEqual(s.log.rtts, [10]);
    assert.equal(s.log.messages.length, 4);
  });

  it('binary: commands 100/101 with BE u16 + BE u32 length; our ping is 12 bytes of payload (seq, interval)', () => {
    // t=0 open; t=1000 page ping 100|12|seq u64|1000 u32; t=1010 server 101 with that payload → rtt 10, hidden;
    // t=1100 server ping 100|8|8 bytes → page answers 101|8|same; t=1200 declared length 9 for 8 bytes, 5 bytes → data
    const s = start({ heartbeat: 'binary' });
    s.ws.open();
    to(1000);
    assert.equal(s.ws.sent.length, 1);
    const ping = s.ws.sent[0].data;
    assert.ok(ping instanceof ArrayBuffer);
    assert.equal(ping.byteLength, 18);
    const view = new DataView(ping);
    assert.equal(view.getUint16(0), 100);
    assert.equal(view.getUint32(2), 12);
    assert.equal(view.getUint32(14), 1000);
    const seq = view.getBigUint64(6);
    to(1010);
    s.ws.receive(frame(101, new Uint8Array(ping, 6)));
    assert.deepEqual(s.log.rtts, [10]);
    assert.deepEqual(s.log.messages, []);
    assert.equal(s.hb.stats.answers, 1);
    assert.ok(seq >= 0n);

    to(1100);
    const payload = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    s.ws.receive(frame(100, payload));
    assert.deepEqual(bytesOf(s.ws.sent[1].data), bytesOf(frame(101, payload)));
    to(1200);
    const wrongLength = frame(100, payload, 9);
    const truncated = frame(100, payload).slice(0, 5);
    s.ws.receive(wrongLength);
    s.ws.receive(truncated);
    assert.deepEqual(s.log.messages, [wrongLength, truncated]);
    assert.equal(s.ws.sent.length, 2);
  });

  it('control: the page sends no pings at all, every message is data, and silence is never death', () => {
    // t=0 open; t=10 ping lookalikes of every shape → data, unanswered; server silent until t=60000: nothing sent, no death
    const s = start({ heartbeat: 'control' });
    s.ws.open();
    to(10);
    const inbound = ['{"type":"ping","seq":1}', 'ping', '{"type":"pong"}', frame(100, new Uint8Array(8))];
    for (const data of inbound) s.ws.receive(data);
    to(60000);
    assert.deepEqual(s.ws.sent, []);
    assert.deepEqual(s.log.messages, inbound);
    assert.deepEqual(s.path, ['connected/open']);
  });
});

describe('lookalikes are data: delivered as messages, never answered', () => {
  it('json lookalikes: trailing text, arrays, pings over 1 KiB (chars or UTF-8 bytes), invalid JSON, JSON strings', () => {
    // t=0 open; t=10 each lookalike arrives: a message event each, nothing sent; t=20 a real ping is answered (control case)
    const s = start({ heartbeat: 'json' });
    s.ws.open();
    to(10);
    const lookalikes = [
      '{"type":"ping"} trailing',
      '[{"type":"ping"}]',
      `{"type":"ping","pad":"${'x'.repeat(1100)}"}`,
      `{"type":"ping","pad":"${'é'.repeat(600)}"}`, // 624 chars, 1224 bytes
      '{"type":"ping",}',
      '"ping"',
      '{"type":"pong"} trailing',
    ];
    for (const data of lookalikes) s.ws.receive(data);
    assert.deepEqual(s.log.messages, lookalikes);
    assert.deepEqual(s.ws.sent, []);
    to(20);
    s.ws.receive('{"type":"ping"}');
    assert.deepEqual(s.ws.sent.map((m) => m.data), ['{"type":"pong"}']);
    assert.equal(s.log.messages.length, lookalikes.length);
  });
});

describe('backoff: full jitter under min(max, initial × factor^(n−1))', () => {
  it('with Math.random = 0.999999 the delays sit just under 100, 200, 400, 800, 1000, 1000; each attempt is made at its delay, not before', () => {
    // t=0 socket 0 fails (error + close 1006) → retry 1 after ~99.9999; its socket fails at once → retry 2 after ~199.9998; ...
    draws = 0.999999;
    const s = start({ backoff: { initial: 100, factor: 2, max: 1000 } });
    for (const [i, ceiling] of [100, 200, 400, 800, 1000, 1000].entries()) {
      s.net.sockets[i].fail();
      assert.equal(s.last.state, 'reconnecting');
      assert.equal(s.last.attempt, i + 1);
      const { delay } = s.last;
      assert.ok(delay < ceiling && delay >= 0.999 * ceiling, `retry ${i + 1}: delay ${delay}, ceiling ${ceiling}`);
      const t = Date.now();
      to(t + Math.floor(delay));
      assert.equal(s.net.sockets.length, i + 1, `retry ${i + 1} made before its delay`);
      to(t + Math.ceil(delay));
      assert.equal(s.net.sockets.length, i + 2, `retry ${i + 1} not made at its delay`);
    }
  });

  it('with Math.random = 0 the delay is 0: the attempt is made at once (full jitter reaches the floor)', () => {
    // t=100 socket 0 fails → delay 0; t=100 socket 1
    draws = 0;
    const s = start();
    to(100);
    s.ws.fail();
    assert.equal(s.last.delay, 0);
    mock.timers.tick(0);
    assert.equal(s.net.sockets.length, 2);
    assert.equal(s.ws.createdAt, 100);
  });

  it("maxRetries 2: the third failure closes with why 'gave-up', and no socket is made after", () => {
    // t=0 socket 0 fails → retry 1 (t=50); fails → retry 2 (t=150); fails → closed/gave-up; t=60000 still 3 sockets
    const s = start({ backoff: { maxRetries: 2 } });
    s.ws.fail();
    to(50);
    s.ws.fail();
    to(150);
    s.ws.fail();
    assert.deepEqual(s.path, ['reconnecting/error', 'reconnecting/retry', 'reconnecting/error', 'reconnecting/retry', 'closed/gave-up']);
    assert.equal(s.last.attempt, 3);
    assert.equal(s.last.cause, 'error');
    to(60000);
    assert.equal(s.net.sockets.length, 3);
    assert.equal(s.hb.state, 'closed');
    assert.equal(s.hb.send('late'), false);
  });
});

describe('one attempt in flight', () => {
  const orders = [
    ['error', 'close'],
    ['close', 'error'],
    ['error', 'close', 'error', 'close'],
    ['close', 'error', 'close', 'error'],
  ];
  for (const order of orders) {
    it(`${order.join(', ')}: one reconnect scheduled, one new socket`, () => {
      // t=0 open; t=500 the events; one retry (attempt 1, < 100 ms); t=2000 exactly two sockets
      // (a second retry would be attempt 2, due before t=700)
      draws = 0.999999;
      const s = start();
      s.ws.autoPong = 10;
      s.ws.open();
      to(500);
      const ws = s.ws;
      for (const event of order) (event === 'error' ? ws.emitError() : ws.emitClose(1006));
      const losses = s.log.states.filter((e) => e.state === 'reconnecting' && e.why !== 'retry');
      assert.equal(losses.length, 1);
      assert.equal(losses[0].attempt, 1);
      to(2000);
      assert.equal(s.net.sockets.length, 2);
      assert.equal(s.path.filter((p) => p === 'reconnecting/retry').length, 1);
    });
  }

  it('error and close before open: one new socket', () => {
    // t=0 socket 0 connecting; t=10 error, close 1006, error; t=2000 exactly two sockets
    const s = start();
    to(10);
    s.ws.fail();
    s.net.sockets[0].emitError();
    to(2000);
    assert.equal(s.net.sockets.length, 2);
  });
});

describe('final codes', () => {
  for (const code of [1000, 1008, 4000, 4999]) {
    it(`server close ${code} after open: closed with why 'final-code', no reconnect`, () => {
      // t=0 open; t=100 server closes with the code; t=60000 one socket, closed
      const s = start();
      s.ws.autoPong = 10;
      s.ws.open();
      to(100);
      s.ws.serverClose(code, 'bye');
      assert.deepEqual(s.path, ['connected/open', 'closed/final-code']);
      assert.equal(s.last.code, code);
      assert.equal(s.last.reason, 'bye');
      to(60000);
      assert.equal(s.net.sockets.length, 1);
      assert.equal(s.hb.send('x'), false);
    });
  }

  for (const code of [1001, 1006, 1011, 3000, 5000]) {
    it(`server close ${code} after open: reconnect`, () => {
      // t=0 open; t=100 server closes with the code → reconnecting/closed; t=150 socket 1
      const s = start();
      s.ws.open();
      to(100);
      s.ws.serverClose(code);
      assert.deepEqual(s.path, ['connected/open', 'reconnecting/closed']);
      assert.equal(s.last.code, code);
      to(150);
      assert.equal(s.net.sockets.length, 2);
    });
  }

  it('custom finalCodes replace the defaults: 4001 and 4100-4199 final; 1000, 4000, 4200 reconnect', () => {
    // for each code: t=0 open, server closes, then 1000 ms for a retry
    const finalCodes = [4001, [4100, 4199]];
    for (const [code, final] of [[4001, true], [4100, true], [4199, true], [1000, false], [4000, false], [4200, false]]) {
      const s = start({ finalCodes });
      s.ws.open();
      s.ws.serverClose(code);
      assert.equal(s.last.why, final ? 'final-code' : 'closed', `code ${code}`);
      wait(1000);
      assert.equal(s.net.sockets.length, final ? 1 : 2, `code ${code}`);
      s.hb.close();
    }
  });

  it('final codes apply only to a connection that opened: 1008 before open is retried', () => {
    // t=0 socket 0 connecting; t=10 close 1008 without open → reconnecting/closed; t=60 socket 1
    const s = start();
    to(10);
    s.ws.serverClose(1008);
    assert.deepEqual(s.path, ['reconnecting/closed']);
    to(60);
    assert.equal(s.net.sockets.length, 2);
  });

  it('a final code during onConnect (opened, not yet connected) is final', () => {
    // t=0 open, the hook hangs; t=100 server closes 1008 → closed/final-code; t=60000 one socket
    const s = start({ onConnect: () => new Promise(() => {}) });
    s.ws.open();
    to(100);
    s.ws.serverClose(1008);
    assert.deepEqual(s.path, ['closed/final-code']);
    to(60000);
    assert.equal(s.net.sockets.length, 1);
  });
});

describe('close()', () => {
  it('closing, then closed when the close event comes; no pings, no reconnect after', () => {
    // t=0 open; t=100 close() → closing, ws.close(1000); t=150 close event; t=60000 one socket, no ping sent
    const s = start();
    s.ws.open();
    to(100);
    s.hb.close();
    assert.deepEqual(s.path, ['connected/open', 'closing/close']);
    assert.deepEqual(s.ws.closes, [{ code: 1000, reason: '' }]);
    to(150);
    s.ws.serverClose(1000);
    assert.deepEqual(s.path, ['connected/open', 'closing/close', 'closed/close']);
    assert.equal(s.last.code, 1000);
    s.ws.fail();
    to(60000);
    assert.equal(s.net.sockets.length, 1);
    assert.deepEqual(s.ws.sent, []);
    assert.equal(s.log.states.length, 3);
  });

  it('closed after closeTimeout (1000 ms) when the close event never comes; a later error or close is ignored', () => {
    // t=0 open; t=100 close(4000, 'bye'); t=1099 closing; t=1100 closed; t=1200 error + close 1006: nothing; t=60000 one socket
    const s = start();
    s.ws.open();
    to(100);
    s.hb.close(4000, 'bye');
    assert.deepEqual(s.ws.closes, [{ code: 4000, reason: 'bye' }]);
    to(1099);
    assert.equal(s.hb.state, 'closing');
    to(1100);
    assert.equal(s.hb.state, 'closed');
    assert.equal(s.last.code, 4000);
    to(1200);
    s.ws.fail();
    to(60000);
    assert.deepEqual(s.path, ['connected/open', 'closing/close', 'closed/close']);
    assert.equal(s.net.sockets.length, 1);
  });

  it('close() while waiting for a retry: closed at once, and no attempt later', () => {
    // t=0 open; t=100 fail → retry due at t=150; t=120 close() → closed; t=60000 one socket
    const s = start();
    s.ws.open();
    to(100);
    s.ws.fail();
    to(120);
    s.hb.close();
    assert.equal(s.last.state, 'closed');
    assert.equal(s.last.previous, 'reconnecting');
    to(60000);
    assert.equal(s.net.sockets.length, 1);
  });

  it('close() while connecting: closed at once, the attempt closed with 1000, its late open ignored', () => {
    // t=0 socket 0 connecting; t=100 close(); t=200 the socket opens anyway: no 'connected'; t=60000 one socket
    const s = start();
    to(100);
    s.hb.close();
    assert.deepEqual(s.path, ['closed/close']);
    assert.equal(s.ws.closes[0].code, 1000);
    to(200);
    s.ws.open();
    to(60000);
    assert.deepEqual(s.path, ['closed/close']);
    assert.equal(s.net.sockets.length, 1);
    assert.deepEqual(s.ws.sent, []);
  });

  it('close() during onConnect: the hook finishing later does not connect', async () => {
    // t=0 send 'queued'; open, hook pending; t=100 close() → closing; t=200 hook resolves: still closing, nothing sent
    let release;
    const s = start({ onConnect: () => new Promise((resolve) => (release = resolve)) });
    s.hb.send('queued');
    s.ws.open();
    await settle();
    to(100);
    s.hb.close();
    to(200);
    release();
    await settle();
    assert.deepEqual(s.path, ['closing/close']);
    assert.deepEqual(s.ws.sent, []);
    assert.equal(s.hb.stats.unsent, 1);
  });

  it('send after close returns false; queued messages are counted as unsent', () => {
    // t=0 socket 0 fails; t=10 send a, b (queued); t=20 close() → closed with unsent 2; send → false
    const s = start();
    s.ws.fail();
    to(10);
    assert.equal(s.hb.send('a'), true);
    assert.equal(s.hb.send('b'), true);
    to(20);
    s.hb.close();
    assert.equal(s.last.unsent, 2);
    assert.equal(s.hb.send('c'), false);
    assert.deepEqual({ unsent: s.hb.stats.unsent, buffered: s.hb.stats.buffered }, { unsent: 2, buffered: 0 });
  });

  it('a code other than 1000 or 3000-4999 throws RangeError and changes nothing', () => {
    const s = start();
    s.ws.open();
    for (const code of [1001, 1006, 2999, 5000, 3000.5]) assert.throws(() => s.hb.close(code), RangeError);
    assert.equal(s.hb.state, 'connected');
    assert.deepEqual(s.ws.closes, []);
    s.hb.close(4999);
    assert.deepEqual(s.ws.closes, [{ code: 4999, reason: '' }]);
  });

  it("close() from a 'reconnecting' listener: closed, and no attempt later", () => {
    // t=0 open; t=100 fail → reconnecting, whose listener calls close() → closed; t=60000 one socket
    const s = start();
    s.hb.addEventListener('state', (e) => e.state === 'reconnecting' && s.hb.close());
    s.ws.open();
    to(100);
    s.ws.fail();
    to(60000);
    assert.deepEqual(s.path, ['connected/open', 'reconnecting/error', 'closed/close']);
    assert.equal(s.net.sockets.length, 1);
  });

  it("close() from a listener of the retry's own 'reconnecting' event: no error, no socket made", () => {
    // t=0 socket 0 fails; t=50 retry: its event's listener calls close() → closed; t=60000 one socket
    const s = start();
    s.hb.addEventListener('state', (e) => e.why === 'retry' && s.hb.close());
    s.ws.fail();
    to(60000);
    assert.deepEqual(s.path, ['reconnecting/error', 'reconnecting/retry', 'closed/close']);
    assert.equal(s.net.sockets.length, 1);
  });
});

describe('buffer', () => {
  it('messages sent while reconnecting go out in order after onConnect resolves: hook sends, then buffered, then sends made during the hook', async () => {
    // t=0 open, hook sends auth and resolves; t=100 fail; t=110 send a, b (kept); t=150 socket 1;
    // t=160 open: hook sends auth, app sends c (kept); t=170 hook resolves → auth, a, b, c; then d goes straight out
    let release = () => {};
    const s = start({
      onConnect: async (send) => {
        send('auth');
        await new Promise((resolve) => (release = resolve));
      },
    });
    s.ws.open();
    await settle();
    release();
    await settle();
    assert.equal(s.hb.state, 'connected');
    to(100);
    s.ws.fail();
    to(110);
    assert.equal(s.hb.send('a'), true);
    assert.equal(s.hb.send('b'), true);
    assert.equal(s.hb.stats.buffered, 2);
    to(160);
    s.ws.open();
    await settle();
    assert.deepEqual(dataOf(s.ws), ['auth']);
    assert.equal(s.hb.send('c'), true);
    to(170);
    await settle();
    assert.deepEqual(dataOf(s.ws), ['auth']);
    release();
    await settle();
    assert.equal(s.hb.state, 'connected');
    assert.deepEqual(dataOf(s.ws), ['auth', 'a', 'b', 'c']);
    s.hb.send('d');
    assert.deepEqual(dataOf(s.ws), ['auth', 'a', 'b', 'c', 'd']);
    assert.equal(s.hb.stats.buffered, 0);
  });

  it('a throwing onstate handler is reported, and the buffer still flushes on connect', async () => {
    // t=0 send a (kept); onstate throws on 'connected'; open → a goes out, b goes straight out, the error is reported once
    const reported = [];
    process.setUncaughtExceptionCaptureCallback((error) => reported.push(error.message));
    try {
      const s = start();
      s.hb.send('a');
      s.hb.onstate = (e) => {
        if (e.state === 'connected') throw new Error('app bug');
      };
      s.ws.open();
      s.hb.send('b');
      await settle();
      assert.deepEqual(dataOf(s.ws), ['a', 'b']);
      assert.deepEqual(reported, ['app bug']);
    } finally {
      process.setUncaughtExceptionCaptureCallback(null);
    }
  });

  it('when the buffer is full, send returns false and stats.dropped counts it', () => {
    // buffer 2; t=0 fail; t=10 send a, b, c → true, true, false; t=50 socket 1 opens: a, b sent
    const s = start({ buffer: 2 });
    s.ws.fail();
    to(10);
    assert.deepEqual(['a', 'b', 'c'].map((m) => s.hb.send(m)), [true, true, false]);
    assert.equal(s.hb.stats.dropped, 1);
    assert.equal(s.hb.stats.buffered, 2);
    to(50);
    s.ws.open();
    assert.deepEqual(dataOf(s.ws), ['a', 'b']);
  });

  it('an onConnect hook that throws or rejects is a failed attempt: socket closed (3008), retried with backoff, buffer kept', async () => {
    // t=0 send a (kept); socket 0 opens, hook throws → close(3008), retry 1 (50 ms); t=50 socket 1 opens, hook rejects
    // → retry 2 (ceiling 200: 100 ms); t=150 socket 2 opens, hook resolves → connected, a sent there only
    let calls = 0;
    const s = start({
      onConnect: () => {
        calls += 1;
        if (calls === 1) throw new Error('no token');
        if (calls === 2) return Promise.reject(new Error('login refused'));
        return Promise.resolve();
      },
    });
    s.hb.send('a');
    s.ws.open();
    await settle();
    assert.deepEqual(s.path, ['reconnecting/hook']);
    assert.equal(s.net.sockets[0].closes[0].code, 3008);
    assert.equal(s.last.delay, 50);
    to(50);
    s.ws.open();
    await settle();
    assert.equal(s.last.why, 'hook');
    assert.equal(s.last.attempt, 2);
    assert.equal(s.last.delay, 100);
    assert.equal(s.net.sockets[1].closes[0].code, 3008);
    to(149);
    assert.equal(s.net.sockets.length, 2);
    to(150);
    s.ws.open();
    await settle();
    assert.equal(s.hb.state, 'connected');
    assert.deepEqual(s.net.sockets.map(dataOf), [[], [], ['a']]);
  });

  it('an onConnect hook that never resolves within connectTimeout is a failed attempt', async () => {
    // connectTimeout 2000; t=0 socket 0; t=500 open, hook hangs; t=1999 still trying; t=2000 close(3008), reconnecting/timeout
    const s = start({ connectTimeout: 2000, onConnect: () => new Promise(() => {}) });
    to(500);
    s.ws.open();
    await settle();
    to(1999);
    assert.deepEqual(s.path, []);
    to(2000);
    assert.deepEqual(s.path, ['reconnecting/timeout']);
    assert.equal(s.net.sockets[0].closes[0].code, 3008);
  });

  it('a hook failing with a long non-ASCII message still closes its socket (reason clipped to 123 UTF-8 bytes)', async () => {
    // t=0 open; the hook throws a 120-character Chinese message (360 bytes) → close(3008, ≤ 123 bytes), retry
    const s = start({ onConnect: () => { throw new Error('登录失败'.repeat(30)); } });
    s.ws.open();
    await settle();
    assert.equal(s.last.why, 'hook');
    assert.equal(s.ws.closes.length, 1);
    assert.equal(s.ws.closes[0].code, 3008);
    assert.ok(utf8.encode(s.ws.closes[0].reason).length <= 123);
    assert.match(s.ws.closes[0].reason, /^onConnect failed: Error: 登录失败/);
    assert.equal(s.ws.readyState, CLOSING);
  });
});

describe('stability window (stableAfter 30000)', () => {
  // Control heartbeat, so a silent server is not found dead; Math.random = 0.999999 to read the ceiling.
  for (const [upFor, attempt, ceiling] of [[30000, 1, 100], [29999, 2, 200]]) {
    it(`a connection up ${upFor} ms that drops: retry attempt ${attempt}, ceiling ${ceiling}`, () => {
      // t=0 socket 0 fails → attempt 1; t=100 socket 1 opens; up `upFor` ms, then fails
      draws = 0.999999;
      const s = start({ heartbeat: 'control', stableAfter: 30000 });
      s.ws.fail();
      to(100);
      s.ws.open();
      to(100 + upFor);
      s.ws.fail();
      assert.equal(s.last.attempt, attempt);
      assert.ok(s.last.delay < ceiling && s.last.delay >= 0.999 * ceiling);
    });
  }
});

describe('a draining server: 1012 and 1001 come back within backoff.initial, 1013 backs off', () => {
  // Control heartbeat; Math.random = 0.999999 to read the ceiling; backoff initial 100, max 1000.
  for (const code of [1012, 1001]) {
    it(`close ${code} after two failed attempts: retry attempt 1, ceiling 100`, () => {
      // t=0 socket 0 fails → attempt 1; socket 1 fails → attempt 2; socket 2 opens, closed with `code` at once.
      draws = 0.999999;
      const s = start({ heartbeat: 'control', backoff: { initial: 100, factor: 2, max: 1000 } });
      s.ws.fail();
      to(100);
      s.ws.fail();
      to(300);
      s.ws.open();
      s.ws.serverClose(code);
      assert.equal(s.last.state, 'reconnecting');
      assert.equal(s.last.attempt, 1);
      assert.ok(s.last.delay < 100 && s.last.delay >= 99.9, `delay ${s.last.delay}`);
    });
  }

  it('close 1013 after a stable connection: the count grows as after a failed attempt', () => {
    // t=0 socket 0 fails → attempt 1; t=100 socket 1 opens, up 30 000 ms (stable), closed with 1013 → attempt 2.
    draws = 0.999999;
    const s = start({ heartbeat: 'control', stableAfter: 30000, backoff: { initial: 100, factor: 2, max: 1000 } });
    s.ws.fail();
    to(100);
    s.ws.open();
    to(30100);
    s.ws.serverClose(1013);
    assert.equal(s.last.attempt, 2);
    assert.ok(s.last.delay < 200 && s.last.delay >= 199.8, `delay ${s.last.delay}`);
  });
});

describe('stability window: heard from, not only up', () => {
  it('a server that accepts and then says nothing is found dead after the window: the count still grows', () => {
    // stableAfter 3000, interval 1000, maxMissed 3, Math.random = 0.999999.
    // t=0 open (heard: the handshake), silence; t=4000 dead: up 4000 ms ≥ the window, but heard for 0 ms → attempt 1;
    // t≈4100 socket 1 opens, silent again; dead at t≈8100 → attempt 2, ceiling 200 (a reset would give 1, ceiling 100)
    draws = 0.999999;
    const s = start({ stableAfter: 3000 });
    s.ws.open();
    to(4000);
    assert.deepEqual(s.last, { ...s.last, why: 'dead', attempt: 1 });
    to(4100);
    s.ws.open();
    to(8100);
    assert.equal(s.last.why, 'dead');
    assert.equal(s.last.attempt, 2);
    assert.ok(s.last.delay < 200 && s.last.delay >= 0.999 * 200);
  });

  it('a server heard from for the whole window restarts the count when it later goes silent', () => {
    // stableAfter 3000, Math.random = 0.999999. t=0 socket 0 fails (attempt 1); t=100 socket 1
    // opens; pings every 1000 ms answered after 10 ms until the pong at t=3110 (heard 3010 ms
    // after connecting), then silence; pings 4100, 5100, 6100; t=7100 dead → attempt 1 again
    // (without the reset it would be 2)
    draws = 0.999999;
    const s = start({ stableAfter: 3000 });
    s.ws.fail();
    to(100);
    s.ws.autoPong = 10;
    s.ws.open();
    to(3110);
    s.ws.autoPong = null;
    to(7100);
    assert.deepEqual(deaths(s).map((e) => [e.t, e.attempt]), [[7100, 1]]);
  });
});

describe('what no retry can mend', () => {
  it('a WebSocket constructor that throws on the first attempt throws from new HeartbeatSocket', () => {
    class Refusing {
      constructor(url) {
        throw new SyntaxError(`bad url ${url}`);
      }
    }
    assert.throws(() => new HeartbeatSocket('not a url', { WebSocket: Refusing }), SyntaxError);
  });

  it('close() with a reason over 123 bytes of UTF-8 throws SyntaxError and changes nothing', () => {
    const s = start();
    s.ws.open();
    assert.throws(() => s.hb.close(1000, '心'.repeat(42)), SyntaxError); // 126 bytes
    assert.equal(s.hb.state, 'connected');
    s.hb.close(1000, '心'.repeat(41)); // 123 bytes
    assert.equal(s.hb.state, 'closing');
    assert.deepEqual(s.ws.closes, [{ code: 1000, reason: '心'.repeat(41) }]);
  });
});

describe('throttled timers (a background tab)', () => {
  it('a tick that fires 60 s late does not condemn a server that answered every ping it received', () => {
    // t=0 open; t=1000 ping 1, t=1010 pong; the tab is throttled: the t=2000 tick fires at t=61000
    // (mock.timers.setTime moves Date without firing timers; tick(0) then runs the overdue one):
    // t=61000 ping 2, not dead though silent for 59990 ms; pongs go on; t=70000 still connected
    const s = start();
    s.ws.autoPong = 10;
    s.ws.open();
    to(1010);
    mock.timers.setTime(61000);
    mock.timers.tick(0);
    assert.deepEqual(pingsOf(s.ws).map((p) => p.t), [1000, 61000]);
    assert.deepEqual(deaths(s), []);
    to(70000);
    assert.deepEqual(s.path, ['connected/open']);
    assert.deepEqual(pingsOf(s.ws).map((p) => p.t).slice(-3), [68000, 69000, 70000]);
  });

  it('a server that goes silent while timers are late is dead only after maxMissed pings each had a full interval', () => {
    // t=0 open; t=1000 ping 1, t=1010 pong, then silence; the t=2000 tick fires at t=61000:
    // pings at 61000, 62000, 63000 unanswered; t=63999 alive (the last had 999 ms); t=64000 dead
    const s = start();
    s.ws.autoPong = 10;
    s.ws.open();
    to(1010);
    s.ws.autoPong = null;
    mock.timers.setTime(61000);
    mock.timers.tick(0);
    to(63999);
    assert.deepEqual(pingsOf(s.ws).map((p) => p.t), [1000, 61000, 62000, 63000]);
    assert.deepEqual(deaths(s), []);
    to(64000);
    assert.equal(deaths(s).length, 1);
  });

  it('a tick late by less than an interval keeps the schedule, and its ping counts from its deadline, as on the server', () => {
    // t=0 open; t=1000 ping, t=1010 pong (t0), then silence; pings 2000, 3000; the t=4000 tick
    // fires at 4900 (ping 4); the next tick keeps its deadline t=5000, one interval after the
    // late tick's deadline: dead there, within the bound (t0 + 3000, t0 + 4000] = (4010, 5010]
    // (counting the late ping from 4900 would have waited until t=6000, past the bound)
    const s = start();
    s.ws.autoPong = 10;
    s.ws.open();
    to(1010);
    s.ws.autoPong = null;
    to(3999);
    mock.timers.setTime(4900);
    mock.timers.tick(0);
    assert.deepEqual(pingsOf(s.ws).map((p) => p.t), [1000, 2000, 3000, 4900]);
    to(4999);
    assert.deepEqual(deaths(s), []);
    to(5000);
    assert.deepEqual(deaths(s).map((e) => e.t), [5000]);
    assert.deepEqual(pingsOf(s.ws).map((p) => p.t), [1000, 2000, 3000, 4900]);
  });
});

describe('setInterval(ms)', () => {
  it('a ping goes out at once carrying ms, and the next ticks are ms apart', () => {
    // t=0 open; t=1000 ping (1000), pong at 1010; t=1500 setInterval(5000) → ping (5000); then 6500, 11500
    const s = start();
    s.ws.autoPong = 10;
    s.ws.open();
    to(1500);
    s.hb.setInterval(5000);
    assert.equal(s.hb.interval, 5000);
    to(12000);
    const pings = pingsOf(s.ws);
    assert.deepEqual(pings.map((p) => p.t), [1000, 1500, 6500, 11500]);
    assert.deepEqual(pings.map((p) => p.interval), [1000, 5000, 5000, 5000]);
  });

  it('the death bound scales to the new interval', () => {
    // t=0 open; t=1000 ping, pong at t=1010 (last heard); t=1500 setInterval(5000), the server goes silent;
    // pings 1500, 6500, 11500; alive at 16010 (last heard + 3 × 5000); dead by 21010 (+ 4 × 5000)
    const s = start();
    s.ws.autoPong = 10;
    s.ws.open();
    to(1010);
    s.ws.autoPong = null;
    to(1500);
    s.hb.setInterval(5000);
    to(16010);
    assert.deepEqual(deaths(s), []);
    to(21010);
    assert.equal(deaths(s).length, 1);
    assert.ok(deaths(s)[0].t > 16010);
  });

  it('before open it sends nothing; the first ping after open carries it', () => {
    // t=0 socket 0 connecting; t=10 setInterval(2000); t=20 open; t=2020 first ping with interval 2000
    const s = start();
    to(10);
    s.hb.setInterval(2000);
    to(20);
    s.ws.open();
    to(2020);
    assert.deepEqual(pingsOf(s.ws).map((p) => [p.t, p.interval]), [[2020, 2000]]);
  });

  it('rejects 0, negative, NaN and over 24 h with RangeError', () => {
    const s = start();
    for (const ms of [0, -1, NaN, 24 * 3600 * 1000 + 1]) assert.throws(() => s.hb.setInterval(ms), RangeError);
    assert.equal(s.hb.interval, 1000);
  });
});

describe('unconfirmed: messages sent since the server was last heard', () => {
  it('are counted in the reconnecting event and in stats.unconfirmed', () => {
    // t=0 open; t=100 send a, b, c; silence → dead at t=4000 with unconfirmed 3
    const s = start();
    s.ws.open();
    to(100);
    ['a', 'b', 'c'].forEach((m) => s.hb.send(m));
    to(4000);
    assert.equal(deaths(s)[0].unconfirmed, 3);
    assert.equal(s.hb.stats.unconfirmed, 3);
  });

  it('a data message from the server resets the count', () => {
    // t=100 send a, b; t=150 data; t=160 send c; t=200 fail → unconfirmed 1
    const s = start();
    s.ws.open();
    to(100);
    s.hb.send('a');
    s.hb.send('b');
    to(150);
    s.ws.receive('ack');
    to(160);
    s.hb.send('c');
    to(200);
    s.ws.fail();
    assert.equal(s.last.unconfirmed, 1);
    assert.equal(s.hb.stats.unconfirmed, 1);
  });

  it('a matched pong resets the count', () => {
    // t=100 send a; t=1000 ping S; t=1010 pong S → 0; t=1100 send c; t=1200 fail → unconfirmed 1
    const s = start();
    s.ws.open();
    to(100);
    s.hb.send('a');
    to(1010);
    s.ws.receive(`{"type":"pong","seq":${pingsOf(s.ws)[0].seq}}`);
    to(1100);
    s.hb.send('c');
    to(1200);
    s.ws.fail();
    assert.equal(s.last.unconfirmed, 1);
  });

  it('a pong that answers no ping of ours, or a server ping, does not reset it', () => {
    // t=100 send a, b; t=1000 ping S; t=1010 pong S+7 (hidden, not ours); t=1020 server ping (answered); t=1100 fail → 2
    const s = start();
    s.ws.open();
    to(100);
    s.hb.send('a');
    s.hb.send('b');
    to(1010);
    s.ws.receive(`{"type":"pong","seq":${pingsOf(s.ws)[0].seq + 7}}`);
    to(1020);
    s.ws.receive('{"type":"ping","seq":1}');
    assert.equal(s.ws.sent.at(-1).data, '{"type":"pong","seq":1}');
    to(1100);
    s.ws.fail();
    assert.equal(s.last.unconfirmed, 2);
    assert.deepEqual(s.log.messages, []);
    assert.deepEqual(s.log.rtts, []);
  });
});

describe('connect timeout', () => {
  it('a socket that never opens within connectTimeout is closed (3008) and retried; its late open is ignored', () => {
    // connectTimeout 2000; t=0 socket 0; t=1999 waiting; t=2000 close(3008), reconnecting/timeout; t=2050 socket 1;
    // t=2060 socket 0 opens late: nothing happens
    const s = start({ connectTimeout: 2000 });
    to(1999);
    assert.deepEqual(s.path, []);
    assert.deepEqual(s.ws.closes, []);
    to(2000);
    assert.deepEqual(s.path, ['reconnecting/timeout']);
    assert.equal(s.last.code, 3008);
    assert.equal(s.net.sockets[0].closes[0].code, 3008);
    to(2050);
    assert.equal(s.net.sockets.length, 2);
    to(2060);
    s.net.sockets[0].open();
    assert.deepEqual(s.path, ['reconnecting/timeout', 'reconnecting/retry']);
  });
});

describe('seed parity', () => {
  it('seed 001 heartCheck: one reconnect when onclose and onerror both fire', () => {
    // t=0 open (answering); t=5000 the network drops: error, close 1006; t=7000 exactly two sockets
    const s = start();
    s.ws.autoPong = 10;
    s.ws.open();
    to(5000);
    s.ws.fail();
    to(7000);
    assert.equal(s.net.sockets.length, 2);
    assert.deepEqual(s.path, ['connected/open', 'reconnecting/error', 'reconnecting/retry']);
  });

  it("seed 002: {type:'ping'} answered, bounded reconnects (maxRetries)", () => {
    // t=0 open; t=10 server {"type":"ping"} → {"type":"pong"}; t=100 drop; 3 retries fail; the 4th failure: gave up
    const s = start({ backoff: { maxRetries: 3 } });
    s.ws.open();
    to(10);
    s.ws.receive('{"type":"ping"}');
    assert.deepEqual(s.ws.sent.map((m) => m.data), ['{"type":"pong"}']);
    to(100);
    for (let i = 0; i < 4; i += 1) {
      s.ws.fail();
      wait(1000);
    }
    assert.equal(s.last.why, 'gave-up');
    assert.equal(s.net.sockets.length, 4);
  });

  it('seed 003 IMClient: binary commands 100/101, read deadline of three intervals, ten retries, no reconnect after logout or kick', () => {
    // t=0 open; t=10 server ping (100) answered with 101; silent after: alive at 3010, dead by 4010;
    // then 10 retries that fail: the 11th failure gives up. Logout (close()) and kick (4001) end it for good.
    const s = start({ heartbeat: 'binary', maxMissed: 3, backoff: { maxRetries: 10 } });
    s.ws.open();
    to(10);
    s.ws.receive(frame(100, new Uint8Array(8)));
    assert.equal(new DataView(s.ws.sent[0].data).getUint16(0), 101);
    to(3010);
    assert.deepEqual(deaths(s), []);
    assert.deepEqual(s.ws.sent.slice(1).map((m) => new DataView(m.data).getUint16(0)), [100, 100, 100]);
    to(4010);
    assert.equal(deaths(s).length, 1);
    for (let i = 1; i <= 10; i += 1) {
      wait(1000);
      assert.equal(s.net.sockets.length, i + 1);
      s.ws.fail();
    }
    assert.equal(s.last.why, 'gave-up');
    assert.equal(s.last.attempt, 11);

    const logout = start({ heartbeat: 'binary' });
    logout.ws.open();
    logout.hb.close();
    logout.ws.serverClose(1000);
    const kick = start({ heartbeat: 'binary' });
    kick.ws.open();
    kick.ws.serverClose(4001, 'kicked');
    wait(60000);
    assert.deepEqual([logout.net.sockets.length, logout.hb.state], [1, 'closed']);
    assert.deepEqual([kick.net.sockets.length, kick.last.why], [1, 'final-code']);
  });

  it('seed 004: interval carried in the ping changes when the app goes to the background', () => {
    // interval 10000; t=0 open; t=10000 ping (10000); t=15000 hidden → setInterval(60000): ping (60000), next at 75000;
    // t=80000 visible → setInterval(10000): ping (10000)
    const s = start({ interval: 10000 });
    s.ws.autoPong = 10;
    s.ws.open();
    to(15000);
    s.hb.setInterval(60000);
    to(80000);
    s.hb.setInterval(10000);
    assert.deepEqual(pingsOf(s.ws).map((p) => [p.t, p.interval]), [[10000, 10000], [15000, 60000], [75000, 60000], [80000, 10000]]);
  });
});
