// activate(): build the parts and wire their events. No logic of its own.
//   settings -> Accounts (shared store under globalStorageUri) -> WindowUser -> WindowConnection
//   -> StatusBar, and -> ExaiMcpProvider (VS Code's MCP tooling). A settings change rebuilds the
//   account/connection parts; the MCP provider is registered once and follows them.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as vscode from 'vscode';
import { Accounts } from './auth/accounts';
import { ExaiAuthenticationProvider } from './auth/provider';
import { fileKeyProvider, secretStorageKeyProvider, SharedStore } from './auth/sharedStore';
import { WindowUser } from './auth/windowUser';
import type { ExaiConfig } from './config';
import { onConfigChange, readConfig } from './settings';
import { WindowConnection } from './daemon/windowConnection';
import { MCP_PROVIDER_ID } from './mcp/definition';
import { ExaiMcpProvider } from './mcp/provider';
import { ProviderKeyStore } from './daemon/providerKeyStore';
import { registerProviderKeys } from './ui/providerKeys';
import { COMMAND_OF, registerCommands } from './ui/commands';
import { createWindowLog } from './ui/log';
import { signInInteractively } from './ui/signIn';
import type { NextAction, Status } from './ui/status';
import { StatusBar } from './ui/statusBar';
import { VERSION } from '../server/version';

/** What tests inside the extension host may look at. */
export interface ExaiApi {
  status(): Status;
  connection(): WindowConnection | null;
  accounts(): Accounts | null;
  windowUser(): WindowUser | null;
  mcp: ExaiMcpProvider;
  instance: string;
}

interface Session {
  accounts: Accounts | null;
  windowUser: WindowUser | null;
  provider: ExaiAuthenticationProvider | null;
  connection: WindowConnection;
  disposables: vscode.Disposable[];
}

export function activate(context: vscode.ExtensionContext): ExaiApi {
  const log = createWindowLog();
  const statusBar = new StatusBar();
  // Names this window in the daemon's logs and session rows. (env.sessionId is not unique per window in code-server.)
  const instance = `vscode-${crypto.randomUUID().slice(0, 8)}`;
  const storage = context.globalStorageUri.fsPath;
  fs.mkdirSync(storage, { recursive: true, mode: 0o700 });
  // SecretStorage is one keychain for all windows only in desktop VS Code; in a browser it is per
  // profile and cached per window (measured), so there the store key is a 0600 file beside the store.
  const keys = vscode.env.uiKind === vscode.UIKind.Desktop
    ? secretStorageKeyProvider(context.secrets, path.join(storage, 'keys'), { onWarning: (m) => log.warn(`account store: ${m}`) })
    : fileKeyProvider(path.join(storage, 'keys', 'store.key'));
  const store = new SharedStore(path.join(storage, 'accounts'), keys, { onError: (e) => log.warn(`account store: ${e.message}`) });
  const notified = new Set<string>();
  const tell = (message: string, actions: NextAction[]) => {
    const labels = actions.map((a) => ({ title: a === 'signIn' ? 'Sign In' : a === 'openSettings' ? 'Open Settings' : a, action: a }));
    void vscode.window.showWarningMessage(`EXAI: ${message}`, ...labels).then((picked) => picked && vscode.commands.executeCommand(COMMAND_OF[picked.action]));
  };
  const notify = (message: string, actions: NextAction[]) => {
    if (notified.has(message)) return; // say it once, not on every retry
    notified.add(message);
    tell(message, actions);
  };
  // Provider keys live in SecretStorage, never settings.json; local mode hands them to the daemon (src/ui/providerKeys.ts).
  const providerKeys = new ProviderKeyStore(context.secrets);

  let session: Session | null = null;
  const mcp = new ExaiMcpProvider({ connection: () => session?.connection ?? null, extensionVersion: VERSION, log, tell });
  const build = (config: ExaiConfig): Session => {
    const accounts = config.supabase && !config.problems.length
      ? new Accounts({ store, lockDir: path.join(storage, 'locks'), project: config.supabase, log })
      : null;
    const windowUser = accounts ? new WindowUser(context.workspaceState, accounts) : null;
    const provider = accounts ? new ExaiAuthenticationProvider(accounts, () => signInInteractively(accounts, log)) : null;
    const connection = new WindowConnection({
      config, accounts, windowUser, instance, version: VERSION, log,
      launcher: {
        serverJs: context.asAbsolutePath(path.join('dist', 'server.js')),
        nodePath: process.execPath,
        // One daemon per project (and one for local mode): a daemon serves exactly one of them.
        stateDir: daemonDir(storage, config),
        logDir: path.join(daemonDir(storage, config), 'logs'),
        expectedVersion: VERSION,
        idleExitSec: config.idleExitSec,
      },
      providerKeys,
      onStatus: (status) => statusBar.set(status),
      notify,
      onDaemonUrl: () => void mcp.recheck('a new daemon address'),
    });
    const disposables: vscode.Disposable[] = [];
    if (accounts && provider) disposables.push(accounts.onDidChange(() => void provider.refresh()), provider);
    // Who the window is may have changed (a sign-in or sign-out here or in another window); refreshes change nothing there.
    if (accounts) disposables.push(accounts.onDidChange(() => void mcp.recheck('an account changed')));
    if (windowUser) disposables.push(windowUser, windowUser.onDidChange(() => void mcp.recheck('switched user')));
    return { accounts, windowUser, provider, connection, disposables };
  };
  const start = (s: Session) => {
    void s.provider?.refresh();
    void s.connection.start();
  };
  const teardown = () => {
    session?.connection.dispose();
    for (const d of session?.disposables ?? []) d.dispose();
    session = null;
  };

  const first = (session = build(readConfig()));
  // Finding or starting the daemon and reading the accounts need not hold up activate() (VS Code
  // counts its time, docs/performance.md): they begin on the next turn of the event loop, unless a
  // settings change replaced this session first. Everything VS Code asks for is registered below.
  setImmediate(() => session === first && start(first));
  context.subscriptions.push(
    log, statusBar, { dispose: teardown }, { dispose: () => store.dispose() },
    onConfigChange((config) => {
      log.info('settings changed; reconnecting');
      notified.clear();
      teardown();
      session = build(config);
      start(session);
      void mcp.recheck('settings changed');
    }),
    mcp,
    vscode.lm.registerMcpServerDefinitionProvider(MCP_PROVIDER_ID, mcp),
    ...registerCommands({
      accounts: () => session?.accounts ?? null,
      windowUser: () => session?.windowUser ?? null,
      provider: () => session?.provider ?? null,
      connection: () => session?.connection ?? null,
      statusBar,
      log,
    }),
    ...registerProviderKeys({ store: providerKeys, secrets: context.secrets, connection: () => session?.connection ?? null, log }),
  );
  log.info(`EXAI ${VERSION} activated in window ${instance} (${vscode.env.uiKind === vscode.UIKind.Web ? 'web' : 'desktop'}${vscode.env.remoteName ? `, remote ${vscode.env.remoteName}` : ''})`);

  return {
    status: () => statusBar.status,
    connection: () => session?.connection ?? null,
    accounts: () => session?.accounts ?? null,
    windowUser: () => session?.windowUser ?? null,
    mcp,
    instance,
  };
}

export function deactivate(): void {}

function daemonDir(storage: string, config: ExaiConfig): string {
  const name = config.supabase ? `project-${crypto.createHash('sha256').update(config.supabase.url).digest('hex').slice(0, 12)}` : 'local';
  return path.join(storage, 'daemon', name);
}
