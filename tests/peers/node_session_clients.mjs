// Node clients of the browser module (js/ws-heartbeat.js) with sessions, for
// tests/rolling_restart.rs: N HeartbeatSocket clients (`ws` as their WebSocket, resume with
// routeParam ws_session, control-frame heartbeat as the Rust servers use), each sending
// `nd<i> <seq>` every EVERY_MS. On a line `stop` on stdin they stop sending; on a line
// `report` they print one JSON line: per client the last number sent, the sessions lost,
// the new sessions, whether it closed, the echoes and any out of order. They run until
// killed. Usage: node_session_clients.mjs URL N EVERY_MS
import { createInterface } from 'node:readline';
import { WebSocket } from 'ws';
import { HeartbeatSocket } from '../../js/ws-heartbeat.js';

const [url, n, every] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const clients = [];
let sending = true;
for (let i = 0; i < n; i += 1) {
  const socket = new HeartbeatSocket(url, {
    WebSocket,
    heartbeat: 'control',
    resume: { routeParam: 'ws_session' },
    backoff: { initial: 500, factor: 2, max: 5000 },
  });
  const c = { socket, sent: 0, lost: 0, fresh: 0, closed: false, echoes: 0, disorder: 0, last: {} };
  socket.addEventListener('sessionlost', () => (c.lost += 1));
  socket.addEventListener('sessionnew', () => (c.fresh += 1));
  socket.addEventListener('state', (e) => {
    if (e.state === 'closed') c.closed = true;
  });
  socket.addEventListener('message', (e) => {
    // `<server>:nd<i> <seq>`: per server, the echoes come in order.
    const [server, rest] = String(e.data).split(':');
    const seq = Number(rest.split(' ')[1]);
    if (seq <= (c.last[server] ?? 0)) c.disorder += 1;
    c.last[server] = seq;
    c.echoes += 1;
  });
  setTimeout(() => {
    const timer = setInterval(() => {
      if (!sending) return clearInterval(timer);
      if (socket.send(`nd${i} ${c.sent + 1}`)) c.sent += 1;
    }, every);
  }, Math.floor((i * every) / n));
  clients.push(c);
}
console.log('started');
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'stop') sending = false;
  if (line === 'report') {
    const report = clients.map(({ sent, lost, fresh, closed, echoes, disorder }) => ({ sent, lost, fresh, closed, echoes, disorder }));
    console.log(JSON.stringify(report));
  }
});
