// Two desktop windows starting at the same moment must end with ONE account-store key: a window
// that encrypted its sessions with a key the other windows do not have loses them. Real processes,
// each running src/auth/sharedStore.ts secretStorageKeyProvider over one shared keychain whose
// writes reach other windows late (as desktop VS Code's SecretStorage does), with the unfavourable
// interleaving forced by a barrier: every window looks for the key before any window stores one.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { keyFingerprint, SharedStore } from '../../src/auth/sharedStore';
import { bundleForChildProcess } from '../helpers/childBundle';

describe('the account store key of desktop windows starting at once (real processes)', function () {
  this.timeout(60_000);
  let dir: string;
  let program: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-storekey-'));
    program = bundleForChildProcess('test/extension/programs/keyWindow.ts', path.join(dir, 'keyWindow.js'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function runWindow(round: string, window: string, shared: Record<string, unknown>): Promise<{ window: string; key: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [program, JSON.stringify({ ...shared, window })], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(JSON.parse(out.trim()));
        else reject(new Error(`window ${window} of ${round} exited ${code}: ${err}`));
      });
    });
  }

  for (const windows of [2, 3]) {
    it(`${windows} windows that all look before any stores (keychain writes seen 2 s late by others): one key, and each reads the others' sessions`, async function () {
      const round = path.join(dir, `round-${windows}`);
      const shared = {
        keychainDir: path.join(round, 'keychain'), barrierDir: path.join(round, 'barrier'), agreementDir: path.join(round, 'keys'),
        storeDir: path.join(round, 'accounts'), parties: windows, barrierMs: 2_000, lagMs: 2_000,
      };
      for (const d of [shared.keychainDir, shared.barrierDir]) fs.mkdirSync(d, { recursive: true });
      const names = Array.from({ length: windows }, (_, i) => `w${i}`);
      const results = await Promise.all(names.map((w) => runWindow(round, w, shared)));

      const keys = new Set(results.map((r) => r.key));
      assert.equal(keys.size, 1, `windows ended with ${keys.size} different keys`);
      const key = Buffer.from(results[0].key, 'hex');
      // The keychain's last write is that key, and the agreement file names it.
      const writes = fs.readdirSync(shared.keychainDir).sort();
      const last = JSON.parse(fs.readFileSync(path.join(shared.keychainDir, writes[writes.length - 1]), 'utf8'));
      assert.equal(last.value, key.toString('base64'));
      assert.equal(writes.length, 1, 'exactly one window stored a key');
      assert.equal(fs.readFileSync(path.join(shared.agreementDir, 'store.key.id'), 'utf8').trim(), keyFingerprint(key));
      // Every window's session item decrypts with it.
      const store = new SharedStore(shared.storeDir, { getKey: async () => key });
      for (const w of names) assert.equal(await store.getItem(`from-${w}`), `written by ${w}`);
    });
  }
});
