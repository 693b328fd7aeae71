// The status bar item: shows the window's Status (see status.ts); a click offers the next actions.
import * as vscode from 'vscode';
import { ACTION_LABELS, describeStatus, type NextAction, type Status } from './status';

export const STATUS_ITEM_ID = 'exai.connection';

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private current: Status = { kind: 'connecting', who: null, daemon: null };
  private ticker: NodeJS.Timeout;

  constructor() {
    this.item = vscode.window.createStatusBarItem(STATUS_ITEM_ID, vscode.StatusBarAlignment.Left, 100);
    this.item.name = 'EXAI Connection';
    this.item.command = 'exai.statusBarClicked';
    this.render();
    this.item.show();
    // The tooltip shows the token's remaining lifetime; keep it current.
    this.ticker = setInterval(() => this.current.kind === 'connected' && this.render(), 30_000);
  }

  get status(): Status {
    return this.current;
  }

  set(status: Status): void {
    this.current = status;
    this.render();
  }

  /** The actions offered on click, most relevant first. */
  actions(): NextAction[] {
    return describeStatus(this.current).actions;
  }

  async pickAction(): Promise<NextAction | undefined> {
    const view = describeStatus(this.current);
    const picked = await vscode.window.showQuickPick(
      view.actions.map((action) => ({ label: ACTION_LABELS[action], action })),
      { title: view.ariaLabel, placeHolder: 'What do you want to do?' },
    );
    return picked?.action;
  }

  private render(): void {
    const view = describeStatus(this.current);
    this.item.text = view.text;
    const tooltip = new vscode.MarkdownString(view.tooltip);
    tooltip.supportThemeIcons = true;
    this.item.tooltip = tooltip;
    this.item.accessibilityInformation = { label: view.ariaLabel, role: 'button' };
    this.item.backgroundColor = view.isError
      ? new vscode.ThemeColor('statusBarItem.errorBackground')
      : view.isWarning
        ? new vscode.ThemeColor('statusBarItem.warningBackground')
        : undefined;
  }

  dispose(): void {
    clearInterval(this.ticker);
    this.item.dispose();
  }
}
