// server/auth/localMode.ts acquireInstanceLock: the single-instance lock of a state directory.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { acquireInstanceLock, writeDiscovery } from '../../server/auth/localMode';

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
});
