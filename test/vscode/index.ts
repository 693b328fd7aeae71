// Mocha inside the real extension host (code-server), loaded through extensionTestsPath. Results go
// to the JSON file named by EXAI_INHOST_RESULTS so the outer runner can report them. It runs the
// *.test.js files beside it, or the files named in EXAI_INHOST_FILES (comma-separated, relative to
// this folder: a window's part of a multi-window suite such as mcp/).
import fs from 'node:fs';
import path from 'node:path';
import Mocha from 'mocha';

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', color: false, timeout: 60_000, slow: 5000 });
  const only = process.env.EXAI_INHOST_FILES?.split(',').filter(Boolean);
  const files = only ?? fs.readdirSync(__dirname).sort().filter((f) => f.endsWith('.test.js'));
  for (const f of files) mocha.addFile(path.join(__dirname, f));
  const resultsFile = process.env.EXAI_INHOST_RESULTS;
  const results = { passes: [] as unknown[], failures: [] as unknown[], pending: [] as unknown[] };
  return new Promise((resolve, reject) => {
    const runner = mocha.run((failures) => {
      if (resultsFile) fs.writeFileSync(resultsFile, JSON.stringify(results, null, 2));
      failures ? reject(new Error(`${failures} in-host tests failed`)) : resolve();
    });
    runner.on('pass', (t) => results.passes.push({ title: `[in VS Code] ${t.fullTitle()}`, ms: t.duration }));
    runner.on('fail', (t, err) => {
      results.failures.push({ title: `[in VS Code] ${t.fullTitle()}`, error: String(err?.stack ?? err) });
      // At once, not only in the summary: a window whose suite never ends still shows why.
      console.log(`FAILED ${t.title}: ${String(err?.message ?? err).split('\n')[0]}`);
    });
    runner.on('pending', (t) => results.pending.push({ title: `[in VS Code] ${t.fullTitle()}` }));
  });
}
