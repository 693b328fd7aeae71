// What the EXAI MCP server definition says, as pure functions (no vscode), so they are unit-tested:
// the daemon's /mcp address, the definition's version, and when who-or-where changed.
import crypto from 'node:crypto';
import type { McpIdentity } from '../daemon/windowConnection';

/** `contributes.mcpServerDefinitionProviders[].id` in package.json. */
export const MCP_PROVIDER_ID = 'exai.mcpServers';
/** The server's name in VS Code (`MCP: List Servers`); its tools are `mcp_exai_<tool>`. */
export const MCP_SERVER_LABEL = 'EXAI';
/**
 * The address provided while the real one is not known (a signed-out window of a bundled daemon
 * that has not started). Never connected to: resolve refuses to start while signed out and
 * otherwise returns the daemon's real address.
 */
export const UNKNOWN_ADDRESS = 'http://127.0.0.1/mcp';

/**
 * The daemon's MCP endpoint for its WebSocket address: ws → http, wss → https, `mcp` beside the path
 * (`wss://host/` → `https://host/mcp`, `wss://host/exai` → `https://host/exai/mcp`); no user info,
 * query or fragment.
 */
export function mcpUrlOf(daemonUrl: string): string {
  const url = new URL(daemonUrl);
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new Error(`not a daemon address: ${daemonUrl}`);
  const dir = url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`;
  return new URL(`${url.protocol === 'wss:' ? 'https' : 'http'}://${url.host}${dir}mcp`).toString();
}

/**
 * The definition's `version`: changes exactly when who or where changes, so VS Code stops a session of
 * the previous user or daemon (it compares definitions) and refreshes its tool list. A hash: the
 * definition is stored by VS Code, and account ids need not be (pure).
 */
export function definitionVersion(identity: McpIdentity, extensionVersion: string): string {
  const key = JSON.stringify([identity.mode, identity.project, identity.accountId, identity.daemonUrl]);
  return `${extensionVersion}+${crypto.createHash('sha256').update(key).digest('hex').slice(0, 12)}`;
}

/** Same user of the same project at the same daemon (pure). */
export function sameIdentity(a: McpIdentity | null, b: McpIdentity): boolean {
  return !!a && a.mode === b.mode && a.project === b.project && a.accountId === b.accountId && a.daemonUrl === b.daemonUrl;
}
