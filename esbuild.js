// Builds the two programs and the test files.
//   node esbuild.js           -> dist/server.js (the daemon) [+ dist/extension.js, dist/supabase.js and dist/ws.js once src/extension.ts exists]
//   node esbuild.js --tests   -> also out/test/**.test.js (mocha runs these with Node 22)
//   node esbuild.js --bench   -> also out/bench/run/*.js (npm run bench: bench/main.ts and the programs it starts)
//   node esbuild.js --production -> minified dist/, no source maps (what scripts/package.sh ships)
//   node esbuild.js --watch
const esbuild = require('esbuild');
const fs = require('node:fs');
const path = require('node:path');

const pkg = require('./package.json');
const args = new Set(process.argv.slice(2));
const production = args.has('--production');

const common = {
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  logLevel: 'warning',
  define: { __EXAI_VERSION__: JSON.stringify(pkg.version) },
  // pg's optional native binding is never used; keep it out of the bundle.
  external: ['pg-native'],
  // The model tools' system prompts (server/tools/prompts/*.md) are bundled as text.
  loader: { '.md': 'text' },
};

// The extension's heavy dependencies, each its own bundle beside dist/extension.js: the extension
// require()s them on first use (src/lazyModules.ts), so VS Code's activation does not parse them.
// .vscodeignore ships them; test/extension/package.test.ts checks every one is packaged.
// (Resolved as Node's require() resolves them, so each bundle's module.exports is what require() of the package gives.)
const LAZY_BUNDLES = { '@supabase/supabase-js': 'supabase', ws: 'ws' };
const lazyBundles = {
  name: 'lazy-bundles',
  setup(build) {
    const filter = new RegExp(`^(${Object.keys(LAZY_BUNDLES).map((n) => n.replace(/[/.]/g, '\\$&')).join('|')})$`);
    build.onResolve({ filter }, (args) => (args.kind === 'entry-point' ? undefined : { path: `./${LAZY_BUNDLES[args.path]}.js`, external: true }));
  },
};

function listTests(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true })
    .filter((f) => /\.test\.ts$/.test(f))
    .map((f) => path.join(dir, f));
}

async function main() {
  const builds = [{ ...common, entryPoints: { server: 'server/main.ts' }, outdir: 'dist' }];
  if (fs.existsSync('src/extension.ts')) {
    const extension = { ...common, outdir: 'dist', external: [...common.external, 'vscode'], plugins: [lazyBundles] };
    builds.push({ ...extension, entryPoints: { extension: 'src/extension.ts' } });
    builds.push(...Object.entries(LAZY_BUNDLES).map(([pkgName, file]) => ({ ...extension, entryPoints: { [file]: require.resolve(pkgName) } })));
  }
  if (args.has('--tests')) {
    const entryPoints = ['unit', 'daemon', 'extension', 'auth-server', 'e2e'].flatMap((d) => listTests(path.join('test', d)));
    // Programs the tests start: the GoTrue-compatible test server's CLI.
    if (fs.existsSync('test/auth-server/main.ts')) entryPoints.push('test/auth-server/main.ts');
    entryPoints.push('test/desktop/run.ts'); // npm run test:desktop
    builds.push({ ...common, entryPoints, outdir: 'out/test', outbase: 'test', packages: 'external' });
    // The suite that runs inside VS Code's extension host (mocha loaded by test/vscode/index.ts).
    const inHost = [path.join('test', 'vscode', 'index.ts'), ...listTests(path.join('test', 'vscode'))];
    builds.push({ ...common, entryPoints: inHost, outdir: 'out/test/vscode', packages: 'external', external: ['vscode'] });
  }
  if (args.has('--bench')) {
    // Three levels deep, like out/test/<dir>/, so the test helpers the bench reuses find the repository.
    const entryPoints = ['bench/main.ts', ...fs.readdirSync('bench/programs').filter((f) => f.endsWith('.ts')).map((f) => path.join('bench', 'programs', f))];
    builds.push({ ...common, entryPoints, outdir: 'out/bench/run', entryNames: '[name]', packages: 'external', minify: false, sourcemap: true });
  }
  if (args.has('--watch')) {
    for (const b of builds) await (await esbuild.context(b)).watch();
    return;
  }
  await Promise.all(builds.map((b) => esbuild.build(b)));
}

main().catch((err) => { console.error(err.message ?? err); process.exit(1); });
