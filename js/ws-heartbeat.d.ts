// Type declarations of ws-heartbeat.js, written by hand and checked in CI (`tsc --noEmit`
// over js/types-check.ts).

/** The heartbeat's shape on the wire; the server's `HeartbeatLayer::protocol` must match. */
export type HeartbeatKind = 'json' | 'text' | 'binary' | 'control';

/** The life of a `HeartbeatSocket`. */
export type HeartbeatState = 'connecting' | 'connected' | 'reconnecting' | 'closing' | 'closed';

/**
 * Why the state changed: `open` (connected, hook done; with `resume`, the first welcome),
 * `resumed` (with `resume`: a later welcome), `retry` (a new attempt starts), `dead` (the
 * server stayed silent), `closed` (the connection ended without a final code), `error` (the
 * socket failed), `timeout` (not connected within `connectTimeout`), `hook` (`onConnect`
 * threw), `final-code` (the server closed with a final code: a kick or a log-out; with
 * `resume`, any code but 1011 and 4410), `gave-up` (more than `maxRetries` failures in a row),
 * `close` (the page called `close()`), `session-lost` (with `resume`: refused with 4410, or not
 * resumed within the window), `protocol-error` (with `resume`: the server broke PROTOCOL.md).
 */
export type StateWhy =
  | 'open' | 'resumed' | 'retry' | 'dead' | 'closed' | 'error' | 'timeout' | 'hook' | 'final-code' | 'gave-up'
  | 'close' | 'session-lost' | 'protocol-error';

export interface Backoff {
  /** Ceiling of the first retry's delay, ms (500). */
  initial?: number;
  /** Growth of the ceiling per failure in a row (2). */
  factor?: number;
  /** Largest ceiling, ms (30 000). */
  max?: number;
  /** Failures in a row before giving up (Infinity). */
  maxRetries?: number;
}

/** Overrides of the heartbeat messages: JSON `field`/`ping`/`pong` strings, text strings, or binary command numbers. */
export interface HeartbeatShape {
  field?: string;
  ping?: string | number;
  pong?: string | number;
}

/**
 * The session protocol (PROTOCOL.md): every message `send` takes reaches the server's handler
 * once and in order, and every message of the server's reaches the page once and in order,
 * across reconnects, for as long as the server keeps the session (its window).
 */
export interface ResumeOptions {
  /** Adds `<routeParam>=<session id>` to every socket's URL, for a load balancer to route on
   *  (nginx: `hash $arg_ws_session consistent;`). Unset: the URL as given. */
  routeParam?: string;
  /** Bytes of messages kept until the server acknowledges them (100 KiB = 102 400): each weighs
   *  its UTF-8 or binary length plus 8; `send` returns false when one would not fit. Kept
   *  messages enter the socket in order and only while its `bufferedAmount` is under a quarter
   *  of this, at most 64 KiB (so the socket holds at most that plus one message of them): a
   *  resume's backlog goes out as the socket drains, not in one burst in front of the page's
   *  acknowledgements and answers; meanwhile the page looks again every 10 ms and at each frame
   *  that arrives. */
  buffer?: number;
}

/** What can be sent: what `WebSocket.send` takes. */
export type SendData = string | ArrayBufferLike | ArrayBufferView | Blob;

/** A `WebSocket`-compatible constructor: the browser's, or the `ws` package's in Node. */
export interface WebSocketConstructor {
  new (url: string | URL, protocols?: string | string[]): WebSocketLike;
}

/** The part of a WebSocket the module uses. */
export interface WebSocketLike {
  readonly readyState: number;
  /** Bytes sent and not yet written out; with `resume`, kept messages wait while it is at the
   *  bound (see `ResumeOptions.buffer`). Absent: no pacing. */
  readonly bufferedAmount?: number;
  binaryType: string;
  send(data: any): void;
  close(code?: number, reason?: string): void;
  addEventListener?(type: string, listener: (event: any) => void): void;
}

export interface HeartbeatSocketOptions {
  /** `json` (default), `text`, `binary`, or `control` (the server pings with WebSocket Ping
   *  frames, the browser answers them itself; the page sends none and cannot see them). */
  heartbeat?: HeartbeatKind;
  /** ms between ticks; each tick sends the page's ping (10 000). */
  interval?: number;
  /** Unanswered pings in a row that make the server dead (3). */
  maxMissed?: number;
  /** First tick at a random point of the first interval (true). */
  jitter?: boolean;
  backoff?: Backoff;
  /** A connection whose server was heard from for this long (ms) after it connected restarts
   *  the retry count when it ends (30 000); with `control`, one up this long. */
  stableAfter?: number;
  /** An attempt not connected (open and `onConnect` done) within this many ms fails (10 000). */
  connectTimeout?: number;
  /** After `close()`, how long to wait for the server's Close, ms (1 000). */
  closeTimeout?: number;
  /** Messages kept while disconnected (256). Not used with `resume`, whose buffer is in bytes. */
  buffer?: number;
  /** Server close codes that end the socket: a number or an inclusive `[from, to]` range
   *  (1000, 1008, 4000–4999). With `resume`, the protocol decides: every Close but 1011 ends it,
   *  and 1013 in answer to a hello (the server's sessions at their memory budget) is tried again. */
  finalCodes?: Array<number | [number, number]>;
  /** The WebSocket constructor (globalThis.WebSocket). */
  WebSocket?: WebSocketConstructor;
  /** Subprotocols, passed to the constructor. */
  protocols?: string | string[];
  /** Overrides of the heartbeat messages' shape. */
  shape?: HeartbeatShape;
  /** Runs after each open, before buffered messages flow; `send` writes on this connection
   *  at once. A throw or a rejection is a failed attempt. Not with `resume` (TypeError): a
   *  session is one stream, so what a login sends goes once, with `send`. */
  onConnect?: (send: (data: SendData) => boolean) => void | Promise<void>;
  /** Speak the session protocol (PROTOCOL.md); the server must too (`ws_heartbeat::resume`).
   *  `true` for the defaults. Every socket starts with a hello; messages are numbered, kept
   *  until acknowledged and sent again after a reconnect. */
  resume?: boolean | ResumeOptions;
}

export interface HeartbeatStats {
  /** Pings the page sent. */
  pings: number;
  /** Matched answers to them. */
  answers: number;
  /** Attempts made after a lost connection. */
  reconnects: number;
  /** Servers found dead by the page. */
  deaths: number;
  /** Messages the page handed to a connection. */
  sent: number;
  /** Messages received, heartbeats included. */
  received: number;
  /** Messages handed to connections that were lost before the server was heard from again.
   *  With `resume`: messages never acknowledged when the session ended. */
  unconfirmed: number;
  /** Messages refused by `send` because the buffer was full. */
  dropped: number;
  /** Buffered messages discarded when the socket ended. With `resume`: of the unconfirmed,
   *  those never sent at all. */
  unsent: number;
  /** Messages waiting to go out now: the buffer; with `resume`, kept messages not yet sent on
   *  the current socket (all of them while disconnected). */
  buffered: number;
  /** With `resume`: welcomes that resumed the session on a new socket. */
  resumes: number;
  /** With `resume`: sessions the server finished in a drain, each followed by a new one
   *  (`sessionnew`). */
  newSessions: number;
  /** With `resume`: messages kept until the server acknowledges them, sent or not (else 0). */
  kept: number;
  /** With `resume`: their weight in bytes, against `resume.buffer` (else 0). The socket's
   *  `bufferedAmount` is another thing: bytes not yet written, acknowledged or not. */
  keptBytes: number;
}

/** An event of a `HeartbeatSocket`; the fields are on the event itself. */
export declare class HeartbeatEvent extends Event {
  constructor(type: string, fields?: object);
}

export interface MessageEventLike extends HeartbeatEvent {
  readonly data: any;
}

export interface StateEvent extends HeartbeatEvent {
  readonly state: HeartbeatState;
  readonly previous: HeartbeatState;
  readonly why: StateWhy;
  /** The close code involved, if any. */
  readonly code?: number;
  readonly reason?: string;
  /** Failures in a row, this one included (reconnecting, gave-up). */
  readonly attempt?: number;
  /** ms until the next attempt (reconnecting). */
  readonly delay?: number;
  /** Messages handed to the lost connection after the server was last heard from. With
   *  `resume`, only when the session ends (closing, closed): messages never acknowledged. */
  readonly unconfirmed?: number;
  /** Buffered messages discarded (closed). With `resume`: of the unconfirmed, those never sent. */
  readonly unsent?: number;
  /** What failed, when something threw (hook, error). */
  readonly error?: unknown;
  /** For `gave-up`: why the last attempt failed. */
  readonly cause?: StateWhy;
}

export interface RttEvent extends HeartbeatEvent {
  /** The round trip in ms. */
  readonly rtt: number;
}

/**
 * With `resume`: the session is gone with messages the server may never have had. Fired just
 * before the state event `closed` (why `session-lost` or `protocol-error`).
 */
export interface SessionLostEvent extends HeartbeatEvent {
  /** `refused`: the server closed with 4410 (it does not hold the session: its window passed,
   *  it restarted); `window`: not resumed within the window since the socket went down (the
   *  latest welcome's; 30 s before any); `protocol-error`: the server broke PROTOCOL.md, the
   *  page closed with 4002 (or 4400 for a version it does not speak); `drained`: the server
   *  closed a finishing session (1012) with messages of the page unacknowledged. */
  readonly cause: 'refused' | 'window' | 'protocol-error' | 'drained';
  /** Messages `send` took that the server never acknowledged, sent or not. */
  readonly unconfirmed: number;
  readonly reason: string;
  /** 4410 (refused), 4002 or 4400 (protocol-error). */
  readonly code?: number;
}

/**
 * With `resume`: the server drained and finished the session (PROTOCOL.md, section 8): all
 * either side sent on it was delivered once. The next socket starts a new session, carrying
 * what `send` took since, in order. The old server is going away with what it held for the
 * session: state kept there (subscriptions, a login) must be set up again, as after a fresh
 * start. Fired as the socket closes, before the state event `reconnecting`.
 */
export interface SessionNewEvent extends HeartbeatEvent {
  /** 1012: the server's Close after the finish. */
  readonly code: number;
  readonly reason: string;
  /** Messages `send` took during the finish, kept for the new session. */
  readonly kept: number;
}

export interface HeartbeatSocketEventMap {
  message: MessageEventLike;
  state: StateEvent;
  rtt: RttEvent;
  sessionlost: SessionLostEvent;
  sessionnew: SessionNewEvent;
}

export declare class HeartbeatSocket extends EventTarget {
  /** Throws what the WebSocket constructor throws on the first attempt (a bad URL), and
   *  RangeError or TypeError for a bad option (with `resume`: `onConnect`, a heartbeat shape
   *  that begins with 0x10, a `resume.buffer` not an integer >= 1). */
  constructor(url: string | URL, options?: HeartbeatSocketOptions);
  readonly state: HeartbeatState;
  /** The latest round trip in ms, undefined before the first. */
  readonly rtt: number | undefined;
  /** The page's interval in ms. */
  readonly interval: number;
  readonly stats: HeartbeatStats;
  onmessage: ((event: MessageEventLike) => void) | null | undefined;
  onstate: ((event: StateEvent) => void) | null | undefined;
  onrtt: ((event: RttEvent) => void) | null | undefined;
  onsessionlost: ((event: SessionLostEvent) => void) | null | undefined;
  onsessionnew: ((event: SessionNewEvent) => void) | null | undefined;
  /** Sends, or buffers while not connected; false when refused (buffer full, or closed). With
   *  `resume`: numbers and keeps the message, sent now if the session is up and nothing kept
   *  waits for the socket to drain (else behind those, see `ResumeOptions.buffer`); false when
   *  the kept messages would pass `resume.buffer` bytes (an acknowledgement makes room). */
  send(data: SendData): boolean;
  /** Changes the page's interval now; the server is told in the next ping (sent at once). */
  setInterval(ms: number): void;
  /** Ends the socket: no reconnect after; with `resume`, the Close ends the session on the
   *  server too. `code` is 1000 or 3000–4999 (else RangeError), `reason` at most 123 bytes of
   *  UTF-8 (else SyntaxError). */
  close(code?: number, reason?: string): void;
  addEventListener<K extends keyof HeartbeatSocketEventMap>(
    type: K,
    listener: (this: HeartbeatSocket, event: HeartbeatSocketEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof HeartbeatSocketEventMap>(
    type: K,
    listener: (this: HeartbeatSocket, event: HeartbeatSocketEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}
