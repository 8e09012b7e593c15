// A small typed page against js/ws-heartbeat.d.ts: `tsc --noEmit -p tests/browser/types`
// fails if the declarations stop describing how the module is used (README, demo).
import {
  HeartbeatSocket,
  type HeartbeatState,
  type ResumeOptions,
  type SessionLostEvent,
  type SessionNewEvent,
  type StateEvent,
} from '../../../js/ws-heartbeat.js';

const socket = new HeartbeatSocket('wss://example.com/ws', {
  heartbeat: 'json',
  interval: 10000,
  maxMissed: 3,
  backoff: { initial: 500, factor: 2, max: 30000, maxRetries: Infinity },
  stableAfter: 30000,
  buffer: 256,
  finalCodes: [1000, 1008, [4000, 4999]],
  WebSocket: globalThis.WebSocket,
  onConnect: async (send) => {
    const sent: boolean = send(JSON.stringify({ type: 'login', token: 't' }));
    if (!sent) throw new Error('not sent');
  },
});

socket.addEventListener('message', (e) => console.log(e.data));
socket.addEventListener('state', (e: StateEvent) => {
  const state: HeartbeatState = e.state;
  const why: string = e.why;
  console.log(state, e.previous, why, e.code, e.attempt, e.delay, e.unconfirmed);
});
socket.addEventListener('rtt', (e) => console.log(e.rtt.toFixed(1)));
socket.onmessage = (e) => console.log(e.data);

const queued: boolean = socket.send('hello');
socket.send(new Uint8Array([1, 2, 3]));
socket.setInterval(60000);
const rtt: number | undefined = socket.rtt;
const { pings, answers, reconnects, unconfirmed, dropped, buffered } = socket.stats;
console.log(queued, rtt, socket.state, socket.interval, pings, answers, reconnects, unconfirmed, dropped, buffered);
document.addEventListener('visibilitychange', () => socket.setInterval(document.hidden ? 60000 : 10000));
socket.close(1000, 'logout');

// @ts-expect-error: not a heartbeat kind
new HeartbeatSocket('ws://x', { heartbeat: 'xml' });
// @ts-expect-error: send takes data
socket.send();

// A session (PROTOCOL.md): resumed across reconnects, routed by its id.
const resume: ResumeOptions = { routeParam: 'ws_session', buffer: 1 << 20 };
const session = new HeartbeatSocket('wss://example.com/ws', { resume });
new HeartbeatSocket('wss://example.com/ws', { resume: true });
session.addEventListener('sessionlost', (e) => {
  const cause: 'refused' | 'window' | 'protocol-error' | 'drained' = e.cause;
  console.log(cause, e.unconfirmed.toFixed(0), e.reason, e.code);
});
session.onsessionlost = (e: SessionLostEvent) => console.log(e.unconfirmed);
// A drain finished the session: a new one starts, carrying what was sent meanwhile.
session.addEventListener('sessionnew', (e) => console.log(e.code, e.reason, e.kept.toFixed(0)));
session.onsessionnew = (e: SessionNewEvent) => console.log(e.kept, session.stats.newSessions);
session.addEventListener('state', (e) => e.why === 'resumed' || e.why === 'session-lost' || e.why === 'protocol-error');
const { resumes, kept, keptBytes } = session.stats;
if (!session.send('once, in order')) console.log('kept messages full', resumes, kept, keptBytes);
// @ts-expect-error: routeParam is a name
new HeartbeatSocket('ws://x', { resume: { routeParam: 1 } });
