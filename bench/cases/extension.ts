// What a VS Code user feels of the extension: the bundles' sizes (and whether they are minified), the
// time VS Code itself records for activating it, and the time from opening a window to the status
// bar showing "connected". Real VS Code (code-server, as the e2e suites use it) with the .vsix that
// `npm run package` built installed, driven by Playwright + Chromium, local mode (no sign-in).
//
// activate(): VS Code measures every extension's activation in its extension host — "Load Code"
// (require of dist/extension.js) + "Call Activate" (the activate() call) — and shows the sum in
// Developer: Show Running Extensions. The bench reads that view: the extension host's own clock, no
// wrapper around the extension. Baseline: an extension that does nothing (bench/programs/baselineExtension),
// installed beside EXAI with the same activation event (onStartupFinished), read from the same view in
// the same window. VS Code starts the load-code clock of every extension in that batch at once and
// loads their code one after another, built-ins first, then user extensions by folder name (the
// baseline's "bench.baseline-…" just before "exai.exai-vscode-…"); so the baseline's figure is what
// VS Code reports for any extension there, and EXAI's minus the baseline's is EXAI's own part.
// Time to connected: from the navigation that opens the window (the page's time origin) to the
// moment the status bar item's aria-label reads "EXAI connected as …", sampled every 50 ms in the
// page, with two milestones on the way (workbench shown; the EXAI item exists, i.e. activate() ran).
// The first window spawns the daemon; later windows find it running.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { isProcessAlive, readDiscovery } from '../../server/auth/localMode';
import { CODE_SERVER, EXTENSION_ID, launchBrowser, newRunDir, ROOT, runCommand, startCodeServer, type CodeServer } from '../../test/helpers/codeServer';
import type { BenchContext } from '../lib/context';
import { fmtBytes, fmtMs, type Row } from '../lib/report';
import { median } from '../lib/stats';

const VERSION: string = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;
export const VSIX = path.join(ROOT, `exai-vscode-${VERSION}.vsix`);
const ANY_ITEM = '#workbench\\.parts\\.statusbar .statusbar-item[aria-label^="EXAI"]';
const CONNECTED = '#workbench\\.parts\\.statusbar .statusbar-item[aria-label^="EXAI connected as"]';
const WINDOW_TIMEOUT_MS = 90_000;
const ACTIVATE_TARGET_MS = 50;

/** esbuild's minified output is a handful of very long lines; a readable bundle averages well under 100 characters a line. */
const MINIFIED_LINE_LENGTH = 500;

export function looksMinified(text: string): boolean {
  return text.length / text.split('\n').length > MINIFIED_LINE_LENGTH;
}

/** A file as packaged in the VSIX (what users install), or null when it cannot be read from there. */
function fromVsix(file: string): string | null {
  try {
    return execFileSync('unzip', ['-p', VSIX, `extension/${file}`], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  } catch {
    return null;
  }
}

function sizeRows(): Row[] {
  const rows: Row[] = [];
  const hasVsix = fs.existsSync(VSIX);
  for (const file of ['dist/extension.js', 'dist/supabase.js', 'dist/ws.js', 'dist/server.js']) {
    const packaged = hasVsix ? fromVsix(file) : null;
    const full = path.join(ROOT, file);
    const text = packaged ?? (fs.existsSync(full) ? fs.readFileSync(full, 'utf8') : null);
    if (text === null) {
      rows.push({ case: `size of ${file}`, daemon: 'missing (run npm run package)', target: 'minified', met: false });
      continue;
    }
    const minified = looksMinified(text);
    const where = packaged !== null ? 'as packaged in the VSIX' : 'in dist/ (not read from a VSIX)';
    rows.push({ case: `size of ${file}`, daemon: `${fmtBytes(Buffer.byteLength(text))}, ${minified ? 'minified' : 'NOT minified'} (${where})`, target: 'minified', met: minified });
  }
  rows.push(hasVsix
    ? { case: `size of the VSIX (${path.basename(VSIX)})`, daemon: fmtBytes(fs.statSync(VSIX).size) }
    : { case: 'size of the VSIX', daemon: 'missing (run npm run package)' });
  return rows;
}

interface WindowTimes {
  /** The workbench is on screen. */
  workbenchMs: number;
  /** The EXAI status bar item exists (activate() has run), in whatever state. */
  itemMs: number;
  connectedMs: number;
  activateMs: number | null;
  /** The baseline extension's activation time in the same window. */
  baselineMs: number | null;
}

const MILESTONES = { workbenchMs: '.monaco-workbench', itemMs: ANY_ITEM, connectedMs: CONNECTED };

/**
 * Opens one window; resolves with its timings on the page's own clock (ms since the navigation
 * started). One poll every 50 ms in the page notes the first time each milestone's element exists.
 */
async function measureWindow(page: Page, server: CodeServer): Promise<WindowTimes> {
  await page.goto(`${server.url}/?folder=${encodeURIComponent(server.workspace)}`, { waitUntil: 'commit', timeout: WINDOW_TIMEOUT_MS });
  const seen = await page.waitForFunction((milestones) => {
    const g = globalThis as unknown as { document: { querySelector(s: string): unknown }; benchSeen?: Record<string, number> };
    const marks = (g.benchSeen ??= {});
    for (const [name, selector] of Object.entries(milestones)) if (marks[name] === undefined && g.document.querySelector(selector)) marks[name] = performance.now();
    return Object.keys(marks).length === Object.keys(milestones).length ? marks : null;
  }, MILESTONES, { polling: 50, timeout: WINDOW_TIMEOUT_MS });
  const marks = (await seen.jsonValue()) as Record<keyof typeof MILESTONES, number>;
  await runCommand(page, 'Developer: Show Running Extensions');
  return { ...marks, activateMs: await activationTime(page, 'EXAI'), baselineMs: await activationTime(page, BASELINE_NAME) };
}

/** VS Code's own activation time for an extension (by display name), from the open Running Extensions view. */
async function activationTime(page: Page, displayName: string): Promise<number | null> {
  const row = page.locator('.runtime-extensions-editor .extension', { has: page.locator('.name', { hasText: new RegExp(`^${displayName}$`) }) }).first();
  const label = row.locator('.activation-time');
  await label.filter({ hasText: /\d+ms/ }).waitFor({ timeout: 30_000 });
  const m = /(\d+)ms/.exec(await label.innerText());
  return m ? Number(m[1]) : null;
}

const BASELINE_DIR = path.join(ROOT, 'bench', 'programs', 'baselineExtension');
const BASELINE_NAME = JSON.parse(fs.readFileSync(path.join(BASELINE_DIR, 'package.json'), 'utf8')).displayName as string;

/** Packages the baseline extension (vsce, as npm run package does) into runDir; returns the .vsix. */
function packageBaseline(runDir: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-bench-baseline-'));
  try {
    for (const f of fs.readdirSync(BASELINE_DIR)) fs.copyFileSync(path.join(BASELINE_DIR, f), path.join(dir, f));
    const vsix = path.join(runDir, 'baseline.vsix');
    execFileSync(path.join(ROOT, 'node_modules', '.bin', 'vsce'), ['package', '--no-dependencies', '--allow-missing-repository', '--skip-license', '-o', vsix], { cwd: dir, stdio: 'ignore', timeout: 60_000 });
    return vsix;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function stopSpawnedDaemon(server: CodeServer): void {
  const info = readDiscovery(path.join(server.userDataDir, 'User', 'globalStorage', EXTENSION_ID, 'daemon', 'local'));
  if (info && isProcessAlive(info.pid)) process.kill(info.pid, 'SIGTERM');
}

export const EXTENSION_METHOD = [
  `Extension: code-server (VS Code 1.117, test/helpers/codeServer.ts) with the packaged VSIX installed, local mode, Chromium via Playwright, one window after another. activate() is the activation time VS Code itself records (load code + call activate), read from Developer: Show Running Extensions; its baseline is an extension that does nothing (bench/programs/baselineExtension) with the same activation event, installed beside EXAI and read from the same view in the same window (VS Code starts the load-code clock of every onStartupFinished extension at once and loads their code one after another, built-ins first, then the baseline, then EXAI), so EXAI's figure minus the baseline's is EXAI's own part. dist/supabase.js and dist/ws.js are loaded by the extension on first use (src/lazyModules.ts). Window timings are on the page's clock from the navigation that opens the window. Bundles are read from the VSIX and called "minified" when their lines average over ${MINIFIED_LINE_LENGTH} characters.`,
];

export async function extensionCases(ctx: BenchContext): Promise<Row[]> {
  const rows = sizeRows();
  const skip = (why: string) => {
    ctx.notes.push(`extension timings skipped: ${why}.`);
    return [...rows, { case: 'activate() and time to "connected" in code-server', daemon: `skipped: ${why}` }];
  };
  if (!fs.existsSync(CODE_SERVER)) return skip('code-server is not installed (`. scripts/code-server.sh && cs_setup`)');
  if (!fs.existsSync(VSIX)) return skip(`no ${path.basename(VSIX)} (run \`npm run package\`)`);

  const runDir = newRunDir('bench');
  let server: CodeServer | null = null;
  let browser: BrowserContext | null = null;
  const windows: WindowTimes[] = [];
  try {
    server = await startCodeServer({ runDir, vsix: VSIX, moreVsix: [packageBaseline(runDir)] });
    browser = await launchBrowser(path.join(runDir, 'browser'));
    for (let w = 0; w < ctx.windows; w++) {
      if (w > 0 && ctx.remainingMs() <= 0) {
        ctx.notes.push(`extension timings: ${w} of ${ctx.windows} windows (BENCH_DEADLINE_S reached).`);
        break;
      }
      ctx.log(`extension: window ${w + 1} of ${ctx.windows}`);
      const page = await browser.newPage();
      try {
        windows.push(await measureWindow(page, server));
      } finally {
        await page.screenshot({ path: path.join(runDir, `window-${w + 1}.png`) }).catch(() => {});
        await page.close();
      }
    }
  } catch (err) {
    ctx.notes.push(`extension timings: window ${windows.length + 1} failed: ${(err as Error).message.split('\n')[0]} (screenshots in ${path.relative(ROOT, runDir)}).`);
  } finally {
    await browser?.close().catch(() => {});
    if (server) {
      stopSpawnedDaemon(server);
      await server.stop();
    }
  }
  if (windows.length === 0) return skip('no window reached "connected"');

  const activations = windows.map((w) => w.activateMs).filter((x): x is number => x !== null);
  const baselines = windows.map((w) => w.baselineMs).filter((x): x is number => x !== null);
  const ownParts = windows.flatMap((w) => (w.activateMs !== null && w.baselineMs !== null ? [w.activateMs - w.baselineMs] : []));
  const later = windows.slice(1);
  const n = (k: number) => `${k} window${k === 1 ? '' : 's'}`;
  rows.push({
    case: 'activate(), as VS Code measures it (load code + call activate)',
    daemon: activations.length ? `${median(activations)} ms (each window: ${activations.join(', ')} ms)` : 'n/a',
    baseline: 'an extension that does nothing, same activation event',
    baselineValue: baselines.length ? `${median(baselines)} ms (each window: ${baselines.join(', ')} ms)` : 'n/a',
    target: `≤ ${ACTIVATE_TARGET_MS} ms`, met: activations.length ? median(activations) <= ACTIVATE_TARGET_MS : false,
    rounds: n(activations.length),
  });
  if (ownParts.length) {
    rows.push({
      case: "activate(): EXAI's own part (EXAI's figure minus the baseline's in the same window)",
      daemon: `${median(ownParts)} ms (each window: ${ownParts.join(', ')} ms)`,
      rounds: n(ownParts.length),
    });
  }
  const timeline = (ws: WindowTimes[]) => {
    const m = (key: keyof typeof MILESTONES) => fmtMs(median(ws.map((w) => w[key])));
    return `${m('connectedMs')} (workbench shown at ${m('workbenchMs')}, EXAI item at ${m('itemMs')})`;
  };
  rows.push({ case: 'window opened → status bar "connected", first window (spawns the daemon)', daemon: timeline(windows.slice(0, 1)), rounds: '1' });
  if (later.length) {
    rows.push({ case: 'window opened → status bar "connected", later windows (daemon running), median', daemon: timeline(later), rounds: n(later.length) });
  }
  return rows;
}
