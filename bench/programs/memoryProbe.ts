// A measuring hook for the connection cases, preloaded into the measured server process (the daemon
// or a baseline) with NODE_OPTIONS="--expose-gc --require out/bench/run/memoryProbe.js" — no server
// code changes. On SIGUSR2 it runs a full garbage collection and writes process.memoryUsage() to
// $BENCH_MEMORY_PROBE_DIR/<pid>.json, so "memory held per connection" and "memory returned after
// close" are read without counting garbage that simply has not been collected yet.
import fs from 'node:fs';
import path from 'node:path';

const dir = process.env.BENCH_MEMORY_PROBE_DIR;
if (dir) {
  process.on('SIGUSR2', () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    gc?.(); // a second pass collects what the first one's finalizers released
    const file = path.join(dir, `${process.pid}.json`);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify({ ...process.memoryUsage(), collected: gc !== undefined }));
    fs.renameSync(`${file}.tmp`, file);
  });
}
