// What the browser suites share: the demo server (built by cargo, started and restarted on
// one port), its counters, and polling with a deadline. Real time: each bound a test states
// includes the slack it allows for scheduling.

import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The server's heartbeat in every suite: 300 ms, 3 missed, so dead within 1 200 ms. */
export const INTERVAL = 300;
export const MAX_MISSED = 3;
export const DEAD_BOUND = INTERVAL * (MAX_MISSED + 1);
/** Scheduling, connection set-up, and the 25 ms polling of `until`. */
export const SLACK = 300;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The executable of the example `name`, as cargo builds it and reports it (JSON messages); or,
 * when WS_HEARTBEAT_EXAMPLES names a directory, the one of that name there, built beforehand
 * (a target directory that other checkouts build into too may have relinked cargo's copy).
 */
export function example(name) {
  if (process.env.WS_HEARTBEAT_EXAMPLES) return path.join(process.env.WS_HEARTBEAT_EXAMPLES, name);
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

/**
 * The demo server on 127.0.0.1, which can be killed, restarted on the same port, frozen. Its
 * heartbeat is INTERVAL and MAX_MISSED unless given; `args` are more of its arguments.
 */
export class DemoServer {
  #bin = example('demo');
  #args;
  #child = null;
  #lines = [];
  base = null;

  constructor({ interval = INTERVAL, maxMissed = MAX_MISSED, args = [] } = {}) {
    this.#args = ['--interval-ms', String(interval), '--max-missed', String(maxMissed), ...args];
  }

  async start(addr = '127.0.0.1:0') {
    const child = spawn(this.#bin, [addr, ...this.#args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.#child = child;
    this.base = await new Promise((resolve, reject) => {
      let out = '';
      const onData = (chunk) => {
        out += chunk;
        const found = out.match(/demo on (http:\/\/\S+)/);
        if (found) {
          child.stdout.off('data', onData);
          resolve(found[1]);
        }
      };
      child.stdout.on('data', onData);
      child.on('exit', (code) => reject(new Error(`demo exited with ${code}`)));
    });
    this.#lines = [];
    child.stdout.on('data', (chunk) => {
      process.stderr.write(`  [demo] ${chunk}`);
      this.#lines.push(...String(chunk).split('\n').filter(Boolean));
    });
    return this.base;
  }

  get ws() {
    return this.base.replace('http:', 'ws:') + '/ws';
  }

  /** The route of sessions (`HeartbeatLayer::resume`). */
  get session() {
    return this.base.replace('http:', 'ws:') + '/session';
  }

  /** Drops the live session sockets' connections without a Close; returns how many. */
  async cut() {
    const response = await fetch(`${this.base}/cut`);
    return (await response.json()).cut;
  }

  /** Kills the server at once (no Close frames) and starts it again on the same port. */
  async kill() {
    const child = this.#child;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  async restart() {
    await this.start(new URL(this.base).host);
  }

  signal(name) {
    this.#child.kill(name);
  }

  /** The sessions that ended, as the server logged them: `{ line, runs }`, oldest first. */
  sessionEnds() {
    return this.#lines
      .map((line) => ({ line, found: line.match(/^session \d+: .*; numbered runs (\[.*\])$/) }))
      .filter(({ found }) => found)
      .map(({ line, found }) => ({ line, runs: JSON.parse(found[1]) }));
  }

  /** Resolves when the server's process exits. */
  exited() {
    const child = this.#child;
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => child.once('exit', resolve));
  }

  stop() {
    this.#child?.kill('SIGKILL');
  }

  async stats() {
    const response = await fetch(`${this.base}/stats`);
    return response.json();
  }
}

/** Polls `check` every 25 ms until it returns a truthy value; returns the elapsed ms. */
export async function until(check, timeout, what) {
  const start = Date.now();
  while (Date.now() - start < timeout) {
    if (await check()) return Date.now() - start;
    await sleep(25);
  }
  assert.fail(`${what}: not within ${timeout} ms`);
}
