// Local mode (the default) against real daemon processes: discovery file, single instance per
// state directory (also under a start race and after a crash), shutdown, idle exit, idle session
// timeout and the log files. The wire protocol itself: protocol.test.ts.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { helloClient, type TestClient } from '../helpers/client';
import { DAEMON_JS, runDaemon, startDaemon, tempDir, type DaemonOptions, type RunningDaemon } from '../helpers/daemon';
import { isProcessAlive, processStart, type DiscoveryInfo } from '../../server/auth/localMode';
import { reusePid, startBystander } from '../helpers/bystander';
import { sleep, within } from '../helpers/wait';
import type { CallToolResult, ListeningLine } from '../../server/protocol';

/** Settings of the test runner's environment that would change what the daemon does. */
const CLEAN_ENV: Record<string, undefined> = {
  MCP_ENABLE_MULTI_USER: undefined, SUPABASE_URL: undefined, SUPABASE_JWT_SECRET: undefined, DATABASE_URL: undefined,
  MCP_SESSION_TIMEOUT: undefined, MCP_MAX_CONNECTIONS_PER_USER: undefined, EXAI_WS_HOST: undefined,
  EXAI_IDLE_EXIT_SECONDS: undefined, EXAI_DAEMON_ID: undefined,
};
const LOOKS_LIKE_A_JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));
const discoveryFile = (stateDir: string) => path.join(stateDir, 'daemon.json');
const lockFile = (stateDir: string) => path.join(stateDir, 'daemon.lock');

interface Spawned {
  proc: ChildProcess;
  /** The first stdout line, parsed. */
  line: Promise<ListeningLine>;
  /** Exit code and all output (after the pipes closed, so nothing is lost). */
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

describe('local mode (real daemon processes)', function () {
  const dirs: string[] = [];
  const daemons: RunningDaemon[] = [];
  const spawned: Spawned[] = [];
  const clients: TestClient[] = [];

  const dir = (prefix: string) => {
    const d = tempDir(prefix);
    dirs.push(d);
    return d;
  };
  const start = async (opts: DaemonOptions = {}) => {
    const d = await startDaemon({ ...opts, env: { ...CLEAN_ENV, ...opts.env }, stateDir: opts.stateDir ?? dir('lm-state') });
    daemons.push(d);
    return d;
  };
  const secretOf = (d: RunningDaemon) => (readJson(discoveryFile(d.stateDir)) as DiscoveryInfo).secret!;
  const hello = async (d: RunningDaemon, instance: string, token = secretOf(d)) => {
    const { client, ack } = await helloClient(d.url, token, instance);
    clients.push(client);
    return { client, ack };
  };

  /** Starts dist/server.js without waiting: for start races and already_running. */
  function spawnRaw(stateDir: string, env: Record<string, string | undefined> = {}): Spawned {
    const merged: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...process.env, ...CLEAN_ENV, EXAI_STATE_DIR: stateDir, EXAI_LOG_DIR: path.join(stateDir, 'logs'), EXAI_WS_PORT: '0', ...env })) {
      if (v !== undefined) merged[k] = v;
    }
    const proc = spawn(process.execPath, [DAEMON_JS], { env: merged, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (d) => (stdout += d));
    proc.stderr!.on('data', (d) => (stderr += d));
    const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => proc.on('close', (code) => resolve({ code, stdout, stderr })));
    const line = new Promise<ListeningLine>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no stdout line within 15 s; stderr=${stderr}`)), 15000);
      proc.stdout!.on('data', () => {
        const nl = stdout.indexOf('\n');
        if (nl >= 0) { clearTimeout(timer); resolve(JSON.parse(stdout.slice(0, nl))); }
      });
      void done.then(({ code }) => { clearTimeout(timer); reject(new Error(`exited with ${code} before a line; stderr=${stderr}`)); });
    });
    line.catch(() => {}); // observed by the test when it matters
    const s = { proc, line, done };
    spawned.push(s);
    return s;
  }

  afterEach(async function () {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    for (const s of spawned.splice(0)) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
    await Promise.all(daemons.splice(0).map((d) => within(d.stop(), 12000, 'daemon stop').catch(() => d.kill9())));
  });
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  describe('discovery and single instance', function () {
    it('publishes <state>/daemon.json (0600) matching the listening line; its secret is the hello token', async function () {
      const stateDir = path.join(dir('lm-fresh'), 'not-yet-there');
      const d = await start({ stateDir });
      assert.equal(fs.statSync(stateDir).mode & 0o777, 0o700, 'the state directory is created owner-only');
      const file = discoveryFile(stateDir);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      const info = readJson(file) as DiscoveryInfo;
      assert.equal(info.pid, d.pid);
      assert.equal(info.pid, d.proc.pid);
      assert.equal(info.host, d.line.host);
      assert.equal(info.port, d.line.port);
      assert.equal(info.version, d.line.version);
      assert.equal(info.mode, 'local');
      assert.ok(typeof info.secret === 'string' && info.secret.length >= 32, 'a long random secret');
      assert.ok(!Number.isNaN(Date.parse(info.started_at)));
      assert.deepEqual(fs.readFileSync(lockFile(stateDir), 'utf8').trim().split('\n'), [String(d.pid), processStart(d.pid)!.token], 'the lock names the owner and its start token');
      assert.equal(info.process_start, processStart(d.pid)!.token, 'daemon.json records the start token');

      const { ack } = await hello(d, 'vscode-discovery', info.secret);
      assert.equal(ack.op === 'hello_ack' && ack.ok, true, JSON.stringify(ack));
      const wrong = await hello(d, 'vscode-wrong', info.secret.slice(0, -1) + (info.secret.endsWith('A') ? 'B' : 'A'));
      assert.equal(wrong.ack.op === 'hello_ack' && !wrong.ack.ok && wrong.ack.error.code, 'token_invalid');
    });

    it('a second start on the same state dir prints one already_running line for the first and exits 0', async function () {
      const first = await start();
      const before = fs.readFileSync(discoveryFile(first.stateDir), 'utf8');
      const statBefore = fs.statSync(discoveryFile(first.stateDir));

      const second = await within(spawnRaw(first.stateDir).done, 15000, 'second start');
      assert.equal(second.code, 0, second.stderr);
      const lines = second.stdout.trim().split('\n');
      assert.equal(lines.length, 1, second.stdout);
      const line = JSON.parse(lines[0]);
      assert.deepEqual(line, { event: 'already_running', host: first.line.host, port: first.port, pid: first.pid, version: first.line.version });
      assert.equal(second.stderr, '');

      assert.equal(fs.readFileSync(discoveryFile(first.stateDir), 'utf8'), before, 'daemon.json untouched');
      assert.equal(fs.statSync(discoveryFile(first.stateDir)).ino, statBefore.ino, 'not replaced by a rename');
      assert.deepEqual(fs.readdirSync(first.logDir), [`exai-daemon-${first.pid}.log`], 'the second start opened no log file');
      const { ack } = await hello(first, 'vscode-still-there');
      assert.equal(ack.op === 'hello_ack' && ack.ok, true, 'the first daemon still serves');
    });

    it('two starts at the same moment: one listens, the other reports it; one process stays (5 rounds)', async function () {
      this.timeout(30000);
      for (let round = 0; round < 5; round++) {
        const stateDir = path.join(dir('lm-race'), 'state'); // fresh and not yet created
        const a = spawnRaw(stateDir);
        const b = spawnRaw(stateDir);
        const [la, lb] = await within(Promise.all([a.line, b.line]), 15000, `round ${round}`);
        const events = [la.event, lb.event].sort();
        assert.deepEqual(events, ['already_running', 'listening'], `round ${round}: ${JSON.stringify([la, lb])}`);
        const [winner, loser] = la.event === 'listening' ? [a, b] : [b, a];
        const [wl, ll] = la.event === 'listening' ? [la, lb] : [lb, la];
        assert.equal(ll.port, wl.port, 'already_running names the winner’s port');
        assert.equal(ll.pid, winner.proc.pid);
        const lost = await within(loser.done, 5000, 'loser exit');
        assert.equal(lost.code, 0, lost.stderr);
        assert.equal(lost.stdout.trim().split('\n').length, 1);
        assert.ok(isProcessAlive(winner.proc.pid!) && winner.proc.exitCode === null, 'the winner keeps running');
        assert.equal((readJson(discoveryFile(stateDir)) as DiscoveryInfo).pid, winner.proc.pid);
        winner.proc.kill('SIGTERM');
        assert.equal((await within(winner.done, 12000, 'winner exit')).code, 0);
      }
    });

    it('replaces a stale lock and discovery file left by a process that died', async function () {
      const dead = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
      await within(new Promise((r) => dead.on('exit', r)), 10000, 'node -e ""');
      const deadPid = dead.pid!;
      assert.equal(isProcessAlive(deadPid), false);

      const stateDir = dir('lm-stale');
      fs.writeFileSync(lockFile(stateDir), String(deadPid), { mode: 0o600 });
      const stale: DiscoveryInfo = { pid: deadPid, host: '127.0.0.1', port: 1, version: '0.0.0', secret: 'x'.repeat(43), mode: 'local', supabase_url: null, started_at: new Date(0).toISOString() };
      fs.writeFileSync(discoveryFile(stateDir), JSON.stringify(stale), { mode: 0o600 });

      const d = await start({ stateDir });
      assert.equal(d.line.event, 'listening');
      const info = readJson(discoveryFile(stateDir)) as DiscoveryInfo;
      assert.equal(info.pid, d.pid);
      assert.equal(info.port, d.port);
      assert.notEqual(info.secret, stale.secret);
      assert.equal(fs.readFileSync(lockFile(stateDir), 'utf8').split('\n')[0], String(d.pid));
      assert.ok(!fs.existsSync(path.join(stateDir, 'daemon.lock.takeover')), 'no takeover lock left behind');
      const { ack } = await hello(d, 'vscode-after-stale');
      assert.equal(ack.op === 'hello_ack' && ack.ok, true);
    });

    it('a lock whose pid now belongs to an unrelated `node … server.js` (daemon.json naming it) is stale: listens, leaves that process alone', async function () {
      const stateDir = dir('lm-reused');
      const first = await start({ stateDir });
      await first.kill9(); // leaves daemon.lock and daemon.json behind
      const bystander = await startBystander(first.line.version);
      try {
        reusePid(stateDir, bystander.pid, bystander.port); // the OS gave the dead daemon's pid to it
        const d = await start({ stateDir });
        assert.equal(d.line.event, 'listening', 'the stale lock was taken for a live daemon');
        assert.equal((readJson(discoveryFile(stateDir)) as DiscoveryInfo).pid, d.pid);
        assert.equal(fs.readFileSync(lockFile(stateDir), 'utf8').split('\n')[0], String(d.pid));
        const { ack } = await hello(d, 'vscode-after-reuse');
        assert.equal(ack.op === 'hello_ack' && ack.ok, true);
        assert.deepEqual(bystander.signals(), []);
        assert.ok(bystander.running());
      } finally {
        bystander.kill();
      }
    });

    it('replaces an empty lock (a crash between create and write) once it is older than 2 s', async function () {
      const stateDir = dir('lm-empty-lock');
      fs.writeFileSync(lockFile(stateDir), '', { mode: 0o600 });
      const old = new Date(Date.now() - 10_000);
      fs.utimesSync(lockFile(stateDir), old, old);
      const d = await start({ stateDir });
      assert.equal(fs.readFileSync(lockFile(stateDir), 'utf8').split('\n')[0], String(d.pid));
    });
  });

  describe('shutdown', function () {
    it('SIGTERM: exits 0 and removes daemon.json and daemon.lock', async function () {
      const d = await start();
      assert.ok(fs.existsSync(discoveryFile(d.stateDir)) && fs.existsSync(lockFile(d.stateDir)));
      assert.equal(await within(d.stop(), 12000, 'SIGTERM exit'), 0);
      assert.equal(fs.existsSync(discoveryFile(d.stateDir)), false);
      assert.equal(fs.existsSync(lockFile(d.stateDir)), false);
      assert.equal(d.stderr(), '');
    });

    it('SIGTERM the moment the listening line appears still exits 0 and cleans up (5 rounds)', async function () {
      // The line promises a running daemon; a stop right then must not kill it uncleanly.
      for (let round = 0; round < 5; round++) {
        const stateDir = dir('lm-term-now');
        const s = spawnRaw(stateDir);
        const line = await s.line;
        assert.equal(line.event, 'listening');
        s.proc.kill('SIGTERM');
        const res = await within(s.done, 12000, 'exit');
        assert.deepEqual(
          { round, code: res.code, signal: s.proc.signalCode, left: fs.readdirSync(stateDir).filter((f) => f.startsWith('daemon.')) },
          { round, code: 0, signal: null, left: [] },
        );
      }
    });

    it('SIGTERM with a client connected: the client hears shutdown and 1001, the daemon exits 0', async function () {
      const d = await start();
      const { client } = await hello(d, 'vscode-term');
      d.proc.kill('SIGTERM');
      await client.next((f) => f.op === 'shutdown', 5000);
      assert.equal((await within(client.closed, 5000, 'client close')).code, 1001);
      assert.equal(await within(d.exited, 12000, 'exit'), 0);
      assert.equal(fs.existsSync(discoveryFile(d.stateDir)), false);
    });

    it('a restart after SIGTERM on the same state dir gets a new discovery file', async function () {
      const a = await start();
      await a.stop();
      const b = await start({ stateDir: a.stateDir });
      assert.equal(b.line.event, 'listening');
      assert.equal((readJson(discoveryFile(a.stateDir)) as DiscoveryInfo).pid, b.pid);
    });
  });

  describe('EXAI_IDLE_EXIT_SECONDS=1', function () {
    it('exits 0 by itself with no connection and removes daemon.json', async function () {
      const started = Date.now();
      const d = await start({ env: { EXAI_IDLE_EXIT_SECONDS: '1' } });
      assert.equal(await within(d.exited, 6000, 'idle exit'), 0);
      assert.ok(Date.now() - started >= 900, 'waited about a second');
      assert.equal(fs.existsSync(discoveryFile(d.stateDir)), false);
      assert.equal(fs.existsSync(lockFile(d.stateDir)), false);
    });

    it('stays while a client is connected and exits about 1 s after it leaves', async function () {
      const d = await start({ env: { EXAI_IDLE_EXIT_SECONDS: '1' } });
      const { client, ack } = await hello(d, 'vscode-keepalive');
      assert.equal(ack.op === 'hello_ack' && ack.ok, true);
      await sleep(2000);
      assert.equal(d.proc.exitCode, null, 'still running after 2 s with a connection');
      assert.equal(client.ws.readyState, client.ws.OPEN);
      const left = Date.now();
      await client.close();
      assert.equal(await within(d.exited, 5000, 'exit after the last client left'), 0);
      const after = Date.now() - left;
      assert.ok(after >= 800 && after < 3500, `exited ${after} ms after the client left`);
      assert.equal(fs.existsSync(discoveryFile(d.stateDir)), false);
    });
  });

  describe('MCP_SESSION_TIMEOUT=1 (idle sessions)', function () {
    it('closes a silent connection with 4005 and its row reads expired', async function () {
      const d = await start({ env: { MCP_SESSION_TIMEOUT: '1' } });
      const first = await hello(d, 'vscode-silent');
      assert.ok(first.ack.op === 'hello_ack' && first.ack.ok);
      const closed = await within(first.client.closed, 5000, 'idle close');
      assert.equal(closed.code, 4005);

      const second = await hello(d, 'vscode-second');
      assert.ok(second.ack.op === 'hello_ack' && second.ack.ok);
      second.client.send({ op: 'call_tool', request_id: 's', name: 'sessions', arguments: {} });
      const res = await second.client.next<CallToolResult>((f) => f.op === 'call_tool_res' && f.request_id === 's', 5000);
      assert.ok(res.ok, JSON.stringify(res));
      const rows = JSON.parse(res.outputs[0].text) as { session_id: string; connection_status: string; current: boolean }[];
      const firstSession = first.ack.op === 'hello_ack' && first.ack.ok ? first.ack.session_id : '?';
      const old = rows.find((r) => r.session_id === firstSession);
      assert.ok(old, JSON.stringify(rows));
      assert.equal(old.connection_status, 'expired');
      assert.equal(old.current, false);
      assert.equal(rows.find((r) => r.current)?.connection_status, 'connected');
    });

    it('keeps a client that calls a tool every 300 ms open past 2 s (and closes it once it stops); pings alone: idle.test.ts', async function () {
      const d = await start({ env: { MCP_SESSION_TIMEOUT: '1' } });
      const { client } = await hello(d, 'vscode-caller');
      let n = 0;
      const timer = setInterval(() => client.send({ op: 'call_tool', request_id: `c${n++}`, name: 'version', arguments: {} }), 300);
      try {
        await sleep(2300);
        assert.equal(client.ws.readyState, client.ws.OPEN, 'still open after 2.3 s of calls');
        assert.ok(client.frames.filter((f) => f.op === 'call_tool_res').length >= 5);
      } finally {
        clearInterval(timer);
      }
      assert.equal((await within(client.closed, 4000, 'idle close after pings stop')).code, 4005);
    });
  });

  describe('logs', function () {
    it('one JSON-lines file per daemon in a shared EXAI_LOG_DIR, tagged, and never a secret or token', async function () {
      const logDir = dir('lm-logs');
      const a = await start({ logDir });
      const b = await start({ logDir });
      const secrets = [secretOf(a), secretOf(b)];

      const ok = await hello(a, 'vscode-log');
      assert.ok(ok.ack.op === 'hello_ack' && ok.ack.ok);
      ok.client.send({ op: 'call_tool', request_id: 'w', name: 'whoami', arguments: {} });
      await ok.client.next((f) => f.op === 'call_tool_res', 5000);
      await ok.client.close();
      // A wrong token that looks like a JWT, and values a client controls that are logged.
      const bad = await hello(a, `inst-${LOOKS_LIKE_A_JWT}`, LOOKS_LIKE_A_JWT);
      assert.equal(bad.ack.op === 'hello_ack' && !bad.ack.ok && bad.ack.error.code, 'token_invalid');
      const leaky = await hello(b, `inst-${secrets[1]}`, secrets[1]);
      assert.ok(leaky.ack.op === 'hello_ack' && leaky.ack.ok);
      await leaky.client.close();

      assert.equal(await a.stop(), 0); // flushes the log
      assert.equal(await b.stop(), 0);
      assert.deepEqual(fs.readdirSync(logDir).sort(), [`exai-daemon-${a.pid}.log`, `exai-daemon-${b.pid}.log`].sort());

      const parse = (pid: number) => fs.readFileSync(path.join(logDir, `exai-daemon-${pid}.log`), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      for (const [d, lines] of [[a, parse(a.pid)], [b, parse(b.pid)]] as const) {
        assert.ok(lines.length >= 3, JSON.stringify(lines));
        for (const line of lines) {
          assert.ok(typeof line.t === 'string' && !Number.isNaN(Date.parse(line.t)), JSON.stringify(line));
          assert.ok(['debug', 'info', 'warn', 'error'].includes(line.level), JSON.stringify(line));
          assert.equal(typeof line.msg, 'string');
          assert.equal(line.daemon_pid, d.pid, 'each file holds only its own daemon’s lines');
        }
        assert.ok(lines.some((l) => l.msg === 'listening' && l.port === d.port));
      }
      const aLines = parse(a.pid);
      const sessionId = (ok.ack as any).session_id;
      const connected = aLines.find((l) => l.msg === 'connected' && l.instance === 'vscode-log');
      assert.ok(connected, JSON.stringify(aLines));
      assert.equal(connected.session, sessionId);
      const closed = aLines.find((l) => l.msg === 'closed' && l.session === sessionId);
      assert.equal(closed?.instance, 'vscode-log');
      const refused = aLines.find((l) => l.msg === 'token refused');
      assert.ok(refused && typeof refused.session === 'string' && 'instance' in refused, JSON.stringify(refused));

      const all = fs.readdirSync(logDir).map((f) => fs.readFileSync(path.join(logDir, f), 'utf8')).join('') + a.stderr() + b.stderr();
      for (const s of secrets) assert.ok(!all.includes(s), 'a local secret reached a log');
      assert.ok(!all.includes(LOOKS_LIKE_A_JWT), 'a JWT-like token reached a log');
      assert.ok(!all.includes('c2lnbmF0dXJl'), 'not even the token’s signature segment');
    });
  });

  it('refuses a non-loopback --host in local mode: exit 2, one sentence on stderr', async function () {
    const stateDir = dir('lm-host');
    const res = await runDaemon({ stateDir, args: ['--host', '0.0.0.0'], env: CLEAN_ENV });
    assert.equal(res.code, 2);
    assert.equal(res.stdout, '');
    const lines = res.stderr.trim().split('\n');
    assert.equal(lines.length, 1, res.stderr);
    assert.match(lines[0], /0\.0\.0\.0 is not a loopback address/);
    assert.ok(!fs.existsSync(lockFile(stateDir)) && !fs.existsSync(discoveryFile(stateDir)), 'took no lock');
  });
});
