// Prints one `N passed, N failed` line summing every JSON result file given (mocha, in-host, e2e).
const fs = require('node:fs');
let passed = 0, failed = 0;
for (const file of process.argv.slice(2)) {
  if (!fs.existsSync(file)) { failed += 1; console.log(`missing results: ${file}`); continue; }
  const r = JSON.parse(fs.readFileSync(file, 'utf8'));
  passed += r.passes.length;
  failed += r.failures.length;
}
console.log(`${passed} passed, ${failed} failed`);
