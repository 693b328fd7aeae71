// Reading a measured server's memory through bench/programs/memoryProbe.ts (preloaded into it).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PROGRAMS_DIR, sleep } from './processes';

export interface MemorySnapshot {
  /** Bytes, after a full garbage collection. */
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

const PROBE_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-bench-memory-'));
process.on('exit', () => fs.rmSync(PROBE_DIR, { recursive: true, force: true }));

/** Environment that preloads the probe into a Node process. */
export function memoryProbeEnv(): Record<string, string> {
  const existing = process.env.NODE_OPTIONS ? `${process.env.NODE_OPTIONS} ` : '';
  return {
    NODE_OPTIONS: `${existing}--expose-gc --require ${JSON.stringify(path.join(PROGRAMS_DIR, 'memoryProbe.js'))}`,
    BENCH_MEMORY_PROBE_DIR: PROBE_DIR,
  };
}

/** Asks process `pid` (started with memoryProbeEnv) to collect garbage and report; bounded. */
export async function probeMemory(pid: number, timeoutMs = 10_000): Promise<MemorySnapshot> {
  const file = path.join(PROBE_DIR, `${pid}.json`);
  fs.rmSync(file, { force: true });
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (fs.existsSync(file)) {
      const m = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (!m.collected) throw new Error(`process ${pid} has no gc() (was it started with --expose-gc?)`);
      return m;
    }
    await sleep(20);
  }
  throw new Error(`process ${pid} did not answer the memory probe within ${timeoutMs} ms`);
}
