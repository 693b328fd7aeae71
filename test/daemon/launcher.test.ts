// src/daemon/launcher.ts against the real bundled daemon (dist/server.js), each test with its own
// temporary state directory. Every daemon a test starts is stopped in afterEach.
//
// This file doubles as the program of the "two child processes" test: run with
// EXAI_LAUNCHER_TEST_CHILD=<options JSON>, it calls ensureLocalDaemon once and prints the result.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { isProcessAlive } from '../../server/auth/localMode';
import type { HealthBody } from '../../server/protocol';
import { CrashGuard, DaemonStartFailed, DaemonVersionMismatch, ENV_WHITELIST, ensureLocalDaemon, identifyDaemon, restartLocalDaemon, type LauncherOptions, type LocalDaemon } from '../../src/daemon/launcher';
import { reusePid, startBystander, type Bystander } from '../helpers/bystander';
import { helloClient } from '../helpers/client';
import { DAEMON_JS, tempDir } from '../helpers/daemon';
import { getJson } from '../helpers/getJson';
import { mintAnonKey } from '../helpers/tokens';
import { sleep, waitFor } from '../helpers/wait';
import pkg from '../../package.json';

const CHILD_ENV = 'EXAI_LAUNCHER_TEST_CHILD';

if (process.env[CHILD_ENV]) {
  ensureLocalDaemon(JSON.parse(process.env[CHILD_ENV]!) as LauncherOptions).then(
    (result) => {
      process.stdout.write(JSON.stringify(result) + '\n');
      process.exit(0);
    },
    (err: Error) => {
      process.stdout.write(JSON.stringify({ error: err.name, message: err.message }) + '\n');
      process.exit(1);
    },
  );
} else {
  describe('daemon launcher (real dist/server.js)', launcherTests);
}

/** Alive and not a zombie. */
function running(pid: number): boolean {
  if (!isProcessAlive(pid)) return false;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

/** The environment of a process, as name -> value. */
function environOf(pid: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean)) {
    const eq = entry.indexOf('=');
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** Live daemon processes (any pid) whose EXAI_STATE_DIR is `stateDir`: the "exactly one" check. */
function daemonsOn(stateDir: string): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(DAEMON_JS)) continue;
      if (environOf(pid).EXAI_STATE_DIR === stateDir && running(pid)) pids.push(pid);
    } catch {
      // gone, or not ours
    }
  }
  return pids;
}

function launcherTests(this: Mocha.Suite) {
  this.timeout(30_000);
  const started = new Set<number>();
  const stateDirs: string[] = [];

  const options = (over: Partial<LauncherOptions> = {}): LauncherOptions => {
    const stateDir = over.stateDir ?? tempDir('launcher');
    stateDirs.push(stateDir);
    return {
      serverJs: DAEMON_JS,
      nodePath: process.execPath,
      stateDir,
      logDir: path.join(stateDir, 'logs'),
      expectedVersion: pkg.version,
      idleExitSec: 300, // a daemon a failed test leaves behind still goes away on its own
      timeoutMs: 15_000,
      ...over,
    };
  };
  const track = (d: LocalDaemon) => {
    started.add(d.pid);
    return d;
  };
  const ensure = async (o: LauncherOptions) => track(await ensureLocalDaemon(o));

  afterEach(async function () {
    // Every daemon started here: the tracked ones and any other found on our state directories.
    for (const dir of stateDirs.splice(0)) for (const pid of daemonsOn(dir)) started.add(pid);
    for (const pid of started) if (running(pid)) process.kill(pid, 'SIGTERM');
    for (const pid of started) {
      const gone = () => !running(pid);
      const exited = await waitFor(gone, 5000, `daemon ${pid} to exit on SIGTERM`, { everyMs: 25 }).then(() => true, () => false);
      if (!exited) {
        process.kill(pid, 'SIGKILL');
        await waitFor(gone, 2000, `daemon ${pid} to exit on SIGKILL`, { everyMs: 25 }).catch(() => {}); // best effort
      }
    }
    started.clear();
  });

  it('spawns a daemon when none runs: daemon.json appears, /health is ok, spawned:true', async function () {
    const o = options();
    const d = await ensure(o);
    assert.equal(d.spawned, true);
    assert.equal(d.version, pkg.version);
    assert.equal(d.url, `ws://127.0.0.1:${d.port}/`);
    const file = path.join(o.stateDir, 'daemon.json');
    const info = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.equal(info.pid, d.pid);
    assert.equal(info.port, d.port);
    assert.equal(info.secret, d.secret);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const h = await getJson<HealthBody>(d.port, '/health');
    assert.equal(h.status, 200);
    assert.equal(h.body.status, 'ok');
    assert.equal(h.body.mode, 'local');
    assert.ok(running(d.pid));
  });

  it('reuses a live daemon (spawned:false, same pid and secret)', async function () {
    const o = options();
    const first = await ensure(o);
    const second = await ensure(o);
    assert.equal(second.spawned, false);
    assert.equal(second.pid, first.pid);
    assert.equal(second.port, first.port);
    assert.equal(second.secret, first.secret);
    assert.deepEqual(daemonsOn(o.stateDir), [first.pid]);
  });

  it('starts a new daemon when daemon.json (and the lock) name a dead pid', async function () {
    const o = options();
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
    assert.equal(running(deadPid), false);
    fs.mkdirSync(o.stateDir, { recursive: true });
    fs.writeFileSync(path.join(o.stateDir, 'daemon.json'), JSON.stringify({ pid: deadPid, host: '127.0.0.1', port: 1, version: pkg.version, secret: 'stale-secret', mode: 'local', started_at: new Date().toISOString() }), { mode: 0o600 });
    fs.writeFileSync(path.join(o.stateDir, 'daemon.lock'), String(deadPid));
    const d = await ensure(o);
    assert.equal(d.spawned, true);
    assert.notEqual(d.pid, deadPid);
    assert.notEqual(d.secret, 'stale-secret');
    assert.equal((await getJson<HealthBody>(d.port, '/health')).body.status, 'ok');
  });

  it('refuses a running daemon of another version with DaemonVersionMismatch (and leaves it running)', async function () {
    const o = options();
    const d = await ensure(o);
    const err = await ensureLocalDaemon({ ...o, expectedVersion: 'x.y.z' }).then(
      () => assert.fail('a daemon of another version was used'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof DaemonVersionMismatch, String(err));
    assert.equal(err.runningVersion, pkg.version);
    assert.equal(err.expectedVersion, 'x.y.z');
    assert.equal(err.pid, d.pid);
    assert.match(err.message, /Restart the daemon/);
    assert.match(err.message, new RegExp(`version ${pkg.version.replace(/\./g, '\\.')}.*x\\.y\\.z`));
    assert.ok(running(d.pid));
  });

  it('ends with exactly one daemon when two calls race in one process', async function () {
    const o = options();
    const [a, b] = await Promise.all([ensure(o), ensure(o)]);
    assert.equal(a.pid, b.pid);
    assert.equal(a.port, b.port);
    assert.equal(a.secret, b.secret);
    assert.equal([a, b].filter((d) => d.spawned).length, 1, 'exactly one of them started the daemon');
    // The loser's daemon printed already_running and exited.
    await waitFor(() => daemonsOn(o.stateDir).length === 1, 3000, 'one daemon left', { everyMs: 25, context: () => `daemons: ${daemonsOn(o.stateDir)}` });
    assert.deepEqual(daemonsOn(o.stateDir), [a.pid]);
  });

  it('ends with exactly one daemon when two processes (two windows) race', async function () {
    const o = options();
    const runChild = () =>
      new Promise<any>((resolve, reject) => {
        const child = spawn(process.execPath, [__filename], { env: { ...process.env, [CHILD_ENV]: JSON.stringify(o) }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (err += d));
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.on('close', () => {
          clearTimeout(timer);
          try {
            resolve(JSON.parse(out.trim().split('\n').pop()!));
          } catch {
            reject(new Error(`child printed ${JSON.stringify(out)}; stderr ${err}`));
          }
        });
      });
    const [a, b] = await Promise.all([runChild(), runChild()]);
    assert.equal(a.error, undefined, JSON.stringify(a));
    assert.equal(b.error, undefined, JSON.stringify(b));
    started.add(a.pid);
    assert.equal(a.pid, b.pid);
    assert.equal(a.secret, b.secret);
    assert.equal([a, b].filter((d) => d.spawned).length, 1);
    // The daemon outlives the processes that started it (detached).
    assert.ok(running(a.pid));
    assert.equal((await getJson<HealthBody>(a.port, '/health')).body.status, 'ok');
    await waitFor(() => daemonsOn(o.stateDir).length === 1, 3000, 'one daemon left', { everyMs: 25, context: () => `daemons: ${daemonsOn(o.stateDir)}` });
  });

  it('restartLocalDaemon stops the running daemon and starts a new one', async function () {
    const o = options();
    const first = await ensure(o);
    const second = track(await restartLocalDaemon(o));
    assert.notEqual(second.pid, first.pid);
    assert.equal(second.spawned, true);
    assert.notEqual(second.secret, first.secret);
    assert.equal(running(first.pid), false);
    assert.equal((await getJson<HealthBody>(second.port, '/health')).body.status, 'ok');
    assert.deepEqual(daemonsOn(o.stateDir), [second.pid]);
  });

  describe('restartLocalDaemon and a pid that is no longer the daemon (never signal on a pid alone)', function () {
    const bystanders: Bystander[] = [];
    afterEach(() => bystanders.splice(0).forEach((b) => b.kill()));

    /** A daemon that died without cleaning up, whose pid the OS then gave to an unrelated `node … server.js`. */
    async function deadDaemonWithReusedPid(o: LauncherOptions, edit: (info: Record<string, unknown>) => void = () => {}) {
      const dead = await ensure(o);
      process.kill(dead.pid, 'SIGKILL');
      await waitFor(() => !running(dead.pid), 5000, 'the killed daemon to exit', { everyMs: 25 });
      // A pid is reused long after its process started (here: > 1 s after it wrote started_at).
      const startedAt = Date.parse(JSON.parse(fs.readFileSync(path.join(o.stateDir, 'daemon.json'), 'utf8')).started_at);
      await sleep(Math.max(0, startedAt + 1500 - Date.now()));
      const bystander = await startBystander(pkg.version); // answers /health like a daemon of our version
      bystanders.push(bystander);
      reusePid(o.stateDir, bystander.pid, bystander.port);
      const file = path.join(o.stateDir, 'daemon.json');
      const info = JSON.parse(fs.readFileSync(file, 'utf8'));
      edit(info);
      fs.writeFileSync(file, JSON.stringify(info), { mode: 0o600 });
      return { dead, bystander };
    }
    const expectNewDaemonAndBystanderUntouched = async (o: LauncherOptions, bystander: Bystander) => {
      const d = track(await restartLocalDaemon(o));
      assert.equal(d.spawned, true);
      assert.notEqual(d.pid, bystander.pid);
      assert.equal((await getJson<HealthBody>(d.port, '/health')).body.status, 'ok');
      const { client, ack } = await helloClient(d.url, d.secret!);
      assert.ok(ack.op === 'hello_ack' && ack.ok, 'the new daemon accepts its own secret');
      await client.close();
      await sleep(200); // a signal sent would have been recorded by now
      assert.deepEqual(bystander.signals(), [], 'the unrelated process was signalled');
      assert.ok(bystander.running());
      assert.deepEqual(daemonsOn(o.stateDir), [d.pid]);
    };

    it('a stale daemon.json whose pid now runs `node … server.js` (answering /health): not signalled, a new daemon starts', async function () {
      const o = options();
      const { bystander } = await deadDaemonWithReusedPid(o);
      await expectNewDaemonAndBystanderUntouched(o, bystander);
    });

    it('the same with a daemon.json of an older version (no start token): its started_at predates the process', async function () {
      const o = options();
      const { bystander } = await deadDaemonWithReusedPid(o, (info) => delete info.process_start);
      const lock = path.join(o.stateDir, 'daemon.lock');
      const { atime, mtime } = fs.statSync(lock);
      fs.writeFileSync(lock, String(bystander.pid)); // a lock of an older version: the pid only
      fs.utimesSync(lock, atime, mtime);
      await expectNewDaemonAndBystanderUntouched(o, bystander);
    });

    it('unproven (no start token, no started_at, a secret it does not accept) while it answers /health: refuses to stop it, says why', async function () {
      const o = options();
      const { bystander } = await deadDaemonWithReusedPid(o, (info) => {
        delete info.process_start;
        delete info.started_at;
      });
      const err = await restartLocalDaemon(o).then(() => assert.fail('restarted without proof'), (e: unknown) => e);
      assert.ok(err instanceof DaemonStartFailed, String(err));
      assert.match(err.message, new RegExp(`Could not confirm that process ${bystander.pid} .* is the EXAI daemon, so it was not stopped`));
      assert.deepEqual(bystander.signals(), []);
    });

    it('still stops a real daemon whose daemon.json is of an older version: started_at proves it', async function () {
      const o = options();
      const first = await ensure(o);
      const file = path.join(o.stateDir, 'daemon.json');
      const info = JSON.parse(fs.readFileSync(file, 'utf8'));
      delete info.process_start;
      fs.writeFileSync(file, JSON.stringify(info), { mode: 0o600 });
      const second = track(await restartLocalDaemon(o));
      assert.notEqual(second.pid, first.pid);
      assert.equal(running(first.pid), false);
    });

    it('and, with neither start token nor started_at (Windows), the daemon asked on its port must report the pid of daemon.json', async function () {
      const o = options();
      const first = await ensure(o);
      const file = path.join(o.stateDir, 'daemon.json');
      const info = JSON.parse(fs.readFileSync(file, 'utf8'));
      delete info.process_start;
      delete info.started_at;
      assert.equal(await identifyDaemon(info), 'ours', 'signed in with the local secret');
      assert.equal(await identifyDaemon({ ...info, secret: null }, async () => info.secret), 'ours', "signed in with the user's token (supabase mode)");
      assert.equal(await identifyDaemon({ ...info, secret: null }), 'unproven', 'no credential');
      assert.equal(await identifyDaemon({ ...info, secret: 'not-the-secret' }), 'unproven');
      // A live daemon answers on the port, but the file names another process: a hello alone is not proof.
      const bystander = await startBystander(pkg.version);
      bystanders.push(bystander);
      assert.equal(await identifyDaemon({ ...info, pid: bystander.pid }), 'unproven');
      fs.writeFileSync(file, JSON.stringify(info), { mode: 0o600 });
      const second = track(await restartLocalDaemon(o));
      assert.notEqual(second.pid, first.pid);
      assert.equal(running(first.pid), false);
      assert.deepEqual(bystander.signals(), []);
    });
  });

  it('waits for a draining daemon to exit, then starts a new one', async function () {
    const o = options();
    const first = await ensure(o);
    // A call in flight keeps the daemon draining after SIGTERM until the call ends.
    const { client, ack } = await helloClient(first.url, first.secret!);
    assert.ok(ack.op === 'hello_ack' && ack.ok);
    client.send({ op: 'call_tool', request_id: 'slow', name: 'echo', arguments: { text: 'x', delay_ms: 1500 } });
    await client.next((f) => f.op === 'call_tool_ack');
    process.kill(first.pid, 'SIGTERM');
    // Draining: the daemon stops accepting (or answers 503) but lives on until the call ends.
    let status = 'ok';
    for (let i = 0; i < 40 && status === 'ok'; i++) {
      await sleep(25);
      status = await getJson<HealthBody>(first.port, '/health').then((h) => h.body.status, () => 'refused');
    }
    assert.notEqual(status, 'ok');
    assert.ok(running(first.pid), 'the daemon should still be draining');
    const second = await ensure(o);
    assert.notEqual(second.pid, first.pid);
    assert.equal(second.spawned, true);
    assert.equal(running(first.pid), false);
    await client.close();
  });

  it('restartLocalDaemon starts a daemon when none runs', async function () {
    const d = track(await restartLocalDaemon(options()));
    assert.equal(d.spawned, true);
  });

  it('passes only whitelisted variables to the daemon (no keys, tokens or passwords)', async function () {
    const secrets: Record<string, string> = {
      SUPABASE_SERVICE_ROLE_KEY: 'service-role-key-must-not-leak',
      DATABASE_URL: 'postgres://postgres:db-password-must-not-leak@127.0.0.1:5432/postgres',
      EXAI_FAKE_JWT: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsZWFrIn0.signature-must-not-leak',
      SUPABASE_JWT_SECRET: 'jwt-secret-must-not-leak-0123456789abcdef',
      GITHUB_TOKEN: 'ghp_token_must_not_leak',
      MCP_ENABLE_MULTI_USER: 'true', // would switch the daemon to supabase mode
      EXAI_WS_PORT: '8079',
    };
    const saved = Object.fromEntries(Object.keys(secrets).map((k) => [k, process.env[k]]));
    Object.assign(process.env, secrets);
    let d: LocalDaemon;
    const o = options({ idleExitSec: 123 });
    try {
      d = await ensure(o);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    const raw = fs.readFileSync(`/proc/${d.pid}/environ`, 'utf8');
    for (const [name, value] of Object.entries(secrets)) {
      if (name === 'EXAI_WS_PORT' || name === 'MCP_ENABLE_MULTI_USER') continue;
      assert.ok(!raw.includes(value), `${name}'s value reached the daemon`);
      assert.ok(!raw.includes(`${name}=`), `${name} reached the daemon`);
    }
    assert.ok(!raw.includes('eyJ'), 'a JWT reached the daemon');
    const env = environOf(d.pid);
    const allowed = new Set<string>([...ENV_WHITELIST, 'ELECTRON_RUN_AS_NODE', 'EXAI_STATE_DIR', 'EXAI_LOG_DIR', 'EXAI_IDLE_EXIT_SECONDS', 'EXAI_WS_PORT']);
    const extra = Object.keys(env).filter((k) => !allowed.has(k));
    assert.deepEqual(extra, [], `unexpected variables: ${extra.join(', ')}`);
    assert.equal(env.ELECTRON_RUN_AS_NODE, '1');
    assert.equal(env.EXAI_STATE_DIR, o.stateDir);
    assert.equal(env.EXAI_LOG_DIR, o.logDir);
    assert.equal(env.EXAI_IDLE_EXIT_SECONDS, '123');
    assert.equal(env.EXAI_WS_PORT, '0');
    if (process.env.PATH) assert.equal(env.PATH, process.env.PATH);
    assert.equal((await getJson<HealthBody>(d.port, '/health')).body.mode, 'local');
  });

  it('spawns a supabase-mode daemon with only the project URL and the public anon key', async function () {
    const anonKey = await mintAnonKey('a-legacy-jwt-secret-of-at-least-32-chars');
    const secrets = { SUPABASE_SERVICE_ROLE_KEY: 'service-role-key-must-not-leak', DATABASE_URL: 'postgres://u:db-password-must-not-leak@h/db' };
    const saved = Object.fromEntries(Object.keys(secrets).map((k) => [k, process.env[k]]));
    Object.assign(process.env, secrets);
    let d: LocalDaemon;
    const o = options({ supabase: { url: 'http://127.0.0.1:9', anonKey } });
    try {
      d = await ensure(o);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    assert.equal(d.secret, null, 'no local secret: users present their own tokens');
    assert.equal((await getJson<HealthBody>(d.port, '/health')).body.mode, 'supabase');
    const env = environOf(d.pid);
    assert.equal(env.SUPABASE_URL, 'http://127.0.0.1:9');
    assert.equal(env.SUPABASE_ANON_KEY, anonKey);
    assert.equal(env.MCP_ENABLE_MULTI_USER, 'true');
    const raw = fs.readFileSync(`/proc/${d.pid}/environ`, 'utf8');
    for (const value of Object.values(secrets)) assert.ok(!raw.includes(value));
    const discovery = fs.readFileSync(path.join(o.stateDir, 'daemon.json'), 'utf8');
    assert.deepEqual(JSON.parse(discovery).supabase_url, 'http://127.0.0.1:9');
    assert.ok(!discovery.includes(anonKey) && !/eyJ/.test(discovery), 'the discovery file holds no key or token');
    // The same state directory asked for by a window of another project (or local mode) is refused, clearly.
    await assert.rejects(ensureLocalDaemon({ ...o, supabase: { url: 'http://127.0.0.1:10', anonKey } }), (err: Error) => err instanceof DaemonStartFailed && /runs in supabase mode for http:\/\/127\.0\.0\.1:9, but this window needs supabase mode for http:\/\/127\.0\.0\.1:10/.test(err.message));
    await assert.rejects(ensureLocalDaemon({ ...o, supabase: null }), /needs local mode/);
  });

  it("throws DaemonStartFailed with the daemon's own sentence when it exits before listening", async function () {
    const dir = tempDir('launcher-bad');
    const script = path.join(dir, 'bad-server.js');
    fs.writeFileSync(script, "process.stderr.write('some noise\\nexai-daemon: port 8079 on 127.0.0.1 is already in use; choose another with --port.\\n'); process.exit(2);\n");
    const err = await ensureLocalDaemon(options({ serverJs: script })).then(() => assert.fail('resolved'), (e: unknown) => e);
    assert.ok(err instanceof DaemonStartFailed, String(err));
    assert.equal(err.exitCode, 2);
    assert.equal(err.stderrLine, 'port 8079 on 127.0.0.1 is already in use; choose another with --port.');
    assert.equal(err.message, 'The EXAI daemon could not start: port 8079 on 127.0.0.1 is already in use; choose another with --port.');
  });

  it('throws DaemonStartFailed when the real daemon cannot use its state directory', async function () {
    const dir = tempDir('launcher-file');
    const notADir = path.join(dir, 'state-is-a-file');
    fs.writeFileSync(notADir, '');
    const err = await ensureLocalDaemon(options({ stateDir: notADir, logDir: path.join(dir, 'logs') })).then(() => assert.fail('resolved'), (e: unknown) => e);
    assert.ok(err instanceof DaemonStartFailed, String(err));
    assert.ok(err.stderrLine, 'the daemon printed a reason');
    assert.match(err.message, /^The EXAI daemon could not start: .*state-is-a-file/);
  });

  it('throws DaemonStartFailed (and kills the process) when nothing is printed within timeoutMs', async function () {
    const dir = tempDir('launcher-silent');
    const script = path.join(dir, 'silent-server.js');
    const pidFile = path.join(dir, 'pid');
    fs.writeFileSync(script, `require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setInterval(() => {}, 1000);\n`);
    const t0 = Date.now();
    const err = await ensureLocalDaemon(options({ serverJs: script, timeoutMs: 700 })).then(() => assert.fail('resolved'), (e: unknown) => e);
    assert.ok(err instanceof DaemonStartFailed, String(err));
    assert.match(err.message, /did not start within/);
    assert.ok(Date.now() - t0 < 3000);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    await waitFor(() => !running(pid), 3000, 'the silent process to be stopped', { everyMs: 25 });
  });

  it('throws DaemonStartFailed when the runtime cannot be run', async function () {
    const err = await ensureLocalDaemon(options({ nodePath: '/nonexistent/node' })).then(() => assert.fail('resolved'), (e: unknown) => e);
    assert.ok(err instanceof DaemonStartFailed, String(err));
    assert.match(err.message, /Could not run \/nonexistent\/node.*ENOENT/);
  });

  describe('CrashGuard', function () {
    it('allows two crashes a minute and trips on the third', function () {
      let now = 1_000_000;
      const guard = new CrashGuard({ logDir: '/var/log/exai', now: () => now });
      assert.equal(guard.recordCrash(), true);
      now += 10_000;
      assert.equal(guard.recordCrash(), true);
      now += 10_000;
      assert.equal(guard.recordCrash(), false);
      assert.equal(guard.message, "The EXAI daemon crashed 3 times in a minute; see its log at /var/log/exai. Run 'EXAI: Reconnect' to try again.");
    });

    it('forgets crashes older than the window', function () {
      let now = 0;
      const guard = new CrashGuard({ logDir: '/l', now: () => now });
      assert.equal(guard.recordCrash(), true);
      now = 30_000;
      assert.equal(guard.recordCrash(), true);
      now = 61_000; // the first one is out of the window
      assert.equal(guard.recordCrash(), true);
      now = 62_000;
      assert.equal(guard.recordCrash(), false);
    });

    it('reset() starts over; the limit and window are configurable', function () {
      let now = 0;
      const guard = new CrashGuard({ logDir: '/l', maxCrashes: 2, windowMs: 5_000, now: () => now });
      assert.equal(guard.recordCrash(), true);
      assert.equal(guard.recordCrash(), false);
      guard.reset();
      assert.equal(guard.recordCrash(), true);
      now = 6_000;
      assert.equal(guard.recordCrash(), true);
      assert.match(guard.message, /crashed 2 times in 5 s/);
    });
  });
}
