// Signed-in accounts' Supabase sessions, stored as encrypted files that every VS Code window sees live.
//
// Why files and not SecretStorage: each VS Code window is its own extension-host process. In
// code-server, SecretStorage is per browser profile and cached per window, so another window never
// sees an update until it reloads; `globalStorageUri`, by contrast, is one folder on the extension
// host's machine shared by all windows. Supabase refresh tokens rotate (an old one reused after 10 s
// revokes the whole session family), so every window must read the newest session, from disk, every
// time. supabase-js (one client per account, each with its own storageKey) uses a SharedStore as its
// `storage`.
//
// Plain Node on purpose (no 'vscode' import): unit-tested, and used by several extension hosts.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { withFileLock } from './refreshLock';

/** Supplies the 32-byte AES-256-GCM key that encrypts the store's files. */
export interface KeyProvider {
  getKey(): Promise<Buffer>;
}

const KEY_BYTES = 32;
const IV_BYTES = 12;

/** Directory modes are owner-only; best effort (no-op on Windows, may fail on foreign-owned dirs). */
function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    fs.chmodSync(dir, 0o700);
  } catch {
    /* not ours to change; the files themselves are still 0600 */
  }
}

function randomSuffix(): string {
  return crypto.randomBytes(6).toString('hex');
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The key lives in a file next to the store (for code-server / remote hosts, where SecretStorage is
 * not shared between windows). Created race-free: a complete temp file is hard-linked into place, so
 * of two processes creating it at once exactly one wins and the other adopts the winner's key.
 */
export function fileKeyProvider(file: string): KeyProvider {
  let pending: Promise<Buffer> | undefined;
  return {
    getKey() {
      // Cached after the first read: the key never changes while the files exist.
      pending ??= loadOrCreateKeyFile(file).catch((err) => {
        pending = undefined; // let a later call retry (e.g. the disk was briefly unavailable)
        throw err;
      });
      return pending;
    },
  };
}

async function loadOrCreateKeyFile(file: string): Promise<Buffer> {
  ensurePrivateDir(path.dirname(file));
  // Bounded: a short or empty file is only ever seen via the non-atomic fallback below, while its
  // creator is still writing 32 bytes.
  for (let attempt = 0; attempt < 50; attempt++) {
    const existing = readKeyFile(file);
    if (existing === 'missing') {
      createKeyFile(file);
      continue; // read back whichever key won
    }
    if (existing.length === KEY_BYTES) return existing;
    await sleep(20);
  }
  throw new Error(`SharedStore: key file ${file} is not ${KEY_BYTES} bytes; delete it to start over (stored sessions will be lost)`);
}

function readKeyFile(file: string): Buffer | 'missing' {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return 'missing';
    throw err;
  }
}

/** Creates `file` with a fresh key unless it already exists (then leaves it alone). */
function createKeyFile(file: string): void {
  const key = crypto.randomBytes(KEY_BYTES);
  const tmp = `${file}.${process.pid}.${randomSuffix()}.tmp`;
  try {
    const fd = fs.openSync(tmp, 'wx', 0o600);
    try {
      fs.writeSync(fd, key);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    try {
      fs.linkSync(tmp, file); // atomic and never replaces: EEXIST means another process won
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'EEXIST') return;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw err;
      // Filesystem without hard links: exclusive create instead (readers retry on a short file).
      let fd2: number;
      try {
        fd2 = fs.openSync(file, 'wx', 0o600);
      } catch (err2) {
        if (errnoCode(err2) === 'EEXIST') return;
        throw err2;
      }
      try {
        fs.writeSync(fd2, key);
        fs.fsyncSync(fd2);
      } finally {
        fs.closeSync(fd2);
      }
    }
  } finally {
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* already gone */
    }
  }
}

/** What `secretStorageKeyProvider` needs of `vscode.SecretStorage` (Thenable is a PromiseLike). */
export interface SecretsLike {
  get(key: string): PromiseLike<string | undefined>;
  store(key: string, value: string): PromiseLike<void>;
}

function decodeStoredKey(value: string | undefined): Buffer | undefined {
  if (!value) return undefined;
  const key = Buffer.from(value, 'base64');
  return key.length === KEY_BYTES ? key : undefined;
}

/** Names a key without revealing it (SHA-256 of a random 256-bit key). */
export function keyFingerprint(key: Buffer): string {
  return crypto.createHash('sha256').update('exai-store-key\0').update(key).digest('hex');
}

export interface SecretKeyOptions {
  /** The secret's name in SecretStorage. */
  name?: string;
  /** How long to wait for SecretStorage to show the key another window stored. Default 10 s. */
  propagationMs?: number;
  /** Said when the keychain no longer holds the agreed key (the sessions it encrypted are lost). */
  onWarning?: (message: string) => void;
}

/**
 * For desktop VS Code, whose SecretStorage is the OS keychain shared by all windows. SecretStorage is
 * not a lock: it has no create-if-absent, and a window sees another window's write only a little
 * later (each window caches). So two windows that both find no key would each store their own, and
 * each would go on reading its own. Agreement comes from the filesystem instead: under a
 * cross-process lock in `agreementDir`, the first window stores its key and then writes the key's
 * fingerprint (`store.key.id`, never the key); every later window reads the fingerprint and uses
 * only the key that matches it, waiting (bounded) for SecretStorage to show it.
 */
export function secretStorageKeyProvider(secrets: SecretsLike, agreementDir: string, opts: SecretKeyOptions = {}): KeyProvider {
  const name = opts.name ?? 'exai.sessionStoreKey';
  const propagationMs = opts.propagationMs ?? 10_000;
  const idFile = path.join(agreementDir, 'store.key.id');
  const read = async () => decodeStoredKey(await secrets.get(name));

  const decide = async (): Promise<Buffer> => {
    const agreed = readIdFile(idFile);
    if (agreed) {
      const deadline = Date.now() + propagationMs;
      for (;;) {
        const key = await read();
        if (key && keyFingerprint(key) === agreed) return key;
        if (Date.now() >= deadline) break;
        await sleep(100);
      }
      opts.onWarning?.(`the session store key named in ${idFile} is no longer in the OS keychain; stored sessions cannot be read, sign in again`);
    }
    // No agreement yet (first window ever, or a key stored by an older version), or the agreed key
    // is gone: adopt what the keychain holds, else create one. Then record the agreement.
    let key = await read();
    if (!key) {
      key = crypto.randomBytes(KEY_BYTES);
      await secrets.store(name, key.toString('base64'));
    }
    writeIdFile(idFile, keyFingerprint(key));
    return key;
  };
  let pending: Promise<Buffer> | undefined;
  return {
    getKey() {
      pending ??= (async () => {
        ensurePrivateDir(agreementDir);
        const bound = propagationMs + 20_000;
        return withFileLock(path.join(agreementDir, 'store.key.lock'), decide, { timeoutMs: bound, staleMs: bound });
      })().catch((err) => {
        pending = undefined;
        throw err;
      });
      return pending;
    },
  };
}

function readIdFile(file: string): string | undefined {
  try {
    const id = fs.readFileSync(file, 'utf8').trim();
    return /^[0-9a-f]{64}$/.test(id) ? id : undefined;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** Atomic (temp file + rename): a reader sees the old fingerprint or the new one, never a part. */
function writeIdFile(file: string, id: string): void {
  const tmp = `${file}.${process.pid}.${randomSuffix()}.tmp`;
  fs.writeFileSync(tmp, `${id}\n`, { mode: 0o600, flag: 'wx' });
  fs.renameSync(tmp, file);
}

// ---- file names ---------------------------------------------------------------------------------

const SAFE_BYTE = /^[A-Za-z0-9._-]$/;
const ENCODED_NAME = /^(?:[A-Za-z0-9._-]|%[0-9A-F]{2})*$/;
const SUFFIX = '.json';

/** Keeps [A-Za-z0-9._-], percent-encodes every other UTF-8 byte: reversible, safe on every filesystem. */
export function encodeKeyName(key: string): string {
  let out = '';
  for (const byte of Buffer.from(key, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += byte < 0x80 && SAFE_BYTE.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The key a store file name stands for, or undefined for files that are not ours. */
export function decodeKeyName(name: string): string | undefined {
  if (!ENCODED_NAME.test(name)) return undefined;
  let key: string;
  try {
    key = decodeURIComponent(name);
  } catch {
    return undefined;
  }
  return encodeKeyName(key) === name ? key : undefined; // only canonical names (one file per key)
}

function keyOfFile(fileName: string): string | undefined {
  if (!fileName.endsWith(SUFFIX)) return undefined; // also skips `<file>.<pid>.<random>.tmp`
  return decodeKeyName(fileName.slice(0, -SUFFIX.length));
}

// ---- the store ----------------------------------------------------------------------------------

interface Envelope {
  v: 1;
  iv: string;
  tag: string;
  data: string;
}

export interface SharedStoreOptions {
  /** Unreadable files, watcher and listener failures. Messages never contain stored values. */
  onError?: (err: Error) => void;
  /** Fallback poll period for watch() (fs.watch can miss events on some filesystems). Default 2000. */
  pollIntervalMs?: number;
  /** Set false to rely on polling only (tests; filesystems where fs.watch misbehaves). Default true. */
  useFsWatch?: boolean;
}

const DEBOUNCE_MS = 50;

/**
 * supabase-js `storage` backed by one encrypted file per key in `dir` (AES-256-GCM, the key name as
 * additional data, so a file copied or renamed to another key's name fails to decrypt).
 */
export class SharedStore {
  private readonly onError: (err: Error) => void;
  private readonly pollIntervalMs: number;
  private readonly useFsWatch: boolean;
  private readonly listeners = new Set<(key: string) => void>();
  private watcher: fs.FSWatcher | undefined;
  private watchedDirIno: number | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private polling = false;
  /** file name -> "ino:size:mtime" as last seen, for the poll fallback. */
  private readonly seen = new Map<string, string>();
  private readonly debounce = new Map<string, NodeJS.Timeout>();
  private disposed = false;

  constructor(
    private readonly dir: string,
    private readonly keyProvider: KeyProvider,
    opts: SharedStoreOptions = {},
  ) {
    this.onError = opts.onError ?? (() => {});
    this.pollIntervalMs = opts.pollIntervalMs ?? 2000;
    this.useFsWatch = opts.useFsWatch ?? true;
    ensurePrivateDir(dir); // exists before anyone watches it
  }

  private fileFor(key: string): string {
    return path.join(this.dir, encodeKeyName(key) + SUFFIX);
  }

  private report(err: Error): void {
    try {
      this.onError(err);
    } catch {
      /* a failing reporter must not break storage */
    }
  }

  /** Always reads the file (no cache): another window may have written it a moment ago. */
  async getItem(key: string): Promise<string | null> {
    let raw: string;
    try {
      raw = await fs.promises.readFile(this.fileFor(key), 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return null;
      this.report(new Error(`SharedStore: cannot read "${key}" (${errnoCode(err) ?? 'error'})`));
      return null;
    }
    let secret: Buffer;
    try {
      secret = await this.keyProvider.getKey();
    } catch (err) {
      this.report(new Error(`SharedStore: no encryption key, cannot read "${key}": ${(err as Error).message}`));
      return null;
    }
    // Never include the file's content or JSON.parse's message (it quotes the input) in errors.
    let env: Envelope;
    try {
      env = JSON.parse(raw) as Envelope;
    } catch {
      this.report(new Error(`SharedStore: "${key}" is not valid JSON; ignoring it`));
      return null;
    }
    try {
      if (!env || env.v !== 1 || typeof env.iv !== 'string' || typeof env.tag !== 'string' || typeof env.data !== 'string') {
        throw new Error('bad envelope');
      }
      const decipher = crypto.createDecipheriv('aes-256-gcm', secret, Buffer.from(env.iv, 'base64'));
      decipher.setAAD(Buffer.from(key, 'utf8'));
      decipher.setAuthTag(Buffer.from(env.tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(env.data, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      this.report(new Error(`SharedStore: cannot decrypt "${key}" (other key, tampered, or renamed file); ignoring it`));
      return null;
    }
  }

  /** Atomic (temp file, fsync, rename): a reader in another window sees the old or the new value, never half. */
  async setItem(key: string, value: string): Promise<void> {
    const secret = await this.keyProvider.getKey();
    const iv = crypto.randomBytes(IV_BYTES);
    const cipher = crypto.createCipheriv('aes-256-gcm', secret, iv);
    cipher.setAAD(Buffer.from(key, 'utf8'));
    const data = Buffer.concat([cipher.update(String(value), 'utf8'), cipher.final()]);
    const env: Envelope = { v: 1, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
    const file = this.fileFor(key);
    const tmp = `${file}.${process.pid}.${randomSuffix()}.tmp`;
    try {
      let handle: fs.promises.FileHandle;
      try {
        handle = await fs.promises.open(tmp, 'wx', 0o600);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
        ensurePrivateDir(this.dir); // someone removed the folder; recreate it
        handle = await fs.promises.open(tmp, 'wx', 0o600);
      }
      try {
        await handle.writeFile(JSON.stringify(env));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await renameWithRetry(tmp, file);
    } catch (err) {
      await fs.promises.unlink(tmp).catch(() => {});
      throw err;
    }
  }

  async removeItem(key: string): Promise<void> {
    try {
      await fs.promises.unlink(this.fileFor(key));
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
  }

  /** Stored keys starting with `prefix`, sorted. */
  async keys(prefix = ''): Promise<string[]> {
    let names: string[];
    try {
      names = await fs.promises.readdir(this.dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw err;
    }
    const keys: string[] = [];
    for (const name of names) {
      const key = keyOfFile(name);
      if (key !== undefined && key.startsWith(prefix)) keys.push(key);
    }
    return keys.sort();
  }

  /**
   * Calls `listener(key)` shortly after a key's file changes or disappears, whoever changed it (this
   * process included: consumers compare contents). fs.watch for speed, plus a cheap mtime poll because
   * fs.watch misses events on some filesystems (network mounts, some containers).
   */
  watch(listener: (key: string) => void): { dispose(): void } {
    if (this.disposed) return { dispose() {} };
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.startWatching();
    return {
      dispose: () => {
        if (this.listeners.delete(listener) && this.listeners.size === 0) this.stopWatching();
      },
    };
  }

  /** Stops watching and emitting; get/set/remove keep working. */
  dispose(): void {
    this.disposed = true;
    this.listeners.clear();
    this.stopWatching();
  }

  private startWatching(): void {
    this.seen.clear();
    this.snapshotSync(); // so the first poll only reports changes made after watch() returned
    this.armWatcher();
    this.pollTimer = setInterval(() => void this.poll(), this.pollIntervalMs);
    this.pollTimer.unref();
  }

  private stopWatching(): void {
    this.disarmWatcher();
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    for (const t of this.debounce.values()) clearTimeout(t);
    this.debounce.clear();
    this.seen.clear();
  }

  private armWatcher(): void {
    if (!this.useFsWatch || this.watcher) return;
    try {
      this.watchedDirIno = fs.statSync(this.dir).ino;
      const w = fs.watch(this.dir, { persistent: false }, (_event, fileName) => {
        if (fileName == null) return void this.poll(); // platform did not say which file
        this.schedule(String(fileName));
      });
      w.on('error', (err) => {
        this.report(new Error(`SharedStore: watching ${this.dir} failed (${errnoCode(err) ?? err.message}); polling only`));
        this.disarmWatcher(); // the poll re-arms it once the folder is back
      });
      this.watcher = w;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') this.report(new Error(`SharedStore: cannot watch ${this.dir} (${errnoCode(err) ?? 'error'}); polling only`));
    }
  }

  private disarmWatcher(): void {
    try {
      this.watcher?.close();
    } catch {
      /* already closed */
    }
    this.watcher = undefined;
    this.watchedDirIno = undefined;
  }

  /** Debounced per file: at most one emit per key per ~50 ms, fired from the first event. */
  private schedule(fileName: string): void {
    if (this.listeners.size === 0 || this.debounce.has(fileName)) return;
    const key = keyOfFile(fileName);
    if (key === undefined) return; // temp files and strangers
    const timer = setTimeout(() => void this.emit(fileName, key), DEBOUNCE_MS);
    timer.unref();
    this.debounce.set(fileName, timer);
  }

  private async emit(fileName: string, key: string): Promise<void> {
    this.debounce.delete(fileName);
    // Record what we are reporting so the poll does not report the same change again.
    try {
      this.seen.set(fileName, signature(await fs.promises.stat(path.join(this.dir, fileName))));
    } catch {
      this.seen.delete(fileName);
    }
    for (const listener of [...this.listeners]) {
      try {
        listener(key);
      } catch (err) {
        this.report(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  private snapshotSync(): void {
    try {
      for (const name of fs.readdirSync(this.dir)) {
        if (keyOfFile(name) === undefined) continue;
        try {
          this.seen.set(name, signature(fs.statSync(path.join(this.dir, name))));
        } catch {
          /* removed meanwhile */
        }
      }
    } catch {
      /* folder missing: everything that appears later is a change */
    }
  }

  private async poll(): Promise<void> {
    if (this.polling || this.listeners.size === 0) return;
    this.polling = true;
    try {
      let names: string[] = [];
      try {
        const dirIno = (await fs.promises.stat(this.dir)).ino;
        if (this.watcher && dirIno !== this.watchedDirIno) this.disarmWatcher(); // folder replaced
        if (!this.watcher && this.listeners.size > 0) this.armWatcher();
        names = await fs.promises.readdir(this.dir);
      } catch {
        this.disarmWatcher(); // folder gone: report removals, re-arm when it returns
      }
      const present = new Set<string>();
      for (const name of names) {
        if (keyOfFile(name) === undefined) continue;
        present.add(name);
        let sig: string;
        try {
          sig = signature(await fs.promises.stat(path.join(this.dir, name)));
        } catch {
          continue; // removed meanwhile; handled next time
        }
        if (this.seen.get(name) !== sig) {
          this.seen.set(name, sig);
          this.schedule(name);
        }
      }
      for (const name of [...this.seen.keys()]) {
        if (!present.has(name)) {
          this.seen.delete(name);
          this.schedule(name);
        }
      }
    } finally {
      this.polling = false;
    }
  }
}

/** Atomic replacement gives a new inode, so ino catches writes within one mtime tick. */
function signature(st: fs.Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}`;
}

/** On Windows a rename over a file another window is reading can fail briefly; retry a few times. */
async function renameWithRetry(from: string, to: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.promises.rename(from, to);
      return;
    } catch (err) {
      const code = errnoCode(err);
      if (attempt >= 9 || (code !== 'EPERM' && code !== 'EACCES' && code !== 'EBUSY')) throw err;
      await sleep(10 * (attempt + 1));
    }
  }
}
