// ws-heartbeat.js: the browser half of ws-heartbeat (https://crates.io/crates/ws-heartbeat).
//
// `HeartbeatSocket` is a WebSocket that heartbeats, finds a silent server dead within a stated
// bound, measures round trips, and reconnects with full-jitter backoff, keeping what the page
// sends meanwhile. Same rules as the Rust side; the design (ARCHITECTURE.md, "The browser
// module") states them once for both. No dependencies, no build step. MIT OR Apache-2.0.

const OPEN = 1; // WebSocket.OPEN, without relying on the constructor's statics
const MAX_HEARTBEAT_BYTES = 1024; // longer lookalikes are data, as on the server
const MAX_INTERVAL = 24 * 60 * 60 * 1000;
const TIMEOUT_CODE = 3008; // IANA "Timeout": the page gave up on a silent server

const DEFAULTS = Object.freeze({
  heartbeat: 'json',
  interval: 10000,
  maxMissed: 3,
  jitter: true,
  backoff: Object.freeze({ initial: 500, factor: 2, max: 30000, maxRetries: Infinity }),
  stableAfter: 30000,
  connectTimeout: 10000,
  closeTimeout: 1000,
  buffer: 256,
  finalCodes: Object.freeze([1000, 1008, Object.freeze([4000, 4999])]),
});

const SHAPES = {
  json: { field: 'type', ping: 'ping', pong: 'pong' },
  text: { ping: 'ping', pong: 'pong' },
  binary: { ping: 100, pong: 101 },
  control: {},
};

/** An event of a HeartbeatSocket: its fields are set on the event itself (`e.state`, `e.data`). */
export class HeartbeatEvent extends Event {
  constructor(type, fields) {
    super(type);
    Object.assign(this, fields);
  }
}

/**
 * A WebSocket with a heartbeat and reconnection. Events: `message` (`e.data`, never a
 * heartbeat), `state` (`e.state`, `e.previous`, `e.why`, and what applies of `e.code`,
 * `e.reason`, `e.attempt`, `e.delay`, `e.unconfirmed`, `e.unsent`, `e.error`), `rtt` (`e.rtt`).
 */
export class HeartbeatSocket extends EventTarget {
  #url;
  #options;
  #shape;
  #interval;
  #state = 'connecting';
  #conn = null; // the one connection or attempt in flight
  #retryTimer = null;
  #retries = 0; // failed attempts since the last stable connection
  #queue = [];
  #final = false;
  #rtt = undefined;
  #stats = {
    pings: 0,
    answers: 0,
    reconnects: 0,
    deaths: 0,
    sent: 0,
    received: 0,
    unconfirmed: 0,
    dropped: 0,
    unsent: 0,
  };

  /**
   * @param {string | URL} url
   * @param {object} [options] see ws-heartbeat.d.ts; every default matches the Rust side.
   */
  constructor(url, options = {}) {
    super();
    this.#url = url;
    const o = { ...DEFAULTS, ...options, backoff: { ...DEFAULTS.backoff, ...options.backoff } };
    if (!(o.heartbeat in SHAPES)) throw new TypeError(`heartbeat: one of ${Object.keys(SHAPES).join(', ')}`);
    checkInterval(o.interval, 'interval');
    if (!Number.isInteger(o.maxMissed) || o.maxMissed < 1) throw new RangeError('maxMissed: an integer >= 1');
    if (!Number.isInteger(o.buffer) || o.buffer < 0) throw new RangeError('buffer: an integer >= 0');
    o.WebSocket ??= globalThis.WebSocket;
    if (typeof o.WebSocket !== 'function') throw new TypeError('no WebSocket: pass one as options.WebSocket');
    this.#options = o;
    this.#shape = { ...SHAPES[o.heartbeat], ...o.shape };
    this.#interval = o.interval;
    this.#connect('connecting', 'start');
  }

  /** 'connecting' | 'connected' | 'reconnecting' | 'closing' | 'closed' */
  get state() {
    return this.#state;
  }

  /** The latest round trip in ms, or undefined before the first matched answer. */
  get rtt() {
    return this.#rtt;
  }

  /** The page's heartbeat interval in ms. */
  get interval() {
    return this.#interval;
  }

  /** Counters since construction (a copy); `buffered` is the queue's length now. */
  get stats() {
    return { ...this.#stats, buffered: this.#queue.length };
  }

  /**
   * Sends at once when connected; otherwise queues the message (up to `buffer`), to be sent
   * in order after the next connect and its `onConnect` hook. Returns false, taking nothing,
   * when the queue is full (counted in `stats.dropped`) or the socket is closing or closed.
   */
  send(data) {
    if (this.#final) return false;
    const conn = this.#conn;
    if (this.#state === 'connected' && this.#queue.length === 0 && conn.ws.readyState === OPEN) {
      this.#transmit(conn, data);
      return true;
    }
    if (this.#queue.length >= this.#options.buffer) {
      this.#stats.dropped += 1;
      return false;
    }
    this.#queue.push(data);
    return true;
  }

  /**
   * Changes the page's interval now: the next tick is one new interval away, and a ping goes
   * out at once carrying it (JSON and binary heartbeats), so a server that follows its peers'
   * intervals changes its own bound for this page.
   */
  setInterval(ms) {
    checkInterval(ms, 'interval');
    this.#interval = ms;
    const conn = this.#conn;
    if (conn?.beat && !this.#final) {
      clearTimeout(conn.tickTimer);
      conn.nextTick = Date.now();
      this.#tick(conn);
    }
  }

  /** Ends the socket for good: a Close with `code` (1000, or 3000–4999), no reconnect after. */
  close(code = 1000, reason = '') {
    if (code !== 1000 && !(Number.isInteger(code) && code >= 3000 && code <= 4999)) {
      throw new RangeError('close code: 1000 or 3000-4999');
    }
    if (clip(String(reason)) !== String(reason)) throw new SyntaxError('close reason: at most 123 bytes of UTF-8');
    if (this.#final) return;
    this.#final = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    const unsent = this.#queue.length;
    this.#stats.unsent += unsent;
    this.#queue = [];
    const conn = this.#conn;
    if (conn?.ws.readyState === OPEN) {
      stopBeat(conn);
      conn.closeTimer = setTimeout(() => this.#ended(conn, 'close', { code, reason, unsent }), this.#options.closeTimeout);
      this.#setState('closing', 'close', { code, reason, unsent });
      conn.onClose = (e) => this.#ended(conn, 'close', { code: e.code, reason: e.reason, unsent });
      try {
        conn.ws.close(code, reason);
      } catch (error) {
        this.#ended(conn, 'close', { code, reason, unsent, error });
      }
    } else {
      if (conn) this.#drop(conn, 1000, 'closed by the page');
      this.#conn = null;
      this.#setState('closed', 'close', { code, reason, unsent });
    }
  }

  // --- connections -----------------------------------------------------------------------

  #connect(state, why, fields = {}) {
    const { WebSocket, protocols, connectTimeout } = this.#options;
    if (state !== this.#state || why !== 'start') this.#setState(state, why, fields);
    if (this.#final) return; // a listener of that event called close()
    const conn = { ws: null, beat: false, tickTimer: null, connectTimer: null, closeTimer: null, onClose: null };
    this.#conn = conn;
    try {
      conn.ws = protocols === undefined ? new WebSocket(this.#url) : new WebSocket(this.#url, protocols);
    } catch (error) {
      // The constructor throws only for what no retry can mend (a bad URL, bad protocols):
      // the first attempt passes it to the page, later ones give up with it.
      if (why === 'start') {
        this.#final = true;
        this.#state = 'closed';
        throw error;
      }
      this.#lost(conn, 'error', { error });
      return;
    }
    const ws = conn.ws;
    ws.binaryType = 'arraybuffer';
    conn.connectTimer = setTimeout(() => this.#fail(conn, 'timeout', `not connected after ${connectTimeout} ms`), connectTimeout);
    listen(ws, 'open', () => this.#opened(conn));
    listen(ws, 'message', (e) => this.#inbound(conn, e.data));
    listen(ws, 'error', (e) => this.#current(conn) && this.#lost(conn, 'error', { code: 1006, error: e?.error ?? e }));
    listen(ws, 'close', (e) => {
      if (conn.onClose) conn.onClose(e);
      else if (this.#current(conn)) this.#closedByServer(conn, e);
    });
  }

  #current(conn) {
    return this.#conn === conn && conn.onClose === null;
  }

  async #opened(conn) {
    if (!this.#current(conn)) return;
    const now = Date.now();
    Object.assign(conn, { openedAt: now, lastHeard: now, pingsSinceHeard: 0, lastPingDue: -Infinity, sentSinceHeard: 0 });
    conn.seq = Math.floor(Math.random() * 2 ** 40); // random start: a forged answer seldom matches
    conn.firstUnanswered = conn.seq;
    conn.latestSentAt = null;
    if (this.#shape.ping !== undefined) {
      conn.beat = true;
      const first = this.#options.jitter ? Math.max(1, Math.ceil(Math.random() * this.#interval)) : this.#interval;
      conn.nextTick = now + first;
      conn.tickTimer = setTimeout(() => this.#tick(conn), first);
    }
    const hook = this.#options.onConnect;
    if (hook) {
      const hookSend = (data) => this.#current(conn) && conn.ws.readyState === OPEN && (this.#transmit(conn, data), true);
      try {
        await hook(hookSend);
      } catch (error) {
        if (this.#current(conn)) this.#fail(conn, 'hook', `onConnect failed: ${error}`, error);
        return;
      }
      if (!this.#current(conn)) return;
    }
    clearTimeout(conn.connectTimer); // it covered the hook too: a login that hangs is a failed attempt
    conn.connectedAt = Date.now();
    this.#setState('connected', 'open');
    while (this.#queue.length > 0 && this.#current(conn) && conn.ws.readyState === OPEN) {
      this.#transmit(conn, this.#queue.shift());
    }
  }

  #transmit(conn, data) {
    conn.ws.send(data);
    conn.sentSinceHeard += 1;
    this.#stats.sent += 1;
  }

  /** The server closed (or the connection broke): final code, or another attempt. */
  #closedByServer(conn, e) {
    const fields = { code: e.code, reason: e.reason, unconfirmed: conn.sentSinceHeard ?? 0 };
    if (conn.openedAt !== undefined && this.#isFinal(e.code)) {
      this.#drop(conn);
      this.#conn = null;
      this.#final = true;
      this.#stats.unconfirmed += fields.unconfirmed;
      fields.unsent = this.#queue.length;
      this.#stats.unsent += fields.unsent;
      this.#queue = [];
      this.#setState('closed', 'final-code', fields);
    } else {
      this.#lost(conn, 'closed', fields);
    }
  }

  #isFinal(code) {
    return this.#options.finalCodes.some((c) => (Array.isArray(c) ? code >= c[0] && code <= c[1] : code === c));
  }

  /** Gives up on a connection that is still open or opening, and tries again. */
  #fail(conn, why, reason, error) {
    if (!this.#current(conn)) return;
    this.#drop(conn, TIMEOUT_CODE, clip(reason));
    this.#lost(conn, why, { code: TIMEOUT_CODE, reason, error });
  }

  /** Stops everything a connection runs; its socket's later events are ignored. */
  #drop(conn, code, reason) {
    stopBeat(conn);
    clearTimeout(conn.connectTimer);
    clearTimeout(conn.closeTimer);
    conn.onClose = () => {};
    if (code !== undefined && conn.ws && conn.ws.readyState <= OPEN) {
      try {
        conn.ws.close(code, reason);
      } catch {
        // A socket that cannot close any more is already gone.
      }
    }
  }

  /** A connection or attempt ended without a final reason: wait, then try again. */
  #lost(conn, why, fields) {
    if (this.#conn !== conn) return;
    this.#drop(conn);
    this.#conn = null;
    const unconfirmed = conn.sentSinceHeard ?? 0;
    this.#stats.unconfirmed += unconfirmed;
    if (this.#final) return;
    // Stable: connected, and heard from, for `stableAfter`. A server that accepts and then
    // says nothing is found dead after interval × maxMissed, which may exceed the window: that
    // must not restart the count. (With control frames the page hears no heartbeat: up is enough.)
    const upTo = this.#options.heartbeat === 'control' ? Date.now() : conn.lastHeard;
    if (conn.connectedAt !== undefined && upTo - conn.connectedAt >= this.#options.stableAfter) this.#retries = 0;
    this.#retries += 1;
    const { initial, factor, max, maxRetries } = this.#options.backoff;
    const detail = { ...fields, unconfirmed, attempt: this.#retries };
    if (this.#retries > maxRetries) {
      this.#final = true;
      detail.unsent = this.#queue.length;
      this.#stats.unsent += detail.unsent;
      this.#queue = [];
      this.#setState('closed', 'gave-up', { ...detail, cause: why });
      return;
    }
    const ceiling = Math.min(max, initial * factor ** (this.#retries - 1));
    const delay = Math.random() * ceiling; // full jitter
    // Timer first, event second: a listener that calls close() cancels the retry.
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#stats.reconnects += 1;
      this.#connect('reconnecting', 'retry', { attempt: this.#retries });
    }, delay);
    this.#setState('reconnecting', why, { ...detail, delay });
  }

  /** After close(): the close handshake finished, or took too long. */
  #ended(conn, why, fields) {
    if (this.#conn !== conn) return;
    this.#drop(conn);
    this.#conn = null;
    this.#stats.unconfirmed += conn.sentSinceHeard ?? 0;
    this.#setState('closed', why, { ...fields, unconfirmed: conn.sentSinceHeard ?? 0 });
  }

  #setState(state, why, fields = {}) {
    const previous = this.#state;
    this.#state = state;
    this.#emit('state', { ...fields, state, previous, why });
  }

  #emit(type, fields) {
    const event = new HeartbeatEvent(type, fields);
    this.dispatchEvent(event);
    const handler = this[`on${type}`];
    if (typeof handler !== 'function') return;
    try {
      handler.call(this, event);
    } catch (error) {
      queueMicrotask(() => {
        throw error; // reported like a listener's error, without cutting our own work short
      });
    }
  }

  // --- the heartbeat -------------------------------------------------------------------

  /**
   * One tick. Silence is measured from timestamps, not timer counts: the server is dead when
   * nothing came for more than interval × maxMissed, at least maxMissed pings went unanswered
   * since, and the latest of them was sent by a tick one interval or more earlier on the
   * schedule (as on the server, a ping counts from its tick's deadline). A timer that fires
   * more than an interval late (a hidden tab) starts a fresh schedule, so its ping still gets a
   * whole interval: the page's own lateness never condemns a server that answers.
   */
  #tick(conn) {
    if (!this.#current(conn)) return;
    const now = Date.now();
    const due = conn.nextTick; // the deadline this tick ran for: ticks count on the schedule
    const interval = this.#interval;
    const silent = now - conn.lastHeard;
    const { maxMissed } = this.#options;
    if (silent > interval * maxMissed && conn.pingsSinceHeard >= maxMissed && due - conn.lastPingDue >= interval) {
      this.#stats.deaths += 1;
      this.#fail(conn, 'dead', `server silent for ${silent} ms, ${conn.pingsSinceHeard} pings unanswered`);
      return;
    }
    conn.seq += 1;
    conn.latestSentAt = now;
    conn.pingsSinceHeard += 1;
    conn.lastPingDue = due;
    this.#stats.pings += 1;
    if (conn.ws.readyState === OPEN) conn.ws.send(this.#ping(conn.seq, interval));
    // Next tick one interval after this one's deadline; after a stall, a fresh schedule.
    const next = conn.nextTick + interval;
    conn.nextTick = next > now ? next : now + interval;
    conn.tickTimer = setTimeout(() => this.#tick(conn), conn.nextTick - now);
  }

  #ping(seq, interval) {
    const s = this.#shape;
    switch (this.#options.heartbeat) {
      case 'json':
        return JSON.stringify({ [s.field]: s.ping, seq, interval });
      case 'text':
        return s.ping;
      default: {
        const bytes = new Uint8Array(18);
        const view = new DataView(bytes.buffer);
        view.setUint16(0, s.ping);
        view.setUint32(2, 12);
        view.setBigUint64(6, BigInt(seq));
        view.setUint32(14, Math.min(interval, 0xffffffff));
        return bytes.buffer;
      }
    }
  }

  #inbound(conn, data) {
    if (this.#conn !== conn) return;
    this.#stats.received += 1;
    if (conn.openedAt === undefined) return; // cannot happen before open; be safe
    conn.lastHeard = Date.now();
    conn.pingsSinceHeard = 0;
    const verdict = this.#options.heartbeat === 'control' ? null : classify(this.#options.heartbeat, this.#shape, data);
    if (verdict === null) {
      conn.sentSinceHeard = 0;
      this.#emit('message', { data });
    } else if (verdict.answer !== undefined) {
      if (conn.ws.readyState === OPEN) conn.ws.send(verdict.answer);
    } else {
      this.#answered(conn, verdict.seq);
    }
  }

  /** A pong: it answers `seq` (or, without one, the latest ping) and every ping before. */
  #answered(conn, seq) {
    const latest = conn.seq;
    const target = seq ?? latest;
    if (conn.latestSentAt === null || target < conn.firstUnanswered || target > latest) return; // not ours
    conn.firstUnanswered = target + 1;
    conn.sentSinceHeard = 0;
    this.#stats.answers += 1;
    if (target !== latest) return; // only the latest ping's send time is kept
    this.#rtt = Date.now() - conn.latestSentAt;
    this.#emit('rtt', { rtt: this.#rtt });
  }
}

/**
 * What a message is: null for data, `{ answer }` for the server's ping, `{ seq }` for an
 * answer to ours. The same rules as the Rust protocols: only exact heartbeats count.
 */
function classify(kind, shape, data) {
  if (kind === 'text') {
    if (data === shape.ping) return { answer: shape.pong };
    return data === shape.pong ? { seq: undefined } : null;
  }
  if (kind === 'json') {
    if (typeof data !== 'string' || data.length > MAX_HEARTBEAT_BYTES) return null;
    if (data[0] !== '{' && data.trimStart()[0] !== '{') return null;
    if (data.length * 3 > MAX_HEARTBEAT_BYTES && new TextEncoder().encode(data).length > MAX_HEARTBEAT_BYTES) return null;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return null;
    }
    const kindOf = message[shape.field];
    if (kindOf === shape.ping) return { answer: JSON.stringify({ ...message, [shape.field]: shape.pong }) };
    if (kindOf !== shape.pong) return null;
    return { seq: Number.isSafeInteger(message.seq) && message.seq >= 0 ? message.seq : undefined };
  }
  // binary: BE u16 command, BE u32 length of the payload that follows (at most 1 KiB)
  let bytes;
  if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
  else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  else return null;
  if (bytes.length < 6 || bytes.length - 6 > MAX_HEARTBEAT_BYTES) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(2) !== bytes.length - 6) return null;
  const command = view.getUint16(0);
  if (command === shape.ping) {
    const answer = bytes.slice();
    new DataView(answer.buffer).setUint16(0, shape.pong);
    return { answer: answer.buffer };
  }
  if (command !== shape.pong) return null;
  // Our pings carry 12 bytes (sequence number, interval); the server's own, 8.
  const seq = bytes.length === 14 || bytes.length === 18 ? Number(view.getBigUint64(6)) : undefined;
  return { seq };
}

/** A close reason a browser accepts: at most 123 bytes of UTF-8, cut between characters. */
function clip(reason) {
  return reason.slice(0, new TextEncoder().encodeInto(reason, new Uint8Array(123)).read);
}

function checkInterval(ms, name) {
  if (!Number.isFinite(ms) || ms <= 0 || ms > MAX_INTERVAL) throw new RangeError(`${name}: ms in (0, 24 h]`);
}

function listen(ws, type, handler) {
  if (typeof ws.addEventListener === 'function') ws.addEventListener(type, handler);
  else ws[`on${type}`] = handler;
}

function stopBeat(conn) {
  conn.beat = false;
  clearTimeout(conn.tickTimer);
}
