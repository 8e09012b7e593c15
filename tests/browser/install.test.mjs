// `npm install` of the browser module works from a path (js/, with its package.json) and from
// git (the repository's root package.json: npm cannot install a git subdirectory). Each into
// a new directory, then imported by name. Run from the repository root:
//
//   node --test tests/browser/install.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './support.mjs';

function installAndImport(spec) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-heartbeat-install-'));
  try {
    fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"page","private":true,"type":"module"}');
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--install-links', spec], { cwd: dir, stdio: 'pipe' });
    const installed = fs.readdirSync(path.join(dir, 'node_modules', 'ws-heartbeat')).sort();
    const out = execFileSync(process.execPath, ['--input-type=module', '-e',
      "import { HeartbeatSocket } from 'ws-heartbeat'; console.log(typeof HeartbeatSocket)"], { cwd: dir, encoding: 'utf8' });
    return { installed, out: out.trim() };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('npm install from the js/ path: the module and its types, nothing else', () => {
  const { installed, out } = installAndImport(path.join(ROOT, 'js'));
  assert.deepEqual(installed, ['package.json', 'ws-heartbeat.d.ts', 'ws-heartbeat.js']);
  assert.equal(out, 'function');
});

test('npm install from git (the committed HEAD): imported by name', () => {
  const { installed, out } = installAndImport(`git+file://${ROOT}`);
  assert.deepEqual(installed, ['README.md', 'js', 'package.json']); // npm always packs the README
  assert.equal(out, 'function');
});
