// The PostgREST-compatible test endpoint (test/postgrest/server.ts) as its own process, so the
// Data API handshakes the bench times are not served from inside the timing client's event loop.
// Options come as JSON in BENCH_POSTGREST_OPTIONS (test keys and loopback URLs only); prints
// {"url":…} once listening; SIGTERM closes it.
import { startPostgrest, type PostgrestOptions } from '../../test/postgrest/server';

async function main(): Promise<void> {
  const options = JSON.parse(process.env.BENCH_POSTGREST_OPTIONS ?? '{}') as PostgrestOptions;
  const rest = await startPostgrest(options);
  process.stdout.write(JSON.stringify({ url: rest.url }) + '\n');
  const stop = () => void rest.close().finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The stand-in records every request for tests to inspect; the bench never reads them.
  setInterval(() => rest.clearRequests(), 5000).unref();
}

main().catch((err) => {
  process.stderr.write(`postgrest: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
