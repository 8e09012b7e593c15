// A Node `ws` echo server for tests/peers.rs on 127.0.0.1 (port printed). With keepalive on
// it pings every INTERVAL ms and terminates clients that missed a pong, the way the ws
// documentation shows. Usage: node_server.mjs on|off INTERVAL_MS
import { WebSocketServer } from 'ws';

const [keepalive, interval] = process.argv.slice(2);
const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
server.on('listening', () => console.log(`listening ${server.address().port}`));
server.on('connection', (ws) => {
  ws.alive = true;
  ws.on('pong', () => { ws.alive = true; });
  ws.on('message', (data, binary) => ws.send(data, { binary }));
  ws.on('error', () => {});
});
if (keepalive === 'on') {
  setInterval(() => {
    for (const ws of server.clients) {
      if (!ws.alive) { ws.terminate(); continue; }
      ws.alive = false;
      ws.ping();
    }
  }, Number(interval));
}
