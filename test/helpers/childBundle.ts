// Bundles a source module into one CommonJS file that child processes can `require()`, for tests
// that need the same code running in several processes at once (several VS Code windows).
import path from 'node:path';
import { buildSync } from 'esbuild';

export const REPO_ROOT = path.resolve(__dirname, '../../..');

/** Bundles `entry` (a path relative to the repository) to `outfile` and returns `outfile`. */
export function bundleForChildProcess(entry: string, outfile: string): string {
  buildSync({
    entryPoints: [path.join(REPO_ROOT, entry)],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node22',
    outfile,
    logLevel: 'warning',
  });
  return outfile;
}
