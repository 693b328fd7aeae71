// VS Code's `exai.*` settings, read and watched; src/config.ts validates them.
import * as vscode from 'vscode';
import { parseConfig, type ExaiConfig } from './config';

export function readConfig(): ExaiConfig {
  const c = vscode.workspace.getConfiguration('exai');
  return parseConfig({
    url: c.get<string>('supabase.url'),
    anonKey: c.get<string>('supabase.anonKey'),
    daemonUrl: c.get<string>('daemon.url'),
    idleExitMinutes: c.get<number>('daemon.idleExitMinutes'),
  });
}

export function onConfigChange(listener: (config: ExaiConfig) => void): vscode.Disposable {
  return vscode.workspace.onDidChangeConfiguration((e) => {
    if (e.affectsConfiguration('exai')) listener(readConfig());
  });
}
