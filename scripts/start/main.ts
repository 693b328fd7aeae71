// `npm start` and `npm run start:multi-user`, once scripts/start.sh has set up Node 22, the npm
// packages and code-server and built the .vsix. Bundled by start.sh to .cache/start/bin/start.js.
//
//   node .cache/start/bin/start.js --mode local|multi-user [--check]
//
// Makes a fresh VS Code profile (user-data + extensions dir, recreated each run) with the .vsix
// installed, starts what the mode needs, runs code-server in the foreground on 127.0.0.1 and prints
// its URL. Ctrl-C / SIGTERM stop everything this run started, by pid, and exit 0.
//   local       nothing else: the extension itself spawns the bundled daemon in local mode.
//   multi-user  the GoTrue-compatible test server (two seeded users), a fresh `exai_start` database
//               on the local PostgreSQL 15, and the daemon in supabase mode; or, with SUPABASE_URL +
//               SUPABASE_ANON_KEY set, the real project with the daemon at EXAI_DAEMON_URL, or one
//               started here on DATABASE_URL, or else the one the extension spawns (Data API).
//               With the test server its OAuth 2.1 server is on, with the daemon's consent page, so
//               MCP agents (Claude Code, MCP Inspector) sign in to the daemon's /mcp: the run prints how.
//   --check     opens the URL in Chromium, waits for the status bar to show the connection, saves
//               the screenshot the extension README shows; multi-user with the test server then signs
//               an MCP agent in over OAuth 2.1 (the MCP SDK's client, the consent page answered in
//               Chromium) and calls whoami; stops everything, exits 0 (1 on failure).
// EXAI_START_DIR (default .cache/start) holds the run directories (<dir>/local, <dir>/multi-user) and
// EXAI_START_DB (default exai_start) names the database: test/e2e/start.test.ts sets both, so that
// its runs never touch yours.
//
// The bundle sits three directories below the repository root, as the test bundles do, because the
// test helpers it reuses (code-server + Playwright driver, migrations) find the root that way.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import type { BrowserContext, Page } from 'playwright-core';
import { answerPasswordSignIn, BASE_SETTINGS, CODE_SERVER, freePort, labEnv, launchBrowser, ROOT, runCommand } from '../../test/helpers/codeServer';
import { ADMIN_URL, migrationFiles } from '../../test/helpers/pg';
import { OAuthAgent, startRedirectListener } from '../../test/helpers/mcpOAuthClient';
import { approveInBrowser } from '../../test/helpers/oauthConsent';
import { JAZEEL, MICHELLE, type TestUser } from '../../test/helpers/tokens';
import { isAlive, processesOf, sleep, stopGroup, stopPids } from './processes';

type Mode = 'local' | 'multi-user';

interface Options {
  mode: Mode;
  check: boolean;
}

/** The fresh code-server profile of one run. */
interface Profile {
  runDir: string;
  userDataDir: string;
  extensionsDir: string;
  /** Folders to open; the first is the window the URL line opens. Multi-user has two, for two windows. */
  folders: string[];
}

/** What the multi-user back end tells the rest of the run. */
interface Backend {
  settings: Record<string, string>;
  /** Signed in by --check; null with a real project (its passwords are not ours to know). */
  checkUser: { email: string; password: string } | null;
  /** The daemon's MCP endpoint when this run started the daemon and MCP agents can sign in to it over OAuth; --check signs one in. */
  mcpUrl: string | null;
}

const VERSION: string = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;
const VSIX = path.join(ROOT, `exai-vscode-${VERSION}.vsix`);
const AUTH_SERVER_JS = path.join(__dirname, 'auth-server.js'); // bundled next to this file by start.sh
const DAEMON_JS = path.join(ROOT, 'dist', 'server.js');
// --check refreshes the README's screenshots in media/; tests send them elsewhere (EXAI_SCREENSHOT_DIR)
// so a test run leaves the working tree clean.
const SCREENSHOT_DIR = process.env.EXAI_SCREENSHOT_DIR || path.join(ROOT, 'media');
const SCREENSHOTS = { local: path.join(SCREENSHOT_DIR, 'status-bar-connected.png'), multiUser: path.join(SCREENSHOT_DIR, 'status-bar-jazeel.png') };

const say = (msg: string) => process.stdout.write(`[start] ${msg}\n`);
/** A path as the user best reads it: relative inside the repository, absolute outside. */
const shown = (p: string) => (p.startsWith(`${ROOT}/`) ? path.relative(ROOT, p) : p);

/** Thrown by a start-up step that finds the run already stopping (Ctrl-C during set-up). */
class Stopping extends Error {}

// ---------------------------------------------------------------------------------------------
// Everything this run started, so that shutdown() can stop it.

const children: Array<{ name: string; proc: ChildProcess }> = [];
let browser: BrowserContext | null = null;
let stopping = false;
let runDir = '';
let pidFile = '';

/**
 * Spawns a child in its own process group: the terminal's Ctrl-C then reaches only this script,
 * which stops the children in order (code-server before the daemon it talks to), and a child's own
 * children (code-server's extension hosts) go with its group.
 */
function startChild(name: string, command: string, args: string[], opts: { env: NodeJS.ProcessEnv; log: string; pipeStdout?: boolean }): ChildProcess {
  if (stopping) throw new Stopping();
  const log = fs.openSync(opts.log, 'a');
  const proc = spawn(command, args, { env: opts.env, detached: true, stdio: ['ignore', opts.pipeStdout ? 'pipe' : log, log] });
  fs.closeSync(log);
  children.push({ name, proc });
  return proc;
}

let shuttingDown: Promise<never> | null = null;

/** Stops everything this run started, then exits with `code`. Safe to call more than once. */
function shutdown(code: number, why?: string): Promise<never> {
  shuttingDown ??= (async () => {
    stopping = true;
    const started = Date.now();
    if (why) say(why);
    await browser?.close().catch(() => {});
    // Newest first: code-server (and its extension hosts, which disconnect from the daemon), then
    // the daemon, then the auth server.
    for (const { proc } of [...children].reverse()) {
      if (proc.pid !== undefined) await stopGroup(proc.pid, 5000);
    }
    if (runDir) {
      // The local daemon the extension spawned (its own process group) and anything else left.
      const left = processesOf(runDir);
      if (left.length > 0) await stopPids(left.map((p) => p.pid), 3000);
      const still = processesOf(runDir);
      if (still.length > 0) {
        process.stderr.write(`[start] could not stop: ${still.map((p) => `${p.pid} ${p.cmd}`).join('; ')}\n`);
        code = code || 1;
      }
    }
    if (pidFile) fs.rmSync(pidFile, { force: true });
    if (children.length > 0) say(`stopped ${[...children].reverse().map((c) => c.name).join(', ')} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    process.exit(code);
  })();
  return shuttingDown;
}

/** Every way this process can end goes through shutdown(), so nothing it started outlives it. */
function onSignals(): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    // A second Ctrl-C while stopping is ignored: leaving now would leave processes behind.
    process.on(sig, () => void shutdown(0, `${sig}: stopping everything this run started ...`));
  }
  // After SIGHUP (the terminal closed) writing to it fails with EIO; that must not end the clean-up.
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
  process.on('uncaughtException', (err) => void shutdown(1, `unexpected error: ${err.stack ?? err}`));
  process.on('unhandledRejection', (err) => void shutdown(1, `unexpected error: ${(err as Error)?.stack ?? err}`));
}

// ---------------------------------------------------------------------------------------------
// The run directory and the fresh profile.

function parseArgs(argv: string[]): Options {
  const opts: Options = { mode: 'local', check: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--mode' && (argv[i + 1] === 'local' || argv[i + 1] === 'multi-user')) opts.mode = argv[++i] as Mode;
    else if (argv[i] === '--check') opts.check = true;
    else throw new Error(`unknown argument ${argv[i]} (usage: start.js --mode local|multi-user [--check])`);
  }
  return opts;
}

/**
 * Takes the run directory: refuses while another run of the same mode is alive (recreating its
 * profile would pull it from under it), and stops what a run killed with SIGKILL left behind.
 */
function claimRunDir(dir: string): void {
  const file = `${dir}.pid`;
  const other = Number(fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : NaN);
  if (Number.isInteger(other) && other !== process.pid && isAlive(other)) {
    throw new Error(`another run is using ${dir} (pid ${other}); stop it first (Ctrl-C in its terminal, or kill ${other})`);
  }
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  fs.writeFileSync(file, String(process.pid));
  pidFile = file;
  runDir = dir;
}

async function stopLeftovers(dir: string): Promise<void> {
  const left = processesOf(dir);
  if (left.length === 0) return;
  say(`stopping ${left.length} process(es) an earlier run left behind: ${left.map((p) => p.pid).join(' ')}`);
  await stopPids(left.map((p) => p.pid), 3000);
}

function freshProfile(dir: string, mode: Mode): Profile {
  fs.rmSync(dir, { recursive: true, force: true });
  const profile: Profile = {
    runDir: dir,
    userDataDir: path.join(dir, 'user-data'),
    extensionsDir: path.join(dir, 'extensions'),
    folders: mode === 'local' ? [path.join(dir, 'workspace')] : [path.join(dir, 'workspace-a'), path.join(dir, 'workspace-b')],
  };
  for (const d of [path.join(profile.userDataDir, 'User'), profile.extensionsDir, ...profile.folders]) fs.mkdirSync(d, { recursive: true });
  for (const folder of profile.folders) {
    fs.writeFileSync(path.join(folder, 'README.txt'), `A scratch folder of \`npm start\` (${mode}); it is recreated on every run.\n`);
  }
  return profile;
}

function writeSettings(profile: Profile, settings: Record<string, string>): void {
  fs.writeFileSync(path.join(profile.userDataDir, 'User', 'settings.json'), `${JSON.stringify({ ...BASE_SETTINGS, ...settings }, null, 2)}\n`);
}

// ---------------------------------------------------------------------------------------------
// Multi-user back end: test server + database + daemon, or a real project.

/** Resolves with the JSON of the child's first stdout line (its `listening` line). */
function listeningLine(proc: ChildProcess, what: string, log: string, timeoutMs = 30_000): Promise<any> {
  return new Promise((resolve, reject) => {
    let out = '';
    const fail = (why: string) => {
      clearTimeout(timer);
      const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-2000) : '';
      reject(new Error(`${what} ${why}${tail ? `:\n${tail}` : ''} (log: ${log})`));
    };
    const timer = setTimeout(() => fail(`did not start within ${timeoutMs / 1000} s`), timeoutMs);
    proc.once('exit', (code) => fail(`exited with code ${code}`));
    proc.stdout!.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      proc.removeAllListeners('exit');
      proc.stdout!.removeAllListeners('data');
      proc.stdout!.resume(); // keep draining, never block the child on a full pipe
      try {
        resolve(JSON.parse(out.slice(0, nl)));
      } catch {
        reject(new Error(`${what} printed "${out.slice(0, nl)}" instead of its listening line`));
      }
    });
  });
}

/** The GoTrue-compatible test server's CLI; it seeds jazeel and michelle with the ids of JAZEEL/MICHELLE. */
async function startAuthServer(dir: string): Promise<{ url: string; anonKey: string; users: Array<{ id: string; email: string; password: string }> }> {
  const log = path.join(dir, 'auth-server.log');
  // --oauth-server: its OAuth 2.1 server on, with dynamic registration and the daemon's consent page
  // (/oauth/consent) as the authorization path, as docs/deploy.md has a project set it.
  const proc = startChild('auth server', process.execPath, [AUTH_SERVER_JS, '--port', '0', '--oauth-server'], { env: process.env, log, pipeStdout: true });
  const line = await listeningLine(proc, 'the test auth server', log);
  const users = (line.users as Array<{ id: string; email: string; password?: string; passwordFrom?: string }>).map((u) => ({
    id: u.id,
    email: u.email,
    password: u.password ?? process.env[u.passwordFrom!] ?? '',
  }));
  return { url: line.url, anonKey: line.anonKey, users };
}

/**
 * Recreates the database as test/helpers/pg.ts creates a test database (the plain-Postgres auth
 * fixture, then every migration in order), under a fixed name, plus the users' auth.users rows.
 */
async function createDatabase(name: string, users: TestUser[]): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`EXAI_START_DB must be a plain lower-case name (got "${name}")`);
  const admin = new Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const db = new Client({ connectionString: url.toString() });
  await db.connect();
  try {
    await db.query(fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'plain-postgres-auth.sql'), 'utf8'));
    for (const file of migrationFiles()) {
      await db.query(fs.readFileSync(file, 'utf8')).catch((err: Error) => {
        throw new Error(`migration ${path.basename(file)} failed: ${err.message}`);
      });
    }
    for (const user of users) await db.query('insert into auth.users (id, email) values ($1, $2)', [user.id, user.email]);
  } finally {
    await db.end();
  }
  return url.toString();
}

/** Starts the daemon in supabase mode; `env` adds to (or overrides) this process's environment. Resolves with its port. */
async function startSupabaseDaemon(dir: string, supabaseUrl: string, databaseUrl: string, env: NodeJS.ProcessEnv = {}): Promise<number> {
  const stateDir = path.join(dir, 'daemon');
  fs.mkdirSync(stateDir, { recursive: true });
  const log = path.join(dir, 'daemon.log');
  const fullEnv = { ...process.env, ...env, SUPABASE_URL: supabaseUrl, DATABASE_URL: databaseUrl, EXAI_WS_PORT: '0', EXAI_STATE_DIR: stateDir };
  const proc = startChild('daemon', process.execPath, [DAEMON_JS, '--mode', 'supabase'], { env: fullEnv, log, pipeStdout: true });
  const line = await listeningLine(proc, 'the daemon (supabase mode)', log);
  return line.port as number;
}

/**
 * Points the test server's Site URL at the daemon: Supabase sends the browser to Site URL + the
 * authorization path, the daemon's consent page. Through its test hook, since the daemon's port is
 * known only once the daemon, which needs the test server's URL, listens.
 */
async function pointSiteUrlAt(authUrl: string, daemonOrigin: string): Promise<void> {
  const answer = await fetch(`${authUrl}/__test/config`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ siteUrl: daemonOrigin }),
    signal: AbortSignal.timeout(10_000),
  });
  if (!answer.ok) throw new Error(`the test auth server refused the site URL ${daemonOrigin} (${answer.status}): ${(await answer.text()).slice(0, 500)}`);
}

/** How to point MCP agents at the daemon's /mcp. */
function printMcpInstructions(mcpUrl: string, origin: string): void {
  say('MCP agents sign in to the daemon over OAuth 2.1 (a browser opens its consent page; sign in there and approve):');
  say(`    Claude Code:    claude mcp add --transport http exai ${mcpUrl}`);
  say('                    then, in Claude Code, /mcp → exai → Authenticate');
  say('    MCP Inspector:  npx @modelcontextprotocol/inspector, then Transport Type "Streamable HTTP",');
  say(`                    URL ${mcpUrl}, Connection Type "Via Proxy", Connect (or Open Auth Settings → Quick OAuth Flow)`);
  say(`    what you granted, and revoking it: ${origin}/oauth/grants`);
}

async function startMultiUserBackend(dir: string): Promise<Backend> {
  const { SUPABASE_URL, SUPABASE_ANON_KEY, EXAI_DAEMON_URL, DATABASE_URL } = process.env;
  if (SUPABASE_URL && SUPABASE_ANON_KEY) {
    const project = { 'exai.supabase.url': SUPABASE_URL, 'exai.supabase.anonKey': SUPABASE_ANON_KEY };
    if (EXAI_DAEMON_URL) {
      say(`using the real Supabase project ${SUPABASE_URL} and the daemon at ${EXAI_DAEMON_URL}`);
      return { settings: { ...project, 'exai.daemon.url': EXAI_DAEMON_URL }, checkUser: null, mcpUrl: null };
    }
    if (DATABASE_URL) {
      say(`using the real Supabase project ${SUPABASE_URL}; starting the daemon in supabase mode on DATABASE_URL ...`);
      const port = await startSupabaseDaemon(dir, SUPABASE_URL, DATABASE_URL);
      return { settings: { ...project, 'exai.daemon.url': `ws://127.0.0.1:${port}/` }, checkUser: null, mcpUrl: null };
    }
    // No daemon setting: the extension spawns the bundled daemon itself, which reaches the project
    // through its Data API with the signed-in user's own token (no database password needed).
    say(`using the real Supabase project ${SUPABASE_URL}; the extension starts the daemon itself, through the project's Data API`);
    say('  (the migrations in supabase/migrations must be applied to the project: supabase db push)');
    return { settings: project, checkUser: null, mcpUrl: null };
  }
  say('starting the GoTrue-compatible test server ...');
  const auth = await startAuthServer(dir);
  const dbName = process.env.EXAI_START_DB || 'exai_start';
  say(`creating the database ${dbName} (migrations applied) ...`);
  const users = auth.users.filter((u) => u.id === JAZEEL.id || u.id === MICHELLE.id);
  const databaseUrl = await createDatabase(dbName, users);
  if (stopping) throw new Stopping();
  say('starting the daemon in supabase mode ...');
  // The consent page calls Supabase Auth with the anon key; every client of this test project's
  // OAuth server is an agent of this daemon, so all of them are accepted.
  const port = await startSupabaseDaemon(dir, auth.url, databaseUrl, { SUPABASE_ANON_KEY: auth.anonKey, EXAI_OAUTH_CLIENTS: '*' });
  const origin = `http://127.0.0.1:${port}`;
  await pointSiteUrlAt(auth.url, origin);
  const daemonUrl = `ws://127.0.0.1:${port}/`;
  say(`test auth server ${auth.url}   daemon ${daemonUrl}   database ${dbName}   logs in ${dir}`);
  say('sign in with F1 → "EXAI: Sign In" → "Email and password" as:');
  for (const u of users) say(`    ${u.email.padEnd(22)} password ${u.password}`);
  printMcpInstructions(`${origin}/mcp`, origin);
  const jazeel = users.find((u) => u.id === JAZEEL.id)!;
  return {
    settings: { 'exai.supabase.url': auth.url, 'exai.supabase.anonKey': auth.anonKey, 'exai.daemon.url': daemonUrl },
    checkUser: { email: jazeel.email, password: jazeel.password },
    mcpUrl: `${origin}/mcp`,
  };
}

// ---------------------------------------------------------------------------------------------
// code-server.

/** Runs a short command to completion (async, so that a Ctrl-C meanwhile is handled at once). */
function run(command: string, args: string[], env: NodeJS.ProcessEnv, what: string): Promise<void> {
  if (stopping) throw new Stopping();
  return new Promise((resolve, reject) => {
    const proc = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    proc.on('error', reject);
    proc.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${what} failed (exit ${code}):\n${out.slice(-2000)}`))));
  });
}

async function startCodeServer(profile: Profile): Promise<{ base: string; proc: ChildProcess }> {
  const env = labEnv(); // HOME and XDG dirs in .cache/vscode, Node 22 first on PATH, no $PORT
  const dirs = ['--user-data-dir', profile.userDataDir, '--extensions-dir', profile.extensionsDir];
  say(`installing ${path.basename(VSIX)} into a fresh profile (${profile.runDir}) ...`);
  await run(CODE_SERVER, [...dirs, '--install-extension', VSIX, '--force'], env, `installing ${VSIX}`);

  const port = await freePort();
  const log = path.join(profile.runDir, 'code-server.log');
  const proc = startChild('code-server', CODE_SERVER, [
    '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry', '--disable-update-check',
    '--disable-workspace-trust', '--disable-getting-started-override', ...dirs, '--ignore-last-opened',
  ], { env, log });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (await fetch(`${base}/healthz`).then((r) => r.ok, () => false)) return { base, proc };
    if (stopping) throw new Stopping();
    if (proc.exitCode !== null || Date.now() > deadline) {
      throw new Error(`code-server did not start:\n${fs.readFileSync(log, 'utf8').slice(-2000)}`);
    }
    await sleep(100);
  }
}

/** `?folder=` with the path readable (slashes kept); code-server accepts it so. */
const windowUrl = (base: string, folder: string) => `${base}/?folder=${encodeURI(folder)}`;

// ---------------------------------------------------------------------------------------------
// --check: what a newcomer would see, done by Playwright + Chromium.

const statusWith = (page: Page, label: string, exact: boolean) =>
  page.locator(`#workbench\\.parts\\.statusbar .statusbar-item[aria-label${exact ? '' : '^'}="${label}"]`).first();

/** F1 → "EXAI: Sign In" → "Email and password" → email → password. */
async function signInWithPassword(page: Page, email: string, password: string): Promise<void> {
  await runCommand(page, 'EXAI: Sign In');
  await answerPasswordSignIn(page, email, password);
}

/**
 * The EXAI item with its hover (who, daemon, session, token expiry) and some of the window around
 * it, at a size that reads well in a README.
 */
async function screenshotStatusItem(page: Page, file: string): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const item = statusWith(page, 'EXAI', false);
  await item.hover();
  const hover = page.locator('.workbench-hover, .monaco-hover').filter({ hasText: 'EXAI' }).first();
  await hover.waitFor({ state: 'visible', timeout: 5000 }).catch(() => {}); // the picture is fine without it
  await sleep(300); // the hover fades in
  const boxes = [await item.boundingBox(), await hover.boundingBox().catch(() => null)].filter((b) => b !== null);
  const viewport = page.viewportSize()!;
  if (boxes.length === 0) return void (await page.screenshot({ path: file }));
  const top = Math.max(0, Math.min(...boxes.map((b) => b.y)) - 40);
  const right = Math.min(viewport.width, Math.max(...boxes.map((b) => b.x + b.width)) + 240);
  await page.screenshot({ path: file, clip: { x: 0, y: top, width: right, height: viewport.height - top } });
}

async function check(profile: Profile, url: string, backend: Backend | null): Promise<void> {
  browser = await launchBrowser(path.join(profile.runDir, 'browser'));
  const page = browser.pages()[0] ?? (await browser.newPage());
  try {
    say('--check: opening the URL in Chromium ...');
    await page.goto(url);
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    let shot: string;
    if (!backend) {
      await statusWith(page, 'EXAI connected as', false).waitFor({ timeout: 60_000 });
      shot = SCREENSHOTS.local;
    } else if (backend.checkUser) {
      await statusWith(page, 'EXAI signed out', false).waitFor({ timeout: 60_000 });
      say(`--check: signing in as ${backend.checkUser.email} ...`);
      await signInWithPassword(page, backend.checkUser.email, backend.checkUser.password);
      await statusWith(page, `EXAI connected as ${backend.checkUser.email}`, true).waitFor({ timeout: 60_000 });
      shot = SCREENSHOTS.multiUser;
    } else {
      // A real project: its users' passwords are not ours; the extension showing its state is the check.
      await statusWith(page, 'EXAI', false).waitFor({ timeout: 60_000 });
      shot = path.join(profile.runDir, 'check.png');
    }
    await screenshotStatusItem(page, shot);
    const label = await statusWith(page, 'EXAI', false).getAttribute('aria-label');
    say(`--check passed: the status bar shows "${label}"; screenshot ${shown(shot)}`);
  } catch (err) {
    const shot = path.join(profile.runDir, 'check-failure.png');
    await page.screenshot({ path: shot }).catch(() => {});
    const label = await statusWith(page, 'EXAI', false).getAttribute('aria-label', { timeout: 1000 }).catch(() => null);
    throw new Error(
      `--check failed: ${(err as Error).message.split('\n')[0]}\n` +
        `  the status bar shows: ${label ? `"${label}"` : 'no EXAI item'}; the window: ${shot}; code-server log: ${path.join(profile.runDir, 'code-server.log')}`,
    );
  }
  if (backend?.mcpUrl && backend.checkUser) await checkMcpOAuth(backend.mcpUrl, backend.checkUser, profile);
}

/**
 * --check, multi-user: an MCP agent (the MCP SDK's own OAuth client) signs in to the daemon over
 * OAuth 2.1, the person answering the consent page in Chromium, then calls whoami as that person.
 */
async function checkMcpOAuth(mcpUrl: string, user: { email: string; password: string }, profile: Profile): Promise<void> {
  const page = await browser!.newPage();
  const redirect = await startRedirectListener();
  const agent = new OAuthAgent(new URL(mcpUrl), redirect, 'exai-start-check');
  try {
    say(`--check: an MCP agent signs in to ${mcpUrl} over OAuth 2.1 as ${user.email} (consent page in Chromium) ...`);
    await agent.signIn(async (authorizationUrl) => {
      await page.goto(authorizationUrl.toString());
      return approveInBrowser(page, user);
    });
    const me = await agent.whoami();
    if (me.email !== user.email) throw new Error(`whoami answered ${JSON.stringify(me.email)}, not ${user.email}`);
    say(`--check passed: an MCP agent signed in over OAuth 2.1 (client ${agent.provider.clientId()}) and whoami answers ${me.email}`);
  } catch (err) {
    const shot = path.join(profile.runDir, 'check-oauth-failure.png');
    await page.screenshot({ path: shot }).catch(() => {});
    throw new Error(
      `--check failed: the MCP agent's OAuth sign-in: ${(err as Error).message.split('\n')[0]}\n` +
        `  its requests: ${agent.requests.join(', ') || 'none'}; the browser page: ${shot}; daemon log: ${path.join(profile.runDir, 'daemon.log')}`,
    );
  } finally {
    await agent.disconnect();
    await redirect.close();
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const base = process.env.EXAI_START_DIR ? path.resolve(process.env.EXAI_START_DIR) : path.join(ROOT, '.cache', 'start');
  claimRunDir(path.join(base, opts.mode));
  onSignals();
  await stopLeftovers(runDir);
  process.env.EXAI_START_RUN = runDir; // every child inherits it: how shutdown() finds them (processes.ts)
  const profile = freshProfile(runDir, opts.mode);

  const backend = opts.mode === 'multi-user' ? await startMultiUserBackend(runDir) : null;
  writeSettings(profile, backend?.settings ?? {});
  const cs = await startCodeServer(profile);
  const url = windowUrl(cs.base, profile.folders[0]);

  if (profile.folders.length > 1) say(`a second window (another folder, to try one user per window): ${windowUrl(cs.base, profile.folders[1])}`);
  say(`code-server log: ${path.join(runDir, 'code-server.log')}`);
  process.stdout.write(`\nEXAI is running in VS Code at ${url}  ${opts.check ? '(--check: Chromium opens it)' : '(Ctrl-C to stop)'}\n\n`);

  if (opts.check) {
    await check(profile, url, backend);
    await shutdown(0);
  }
  cs.proc.once('exit', (code, sig) => void shutdown(1, `code-server exited (${sig ?? `code ${code}`}); see ${path.join(runDir, 'code-server.log')}`));
}

main().catch((err) => {
  if (err instanceof Stopping) return; // a signal arrived during set-up; shutdown() is at work
  process.stderr.write(`[start] ${(err as Error).message}\n`);
  void shutdown(1);
});
