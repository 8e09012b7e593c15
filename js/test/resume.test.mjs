// Tests of HeartbeatSocket's `resume` option, the session protocol of PROTOCOL.md, on a paused
// clock: `node --test js/test/`.
//
// The clock, the dice and the fake WebSocket are those of heartbeat-socket.test.mjs (`to(t)`
// goes to absolute time t, Math.random is 0.5 unless a test sets `draws`). On top, a fake server
// side written from PROTOCOL.md alone: it reads the page's hello, answers a welcome with a fresh
// token (accepting the two tokens section 5 allows), counts and unescapes the page's data,
// acknowledges, and sends data of its own, escaped by its own reading of section 1's table.
// No dependencies.

import { describe, it, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { HeartbeatSocket } from '../ws-heartbeat.js';

const [CONNECTING, OPEN, CLOSING, CLOSED] = [0, 1, 2, 3];
const DLE = '\u0010';
const utf8 = new TextEncoder();

// --- the clock and the dice ---------------------------------------------------------------

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

/** Moves the paused clock to absolute time t, a millisecond at a time (see the other file). */
function to(t) {
  assert.ok(t >= Date.now(), `to(${t}): the clock is already at ${Date.now()}`);
  while (Date.now() < t) mock.timers.tick(Math.min(1, t - Date.now()));
  mock.timers.tick(0);
}
const wait = (ms) => to(Date.now() + ms);

// --- the fake network ---------------------------------------------------------------------

function fakeNet() {
  const sockets = [];
  class FakeWebSocket extends EventTarget {
    constructor(url, protocols) {
      super();
      Object.assign(this, { url, protocols, readyState: CONNECTING, binaryType: 'blob' });
      this.sent = []; // { t, data } for every send while OPEN
      this.closes = []; // { code, reason } for every close() call
      sockets.push(this);
    }
    send(data) {
      if (this.readyState === CONNECTING) throw new DOMException('still connecting', 'InvalidStateError');
      if (this.readyState === OPEN) this.sent.push({ t: Date.now(), data });
    }
    close(code, reason = '') {
      // A page may send 1000 or 3000-4999 only: 1002 and 1011 throw, as in a browser.
      if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
        throw new DOMException(`close code ${code}`, 'InvalidAccessError');
      }
      this.closes.push({ code, reason });
      if (this.readyState < CLOSING) this.readyState = CLOSING;
    }
    open() {
      this.readyState = OPEN;
      this.dispatchEvent(new Event('open'));
    }
    receive(data) {
      this.dispatchEvent(Object.assign(new Event('message'), { data }));
    }
    serverClose(code, reason = '') {
      this.readyState = CLOSED;
      this.dispatchEvent(Object.assign(new Event('close'), { code, reason, wasClean: code !== 1006 }));
    }
    /** The connection breaks the way a browser reports it: error, then close 1006. */
    fail() {
      this.readyState = CLOSED;
      this.dispatchEvent(new Event('error'));
      this.dispatchEvent(Object.assign(new Event('close'), { code: 1006, reason: '', wasClean: false }));
    }
  }
  return { WebSocket: FakeWebSocket, sockets };
}

/** A binary command message: BE u16 command, BE u32 length (declared), payload. */
function frame(command, payload, declared = payload.length) {
  const bytes = new Uint8Array(6 + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, command);
  view.setUint32(2, declared);
  bytes.set(payload, 6);
  return bytes.buffer;
}
const bin = (...bytes) => Uint8Array.from(bytes).buffer;
/** Comparable form of a message: text as is, binary as 'bin:1,2,3'. */
const show = (data) => (typeof data === 'string' ? data : `bin:${[...new Uint8Array(data)]}`);

// --- the server's side, from PROTOCOL.md ----------------------------------------------------

/** Is this frame of the page one of the heartbeat's own (the server's classifier, by the table)? */
function isHeartbeat(kind, data) {
  if (kind === 'text') return data === 'ping' || data === 'pong';
  if (kind === 'json') {
    if (typeof data !== 'string' || utf8.encode(data).length > 1024) return false;
    try {
      const message = JSON.parse(data);
      return message?.type === 'ping' || message?.type === 'pong';
    } catch {
      return false;
    }
  }
  if (kind !== 'binary' || typeof data === 'string' || data.byteLength < 6 || data.byteLength > 1030) return false;
  const view = new DataView(data);
  return view.getUint32(2) === data.byteLength - 6 && [100, 101].includes(view.getUint16(0));
}

/** Section 1: two DLEs in front of data that begins with one, or of a lookalike. */
function escapeFor(kind, data) {
  const text = typeof data === 'string';
  const bytes = text ? null : new Uint8Array(data);
  let escape = text ? data.charCodeAt(0) === 0x10 : bytes[0] === 0x10;
  if (kind === 'json' && text) escape ||= utf8.encode(data).length <= 1024 && data.trimStart()[0] === '{' && /ping|pong|\\/.test(data);
  if (kind === 'text') escape ||= data === 'ping' || data === 'pong';
  if (kind === 'binary') escape ||= isHeartbeat('binary', data);
  if (!escape) return data;
  return text ? DLE + DLE + data : Uint8Array.from([0x10, 0x10, ...bytes]).buffer;
}

function unescape(data) {
  if (typeof data === 'string') return data.startsWith(DLE + DLE) ? data.slice(2) : data;
  const bytes = new Uint8Array(data);
  return bytes[0] === 0x10 && bytes[1] === 0x10 ? data.slice(2) : data;
}


/** One session's server side, over any number of the page's sockets. */
class Server {
  static issued = 0;

  constructor({ heartbeat = 'json', buffer = 1 << 20, window = 60000 } = {}) {
    Object.assign(this, { heartbeat, buffer, window });
    this.sid = null;
    this.secret = null;
    this.proven = null; // section 5: the credential the page last proved it holds...
    this.newest = null; // ...and the newest token issued: the two accepted
    this.got = []; // the page's data messages, as the server's handler got them
    this.acks = []; // received counts the page told (hello resume, ack)
    this.out = []; // the server's own data messages, by number
    this.cursors = new Map(); // socket → index of its next unread frame
    this.finishes = []; // the received counts of the page's finish answers (section 8)
  }

  /** The hello the page sent first on this socket, as words. */
  helloOf(ws) {
    const first = ws.sent[0]?.data;
    assert.match(String(first), /^\u0010hello /);
    return first.slice(1).split(' ');
  }

  /**
   * Checks the hello as the server would, then answers a welcome with a new token (unless
   * `lost`: the token is issued, the welcome never arrives) and sends again its own data the
   * page lacks. `received` is the server's received count: by default, what it read.
   */
  welcome(ws, { lost = false, received = this.got.length } = {}) {
    const [, version, kind, sid, credential, count] = this.helloOf(ws);
    assert.equal(version, '1');
    let pageHas = 0;
    if (kind === 'new') {
      if (this.sid !== null) assert.deepEqual([sid, credential], [this.sid, this.secret], 'a repeat of the start');
      Object.assign(this, { sid, secret: credential, proven: credential });
    } else {
      assert.equal(kind, 'resume');
      assert.equal(sid, this.sid);
      assert.ok([this.proven, this.newest].includes(credential), `token ${credential} refused`);
      this.proven = credential;
      pageHas = Number(count);
      this.acks.push(pageHas);
    }
    Server.issued += 1;
    const token = `${Server.issued.toString(16).padStart(8, '0')}${'5eed'.repeat(6)}`; // distinct, 32 hex digits
    this.newest = token;
    this.cursors.set(ws, 1);
    if (!lost) {
      ws.receive(`${DLE}welcome 1 ${token} ${received} ${this.buffer} ${this.window}`);
      for (const data of this.out.slice(pageHas)) ws.receive(data);
    }
    return token;
  }

  /** Reads the page's frames not read yet (at most `limit` data messages): data counted, acks noted. */
  read(ws, limit = Infinity) {
    const fresh = [];
    let i = this.cursors.get(ws);
    assert.ok(i !== undefined, 'read before the welcome');
    for (; i < ws.sent.length && fresh.length < limit; i += 1) {
      const data = ws.sent[i].data;
      if (isHeartbeat(this.heartbeat, data)) continue;
      if (typeof data === 'string' && data[0] === DLE && data[1] !== DLE) {
        const [name, n] = data.slice(1).split(' ');
        assert.ok(name === 'ack' || name === 'finish', `only acks and a finish after the hello: ${data}`);
        if (name === 'finish') this.finishes.push(Number(n));
        this.acks.push(Number(n));
        continue;
      }
      fresh.push(unescape(data));
    }
    this.cursors.set(ws, i);
    this.got.push(...fresh);
    return fresh.map(show);
  }

  /** Sends a data message of the server's, escaped. */
  push(ws, data) {
    const escaped = escapeFor(this.heartbeat, data);
    this.out.push(escaped);
    ws.receive(escaped);
  }

  /** Acknowledges what the server read. */
  ack(ws, n = this.got.length) {
    ws.receive(`${DLE}ack ${n}`);
  }
}

// --- the socket under test ----------------------------------------------------------------

function start(options = {}, serverOptions = {}) {
  const net = fakeNet();
  const { url = 'ws://example.test/ws', ...rest } = options;
  const hb = new HeartbeatSocket(url, {
    WebSocket: net.WebSocket,
    interval: 1000,
    jitter: false,
    resume: true,
    ...rest,
    backoff: { initial: 100, factor: 2, max: 1000, ...rest.backoff },
  });
  const log = { states: [], messages: [], lost: [] };
  hb.addEventListener('state', (e) => log.states.push({ t: Date.now(), ...pick(e, STATE_KEYS) }));
  hb.addEventListener('message', (e) => log.messages.push(show(e.data)));
  hb.addEventListener('sessionlost', (e) => log.lost.push({ t: Date.now(), ...pick(e, ['cause', 'unconfirmed', 'code', 'reason']) }));
  log.fresh = [];
  hb.addEventListener('sessionnew', (e) => log.fresh.push({ t: Date.now(), ...pick(e, ['code', 'kept']) }));
  const server = new Server({ heartbeat: rest.heartbeat ?? 'json', ...serverOptions });
  return {
    hb,
    net,
    log,
    server,
    get ws() {
      return net.sockets.at(-1);
    },
    get path() {
      return log.states.map((e) => `${e.state}/${e.why}`);
    },
    get last() {
      return log.states.at(-1);
    },
    /** Opens the current socket and welcomes it. */
    up() {
      this.ws.open();
      return server.welcome(this.ws);
    },
    /** Moves the clock on until the next socket is made (a retry). */
    next() {
      const n = net.sockets.length;
      const until = Date.now() + 60000;
      while (net.sockets.length === n) {
        assert.ok(Date.now() < until, `no new socket in 60 s (${hb.state})`);
        wait(1);
      }
      return this.ws;
    },
  };
}

const STATE_KEYS = ['state', 'previous', 'why', 'code', 'reason', 'attempt', 'delay', 'unconfirmed', 'unsent', 'cause'];
const pick = (e, keys) => Object.fromEntries(keys.filter((k) => e[k] !== undefined).map((k) => [k, e[k]]));

const framesOf = (ws) => ws.sent.map((m) => show(m.data));
/** The page's data frames on a socket as sent (escapes kept): no hello, ack or heartbeat. */
const dataOf = (ws, kind = 'json') =>
  ws.sent.map((m) => m.data).filter((d) => !isHeartbeat(kind, d) && !(typeof d === 'string' && d[0] === DLE && d[1] !== DLE)).map(show);
const acksOf = (ws) => ws.sent.filter((m) => typeof m.data === 'string' && m.data.startsWith(`${DLE}ack `)).map((m) => [m.t, m.data.slice(5)]);
const HELLO_NEW = /^\u0010hello 1 new ([0-9a-f]{32}) ([0-9a-f]{32}) (\d+)$/;
const HELLO_RESUME = /^\u0010hello 1 resume ([0-9a-f]{32}) ([0-9a-f]{32}) (\d+)$/;

// --- the tests ----------------------------------------------------------------------------

describe('the handshake', () => {
  it('hello new is the first frame; nothing but the heartbeat goes out until the welcome', () => {
    // resume.buffer 4096; t=0 socket 0 opens → hello new; t=10 send a, b: kept, not sent;
    // t=1000 the heartbeat's ping (it runs from open); t=1100 welcome → a, b, connected/open; t=1200 c straight out
    const s = start({ resume: { buffer: 4096 } });
    s.ws.open();
    const [hello] = framesOf(s.ws);
    const [, sid, secret, buffer] = hello.match(HELLO_NEW);
    assert.notEqual(sid, secret);
    assert.equal(buffer, '4096');
    to(10);
    assert.deepEqual([s.hb.send('a'), s.hb.send('b')], [true, true]);
    to(1000);
    assert.equal(s.ws.sent.length, 2);
    assert.match(framesOf(s.ws)[1], /^\{"type":"ping","seq":\d+,"interval":1000\}$/);
    assert.deepEqual(s.path, []);
    assert.equal(s.hb.state, 'connecting');
    to(1100);
    s.server.welcome(s.ws);
    assert.deepEqual(s.path, ['connected/open']);
    assert.deepEqual(s.server.read(s.ws), ['a', 'b']);
    to(1200);
    s.hb.send('c');
    assert.deepEqual(s.server.read(s.ws), ['c']);
    assert.equal(s.ws.sent.length, 5);
    assert.equal(s.hb.stats.resumes, 0);
  });

  it('hello resume carries the latest token and the received count; connected/resumed; same session id', () => {
    // t=0 socket 0 up (token T1); t=10 the server sends x, y; t=20 socket 0 fails; t=70 socket 1 opens →
    // hello resume <sid> T1 2, nothing else; welcome → connected/resumed, stats.resumes 1; t=1070 its first
    // tick: a ping, no ack (the hello told the count)
    const s = start();
    const first = s.up();
    const sid = framesOf(s.ws)[0].match(HELLO_NEW)[1];
    to(10);
    s.server.push(s.ws, 'x');
    s.server.push(s.ws, 'y');
    to(20);
    s.ws.fail();
    to(70);
    assert.equal(s.net.sockets.length, 2);
    s.ws.open();
    assert.deepEqual(framesOf(s.ws), [`${DLE}hello 1 resume ${sid} ${first} 2`]);
    s.server.welcome(s.ws);
    assert.deepEqual(s.path, ['connected/open', 'reconnecting/error', 'reconnecting/retry', 'connected/resumed']);
    assert.equal(s.hb.stats.resumes, 1);
    assert.deepEqual(s.log.messages, ['x', 'y']);
    to(1070);
    assert.equal(s.ws.sent.length, 2);
    assert.match(framesOf(s.ws)[1], /"type":"ping"/);
  });

  it('a first welcome lost: hello new again, with the same session id and secret', () => {
    // t=0 socket 0 opens, hello new; the welcome is lost, the socket fails at t=10; t=60 socket 1: the same hello new
    const s = start();
    s.ws.open();
    s.server.welcome(s.ws, { lost: true });
    to(10);
    s.ws.fail();
    s.next().open();
    assert.deepEqual(framesOf(s.net.sockets[1]), framesOf(s.net.sockets[0]));
    s.server.welcome(s.ws);
    assert.deepEqual(s.path.at(-1), 'connected/open');
    assert.equal(s.hb.stats.resumes, 0);
  });

  it('the connect timeout covers open and welcome; a socket that sent its hello is not closed by the page', () => {
    // connectTimeout 2000; t=0 socket 0; t=500 open, hello; no welcome; t=1999 waiting; t=2000 reconnecting/timeout,
    // no Close on socket 0 (any Close would end the session on the server); t=2050 socket 1: hello new again
    const s = start({ connectTimeout: 2000 });
    to(500);
    s.ws.open();
    to(1999);
    assert.deepEqual(s.path, []);
    to(2000);
    assert.deepEqual(s.path, ['reconnecting/timeout']);
    assert.equal(s.last.code, undefined);
    assert.deepEqual(s.net.sockets[0].closes, []);
    to(2050);
    s.ws.open();
    assert.match(framesOf(s.ws)[0], HELLO_NEW);
  });

  it('routeParam: every socket dials the URL with <routeParam>=<sid> added, its own query kept as it was', () => {
    // t=0 socket 0 up; t=10 fails; t=60 socket 1: the same URL
    const s = start({ url: 'ws://example.test/ws?room=a%20b&x=1', resume: { routeParam: 'ws_session' } });
    s.up();
    const sid = framesOf(s.ws)[0].match(HELLO_NEW)[1];
    to(10);
    s.ws.fail();
    s.next();
    assert.deepEqual(s.net.sockets.map((ws) => ws.url), Array(2).fill(`ws://example.test/ws?room=a%20b&x=1&ws_session=${sid}`));

    const bare = start({ url: 'ws://example.test/ws', resume: { routeParam: 'k' } });
    bare.ws.open();
    assert.equal(bare.ws.url, `ws://example.test/ws?k=${framesOf(bare.ws)[0].match(HELLO_NEW)[1]}`);
    const plain = start({ url: 'ws://example.test/ws?a=1' });
    assert.equal(plain.ws.url, 'ws://example.test/ws?a=1');
  });

  it('every session has its own id and secret', () => {
    const [a, b] = [start(), start()].map((s) => (s.ws.open(), framesOf(s.ws)[0].match(HELLO_NEW).slice(1, 3)));
    assert.equal(new Set([...a, ...b]).size, 4);
  });
});

describe('numbering, the outbox and replay', () => {
  it('after a resume, the page sends again exactly what the welcome does not cover, in order, before anything new', () => {
    // t=0 socket 0 up; t=10 send 1..5, the server reads 3 of them; t=20 socket 0 fails; t=30 send 6 (kept);
    // t=70 socket 1 opens: hello resume only; send 7 (kept); welcome with received 3 → 4, 5, 6, 7, then L (sent by
    // the 'connected' listener); the server has 1..7 and L, each once; its ack → nothing kept
    const s = start();
    s.hb.addEventListener('state', (e) => e.why === 'resumed' && s.hb.send('L'));
    s.up();
    to(10);
    for (const m of ['1', '2', '3', '4', '5']) s.hb.send(m);
    assert.deepEqual(s.server.read(s.ws, 3), ['1', '2', '3']);
    to(20);
    s.ws.fail();
    to(30);
    s.hb.send('6');
    assert.deepEqual([s.hb.stats.kept, s.hb.stats.buffered], [6, 6]);
    to(70);
    s.ws.open();
    s.hb.send('7');
    assert.equal(s.ws.sent.length, 1);
    s.server.welcome(s.ws);
    assert.deepEqual(dataOf(s.ws), ['4', '5', '6', '7', 'L']);
    assert.deepEqual(s.server.read(s.ws), ['4', '5', '6', '7', 'L']);
    assert.deepEqual(s.server.got.map(show), ['1', '2', '3', '4', '5', '6', '7', 'L']);
    assert.deepEqual([s.hb.stats.kept, s.hb.stats.buffered], [5, 0]);
    s.server.ack(s.ws);
    assert.deepEqual([s.hb.stats.kept, s.hb.stats.keptBytes], [0, 0]);
  });

  it('acks let kept messages go: after ack 2 of 3, a resume welcomed at 2 sends only the third', () => {
    // t=0 up; t=10 send a, b, c (the server reads all three, acks 2); t=20 fails; t=70 socket 1: welcome received 2 → c
    const s = start();
    s.up();
    to(10);
    ['a', 'b', 'c'].forEach((m) => s.hb.send(m));
    s.server.read(s.ws);
    s.server.ack(s.ws, 2);
    assert.equal(s.hb.stats.kept, 1);
    to(20);
    s.ws.fail();
    s.next().open();
    s.server.welcome(s.ws, { received: 2 });
    assert.deepEqual(dataOf(s.ws), ['c']);
  });

  it('the server\'s data is counted across sockets: the hello tells its count and the server sends the rest again', () => {
    // t=0 up; the server sends m1, m2, m3; the page's socket drops m3 (it fails first: the test delivers only m1, m2);
    // t=20 fails; t=70 hello resume … 2; the server sends m3 again: the page has m1, m2, m3 once each
    const s = start();
    s.up();
    s.server.push(s.ws, 'm1');
    s.server.push(s.ws, 'm2');
    s.server.out.push('m3'); // sent, lost on the way
    to(20);
    s.ws.fail();
    s.next().open();
    assert.match(framesOf(s.ws)[0], / 2$/);
    s.server.welcome(s.ws);
    assert.deepEqual(s.log.messages, ['m1', 'm2', 'm3']);
  });

  it('the outbox holds resume.buffer bytes of weight (bytes + 8 each): a send past it returns false and is not taken; an ack makes room', () => {
    // resume.buffer 44; t=0 up; 'aaaa' ×3 weigh 36, '' weighs 8: 44 exactly, taken; 'dddd' (12) refused, dropped 1,
    // not sent; the server acks 2 → 20 kept, 'dddd' taken and sent; the same bound while disconnected
    const s = start({ resume: { buffer: 44 } });
    s.up();
    assert.deepEqual(['aaaa', 'bbbb', 'cccc', ''].map((m) => s.hb.send(m)), [true, true, true, true]);
    assert.equal(s.hb.stats.keptBytes, 44);
    assert.equal(s.hb.send('dddd'), false);
    assert.equal(s.hb.stats.dropped, 1);
    assert.deepEqual(s.server.read(s.ws), ['aaaa', 'bbbb', 'cccc', '']);
    s.server.ack(s.ws, 2);
    assert.equal(s.hb.stats.keptBytes, 20);
    assert.equal(s.hb.send('dddd'), true);
    assert.deepEqual(s.server.read(s.ws), ['dddd']);
    s.ws.fail();
    assert.equal(s.hb.send('e'), true); // 32 + 9 = 41
    assert.equal(s.hb.send('ff'), false); // 41 + 10 = 51
    assert.deepEqual([s.hb.stats.kept, s.hb.stats.keptBytes, s.hb.stats.dropped], [4, 41, 2]);
  });

  it('weights are exact: UTF-8 bytes of text (surrogate pairs 4, a lone surrogate 3), bytes of binary, plus 8', () => {
    // before any socket opens, each send is kept; keptBytes is the sum, checked against TextEncoder
    const s = start();
    const texts = ['', 'a', 'é', '€', '😀', 'a😀é€', '\ud800', '\udc00x', 'x\ud800', '\u0010'];
    for (const t of texts) s.hb.send(t);
    const binaries = [new Uint8Array(5), new Uint8Array(10).subarray(2, 5), new ArrayBuffer(7), new DataView(new ArrayBuffer(9), 1, 4)];
    for (const b of binaries) s.hb.send(b);
    const expected = texts.reduce((n, t) => n + utf8.encode(t).length + 8, 0) + (5 + 3 + 7 + 4) + 8 * 4;
    assert.equal(s.hb.stats.keptBytes, expected);
    assert.equal(s.hb.stats.kept, texts.length + binaries.length);
  });

  it('binary is kept as it was sent: a page that reuses its buffer does not change what is sent again', () => {
    // t=0 up; send bytes [1,2,3] then overwrite the page's buffer; t=10 fails; t=60 resume at 0 → [1,2,3] again
    const s = start();
    s.up();
    const buffer = Uint8Array.from([1, 2, 3]);
    s.hb.send(buffer);
    buffer.fill(9);
    to(10);
    s.ws.fail();
    s.next().open();
    s.server.welcome(s.ws, { received: 0 });
    assert.deepEqual(dataOf(s.ws), ['bin:1,2,3']);
  });
});

describe('acknowledgements (section 2)', () => {
  it('at each tick that sends a ping, if data arrived since the last ack', () => {
    // t=0 up; t=100 the server sends x, y; t=999 no ack; t=1000 ping, then ack 2; t=2000 ping only (nothing new);
    // t=2500 z; t=3000 ping, ack 3
    const s = start();
    s.up();
    to(100);
    s.server.push(s.ws, 'x');
    s.server.push(s.ws, 'y');
    to(999);
    assert.deepEqual(acksOf(s.ws), []);
    to(1000);
    assert.deepEqual(acksOf(s.ws), [[1000, '2']]);
    assert.match(framesOf(s.ws).at(-2), /"type":"ping"/);
    to(2500);
    assert.deepEqual(acksOf(s.ws), [[1000, '2']]);
    s.server.push(s.ws, 'z');
    to(3000);
    assert.deepEqual(acksOf(s.ws), [[1000, '2'], [3000, '3']]);
  });

  it('at once when the data since the last ack weighs a quarter of the server\'s buffer (payload + 8 a message)', () => {
    // welcome buffer 400 (a quarter: 100 bytes); t=0 up; t=10 91 bytes (weighs 99): no ack; t=20 '' (weighs 8): ack 2
    // at once (107); t=30 DLE + 90 bytes, sent escaped (the escape is not payload: 91 bytes, weighs 99): none;
    // t=40 'é' (2 bytes, weighs 10): ack 4 (109); t=1000 tick: nothing since, no ack
    const s = start({}, { buffer: 400 });
    s.up();
    to(10);
    s.server.push(s.ws, 'x'.repeat(91));
    assert.deepEqual(acksOf(s.ws), []);
    to(20);
    s.server.push(s.ws, '');
    assert.deepEqual(acksOf(s.ws), [[20, '2']]);
    to(30);
    s.server.push(s.ws, `${DLE}${'x'.repeat(90)}`);
    assert.deepEqual(acksOf(s.ws), [[20, '2']]);
    to(40);
    s.server.push(s.ws, 'é');
    assert.deepEqual(acksOf(s.ws), [[20, '2'], [40, '4']]);
    to(1000);
    assert.deepEqual(acksOf(s.ws), [[20, '2'], [40, '4']]);
  });

  it('the quarter is counted in whole bytes, at least one: a buffer of 403 acks at 100 bytes, one of 3 at every message, empty ones too', () => {
    // welcome buffer 403; t=0 up; 91 bytes (99): none; 1 byte (9): ack 2. Another session, buffer 3: '' (weighs 8):
    // ack 1; 'x': ack 2
    const s = start({}, { buffer: 403 });
    s.up();
    s.server.push(s.ws, 'x'.repeat(91));
    s.server.push(s.ws, 'x');
    assert.deepEqual(acksOf(s.ws), [[0, '2']]);
    const tiny = start({}, { buffer: 3 });
    tiny.up();
    tiny.server.push(tiny.ws, '');
    assert.deepEqual(acksOf(tiny.ws), [[0, '1']]);
    tiny.server.push(tiny.ws, 'x');
    assert.deepEqual(acksOf(tiny.ws), [[0, '1'], [0, '2']]);
  });

  it('with the control heartbeat, ticks send no ping but still the acks due', () => {
    // heartbeat control; t=0 up; t=500 the server sends x; t=1000 tick: ack 1, no ping; t=2000 nothing
    const s = start({ heartbeat: 'control' });
    s.up();
    to(500);
    s.server.push(s.ws, 'x');
    to(2000);
    assert.deepEqual(framesOf(s.ws).slice(1), [`${DLE}ack 1`]);
    assert.equal(s.hb.stats.pings, 0);
  });
});

describe('escaping (section 1): every data message round-trips exactly', () => {
  const pad = 'x'.repeat(1100);
  const json = [
    ['{"type":"ping"}', true],
    [' \n{"a":"pong"}', true],
    ['{"a":"\\u0070ing"}', true],
    ['{"type":"ping","seq":1} trailing', true],
    ['{"a":1}', false],
    ['[{"type":"ping"}]', false],
    ['"ping"', false],
    ['ping', false],
    [`{"type":"ping","pad":"${pad}"}`, false], // over 1024 bytes: data to the classifier
    [`{"type":"ping","pad":"${'é'.repeat(500)}"}`, true], // 1024 bytes
    [`{"type":"ping","pad":"${'é'.repeat(501)}"}`, false], // 1026 bytes in 525 characters
    [`${DLE}ack 3`, true],
    [`${DLE}${DLE}`, true],
    ['', false],
    [bin(0x10), true],
    [bin(0x10, 0x10, 1), true],
    [frame(100, new Uint8Array(8)), false],
    [bin(0x11), false],
  ];
  const text = [
    ['ping', true],
    ['pong', true],
    ['ping ', false],
    ['PING', false],
    ['{"type":"ping"}', false],
    [`${DLE}ping`, true],
    [frame(100, new Uint8Array(8)), false],
  ];
  const binary = [
    [frame(100, new Uint8Array(8)), true],
    [frame(101, new Uint8Array(12)), true],
    [frame(100, new Uint8Array(0)), true],
    [frame(100, new Uint8Array(8), 9), false],
    [frame(102, new Uint8Array(8)), false],
    [frame(100, new Uint8Array(1025)), false],
    [frame(100, new Uint8Array(1024)), true],
    [bin(0x10, 0, 0, 0, 0, 0), true],
    [bin(0, 100), false],
    ['ping', false],
    ['{"type":"ping"}', false],
    [`${DLE}x`, true],
  ];
  const control = [
    ['{"type":"ping"}', false],
    ['ping', false],
    [frame(100, new Uint8Array(8)), false],
    [`${DLE}x`, true],
    [bin(0x10), true],
  ];

  for (const [heartbeat, table] of Object.entries({ json, text, binary, control })) {
    it(`${heartbeat}: the page escapes DLE-led data and lookalikes, and only those; the server gets each as sent`, () => {
      // t=0 up; each message sent: on the wire with two DLEs in front exactly when the table says; the server unescapes
      const s = start({ heartbeat });
      s.up();
      for (const [data] of table) s.hb.send(data);
      const wire = table.map(([data, escaped]) => show(escaped ? withDles(data) : data));
      assert.deepEqual(dataOf(s.ws, heartbeat), wire);
      assert.deepEqual(s.server.read(s.ws), table.map(([data]) => show(data)));
    });

    it(`${heartbeat}: escaped frames from the server are data, never heartbeats: delivered unescaped, counted`, () => {
      // t=0 up; the server sends each message (escaped by its own reading of the table); t=1000 tick: the page's
      // ping and ack <n>; nothing was answered, every message delivered as it was
      const s = start({ heartbeat });
      s.up();
      for (const [data] of table) s.server.push(s.ws, data);
      assert.deepEqual(s.log.messages, table.map(([data]) => show(data)));
      assert.equal(s.ws.sent.length, 1); // the hello: nothing answered
      to(1000);
      const after = s.ws.sent.slice(1);
      assert.ok(after.every((m) => m.t === 1000));
      assert.deepEqual(after.map((m) => isHeartbeat(heartbeat, m.data)), heartbeat === 'control' ? [false] : [true, false]);
      assert.equal(after.at(-1).data, `${DLE}ack ${table.length}`);
      assert.deepEqual(s.path, ['connected/open']);
    });
  }

  it('a Blob is always escaped (its bytes cannot be read at once), which the protocol allows', async () => {
    // t=0 up; send a Blob of [1, 2] → a Blob of [16, 16, 1, 2] on the wire
    const s = start();
    s.up();
    s.hb.send(new Blob([Uint8Array.of(1, 2)]));
    const sent = s.ws.sent.at(-1).data;
    assert.ok(sent instanceof Blob);
    assert.deepEqual([...new Uint8Array(await sent.arrayBuffer())], [0x10, 0x10, 1, 2]);
    assert.equal(s.hb.stats.keptBytes, 2 + 8);
  });

  it('the heartbeat still works beside escaped frames: a real ping is answered and hidden', () => {
    // t=0 up; the server sends '\u0010\u0010{"type":"ping"}' (data) then {"type":"ping"} (its heartbeat)
    const s = start();
    s.up();
    s.server.push(s.ws, '{"type":"ping"}');
    s.ws.receive('{"type":"ping"}');
    assert.deepEqual(s.log.messages, ['{"type":"ping"}']);
    assert.deepEqual(framesOf(s.ws).slice(1), ['{"type":"pong"}']);
  });

  it('session messages with names this version does not know, and words after the known ones, are ignored', () => {
    // t=0 up; send a; the server sends '\u0010nudge 1', '\u0010', '\u0010ack 1 later-word' → still connected, a acked
    const s = start();
    s.up();
    s.hb.send('a');
    for (const m of ['nudge 1', '', 'ack 1 later-word']) s.ws.receive(DLE + m);
    assert.deepEqual(s.path, ['connected/open']);
    assert.deepEqual(s.log.messages, []);
    assert.equal(s.hb.stats.kept, 0);
  });
});

/** The data with two DLEs in front. */
function withDles(data) {
  return typeof data === 'string' ? DLE + DLE + data : Uint8Array.from([0x10, 0x10, ...new Uint8Array(data)]).buffer;
}

describe('protocol errors end the session: Close 4002 (a page cannot send 1002), sessionlost, no reconnect', () => {
  const cases = [
    ['a binary frame led by one 0x10', (s) => s.ws.receive(bin(0x10, 0, 1))],
    ['an ack that is not a number', (s) => s.ws.receive(`${DLE}ack two`)],
    ['an ack without a number', (s) => s.ws.receive(`${DLE}ack`)],
    ['an ack of 21 digits', (s) => s.ws.receive(`${DLE}ack ${'0'.repeat(21)}`)],
    ['an ack beyond what was sent', (s) => s.ws.receive(`${DLE}ack 3`)],
    ['an ack that goes backwards', (s) => (s.ws.receive(`${DLE}ack 2`), s.ws.receive(`${DLE}ack 1`))],
    ['a second welcome', (s) => s.ws.receive(`${DLE}welcome 1 ${'0'.repeat(32)} 0 100 100`)],
  ];
  for (const [name, act] of cases) {
    it(name, () => {
      // t=0 up; send a, b; the frame → Close 4002 with a reason, sessionlost protocol-error with 2 unconfirmed
      const s = start();
      s.up();
      s.hb.send('a');
      s.hb.send('b');
      act(s);
      assert.equal(s.ws.closes.length, 1);
      assert.equal(s.ws.closes[0].code, 4002);
      assert.deepEqual(s.log.lost.map((e) => [e.cause, e.unconfirmed, e.code]), [['protocol-error', 2 - (name.includes('backwards') ? 2 : 0), 4002]]);
      assert.deepEqual(s.path, ['connected/open', 'closed/protocol-error']);
      wait(60000);
      assert.equal(s.net.sockets.length, 1);
      assert.equal(s.hb.send('c'), false);
    });
  }

  const handshake = [
    ['data before the welcome', (ws) => ws.receive('x'), 4002],
    ['an ack before the welcome', (ws) => ws.receive(`${DLE}ack 0`), 4002],
    ['a malformed welcome (token)', (ws) => ws.receive(`${DLE}welcome 1 ABC 0 100 100`), 4002],
    ['a welcome without its window', (ws) => ws.receive(`${DLE}welcome 1 ${'a'.repeat(32)} 0 100`), 4002],
    ['a welcome received beyond what was sent', (ws) => ws.receive(`${DLE}welcome 1 ${'a'.repeat(32)} 1 100 100`), 4002],
    ['a welcome of version 2: close 4400', (ws) => ws.receive(`${DLE}welcome 2 ${'a'.repeat(32)} 0 100 100`), 4400],
  ];
  for (const [name, act, code] of handshake) {
    it(name, () => {
      // t=0 socket 0 opens, hello; the frame → Close code, closed/protocol-error
      const s = start();
      s.ws.open();
      act(s.ws);
      assert.deepEqual(s.ws.closes.map((c) => c.code), [code]);
      assert.deepEqual(s.log.lost.map((e) => e.cause), ['protocol-error']);
      assert.deepEqual(s.path, ['closed/protocol-error']);
      assert.equal(s.last.code, code);
    });
  }
});

describe('ends (section 6)', () => {
  for (const code of [1000, 1001, 4001, 3000]) {
    it(`a server Close ${code} ends the session: closed/final-code, no reconnect, no sessionlost`, () => {
      // t=0 up; t=10 send a; t=100 the server closes → closed/final-code with unconfirmed 1; t=60000 one socket
      const s = start();
      s.up();
      to(10);
      s.hb.send('a');
      to(100);
      s.ws.serverClose(code, 'bye');
      assert.deepEqual(s.path, ['connected/open', 'closed/final-code']);
      assert.deepEqual(pick(s.last, ['code', 'reason', 'unconfirmed', 'unsent']), { code, reason: 'bye', unconfirmed: 1, unsent: 0 });
      assert.deepEqual(s.log.lost, []);
      to(60000);
      assert.equal(s.net.sockets.length, 1);
    });
  }

  for (const code of [4409, 4400, 1008]) {
    it(`a server Close ${code} during the handshake is final, with the code`, () => {
      // t=0 socket 0 opens, hello; the server closes → closed/final-code; t=60000 one socket
      const s = start();
      s.ws.open();
      s.ws.serverClose(code);
      assert.deepEqual(s.path, ['closed/final-code']);
      assert.equal(s.last.code, code);
      wait(60000);
      assert.equal(s.net.sockets.length, 1);
    });
  }

  for (const code of [1011, 1006]) {
    it(`a server Close ${code} parks the session: the next socket resumes it`, () => {
      // t=0 up; t=100 close code → reconnecting/closed; t=150 socket 1: hello resume, welcome → connected/resumed
      const s = start();
      s.up();
      to(100);
      s.ws.serverClose(code);
      assert.deepEqual(s.path, ['connected/open', 'reconnecting/closed']);
      s.next().open();
      assert.match(framesOf(s.ws)[0], HELLO_RESUME);
      s.server.welcome(s.ws);
      assert.equal(s.path.at(-1), 'connected/resumed');
    });
  }

  it('a server found dead by the page: the socket is left unclosed, the next resumes and sends again what was not acknowledged', () => {
    // t=0 up; t=10 send a (never read); pings 1000, 2000, 3000 unanswered; t=4000 reconnecting/dead, no Close on
    // socket 0; t=4050 socket 1: hello resume; welcome received 0 → a
    const s = start();
    s.up();
    to(10);
    s.hb.send('a');
    to(4000);
    assert.deepEqual(s.path, ['connected/open', 'reconnecting/dead']);
    assert.deepEqual(s.net.sockets[0].closes, []);
    assert.equal(s.last.code, undefined);
    to(4050);
    s.ws.open();
    s.server.welcome(s.ws);
    assert.deepEqual(dataOf(s.ws), ['a']);
  });

  it('refused with 4410: sessionlost with the messages never acknowledged, then closed/session-lost', () => {
    // t=0 up; t=10 send a..e, the server reads all, acks 2; t=20 fails; t=30 send f; t=70 socket 1: hello resume;
    // the server closes 4410 → sessionlost { refused, unconfirmed 4 (c, d, e, f) }, closed with unsent 1 (f)
    const s = start();
    s.up();
    to(10);
    ['a', 'b', 'c', 'd', 'e'].forEach((m) => s.hb.send(m));
    s.server.read(s.ws);
    s.server.ack(s.ws, 2);
    to(20);
    s.ws.fail();
    to(30);
    s.hb.send('f');
    to(70);
    s.ws.open();
    s.ws.serverClose(4410, 'session lost');
    assert.deepEqual(s.log.lost, [{ t: 70, cause: 'refused', unconfirmed: 4, code: 4410, reason: 'session lost' }]);
    assert.deepEqual(s.path.slice(-1), ['closed/session-lost']);
    assert.deepEqual(pick(s.last, ['code', 'unconfirmed', 'unsent']), { code: 4410, unconfirmed: 4, unsent: 1 });
    assert.deepEqual([s.hb.stats.unconfirmed, s.hb.stats.unsent, s.hb.stats.kept], [4, 1, 0]);
    wait(60000);
    assert.equal(s.net.sockets.length, 2);
    assert.equal(s.hb.send('g'), false);
  });

  it('a hello refused with 1013 (the server at its memory budget) is tried again after the backoff, with no window for a session never welcomed', () => {
    // t=0 socket 0: hello new, send a (kept); 1013 → reconnecting/closed, no sessionlost; every retry refused
    // likewise for 40 s (longer than the first window, 30 s); then a welcome: connected/open, a sent once
    const s = start();
    s.ws.open();
    const [first] = framesOf(s.ws);
    s.hb.send('a');
    s.ws.serverClose(1013, 'try again later');
    assert.deepEqual(pick(s.last, ['state', 'why', 'code', 'delay']), { state: 'reconnecting', why: 'closed', code: 1013, delay: 50 });
    while (Date.now() < 40000) {
      s.next().open();
      assert.equal(framesOf(s.ws)[0], first, 'the same hello new');
      s.ws.serverClose(1013, 'try again later');
    }
    assert.deepEqual(s.log.lost, []);
    s.next();
    s.up();
    assert.equal(s.last.why, 'open');
    assert.deepEqual(dataOf(s.ws), ['a']);
  });

  it('1013 on a session already welcomed is its Close; a resume refused with 1013 is tried again within the window', () => {
    // s1: t=0 up, 1013 → closed/final-code. s2: t=0 up (window 60 s), t=10 fails; every resume refused with 1013
    // → retried; at t=60010 the window passes → sessionlost { window }
    const s1 = start();
    s1.up();
    s1.ws.serverClose(1013, 'try again later');
    assert.deepEqual(s1.path, ['connected/open', 'closed/final-code']);
    const s2 = start();
    s2.up();
    to(10);
    s2.ws.fail();
    while (s2.hb.state === 'reconnecting') {
      const ws = s2.next();
      if (s2.hb.state === 'closed') break; // the window passed before this socket opened
      ws.open();
      assert.match(framesOf(ws)[0], HELLO_RESUME);
      ws.serverClose(1013, 'try again later');
    }
    assert.deepEqual(pick(s2.log.lost[0], ['t', 'cause']), { t: 60010, cause: 'window' });
  });

  it("the page's close(): the Close goes out, the session ends, nothing reconnects", () => {
    // t=0 up; t=10 send a, b, the server reads them and acks 1; t=20 close(4000) → closing with unconfirmed 1;
    // the server's Close → closed/close; t=60000 one socket
    const s = start();
    s.up();
    to(10);
    s.hb.send('a');
    s.hb.send('b');
    s.server.read(s.ws);
    s.server.ack(s.ws, 1);
    to(20);
    s.hb.close(4000, 'bye');
    assert.deepEqual(s.ws.closes, [{ code: 4000, reason: 'bye' }]);
    assert.deepEqual(pick(s.last, ['state', 'unconfirmed', 'unsent']), { state: 'closing', unconfirmed: 1, unsent: 0 });
    s.ws.serverClose(4000, 'bye');
    assert.deepEqual(s.path, ['connected/open', 'closing/close', 'closed/close']);
    to(60000);
    assert.equal(s.net.sockets.length, 1);
    assert.deepEqual(s.log.lost, []);
  });
});

describe('a drain: the server finishes the session (section 8)', () => {
  it("finish: the page answers with its count, keeps new sends for the next session, acks each message at once; the Close 1012 starts a new session with them", () => {
    // t=0 up; the page sends a, b; the server sends x, then `finish 2`. The page answers `finish 1`;
    // `send(c)` is kept, not sent; y from the server is acked at once (ack 2). The server closes
    // with 1012: sessionnew (kept 1), reconnecting within the first backoff step; the next socket
    // says hello new with another session id, and after the welcome sends c.
    const s = start();
    s.up();
    const sid = s.server.sid;
    s.hb.send('a');
    s.hb.send('b');
    assert.deepEqual(s.server.read(s.ws), ['a', 'b']);
    s.server.push(s.ws, 'x');
    s.ws.receive(`${DLE}finish 2`);
    assert.equal(framesOf(s.ws).at(-1), `${DLE}finish 1`);
    assert.equal(s.hb.send('c'), true);
    assert.deepEqual(dataOf(s.ws), ['a', 'b']);
    s.server.push(s.ws, 'y');
    assert.equal(framesOf(s.ws).at(-1), `${DLE}ack 2`);
    s.server.read(s.ws);
    assert.deepEqual(s.server.finishes, [1]);
    s.ws.serverClose(1012, 'session closed');
    assert.deepEqual(s.log.fresh, [{ t: 0, code: 1012, kept: 1 }]);
    assert.deepEqual(s.log.lost, []);
    assert.deepEqual(pick(s.last, ['state', 'code', 'attempt']), { state: 'reconnecting', code: 1012, attempt: 1 });
    assert.ok(s.last.delay < 100, `delay ${s.last.delay}`);
    assert.deepEqual(s.log.messages, ['x', 'y']);
    const next = s.next();
    next.open();
    const hello = framesOf(next)[0].match(HELLO_NEW);
    assert.ok(hello && hello[1] !== sid, framesOf(next)[0]);
    const fresh = new Server();
    fresh.welcome(next);
    assert.deepEqual(dataOf(next), ['c']);
    assert.equal(s.hb.stats.newSessions, 1);
  });

  it('a Close 1012 after the finish with messages unacknowledged: sessionlost (drained), closed', () => {
    // t=0 up; the page sends a; the server says `finish 0` (it has not got a) and closes with 1012.
    const s = start();
    s.up();
    s.hb.send('a');
    s.ws.receive(`${DLE}finish 0`);
    s.ws.serverClose(1012, 'session lost');
    assert.deepEqual(pick(s.log.lost[0], ['cause', 'unconfirmed']), { cause: 'drained', unconfirmed: 1 });
    assert.equal(s.last.state, 'closed');
    assert.deepEqual(s.log.fresh, []);
  });

  it('a hello new refused with 1012 (the server drains) is tried again within the first backoff step, no window', () => {
    // t=0 socket 0: hello new, refused with 1012 after a failed attempt → the count starts again.
    draws = 0.999999;
    const s = start();
    s.ws.fail(); // attempt 1
    s.next().open();
    s.ws.serverClose(1012, 'server restart');
    assert.deepEqual(pick(s.last, ['state', 'code', 'attempt']), { state: 'reconnecting', code: 1012, attempt: 1 });
    assert.ok(s.last.delay < 100 && s.last.delay > 99);
    s.next();
    s.up();
    assert.equal(s.last.state, 'connected');
    assert.deepEqual(s.log.lost, []);
  });

  it('a session refused with 1012 before any welcome takes a new id (a balancer routing on it sends the retry elsewhere) and keeps what it holds', () => {
    // routeParam ws_session: socket 0 dials ?ws_session=<sid0>, says hello new <sid0>, is refused with
    // 1012; socket 1 dials ?ws_session=<sid1> with hello new <sid1>, sid1 ≠ sid0; welcomed, it sends a.
    const s = start({ resume: { routeParam: 'ws_session' } });
    s.hb.send('a');
    s.ws.open();
    const first = framesOf(s.ws)[0].match(HELLO_NEW)[1];
    assert.equal(new URL(s.ws.url).searchParams.get('ws_session'), first);
    s.ws.serverClose(1012, 'server restart');
    const next = s.next();
    next.open();
    const second = framesOf(next)[0].match(HELLO_NEW)[1];
    assert.notEqual(second, first);
    assert.equal(new URL(next.url).searchParams.get('ws_session'), second);
    s.server.welcome(next);
    assert.deepEqual(dataOf(next), ['a']);
  });

  it('a finish before the welcome breaks the protocol', () => {
    const s = start();
    s.ws.open();
    s.ws.receive(`${DLE}finish 0`);
    assert.equal(s.log.lost[0].cause, 'protocol-error');
  });
});

describe('the window', () => {
  it('not resumed within the window of the last welcome (from when the socket went down): sessionlost, closed', () => {
    // welcome window 5000; t=0 up; t=10 send a; t=100 fails (down since 100); t=150 socket 1, which never opens;
    // t=5099 still reconnecting; t=5100 sessionlost { window, unconfirmed 1 }, socket 1 closed; t=60000 no new socket
    const s = start({ connectTimeout: 60000 }, { window: 5000 });
    s.up();
    to(10);
    s.hb.send('a');
    to(100);
    s.ws.fail();
    to(5099);
    assert.equal(s.net.sockets.length, 2);
    assert.equal(s.hb.state, 'reconnecting');
    to(5100);
    assert.deepEqual(s.log.lost.map((e) => [e.t, e.cause, e.unconfirmed]), [[5100, 'window', 1]]);
    assert.equal(s.path.at(-1), 'closed/session-lost');
    assert.equal(s.net.sockets[1].closes.length, 1);
    to(60000);
    assert.equal(s.net.sockets.length, 2);
  });

  it('each welcome restarts it, with its own window', () => {
    // window 5000; t=0 up; t=100 fails; t=150 socket 1; t=4000 welcome with window 8000; t=4500 fails;
    // t=12499 reconnecting (5100 passed long ago); t=12500 sessionlost
    const s = start({ connectTimeout: 60000 }, { window: 5000 });
    s.up();
    to(100);
    s.ws.fail();
    to(4000);
    s.ws.open();
    s.server.window = 8000;
    s.server.welcome(s.ws);
    to(4500);
    s.ws.fail();
    to(12499);
    assert.deepEqual(s.log.lost, []);
    to(12500);
    assert.deepEqual(s.log.lost.map((e) => [e.t, e.cause]), [[12500, 'window']]);
  });

  it('before any welcome the window is 30 s, counted from the loss of a socket that sent its hello', () => {
    // t=0 socket 0 opens, hello new, no welcome; t=100 fails; retries never open (connectTimeout 60000);
    // t=30099 reconnecting; t=30100 sessionlost { window }
    const s = start({ connectTimeout: 60000 });
    s.ws.open();
    to(100);
    s.ws.fail();
    to(30099);
    assert.deepEqual(s.log.lost, []);
    to(30100);
    assert.deepEqual(s.log.lost.map((e) => [e.t, e.cause]), [[30100, 'window']]);
  });

  it('a retry is never scheduled past the window: its delay is at most three quarters of what is left', () => {
    // backoff initial 10000, Math.random 0.999999; welcome window 4000; t=0 up; t=100 fails: a delay of ~9999.99
    // would come after the window (t=4100): it is 3000 (three quarters of 4000), socket 1 at t=3100; it fails at
    // once: ~19999.98 is cut to three quarters of the 1000 left, 750: socket 2 at t=3850
    draws = 0.999999;
    const s = start({ backoff: { initial: 10000, max: 60000 } }, { window: 4000 });
    s.up();
    to(100);
    s.ws.fail();
    assert.equal(s.last.delay, 3000);
    to(3099);
    assert.equal(s.net.sockets.length, 1);
    to(3100);
    assert.equal(s.net.sockets.length, 2);
    s.ws.fail();
    assert.equal(s.last.delay, 750);
    to(3850);
    assert.equal(s.net.sockets.length, 3);
    to(4100);
    assert.deepEqual(s.log.lost.map((e) => [e.t, e.cause]), [[4100, 'window']]);
  });

  it('sockets that never open start no window: a server down from the start is retried as without resume', () => {
    // every socket fails before open for 120 s: reconnecting all along, no sessionlost
    const s = start();
    while (Date.now() < 120000) {
      s.ws.fail();
      s.next();
    }
    assert.deepEqual(s.log.lost, []);
    assert.equal(s.hb.state, 'reconnecting');
  });
});

describe('tokens rotate (section 5)', () => {
  it('each hello uses the latest welcome\'s token; a welcome lost on the way → the older token again', () => {
    // t=0 up: T1; t=10 fails; socket 1: hello resume T1, the server issues T2 but the welcome is lost, socket 1 fails;
    // socket 2: hello resume T1 again (the server takes T1, the last proven, or T2, the newest) → welcome T3;
    // fails; socket 3: hello resume T3
    const s = start();
    const t1 = s.up();
    to(10);
    s.ws.fail();
    s.next().open();
    assert.equal(framesOf(s.ws)[0].match(HELLO_RESUME)[2], t1);
    const t2 = s.server.welcome(s.ws, { lost: true });
    s.ws.fail();
    s.next().open();
    assert.equal(framesOf(s.ws)[0].match(HELLO_RESUME)[2], t1);
    const t3 = s.server.welcome(s.ws);
    s.ws.fail();
    s.next().open();
    assert.equal(framesOf(s.ws)[0].match(HELLO_RESUME)[2], t3);
    assert.equal(new Set([t1, t2, t3]).size, 3);
    s.server.welcome(s.ws);
    assert.equal(s.hb.stats.resumes, 2);
  });
});

describe('options', () => {
  it('resume refuses onConnect, a heartbeat led by DLE, a bad buffer or routeParam', () => {
    const net = fakeNet();
    const make = (options) => () => new HeartbeatSocket('ws://x', { WebSocket: net.WebSocket, resume: true, ...options });
    assert.throws(make({ onConnect: () => {} }), TypeError);
    assert.throws(make({ heartbeat: 'text', shape: { ping: `${DLE}p` } }), RangeError);
    assert.throws(make({ heartbeat: 'binary', shape: { pong: 0x1001 } }), RangeError);
    assert.throws(make({ resume: { buffer: 0 } }), RangeError);
    assert.throws(make({ resume: { buffer: 1.5 } }), RangeError);
    assert.throws(make({ resume: { routeParam: '' } }), TypeError);
    assert.equal(net.sockets.length, 0);
    make({ heartbeat: 'binary', shape: { ping: 0x0f10 } })();
    assert.equal(net.sockets.length, 1);
  });
});

// --- pacing: a replay no faster than the socket drains ---------------------------------------

/** A kept message of exactly 1 000 bytes, numbered i. */
const kilo = (i) => `m${String(i).padStart(3, '0')}`.padEnd(1000, '.');
const sizeOf = (data) => (typeof data === 'string' ? utf8.encode(data).length : data.byteLength);

/**
 * A slow link under the fake socket `ws`: every frame the page sends adds its bytes to
 * `ws.bufferedAmount`, which drains by `rate` bytes a millisecond. `after` lists the
 * bufferedAmount right after each data frame (not the hello, acks or heartbeats).
 */
function slowLink(ws, rate, kind = 'json') {
  ws.bufferedAmount = 0;
  const link = { after: [], rate };
  const send = ws.send.bind(ws);
  ws.send = (data) => {
    send(data);
    if (ws.readyState !== OPEN) return;
    ws.bufferedAmount += sizeOf(data);
    const control = isHeartbeat(kind, data) || (typeof data === 'string' && data[0] === DLE && data[1] !== DLE);
    if (!control) link.after.push(ws.bufferedAmount);
  };
  const drain = setInterval(() => {
    ws.bufferedAmount = Math.max(0, ws.bufferedAmount - link.rate);
  }, 1);
  link.stop = () => clearInterval(drain);
  return link;
}

/** Moves the clock on a millisecond at a time until `done()`, at most `ms`. */
function waitFor(done, ms, what) {
  const until = Date.now() + ms;
  while (!done()) {
    assert.ok(Date.now() < until, `${what}: not within ${ms} ms`);
    wait(1);
  }
}

/** Counts the page's setTimeout calls while `run` runs (the mocked one, called through). */
function countTimers(run) {
  const spy = mock.method(globalThis, 'setTimeout');
  try {
    run();
    return spy.mock.callCount();
  } finally {
    spy.mock.restore();
  }
}

describe('pacing: kept messages enter the socket only while its bufferedAmount is under the bound', () => {
  // resume.buffer 64 KiB: the bound is a quarter, 16 384 bytes. 60 messages of 1 000 bytes
  // (weight 1 008 each, 60 480 in all) wait while the socket is down.
  const BOUND = 16384;
  const backlog = Array.from({ length: 60 }, (_, i) => kilo(i + 1));

  /** Up, cut, the backlog kept, the next socket open on a link of `rate` bytes/ms: the socket, not yet welcomed. */
  function cutWithBacklog(rate) {
    const s = start({ resume: { buffer: 65536 } });
    s.up();
    to(10);
    s.ws.fail();
    to(20);
    for (const m of backlog) assert.equal(s.hb.send(m), true);
    assert.deepEqual([s.hb.stats.kept, s.hb.stats.buffered], [60, 60]);
    const ws = s.next();
    const link = slowLink(ws, rate);
    ws.open();
    return { s, ws, link };
  }

  it('after a resume, the backlog goes out in order as a 500 B/ms link drains: never past the bound plus one message; a new send goes behind it; no timer once it is out', () => {
    // The welcome sends 17 at once (16 000 bytes and the hello under 16 384; the 17th passes it);
    // then each look (every 10 ms) sends while the link has drained under the bound. `new`, sent
    // just after the welcome, goes after message 60.
    const { s, ws, link } = cutWithBacklog(500);
    const hello = ws.bufferedAmount;
    const t0 = Date.now();
    let done;
    const polls = countTimers(() => {
      s.server.welcome(ws);
      assert.equal(dataOf(ws).length, 17);
      assert.equal(s.hb.send('new'), true);
      assert.equal(dataOf(ws).length, 17, 'the new send waits behind the backlog');
      waitFor(() => dataOf(ws).length === 61, 1000, 'the backlog and the new send');
      done = Date.now();
    });
    // Every look after the welcome is one timer: at most one per 10 ms of the replay (and the
    // heartbeat's tick at 1 000, not reached).
    assert.ok(polls <= Math.ceil((done - t0) / 10) + 1, `${polls} timers in ${done - t0} ms`);
    assert.deepEqual(dataOf(ws), [...backlog, 'new']);
    assert.ok(Math.max(...link.after) <= BOUND - 1 + 1000, `bufferedAmount after a data frame: max ${Math.max(...link.after)}`);
    assert.ok(Math.max(...link.after) > BOUND, 'the bound was reached: the replay was paced');
    // No faster than the link, no slower than it and one look: the last message left once the
    // link had drained all but the bound of what came before it.
    const before = hello + 60 * 1000 - BOUND; // bytes that must drain before the last can go (the `new` one)
    assert.ok(done - t0 >= Math.floor(before / 500), `done after ${done - t0} ms`);
    assert.ok(done - t0 <= Math.ceil(before / 500) + 10, `done after ${done - t0} ms`);
    assert.deepEqual(s.server.read(ws), [...backlog, 'new']);
    assert.equal(s.hb.stats.buffered, 0);
    // Nothing waits: no timer but the heartbeat's tick (one per 1 000 ms), and a send goes at once.
    const idle = countTimers(() => {
      wait(2000);
      assert.equal(s.hb.send('later'), true);
      assert.equal(dataOf(ws).at(-1), 'later');
    });
    assert.equal(idle, 2);
    link.stop();
  });

  it('a cut mid-replay: the next socket replays from the server\'s count, in order, paced again; the cut one sends nothing more', () => {
    // Socket 1's replay (500 B/ms) is cut at +30 ms with 20 messages read by the server (more
    // were sent); socket 2, welcomed at 20, sends 21..60 and `new` paced, on a link of 1 000 B/ms.
    const { s, ws, link } = cutWithBacklog(500);
    s.server.welcome(ws);
    s.hb.send('new');
    wait(30);
    const sent = dataOf(ws).length;
    assert.ok(sent > 20 && sent < 60, `${sent} sent by +30 ms`);
    assert.equal(s.server.read(ws, 20).length, 20);
    ws.fail();
    wait(200);
    const next = s.next();
    assert.equal(dataOf(ws).length, sent, 'nothing more on the cut socket');
    const link2 = slowLink(next, 1000);
    next.open();
    s.server.welcome(next);
    waitFor(() => dataOf(next).length === 41, 1000, 'the rest of the backlog and the new send');
    assert.deepEqual(dataOf(next), [...backlog.slice(20), 'new']);
    assert.ok(Math.max(...link2.after) <= BOUND - 1 + 1000, `max ${Math.max(...link2.after)}`);
    assert.ok(Math.max(...link2.after) > BOUND, 'paced');
    s.server.read(next);
    assert.deepEqual(s.server.got, [...backlog, 'new']);
    s.server.ack(next);
    assert.deepEqual([s.hb.stats.kept, s.hb.stats.buffered], [0, 0]);
    link.stop();
    link2.stop();
  });

  it('a finish mid-replay: what pacing holds back goes out before the answer (no data may follow it)', () => {
    const { s, ws, link } = cutWithBacklog(0); // a link that never drains
    s.server.welcome(ws);
    wait(50);
    assert.equal(dataOf(ws).length, 17);
    assert.deepEqual(s.server.read(ws), backlog.slice(0, 17));
    ws.receive(`${DLE}finish 17`);
    assert.deepEqual(dataOf(ws), backlog);
    assert.equal(framesOf(ws).at(-1), `${DLE}finish 0`);
    const frames = ws.sent.length;
    wait(100);
    assert.equal(ws.sent.length, frames, 'no look after the finish');
    link.stop();
  });

  for (const [buffer, bound] of [
    [4096, 1024],
    [undefined, 25600],
    [1 << 20, 65536],
    [4 << 20, 65536],
  ]) {
    it(`resume.buffer ${buffer ?? 'default (102 400)'}: the bound is ${bound} bytes (a quarter, at most 64 KiB); a frame that arrives is a look too`, () => {
      // 100-byte messages on a link that drains only when told: ceil(bound / 100) go at the welcome.
      const s = start({ resume: buffer === undefined ? true : { buffer } });
      s.up();
      s.ws.fail();
      const count = Math.floor((buffer ?? 102400) / 108);
      const messages = Array.from({ length: count }, (_, i) => `${i}`.padEnd(100, '-'));
      for (const m of messages) assert.equal(s.hb.send(m), true);
      const ws = s.next();
      const link = slowLink(ws, 0);
      ws.open();
      ws.bufferedAmount = 0; // the hello is out
      s.server.welcome(ws);
      const first = Math.ceil(bound / 100);
      assert.equal(dataOf(ws).length, first);
      // The link drains; a ping from the server is looked at before the next poll is due.
      ws.bufferedAmount = 0;
      ws.receive('{"type":"ping"}');
      assert.equal(dataOf(ws).length, Math.min(count, 2 * first));
      link.stop();
    });
  }
});
