// VS Code's `exai.*` settings, read and watched; src/config.ts validates them.
//
// Where the window's tokens go (the project URL and key, the daemon URL) comes from the user's own
// settings only. The manifest gives these settings `application` scope, so VS Code ignores them in
// workspace and folder settings (a repository's .vscode/settings.json); and they are read here as
// the user's value (inspect().globalValue), never as the merged value, so no workspace value can
// win even where a scope is not enforced.
import * as vscode from 'vscode';
import { parseConfig, userValue, type ExaiConfig } from './config';

export function readConfig(): ExaiConfig {
  const c = vscode.workspace.getConfiguration('exai');
  return parseConfig({
    url: userValue(c.inspect<string>('supabase.url')),
    anonKey: userValue(c.inspect<string>('supabase.anonKey')),
    daemonUrl: userValue(c.inspect<string>('daemon.url')),
    idleExitMinutes: c.get<number>('daemon.idleExitMinutes'),
  });
}

export function onConfigChange(listener: (config: ExaiConfig) => void): vscode.Disposable {
  return vscode.workspace.onDidChangeConfiguration((e) => {
    if (e.affectsConfiguration('exai')) listener(readConfig());
  });
}
