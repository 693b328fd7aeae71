// Child processes of the bench (the baselines, the PostgREST stand-in) and what /proc says about a
// process's memory.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** The bundled bench programs sit beside the bundled bench (out/bench/run/). */
export const PROGRAMS_DIR = __dirname;

export interface Program<Line> {
  line: Line;
  pid: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** Starts `out/bench/run/<name>.js` and waits (bounded) for the JSON line it prints once ready. */
export async function startProgram<Line>(name: string, args: string[] = [], env: NodeJS.ProcessEnv = process.env, timeoutMs = 30_000): Promise<Program<Line>> {
  const proc = spawn(process.execPath, [path.join(PROGRAMS_DIR, `${name}.js`), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const line = await new Promise<Line>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    proc.stdout!.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) { clearTimeout(timer); resolve(JSON.parse(out.slice(0, nl))); }
    });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited with ${code}: ${stderr}`)); });
  });
  return {
    line,
    pid: proc.pid!,
    proc,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Resident set size of a live process in KiB (VmRSS of /proc/<pid>/status); NaN if it is gone. */
export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
