// Which account THIS window uses. Held in memory (so another window's choice never leaks in) and
// saved to workspaceState (so it survives a window reload). Switching changes only this window.
import * as vscode from 'vscode';
import type { Account, Accounts } from './accounts';

const STATE_KEY = 'exai.windowAccountId';

export class WindowUser implements vscode.Disposable {
  private accountId: string | null;
  private readonly changed = new vscode.EventEmitter<string | null>();
  readonly onDidChange = this.changed.event;

  constructor(private readonly state: vscode.Memento, private readonly accounts: Accounts) {
    this.accountId = state.get<string>(STATE_KEY) ?? null;
  }

  get id(): string | null {
    return this.accountId;
  }

  /**
   * The account this window should use now: its own choice while that account is signed in;
   * with no choice yet, the only signed-in account (never silently another user's after a
   * sign-out).
   */
  async resolve(): Promise<Account | null> {
    const accounts = await this.accounts.list();
    if (this.accountId) return accounts.find((a) => a.id === this.accountId) ?? null;
    if (accounts.length === 1) {
      // Adopted as this window's choice without a change event: the caller is already starting with it.
      this.accountId = accounts[0].id;
      await this.state.update(STATE_KEY, this.accountId);
      return accounts[0];
    }
    return null;
  }

  async set(accountId: string | null): Promise<void> {
    if (accountId === this.accountId) return;
    this.accountId = accountId;
    await this.state.update(STATE_KEY, accountId ?? undefined);
    this.changed.fire(accountId);
  }

  dispose(): void {
    this.changed.dispose();
  }
}
