// What the in-host MCP suites do through VS Code's own MCP client (no chat model needed, measured in
// /work/shared/vscode-e2e/mcp/NOTES.md): start the EXAI server, find its tools in vscode.lm.tools,
// invoke them. And what the two windows' suites share: the test environment, the recording proxy's
// records, and a file-based rendezvous between the windows.
import fs from 'node:fs';
import path from 'node:path';
import * as vscode from 'vscode';
import type { ProxyRecord } from '../../helpers/recordingProxy';
import { until } from '../ui';

export const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set; run this suite through test/e2e/mcpInHost.test.ts`);
  return v;
};

/** VS Code's id of the EXAI server: `<extension id>/<label>`. */
export const SERVER_ID = 'exai.exai-vscode/EXAI';

/** Starts the EXAI server the way `MCP: List Servers` → Start Server does; rejects with VS Code's error if it could not. */
export async function startExai(): Promise<void> {
  await vscode.commands.executeCommand('workbench.mcp.startServer', SERVER_ID, { waitForLiveTools: true });
}

/**
 * Starts the EXAI server until VS Code lists its tools. VS Code learns of a (changed) definition
 * asynchronously after the provider answers; a start before that finds no server and does nothing.
 */
export function startExaiUntilListed(): Promise<vscode.LanguageModelToolInformation[]> {
  return until('the EXAI tools in vscode.lm.tools', async () => {
    await startExai();
    return exaiTools().length > 0 && exaiTools();
  }, 30_000);
}

/** The EXAI tools VS Code lists (tagged `mcp`, named `mcp_exai_<tool>`). */
export function exaiTools(): vscode.LanguageModelToolInformation[] {
  return vscode.lm.tools.filter((t) => t.tags.includes('mcp') && /^mcp_exai_/.test(t.name));
}

export function toolName(tool: string): string {
  const found = exaiTools().find((t) => t.name.endsWith(`_${tool}`));
  if (!found) throw new Error(`VS Code lists no EXAI tool ${tool} (it lists: ${exaiTools().map((t) => t.name).join(', ') || 'none'})`);
  return found.name;
}

/** vscode.lm.invokeTool of an EXAI tool: its text. */
export async function invoke(tool: string, input: object = {}, token?: vscode.CancellationToken): Promise<string> {
  const result = await vscode.lm.invokeTool(toolName(tool), { input, toolInvocationToken: undefined }, token);
  return result.content.map((p) => (p instanceof vscode.LanguageModelTextPart ? p.value : JSON.stringify(p))).join('');
}

/** The email whoami reports through VS Code's MCP client. */
export async function whoamiEmail(): Promise<string> {
  return JSON.parse(await invoke('whoami')).email;
}

/** What the daemon's /mcp saw through the recording proxy (test/helpers/recordingProxy.ts). */
export async function mcpRecords(): Promise<ProxyRecord[]> {
  const all = (await (await fetch(env('EXAI_TEST_RECORDS_URL'))).json()) as ProxyRecord[];
  return all.filter((r) => r.path === '/mcp' || r.path.startsWith('/.well-known') || r.path === '/register');
}

/** Tells the other window's suite that `name` happened. */
export function signal(name: string): void {
  fs.writeFileSync(path.join(env('EXAI_TEST_SYNC_DIR'), name), String(Date.now()));
}

/** Waits until the other window's suite signalled `name`. */
export function waitForSignal(name: string, timeoutMs = 120_000): Promise<boolean> {
  return until(`the other window: ${name}`, () => fs.existsSync(path.join(env('EXAI_TEST_SYNC_DIR'), name)), timeoutMs);
}
