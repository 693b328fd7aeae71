// The command palette entries (category "EXAI"). Thin: each asks the user what is needed and calls
// the parts that do the work.
import * as vscode from 'vscode';
import type { Accounts } from '../auth/accounts';
import type { ExaiAuthenticationProvider } from '../auth/provider';
import type { WindowUser } from '../auth/windowUser';
import type { WindowConnection } from '../daemon/windowConnection';
import type { SessionRow } from '../../server/sessions/store';
import type { WindowLog } from './log';
import { signInInteractively } from './signIn';
import type { NextAction } from './status';
import type { StatusBar } from './statusBar';

/** What the commands act on; rebuilt when the settings change, hence getters. */
export interface CommandContext {
  accounts(): Accounts | null;
  windowUser(): WindowUser | null;
  provider(): ExaiAuthenticationProvider | null;
  connection(): WindowConnection | null;
  statusBar: StatusBar;
  log: WindowLog;
}

export function registerCommands(ctx: CommandContext): vscode.Disposable[] {
  const run = (action: NextAction) => vscode.commands.executeCommand(COMMAND_OF[action]);
  return [
    vscode.commands.registerCommand('exai.signIn', () => signIn(ctx)),
    vscode.commands.registerCommand('exai.signOut', () => signOut(ctx)),
    vscode.commands.registerCommand('exai.switchUser', () => switchUser(ctx)),
    vscode.commands.registerCommand('exai.reconnect', () => ctx.connection()?.reconnectNow()),
    vscode.commands.registerCommand('exai.showLog', () => ctx.log.show()),
    vscode.commands.registerCommand('exai.showSessions', () => showSessions(ctx)),
    vscode.commands.registerCommand('exai.tryTool', () => tryTool(ctx)),
    vscode.commands.registerCommand('exai.openSettings', () => vscode.commands.executeCommand('workbench.action.openSettings', 'exai')),
    vscode.commands.registerCommand('exai.restartDaemon', () => restartDaemon(ctx)),
    vscode.commands.registerCommand('exai.statusBarClicked', async () => {
      const action = await ctx.statusBar.pickAction();
      if (action) await run(action);
    }),
  ];
}

export const COMMAND_OF: Record<NextAction, string> = {
  signIn: 'exai.signIn',
  switchUser: 'exai.switchUser',
  reconnect: 'exai.reconnect',
  openSettings: 'exai.openSettings',
  restartDaemon: 'exai.restartDaemon',
  showLog: 'exai.showLog',
  signOut: 'exai.signOut',
  showSessions: 'exai.showSessions',
};

function needsSupabase(ctx: CommandContext): Accounts | null {
  const accounts = ctx.accounts();
  if (!accounts) {
    void vscode.window
      .showInformationMessage('EXAI runs in local mode: there is nothing to sign in to. Set exai.supabase.url and exai.supabase.anonKey to use Supabase accounts.', 'Open Settings')
      .then((choice) => choice && vscode.commands.executeCommand('exai.openSettings'));
  }
  return accounts;
}

async function signIn(ctx: CommandContext): Promise<string | undefined> {
  const accounts = needsSupabase(ctx);
  if (!accounts) return undefined;
  const account = await signInInteractively(accounts, ctx.log);
  if (!account) return undefined;
  await ctx.provider()?.refresh();
  // The window that signed in uses the new account; others keep theirs.
  if (ctx.windowUser()?.id === account.id) await ctx.connection()?.restart('signed in again');
  else await ctx.windowUser()?.set(account.id);
  return account.id;
}

async function signOut(ctx: CommandContext): Promise<void> {
  const accounts = needsSupabase(ctx);
  if (!accounts) return;
  const all = await accounts.list();
  if (!all.length) return void vscode.window.showInformationMessage('EXAI: no account is signed in.');
  const current = ctx.windowUser()?.id;
  const picked = all.length === 1
    ? all[0]
    : (await vscode.window.showQuickPick(
        all.map((a) => ({ label: a.email, description: a.id === current ? 'this window' : undefined, account: a })),
        { title: 'EXAI: Sign Out', placeHolder: 'Which account? It is signed out in every window.' },
      ))?.account;
  if (!picked) return;
  await accounts.signOut(picked.id);
  await ctx.provider()?.refresh();
  void vscode.window.showInformationMessage(`EXAI: signed out ${picked.email} in every window.`);
}

async function switchUser(ctx: CommandContext): Promise<void> {
  const accounts = needsSupabase(ctx);
  const windowUser = ctx.windowUser();
  if (!accounts || !windowUser) return;
  const current = windowUser.id;
  const items: (vscode.QuickPickItem & { accountId?: string })[] = (await accounts.list()).map((a) => ({
    label: `$(account) ${a.email}`,
    description: a.id === current ? 'this window' : undefined,
    accountId: a.id,
  }));
  items.push({ label: '$(add) Sign in another account…' });
  const picked = await vscode.window.showQuickPick(items, { title: 'EXAI: Switch User (this window only)', placeHolder: 'Which account should this window use?' });
  if (!picked) return;
  if (!picked.accountId) return void (await signIn(ctx));
  await windowUser.set(picked.accountId);
}

async function showSessions(ctx: CommandContext): Promise<void> {
  const connection = ctx.connection();
  const result = connection ? await connection.callTool('sessions') : null;
  if (!result || !result.ok) {
    return void vscode.window.showWarningMessage(`EXAI: cannot list sessions: ${result && !result.ok ? result.error.message : 'not connected'}`);
  }
  const rows = JSON.parse(result.outputs[0].text) as (SessionRow & { current: boolean })[];
  const icon: Record<string, string> = { connected: '$(pass-filled)', disconnected: '$(circle-outline)', expired: '$(watch)', stale: '$(warning)' };
  await vscode.window.showQuickPick(
    rows.map((r) => ({
      label: `${icon[r.connection_status] ?? ''} ${r.connection_status}${r.current ? ' — this window' : ''}`,
      description: String(r.metadata.instance ?? ''),
      detail: `session ${r.session_id} · started ${new Date(r.created_at).toLocaleString()} · last active ${new Date(r.last_active).toLocaleString()}`,
    })),
    { title: `EXAI: your sessions (${rows.filter((r) => r.connection_status === 'connected').length} connected)`, canPickMany: false },
  );
}

/** Picks a daemon tool, asks for its arguments (JSON, prefilled for the simple ones), shows the result. */
async function tryTool(ctx: CommandContext): Promise<void> {
  const connection = ctx.connection();
  let tools;
  try {
    tools = connection ? await connection.listTools() : null;
  } catch (err) {
    tools = null;
    ctx.log.warn(`list_tools failed: ${(err as Error).message}`);
  }
  if (!connection || !tools) return void vscode.window.showWarningMessage('EXAI: not connected; sign in or reconnect, then try again.');
  const picked = await vscode.window.showQuickPick(tools.map((t) => ({ label: t.name, detail: t.description, tool: t })), { title: 'EXAI: Try a Tool' });
  if (!picked) return;
  const required = ((picked.tool.inputSchema as { required?: string[] }).required ?? []);
  let args: Record<string, unknown> = {};
  if (required.length) {
    const raw = await vscode.window.showInputBox({
      title: `EXAI: ${picked.tool.name} arguments (JSON)`,
      value: JSON.stringify(Object.fromEntries(required.map((k) => [k, k === 'text' ? 'Hello from VS Code' : '']))),
      validateInput: (v) => { try { JSON.parse(v); return undefined; } catch { return 'Enter a JSON object.'; } },
    });
    if (raw === undefined) return;
    args = JSON.parse(raw);
  }
  const result = await connection.callTool(picked.tool.name, args);
  const body = result.ok ? result.outputs.map((o) => o.text).join('\n') : `Error ${result.error.code}: ${result.error.message}`;
  const doc = await vscode.workspace.openTextDocument({ language: 'markdown', content: `# ${picked.tool.name}\n\n\`\`\`\n${body}\n\`\`\`\n` });
  await vscode.window.showTextDocument(doc, { preview: true });
}

async function restartDaemon(ctx: CommandContext): Promise<void> {
  try {
    await ctx.connection()?.restartDaemon();
  } catch (err) {
    ctx.log.error(`restarting the daemon failed: ${(err as Error).message}`);
    void vscode.window.showErrorMessage(`EXAI: restarting the daemon failed: ${(err as Error).message}`);
  }
}
