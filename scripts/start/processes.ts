// Finding and stopping the processes of one `npm start` run, by pid.
//
// Not every process a run starts is its child: the extension spawns the local daemon detached (its
// own process group, so closing a window does not take it down), and a run killed with SIGKILL
// leaves its children to init. So a run is recognised by its directory instead: every process it
// starts either names the run directory on its command line (code-server's --user-data-dir, the
// daemon's dist/server.js inside the run's extensions dir) or carries it in its environment
// (EXAI_START_RUN, which the start script exports to all its children; EXAI_STATE_DIR of the daemon
// the extension spawns). Linux only (/proc), like the rest of the set-up.
import fs from 'node:fs';

export interface RunProcess {
  pid: number;
  /** The command line, arguments joined by spaces (for messages). */
  cmd: string;
}

/** The NUL-separated strings of /proc/<pid>/<file>, or [] when the process is gone or not ours. */
function procStrings(pid: number, file: 'cmdline' | 'environ'): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

function namesDir(s: string, dir: string): boolean {
  return s === dir || s.endsWith(`=${dir}`) || s.includes(`${dir}/`);
}

/** Every live process (other than this one) whose command line or environment names `runDir`. */
export function processesOf(runDir: string): RunProcess[] {
  const found: RunProcess[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const cmdline = procStrings(pid, 'cmdline');
    if (cmdline.length === 0) continue; // kernel thread, zombie, or already gone
    if (cmdline.some((s) => namesDir(s, runDir)) || procStrings(pid, 'environ').some((s) => namesDir(s, runDir))) {
      found.push({ pid, cmd: cmdline.join(' ') });
    }
  }
  return found;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A zombie (exited, not yet reaped by its parent) still answers kill 0; it holds nothing.
  try {
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** SIGTERM to each pid, up to `graceMs` for them to exit, then SIGKILL to the rest. */
export async function stopPids(pids: number[], graceMs: number): Promise<void> {
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pids.some(isAlive) && Date.now() < deadline) await sleep(100);
  for (const pid of pids.filter(isAlive)) signal(pid, 'SIGKILL');
  const killDeadline = Date.now() + 2000;
  while (pids.some(isAlive) && Date.now() < killDeadline) await sleep(50);
}

/**
 * Stops a process group (a child spawned `detached`): SIGTERM to the group, up to `graceMs` for its
 * leader to exit, then SIGKILL to whatever is left in the group.
 */
export async function stopGroup(pgid: number, graceMs: number): Promise<void> {
  signal(-pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pgid) && Date.now() < deadline) await sleep(100);
  signal(-pgid, 'SIGKILL');
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
