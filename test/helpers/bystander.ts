// An unrelated `node …/server.js` process: the stand-in for whatever process reuses the pid of a
// daemon that died without cleaning up. It answers GET /health exactly like a daemon would (so a
// health check proves nothing), and records every SIGTERM/SIGINT/SIGHUP it gets instead of dying,
// so a test can tell "was it signalled at all", not only "is it still alive".
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const PROGRAM = `
const fs = require('node:fs');
const http = require('node:http');
const [signalsFile, version] = process.argv.slice(2);
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => fs.appendFileSync(signalsFile, sig + '\\n'));
const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ status: 'ok', version, mode: 'local', uptime_s: 1, connections: 0, users: 0 }));
});
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));
`;

export interface Bystander {
  pid: number;
  /** Where it answers /health like a daemon. */
  port: number;
  proc: ChildProcess;
  /** Signals it received so far (it survives them). */
  signals(): string[];
  running(): boolean;
  kill(): void;
}

export async function startBystander(version: string): Promise<Bystander> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-bystander-'));
  const program = path.join(dir, 'server.js');
  const signalsFile = path.join(dir, 'signals.txt');
  fs.writeFileSync(program, PROGRAM);
  const proc = spawn(process.execPath, [program, signalsFile, version], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the bystander did not listen within 10 s')), 10_000);
    proc.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(JSON.parse(out.slice(0, out.indexOf('\n'))).port);
      }
    });
    proc.on('exit', (code) => reject(new Error(`the bystander exited with ${code}`)));
  });
  return {
    pid: proc.pid!,
    port,
    proc,
    signals: () => (fs.existsSync(signalsFile) ? fs.readFileSync(signalsFile, 'utf8').split('\n').filter(Boolean) : []),
    running: () => proc.exitCode === null && proc.signalCode === null,
    kill: () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Makes a dead daemon's state directory name `pid` (and `port`) as if the OS had given the dead
 * daemon's pid to that process: daemon.json and daemon.lock keep everything else they recorded
 * (start token, started_at, secret) — exactly what a pid reuse leaves behind.
 */
export function reusePid(stateDir: string, pid: number, port: number): void {
  const discovery = path.join(stateDir, 'daemon.json');
  const info = JSON.parse(fs.readFileSync(discovery, 'utf8'));
  fs.writeFileSync(discovery, JSON.stringify({ ...info, pid, port }), { mode: 0o600 });
  const lock = path.join(stateDir, 'daemon.lock');
  const { atime, mtime } = fs.statSync(lock); // written by the dead daemon, before the reuse
  const lines = fs.readFileSync(lock, 'utf8').split('\n');
  lines[0] = String(pid);
  fs.writeFileSync(lock, lines.join('\n'), { mode: 0o600 });
  fs.utimesSync(lock, atime, mtime);
}
