// What the window's MCP server definition gets from WindowConnection (src/mcp/provider.ts asks it in
// resolveMcpServerDefinition), in plain Node against the GoTrue-compatible test server, the real
// daemon and Postgres: the window user's fresh token at the window's daemon, from the same
// refresh-or-adopt path as the WebSocket; a sentence (never a token) when signed out; the local
// secret and the bundled daemon in local mode. An MCP client with that bearer is that user.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Accounts, type Account } from '../../src/auth/accounts';
import { passwordFlow } from '../../src/auth/flows/password';
import { fileKeyProvider, SharedStore } from '../../src/auth/sharedStore';
import type { WindowUser } from '../../src/auth/windowUser';
import { parseConfig } from '../../src/config';
import { McpUnavailable, WindowConnection } from '../../src/daemon/windowConnection';
import { mcpUrlOf } from '../../src/mcp/definition';
import type { Status } from '../../src/ui/status';
import { readDiscovery } from '../../server/auth/localMode';
import { startAuthServer, type AuthServer } from '../auth-server/server';
import { DAEMON_JS, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { mcpConnect } from '../helpers/mcp';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import { JAZEEL } from '../helpers/tokens';
import pkg from '../../package.json';

const PASSWORD = 'mcp-bearer-pw';
const quiet = { info() {}, warn() {}, error() {}, addSecret() {} };
const textOf = (result: any) => (result.content as { text: string }[]).map((c) => c.text).join('');

describe('the MCP bearer of a window (WindowConnection.mcpBearer)', function () {
  this.timeout(30_000);
  let auth: AuthServer;
  let db: TestDatabase;
  let daemon: RunningDaemon;
  let dir: string;
  const stores: SharedStore[] = [];
  const connections: WindowConnection[] = [];
  const closers: (() => Promise<void>)[] = [];

  before(async function () {
    auth = await startAuthServer({ jwtExpirySec: 3600 });
    auth.createUser({ id: JAZEEL.id, email: JAZEEL.email, password: PASSWORD });
    db = await createTestDatabase();
    await db.addUser(JAZEEL.id, JAZEEL.email);
    daemon = await startDaemon({ env: { MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: auth.url, DATABASE_URL: db.url } });
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-mcp-bearer-'));
    auth.setJwtExpiry(3600);
  });
  afterEach(async function () {
    for (const c of connections.splice(0)) c.dispose();
    for (const close of closers.splice(0)) await close();
    for (const s of stores.splice(0)) s.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  after(async () => {
    await daemon?.stop();
    await auth?.close();
    await db?.drop();
  });

  /** One "window" (Accounts + WindowConnection as the extension wires them) whose user is `account()`. */
  const window = (config: ReturnType<typeof parseConfig>, account: () => Account | null) => {
    const store = new SharedStore(path.join(dir, 'accounts'), fileKeyProvider(path.join(dir, 'keys', 'store.key')));
    stores.push(store);
    const accounts = config.supabase ? new Accounts({ store, lockDir: path.join(dir, 'locks'), project: config.supabase, log: quiet }) : null;
    const windowUser = { get id() { return account()?.id ?? null; }, resolve: async () => account(), onDidChange: () => ({ dispose() {} }) } as unknown as WindowUser;
    const statuses: Status[] = [];
    const notified: string[] = [];
    const connection = new WindowConnection({
      config, accounts, windowUser: accounts ? windowUser : null, instance: 'mcp-bearer-test', version: pkg.version, log: quiet,
      launcher: { serverJs: DAEMON_JS, nodePath: process.execPath, stateDir: path.join(dir, 'daemon'), logDir: path.join(dir, 'daemon', 'logs'), expectedVersion: pkg.version, idleExitSec: 0 },
      onStatus: (s) => statuses.push(s),
      notify: (m) => notified.push(m),
    });
    connections.push(connection);
    return { accounts, connection, statuses, notified };
  };
  const supabase = () => parseConfig({ url: auth.url, anonKey: auth.anonKey, daemonUrl: daemon.url });
  const signIn = (accounts: Accounts) => accounts.signIn((client) => passwordFlow(JAZEEL.email, PASSWORD)(client, new AbortController().signal));
  const connectedStatus = async (statuses: Status[]) => {
    for (let i = 0; i < 200 && statuses.at(-1)?.kind !== 'connected'; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(statuses.at(-1)?.kind, 'connected', JSON.stringify(statuses.at(-1)));
  };
  const mcpAs = async (bearer: { daemonUrl: string; token: string }) => {
    const c = await mcpConnect(Number(new URL(mcpUrlOf(bearer.daemonUrl)).port), bearer.token, 'mcp-bearer-test');
    closers.push(() => c.close());
    return JSON.parse(textOf(await c.client.callTool({ name: 'whoami', arguments: {} })));
  };

  it("is the window user's stored token at the configured daemon; an MCP client with it is that user", async function () {
    let account: Account | null = null;
    const w = window(supabase(), () => account);
    account = await signIn(w.accounts!);
    const bearer = await w.connection.mcpBearer();
    assert.equal(bearer.daemonUrl, daemon.url);
    assert.equal(bearer.who, JAZEEL.email);
    assert.equal(bearer.token, (await w.accounts!.readSession(account.id))!.access_token);
    assert.deepEqual(await w.connection.mcpIdentity(), { mode: 'supabase', project: auth.url, accountId: JAZEEL.id, daemonUrl: daemon.url });
    const who = await mcpAs(bearer);
    assert.equal(who.email, JAZEEL.email);
  });

  it('shares one refresh with the WebSocket when both are due at once, and the WebSocket moves to the new token', async function () {
    auth.setJwtExpiry(3); // refresh margin: 1 s
    let account: Account | null = null;
    const w = window(supabase(), () => account);
    account = await signIn(w.accounts!);
    await w.connection.start();
    await connectedStatus(w.statuses);
    const first = (await w.accounts!.readSession(account.id))!;
    // Counted from before the refresh falls due: the window's own refresh timer fires at the same
    // moment, so the timer, the MCP bearer and refreshNow must together make exactly one /token request.
    auth.resetCounters();
    await new Promise((r) => setTimeout(r, Math.max(0, (first.expires_at! - 1) * 1000 + 100 - Date.now()))); // both are due now
    const [bearer] = await Promise.all([w.connection.mcpBearer(), w.connection.refreshNow()]);
    assert.equal(auth.refreshRequests(), 1, 'one /token request for the timer, the MCP bearer and refreshNow');
    assert.equal(auth.errorCounts()['refresh_token_already_used'] ?? 0, 0);
    const stored = (await w.accounts!.readSession(account.id))!;
    assert.notEqual(stored.access_token, first.access_token);
    assert.equal(bearer.token, stored.access_token);
    for (let i = 0; i < 100 && (w.statuses.at(-1) as { tokenExpiresAt?: number }).tokenExpiresAt !== stored.expires_at; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal((w.statuses.at(-1) as { tokenExpiresAt?: number }).tokenExpiresAt, stored.expires_at, 'the live connection re-authenticated with the same new token');
  });

  it('signed out: a sentence saying to sign in, no token, no daemon contacted', async function () {
    const w = window(parseConfig({ url: auth.url, anonKey: auth.anonKey }), () => null); // no team daemon: nothing may be started for a signed-out window
    const refused = await w.connection.mcpBearer().then(() => null, (err: Error) => err);
    assert.ok(refused instanceof McpUnavailable, String(refused));
    assert.equal(refused.action, 'signIn');
    assert.match(refused.message, /^Sign in to EXAI \(EXAI: Sign In, or EXAI: Switch User\) to use its tools in this window\.$/);
    assert.deepEqual(await w.connection.mcpIdentity(), { mode: 'supabase', project: auth.url, accountId: null, daemonUrl: null });
    assert.equal(readDiscovery(path.join(dir, 'daemon')), null, 'no bundled daemon was started');
  });

  it('an account signed out in another window: the sentence says so, and this window shows signed out', async function () {
    let account: Account | null = null;
    const w = window(supabase(), () => account);
    account = await signIn(w.accounts!);
    await w.connection.start();
    await connectedStatus(w.statuses);
    // Another window signs the account out; this window's user still names it until it notices.
    const other = new Accounts({ store: stores[0], lockDir: path.join(dir, 'locks'), project: supabase().supabase!, log: quiet });
    await other.signOut(account.id);
    auth.setJwtExpiry(3600);
    const refused = await w.connection.mcpBearer().then(() => null, (err: Error) => err);
    assert.ok(refused instanceof McpUnavailable, String(refused));
    assert.equal(refused.message, `${JAZEEL.email} is signed out. Sign in to EXAI (EXAI: Sign In, or EXAI: Switch User) to use its tools in this window.`);
    for (let i = 0; i < 100 && w.statuses.at(-1)?.kind !== 'signed_out'; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(w.statuses.at(-1)?.kind, 'signed_out');
  });

  it("local mode: the local secret at the bundled daemon, which the WebSocket and MCP share", async function () {
    const w = window(parseConfig({}), () => null);
    const [bearer] = await Promise.all([w.connection.mcpBearer(), w.connection.start()]);
    const discovery = readDiscovery(path.join(dir, 'daemon'))!;
    closers.push(async () => {
      try { process.kill(discovery.pid, 'SIGTERM'); } catch {}
    });
    assert.equal(bearer.daemonUrl, `ws://127.0.0.1:${discovery.port}/`);
    assert.equal(bearer.token, discovery.secret);
    assert.equal(bearer.who, 'local');
    await connectedStatus(w.statuses);
    assert.equal((w.statuses.at(-1) as { daemon?: string }).daemon, bearer.daemonUrl);
    const who = await mcpAs(bearer);
    assert.equal(who.mode, 'local');
    assert.match(who.user_id, /^local:/);
  });
});
