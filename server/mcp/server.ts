// The MCP face of the ToolRegistry: an McpServer (the SDK's) whose tools/list and tools/call are the
// registry's own list() and call(), so the WebSocket protocol and MCP serve one definition of each
// tool — the same JSON Schema, title and annotations, and the same sentences when a call fails.
//
// Not McpServer.registerTool: it would validate arguments a second time with its own messages and
// convert the zod schema to JSON Schema a second time (another dialect). Here the registry
// validates, and a failure of any kind is an `isError` result carrying the registry's sentence.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  CallToolRequestSchema,
  ListToolsRequestSchema,
  type CallToolResult,
  type RequestId,
  type Tool as McpTool,
} from '@modelcontextprotocol/sdk/types.js';
import type { ToolOutcome, ToolRegistry } from '../tools/registry';
import { VERSION } from '../version';

/** The `_meta` key of an `isError` result that carries the WebSocket protocol's error code (e.g. `cancelled`). */
export const ERROR_CODE_META = 'exai/error_code';

/** One tools/call as the session runs it. */
export interface McpToolCall {
  name: string;
  args: unknown;
  requestId: RequestId;
  /** Aborted by the client's notifications/cancelled. */
  signal: AbortSignal;
  /** Sends an MCP progress notification when the caller asked for progress; otherwise does nothing. */
  progress(message: string): void;
}

/** Runs a call for the session (identity, limits, drain) and resolves with the registry's outcome. */
export type McpCallRunner = (call: McpToolCall) => Promise<ToolOutcome>;

export function createMcpServer(tools: ToolRegistry, run: McpCallRunner): McpServer {
  const mcp = new McpServer(
    { name: 'exai', title: 'EXAI', version: VERSION },
    {
      // logging: clients may call logging/setLevel; the daemon sends a warning before a token expires.
      capabilities: { logging: {} },
      instructions: 'EXAI daemon tools, run as the signed-in user of this session: whoami, sessions, echo, version, chat (with conversation memory) and threads.',
    },
  );
  mcp.server.registerCapabilities({ tools: { listChanged: false } });
  mcp.server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: tools.list() as McpTool[] }));
  mcp.server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    const progressToken = request.params._meta?.progressToken;
    let step = 0;
    const outcome = await run({
      name: request.params.name,
      args: request.params.arguments,
      requestId: extra.requestId,
      signal: extra.signal,
      progress:
        progressToken === undefined
          ? () => {}
          : (message) =>
              void extra
                .sendNotification({ method: 'notifications/progress', params: { progressToken, progress: ++step, message } })
                .catch(() => {}), // the client went away; the call's own result reports the rest
    });
    return toCallToolResult(outcome);
  });
  return mcp;
}

/** The registry's outcome as MCP's CallToolResult: outputs as content, a failure as `isError` with the same sentence. */
export function toCallToolResult(outcome: ToolOutcome): CallToolResult {
  if (outcome.ok) return { content: outcome.outputs.map((o) => ({ type: 'text' as const, text: o.text })) };
  return {
    content: [{ type: 'text', text: outcome.error.message }],
    isError: true,
    _meta: { [ERROR_CODE_META]: outcome.error.code },
  };
}
