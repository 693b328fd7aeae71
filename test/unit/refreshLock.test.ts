// withFileLock: the cross-process lock that lets only one window refresh an account's session.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleForChildProcess } from '../helpers/childBundle';
import { sleep } from '../helpers/wait';
import { LockTimeout, withFileLock } from '../../src/auth/refreshLock';

interface Child {
  done: Promise<string>;
  /** Resolves once the child printed `marker`. */
  printed(marker: string): Promise<void>;
  kill(): void;
}

function startChild(code: string, args: string[], timeoutMs = 20_000): Child {
  const child = spawn(process.execPath, ['-e', code, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: Array<{ marker: string; resolve: () => void }> = [];
  child.stdout.on('data', (d) => {
    out += d;
    for (const w of waiters) if (out.includes(w.marker)) w.resolve();
  });
  child.stderr.on('data', (d) => (err += d));
  const timer = setTimeout(() => child.kill(), timeoutMs);
  const done = new Promise<string>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`child exited ${code ?? signal}: ${err}${out}`));
    });
  });
  return {
    done,
    printed: (marker) =>
      new Promise<void>((resolve, reject) => {
        if (out.includes(marker)) return resolve();
        waiters.push({ marker, resolve });
        done.then(() => reject(new Error(`child ended without printing ${marker}`)), reject);
      }),
    kill: () => child.kill(),
  };
}

/** A pid that certainly belonged to a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  assert.ok(r.pid);
  return r.pid;
}

describe('withFileLock', function () {
  let tmp: string;
  let bundle: string; // src/auth/refreshLock.ts bundled for child processes

  before(function () {
    this.timeout(30_000);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-refreshlock-'));
    bundle = bundleForChildProcess('src/auth/refreshLock.ts', path.join(tmp, 'refreshLock.js'));
  });

  after(function () {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  let n = 0;
  const freshLock = () => {
    const dir = path.join(tmp, `case-${++n}`);
    fs.mkdirSync(dir, { recursive: true });
    return { dir, lock: path.join(dir, 'refresh.lock'), inside: path.join(dir, 'inside') };
  };

  // Child: wait until startAt, then `times` critical sections; each creates the "inside" marker with
  // 'wx' (fails if another process is inside), does a slow read-modify-write of the counter, and
  // removes the marker. slowRenameMs > 0 stalls this process's first rename of the lock file (as a
  // breaker descheduled between deciding the lock is stale and renaming it aside).
  const childWorker = `
    const fs = require('node:fs');
    const [lock, counter, inside, times, startAt, holdMs, slowRenameMs = '0'] = process.argv.slice(2);
    if (Number(slowRenameMs) > 0) {
      const rename = fs.renameSync;
      let first = true;
      fs.renameSync = function (from, to) {
        if (first && String(from) === lock) {
          first = false;
          const until = Date.now() + Number(slowRenameMs);
          while (Date.now() < until);
        }
        return rename.apply(this, arguments);
      };
    }
    const { withFileLock } = require(process.argv[1]);
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    (async () => {
      await sleep(Math.max(0, Number(startAt) - Date.now()));
      for (let i = 0; i < Number(times); i++) {
        await withFileLock(lock, async () => {
          fs.writeFileSync(inside, String(process.pid), { flag: 'wx' });
          const value = counter ? Number(fs.readFileSync(counter, 'utf8')) : 0;
          await sleep(Number(holdMs));
          if (counter) fs.writeFileSync(counter, String(value + 1));
          fs.unlinkSync(inside);
        }, { pollMs: 5, timeoutMs: 15000 });
      }
      process.stdout.write('ok');
    })().catch((e) => { console.error(e); process.exit(1); });`;

  it('excludes across 4 processes: 4 x 25 slow read-modify-writes give exactly 100', async function () {
    this.timeout(60_000);
    const { lock, dir, inside } = freshLock();
    const counter = path.join(dir, 'counter');
    fs.writeFileSync(counter, '0');
    const startAt = String(Date.now() + 500);
    const children = Array.from({ length: 4 }, () => startChild(childWorker, [bundle, lock, counter, inside, '25', startAt, '2'], 50_000));
    const outs = await Promise.all(children.map((c) => c.done));
    assert.deepEqual(outs, ['ok', 'ok', 'ok', 'ok']);
    assert.equal(fs.readFileSync(counter, 'utf8'), '100');
    assert.equal(fs.existsSync(lock), false, 'released');
    assert.equal(fs.existsSync(inside), false);
  });

  it('returns what fn returns, holds {pid, at} while inside, and removes the lock afterwards', async function () {
    const { lock } = freshLock();
    const before = Date.now();
    const result = await withFileLock(lock, async () => {
      const held = JSON.parse(fs.readFileSync(lock, 'utf8'));
      assert.equal(held.pid, process.pid);
      assert.ok(held.at >= before && held.at <= Date.now());
      return 42;
    });
    assert.equal(result, 42);
    assert.equal(fs.existsSync(lock), false);
  });

  it('serialises callers in the same process too', async function () {
    const { lock } = freshLock();
    let inside = 0;
    let max = 0;
    await Promise.all(
      Array.from({ length: 5 }, () =>
        withFileLock(lock, async () => {
          max = Math.max(max, ++inside);
          await sleep(10);
          inside--;
        }, { pollMs: 2 }),
      ),
    );
    assert.equal(max, 1);
  });

  it('breaks a lock whose process is dead', async function () {
    const { lock } = freshLock();
    fs.writeFileSync(lock, JSON.stringify({ pid: deadPid(), at: Date.now() }));
    const started = Date.now();
    assert.equal(await withFileLock(lock, async () => 'entered', { timeoutMs: 2_000 }), 'entered');
    assert.ok(Date.now() - started < 1_000, 'without waiting for staleMs');
    assert.equal(fs.existsSync(lock), false);
    assert.deepEqual(fs.readdirSync(path.dirname(lock)), [], 'no aside or guard files left');
  });

  it('breaks a lock older than staleMs even if its process is alive', async function () {
    const { lock } = freshLock();
    fs.writeFileSync(lock, JSON.stringify({ pid: process.pid, at: Date.now() - 10_000 }));
    assert.equal(await withFileLock(lock, async () => 'entered', { staleMs: 1_000, timeoutMs: 2_000 }), 'entered');
    // Unparsable (e.g. a holder that crashed between create and write) is judged by the file's age.
    fs.writeFileSync(lock, '');
    const old = new Date(Date.now() - 10_000);
    fs.utimesSync(lock, old, old);
    assert.equal(await withFileLock(lock, async () => 'again', { staleMs: 1_000, timeoutMs: 2_000 }), 'again');
  });

  it('a live holder makes a waiter time out with LockTimeout, within bounds, and keeps its lock', async function () {
    this.timeout(20_000);
    const { lock, inside } = freshLock();
    const holderCode = `
      const { withFileLock } = require(process.argv[1]);
      withFileLock(process.argv[2], async () => {
        process.stdout.write('locked');
        await new Promise((r) => setTimeout(r, 4000));
      }).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });`;
    const holder = startChild(holderCode, [bundle, lock, inside]);
    try {
      await holder.printed('locked');
      const started = Date.now();
      let entered = false;
      await assert.rejects(
        withFileLock(lock, async () => void (entered = true), { timeoutMs: 400, pollMs: 20 }),
        (err: unknown) => {
          assert.ok(err instanceof LockTimeout);
          assert.ok(err instanceof Error);
          assert.equal(err.name, 'LockTimeout');
          assert.match(err.message, /Timed out after 400 ms/);
          assert.ok(err.message.includes(lock));
          return true;
        },
      );
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 390 && elapsed < 1_500, `timed out after ${elapsed} ms`);
      assert.equal(entered, false);
      assert.ok(fs.existsSync(lock), 'the holder keeps its lock');
      await holder.done;
      assert.equal(fs.existsSync(lock), false, 'the holder released it');
    } finally {
      holder.kill();
    }
  });

  it('releases the lock when fn throws', async function () {
    const { lock } = freshLock();
    await assert.rejects(withFileLock(lock, async () => { throw new Error('boom'); }), /boom/);
    assert.equal(fs.existsSync(lock), false);
    const started = Date.now();
    await withFileLock(lock, async () => {}, { timeoutMs: 500 });
    assert.ok(Date.now() - started < 200);
  });

  it('does not delete a lock that is no longer its own', async function () {
    const { lock } = freshLock();
    const theirs = JSON.stringify({ pid: process.pid, at: Date.now(), id: 'someone-else' });
    await withFileLock(lock, async () => {
      // As if our lock had been broken as stale and taken by another process.
      fs.writeFileSync(lock, theirs);
    });
    assert.equal(fs.readFileSync(lock, 'utf8'), theirs);
  });

  it('two (and four) waiters racing to break one stale lock never both hold it', async function () {
    this.timeout(60_000);
    for (const waiters of [2, 2, 2, 4, 4]) {
      const { lock, inside } = freshLock();
      fs.writeFileSync(lock, JSON.stringify({ pid: deadPid(), at: Date.now() }));
      const startAt = String(Date.now() + 500); // all see the stale lock at the same moment
      const children = Array.from({ length: waiters }, () => startChild(childWorker, [bundle, lock, '', inside, '1', startAt, '100']));
      const outs = await Promise.all(children.map((c) => c.done)); // a second process inside fails its 'wx'
      assert.deepEqual(outs, Array(waiters).fill('ok'));
      assert.equal(fs.existsSync(lock), false);
      assert.deepEqual(fs.readdirSync(path.dirname(lock)), [], 'no aside or guard files left');
    }
  });

  it('a breaker stalled before renaming the stale lock does not take over the lock another waiter re-took', async function () {
    // Without care: B decides the lock is stale and stalls; A breaks it, takes the lock and is inside;
    // B wakes, renames A's live lock aside and enters too. (Detects a naive rename-and-retry breaker
    // deterministically.)
    this.timeout(30_000);
    for (let round = 0; round < 2; round++) {
      const { lock, inside } = freshLock();
      fs.writeFileSync(lock, JSON.stringify({ pid: deadPid(), at: Date.now() }));
      const startAt = String(Date.now() + 500);
      const slow = startChild(childWorker, [bundle, lock, '', inside, '1', startAt, '600', '300']);
      const fast = startChild(childWorker, [bundle, lock, '', inside, '1', startAt, '600']);
      assert.deepEqual(await Promise.all([slow.done, fast.done]), ['ok', 'ok']);
      assert.equal(fs.existsSync(lock), false);
      assert.deepEqual(fs.readdirSync(path.dirname(lock)), [], 'no aside or guard files left');
    }
  });
});
