// The window's user in VS Code's own MCP tooling (agent mode, `MCP: List Servers`, vscode.lm.tools):
// one Streamable HTTP server definition, "EXAI", at the window's daemon `/mcp`, whose bearer is the
// window user's access token (or the local secret), handed over fresh in resolveMcpServerDefinition.
//
// How the bearer stays fresh without cancelling calls (measured in code-server 1.117, see
// docs/architecture.md): firing onDidChangeMcpServerDefinitions stops the server and cancels every
// call in flight, so a token refresh never fires it. Instead the daemon ends a session when its token
// expires (calls in flight finish first) and answers the next request 404; VS Code then starts a new
// session and asks resolveMcpServerDefinition again, which returns the then-fresh token. The change
// event is fired only when who or where changes: Switch User, sign-in/out, the settings, a new daemon
// address. Tokens never go into the provided definition (VS Code stores it across reloads); only
// resolve's answer carries one.
import * as vscode from 'vscode';
import { McpUnavailable, type McpIdentity, type WindowConnection } from '../daemon/windowConnection';
import type { NextAction } from '../ui/status';
import { definitionVersion, MCP_SERVER_LABEL, mcpUrlOf, sameIdentity, UNKNOWN_ADDRESS } from './definition';

export interface McpProviderDeps {
  /** The window's connection (rebuilt when the settings change, hence a getter). */
  connection(): WindowConnection | null;
  extensionVersion: string;
  log: { info(m: string): void; warn(m: string): void };
  /** Shows the user a warning with the action's button. */
  tell(message: string, actions: NextAction[]): void;
}

export class ExaiMcpProvider implements vscode.McpServerDefinitionProvider<vscode.McpHttpServerDefinition>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeMcpServerDefinitions = this.changed.event;
  /** Who and where VS Code was last given (or told about with the change event). */
  private announced: McpIdentity | null = null;
  /** Rechecks run one at a time, so one change is announced once. */
  private rechecking: Promise<void> = Promise.resolve();
  /** The reason last told to the user; told again only after a session started or who-or-where changed. */
  private told: string | null = null;
  /** For tests: definitions given, resolves asked, change events fired. */
  readonly counts = { provided: 0, resolved: 0, changesFired: 0 };

  constructor(private readonly deps: McpProviderDeps) {}

  async provideMcpServerDefinitions(): Promise<vscode.McpHttpServerDefinition[]> {
    const connection = this.deps.connection();
    if (!connection) return [];
    const identity = await connection.mcpIdentity().catch((err: Error) => {
      // The bundled daemon did not start: the definition still appears; resolve says what failed.
      this.deps.log.warn(`MCP: the daemon's address is not known yet: ${err.message}`);
      return { mode: connection.mode, project: null, accountId: null, daemonUrl: null };
    });
    this.announced = identity;
    this.counts.provided++;
    const uri = identity.daemonUrl ? mcpUrlOf(identity.daemonUrl) : UNKNOWN_ADDRESS;
    return [new vscode.McpHttpServerDefinition(MCP_SERVER_LABEL, vscode.Uri.parse(uri), {}, definitionVersion(identity, this.deps.extensionVersion))];
  }

  /**
   * VS Code starts a session (the first use, or again after the daemon's 404): the daemon's address
   * and a fresh bearer. Signed out (or a bad setting): an error whose sentence says what to do, and
   * no server — so nothing ever meets a 401 (which VS Code answers with an OAuth dialog).
   */
  async resolveMcpServerDefinition(server: vscode.McpHttpServerDefinition): Promise<vscode.McpHttpServerDefinition> {
    this.counts.resolved++;
    const connection = this.deps.connection();
    if (!connection) throw new Error('EXAI is starting; try again in a moment.');
    try {
      const bearer = await connection.mcpBearer();
      const uri = mcpUrlOf(bearer.daemonUrl);
      this.deps.log.info(`MCP: starting a session at ${uri} as ${bearer.who}`);
      this.told = null;
      return new vscode.McpHttpServerDefinition(server.label, vscode.Uri.parse(uri), { ...server.headers, Authorization: `Bearer ${bearer.token}` }, server.version);
    } catch (err) {
      if (err instanceof McpUnavailable) {
        this.deps.log.warn(`MCP: not starting the EXAI server: ${err.message}`);
        // Once per spell: an agent trying several EXAI tools in a row gets one notification, not one per tool.
        if (this.told !== err.message) this.deps.tell(err.message, [err.action]);
        this.told = err.message;
        throw new Error(`EXAI: ${err.message}`);
      }
      this.deps.log.warn(`MCP: could not start the EXAI server: ${(err as Error).message}`);
      throw new Error(`EXAI could not reach its daemon: ${(err as Error).message}`);
    }
  }

  /**
   * Something may have changed who or where (Switch User, a sign-in or sign-out, the settings, a new
   * daemon address): tells VS Code when it did. Never for a token refresh: the event cancels calls in flight.
   */
  recheck(reason: string): Promise<void> {
    this.rechecking = this.rechecking.then(async () => {
      const connection = this.deps.connection();
      if (!connection || !this.announced) return; // VS Code has not asked yet: it gets the current state when it does
      let now: McpIdentity;
      try {
        now = await connection.mcpIdentity();
      } catch (err) {
        return this.deps.log.warn(`MCP: could not recheck the EXAI server after ${reason}: ${(err as Error).message}`);
      }
      if (sameIdentity(this.announced, now)) return;
      this.announced = now;
      this.told = null;
      this.counts.changesFired++;
      this.deps.log.info(`MCP: the EXAI server changed (${reason}); VS Code ends its session and starts a new one when next used`);
      this.changed.fire();
    });
    return this.rechecking;
  }

  dispose(): void {
    this.changed.dispose();
  }
}
