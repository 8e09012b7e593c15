// ws-heartbeat.js: the browser half of ws-heartbeat (https://crates.io/crates/ws-heartbeat).
//
// `HeartbeatSocket` is a WebSocket that heartbeats, finds a silent server dead within a stated
// bound, measures round trips, and reconnects with full-jitter backoff, keeping what the page
// sends meanwhile. Same rules as the Rust side; the design (ARCHITECTURE.md, "The browser
// module") states them once for both. With `resume`, it speaks the session protocol
// (PROTOCOL.md): every message is delivered once and in order across reconnects.
// No dependencies, no build step. MIT OR Apache-2.0.

const OPEN = 1; // WebSocket.OPEN, without relying on the constructor's statics
const MAX_HEARTBEAT_BYTES = 1024; // longer lookalikes are data, as on the server
const MAX_INTERVAL = 24 * 60 * 60 * 1000;
const TIMEOUT_CODE = 3008; // IANA "Timeout": the page gave up on a silent server

// The session protocol (PROTOCOL.md).
const DLE = '\u0010';
const MAX_SESSION_MESSAGE = 256; // bytes after the DLE (PROTOCOL.md, section 3)
const SESSION_VERSION = 1;
const RESUME_DEFAULTS = Object.freeze({ routeParam: undefined, buffer: 100 * 1024 });
const FIRST_WINDOW = 30000; // the window before any welcome announced the server's
const MESSAGE_OVERHEAD = 8; // weight of a kept message beyond its bytes
// Pacing (#flush): kept messages enter a socket while its bufferedAmount is under a quarter of
// resume.buffer, at most PACE_MAX; while they wait, the page looks again every PACE_POLL ms.
const PACE_MAX = 64 * 1024;
const PACE_POLL = 10;
const ID = /^[0-9a-f]{32}$/;
// A Close with any code ends a session except 1011, which parks it; 1006 and 1015 are what a
// browser reports when no Close came at all (a broken connection), so they park it too.
const PARKING_CODES = Object.freeze([1006, 1011, 1015]);
// The protocol's 1002 ("protocol error") is a code a page may not send (WebSocket.close takes
// 1000 and 3000-4999): the page sends this one instead. Any Close ends the session all the same.
const PROTOCOL_ERROR_CODE = 4002;
const TRY_AGAIN_CODE = 1013; // try again later: backoff as after a failed attempt (for a hello: the sessions' memory budget)
const DRAINING_CODES = [1012, 1001]; // service restart, going away: come back within backoff.initial, spread
const FINISHED_CODE = 1012; // after a finish (PROTOCOL.md, section 8): the session is done, the next one starts
const VERSION_CODE = 4400; // the server chose a version this page does not speak
const MAX_TIMER = 2 ** 31 - 1; // a longer setTimeout fires at once: such a window never expires here

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
 * `e.reason`, `e.attempt`, `e.delay`, `e.unconfirmed`, `e.unsent`, `e.error`), `rtt` (`e.rtt`),
 * and with `resume`, `sessionlost` (`e.cause`, `e.unconfirmed`, `e.reason`, `e.code`).
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
  #session = null; // with `resume`: the session that outlives the sockets (see startSession)
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
    resumes: 0,
    newSessions: 0,
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
    if (o.resume) this.#session = startSession(url, o, this.#shape);
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

  /**
   * Counters since construction (a copy). `buffered`: messages waiting to go out now (the
   * queue; with `resume`, kept messages not yet sent on the current socket). `kept`,
   * `keptBytes`: with `resume`, the messages kept until acknowledged and their weight.
   */
  get stats() {
    const s = this.#session;
    if (!s) return { ...this.#stats, buffered: this.#queue.length, kept: 0, keptBytes: 0 };
    const sentHere = this.#conn?.welcomed ? this.#conn.upTo : s.acked;
    return { ...this.#stats, buffered: s.acked + s.out.length - sentHere, kept: s.out.length, keptBytes: s.outBytes };
  }

  /**
   * Sends at once when connected; otherwise queues the message (up to `buffer`), to be sent
   * in order after the next connect and its `onConnect` hook. Returns false, taking nothing,
   * when the queue is full (counted in `stats.dropped`) or the socket is closing or closed.
   * With `resume`, see #keep: kept, and sent as the socket drains.
   */
  send(data) {
    if (this.#final) return false;
    if (this.#session) return this.#keep(data);
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
    this.#final = true; // with `resume`, the session ends too: the Close tells the server
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    const left = this.#discard();
    const conn = this.#conn;
    if (conn?.ws.readyState === OPEN) {
      stopBeat(conn);
      clearTimeout(conn.paceTimer); // the kept messages are let go
      conn.closeTimer = setTimeout(() => this.#ended(conn, 'close', { code, reason, ...left }), this.#options.closeTimeout);
      this.#setState('closing', 'close', { code, reason, ...left });
      conn.onClose = (e) => this.#ended(conn, 'close', { code: e.code, reason: e.reason, ...left });
      try {
        conn.ws.close(code, reason);
      } catch (error) {
        this.#ended(conn, 'close', { code, reason, ...left, error });
      }
    } else {
      if (conn) this.#drop(conn, 1000, 'closed by the page');
      this.#conn = null;
      this.#setState('closed', 'close', { code, reason, ...left });
    }
  }

  // --- connections -----------------------------------------------------------------------

  #connect(state, why, fields = {}) {
    const { WebSocket, protocols, connectTimeout } = this.#options;
    if (state !== this.#state || why !== 'start') this.#setState(state, why, fields);
    if (this.#final) return; // a listener of that event called close()
    const conn = { ws: null, beat: false, tickTimer: null, connectTimer: null, closeTimer: null, paceTimer: null, onClose: null };
    this.#conn = conn;
    try {
      const url = this.#session?.url ?? this.#url;
      conn.ws = protocols === undefined ? new WebSocket(url) : new WebSocket(url, protocols);
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
    // With `resume`, the hello is the first frame; the rest waits for the welcome (#welcome).
    if (this.#session) this.#hello(conn);
    // With `resume` and `control`, ticks still run: they send no ping, only the acks due.
    if (this.#shape.ping !== undefined || this.#session) {
      conn.beat = true;
      const first = this.#options.jitter ? Math.max(1, Math.ceil(Math.random() * this.#interval)) : this.#interval;
      conn.nextTick = now + first;
      conn.tickTimer = setTimeout(() => this.#tick(conn), first);
    }
    if (this.#session) return; // connected at the welcome, within connectTimeout
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
    if (this.#session && conn.openedAt !== undefined) {
      this.#sessionClosed(conn, e);
      return;
    }
    const fields = { code: e.code, reason: e.reason, unconfirmed: conn.sentSinceHeard ?? 0 };
    if (conn.openedAt !== undefined && this.#isFinal(e.code)) {
      this.#drop(conn);
      this.#conn = null;
      this.#final = true;
      this.#stats.unconfirmed += fields.unconfirmed;
      this.#setState('closed', 'final-code', { ...fields, ...this.#discard() });
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
    // With `resume`, a socket that sent its hello is left open: any Close would end the session
    // on the server (PROTOCOL.md, section 6) and a page cannot send 1011, the code that parks
    // it. The server drops that socket when the session resumes on the next one (or finds it
    // dead, the page no longer answering on it).
    const code = this.#session && conn.openedAt !== undefined ? undefined : TIMEOUT_CODE;
    this.#drop(conn, code, clip(reason));
    this.#lost(conn, why, { code, reason, error });
  }

  /** Stops everything a connection runs; its socket's later events are ignored. */
  #drop(conn, code, reason) {
    stopBeat(conn);
    clearTimeout(conn.connectTimer);
    clearTimeout(conn.closeTimer);
    clearTimeout(conn.paceTimer);
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
    const s = this.#session;
    // With `resume` nothing sent is at risk yet: what the server lacks is sent again.
    const unconfirmed = s ? undefined : conn.sentSinceHeard ?? 0;
    if (!s) this.#stats.unconfirmed += unconfirmed;
    if (this.#final) return;
    const unstarted = (conn.busy || conn.finished) && s?.token === null;
    if (s && conn.openedAt !== undefined && s.windowEnds === null && !unstarted) this.#park();
    // Stable: connected, and heard from, for `stableAfter`. A server that accepts and then
    // says nothing is found dead after interval × maxMissed, which may exceed the window: that
    // must not restart the count. (With control frames the page hears no heartbeat: up is enough.)
    const upTo = this.#options.heartbeat === 'control' ? Date.now() : conn.lastHeard;
    const stable = conn.connectedAt !== undefined && upTo - conn.connectedAt >= this.#options.stableAfter;
    // A draining server (1012, 1001): the next attempt within [0, backoff.initial), whatever
    // came before, so that its clients come back spread, not in a spike. 1013: the count grows
    // as after a failed attempt, however long the connection was up.
    const draining = DRAINING_CODES.includes(fields?.code);
    if (draining || (stable && fields?.code !== TRY_AGAIN_CODE)) this.#retries = 0;
    this.#retries += 1;
    const { initial, factor, max, maxRetries } = this.#options.backoff;
    const detail = { ...fields, unconfirmed, attempt: this.#retries };
    if (this.#retries > maxRetries) {
      this.#final = true;
      this.#setState('closed', 'gave-up', { ...detail, ...this.#discard(), cause: why });
      return;
    }
    const ceiling = Math.min(max, initial * factor ** (this.#retries - 1));
    let delay = Math.random() * ceiling; // full jitter
    // With `resume`, an attempt comes before the window ends, a quarter of what is left kept
    // for it to reach the server (as the Rust client does).
    if (s && s.windowEnds !== null) delay = Math.min(delay, ((s.windowEnds - Date.now()) * 3) / 4);
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
    if (this.#session) {
      this.#setState('closed', why, fields); // #discard counted them at close()
      return;
    }
    this.#stats.unconfirmed += conn.sentSinceHeard ?? 0;
    this.#setState('closed', why, { ...fields, unconfirmed: conn.sentSinceHeard ?? 0 });
  }

  /**
   * The socket ends for good: what it still holds is counted and let go. Without `resume`, the
   * queue (`unsent`); with it, the kept messages (`unconfirmed`: never acknowledged, sent or
   * not; `unsent`: those of them never sent at all).
   */
  #discard() {
    const s = this.#session;
    if (!s) {
      const unsent = this.#queue.length;
      this.#stats.unsent += unsent;
      this.#queue = [];
      return { unsent };
    }
    this.#unpark();
    const unconfirmed = s.out.length;
    const unsent = s.acked + unconfirmed - s.transmitted;
    this.#stats.unconfirmed += unconfirmed;
    this.#stats.unsent += unsent;
    s.out = [];
    s.outBytes = 0;
    return { unconfirmed, unsent };
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
    if (this.#shape.ping !== undefined) {
      conn.seq += 1;
      conn.latestSentAt = now;
      conn.pingsSinceHeard += 1;
      conn.lastPingDue = due;
      this.#stats.pings += 1;
      if (conn.ws.readyState === OPEN) conn.ws.send(this.#ping(conn.seq, interval));
    }
    // PROTOCOL.md, section 2: an ack at every tick if data arrived since the last one.
    const s = this.#session;
    if (s && conn.welcomed && s.received > s.told) this.#ack(conn);
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
      // With `resume`, the heartbeat has had its look (an escaped frame begins with DLE, which
      // no heartbeat shape takes); now the session layer reads it.
      if (this.#session) this.#sessionFrame(conn, data);
      else this.#emit('message', { data });
    } else if (verdict.answer !== undefined) {
      if (conn.ws.readyState === OPEN) conn.ws.send(verdict.answer);
    } else {
      this.#answered(conn, verdict.seq);
    }
    // Kept messages waiting for the socket to drain: a look at every frame that arrives too.
    if (conn.paceTimer !== null && this.#current(conn) && !this.#final) this.#flush(conn);
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

  // --- the session (option `resume`, PROTOCOL.md) -------------------------------------------

  /**
   * `send` with `resume`: the message is numbered (its place in the outbox) and kept until the
   * server's received count covers it; it is sent behind the kept messages not sent yet, once
   * the socket has drained to the bound of #flush (at once if the session is up and nothing
   * waits; else at the next welcome). The outbox holds at most `resume.buffer` bytes of weight;
   * a message that would pass that is refused and not taken. (The socket's `bufferedAmount`
   * decides when a kept message goes, not whether it is taken: it stays counted after the
   * socket has written it, until it is acknowledged.)
   */
  #keep(data) {
    const s = this.#session.next ?? this.#session; // after the server's finish: the next session's
    if (typeof data !== 'string' && !isBinary(data) && !isBlob(data)) data = String(data); // as WebSocket.send does
    const weight = weightOf(data) + MESSAGE_OVERHEAD;
    if (s.outBytes + weight > s.buffer) {
      this.#stats.dropped += 1;
      return false;
    }
    s.out.push({ frame: this.#escape(data), weight });
    s.outBytes += weight;
    if (this.#conn?.welcomed && s === this.#session) this.#flush(this.#conn);
    return true;
  }

  /**
   * Sends, in order, the kept messages this socket has not carried yet, no faster than the
   * socket drains: the next one goes only while the socket's `bufferedAmount` is under the
   * session's bound (`s.pace`: a quarter of `resume.buffer`, at most 64 KiB), so the socket
   * holds at most the bound plus one message of them. A resume's backlog (up to the whole
   * buffer) then waits in the outbox, where it is kept anyway, instead of queueing in a socket
   * that a slow or freshly cut link drains slowly, in front of the page's acks and answers
   * (sent at once, they wait behind at most the bound). The bound: the whole buffer would never
   * hold anything back (what the socket has not written is kept messages, and the small session
   * and heartbeat frames); a quarter, the server's acknowledgement step, still leaves a step
   * waiting to be written between two looks; at most 64 KiB, so that on a slow link the page's
   * own frames wait behind little. What `send` takes meanwhile goes behind the backlog. While messages wait for the bound, the page looks again every
   * 10 ms and at every frame that arrives (a hidden tab's throttled timers do not stall it
   * while the server talks); no timer runs when nothing waits. A socket without
   * `bufferedAmount` is not paced. `bound` Infinity: everything at once (before a finish).
   */
  #flush(conn, bound = this.#session.pace) {
    const s = this.#session;
    const ws = conn.ws;
    const numbered = s.acked + s.out.length;
    while (conn.upTo < numbered && ws.readyState === OPEN && (ws.bufferedAmount ?? 0) < bound) {
      this.#transmit(conn, s.out[conn.upTo - s.acked].frame);
      conn.upTo += 1;
    }
    if (conn.upTo > s.transmitted) s.transmitted = conn.upTo;
    const waiting = conn.upTo < numbered && ws.readyState === OPEN;
    if (waiting && conn.paceTimer === null) {
      conn.paceTimer = setTimeout(() => {
        conn.paceTimer = null;
        if (this.#current(conn) && !this.#final) this.#flush(conn);
      }, PACE_POLL);
    } else if (!waiting && conn.paceTimer !== null) {
      clearTimeout(conn.paceTimer);
      conn.paceTimer = null;
    }
  }

  /**
   * The frame that carries a data message (PROTOCOL.md, section 1): two DLEs in front when it
   * begins with one or could pass for a heartbeat. Binary is copied either way, so a page that
   * reuses its buffer after `send` cannot change a kept message before it is sent again.
   */
  #escape(data) {
    if (typeof data === 'string') {
      return data.charCodeAt(0) === 0x10 || this.#lookalike(data) ? DLE + DLE + data : data;
    }
    // A Blob's bytes cannot be read at once: it is always escaped, which the protocol allows.
    if (isBlob(data)) return new Blob([Uint8Array.of(0x10, 0x10), data]);
    const bytes = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
    const skip = bytes[0] === 0x10 || this.#lookalike(bytes) ? 2 : 0;
    const frame = new Uint8Array(skip + bytes.length);
    frame.fill(0x10, 0, skip);
    frame.set(bytes, skip);
    return frame.buffer;
  }

  /** Could the heartbeat take this data for one of its own frames? (PROTOCOL.md's table) */
  #lookalike(data) {
    const { heartbeat } = this.#options;
    const shape = this.#shape;
    if (heartbeat === 'text') return data === shape.ping || data === shape.pong;
    if (heartbeat === 'binary') return typeof data !== 'string' && classify('binary', shape, data) !== null;
    if (heartbeat !== 'json' || typeof data !== 'string' || data.length > MAX_HEARTBEAT_BYTES) return false;
    if (!opensObject(data)) return false;
    if (!data.includes(shape.ping) && !data.includes(shape.pong) && !data.includes('\\')) return false;
    return utf8Length(data) <= MAX_HEARTBEAT_BYTES;
  }

  /** The first frame on every socket: start the session, or resume it. */
  #hello(conn) {
    const s = this.#session;
    conn.welcomed = false;
    conn.upTo = 0;
    conn.resuming = s.token !== null; // until a welcome came, `new` again: a repeat is a resume from 0
    const words = conn.resuming ? ['resume', s.sid, s.token, s.received] : ['new', s.sid, s.secret, s.buffer];
    conn.ws.send(`${DLE}hello ${SESSION_VERSION} ${words.join(' ')}`);
    s.told = s.received; // the hello carries our count: the server's kept messages are acknowledged
    s.bytesSinceAck = 0;
  }

  /** A frame the heartbeat took for data: a session message, or a data message (escaped or not). */
  #sessionFrame(conn, data) {
    const s = this.#session;
    if (typeof data === 'string' && data.charCodeAt(0) === 0x10) {
      if (data.charCodeAt(1) !== 0x10) {
        if (this.#final) return; // closing: the session is over
        if (utf8Length(data) - 1 > MAX_SESSION_MESSAGE) this.#violation('a session message over 256 bytes');
        else this.#command(conn, data.slice(1).split(' '));
        return;
      }
      data = data.slice(2);
    } else if (data instanceof ArrayBuffer && data.byteLength > 0 && new Uint8Array(data)[0] === 0x10) {
      if (data.byteLength < 2 || new Uint8Array(data)[1] !== 0x10) {
        this.#violation('a binary frame began with 0x10 but not 0x10 0x10');
        return;
      }
      data = data.slice(2);
    }
    if (this.#final) {
      this.#emit('message', { data }); // closing: delivered as without `resume`, no longer counted
      return;
    }
    if (!conn.welcomed) {
      this.#violation('data before the welcome');
      return;
    }
    s.received += 1;
    s.bytesSinceAck += weightOf(data) + 8; // as the server's buffer weighs it
    this.#emit('message', { data });
    // PROTOCOL.md, section 2: an ack at once when a quarter of the server's buffer came since the last
    // (each message weighing its payload plus 8, so that tiny ones cannot fill the server's buffer unseen);
    // section 8: after our finish, at once for every message, so that the server may close.
    const due = s.bytesSinceAck >= s.ackEvery || s.next !== null;
    if (this.#conn === conn && !this.#final && due) this.#ack(conn);
  }

  /** A session message from the server. Names this version does not know are ignored. */
  #command(conn, words) {
    if (words[0] === 'welcome') this.#welcome(conn, words);
    else if (words[0] === 'ack') this.#acked(conn, words);
    else if (words[0] === 'finish') this.#finish(conn, words);
    else if (words[0] === 'hello') this.#violation('a hello to a client');
  }

  /** `welcome 1 <token> <received> <buffer> <window>`: the session is up on this socket. */
  #welcome(conn, [, version, token, received, buffer, window]) {
    const s = this.#session;
    const [v, r, b, w] = [version, received, buffer, window].map(count);
    if (conn.welcomed || !ID.test(token ?? '') || [v, r, b, w].some(Number.isNaN)) {
      this.#violation(conn.welcomed ? 'a second welcome' : 'a malformed welcome');
      return;
    }
    if (v !== SESSION_VERSION) {
      this.#violation(`session version ${version} chosen, this page speaks ${SESSION_VERSION}`, VERSION_CODE);
      return;
    }
    if (r < s.acked || r > s.transmitted) {
      this.#violation(`welcome with received ${r}: acknowledged ${s.acked}, sent ${s.transmitted}`);
      return;
    }
    this.#release(r);
    // A quarter of the server's buffer, in whole bytes and at least one, as the Rust side counts it.
    Object.assign(s, { token, ackEvery: Math.max(1, Math.floor(b / 4)), window: w });
    this.#unpark();
    clearTimeout(conn.connectTimer);
    conn.welcomed = true;
    conn.upTo = r;
    conn.connectedAt = Date.now();
    if (conn.resuming) this.#stats.resumes += 1;
    this.#flush(conn); // what the server lacks, in order, before anything new
    this.#setState('connected', conn.resuming ? 'resumed' : 'open');
  }

  /** `ack <received>`: the server has these; they are let go. */
  #acked(conn, [, received]) {
    const s = this.#session;
    const n = count(received);
    if (!conn.welcomed) this.#violation('an ack before the welcome');
    else if (Number.isNaN(n)) this.#violation('a malformed ack');
    else if (n < s.acked) this.#violation(`ack ${n} after ack ${s.acked}`);
    else if (n > conn.upTo) this.#violation(`ack ${n} of ${conn.upTo} sent`);
    else this.#release(n);
  }

  /**
   * `finish <received>` (PROTOCOL.md, section 8): the server drains. An acknowledgement; the
   * page answers `finish` with its own count, sends no more data on this session (what `send`
   * takes now is kept for the next one), and acknowledges every message still coming. Again
   * after a resume: the same answer.
   */
  #finish(conn, words) {
    const s = this.#session;
    if (!conn.welcomed) return this.#violation('a finish before the welcome');
    this.#acked(conn, words);
    if (this.#final) return; // the ack broke the protocol
    s.next ??= startSession(this.#url, this.#options, this.#shape);
    if (conn.ws.readyState !== OPEN) return;
    // No data may follow the answer (section 8): what pacing still holds back goes first.
    this.#flush(conn, Infinity);
    conn.ws.send(`${DLE}finish ${s.received}`);
    s.told = s.received;
    s.bytesSinceAck = 0;
  }

  /** Drops the kept messages numbered up to `n`, which the server has. */
  #release(n) {
    const s = this.#session;
    for (const { weight } of s.out.splice(0, n - s.acked)) s.outBytes -= weight;
    s.acked = n;
  }

  #ack(conn) {
    const s = this.#session;
    if (conn.ws.readyState !== OPEN) return;
    conn.ws.send(`${DLE}ack ${s.received}`);
    s.told = s.received;
    s.bytesSinceAck = 0;
  }

  /** The socket went down: the server keeps the session for its window, and so does the page. */
  #park() {
    const s = this.#session;
    s.windowEnds = Date.now() + s.window;
    if (s.window > MAX_TIMER) return;
    s.windowTimer = setTimeout(() => {
      const reason = `not resumed within the window of ${s.window} ms`;
      this.#endSession('session-lost', { reason }, 'window', TIMEOUT_CODE, 'session window passed');
    }, s.window);
  }

  /** The session is up again, or over: no window runs. */
  #unpark() {
    const s = this.#session;
    clearTimeout(s.windowTimer);
    s.windowTimer = null;
    s.windowEnds = null;
  }

  /** A Close from the server on a socket that sent its hello. */
  #sessionClosed(conn, e) {
    const fields = { code: e.code, reason: e.reason };
    const s = this.#session;
    if (PARKING_CODES.includes(e.code)) this.#lost(conn, 'closed', fields);
    else if (s.next && e.code === FINISHED_CODE) {
      // The server finished the session (PROTOCOL.md, section 8): with everything acknowledged,
      // the next one starts on the next socket, with what was sent since.
      if (s.out.length > 0) return this.#endSession('session-lost', fields, 'drained');
      this.#unpark();
      this.#session = s.next;
      conn.finished = true;
      this.#stats.newSessions += 1;
      this.#emit('sessionnew', { ...fields, kept: this.#session.out.length });
      this.#lost(conn, 'closed', fields);
    } else if ((e.code === TRY_AGAIN_CODE || DRAINING_CODES.includes(e.code)) && !conn.welcomed) {
      // The server holds nothing of a session it never welcomed: no window runs for it, the
      // page tries again after its backoff (a session already up keeps its window running).
      // Refused by a server that drains, a session never welcomed takes a new id: a balancer
      // routing on it (`routeParam`) then sends the next try elsewhere, not back to the same
      // server until it is gone. What it keeps goes with it.
      if (DRAINING_CODES.includes(e.code) && s.token === null) this.#session = renamed(s, this.#url, this.#options, this.#shape);
      conn.busy = true;
      this.#lost(conn, 'closed', fields);
    } else if (e.code === 4410) this.#endSession('session-lost', fields, 'refused');
    else this.#endSession('final-code', fields); // a kick, a log-out, 4400, 4409, 1008...
  }

  /** The server broke the protocol: the page ends the session (PROTOCOL.md, section 3). */
  #violation(reason, code = PROTOCOL_ERROR_CODE) {
    if (this.#final) return; // closing already
    this.#endSession('protocol-error', { code, reason }, 'protocol-error', code, clip(reason));
  }

  /**
   * The session is over: no reconnect. `cause` (refused, window, protocol-error) fires
   * `sessionlost` first; `closeCode` closes the socket in flight, if any.
   */
  #endSession(why, fields, cause, closeCode, closeReason) {
    const conn = this.#conn;
    if (conn) this.#drop(conn, closeCode, closeReason);
    this.#conn = null;
    this.#final = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    const left = this.#discard();
    if (cause) this.#emit('sessionlost', { ...fields, cause, unconfirmed: left.unconfirmed });
    this.#setState('closed', why, { ...fields, ...left });
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
    if (!opensObject(data)) return null;
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

/**
 * The session of a socket with `resume`: its id and secret (128 random bits each, made once),
 * the URL it dials, and the state both sides count (PROTOCOL.md, section 2).
 */
function startSession(url, o, shape) {
  if (o.resume !== true && typeof o.resume !== 'object') throw new TypeError('resume: true or { routeParam, buffer }');
  const { routeParam, buffer } = { ...RESUME_DEFAULTS, ...(o.resume === true ? {} : o.resume) };
  if (!Number.isSafeInteger(buffer) || buffer < 1) throw new RangeError('resume.buffer: bytes, an integer >= 1');
  if (routeParam !== undefined && (typeof routeParam !== 'string' || routeParam === '')) {
    throw new TypeError('resume.routeParam: a query parameter name');
  }
  // A session is one stream across sockets: per-socket messages would reach the server's
  // handler as data in the middle of it. What a login sends goes once, with send().
  if (o.onConnect) throw new TypeError('onConnect and resume: send what the session needs once, with send()');
  // An escaped frame begins with DLE: no heartbeat may (PROTOCOL.md, section 1). JSON ones begin with `{`.
  const dle = o.heartbeat === 'binary' ? (c) => c >> 8 === 0x10 : (c) => String(c).charCodeAt(0) === 0x10;
  if ((o.heartbeat === 'text' || o.heartbeat === 'binary') && (dle(shape.ping) || dle(shape.pong))) {
    throw new RangeError('shape: with resume, a heartbeat cannot begin with 0x10 (DLE)');
  }
  if (typeof globalThis.crypto?.getRandomValues !== 'function') throw new TypeError('resume needs crypto.getRandomValues');
  const sid = randomId();
  return {
    sid,
    secret: randomId(),
    buffer,
    url: routeParam === undefined ? url : routed(url, routeParam, sid),
    token: null, // the latest welcome's
    window: FIRST_WINDOW, // ms, the latest welcome's
    ackEvery: Infinity, // bytes (payload + 8 a message) between acks: a quarter of the latest welcome's buffer
    windowEnds: null, // while the session is down: when the window passes
    windowTimer: null,
    out: [], // kept messages { frame, weight }: number acked + 1 onwards
    outBytes: 0,
    pace: Math.min(PACE_MAX, Math.max(1, Math.floor(buffer / 4))), // bufferedAmount bound (#flush)
    acked: 0, // the server's received count
    transmitted: 0, // the highest number handed to any socket
    received: 0, // data messages delivered to the page
    told: 0, // the received count the server was last told
    bytesSinceAck: 0,
    next: null, // after the server's finish: the session that takes over, keeping what `send` takes
  };
}

/** A session never welcomed under a new id and secret (and URL), keeping what it holds. */
function renamed(s, url, o, shape) {
  const fresh = startSession(url, o, shape);
  return { ...s, sid: fresh.sid, secret: fresh.secret, url: fresh.url };
}

/** 32 lowercase hex digits from the platform's secure random source. */
function randomId() {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The URL with `param=sid` added to its query; the query's own text is kept as it was. */
function routed(url, param, sid) {
  const u = new URL(String(url), globalThis.location?.href);
  const pair = `${encodeURIComponent(param)}=${sid}`;
  u.search = u.search ? `${u.search.slice(1)}&${pair}` : pair;
  return u.href;
}

/**
 * Whether the first character of `text` that is not JSON white space (space, tab, line feed,
 * carriage return: not `trimStart`'s, which takes a byte order mark) is `{`.
 */
function opensObject(text) {
  let i = 0;
  while (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r') i += 1;
  return text[i] === '{';
}

/** A number of the session protocol: decimal, at most 20 digits, a u64; NaN otherwise. */
function count(word) {
  if (!/^[0-9]{1,20}$/.test(word ?? '') || BigInt(word) > 0xffffffffffffffffn) return NaN;
  return Number(word);
}

/** A message's bytes: UTF-8 for text, counted without encoding it. */
function weightOf(data) {
  if (typeof data === 'string') return utf8Length(data);
  return isBlob(data) ? data.size : data.byteLength;
}

/** The exact UTF-8 length of a string, from its UTF-16 code units (a lone surrogate is U+FFFD, 3 bytes). */
function utf8Length(text) {
  let n = text.length;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c < 0xdc00 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 2; // a surrogate pair: two units, four bytes
      i += 1;
    } else n += 2;
  }
  return n;
}

const isBinary = (data) => data instanceof ArrayBuffer || ArrayBuffer.isView(data);
const isBlob = (data) => typeof Blob === 'function' && data instanceof Blob;

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
