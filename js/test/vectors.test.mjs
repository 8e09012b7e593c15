// The wire vectors (tests/vectors/wire.json, written by tests/vectors/make.py) against the
// browser module, through its public behaviour: what the page answers, hides, delivers, and
// puts on the wire. src/vectors.rs checks the same file against the Rust side, so that a case
// added once holds on both. `node --test js/test/`.
//
// A small fake WebSocket stands in for the network (the other test files have fuller ones);
// the clock is mocked, Math.random returns what a case needs (the page's first sequence
// number is floor(Math.random() * 2^40)).

import { describe, it, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { HeartbeatSocket } from '../ws-heartbeat.js';

const vectors = JSON.parse(readFileSync(new URL('../../tests/vectors/wire.json', import.meta.url), 'utf8'));
const DLE = '\u0010';
const TOKEN = '0123456789abcdef0123456789abcdef';
const INTERVAL = 1000;

let random;

beforeEach(() => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 0 });
  random = 0.5;
  mock.method(Math, 'random', () => random);
});

afterEach(() => {
  mock.timers.reset();
  mock.restoreAll();
});

/** A WebSocket class whose one instance records what the page sends and closes with. */
function fakeWebSocket() {
  const made = [];
  class FakeWebSocket extends EventTarget {
    constructor(url) {
      super();
      Object.assign(this, { url, readyState: 0, binaryType: 'blob', sent: [], closes: [] });
      made.push(this);
    }
    send(data) {
      if (this.readyState === 1) this.sent.push(data);
    }
    close(code, reason) {
      this.closes.push({ code, reason });
      this.readyState = 2;
    }
    open() {
      this.readyState = 1;
      this.dispatchEvent(new Event('open'));
    }
    receive(data) {
      this.dispatchEvent(Object.assign(new Event('message'), { data }));
    }
  }
  return { WebSocket: FakeWebSocket, made };
}

/** A case's frame as a page meets it: a string, or an ArrayBuffer. */
function frameOf(frame) {
  if (frame.text !== undefined) return frame.text;
  return Uint8Array.from(frame.hex.match(/../g) ?? [], (byte) => parseInt(byte, 16)).buffer;
}

const bytesOf = (data) => [...new Uint8Array(data instanceof ArrayBuffer ? data : data.buffer)];

/** `data` is the case's frame `frame`: the same text, or the same bytes. */
function assertSame(data, frame, where) {
  if (frame.text !== undefined) assert.equal(data, frame.text, where);
  else {
    assert.ok(typeof data !== 'string', `${where}: text where bytes were expected`);
    assert.deepEqual(bytesOf(data), bytesOf(frameOf(frame)), where);
  }
}

/** A page on an open fake socket, recording what it delivers and its rtt events. */
function page(options) {
  const { WebSocket, made } = fakeWebSocket();
  const socket = new HeartbeatSocket('ws://test/', { WebSocket, jitter: false, interval: INTERVAL, ...options });
  const seen = { messages: [], rtts: 0 };
  socket.addEventListener('message', (e) => seen.messages.push(e.data));
  socket.addEventListener('rtt', () => (seen.rtts += 1));
  const ws = made[0];
  ws.open();
  return { socket, ws, seen };
}

/** Whether a pong with this case's frame answers the page's ping numbered `pinged`. */
function answers(shape, frame, pinged) {
  random = (pinged - 1) / 2 ** 40; // the page's first ping is this + 1
  const { ws, seen } = page({ heartbeat: shape });
  mock.timers.tick(INTERVAL); // the first tick: the ping
  ws.receive(frameOf(frame));
  assert.deepEqual(seen.messages, [], 'a pong is hidden');
  return seen.rtts === 1;
}

const where = (family, i, c) => `${family} case ${i} (${c.note}): ${JSON.stringify(c)}`;

describe('wire vectors', () => {
  it(`has at least 200 cases (${vectors.heartbeat.length + vectors.escape.length + vectors.session.length})`, () => {
    assert.ok(vectors.heartbeat.length + vectors.escape.length + vectors.session.length >= 200);
  });

  it('heartbeat: every frame is what the vectors say', () => {
    vectors.heartbeat.forEach((c, i) => {
      const here = where('heartbeat', i, c);
      if (c.is === 'pong') {
        // A number N answers a ping numbered N, not one numbered N + 1 (where no number, the
        // latest ping, would); no number answers the latest.
        if (c.seq === null) assert.ok(answers(c.shape, c.frame, 1), here);
        else {
          assert.ok(answers(c.shape, c.frame, Math.max(c.seq, 1)) === (c.seq >= 1), `${here}: ping ${c.seq}`);
          assert.ok(!answers(c.shape, c.frame, c.seq + 1), `${here}: ping ${c.seq + 1}`);
        }
        mock.timers.reset();
        mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 0 });
        return;
      }
      const { ws, seen } = page({ heartbeat: c.shape });
      ws.receive(frameOf(c.frame));
      if (c.is === 'data') {
        assert.equal(seen.messages.length, 1, `${here}: delivered`);
        assertSame(seen.messages[0], c.frame, here);
        assert.deepEqual(ws.sent, [], `${here}: not answered`);
      } else {
        assert.deepEqual(seen.messages, [], `${here}: hidden`);
        assert.equal(ws.sent.length, 1, `${here}: answered once`);
        if (c.answer.json !== undefined) assert.deepEqual(JSON.parse(ws.sent[0]), c.answer.json, here);
        else assertSame(ws.sent[0], c.answer, here);
      }
    });
  });

  /** A page with a session, welcomed, that has sent 10 messages the server has not acknowledged. */
  function welcomed(shape) {
    const p = page({ heartbeat: shape, resume: true });
    for (let n = 0; n < 10; n += 1) p.socket.send(String(n));
    p.ws.receive(`${DLE}welcome 1 ${TOKEN} 0 1048576 30000`);
    assert.equal(p.socket.state, 'connected');
    p.ws.sent.length = 0;
    return p;
  }

  it('escape: every data message goes on the wire as the vectors say', () => {
    vectors.escape.forEach((c, i) => {
      const here = where('escape', i, c);
      const { socket, ws } = welcomed(c.shape);
      const data = frameOf(c.data);
      assert.ok(socket.send(typeof data === 'string' ? data : new Uint8Array(data)), `${here}: taken`);
      assert.equal(ws.sent.length, 1, here);
      assertSame(ws.sent[0], c.wire, here);
    });
  });

  it('session: every frame a client receives is what the vectors say', () => {
    vectors.session.forEach((c, i) => {
      if (c.to === 'server') return; // the page is a client
      const here = where('session', i, c);
      const { socket, ws, seen } = welcomed('control');
      ws.receive(frameOf(c.frame));
      const closed = ws.closes.map((close) => close.code);
      if (c.is === 'violation') {
        assert.deepEqual(closed, [4002], `${here}: closed as a protocol error`);
        return;
      }
      assert.deepEqual(closed, [], `${here}: not closed`);
      if (c.is === 'data') {
        assert.equal(seen.messages.length, 1, `${here}: delivered`);
        assertSame(seen.messages[0], c.data, here);
      } else {
        assert.deepEqual(seen.messages, [], `${here}: not delivered`);
        assert.equal(socket.stats.kept, c.is === 'ack' || c.is === 'finish' ? 10 - c.count : 10, here);
        if (c.is === 'finish') assert.equal(ws.sent.at(-1), `${DLE}finish 0`, `${here}: answered`);
      }
    });
  });
});
