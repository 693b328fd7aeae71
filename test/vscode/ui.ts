// Helpers of the in-host suites (they run inside the extension host, see ./index.ts): answering the
// extension's prompts, and waiting for a condition with a deadline.
import * as vscode from 'vscode';
import { waitFor } from '../helpers/wait';

type Window = typeof vscode.window;
const originals = new Map<keyof Window, unknown>();

/** Answers the next prompts: quick picks by label text, input boxes by value, messages by button. */
export function answer(script: { pick?: string[]; input?: (string | (() => Promise<string>))[]; button?: string[] }) {
  const picks = [...(script.pick ?? [])];
  const inputs = [...(script.input ?? [])];
  const buttons = [...(script.button ?? [])];
  const seen: { kind: string; text: string }[] = [];
  const replace = <K extends keyof Window>(name: K, fn: unknown) => {
    if (!originals.has(name)) originals.set(name, vscode.window[name]);
    (vscode.window as any)[name] = fn;
  };
  replace('showQuickPick', async (items: readonly vscode.QuickPickItem[] | Thenable<readonly vscode.QuickPickItem[]>, options?: vscode.QuickPickOptions) => {
    const list = await items;
    seen.push({ kind: 'pick', text: `${options?.title ?? ''}: ${list.map((i) => i.label).join(' | ')}` });
    const want = picks.shift();
    return want === undefined ? undefined : list.find((i) => i.label.includes(want));
  });
  replace('showInputBox', async (options?: vscode.InputBoxOptions) => {
    seen.push({ kind: 'input', text: options?.prompt ?? '' });
    const next = inputs.shift();
    return typeof next === 'function' ? next() : next;
  });
  for (const name of ['showInformationMessage', 'showWarningMessage', 'showErrorMessage'] as const) {
    replace(name, async (message: string, ...rest: unknown[]) => {
      seen.push({ kind: name, text: message });
      const labels = rest.filter((r) => typeof r === 'string' || (typeof r === 'object' && r && 'title' in r));
      const want = buttons.shift();
      return want === undefined ? undefined : labels.find((l) => (typeof l === 'string' ? l : (l as { title: string }).title) === want);
    });
  }
  return seen;
}

export function restoreUi() {
  for (const [name, fn] of originals) (vscode.window as any)[name] = fn;
  originals.clear();
}

export function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  return waitFor(probe, timeoutMs, what, { everyMs: 100 }) as Promise<T>;
}
