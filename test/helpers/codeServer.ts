// A real VS Code (code-server 4.117 = VS Code 1.117, installed by scripts/code-server.sh) on a free
// loopback port, with a fresh user-data dir, settings and optionally our .vsix installed; and
// Playwright + Debian Chromium to drive it. Adapted from ../shared/vscode-e2e (pitfalls noted there).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { sleep } from './wait';

export const ROOT = path.resolve(__dirname, '../../..');
const LAB = path.join(ROOT, '.cache', 'vscode');
export const CODE_SERVER = path.join(LAB, 'cs', 'node_modules', '.bin', 'code-server');
export const EXTENSION_ID = 'exai.exai-vscode';

export const BASE_SETTINGS = {
  'telemetry.telemetryLevel': 'off',
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'security.workspace.trust.enabled': false,
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'update.mode': 'none',
  'chat.disableAIFeatures': true,
};

export function labEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const home = path.join(LAB, 'home');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${path.dirname(process.execPath)}:${process.env.PATH}`, // code-server's shebang is `env node`: Node 22
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_DATA_HOME: path.join(home, '.local/share'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    TMPDIR: path.join(LAB, 'tmp'),
    ...extra,
  };
  delete env.PORT; // code-server treats $PORT as an override of --bind-addr
  return env;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** A fresh directory for one code-server run (user data, extensions, workspaces, logs). */
export function newRunDir(name: string): string {
  const parent = path.join(ROOT, '.cache', 'e2e');
  fs.mkdirSync(parent, { recursive: true });
  return fs.mkdtempSync(path.join(parent, `${name}-`));
}

export interface CodeServer {
  url: string;
  port: number;
  runDir: string;
  workspace: string;
  userDataDir: string;
  serverLog(): string;
  stop(): Promise<void>;
}

export interface CodeServerOptions {
  runDir: string;
  settings?: Record<string, unknown>;
  vsix?: string;
  /** More .vsix files to install beside it (the bench's baseline extension). */
  moreVsix?: string[];
  env?: Record<string, string>;
  workspaces?: string[];
}

export async function startCodeServer(opts: CodeServerOptions): Promise<CodeServer> {
  fs.mkdirSync(opts.runDir, { recursive: true });
  const ud = path.join(opts.runDir, 'ud');
  const ext = path.join(opts.runDir, 'ext');
  const ws = path.join(opts.runDir, 'ws');
  for (const d of [ud, ext, ws, path.join(ud, 'User'), ...(opts.workspaces ?? []).map((w) => path.join(opts.runDir, w))]) fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(ws, 'readme.txt'), 'EXAI test workspace\n');
  fs.writeFileSync(path.join(ud, 'User', 'settings.json'), JSON.stringify({ ...BASE_SETTINGS, ...opts.settings }, null, 2));
  const env = labEnv(opts.env);
  for (const vsix of [...(opts.vsix ? [opts.vsix] : []), ...(opts.moreVsix ?? [])]) {
    const r = spawnSync(CODE_SERVER, ['--extensions-dir', ext, '--user-data-dir', ud, '--install-extension', vsix, '--force'], { env, encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`installing ${vsix} failed: ${r.stderr || r.stdout}`);
  }
  const port = await freePort();
  const log = path.join(opts.runDir, 'server.log');
  const out = fs.openSync(log, 'a');
  const proc: ChildProcess = spawn(CODE_SERVER, [
    '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry', '--disable-update-check',
    '--disable-workspace-trust', '--disable-getting-started-override', '--reconnection-grace-time', '5',
    '--extensions-dir', ext, '--user-data-dir', ud, '--ignore-last-opened', ws,
  ], { env, stdio: ['ignore', out, out], detached: true });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {}
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`code-server did not start: ${fs.readFileSync(log, 'utf8').slice(-2000)}`);
    await sleep(100);
  }
  return {
    url, port, runDir: opts.runDir, workspace: ws, userDataDir: ud,
    serverLog: () => fs.readFileSync(log, 'utf8'),
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      try { process.kill(-proc.pid!, 'SIGTERM'); } catch {}
      await Promise.race([exited, sleep(5000)]);
      try { process.kill(-proc.pid!, 'SIGKILL'); } catch {}
    },
  };
}

export const CHROME_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A browser profile (one SecretStorage/IndexedDB), whose pages are separate VS Code windows. */
export async function launchBrowser(outDir: string): Promise<BrowserContext> {
  fs.mkdirSync(outDir, { recursive: true });
  const profile = fs.mkdtempSync(path.join(outDir, 'chrome-profile-'));
  return chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true,
    viewport: { width: 1400, height: 900 }, args: CHROME_ARGS,
  });
}

export function statusItem(page: Page) {
  return page.locator('#workbench\\.parts\\.statusbar .statusbar-item', { hasText: 'EXAI' }).first();
}

export async function openWorkbench(page: Page, server: CodeServer, folder = server.workspace): Promise<void> {
  await page.goto(`${server.url}/?folder=${encodeURIComponent(folder)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
}

export async function runCommand(page: Page, title: string): Promise<void> {
  await page.keyboard.press('F1');
  const qi = page.locator('.quick-input-widget');
  await qi.locator('input.input').waitFor({ state: 'visible' });
  await page.keyboard.type(title);
  await qi.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor();
  await page.keyboard.press('Enter');
}

/** Answers the sign-in prompts once the method picker is open: "Email and password", email, password. */
export async function answerPasswordSignIn(page: Page, email: string, password: string): Promise<void> {
  const qi = page.locator('.quick-input-widget');
  await qi.locator('.quick-input-list .monaco-list-row', { hasText: 'Email and password' }).first().waitFor();
  await page.keyboard.type('Email and password');
  await page.keyboard.press('Enter');
  await qi.locator('.quick-input-message, .quick-input-title', { hasText: /Sign In|Email/ }).first().waitFor();
  await page.keyboard.type(email);
  await page.keyboard.press('Enter');
  await qi.locator('input[type="password"]').waitFor({ state: 'visible' });
  await page.keyboard.type(password);
  await page.keyboard.press('Enter');
}
