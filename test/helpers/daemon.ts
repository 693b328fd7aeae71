// Starts the real bundled daemon (dist/server.js) as a child process on a free loopback port,
// with its own state and log directories, and waits for its `listening` line.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ListeningLine } from '../../server/protocol';

export const DAEMON_JS = path.resolve(__dirname, '../../../dist/server.js');

export interface RunningDaemon {
  port: number;
  pid: number;
  line: ListeningLine;
  proc: ChildProcess;
  stateDir: string;
  logDir: string;
  url: string;
  stderr(): string;
  /** All log lines written so far (every file in logDir). */
  logs(): string;
  /** The same, parsed: one object per JSON line. */
  logLines(): Record<string, any>[];
  /** SIGTERM, then waits for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL: no chance to clean up. */
  kill9(): Promise<void>;
  exited: Promise<number | null>;
}

export interface DaemonOptions {
  env?: Record<string, string | undefined>;
  args?: string[];
  stateDir?: string;
  logDir?: string;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `exai-${prefix}-`));
}

/** Runs the daemon to completion and returns its exit code and output (for start-up failures). */
export function runDaemon(opts: DaemonOptions = {}, timeoutMs = 15000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawnDaemon(opts);
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d) => (stdout += d));
  proc.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`daemon did not exit within ${timeoutMs} ms; stdout=${stdout} stderr=${stderr}`)); }, timeoutMs);
    proc.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); }); // 'close': all output read
  });
}

function spawnDaemon(opts: DaemonOptions): ChildProcess {
  const stateDir = opts.stateDir ?? tempDir('state');
  const logDir = opts.logDir ?? path.join(stateDir, 'logs');
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, EXAI_STATE_DIR: stateDir, EXAI_LOG_DIR: logDir, EXAI_WS_PORT: '0', ...opts.env })) {
    if (v !== undefined) env[k] = v;
  }
  return spawn(process.execPath, [DAEMON_JS, ...(opts.args ?? [])], { env, stdio: ['ignore', 'pipe', 'pipe'] });
}

export async function startDaemon(opts: DaemonOptions = {}): Promise<RunningDaemon> {
  const stateDir = opts.stateDir ?? tempDir('state');
  const logDir = opts.logDir ?? path.join(stateDir, 'logs');
  const proc = spawnDaemon({ ...opts, stateDir, logDir });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const line = await new Promise<ListeningLine>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`daemon did not listen within 15 s: ${stderr}`)), 15000);
    proc.stdout!.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) { clearTimeout(timer); resolve(JSON.parse(out.slice(0, nl))); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`daemon exited with ${code}: ${stderr}`)); });
  });
  const logs = () => (fs.existsSync(logDir) ? fs.readdirSync(logDir).map((f) => fs.readFileSync(path.join(logDir, f), 'utf8')).join('') : '');
  return {
    port: line.port,
    pid: line.pid,
    line,
    proc,
    stateDir,
    logDir,
    url: `ws://127.0.0.1:${line.port}/`,
    stderr: () => stderr,
    logs,
    logLines: () => logs().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
    async kill9() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    exited,
  };
}
