// A HeartbeatSocket in a process of its own, so that a test can freeze it with SIGSTOP.
// Usage: node node_client.mjs URL OPTIONS_JSON. Prints each state change as a JSON line;
// reads commands from stdin, one per line: `interval MS` calls setInterval(MS).

import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { HeartbeatSocket } from '../../js/ws-heartbeat.js';

const [url, options] = process.argv.slice(2);
const socket = new HeartbeatSocket(url, { ...JSON.parse(options ?? '{}'), WebSocket });
socket.addEventListener('state', (e) => console.log(JSON.stringify({ state: e.state, why: e.why, interval: socket.interval })));
createInterface({ input: process.stdin }).on('line', (line) => {
  const [command, value] = line.trim().split(/\s+/);
  if (command === 'interval') {
    socket.setInterval(Number(value));
    console.log(JSON.stringify({ state: socket.state, why: 'interval', interval: socket.interval }));
  }
});
