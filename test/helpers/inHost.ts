// Runs the in-host mocha suite (test/vscode/index.ts) in one browser page = one VS Code window of a
// code-server: the extension from this repository (extensionDevelopmentPath) and the suite
// (extensionTestsPath) go in the page URL's payload, the way VS Code's own web integration tests do;
// the exit code comes back through codeAutomationExit, the extension host's console through
// codeAutomationLog.
import fs from 'node:fs';
import path from 'node:path';
import util from 'node:util';
import type { Page } from 'playwright-core';
import { ROOT, type CodeServer } from './codeServer';

export interface InHostRun {
  /** The suite's exit code (-1: it did not finish within the deadline). */
  code: number;
  results: { passes: { title: string }[]; failures: { title: string; error: string }[] } | null;
}

const NOISE = /open-vsx|ENOTFOUND|fs-copyfile|CodeExpectedError|Failed to load resource|^\s+at |^(Resolving|Resolved) connection token|^Creating a socket|^\[reconnection-grace-time\]|^Updating additional builtin|^\[Service Worker\]|^\s*$/;

export async function runInHostSuite(page: Page, server: CodeServer, opts: {
  /** Where the suite writes its results (EXAI_INHOST_RESULTS). */
  resultsFile: string;
  /** The folder the window opens. */
  folder?: string;
  /** Environment of the extension host (EXAI_INHOST_FILES picks the suite's files). */
  env?: Record<string, string>;
  timeoutMs: number;
  /** Prefix of the extension host's console lines echoed here. */
  label?: string;
}): Promise<InHostRun> {
  fs.rmSync(opts.resultsFile, { force: true });
  const host = new URL(server.url).host;
  const remote = (p: string) => `vscode-remote://${host}${p}`;
  let exit!: (code: number) => void;
  const exited = new Promise<number>((r) => (exit = r));
  await page.exposeFunction('codeAutomationExit', async (code: number) => exit(code));
  await page.exposeFunction('codeAutomationLog', (_type: string, args: unknown[]) => {
    const line = util.format(...args);
    if (!NOISE.test(line)) console.log(`    [${opts.label ?? 'ext host'}] ${line}`);
  });
  const payload = JSON.stringify([
    ['extensionDevelopmentPath', remote(ROOT)],
    ['extensionTestsPath', remote(path.join(ROOT, 'out', 'test', 'vscode', 'index.js'))],
    ['extensionEnvironment', JSON.stringify({ EXAI_INHOST_RESULTS: opts.resultsFile, ...opts.env })],
    ['skipWelcome', 'true'],
  ]);
  await page.goto(`${server.url}/?${new URLSearchParams({ folder: remote(opts.folder ?? server.workspace), payload })}`);
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([exited, new Promise<number>((r) => (timer = setTimeout(() => r(-1), opts.timeoutMs)))]);
  clearTimeout(timer);
  const results = fs.existsSync(opts.resultsFile) ? JSON.parse(fs.readFileSync(opts.resultsFile, 'utf8')) : null;
  return { code, results };
}

/** The failures of a run, one line each (empty when every test passed). */
export function failuresOf(run: InHostRun): string[] {
  return (run.results?.failures ?? []).map((f) => `${f.title}: ${f.error.split('\n')[0]}`);
}
