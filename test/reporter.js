// Mocha reporter: the usual `spec` output on the console, plus a JSON copy in test-results/mocha.json
// that scripts/summarize-results.js turns into the final `N passed, N failed` line.
const fs = require('node:fs');
const path = require('node:path');
const Mocha = require('mocha');

class SpecAndJson extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const results = { passes: [], failures: [], pending: [] };
    const name = (t) => t.fullTitle();
    runner.on('pass', (t) => results.passes.push({ title: name(t), ms: t.duration }));
    runner.on('fail', (t, err) => results.failures.push({ title: name(t), error: String(err && err.stack || err) }));
    runner.on('pending', (t) => results.pending.push({ title: name(t) }));
    runner.once('end', () => {
      const file = path.resolve('test-results', 'mocha.json');
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, JSON.stringify(results, null, 2));
    });
  }
}
module.exports = SpecAndJson;
