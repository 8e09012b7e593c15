// The demo page in a real browser: headless Chromium (Debian's `chromium`, found on PATH, or
// the program CHROMIUM names) driven by playwright-core, against the demo example with a
// 300 ms server heartbeat and 3 missed pings (dead within 1 200 ms). The example is built
// with `cargo build --example demo` and started from the path cargo reports for it, so
// CARGO_TARGET_DIR is respected. Run from the repository root:
//
//   node --test tests/browser/demo.test.mjs      (after `npm ci` in tests/browser and
//                                                 `apt-get install chromium`)
//
// Real time, so every bound below states the slack it allows for scheduling.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import fs from 'node:fs';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const INTERVAL = 300;
const MAX_MISSED = 3;
const DEAD_BOUND = INTERVAL * (MAX_MISSED + 1);
const BACKOFF = 200; // the page's first reconnect waits a random time in [0, 200 ms]
const SLACK = 300; // scheduling, connection set-up, and the 25 ms polling below
const PAGE = `?interval=${INTERVAL}&deadline=${5 * INTERVAL}&backoff=${BACKOFF}&cap=2000`;

let server;
let base;
let browser;

/// The executable of the example `name`, as cargo builds it and reports it (JSON messages).
function example(name) {
  const out = execFileSync('cargo', ['build', '-q', '--message-format=json', '--example', name], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  for (const line of out.split('\n')) {
    if (!line.startsWith('{')) continue;
    const msg = JSON.parse(line);
    if (msg.reason === 'compiler-artifact' && msg.target.name === name && msg.target.kind.includes('example') && msg.executable) {
      return msg.executable;
    }
  }
  throw new Error(`cargo reported no executable for the example ${name}`);
}

/// Chromium: the program CHROMIUM names, else `chromium` (or `chromium-browser`) on PATH.
function chromiumPath() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  for (const name of ['chromium', 'chromium-browser']) {
    for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
      if (!dir) continue;
      const file = path.join(dir, name);
      try {
        fs.accessSync(file, fs.constants.X_OK);
        return file;
      } catch {}
    }
  }
  throw new Error('needs chromium: apt-get install chromium (or set CHROMIUM to its path)');
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function stats() {
  const response = await fetch(`${base}/stats`);
  return response.json();
}

/// Polls `check` every 25 ms until it returns a truthy value; returns the elapsed ms.
async function until(check, timeout, what) {
  const start = Date.now();
  while (Date.now() - start < timeout) {
    if (await check()) return Date.now() - start;
    await sleep(25);
  }
  assert.fail(`${what}: not within ${timeout} ms`);
}

const state = (page) => page.evaluate(() => window.demo.state);

/// Pages still open: closed after each test, so that a failed test leaves no connection
/// behind to disturb the counts of the next ones.
const openPages = new Set();

async function openPage(query = PAGE) {
  const page = await browser.newPage();
  openPages.add(page);
  page.on('pageerror', (err) => assert.fail(`page error: ${err}`));
  await page.goto(`${base}/${query}`);
  await until(async () => (await state(page)) === 'connected', 5000, 'connected');
  return page;
}

before(async () => {
  const bin = example('demo');
  server = spawn(bin, ['127.0.0.1:0', '--interval-ms', String(INTERVAL), '--max-missed', String(MAX_MISSED)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  base = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (chunk) => {
      out += chunk;
      const found = out.match(/demo on (http:\/\/\S+)/);
      if (found) resolve(found[1]);
    });
    server.on('exit', (code) => reject(new Error(`demo exited with ${code}`)));
  });
  server.stdout.on('data', (chunk) => process.stderr.write(`  [demo] ${chunk}`));
  // playwright-core starts Chromium headless with a new, empty profile of its own.
  browser = await chromium.launch({
    executablePath: chromiumPath(),
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
});

afterEach(async () => {
  for (const page of openPages) await page.close().catch(() => {});
  openPages.clear();
});

after(async () => {
  await browser?.close();
  server?.kill();
});

test('the page connects and draws round-trip samples', async () => {
  const before = await stats();
  const page = await openPage();
  await until(() => page.evaluate(() => window.demo.rtts.length >= 3), 5 * INTERVAL + SLACK, 'three RTT samples');
  // The server times its JSON pings too: the page echoes the sequence number exactly.
  await until(async () => (await stats()).rtt_samples >= before.rtt_samples + 2, 4 * INTERVAL, 'server RTT samples');
  const rtts = await page.evaluate(() => window.demo.rtts);
  assert.ok(rtts.every((ms) => ms >= 0 && ms < 100), `loopback round trips: ${rtts}`);
  assert.match(await page.textContent('#rtt'), /^\d+\.\d ms$/);
  await page.close();
});

test('a kill from the server makes the page reconnect within its backoff bound', async () => {
  const page = await openPage();
  const kills = (await stats()).kills;
  await page.click('#kill');
  // The page may pass through 'reconnecting' faster than a poll (its delay is drawn from
  // [0, BACKOFF]): wait for its reconnect count instead, then read the times from its log.
  await until(async () => (await page.evaluate(() => window.demo.reconnects)) === 1, 1000, 'reconnecting');
  await until(async () => (await state(page)) === 'connected', BACKOFF + SLACK, 'reconnected');
  assert.equal((await stats()).kills, kills + 1);
  assert.equal(await page.evaluate(() => window.demo.reconnects), 1);
  const events = await page.evaluate(() => window.demo.events);
  const died = events.findLast((e) => e.text.startsWith('reconnecting'));
  const back = events.findLast((e) => e.text === 'connected');
  assert.ok(died && back && back.t >= died.t, JSON.stringify(events.slice(-4)));
  const took = back.t - died.t;
  assert.ok(took <= BACKOFF + SLACK, `reconnected ${took} ms after the page saw the connection die`);
  console.log(`reconnected ${took} ms after the page saw the connection die`);
  await page.close();
});

test('a frozen page is declared dead by the server within interval x (max_missed + 1)', async () => {
  const page = await openPage();
  await sleep(2 * INTERVAL); // a few heartbeats in both directions
  const deaths = (await stats()).deaths;
  await page.click('#freeze');
  const took = await until(async () => (await stats()).deaths === deaths + 1, DEAD_BOUND + SLACK, 'death');
  // Its last frame came at most one interval before the click: dead more than
  // interval x max_missed after that frame.
  assert.ok(took > INTERVAL * (MAX_MISSED - 1), `dead only ${took} ms after the freeze`);
  console.log(`declared dead ${took} ms after the freeze (bound ${DEAD_BOUND} ms)`);
  // Thawed, it finds its connection closed and reconnects.
  await page.click('#freeze');
  await until(async () => (await state(page)) === 'connected', BACKOFF + SLACK + 500, 'reconnected after thawing');
  await page.close();
});

test("a frozen server is caught by the page's own read deadline; one reconnect at a time", async () => {
  const page = await openPage();
  const { connections } = await stats();
  server.kill('SIGSTOP');
  try {
    // Nothing heard for the deadline (5 intervals), noticed at the next interval check.
    const deadline = 5 * INTERVAL;
    const took = await until(async () => (await state(page)) === 'reconnecting', deadline + INTERVAL + SLACK, 'read deadline');
    assert.ok(took >= deadline - INTERVAL, `gave up after only ${took} ms`);
    await sleep(2000); // attempts against the frozen server hang in the handshake
  } finally {
    server.kill('SIGCONT');
  }
  await until(async () => (await state(page)) === 'connected', 3000, 'reconnected after the server thawed');
  // One attempt was in flight, so exactly one new connection reached the server.
  assert.equal((await stats()).connections, connections + 1);
  await page.close();
});

test('after logging out the page stays closed', async () => {
  const page = await openPage();
  await page.click('#logout');
  await until(async () => (await state(page)) === 'closed', 1000, 'closed');
  const { connections } = await stats();
  await sleep(10 * INTERVAL);
  assert.equal(await state(page), 'closed');
  const after = await stats();
  assert.equal(after.connections, connections, 'no new connection');
  assert.equal(after.connected, 0);
  await page.close();
});

test('after a kick the page stays closed', async () => {
  const page = await openPage();
  await page.click('#kick');
  await until(async () => (await state(page)) === 'closed', 2000, 'closed');
  const { connections } = await stats();
  await sleep(10 * INTERVAL);
  assert.equal(await state(page), 'closed');
  assert.equal((await stats()).connections, connections, 'no new connection');
  assert.match(await page.evaluate(() => window.demo.events.at(-1).text), /kicked by the server \(4000/);
  await page.close();
});

test('with protocol pings, Chromium answers by itself and stays connected for 20 intervals', async () => {
  const page = await openPage(`?heartbeat=control&interval=${INTERVAL}&deadline=${5 * INTERVAL}`);
  const before = await stats();
  await sleep(20 * INTERVAL);
  const after = await stats();
  assert.equal(await state(page), 'connected');
  assert.equal(await page.evaluate(() => window.demo.reconnects), 0);
  assert.equal(after.deaths, before.deaths);
  // 20 ticks: at least 18 pongs counted while the page sent no ping of its own.
  assert.ok(after.pongs - before.pongs >= 18, `${after.pongs - before.pongs} pongs`);
  assert.equal(await page.evaluate(() => window.demo.rtts.length), 0);
  await page.close();
});
