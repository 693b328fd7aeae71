// `npm run package`: the .vsix holds the bundles (the extension, the two it loads on first use, the daemon), the manifest, the user-facing README,
// CHANGELOG, LICENSE and media — no node_modules, tests, sources or source maps. (npm test packages before mocha.)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

const ROOT = path.resolve(__dirname, '../../..');
const VSIX = path.join(ROOT, `exai-vscode-${JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version}.vsix`);

/** Names and contents of a zip's entries, from its central directory (no third-party unzip). */
function readZip(file: string): Map<string, Buffer> {
  const zip = fs.readFileSync(file);
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  assert.ok(eocd >= 0, 'not a zip file');
  const count = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  const entries = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const method = zip.readUInt16LE(at + 10);
    const size = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const skip = nameLength + zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
    const local = zip.readUInt32LE(at + 42);
    const name = zip.toString('utf8', at + 46, at + 46 + nameLength);
    const dataStart = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const data = zip.subarray(dataStart, dataStart + size);
    entries.set(name, method === 8 ? zlib.inflateRawSync(data) : data);
    at += 46 + skip;
  }
  return entries;
}

describe('the packaged extension (.vsix)', function () {
  let entries: Map<string, Buffer>;
  before(function () {
    assert.ok(fs.existsSync(VSIX), `run npm run package first (${VSIX})`);
    entries = readZip(VSIX);
  });

  it('contains the extension bundle, the daemon bundle and the manifest', function () {
    for (const name of ['extension/package.json', 'extension/dist/extension.js', 'extension/dist/server.js']) assert.ok(entries.has(name), name);
    const manifest = JSON.parse(entries.get('extension/package.json')!.toString());
    assert.equal(manifest.main, './dist/extension.js');
    assert.equal(manifest.engines.vscode, '^1.101.0');
  });

  it('contains every bundle dist/extension.js loads on first use (supabase-js, ws), and each loads', function () {
    const extension = entries.get('extension/dist/extension.js')!.toString();
    const siblings = [...new Set([...extension.matchAll(/require\("\.\/([\w.-]+\.js)"\)/g)].map((m) => m[1]))].sort();
    assert.deepEqual(siblings, ['supabase.js', 'ws.js']);
    // Loaded from an unpacked copy, as VS Code loads them from the installed extension.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-vsix-'));
    try {
      for (const file of siblings) fs.writeFileSync(path.join(dir, file), entries.get(`extension/dist/${file}`) ?? assert.fail(`extension/dist/${file} is not packaged`));
      const supabase = require(path.join(dir, 'supabase.js'));
      for (const name of ['createClient', 'isAuthApiError', 'isAuthRetryableFetchError']) assert.equal(typeof supabase[name], 'function', name);
      const WebSocket = require(path.join(dir, 'ws.js'));
      assert.equal(typeof WebSocket, 'function');
      assert.equal(WebSocket.OPEN, 1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('contains the user-facing README, CHANGELOG, LICENSE and the media it shows', function () {
    const readme = entries.get('extension/readme.md')?.toString() ?? '';
    assert.match(readme, /^# EXAI/);
    assert.ok(!readme.includes('npm test'), 'the Marketplace page, not the developer README');
    for (const name of ['extension/changelog.md', 'extension/LICENSE.txt', 'extension/media/icon.png']) assert.ok(entries.has(name), name);
    for (const image of readme.match(/\]\((media\/[^)]+)\)/g) ?? []) {
      const file = `extension/${image.slice(2, -1)}`;
      assert.ok(entries.has(file), `${file} (shown in the README) is packaged`);
    }
  });

  it('contains no node_modules, tests, sources or source maps', function () {
    const names = [...entries.keys()];
    const unwanted = names.filter((n) => /node_modules\/|(^|\/)(test|src|server|scripts|supabase|out)\/|\.ts$|\.map$|\.vsix$|\.cache\//.test(n));
    assert.deepEqual(unwanted, []);
    assert.ok(names.length < 30, `a small package: ${names.length} files`);
  });
});
