// One desktop "window" deciding the account store's key (src/auth/sharedStore.ts
// secretStorageKeyProvider), as its own process. Its SecretStorage is a keychain shared by every
// process of the test, with the two properties of desktop VS Code's that matter here:
//   - a window sees its own writes at once and another window's writes only `lagMs` later (each
//     window caches; updates reach it asynchronously), and the last write wins;
//   - nothing in it is a lock.
// To force the unfavourable interleaving, this window's first get() reads the keychain, then waits
// at a barrier until `parties` windows have read it too (or `barrierMs` passed), and only then
// returns what it read: so every window that gets that far looks before any of them can store.
// Then it encrypts an item with the key it ended up with. Prints {"window","key"} (hex: a test key).
// Usage: node keyWindow.js <json options>
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SharedStore, secretStorageKeyProvider, type SecretsLike } from '../../../src/auth/sharedStore';
import { sleep } from '../../helpers/wait';

const opts = JSON.parse(process.argv[2]) as {
  window: string;
  keychainDir: string;
  barrierDir: string;
  parties: number;
  barrierMs: number;
  lagMs: number;
  agreementDir: string;
  storeDir: string;
};

/** One file per write: `<ms>-<window>-<random>.json` holding the value (lock-free, ordered by time). */
class SharedKeychain implements SecretsLike {
  private arrived = false;

  async get(name: string): Promise<string | undefined> {
    const value = this.visible(name);
    if (!this.arrived) {
      this.arrived = true;
      fs.writeFileSync(path.join(opts.barrierDir, opts.window), '');
      const deadline = Date.now() + opts.barrierMs;
      while (fs.readdirSync(opts.barrierDir).length < opts.parties && Date.now() < deadline) await sleep(10);
    }
    return value;
  }

  async store(name: string, value: string): Promise<void> {
    const file = `${String(Date.now()).padStart(15, '0')}-${opts.window}-${crypto.randomBytes(4).toString('hex')}.json`;
    fs.writeFileSync(path.join(opts.keychainDir, file), JSON.stringify({ name, value }));
  }

  /** The newest write this window can see: its own at once, others' after lagMs. */
  private visible(name: string): string | undefined {
    let value: string | undefined;
    for (const file of fs.readdirSync(opts.keychainDir).sort()) {
      const [ms, writer] = file.split('-');
      if (writer !== opts.window && Number(ms) + opts.lagMs > Date.now()) continue;
      const entry = JSON.parse(fs.readFileSync(path.join(opts.keychainDir, file), 'utf8')) as { name: string; value: string };
      if (entry.name === name) value = entry.value;
    }
    return value;
  }
}

async function main() {
  const provider = secretStorageKeyProvider(new SharedKeychain(), opts.agreementDir);
  const key = await provider.getKey();
  const store = new SharedStore(opts.storeDir, provider, { useFsWatch: false });
  await store.setItem(`from-${opts.window}`, `written by ${opts.window}`);
  process.stdout.write(JSON.stringify({ window: opts.window, key: key.toString('hex') }) + '\n');
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
