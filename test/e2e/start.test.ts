// `npm start` and `npm run start:multi-user` as a newcomer runs them: real npm child processes
// (set-up, build, package, code-server, Chromium), each in a fresh EXAI_START_DIR so a run never
// collides with another. Checked: exit 0, the URL line, the README screenshot, and that no process
// the run started (code-server, extension host, daemon, test server, Chromium) is left afterwards,
// including after Ctrl-C on a running `npm start`.
//
// A fresh machine needs up to ~10 min for the first run (Node 22, npm ci, code-server ~95 s);
// after that each run takes well under a minute.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import type { BrowserContext } from 'playwright-core';
import { launchBrowser, ROOT } from '../helpers/codeServer';
import { ADMIN_URL } from '../helpers/pg';
import { processesOf, sleep, stopPids } from '../../scripts/start/processes';

/** Where --check saves its screenshots during tests (not media/, which holds the README's copies). */
const SHOTS = path.join(ROOT, 'test-results', 'e2e', 'start');
const FIRST_RUN_MS = 600_000;
const URL_LINE = /^EXAI is running in VS Code at (http:\/\/127\.0\.0\.1:\d+\/\?folder=\S+)  /m;

interface NpmRun {
  proc: ChildProcess;
  /** The run's directory: EXAI_START_DIR/<mode>; every process of the run carries it in its environment. */
  runDir: string;
  output(): string;
  /** Exit code (null: killed by a signal). */
  exited: Promise<number | null>;
  /** The command lines of every process of the run seen while it ran, by pid. */
  seen: Map<number, string>;
}

const startDirs: string[] = [];

/** Starts `npm <args>` in its own process group (as a terminal would), with a fresh start dir. */
function startNpm(args: string[], mode: 'local' | 'multi-user', extraEnv: Record<string, string> = {}): NpmRun {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-start-test-'));
  startDirs.push(base);
  const env: NodeJS.ProcessEnv = { ...process.env, EXAI_START_DIR: base, EXAI_SCREENSHOT_DIR: SHOTS, ...extraEnv };
  // The built-in test server, not whatever project the developer's shell points at.
  for (const name of ['SUPABASE_URL', 'SUPABASE_ANON_KEY', 'EXAI_DAEMON_URL', 'DATABASE_URL', 'PORT']) delete env[name];
  const proc = spawn('npm', args, { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout!.on('data', (d) => (output += d));
  proc.stderr!.on('data', (d) => (output += d));
  const runDir = path.join(base, mode);
  const seen = new Map<number, string>();
  // Sample the run's processes while it runs, so the leftover check below is not vacuous.
  const sampler = setInterval(() => {
    for (const p of processesOf(runDir)) seen.set(p.pid, p.cmd);
  }, 250);
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  void exited.then(() => clearInterval(sampler));
  return { proc, runDir, output: () => output, exited, seen };
}

/** Bounded wait for the run to end; on time-out the whole group is killed and the test fails. */
async function exitCode(run: NpmRun, ms: number): Promise<number | null> {
  const timeout = sleep(ms).then(() => 'timeout' as const);
  const result = await Promise.race([run.exited, timeout]);
  if (result === 'timeout') {
    try { process.kill(-run.proc.pid!, 'SIGKILL'); } catch {}
    await stopPids(processesOf(run.runDir).map((p) => p.pid), 1000);
    assert.fail(`npm ${run.proc.spawnargs.slice(1).join(' ')} did not finish within ${ms / 1000} s:\n${run.output().slice(-3000)}`);
  }
  return result;
}

async function waitForOutput(run: NpmRun, re: RegExp, ms: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = run.output().match(re);
    if (m) return m;
    if (run.proc.exitCode !== null || run.proc.signalCode !== null) assert.fail(`npm exited before printing ${re}:\n${run.output().slice(-3000)}`);
    if (Date.now() > deadline) assert.fail(`no ${re} within ${ms / 1000} s:\n${run.output().slice(-3000)}`);
    await sleep(200);
  }
}

function assertNothingLeft(run: NpmRun, expected: RegExp[]): void {
  const seen = [...run.seen.values()];
  for (const re of expected) assert.ok(seen.some((cmd) => re.test(cmd)), `a process matching ${re} ran (seen: ${seen.join('\n')})`);
  // By pid: none of the processes seen during the run is still alive as one of the run's.
  const left = processesOf(run.runDir);
  assert.deepEqual(left.filter((p) => run.seen.has(p.pid)), [], 'no process seen during the run is left');
  assert.deepEqual(left, [], 'no process of the run is left');
}

/** `git status` of the repository (a run must leave the working tree as it found it); null outside a git checkout. */
function gitStatus(): string | null {
  try {
    return execFileSync('git', ['status', '--porcelain', '--untracked-files=all'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return null;
  }
}

function assertFreshScreenshot(file: string, since: number): void {
  assert.ok(fs.existsSync(file), `${file} written`);
  assert.ok(fs.statSync(file).mtimeMs >= since, `${file} written by this run`);
  assert.ok(fs.statSync(file).size > 2000, `${file} is a real picture`);
}

const CODE_SERVER = /code-server\/out\/node\/entry/;
const EXTENSION_HOST = /bootstrap-fork --type=extensionHost/;

describe('npm start (a newcomer\'s first five minutes)', function () {
  this.timeout(FIRST_RUN_MS + 60_000);
  const dbName = `exai_start_test_${process.pid}`;
  let failed = false;

  afterEach(function () {
    if (this.currentTest?.state === 'failed') failed = true;
  });

  after(async () => {
    const admin = new Client({ connectionString: ADMIN_URL });
    await admin.connect();
    await admin.query(`drop database if exists ${dbName} with (force)`);
    await admin.end();
    // The runs' profiles and logs: kept when something failed, to look at.
    if (failed) console.log(`  start dirs kept: ${startDirs.join(' ')}`);
    else for (const dir of startDirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('npm start -- --check: code-server with the extension, the status bar connected in local mode, then nothing left', async function () {
    const since = Date.now() - 1000;
    const run = startNpm(['start', '--', '--check'], 'local');
    const code = await exitCode(run, FIRST_RUN_MS);
    assert.equal(code, 0, run.output());
    assert.match(run.output(), URL_LINE);
    assert.match(run.output(), /--check passed: the status bar shows "EXAI connected as .+ \(local\)"/);
    assertFreshScreenshot(path.join(SHOTS, 'status-bar-connected.png'), since);
    assertNothingLeft(run, [CODE_SERVER, EXTENSION_HOST, /extensions\/exai\.exai-vscode-[^/]+\/dist\/server\.js/]);
  });

  it('npm run start:multi-user -- --check: test server, Postgres, daemon; signs in jazeel; then nothing left', async function () {
    const since = Date.now() - 1000;
    const treeBefore = gitStatus();
    const run = startNpm(['run', 'start:multi-user', '--', '--check'], 'multi-user', { EXAI_START_DB: dbName });
    const code = await exitCode(run, FIRST_RUN_MS);
    assert.equal(code, 0, run.output());
    assert.match(run.output(), URL_LINE);
    assert.match(run.output(), /jazeel@example\.com +password \S+/);
    assert.match(run.output(), /michelle@example\.com +password \S+/);
    assert.match(run.output(), /--check passed: the status bar shows "EXAI connected as jazeel@example\.com"/);
    // MCP agents: how to connect them, and --check signed one in over OAuth 2.1 (SDK client, consent page in Chromium).
    const mcpUrl = run.output().match(/claude mcp add --transport http exai (http:\/\/127\.0\.0\.1:\d+\/mcp)\n/)?.[1];
    assert.ok(mcpUrl, `the Claude Code line:\n${run.output().slice(-3000)}`);
    assert.match(run.output(), new RegExp(`URL ${mcpUrl.replace(/[.]/g, '\\.')}, Connection Type "Via Proxy"`), 'the MCP Inspector steps');
    assert.match(run.output(), /--check passed: an MCP agent signed in over OAuth 2\.1 \(client [0-9a-f-]{36}\) and whoami answers jazeel@example\.com/);
    assertFreshScreenshot(path.join(SHOTS, 'status-bar-jazeel.png'), since);
    assertNothingLeft(run, [CODE_SERVER, EXTENSION_HOST, /auth-server\.js --port/, /dist\/server\.js --mode supabase/]);
    assert.equal(gitStatus(), treeBefore, 'the run left the working tree as it was');
  });

  it('Ctrl-C on a running npm start (a window open) stops everything and exits 0 within 15 s', async function () {
    const run = startNpm(['start'], 'local');
    let browser: BrowserContext | undefined;
    try {
      const url = (await waitForOutput(run, URL_LINE, FIRST_RUN_MS))[1];
      // A window, so that the extension host and the daemon it spawns run too.
      browser = await launchBrowser(path.join(run.runDir, '..', 'browser'));
      const page = browser.pages()[0] ?? (await browser.newPage());
      await page.goto(url);
      await page.locator('#workbench\\.parts\\.statusbar .statusbar-item[aria-label^="EXAI connected as"]').waitFor({ timeout: 60_000 });
      const running = processesOf(run.runDir).map((p) => p.cmd);
      assert.ok(running.some((cmd) => EXTENSION_HOST.test(cmd)), `extension host runs: ${running.join('\n')}`);
      assert.ok(running.some((cmd) => /dist\/server\.js/.test(cmd)), `daemon runs: ${running.join('\n')}`);

      const t0 = Date.now();
      process.kill(-run.proc.pid!, 'SIGINT'); // what Ctrl-C in a terminal does: the whole foreground group
      const code = await exitCode(run, 15_000);
      assert.equal(code, 0, run.output());
      assert.match(run.output(), /SIGINT: stopping everything/);
      assertNothingLeft(run, [CODE_SERVER, EXTENSION_HOST]);
      assert.ok(Date.now() - t0 < 15_000);
    } finally {
      await browser?.close();
      if (run.proc.exitCode === null) await exitCode(run, 1).catch(() => {});
    }
  });

  it('SIGTERM to the npm process alone (kill <pid>) stops everything and exits 0 within 15 s', async function () {
    const run = startNpm(['start'], 'local');
    await waitForOutput(run, URL_LINE, FIRST_RUN_MS);
    process.kill(run.proc.pid!, 'SIGTERM'); // npm forwards it to its child, the start script itself
    const code = await exitCode(run, 15_000);
    assert.equal(code, 0, run.output());
    assert.match(run.output(), /SIGTERM: stopping everything/);
    assertNothingLeft(run, [CODE_SERVER]);
  });
});
