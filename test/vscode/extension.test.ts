// Runs INSIDE the real VS Code extension host (code-server 1.117), against the real vscode API,
// the GoTrue-compatible test server, the real daemon (supabase mode) and Postgres. The outer
// runner (test/e2e/inHost.test.ts) starts those and passes their addresses in EXAI_TEST_* env.
// UI prompts are answered by replacing vscode.window's prompt functions for one step at a time.
import assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { ExaiApi } from '../../src/extension';
import { sleep } from '../helpers/wait';
import { answer, restoreUi, until } from './ui';

const env = (name: string) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set; run this suite through test/e2e/inHost.test.ts`);
  return v;
};
const JAZEEL = { email: 'jazeel@example.com', password: env('EXAI_TEST_JAZEEL_PASSWORD') };
const MICHELLE = { email: 'michelle@example.com', password: env('EXAI_TEST_MICHELLE_PASSWORD') };

describe('EXAI extension in a real VS Code extension host', function () {
  let api: ExaiApi;
  const status = () => api.status();
  const connectedAs = (email: string) => until(`connected as ${email}`, () => status().kind === 'connected' && (status() as any).who === email);

  before(async function () {
    const ext = vscode.extensions.getExtension<ExaiApi>('exai.exai-vscode');
    assert.ok(ext, 'the extension is installed from extensionDevelopmentPath');
    api = await ext!.activate();
  });
  afterEach(restoreUi);

  it('runs on VS Code >= 1.101 and contributes its commands and authentication provider', async function () {
    const [major, minor] = vscode.version.split('.').map(Number);
    assert.ok(major > 1 || minor >= 101, vscode.version);
    const commands = await vscode.commands.getCommands(true);
    for (const c of ['exai.signIn', 'exai.signOut', 'exai.switchUser', 'exai.reconnect', 'exai.showLog', 'exai.showSessions', 'exai.setProviderKey']) assert.ok(commands.includes(c), c);
    assert.deepEqual(await vscode.authentication.getAccounts('exai'), []);
  });

  it("refuses to put the project and daemon settings in workspace settings: they are the user's alone", async function () {
    const config = vscode.workspace.getConfiguration('exai');
    for (const key of ['supabase.url', 'supabase.anonKey', 'daemon.url']) {
      await assert.rejects(Promise.resolve(config.update(key, 'ws://127.0.0.1:9/', vscode.ConfigurationTarget.Workspace)), /User settings/i, key);
      assert.equal(config.inspect(key)?.workspaceValue, undefined, key);
    }
  });

  it('starts signed out with a status that offers to sign in', async function () {
    await until('signed-out status', () => status().kind === 'signed_out');
  });

  it('says "Wrong email or password." for a wrong password, and stays signed out', async function () {
    const seen = answer({ pick: ['Email and password'], input: [JAZEEL.email, 'not-the-password'] });
    await vscode.commands.executeCommand('exai.signIn');
    const error = await until('an error message', () => seen.find((s) => s.kind === 'showErrorMessage'));
    assert.equal(error.text, 'EXAI: Wrong email or password.');
    assert.equal(status().kind, 'signed_out');
  });

  it('says to confirm the email first for an unconfirmed account', async function () {
    const supabaseUrl = vscode.workspace.getConfiguration('exai').get<string>('supabase.url')!;
    await fetch(`${supabaseUrl}/__test/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'new@example.com', password: 'new-Passw0rd', confirmed: false }) });
    const seen = answer({ pick: ['Email and password'], input: ['new@example.com', 'new-Passw0rd'] });
    await vscode.commands.executeCommand('exai.signIn');
    const error = await until('an error message', () => seen.find((s) => s.kind === 'showErrorMessage'));
    assert.match(error.text, /Confirm your email first: open the link Supabase sent to new@example\.com/);
  });

  it("says Supabase can't be reached when the project URL does not answer", async function () {
    const config = vscode.workspace.getConfiguration('exai');
    const previous = config.get<string>('supabase.url');
    try {
      await config.update('supabase.url', 'http://127.0.0.1:9', vscode.ConfigurationTarget.Global);
      await until('the new setting', () => status().kind === 'signed_out');
      const seen = answer({ pick: ['Email and password'], input: [JAZEEL.email, JAZEEL.password] });
      await vscode.commands.executeCommand('exai.signIn');
      const error = await until('an error message', () => seen.find((s) => s.kind === 'showErrorMessage'));
      assert.match(error.text, /Can't reach Supabase at http:\/\/127\.0\.0\.1:9\. Check your network connection and the exai\.supabase\.url setting\./);
    } finally {
      await config.update('supabase.url', previous, vscode.ConfigurationTarget.Global);
    }
  });

  it('cancelling a prompt ends the sign-in quietly (no error, still signed out)', async function () {
    // The email code flow: the code prompt is dismissed (Escape) after Supabase mailed the code.
    const seen = answer({ pick: ['Email one-time code'], input: [JAZEEL.email, undefined as unknown as string] });
    await vscode.commands.executeCommand('exai.signIn');
    await sleep(300);
    assert.deepEqual(seen.filter((s) => s.kind === 'showErrorMessage'), []);
    assert.equal(status().kind, 'signed_out');
    assert.deepEqual(await vscode.authentication.getAccounts('exai'), []);
  });

  it('signs in with email and password: account in the Accounts menu, window connected as the user', async function () {
    const seen = answer({ pick: ['Email and password'], input: [JAZEEL.email, JAZEEL.password] });
    await vscode.commands.executeCommand('exai.signIn');
    await connectedAs(JAZEEL.email);
    assert.ok(seen.some((s) => s.kind === 'input' && /Password for jazeel@example\.com/.test(s.text)), 'asked for the password');
    const accounts = await vscode.authentication.getAccounts('exai');
    assert.deepEqual(accounts.map((a) => a.label), [JAZEEL.email]);
    const s = status();
    assert.ok(s.kind === 'connected' && s.mode === 'supabase' && s.tokenExpiresAt! > Date.now() / 1000);
  });

  it('calls tools on the daemon as the window user (whoami, sessions)', async function () {
    const who = await api.connection()!.callTool('whoami');
    assert.ok(who.ok, JSON.stringify(who));
    assert.equal(JSON.parse(who.outputs[0].text).email, JAZEEL.email);
    const sessions = await api.connection()!.callTool('sessions');
    assert.ok(sessions.ok);
    const rows = JSON.parse(sessions.outputs[0].text);
    assert.ok(rows.some((r: any) => r.current && r.connection_status === 'connected' && r.metadata.instance === api.instance));
  });

  it('EXAI: Try a Tool runs the picked tool as the window user and opens the result', async function () {
    answer({ pick: ['echo'], input: ['{"text":"hello from the in-host suite"}'] });
    await vscode.commands.executeCommand('exai.tryTool');
    const editor = await until('the result editor', () => vscode.window.activeTextEditor?.document.getText().includes('hello from the in-host suite') && vscode.window.activeTextEditor);
    assert.match(editor.document.getText(), /^# echo/);
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  });

  it('contributes a walkthrough with the five first steps (a provider key among them)', function () {
    const walkthroughs = vscode.extensions.getExtension('exai.exai-vscode')!.packageJSON.contributes.walkthroughs;
    assert.deepEqual(walkthroughs[0].steps.map((s: { id: string }) => s.id), ['configure', 'signIn', 'statusBar', 'providerKey', 'tryTool']);
  });

  it('EXAI: Set Provider Key with a shared daemon (supabase mode) says it keeps its own keys, and asks for none', async function () {
    const seen = answer({ pick: ['Custom'], input: ['http://127.0.0.1:9/v1', 'sk-never-asked-0123456789'] });
    await vscode.commands.executeCommand('exai.setProviderKey');
    assert.deepEqual(seen.map((s) => s.kind), ['showInformationMessage'], JSON.stringify(seen));
    assert.match(seen[0].text, /uses the provider keys of its own environment\. Ask its operator to configure the provider/);
  });

  it('signs in with an emailed one-time code (the code typed into the second prompt)', async function () {
    // The test auth server's outbox stands in for the user's mailbox.
    const supabaseUrl = vscode.workspace.getConfiguration('exai').get<string>('supabase.url')!;
    const mailedCode = async () => {
      const mail = await (await fetch(`${supabaseUrl}/__test/otp?email=${encodeURIComponent(JAZEEL.email)}`)).json();
      return (mail as { otp: string }).otp;
    };
    const seen = answer({ pick: ['Email one-time code'], input: [JAZEEL.email, mailedCode] });
    await vscode.commands.executeCommand('exai.signIn');
    await connectedAs(JAZEEL.email);
    assert.ok(seen.some((s) => s.kind === 'input' && /Enter the code Supabase sent to jazeel@example\.com/.test(s.text)), JSON.stringify(seen));
  });

  it('signs a second account in; Switch User moves only this window between them', async function () {
    answer({ pick: ['Email and password'], input: [MICHELLE.email, MICHELLE.password] });
    await vscode.commands.executeCommand('exai.signIn');
    await connectedAs(MICHELLE.email);
    assert.deepEqual((await vscode.authentication.getAccounts('exai')).map((a) => a.label).sort(), [JAZEEL.email, MICHELLE.email]);

    const seen = answer({ pick: [JAZEEL.email] });
    await vscode.commands.executeCommand('exai.switchUser');
    await connectedAs(JAZEEL.email);
    const picker = seen.find((s) => s.kind === 'pick')!;
    assert.match(picker.text, /this window only/);
    assert.match(picker.text, /Sign in another account/);
  });

  it('signing an account out (command) removes it everywhere and shows this window as signed out', async function () {
    const seen = answer({ pick: [JAZEEL.email] });
    await vscode.commands.executeCommand('exai.signOut');
    await until('signed out', () => status().kind === 'signed_out');
    assert.deepEqual((await vscode.authentication.getAccounts('exai')).map((a) => a.label), [MICHELLE.email]);
    assert.ok(seen.some((s) => s.kind === 'showWarningMessage' && /jazeel@example\.com was signed out/.test(s.text)), JSON.stringify(seen));
  });

  it('the status bar click offers the next actions for the state', async function () {
    const seen = answer({ pick: [] });
    await vscode.commands.executeCommand('exai.statusBarClicked');
    const picker = seen.find((s) => s.kind === 'pick');
    assert.ok(picker && /Sign in/.test(picker.text) && /Switch user/.test(picker.text), JSON.stringify(seen));
  });

  it('a malformed setting is reported once, with an Open Settings action, not on every retry', async function () {
    const seen = answer({});
    const config = vscode.workspace.getConfiguration('exai');
    const previous = config.get<string>('supabase.url');
    try {
      await config.update('supabase.url', 'not a url', vscode.ConfigurationTarget.Global);
      await until('error status', () => status().kind === 'error');
      assert.match((status() as any).message, /exai\.supabase\.url "not a url" is not a URL/);
      assert.deepEqual((status() as any).actions, ['openSettings', 'showLog']);
      await vscode.commands.executeCommand('exai.reconnect');
      await sleep(500);
      assert.equal(seen.filter((s) => s.kind === 'showWarningMessage' && /not a URL/.test(s.text)).length, 1, JSON.stringify(seen));
    } finally {
      await config.update('supabase.url', previous, vscode.ConfigurationTarget.Global);
    }
    // The window's own account was signed out: it stays signed out rather than silently
    // becoming another user; the user picks the remaining account.
    await until('signed out again', () => status().kind === 'signed_out');
    answer({ pick: [MICHELLE.email] });
    await vscode.commands.executeCommand('exai.switchUser');
    await connectedAs(MICHELLE.email);
  });

  it('with no Supabase settings, runs in local mode: spawns the bundled daemon and connects as the OS user', async function () {
    const config = vscode.workspace.getConfiguration('exai');
    const previous = { url: config.get<string>('supabase.url'), key: config.get<string>('supabase.anonKey'), daemon: config.get<string>('daemon.url') };
    try {
      await config.update('supabase.url', undefined, vscode.ConfigurationTarget.Global);
      await config.update('supabase.anonKey', undefined, vscode.ConfigurationTarget.Global);
      await config.update('daemon.url', undefined, vscode.ConfigurationTarget.Global);
      await until('local connection', () => status().kind === 'connected' && (status() as any).mode === 'local', 30_000);
      const who = await api.connection()!.callTool('whoami');
      assert.ok(who.ok && JSON.parse(who.outputs[0].text).mode === 'local');
    } finally {
      await config.update('supabase.url', previous.url, vscode.ConfigurationTarget.Global);
      await config.update('supabase.anonKey', previous.key, vscode.ConfigurationTarget.Global);
      await config.update('daemon.url', previous.daemon, vscode.ConfigurationTarget.Global);
    }
    await connectedAs(MICHELLE.email);
  });
});
