// A Node `ws` client for tests/peers.rs: connects, reads (ws answers pings by itself), and
// reports. With keepalive on it pings every INTERVAL ms and terminates a silent server, the
// way the ws documentation shows. Usage: node_client.mjs URL on|off INTERVAL_MS
import { WebSocket } from 'ws';

const [url, keepalive, interval] = process.argv.slice(2);
const ws = new WebSocket(url);
ws.on('open', () => {
  console.log('connected');
  if (keepalive === 'on') {
    let alive = true;
    ws.on('pong', () => { alive = true; });
    setInterval(() => {
      if (!alive) return ws.terminate();
      alive = false;
      ws.ping();
    }, Number(interval));
  }
});
ws.on('close', (code) => {
  console.log(`closed ${code}`);
  process.exit(0);
});
ws.on('error', () => {});
