// Tools by name: each has a zod input schema (published to clients as JSON Schema) and a run()
// that receives validated arguments, a context (who is calling) and an AbortSignal for cancel.
// Tools never see a socket. This is the one definition both transports serve: the WebSocket
// protocol (transport/connection.ts) and MCP on /mcp (mcp/server.ts) list and call these.
import { z } from 'zod';
import type { Identity } from '../auth/identity';
import type { Logger } from '../log';
import { StoreUnavailable, type SessionStore } from '../sessions/store';
import { ErrorCode, shortened, type TextOutput, type ToolAnnotations, type ToolDescription, type WireError } from '../protocol';

export interface ToolContext {
  identity: Identity;
  /** This connection's (or MCP session's) mcp_sessions.session_id. */
  sessionId: string;
  instance: string | null;
  mode: 'local' | 'supabase';
  store: SessionStore;
  log: Logger;
  signal: AbortSignal;
  /** Reports progress: a `progress` frame, or an MCP progress notification when the caller sent a progress token. */
  progress(message: string): void;
}

export interface Tool<Input extends z.ZodType = z.ZodType> {
  name: string;
  /** A short human-readable name (MCP `title`), e.g. for a menu. */
  title: string;
  description: string;
  input: Input;
  annotations?: ToolAnnotations;
  run(args: z.infer<Input>, ctx: ToolContext): Promise<string | TextOutput[]>;
}

/** A failure a tool reports on purpose; its code and message go to the client as they are. */
export class ToolError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'ToolError';
  }
}

/** Invalid arguments: the first few zod issues are enough to fix the call. */
const MAX_ISSUES_REPORTED = 5;

export type ToolOutcome = { ok: true; outputs: TextOutput[] } | { ok: false; error: WireError };

export function defineTool<Input extends z.ZodType>(tool: Tool<Input>): Tool<Input> {
  return tool;
}

export class ToolRegistry {
  private readonly tools = new Map<string, Tool>();
  private described: ToolDescription[] | null = null;

  register(...tools: Tool<any>[]): this {
    for (const tool of tools) {
      if (this.tools.has(tool.name)) throw new Error(`tool ${tool.name} registered twice`);
      this.tools.set(tool.name, tool);
    }
    this.described = null;
    return this;
  }

  list(): ToolDescription[] {
    this.described ??= [...this.tools.values()].map((t) => ({
      name: t.name,
      title: t.title,
      description: t.description,
      inputSchema: z.toJSONSchema(t.input, { io: 'input' }) as Record<string, unknown>,
      ...(t.annotations ? { annotations: { ...t.annotations } } : {}),
    }));
    return this.described;
  }

  /** Validates and runs one call. Never throws: every failure becomes an error outcome. */
  async call(name: string, rawArgs: unknown, ctx: ToolContext): Promise<ToolOutcome> {
    const tool = this.tools.get(name);
    if (!tool) return fail(ErrorCode.unknownTool, `There is no tool named "${name}". Call list_tools to see the available tools.`);
    const parsed = tool.input.safeParse(rawArgs ?? {});
    if (!parsed.success) {
      // zod lists every offending key: 250,000 unknown keys would make a reply of megabytes. The first issues, cut short, say enough.
      const issues = z.prettifyError(new z.ZodError(parsed.error.issues.slice(0, MAX_ISSUES_REPORTED)));
      return fail(ErrorCode.invalidArguments, `Invalid arguments for ${name}: ${issues}`);
    }
    try {
      const result = await tool.run(parsed.data, ctx);
      if (ctx.signal.aborted) return cancelled(name);
      return { ok: true, outputs: typeof result === 'string' ? [{ type: 'text', text: result }] : result };
    } catch (err) {
      if (ctx.signal.aborted) return cancelled(name);
      if (err instanceof ToolError) return fail(err.code, err.message);
      // The store's own sentence says what is down and what to do; keep it whole.
      if (err instanceof StoreUnavailable) return fail(ErrorCode.storeUnavailable, err.message);
      ctx.log.error('tool failed', { tool: name, error: err });
      return fail(ErrorCode.toolFailed, `The ${name} tool failed: ${(err as Error).message ?? String(err)}`);
    }
  }
}

/** Every error message leaves here cut to MAX_ERROR_MESSAGE_CHARS: it may quote what the client sent. */
function fail(code: string, message: string): ToolOutcome {
  return { ok: false, error: { code, message: shortened(message) } };
}

function cancelled(name: string): ToolOutcome {
  return fail(ErrorCode.cancelled, `The ${name} call was cancelled.`);
}

/** Resolves after `ms`, or rejects as soon as `signal` aborts. */
export function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error('aborted'));
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Error('aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
