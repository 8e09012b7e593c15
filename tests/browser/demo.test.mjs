// The demo page, built on HeartbeatSocket (js/ws-heartbeat.js), in a real browser: headless
// Chromium (Debian's `chromium`, found on PATH, or the program CHROMIUM names) driven by
// playwright-core, against the demo example with a 300 ms server heartbeat and 3 missed pings
// (dead within 1 200 ms). The page heartbeats at 300 ms too. Run from the repository root:
//
//   node --test tests/browser/demo.test.mjs      (after `npm ci` in tests/browser and
//                                                 `apt-get install chromium`)
//
// Real time, so every bound below states the slack it allows for scheduling.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { chromium } from 'playwright-core';
import { DemoServer, INTERVAL, MAX_MISSED, DEAD_BOUND, SLACK, sleep, until } from './support.mjs';

const BACKOFF = 200; // the page's first reconnect waits a random time in [0, 200 ms)
const PAGE = `?interval=${INTERVAL}&maxMissed=${MAX_MISSED}&backoff=${BACKOFF}&cap=2000`;

const server = new DemoServer();
let browser;

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

const state = (page) => page.evaluate(() => window.demo.socket.state);
const socketStats = (page) => page.evaluate(() => window.demo.socket.stats);

/// Pages still open: closed after each test, so that a failed test leaves no connection
/// behind to disturb the counts of the next ones.
const openPages = new Set();

async function openPage(query = PAGE) {
  return openPageAt(server.base, query);
}

async function openPageAt(base, query = PAGE) {
  const page = await browser.newPage();
  openPages.add(page);
  page.on('pageerror', (err) => assert.fail(`page error: ${err}`));
  await page.goto(`${base}/${query}`);
  await until(async () => (await state(page)) === 'connected', 5000, 'connected');
  return page;
}

before(async () => {
  await server.start();
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
  server.stop();
});

test('the module is served with its validator, and revalidation gets 304', async () => {
  const first = await fetch(`${server.base}/ws-heartbeat.js`);
  assert.equal(first.status, 200);
  assert.match(first.headers.get('content-type'), /^text\/javascript/);
  const etag = first.headers.get('etag');
  assert.equal(await first.text(), fs.readFileSync(new URL('../../js/ws-heartbeat.js', import.meta.url), 'utf8'));
  const again = await fetch(`${server.base}/ws-heartbeat.js`, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
});

for (const heartbeat of ['json', 'text', 'binary']) {
  test(`${heartbeat}: the page and the server each measure round trips, nothing dies`, async () => {
    const before = await server.stats();
    const page = await openPage(`${PAGE}&heartbeat=${heartbeat}`);
    await until(() => page.evaluate(() => window.demo.rtts.length >= 3), 5 * INTERVAL + SLACK, 'three RTT samples');
    const rtts = await page.evaluate(() => window.demo.rtts);
    assert.ok(rtts.every((ms) => ms >= 0 && ms < 100), `loopback round trips: ${rtts}`);
    assert.match(await page.textContent('#rtt'), /^\d+ ms$/);
    // The server's pings are answered by the page: counted as pongs by the server.
    await until(async () => (await server.stats()).pongs >= before.pongs + 3, 5 * INTERVAL, 'server pongs');
    // Heartbeats never reach the page's message handler: its log shows only the counters.
    const logged = await page.evaluate(() => window.demo.events.map((e) => e.text));
    assert.ok(!logged.some((t) => t.startsWith('message')), logged.join('\n'));
    assert.equal((await server.stats()).deaths, before.deaths);
  });
}

test('control: Chromium answers protocol pings by itself, the page sends none, 20 intervals alive', async () => {
  const page = await openPage(`${PAGE}&heartbeat=control`);
  const before = await server.stats();
  await sleep(20 * INTERVAL);
  const after = await server.stats();
  assert.equal(await state(page), 'connected');
  const stats = await socketStats(page);
  assert.equal(stats.reconnects, 0);
  assert.equal(stats.pings, 0);
  assert.equal(after.deaths, before.deaths);
  // 20 ticks: at least 18 pongs counted while the page sent no ping of its own.
  assert.ok(after.pongs - before.pongs >= 18, `${after.pongs - before.pongs} pongs`);
});

test('a kill from the server makes the page reconnect within its backoff bound', async () => {
  const page = await openPage();
  const kills = (await server.stats()).kills;
  await page.click('#kill');
  await until(async () => (await socketStats(page)).reconnects === 1, 1000, 'reconnecting');
  await until(async () => (await state(page)) === 'connected', BACKOFF + SLACK, 'reconnected');
  assert.equal((await server.stats()).kills, kills + 1);
  const events = await page.evaluate(() => window.demo.events);
  const lost = events.findLast((e) => e.text.startsWith('reconnecting: closed'));
  const back = events.findLast((e) => e.text.startsWith('connected'));
  assert.ok(lost && back && back.t >= lost.t, JSON.stringify(events.slice(-4)));
  const took = back.t - lost.t;
  assert.ok(took <= BACKOFF + SLACK, `reconnected ${took} ms after the page saw the connection die`);
  console.log(`reconnected ${took} ms after the page saw the connection die`);
});

test('server killed and restarted: the page reconnects within its backoff cap once the server listens again', async () => {
  const cap = 1000;
  const page = await openPage(`?interval=${INTERVAL}&maxMissed=${MAX_MISSED}&backoff=${BACKOFF}&cap=${cap}`);
  await server.kill();
  await until(async () => (await state(page)) === 'reconnecting', DEAD_BOUND + SLACK, 'noticed');
  await sleep(1500); // refused attempts: the ceiling reaches the cap
  await server.restart();
  const took = await until(async () => (await state(page)) === 'connected', cap + SLACK, 'reconnected');
  assert.ok((await socketStats(page)).reconnects >= 2);
  console.log(`page reconnected ${took} ms after the server listened again (backoff cap ${cap} ms)`);
});

test('a restart: a second server on the port, the first drained by SIGTERM; the page is told 1012 and comes back within its backoff', async () => {
  // Two demos share a port (SO_REUSEPORT). The page is on the first; SIGTERM drains it over
  // 600 ms: the page gets a Close 1012 at its moment and reconnects after a delay below
  // BACKOFF (the count starts again after a 1012); a newcomer reaching the draining one gets
  // 1012 at once and tries again, so the page ends on the second demo within the window, plus
  // its first backoff step, plus slack.
  const DRAIN = 600;
  const first = new DemoServer({ args: ['--drain-ms', String(DRAIN)] });
  await first.start();
  const page = await openPageAt(first.base);
  const second = new DemoServer();
  await second.start(new URL(first.base).host);
  try {
    const exited = first.exited();
    first.signal('SIGTERM');
    const took = await until(async () => {
      const events = await page.evaluate(() => window.demo.events.map((e) => e.text));
      return events.some((t) => t.includes('code 1012')) && (await state(page)) === 'connected' && (await second.stats()).connected >= 1;
    }, DRAIN + BACKOFF + 2 * SLACK, 'reconnected to the second demo');
    const events = await page.evaluate(() => window.demo.events);
    const told = events.filter((e) => e.text.startsWith('reconnecting: closed, code 1012'));
    assert.ok(told.length >= 1, JSON.stringify(events.slice(-6)));
    for (const e of told) {
      const delay = Number(e.text.match(/next try in (\d+) ms/)[1]);
      assert.ok(delay <= BACKOFF, `after a 1012 the page waited ${delay} ms (first step ${BACKOFF})`);
    }
    await exited;
    assert.equal(await state(page), 'connected');
    console.log(`back on the second demo ${took} ms after SIGTERM (${told.length} Close 1012 seen)`);
  } finally {
    first.stop();
    second.stop();
  }
});

test('resume=1 across a restart: the session finishes on the first demo and goes on new on the second; every numbered message once, in order', async () => {
  // The page pumps 1 000 numbered messages (5 every 20 ms, 4 s) into a session on the first
  // demo; 1 s in, a second demo takes the port and the first is drained over 1 s. At its moment
  // the first tells `finish`; the page answers, keeps what it sends, and on the 1012 starts a
  // new session on the second. The first's handler got 1..k, the second's k+1..1000, each
  // once and in order; the page lost nothing (no `sessionlost`).
  const SENT = 1000;
  const first = new DemoServer({ args: ['--drain-ms', '1000'] });
  await first.start();
  const page = await openPageAt(first.base, `${PAGE}&resume=1`);
  await until(() => page.evaluate(() => window.demo.session.id !== null), 2000, 'the greeting');
  await page.evaluate((sent) => {
    window.pumped = window.demo.session.pump(sent, 20, 5);
  }, SENT);
  await sleep(1000);
  const second = new DemoServer();
  await second.start(new URL(first.base).host);
  try {
    const before = (await first.stats()).sessions.list;
    const exited = first.exited();
    first.signal('SIGTERM');
    await until(() => page.evaluate(() => window.demo.session.fresh === 1), 1000 + BACKOFF + 2 * SLACK, 'a new session');
    await page.evaluate(() => window.pumped);
    const runs = async (server) => (await server.stats()).sessions.list.flatMap((s) => s.seq_runs);
    await until(async () => (await runs(second)).some(([, to]) => to === SENT), 5000, 'the last message on the second demo');
    // The first's counts, read before it drained away: its session's runs as it ended are in
    // its log; the second's live. Together: 1..SENT once, in order.
    await exited;
    const onSecond = await runs(second);
    assert.equal(onSecond.length, 1, JSON.stringify(onSecond));
    const [[from, to]] = onSecond;
    assert.equal(to, SENT);
    assert.ok(from > before.reduce((n, s) => Math.max(n, s.numbered), 0), `the second began at ${from}`);
    assert.deepEqual(first.sessionEnds().at(-1)?.runs, [[1, from - 1]], first.sessionEnds().join('\n'));
    const lost = await page.evaluate(() => window.demo.session.lost);
    assert.equal(lost, null);
    console.log(`first demo: 1..${from - 1}, second: ${from}..${SENT}`);
  } finally {
    first.stop();
    second.stop();
  }
});

test('a frozen page (Freeze: deaf and mute) is declared dead by the server within the bound, and reconnects when thawed', async () => {
  const page = await openPage();
  await sleep(2 * INTERVAL); // a few heartbeats in both directions
  const deaths = (await server.stats()).deaths;
  await page.click('#freeze');
  const took = await until(async () => (await server.stats()).deaths === deaths + 1, DEAD_BOUND + SLACK, 'death');
  // Its last frame came at most one interval before the click.
  assert.ok(took > INTERVAL * (MAX_MISSED - 1), `dead only ${took} ms after the freeze`);
  console.log(`frozen page declared dead ${took} ms after the freeze (bound ${DEAD_BOUND} ms)`);
  await page.click('#freeze');
  await until(async () => (await state(page)) === 'connected', BACKOFF + SLACK + 500, 'reconnected after thawing');
});

test('a page whose script is paused (CDP Debugger.pause) is declared dead by the server within the bound', async () => {
  const page = await openPage();
  await sleep(2 * INTERVAL);
  const deaths = (await server.stats()).deaths;
  const cdp = await page.context().newCDPSession(page);
  // Chromium's lifecycle 'frozen' state leaves a visible headless page running; a paused
  // script is what a frozen tab is to the server: nothing is answered.
  await cdp.send('Debugger.enable');
  await cdp.send('Debugger.pause');
  try {
    const took = await until(async () => (await server.stats()).deaths === deaths + 1, DEAD_BOUND + SLACK, 'death');
    assert.ok(took > INTERVAL * (MAX_MISSED - 1), `dead only ${took} ms after the freeze`);
    console.log(`page paused in the debugger declared dead ${took} ms after the pause (bound ${DEAD_BOUND} ms)`);
  } finally {
    await cdp.send('Debugger.resume');
  }
  await until(async () => (await state(page)) === 'connected', 3000, 'reconnected after resuming');
});

test('a frozen server (SIGSTOP) is found dead by the page within the bound; one attempt in flight', async () => {
  const page = await openPage();
  await sleep(2 * INTERVAL);
  const { connections } = await server.stats();
  // Timed on the page's clock, from just before the signal to the page's own log entry.
  const frozenAt = await page.evaluate(() => performance.now());
  server.signal('SIGSTOP');
  let dead;
  try {
    await until(
      () => page.evaluate(() => window.demo.events.some((e) => e.text.startsWith('reconnecting: dead'))),
      DEAD_BOUND + SLACK,
      'found dead',
    );
    dead = await page.evaluate(() => window.demo.events.find((e) => e.text.startsWith('reconnecting: dead')));
    await sleep(1500); // attempts against the frozen server hang in the handshake
  } finally {
    server.signal('SIGCONT');
  }
  const took = dead.t - frozenAt;
  // Last heard at most one interval before the signal: dead more than interval x (max_missed - 1) after it.
  assert.ok(took > INTERVAL * (MAX_MISSED - 1) && took <= DEAD_BOUND + SLACK, `dead ${took} ms after SIGSTOP: ${dead.text}`);
  console.log(`frozen server found dead by the page ${Math.round(took)} ms after SIGSTOP (bound ${DEAD_BOUND} ms): ${dead.text}`);
  await until(async () => (await state(page)) === 'connected', 3000, 'reconnected after the server thawed');
  // One attempt was in flight, so exactly one new connection reached the server.
  assert.equal((await server.stats()).connections, connections + 1);
});

test('after logging out the page stays closed', async () => {
  const page = await openPage();
  await page.click('#logout');
  await until(async () => (await state(page)) === 'closed', 1000, 'closed');
  const { connections } = await server.stats();
  await sleep(10 * INTERVAL);
  assert.equal(await state(page), 'closed');
  const after = await server.stats();
  assert.equal(after.connections, connections, 'no new connection');
  assert.equal(after.connected, 0);
});

test('after a kick the page stays closed', async () => {
  const page = await openPage();
  await page.click('#kick');
  await until(async () => (await state(page)) === 'closed', 2000, 'closed');
  const { connections } = await server.stats();
  await sleep(10 * INTERVAL);
  assert.equal(await state(page), 'closed');
  assert.equal((await server.stats()).connections, connections, 'no new connection');
  assert.match(await page.evaluate(() => window.demo.events.at(-1).text), /closed: final-code, code 4000/);
});

test('Background (a 4x longer interval): the server follows, keeps the page past the old bound, finds it dead within the new one', async () => {
  const page = await openPage();
  await page.click('#background');
  const longer = 4 * INTERVAL;
  await until(async () => (await server.stats()).intervals_ms.includes(longer), 2 * INTERVAL, 'server follows');
  await sleep(longer);
  const deaths = (await server.stats()).deaths;
  await page.click('#freeze');
  const bound = longer * (MAX_MISSED + 1);
  const took = await until(async () => (await server.stats()).deaths === deaths + 1, bound + SLACK, 'dead within the new bound');
  assert.ok(took > longer * (MAX_MISSED - 1) && took > DEAD_BOUND, `dead ${took} ms after the freeze`);
  console.log(`after Background: declared dead ${took} ms after the freeze (old bound ${DEAD_BOUND}, new ${bound})`);
});

test('resume=1: a session streams both ways across server-side cuts; nothing lost or doubled, the handler called once', async () => {
  const ITEMS = 2000;
  const SENT = 2000;
  const before = (await server.stats()).sessions;
  const page = await openPage(`${PAGE}&resume=1`);
  await until(() => page.evaluate(() => window.demo.session.id !== null), 2000, 'the greeting');
  const id = await page.evaluate(() => window.demo.session.id);
  // The server streams an item of 200 bytes every 4 ms, the page sends 5 numbered messages
  // every 20 ms: both flows last 8 s or more, the cuts below all fall within them.
  await page.evaluate(([items, sent]) => {
    window.demo.session.stream(items, 200, 4);
    window.pumped = window.demo.session.pump(sent, 20, 5);
  }, [ITEMS, SENT]);
  const progress = () => page.evaluate(() => ({
    items: window.demo.session.items.count,
    sent: window.demo.session.sent,
    resumes: window.demo.socket.stats.resumes,
    t: performance.now(),
  }));
  const lost = [];
  for (let cut = 0; cut < 3; cut += 1) {
    await sleep(1000);
    const at = await progress();
    assert.ok(at.items < ITEMS && at.sent < SENT, `cut ${cut + 1} mid-stream: ${JSON.stringify(at)}`);
    assert.equal(await server.cut(), 1, 'one live session socket cut');
    // The page reconnects within its backoff (its ceiling doubles at each retry: 200, 400, 800 ms).
    await until(async () => (await progress()).resumes === at.resumes + 1, BACKOFF * 2 ** cut + SLACK + 500, `resumed after cut ${cut + 1}`);
    const back = await page.evaluate(() => window.demo.events.findLast((e) => e.text === 'connected: resumed').t);
    lost.push(Math.round(back - at.t));
  }
  await until(
    () => page.evaluate(([items, sent]) => window.demo.session.items.count >= items && window.demo.session.echoes.count >= sent, [ITEMS, SENT]),
    20000,
    'every item and every echo',
  );
  await sleep(3 * INTERVAL); // anything doubled would arrive meanwhile
  const session = await page.evaluate(() => {
    const { items, echoes, sent, lost } = window.demo.session;
    return { items, echoes, sent, lost, stats: window.demo.socket.stats };
  });
  // The page: every item and every echo once, in order.
  assert.deepEqual(session.items, { count: ITEMS, last: ITEMS, errors: [] });
  assert.deepEqual(session.echoes, { count: SENT, last: SENT, errors: [] });
  assert.equal(session.sent, SENT);
  assert.equal(session.lost, null);
  assert.ok(session.stats.resumes >= 3, JSON.stringify(session.stats));
  assert.equal(session.stats.dropped, 0);
  // The server: one handler call, every numbered message once and in order.
  const after = (await server.stats()).sessions;
  assert.equal(after.calls, before.calls + 1, 'the handler was called once');
  assert.equal(after.cut_connections, before.cut_connections + 3);
  const counted = after.list.find((s) => s.id === id);
  assert.ok(counted, JSON.stringify(after));
  assert.deepEqual(
    { numbered: counted.numbered, runs: counted.seq_runs, duplicates: counted.duplicates, out_of_order: counted.out_of_order },
    { numbered: SENT, runs: [[1, SENT]], duplicates: 0, out_of_order: 0 },
  );
  assert.equal(counted.received, SENT + 1, 'the numbered messages and the stream command');
  assert.equal(counted.items, ITEMS);
  assert.equal(counted.sent, 1 + ITEMS + SENT, 'the greeting, the items, the echoes');
  assert.equal(counted.ended, null, 'the session lives on');
  console.log(`session across 3 server-side cuts: ${ITEMS} items and ${SENT} echoes each once and in order; ${session.stats.resumes} resumes, resumed ${lost.join(', ')} ms after each cut (page backoff ${BACKOFF} ms doubling)`);
});
