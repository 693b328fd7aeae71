// server/auth/localMode.ts acquireInstanceLock: the single-instance lock of a state directory;
// processStart/identifyProcess: telling a process from a later one that reuses its pid.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { acquireInstanceLock, identifyProcess, processStart, writeDiscovery } from '../../server/auth/localMode';
import { sleep } from '../helpers/wait';

describe('acquireInstanceLock', function () {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-lock-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('takes a free lock and releases it', function () {
    const lock = acquireInstanceLock(dir, 4242);
    assert.ok(lock.acquired);
    assert.equal(fs.readFileSync(path.join(dir, 'daemon.lock'), 'utf8'), '4242');
    lock.release();
    assert.equal(fs.existsSync(path.join(dir, 'daemon.lock')), false);
  });

  it('reports a live owner that published its discovery file', function () {
    fs.writeFileSync(path.join(dir, 'daemon.lock'), String(process.pid));
    writeDiscovery(dir, { pid: process.pid, host: '127.0.0.1', port: 1, version: '0', secret: null, mode: 'supabase', supabase_url: null, started_at: '' });
    assert.deepEqual(acquireInstanceLock(dir, 4242), { acquired: false, ownerPid: process.pid });
  });

  it('treats a lock naming its own pid as stale (a container restarted as pid 1 with state on a volume)', function () {
    fs.writeFileSync(path.join(dir, 'daemon.lock'), String(process.pid));
    writeDiscovery(dir, { pid: process.pid, host: '127.0.0.1', port: 1, version: '0', secret: null, mode: 'supabase', supabase_url: null, started_at: '' });
    const lock = acquireInstanceLock(dir, process.pid);
    assert.ok(lock.acquired);
    lock.release();
  });

  it('treats a live pid that never published daemon.json within 30 s as reused, not as an owner', function () {
    const file = path.join(dir, 'daemon.lock');
    fs.writeFileSync(file, String(process.pid));
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(file, old, old);
    assert.ok(acquireInstanceLock(dir, 4242).acquired);
  });

  it("records its own start token on the lock's second line, and releases only its own lock", function () {
    const lock = acquireInstanceLock(dir);
    assert.ok(lock.acquired);
    const file = path.join(dir, 'daemon.lock');
    assert.deepEqual(fs.readFileSync(file, 'utf8').trim().split('\n'), [String(process.pid), processStart(process.pid)!.token]);
    fs.writeFileSync(file, `${process.pid}\nanother-start\n`); // broken as stale and re-taken meanwhile
    lock.release();
    assert.ok(fs.existsSync(file), 'released a lock that was no longer ours');
  });

  it('treats a young lock naming a live pid with another start token (reused pid, daemon.json naming it) as stale', function () {
    const file = path.join(dir, 'daemon.lock');
    fs.writeFileSync(file, `${process.pid}\nlinux:some-boot:1\n`);
    writeDiscovery(dir, { pid: process.pid, host: '127.0.0.1', port: 1, version: '0', secret: null, mode: 'supabase', supabase_url: null, started_at: '', process_start: 'linux:some-boot:1' });
    const lock = acquireInstanceLock(dir, 4242);
    assert.ok(lock.acquired);
    lock.release();
  });
});

describe('processStart and identifyProcess (pid reuse)', function () {
  this.timeout(20_000);

  it('gives a stable token for a running process and null for a pid that is gone', function () {
    const a = processStart(process.pid);
    assert.ok(a && a.token.length > 0);
    const again = processStart(process.pid)!;
    assert.equal(again.token, a.token);
    assert.ok(Math.abs(again.ms - a.ms) < 100, 'the wall-clock start is read again within the clock resolution');
    assert.equal(processStart(spawnSync(process.execPath, ['-e', '']).pid!), null);
  });

  it('reads the same start time from /proc and from ps (the macOS/BSD path), within the 1 s resolution of ps', function () {
    const viaProc = processStart(process.pid, 'proc');
    const viaPs = processStart(process.pid, 'ps');
    assert.ok(viaProc && viaPs, 'both sources answer on Linux');
    assert.match(viaPs.token, /^ps:/);
    assert.ok(Math.abs(viaProc.ms - viaPs.ms) < 1500, `proc ${new Date(viaProc.ms).toISOString()} vs ps ${new Date(viaPs.ms).toISOString()}`);
    assert.ok(Math.abs(viaProc.ms - (Date.now() - process.uptime() * 1000)) < 2000, 'the wall-clock start agrees with process.uptime()');
  });

  it('same for the recorded token, other for another token, other for a dead pid', function () {
    const token = processStart(process.pid)!.token;
    assert.equal(identifyProcess({ pid: process.pid, start: token }), 'same');
    assert.equal(identifyProcess({ pid: process.pid, start: `${token}0` }), 'other');
    assert.equal(identifyProcess({ pid: spawnSync(process.execPath, ['-e', '']).pid!, start: token }), 'other');
  });

  it('without a token: a process that started after the recorded started_at is another one', async function () {
    const recordedAt = new Date(Date.now() - 5000).toISOString(); // a file written 5 s ago, then its process died
    const later = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)'], { stdio: 'ignore' });
    try {
      await sleep(200);
      assert.equal(identifyProcess({ pid: later.pid!, startedAt: recordedAt }), 'other');
      assert.equal(identifyProcess({ pid: later.pid!, startedAt: new Date().toISOString() }), 'same');
      assert.equal(identifyProcess({ pid: later.pid! }), 'unknown', 'nothing recorded: unknown, never same');
      assert.equal(identifyProcess({ pid: later.pid!, start: 'x' }, 'none'), 'unknown', 'an OS that cannot say: unknown');
    } finally {
      later.kill('SIGKILL');
    }
  });
});
