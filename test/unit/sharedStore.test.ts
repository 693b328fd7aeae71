// SharedStore: the encrypted, cross-window session store under globalStorageUri, and its key providers.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleForChildProcess } from '../helpers/childBundle';
import { sleep, waitFor } from '../helpers/wait';
import {
  SharedStore,
  decodeKeyName,
  encodeKeyName,
  fileKeyProvider,
  keyFingerprint,
  secretStorageKeyProvider,
  type KeyProvider,
} from '../../src/auth/sharedStore';

const isWindows = process.platform === 'win32';

const staticKey = (key = crypto.randomBytes(32)): KeyProvider => ({ getKey: async () => key });

/** Runs `code` in a fresh Node process (another "window"); resolves with its stdout. */
function runChild(code: string, args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill(), timeoutMs);
    child.on('error', reject);
    child.on('exit', (codeOrNull) => {
      clearTimeout(timer);
      if (codeOrNull === 0) resolve(out);
      else reject(new Error(`child exited ${codeOrNull}: ${err}`));
    });
  });
}

describe('SharedStore', function () {
  let tmp: string;
  let bundle: string; // src/auth/sharedStore.ts bundled for child processes

  before(function () {
    this.timeout(30_000);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-sharedstore-'));
    bundle = bundleForChildProcess('src/auth/sharedStore.ts', path.join(tmp, 'sharedStore.js'));
  });

  after(function () {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  let n = 0;
  const freshDir = () => path.join(tmp, `store-${++n}`, 'sessions');

  it('round-trips values; missing keys read as null; removeItem deletes (and tolerates missing keys)', async function () {
    const store = new SharedStore(freshDir(), staticKey());
    assert.equal(await store.getItem('sb-x-auth-token'), null);
    await store.setItem('sb-x-auth-token', '{"access_token":"a"}');
    assert.equal(await store.getItem('sb-x-auth-token'), '{"access_token":"a"}');
    await store.setItem('sb-x-auth-token', 'ünïcødé ✓ and a much longer second value'.repeat(10));
    assert.equal(await store.getItem('sb-x-auth-token'), 'ünïcødé ✓ and a much longer second value'.repeat(10));
    await store.setItem('empty', '');
    assert.equal(await store.getItem('empty'), '');
    await store.removeItem('sb-x-auth-token');
    assert.equal(await store.getItem('sb-x-auth-token'), null);
    await store.removeItem('never-there');
  });

  it('encrypts at rest: AES-GCM envelope {v,iv,tag,data}, fresh IV per write, no plaintext on disk', async function () {
    const dir = freshDir();
    const store = new SharedStore(dir, staticKey());
    const secret = 'refresh_token=SUPER-SECRET-VALUE-123';
    await store.setItem('k', secret);
    const file = path.join(dir, 'k.json');
    const raw1 = fs.readFileSync(file, 'utf8');
    assert.ok(!raw1.includes('SUPER-SECRET'), 'plaintext must not be on disk');
    assert.ok(!raw1.includes(Buffer.from(secret).toString('base64')), 'nor merely base64-encoded');
    const env = JSON.parse(raw1);
    assert.deepEqual(Object.keys(env).sort(), ['data', 'iv', 'tag', 'v']);
    assert.equal(env.v, 1);
    assert.equal(Buffer.from(env.iv, 'base64').length, 12);
    assert.equal(Buffer.from(env.tag, 'base64').length, 16);
    await store.setItem('k', secret);
    const env2 = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.notEqual(env2.iv, env.iv, 'random IV per write');
    assert.notEqual(env2.data, env.data);
  });

  it('creates the folder 0700 and files 0600', async function () {
    if (isWindows) this.skip();
    const dir = freshDir();
    const store = new SharedStore(dir, staticKey());
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700, 'folder exists (constructor) and is private');
    await store.setItem('k', 'v');
    assert.equal(fs.statSync(path.join(dir, 'k.json')).mode & 0o777, 0o600);
  });

  it('writes atomically: a concurrent reader never sees a partial value during 200 large writes', async function () {
    this.timeout(60_000);
    const dir = freshDir();
    const key = staticKey();
    const errors: Error[] = [];
    const writer = new SharedStore(dir, key, { onError: (e) => errors.push(e) });
    const reader = new SharedStore(dir, key, { onError: (e) => errors.push(e) }); // "another window"
    const value = (i: number) => `${i}:` + String(i % 10).repeat(200_000);
    const valid = (v: string) => {
      const m = /^(\d+):/.exec(v);
      return m !== null && v === value(Number(m[1]));
    };
    let done = false;
    let reads = 0;
    let nonNull = 0;
    const readLoop = async () => {
      for (let i = 0; i < 20_000 && !done; i++) {
        const v = await reader.getItem('big');
        reads++;
        if (v !== null) {
          nonNull++;
          assert.ok(valid(v), `read an invalid value of length ${v.length}`);
        }
      }
    };
    const writeLoop = async () => {
      try {
        for (let i = 0; i < 200; i++) await writer.setItem('big', value(i));
      } finally {
        done = true;
      }
    };
    await Promise.all([readLoop(), readLoop(), writeLoop()]);
    assert.deepEqual(errors, [], 'no unreadable file was ever seen');
    assert.ok(reads > 10 && nonNull > 0, `the reader actually ran (${reads} reads, ${nonNull} values)`);
    assert.equal(await reader.getItem('big'), value(199));
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temp files left behind');
  });

  it('a file renamed to another key reads as null and reports (the key name is authenticated)', async function () {
    const dir = freshDir();
    const errors: Error[] = [];
    const store = new SharedStore(dir, staticKey(), { onError: (e) => errors.push(e) });
    await store.setItem('sb-alice-auth-token', 'alice-session-secret');
    fs.renameSync(path.join(dir, 'sb-alice-auth-token.json'), path.join(dir, 'sb-bob-auth-token.json'));
    assert.equal(await store.getItem('sb-bob-auth-token'), null);
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof Error);
    assert.match(errors[0].message, /sb-bob-auth-token/);
    assert.ok(!errors[0].message.includes('alice-session-secret'));
    assert.equal(await store.getItem('sb-alice-auth-token'), null, 'the original key is simply missing');
    assert.equal(errors.length, 1, 'a missing file is not an error');
  });

  it('another encryption key reads as null and reports; garbage and tampered files too, without quoting them', async function () {
    const dir = freshDir();
    const errors: Error[] = [];
    await new SharedStore(dir, staticKey()).setItem('k', 'written-with-key-one');
    const other = new SharedStore(dir, staticKey(), { onError: (e) => errors.push(e) });
    assert.equal(await other.getItem('k'), null);
    assert.equal(errors.length, 1);

    fs.writeFileSync(path.join(dir, 'garbage.json'), 'not json: secret-garbage-content');
    assert.equal(await other.getItem('garbage'), null);
    fs.writeFileSync(path.join(dir, 'shape.json'), '{"v":2}');
    assert.equal(await other.getItem('shape'), null);
    await other.setItem('t', 'value');
    const env = JSON.parse(fs.readFileSync(path.join(dir, 't.json'), 'utf8'));
    const data = Buffer.from(env.data, 'base64');
    data[0] ^= 1;
    fs.writeFileSync(path.join(dir, 't.json'), JSON.stringify({ ...env, data: data.toString('base64') }));
    assert.equal(await other.getItem('t'), null);
    assert.equal(errors.length, 4);
    for (const e of errors) assert.ok(!e.message.includes('secret-garbage'), e.message);
  });

  it('keys(prefix) lists stored keys, decoding odd characters; file names stay portable', async function () {
    const dir = freshDir();
    const store = new SharedStore(dir, staticKey());
    const odd = ['sb-abc-auth-token', 'sb-abc-auth-token-code-verifier', 'sb-x/y:z?*"<>|\\ tab\tend', 'sb-é✓😀', '%41', '.', '..', 'other'];
    for (const k of odd) await store.setItem(k, `value of ${k}`);
    fs.writeFileSync(path.join(dir, 'foreign.txt'), 'x');
    fs.writeFileSync(path.join(dir, 'bad%zz.json'), 'x');
    fs.writeFileSync(path.join(dir, 'k.json.123.abc.tmp'), 'x');
    assert.deepEqual(await store.keys(), [...odd].sort());
    assert.deepEqual(await store.keys('sb-'), odd.filter((k) => k.startsWith('sb-')).sort());
    assert.deepEqual(await store.keys('sb-abc'), ['sb-abc-auth-token', 'sb-abc-auth-token-code-verifier']);
    assert.deepEqual(await store.keys('nope'), []);
    for (const k of odd) assert.equal(await store.getItem(k), `value of ${k}`);
    for (const f of fs.readdirSync(dir)) assert.match(f, /^[A-Za-z0-9._%-]+$/);
    assert.equal(encodeKeyName('a/b c%'), 'a%2Fb%20c%25');
    assert.equal(decodeKeyName('a%2Fb%20c%25'), 'a/b c%');
    assert.equal(decodeKeyName('a%2fb'), undefined, 'only canonical (upper-case) encodings');
    assert.equal(decodeKeyName('a b'), undefined);
  });

  describe('watch', function () {
    const childWrite = `
      const { SharedStore, fileKeyProvider } = require(process.argv[1]);
      const [dir, keyFile, key, value] = process.argv.slice(2);
      const store = new SharedStore(dir, fileKeyProvider(keyFile));
      (value === '--remove' ? store.removeItem(key) : store.setItem(key, value))
        .then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });`;

    it('sees a write made by another process, and the new value is readable at once', async function () {
      const dir = freshDir();
      const keyFile = path.join(path.dirname(dir), 'store.key');
      const store = new SharedStore(dir, fileKeyProvider(keyFile));
      const seen: string[] = [];
      const sub = store.watch((k) => seen.push(k));
      try {
        await runChild(childWrite, [bundle, dir, keyFile, 'sb-other-window', 'from another process']);
        await waitFor(() => seen.includes('sb-other-window'), 5_000, 'the cross-process change', { everyMs: 10 });
        assert.equal(await store.getItem('sb-other-window'), 'from another process');
        await runChild(childWrite, [bundle, dir, keyFile, 'sb-other-window', '--remove']);
        await waitFor(() => seen.filter((k) => k === 'sb-other-window').length >= 2, 5_000, 'the cross-process removal', { everyMs: 10 });
        assert.equal(await store.getItem('sb-other-window'), null);
      } finally {
        sub.dispose();
        store.dispose();
      }
    });

    it('falls back to polling mtimes when fs.watch is unavailable (another process writes)', async function () {
      const dir = freshDir();
      const keyFile = path.join(path.dirname(dir), 'store.key');
      const store = new SharedStore(dir, fileKeyProvider(keyFile), { useFsWatch: false, pollIntervalMs: 100 });
      const seen: string[] = [];
      store.watch((k) => seen.push(k));
      try {
        await runChild(childWrite, [bundle, dir, keyFile, 'polled', 'v1']);
        await waitFor(() => seen.includes('polled'), 3_000, 'the polled change', { everyMs: 10 });
        await runChild(childWrite, [bundle, dir, keyFile, 'polled', 'v2']);
        await waitFor(() => seen.length >= 2, 3_000, 'the second polled change (same size, new inode)', { everyMs: 10 });
        await runChild(childWrite, [bundle, dir, keyFile, 'polled', '--remove']);
        await waitFor(() => seen.length >= 3, 3_000, 'the polled removal', { everyMs: 10 });
        assert.deepEqual(seen, ['polled', 'polled', 'polled']);
      } finally {
        store.dispose();
      }
    });

    it("emits for this process's own writes and removals, debounced per key, ignoring temp files", async function () {
      const dir = freshDir();
      const store = new SharedStore(dir, staticKey());
      const seen: string[] = [];
      store.watch((k) => seen.push(k));
      try {
        await store.setItem('a/b', '1');
        await waitFor(() => seen.includes('a/b'), 3_000, 'own write', { everyMs: 10 });
        await sleep(150);
        seen.length = 0;
        for (let i = 0; i < 5; i++) await store.setItem('burst', String(i));
        await waitFor(() => seen.includes('burst'), 3_000, 'burst', { everyMs: 10 });
        await sleep(200);
        const bursts = seen.filter((k) => k === 'burst').length;
        assert.ok(bursts >= 1 && bursts <= 2, `5 quick writes emit at most twice, got ${bursts}`);
        seen.length = 0;
        await store.removeItem('a/b');
        await waitFor(() => seen.includes('a/b'), 3_000, 'own removal', { everyMs: 10 });
        await sleep(150);
        seen.length = 0;
        fs.writeFileSync(path.join(dir, 'x.json.1.abc.tmp'), 'partial');
        fs.writeFileSync(path.join(dir, 'notes.txt'), 'x');
        await sleep(300);
        assert.deepEqual(seen, [], 'temp and foreign files are not keys');
      } finally {
        store.dispose();
      }
    });

    it('stops emitting after the subscription or the store is disposed', async function () {
      const dir = freshDir();
      const key = staticKey();
      const writer = new SharedStore(dir, key);
      const store = new SharedStore(dir, key, { pollIntervalMs: 50 });
      const a: string[] = [];
      const b: string[] = [];
      const subA = store.watch((k) => a.push(k));
      store.watch((k) => b.push(k));
      await writer.setItem('k', '1');
      await waitFor(() => a.length > 0 && b.length > 0, 3_000, 'both listeners', { everyMs: 10 });
      subA.dispose();
      a.length = 0;
      b.length = 0;
      await writer.setItem('k', '2');
      await waitFor(() => b.length > 0, 3_000, 'the remaining listener', { everyMs: 10 });
      await sleep(150);
      assert.deepEqual(a, [], 'disposed subscription is silent');
      store.dispose();
      b.length = 0;
      await writer.setItem('k', '3');
      await writer.removeItem('k');
      await sleep(300);
      assert.deepEqual(b, [], 'disposed store is silent');
      const late: string[] = [];
      store.watch((k) => late.push(k)).dispose();
      assert.equal(await store.getItem('k'), null, 'storage still works after dispose');
    });
  });

  describe('fileKeyProvider', function () {
    const childKey = `
      const { fileKeyProvider } = require(process.argv[1]);
      const [file, startAt] = process.argv.slice(2);
      setTimeout(() => fileKeyProvider(file).getKey().then(
        (k) => process.stdout.write(k.toString('hex')),
        (e) => { console.error(e); process.exit(1); }), Math.max(0, Number(startAt) - Date.now()));`;

    it('two processes creating the key at the same moment end with the same key (5 rounds)', async function () {
      this.timeout(30_000);
      for (let round = 0; round < 5; round++) {
        const file = path.join(tmp, `race-${round}`, 'keydir', 'store.key');
        const startAt = String(Date.now() + 400); // both start after their Node startup
        const [k1, k2] = await Promise.all([runChild(childKey, [bundle, file, startAt]), runChild(childKey, [bundle, file, startAt])]);
        assert.match(k1, /^[0-9a-f]{64}$/);
        assert.equal(k1, k2, `round ${round}: both processes hold the same key`);
        assert.equal(fs.readFileSync(file).toString('hex'), k1);
        assert.deepEqual(fs.readdirSync(path.dirname(file)), ['store.key'], 'no temp files left');
        if (!isWindows) {
          assert.equal(fs.statSync(file).mode & 0o777, 0o600);
          assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
        }
      }
    });

    it('adopts an existing key file and caches the key in memory', async function () {
      const file = path.join(tmp, 'existing', 'store.key');
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const key = crypto.randomBytes(32);
      fs.writeFileSync(file, key, { mode: 0o600 });
      const provider = fileKeyProvider(file);
      assert.deepEqual(await provider.getKey(), key);
      fs.rmSync(file);
      assert.deepEqual(await provider.getKey(), key, 'cached after the first read');
      assert.equal(fs.existsSync(file), false, 'not re-created by a cached read');
    });

    it('rejects a key file of the wrong size instead of using it', async function () {
      this.timeout(10_000);
      const file = path.join(tmp, 'short', 'store.key');
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, 'short');
      await assert.rejects(fileKeyProvider(file).getKey(), /not 32 bytes/);
    });
  });

  describe('secretStorageKeyProvider (in-process; the multi-process race: test/extension/storeKey.test.ts)', function () {
    function fakeSecrets(initial: Record<string, string> = {}) {
      const map = new Map(Object.entries(initial));
      const calls = { get: 0, store: 0 };
      return {
        map,
        calls,
        /** Returns undefined for this many gets first (another window's write not yet propagated here). */
        lateGets: 0,
        get(key: string) {
          calls.get++;
          if (this.lateGets > 0) {
            this.lateGets--;
            return Promise.resolve(undefined);
          }
          return Promise.resolve(map.get(key));
        },
        store(key: string, value: string) {
          calls.store++;
          map.set(key, value);
          return Promise.resolve();
        },
      };
    }
    const idFileOf = (dir: string) => path.join(dir, 'store.key.id');
    const freshKeysDir = () => path.join(tmp, `keys-${++n}`);

    it('a key stored before the agreement file existed (an older version) is adopted, recorded, and cached', async function () {
      const key = crypto.randomBytes(32);
      const secrets = fakeSecrets({ 'exai.sessionStoreKey': key.toString('base64') });
      const dir = freshKeysDir();
      const provider = secretStorageKeyProvider(secrets, dir);
      assert.deepEqual(await provider.getKey(), key);
      assert.deepEqual(await provider.getKey(), key);
      assert.equal(secrets.calls.store, 0);
      assert.equal(secrets.calls.get, 1);
      assert.equal(fs.readFileSync(idFileOf(dir), 'utf8').trim(), keyFingerprint(key));
    });

    it('generates and stores a base64 32-byte key when none exists (custom name); the id file names it, not the key (0600)', async function () {
      const secrets = fakeSecrets();
      const dir = freshKeysDir();
      const key = await secretStorageKeyProvider(secrets, dir, { name: 'custom.name' }).getKey();
      assert.equal(key.length, 32);
      assert.equal(secrets.map.get('custom.name'), key.toString('base64'));
      const id = fs.readFileSync(idFileOf(dir), 'utf8');
      assert.equal(id.trim(), keyFingerprint(key));
      assert.ok(!id.includes(key.toString('base64')) && !id.includes(key.toString('hex')));
      if (!isWindows) assert.equal(fs.statSync(idFileOf(dir)).mode & 0o777, 0o600);
      assert.deepEqual(fs.readdirSync(dir).sort(), ['store.key.id'], 'no lock or temp file left behind');
    });

    it('waits for the agreed key that another window stored but this window does not see yet, and never stores its own', async function () {
      const dir = freshKeysDir();
      const winner = crypto.randomBytes(32);
      await secretStorageKeyProvider(fakeSecrets({ 'exai.sessionStoreKey': winner.toString('base64') }), dir).getKey(); // window A
      const late = fakeSecrets({ 'exai.sessionStoreKey': winner.toString('base64') });
      late.lateGets = 5; // window B's SecretStorage shows A's key only after ~0.5 s
      assert.deepEqual(await secretStorageKeyProvider(late, dir).getKey(), winner);
      assert.equal(late.calls.store, 0, 'stored a second key');
    });

    it('a stored key that does not match the agreement is not used while the agreed one may still arrive', async function () {
      const dir = freshKeysDir();
      const agreed = crypto.randomBytes(32);
      await secretStorageKeyProvider(fakeSecrets({ 'exai.sessionStoreKey': agreed.toString('base64') }), dir).getKey();
      const secrets = fakeSecrets({ 'exai.sessionStoreKey': crypto.randomBytes(32).toString('base64') }); // a stale view
      setTimeout(() => secrets.map.set('exai.sessionStoreKey', agreed.toString('base64')), 300); // A's write arrives
      assert.deepEqual(await secretStorageKeyProvider(secrets, dir, { propagationMs: 5000 }).getKey(), agreed);
    });

    it('the keychain lost the agreed key: after the bounded wait, a new key, recorded, and a warning', async function () {
      const dir = freshKeysDir();
      await secretStorageKeyProvider(fakeSecrets(), dir).getKey();
      const emptied = fakeSecrets({ 'exai.sessionStoreKey': 'not-a-key' }); // also: an invalid value is replaced
      const warnings: string[] = [];
      const started = Date.now();
      const key = await secretStorageKeyProvider(emptied, dir, { propagationMs: 300, onWarning: (m) => warnings.push(m) }).getKey();
      assert.ok(Date.now() - started >= 300, 'gave the keychain its time first');
      assert.equal(key.length, 32);
      assert.equal(emptied.map.get('exai.sessionStoreKey'), key.toString('base64'));
      assert.equal(fs.readFileSync(idFileOf(dir), 'utf8').trim(), keyFingerprint(key));
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], /no longer in the OS keychain/);
    });

    it('works with stores sharing one file store: what one window writes, another reads', async function () {
      const secrets = fakeSecrets();
      const keysDir = freshKeysDir();
      const dir = freshDir();
      await new SharedStore(dir, secretStorageKeyProvider(secrets, keysDir)).setItem('k', 'v');
      assert.equal(await new SharedStore(dir, secretStorageKeyProvider(secrets, keysDir)).getItem('k'), 'v');
    });
  });
});
