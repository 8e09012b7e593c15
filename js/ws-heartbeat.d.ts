// Type declarations of ws-heartbeat.js, written by hand and checked in CI (`tsc --noEmit`
// over js/types-check.ts).

/** The heartbeat's shape on the wire; the server's `HeartbeatLayer::protocol` must match. */
export type HeartbeatKind = 'json' | 'text' | 'binary' | 'control';

/** The life of a `HeartbeatSocket`. */
export type HeartbeatState = 'connecting' | 'connected' | 'reconnecting' | 'closing' | 'closed';

/**
 * Why the state changed: `open` (connected, hook done), `retry` (a new attempt starts),
 * `dead` (the server stayed silent), `closed` (the connection ended without a final code),
 * `error` (the socket failed), `timeout` (not connected within `connectTimeout`), `hook`
 * (`onConnect` threw), `final-code` (the server closed with a final code: a kick or a
 * log-out), `gave-up` (more than `maxRetries` failures in a row), `close` (the page called
 * `close()`).
 */
export type StateWhy =
  | 'open' | 'retry' | 'dead' | 'closed' | 'error' | 'timeout' | 'hook' | 'final-code' | 'gave-up' | 'close';

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

/** What can be sent: what `WebSocket.send` takes. */
export type SendData = string | ArrayBufferLike | ArrayBufferView | Blob;

/** A `WebSocket`-compatible constructor: the browser's, or the `ws` package's in Node. */
export interface WebSocketConstructor {
  new (url: string | URL, protocols?: string | string[]): WebSocketLike;
}

/** The part of a WebSocket the module uses. */
export interface WebSocketLike {
  readonly readyState: number;
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
  /** Messages kept while disconnected (256). */
  buffer?: number;
  /** Server close codes that end the socket: a number or an inclusive `[from, to]` range
   *  (1000, 1008, 4000–4999). */
  finalCodes?: Array<number | [number, number]>;
  /** The WebSocket constructor (globalThis.WebSocket). */
  WebSocket?: WebSocketConstructor;
  /** Subprotocols, passed to the constructor. */
  protocols?: string | string[];
  /** Overrides of the heartbeat messages' shape. */
  shape?: HeartbeatShape;
  /** Runs after each open, before buffered messages flow; `send` writes on this connection
   *  at once. A throw or a rejection is a failed attempt. */
  onConnect?: (send: (data: SendData) => boolean) => void | Promise<void>;
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
  /** Messages handed to connections that were lost before the server was heard from again. */
  unconfirmed: number;
  /** Messages refused by `send` because the buffer was full. */
  dropped: number;
  /** Buffered messages discarded when the socket ended. */
  unsent: number;
  /** Messages waiting in the buffer now. */
  buffered: number;
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
  /** Messages handed to the lost connection after the server was last heard from. */
  readonly unconfirmed?: number;
  /** Buffered messages discarded (closed). */
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

export interface HeartbeatSocketEventMap {
  message: MessageEventLike;
  state: StateEvent;
  rtt: RttEvent;
}

export declare class HeartbeatSocket extends EventTarget {
  /** Throws what the WebSocket constructor throws on the first attempt (a bad URL), and
   *  RangeError or TypeError for a bad option. */
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
  /** Sends, or buffers while not connected; false when refused (buffer full, or closed). */
  send(data: SendData): boolean;
  /** Changes the page's interval now; the server is told in the next ping (sent at once). */
  setInterval(ms: number): void;
  /** Ends the socket: no reconnect after. `code` is 1000 or 3000–4999 (else RangeError),
   *  `reason` at most 123 bytes of UTF-8 (else SyntaxError). */
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
