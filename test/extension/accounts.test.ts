// src/auth/accounts.ts against the GoTrue-compatible test server, in plain Node: several
// "windows" (Accounts instances, and separate processes) sharing one store directory.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildSync } from 'esbuild';
import { Accounts, RefreshUnavailableError, SignedOutError } from '../../src/auth/accounts';
import { passwordFlow } from '../../src/auth/flows/password';
import { fileKeyProvider, SharedStore } from '../../src/auth/sharedStore';
import { startAuthServer, type AuthServer } from '../auth-server/server';
import { sleep } from '../helpers/wait';

const EMAIL = 'jazeel@example.com';
const PASSWORD = 'accounts-test-pw';
const quiet = { info() {}, warn() {} };
const password = () => (client: Parameters<ReturnType<typeof passwordFlow>>[0]) => passwordFlow(EMAIL, PASSWORD)(client, new AbortController().signal);

describe('Accounts (shared store + refresh lock) against the test auth server', function () {
  this.timeout(30_000);
  let auth: AuthServer;
  let dir: string;
  const stores: SharedStore[] = [];

  /** One "window": its own store object and Accounts on the shared directory. */
  const window = () => {
    const store = new SharedStore(path.join(dir, 'accounts'), fileKeyProvider(path.join(dir, 'keys', 'store.key')));
    stores.push(store);
    return new Accounts({ store, lockDir: path.join(dir, 'locks'), project: { url: auth.url, anonKey: auth.anonKey }, log: quiet });
  };

  beforeEach(async function () {
    auth = await startAuthServer({ jwtExpirySec: 3600 });
    auth.createUser({ email: EMAIL, password: PASSWORD });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-accounts-'));
  });
  afterEach(async function () {
    for (const s of stores.splice(0)) s.dispose();
    await auth.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('signs in, stores the session encrypted, and lists the account in every window', async function () {
    const a = window();
    const account = await a.signIn(password());
    assert.equal(account.email, EMAIL);
    assert.deepEqual((await window().list()).map((x) => x.email), [EMAIL]);
    const onDisk = fs.readdirSync(path.join(dir, 'accounts')).map((f) => fs.readFileSync(path.join(dir, 'accounts', f), 'utf8')).join('');
    const session = (await a.readSession(account.id))!;
    assert.ok(!onDisk.includes(session.refresh_token) && !onDisk.includes(session.access_token), 'tokens are encrypted at rest');
  });

  it('returns a fresh stored session without a refresh request', async function () {
    const a = window();
    const account = await a.signIn(password());
    auth.resetCounters();
    await a.freshSession(account.id);
    assert.equal(auth.refreshRequests(), 0);
  });

  it('two windows due at once: one refreshes, the other adopts (one /token request, same token)', async function () {
    auth.setJwtExpiry(2); // refresh margin = 1 s
    const a = window();
    const b = window();
    const account = await a.signIn(password());
    await sleep(1200);
    auth.resetCounters();
    const [sa, sb] = await Promise.all([a.freshSession(account.id), b.freshSession(account.id)]);
    assert.equal(sa.access_token, sb.access_token);
    assert.equal(auth.refreshRequests(), 1);
    assert.equal(auth.errorCounts()['refresh_token_already_used'] ?? 0, 0);
  });

  it('four processes due at once: exactly one refresh, all adopt it', async function () {
    auth.setJwtExpiry(2);
    const account = await window().signIn(password());
    const child = path.join(dir, 'child.js');
    buildSync({
      stdin: {
        contents: `
          const { Accounts } = require(${JSON.stringify(path.resolve('src/auth/accounts.ts'))});
          const { SharedStore, fileKeyProvider } = require(${JSON.stringify(path.resolve('src/auth/sharedStore.ts'))});
          const [dir, url, anonKey, id, at] = process.argv.slice(2);
          const store = new SharedStore(dir + '/accounts', fileKeyProvider(dir + '/keys/store.key'));
          const accounts = new Accounts({ store, lockDir: dir + '/locks', project: { url, anonKey }, log: { info() {}, warn() {} } });
          setTimeout(async () => {
            const s = await accounts.freshSession(id);
            console.log(s.access_token);
            store.dispose();
          }, Number(at) - Date.now());`,
        resolveDir: process.cwd(),
        loader: 'ts',
      },
      bundle: true, platform: 'node', format: 'cjs', outfile: child, logLevel: 'silent', external: ['esbuild'],
    });
    await sleep(1100);
    auth.resetCounters();
    const at = String(Date.now() + 800); // all four start their refresh at the same moment
    const tokens = await Promise.all(Array.from({ length: 4 }, () => new Promise<string>((resolve, reject) => {
      const p = spawn(process.execPath, [child, dir, auth.url, auth.anonKey, account.id, at], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (err += d));
      p.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(err))));
    })));
    assert.equal(new Set(tokens).size, 1, 'every process ends with the same access token');
    assert.equal(auth.refreshRequests(), 1);
    assert.equal(auth.errorCounts()['refresh_token_already_used'] ?? 0, 0);
  });

  it('a revoked session signs the account out clearly (not a loop) and removes it for every window', async function () {
    auth.setJwtExpiry(2);
    const a = window();
    const account = await a.signIn(password());
    const session = (await a.readSession(account.id))!;
    // Signed out elsewhere (e.g. "sign out everywhere" on another device): the session row goes.
    const res = await fetch(`${auth.url}/auth/v1/logout?scope=global`, { method: 'POST', headers: { apikey: auth.anonKey, authorization: `Bearer ${session.access_token}` } });
    assert.equal(res.status, 204);
    await sleep(1100);
    await assert.rejects(a.freshSession(account.id), (err: Error) => err instanceof SignedOutError && /jazeel@example\.com was signed out .*Sign in again/.test(err.message));
    assert.deepEqual(await window().list(), []);
    auth.resetCounters();
    await assert.rejects(a.freshSession(account.id), SignedOutError);
    assert.equal(auth.refreshRequests(), 0, 'no further refresh attempts');
  });

  it('Supabase unreachable: the session is kept and the error says so', async function () {
    auth.setJwtExpiry(2);
    const a = window();
    const account = await a.signIn(password());
    await sleep(1100);
    await auth.close();
    await assert.rejects(a.freshSession(account.id), (err: Error) => err instanceof RefreshUnavailableError && /Can't reach Supabase/.test(err.message));
    assert.ok(await a.readSession(account.id), 'still signed in');
    auth = await startAuthServer(); // for afterEach
  });

  it('sign-out removes the account everywhere and ends the session on the server', async function () {
    const a = window();
    const account = await a.signIn(password());
    const sessionId = JSON.parse(Buffer.from((await a.readSession(account.id))!.access_token.split('.')[1], 'base64url').toString()).session_id;
    assert.equal(auth.sessionExists(sessionId), true);
    await window().signOut(account.id);
    assert.equal(await a.readSession(account.id), null);
    assert.equal(auth.sessionExists(sessionId), false);
  });

  it('signing in again as the same user replaces the old session and revokes it on the server', async function () {
    const a = window();
    const first = await a.signIn(password());
    const oldSessionId = JSON.parse(Buffer.from((await a.readSession(first.id))!.access_token.split('.')[1], 'base64url').toString()).session_id;
    await a.signIn(password());
    assert.deepEqual((await a.list()).map((x) => x.email), [EMAIL]);
    for (let i = 0; i < 50 && auth.sessionExists(oldSessionId); i++) await sleep(20);
    assert.equal(auth.sessionExists(oldSessionId), false);
  });
});
