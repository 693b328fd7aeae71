// Window A of the two-window MCP suite (run by test/e2e/mcpInHost.test.ts, beside windowB.test.ts):
// VS Code's own MCP client (workbench.mcp.startServer, vscode.lm.tools, vscode.lm.invokeTool) uses
// the EXAI server as this window's user. Tokens live EXAI_TEST_JWT_EXPIRY_SEC (short) here, and every
// /mcp request passes a recording proxy, so "no 401 ever reached VS Code" is checked on the wire.
import assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { ExaiApi } from '../../../src/extension';
import { answer, restoreUi, until } from '../ui';
import { env, exaiTools, invoke, mcpRecords, SERVER_ID, signal, startExai, startExaiUntilListed, waitForSignal, whoamiEmail } from './vscodeMcp';

const JAZEEL = { email: 'jazeel@example.com', password: env('EXAI_TEST_JAZEEL_PASSWORD') };
const MICHELLE = { email: 'michelle@example.com' };
const JWT_EXPIRY_SEC = Number(env('EXAI_TEST_JWT_EXPIRY_SEC'));
const SIGN_IN = /Sign in to EXAI \(EXAI: Sign In, or EXAI: Switch User\) to use its tools in this window\./;

describe('window A: the EXAI MCP server in VS Code runs as the window user', function () {
  let api: ExaiApi;
  const status = () => api.status();
  const connectedAs = (email: string) => until(`connected as ${email}`, () => status().kind === 'connected' && (status() as any).who === email, 30_000);

  before(async function () {
    api = await vscode.extensions.getExtension<ExaiApi>('exai.exai-vscode')!.activate();
  });
  afterEach(restoreUi);

  it('signed out: offers no usable server and says to sign in; nothing reaches the daemon (no 401, no OAuth dialog)', async function () {
    await until('signed-out status', () => status().kind === 'signed_out');
    await until('VS Code asked for the definitions', () => api.mcp.counts.provided > 0);
    const seen = answer({});
    // The first start may come before VS Code has the definition (then it does nothing): until one refuses.
    const started = await until('a start refused', () => startExai().then(() => undefined, (err: Error) => err.message));
    assert.match(started, SIGN_IN, 'VS Code reports why it could not start the server');
    assert.deepEqual(exaiTools().map((t) => t.name), [], 'no EXAI tools while signed out');
    const told = seen.filter((s) => s.kind === 'showWarningMessage');
    assert.equal(told.length, 1, JSON.stringify(seen));
    assert.match(told[0].text, SIGN_IN);
    // A second attempt says nothing new: one notification per signed-out spell, not one per tool.
    await startExai().catch(() => {});
    assert.equal(seen.filter((s) => s.kind === 'showWarningMessage').length, 1, JSON.stringify(seen));
    assert.deepEqual(await mcpRecords(), [], 'VS Code sent nothing to /mcp (or to OAuth discovery)');
  });

  it('signed in: the EXAI tools are listed and whoami returns the window user', async function () {
    answer({ pick: ['Email and password'], input: [JAZEEL.email, JAZEEL.password] });
    await vscode.commands.executeCommand('exai.signIn');
    await connectedAs(JAZEEL.email);
    restoreUi();
    const names = (await startExaiUntilListed()).map((t) => t.name).sort();
    for (const tool of ['whoami', 'sessions', 'echo', 'version', 'chat']) assert.ok(names.some((n) => n.endsWith(`_${tool}`)), `${tool} in ${names.join(', ')}`);
    assert.equal(await whoamiEmail(), JAZEEL.email);
    const initialize = (await mcpRecords()).find((r) => r.rpc === 'initialize');
    assert.equal(initialize?.bearer, JAZEEL.email, 'the session was opened with the window user\'s own token');
    signal('a-ready');
  });

  it('keeps working across several token refreshes with no 401 reaching VS Code; a long call across a refresh completes', async function () {
    this.timeout((JWT_EXPIRY_SEC * 4 + 60) * 1000);
    const firedBefore = api.mcp.counts.changesFired;
    const startedAt = Date.now();
    // Longer than a token lives: the daemon's session expires under it, and the call still completes.
    const longCall = invoke('echo', { text: 'the long call', delay_ms: (JWT_EXPIRY_SEC + 5) * 1000 }).then(
      (text) => ({ text, ms: Date.now() - startedAt }),
      (err: Error) => ({ error: `${err.name}: ${err.message}`, ms: Date.now() - startedAt }),
    );
    const answers: string[] = [];
    while (Date.now() - startedAt < (JWT_EXPIRY_SEC * 3 + 5) * 1000) {
      answers.push(await whoamiEmail().catch((err: Error) => `failed: ${err.name}: ${err.message}`));
      await new Promise((r) => setTimeout(r, 2000));
    }
    const long = await longCall;
    assert.deepEqual(long, { text: 'the long call', ms: long.ms }, JSON.stringify(long));
    assert.deepEqual(answers.filter((a) => a !== JAZEEL.email), [], `every call answered as ${JAZEEL.email}`);

    const records = (await mcpRecords()).filter((r) => r.at >= startedAt);
    assert.deepEqual(records.filter((r) => r.status === 401), [], 'no 401 reached VS Code');
    assert.deepEqual(records.filter((r) => r.path !== '/mcp').map((r) => r.path), [], 'no OAuth discovery');
    // Every session lives as long as its token: over three lifetimes, at least two new sessions, each
    // with the then-fresh token. (Window B's records are there too, as Michelle.)
    const inits = (await mcpRecords()).filter((r) => r.rpc === 'initialize' && r.status === 200 && r.bearer === JAZEEL.email);
    assert.ok(new Set(inits.map((r) => r.tokenId)).size >= 3, `sessions with refreshed tokens: ${JSON.stringify(inits)}`);
    assert.ok(records.some((r) => r.status === 404 && r.bearer === JAZEEL.email), 'an expired session was answered 404 (and VS Code started a new one)');
    assert.equal(api.mcp.counts.changesFired, firedBefore, 'a token refresh never fires the definition change (it would cancel calls)');
  });

  /** VS Code ended the session of `email` (DELETE) at or after `from`: what a definition change makes it do. */
  const sessionEnded = (email: string, from: number) =>
    until(`VS Code ending the session of ${email}`, async () => (await mcpRecords()).some((r) => r.at >= from && r.method === 'DELETE' && r.bearer === email && r.status === 200), 15_000);

  it('after Switch User, VS Code ends the old user\'s session and whoami returns the new user', async function () {
    await waitForSignal('b-signed-in'); // window B signed Michelle in
    const from = Date.now();
    const fired = api.mcp.counts.changesFired;
    answer({ pick: [MICHELLE.email] });
    await vscode.commands.executeCommand('exai.switchUser');
    await connectedAs(MICHELLE.email);
    restoreUi();
    await sessionEnded(JAZEEL.email, from);
    assert.equal(api.mcp.counts.changesFired, fired + 1, 'one definition change for one switch');
    for (let i = 0; i < 3; i++) assert.equal(await whoamiEmail(), MICHELLE.email);
  });

  it("signing the window's account out: VS Code ends its session; no usable server, it says to sign in, never a 401", async function () {
    await waitForSignal('b-done');
    const from = Date.now();
    const seen = answer({ pick: [MICHELLE.email] });
    await vscode.commands.executeCommand('exai.signOut');
    await until('signed out', () => status().kind === 'signed_out');
    await sessionEnded(MICHELLE.email, from);
    const error = await invoke('whoami').then((text) => `answered: ${text}`, (err: Error) => err.message);
    assert.match(error, SIGN_IN);
    assert.ok(seen.some((s) => s.kind === 'showWarningMessage' && SIGN_IN.test(s.text)), JSON.stringify(seen));
    assert.deepEqual((await mcpRecords()).filter((r) => r.at >= from && r.status === 401), []);
  });

  it('local mode works the same, with the local secret', async function () {
    const config = vscode.workspace.getConfiguration('exai');
    const previous = { url: config.get<string>('supabase.url'), key: config.get<string>('supabase.anonKey'), daemon: config.get<string>('daemon.url') };
    try {
      for (const key of ['supabase.url', 'supabase.anonKey', 'daemon.url']) await config.update(key, undefined, vscode.ConfigurationTarget.Global);
      await until('local connection', () => status().kind === 'connected' && (status() as any).mode === 'local', 30_000);
      const who = await until('whoami in local mode', () => invoke('whoami').then((t) => JSON.parse(t), () => undefined), 30_000);
      assert.equal(who.mode, 'local');
      assert.match(who.user_id, /^local:/);
      // Stop Server ends the session (DELETE): the bundled daemon may then exit when unused, as it does without MCP.
      const health = new URL('/health', (status() as { daemon: string }).daemon.replace(/^ws/, 'http')).toString();
      await vscode.commands.executeCommand('workbench.mcp.stopServer', SERVER_ID);
      await until('the MCP session ended', async () => ((await (await fetch(health)).json()) as { mcp_sessions: number }).mcp_sessions === 0, 15_000);
    } finally {
      await config.update('supabase.url', previous.url, vscode.ConfigurationTarget.Global);
      await config.update('supabase.anonKey', previous.key, vscode.ConfigurationTarget.Global);
      await config.update('daemon.url', previous.daemon, vscode.ConfigurationTarget.Global);
    }
  });
});
