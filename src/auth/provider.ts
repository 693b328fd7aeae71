// The "EXAI (Supabase)" authentication provider: every signed-in account of this machine appears
// in VS Code's Accounts menu, and signing out there signs the account out in every window.
import * as vscode from 'vscode';
import type { Account, Accounts } from './accounts';

export const AUTH_PROVIDER_ID = 'exai';
export const AUTH_PROVIDER_LABEL = 'EXAI (Supabase)';

export class ExaiAuthenticationProvider implements vscode.AuthenticationProvider, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<vscode.AuthenticationProviderAuthenticationSessionsChangeEvent>();
  readonly onDidChangeSessions = this.changed.event;
  private known = new Map<string, vscode.AuthenticationSession>();
  private readonly registration: vscode.Disposable;

  constructor(
    private readonly accounts: Accounts,
    /** The interactive sign-in (method picker and flows); resolves with the new account. */
    private readonly signInInteractively: () => Promise<Account | undefined>,
  ) {
    this.registration = vscode.authentication.registerAuthenticationProvider(AUTH_PROVIDER_ID, AUTH_PROVIDER_LABEL, this, {
      supportsMultipleAccounts: true,
    });
  }

  async getSessions(_scopes: readonly string[] | undefined, options?: vscode.AuthenticationProviderSessionOptions): Promise<vscode.AuthenticationSession[]> {
    const sessions = await this.currentSessions();
    return options?.account ? sessions.filter((s) => s.account.id === options.account!.id) : sessions;
  }

  async createSession(): Promise<vscode.AuthenticationSession> {
    const account = await this.signInInteractively();
    if (!account) throw new vscode.CancellationError();
    await this.refresh();
    const session = this.known.get(account.id);
    if (!session) throw new Error(`${account.email} signed in but its session could not be read back.`);
    return session;
  }

  async removeSession(sessionId: string): Promise<void> {
    await this.accounts.signOut(sessionId);
    await this.refresh();
  }

  /** Re-reads the shared store and tells VS Code what was added, removed or changed. */
  async refresh(): Promise<void> {
    const next = new Map((await this.currentSessions()).map((s) => [s.id, s]));
    const added = [...next.values()].filter((s) => !this.known.has(s.id));
    const removed = [...this.known.values()].filter((s) => !next.has(s.id));
    const changed = [...next.values()].filter((s) => this.known.has(s.id) && this.known.get(s.id)!.accessToken !== s.accessToken);
    this.known = next;
    if (added.length || removed.length || changed.length) this.changed.fire({ added, removed, changed });
  }

  private async currentSessions(): Promise<vscode.AuthenticationSession[]> {
    const result: vscode.AuthenticationSession[] = [];
    for (const account of await this.accounts.list()) {
      const stored = await this.accounts.readSession(account.id);
      if (stored) result.push({ id: account.id, accessToken: stored.access_token, account: { id: account.id, label: account.email }, scopes: [] });
    }
    return result;
  }

  dispose(): void {
    this.registration.dispose();
    this.changed.dispose();
  }
}
