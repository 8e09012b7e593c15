// The browser module (js/ws-heartbeat.js) in Node with `ws`, for tests/busy_handler.rs: JSON
// heartbeat every 200 ms, dead after 2 unanswered (within 600 ms of silence); sends "request"
// once connected and says what came first: the server's answer, or a state change that
// means the connection was given up. Usage: node node_busy_client.mjs URL
import WebSocket from 'ws';
import { HeartbeatSocket } from '../../js/ws-heartbeat.js';

const start = performance.now();
const since = () => ((performance.now() - start) / 1000).toFixed(3);
const socket = new HeartbeatSocket(process.argv[2], {
  heartbeat: 'json', interval: 200, maxMissed: 2, jitter: false, WebSocket,
  backoff: { maxRetries: 0 },
});
let finished = false;
const done = (line) => {
  if (finished) return;
  finished = true;
  console.log(line);
  socket.close();
  setTimeout(() => process.exit(0), 50);
};
socket.addEventListener('state', (e) => {
  if (e.state === 'connected') socket.send('request');
  else done(`gave up ${e.cause ?? e.why} ${since()}`);
});
socket.addEventListener('message', (e) => done(`answer ${e.data} ${since()}`));
setTimeout(() => done('timeout'), 6000);
