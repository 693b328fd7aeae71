// The wire protocol between a VS Code window and the daemon: JSON text frames, each with an `op`.
// This file is the only definition of a frame's shape; the extension imports it too.
// Human-readable description: docs/protocol.md.
import { z } from 'zod';

// The version and close codes live in a module without zod, so the extension can load them cheaply.
export { CloseCode, PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from './protocolCodes';

/** Error codes carried in `error.code` of hello_ack, auth_ack, call_tool_res and error frames. */
export const ErrorCode = {
  invalidJson: 'invalid_json',
  invalidFrame: 'invalid_frame',
  helloRequired: 'hello_required',
  helloTimeout: 'hello_timeout',
  protocolUnsupported: 'protocol_unsupported',
  tokenInvalid: 'token_invalid',
  tokenExpired: 'token_expired',
  userMismatch: 'user_mismatch',
  tooManyConnections: 'too_many_connections',
  authUnavailable: 'auth_unavailable',
  storeUnavailable: 'store_unavailable',
  unknownOp: 'unknown_op',
  unknownTool: 'unknown_tool',
  invalidArguments: 'invalid_arguments',
  cancelled: 'cancelled',
  overCapacity: 'over_capacity',
  toolFailed: 'tool_failed',
  shuttingDown: 'shutting_down',
  sessionEnded: 'session_ended',
  frameTooLarge: 'frame_too_large',
  clientNotReading: 'client_not_reading',
  resultUnavailable: 'result_unavailable',
  /** set_provider_key / remove_provider_key on a supabase-mode daemon: a hosted daemon keeps its own keys. */
  notAllowed: 'not_allowed',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface WireError {
  code: ErrorCode | string;
  message: string;
}

/** `text`, cut to `max` characters with a note of how much was left out. */
export function shortened(text: string, max = MAX_ERROR_MESSAGE_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters left out)`;
}

// ---------------------------------------------------------------- client -> daemon

export const MAX_REQUEST_ID_CHARS = 128;
export const MAX_TOKEN_CHARS = 16 * 1024;
/**
 * Bytes a socket may send before the daemon answers its hello. The largest valid hello is under
 * 17 KiB on the wire (a token of MAX_TOKEN_CHARS ASCII characters, instance <= 128 and version <= 64
 * characters, the field names, a 14-byte frame header); twice that leaves room for WebSocket pings
 * and small frames sent right behind the hello. More closes the socket with 1009 before the frame
 * that crossed the bound is ever parsed.
 */
export const MAX_BYTES_BEFORE_HELLO_ACK = 32 * 1024;
/** Error messages (zod's included) are cut to this many characters: bad input is never echoed back whole. */
export const MAX_ERROR_MESSAGE_CHARS = 1000;

export const RequestId = z.string().min(1).max(MAX_REQUEST_ID_CHARS);

export const HelloFrame = z.object({
  op: z.literal('hello'),
  protocol: z.number().int(),
  token: z.string().min(1).max(MAX_TOKEN_CHARS),
  client: z
    .object({
      instance: z.string().max(128).optional(),
      version: z.string().max(64).optional(),
    })
    .optional(),
});
export type HelloFrame = z.infer<typeof HelloFrame>;

export const AuthFrame = z.object({ op: z.literal('auth'), request_id: RequestId, token: z.string().min(1).max(MAX_TOKEN_CHARS) });
export const ListToolsFrame = z.object({ op: z.literal('list_tools'), request_id: RequestId.optional() });
/** No tool takes more than a handful of arguments. Checked by counting keys, before zod walks them one by one. */
export const MAX_ARGUMENT_KEYS = 256;
export const MAX_TOOL_NAME_CHARS = 128;
function isToolArguments(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length <= MAX_ARGUMENT_KEYS;
}
const ToolArguments = z.custom<Record<string, unknown>>(isToolArguments, `must be a JSON object with at most ${MAX_ARGUMENT_KEYS} keys`);

export const CallToolFrame = z.object({
  op: z.literal('call_tool'),
  request_id: RequestId,
  name: z.string().min(1).max(MAX_TOOL_NAME_CHARS),
  arguments: ToolArguments.optional(),
});

/**
 * The frame of nearly every turn, checked without zod (whose union parse was the largest share of a
 * call's own time): a call_tool frame that satisfies CallToolFrame comes back exactly as
 * ClientFrame.parse would return it. Anything else, every invalid frame included, gives null, and the
 * caller parses with ClientFrame, whose issues say what is wrong. So this can only accept less.
 */
export function validCallToolFrame(raw: unknown): z.infer<typeof CallToolFrame> | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const { op, request_id: requestId, name, arguments: args } = raw as Record<string, unknown>;
  if (op !== 'call_tool') return null;
  if (typeof requestId !== 'string' || requestId.length < 1 || requestId.length > MAX_REQUEST_ID_CHARS) return null;
  if (typeof name !== 'string' || name.length < 1 || name.length > MAX_TOOL_NAME_CHARS) return null;
  if (args === undefined) return { op, request_id: requestId, name };
  return isToolArguments(args) ? { op, request_id: requestId, name, arguments: args } : null;
}
export const CancelFrame = z.object({ op: z.literal('cancel'), request_id: RequestId });
export const PingFrame = z.object({ op: z.literal('ping'), request_id: RequestId.optional() });


/** The providers a window may give a key to (server/tools/providerKeys.ts). */
export const ProviderKeyName = z.enum(['glm', 'kimi', 'custom']);
export const MAX_PROVIDER_KEY_CHARS = 4096;
export const MAX_PROVIDER_URL_CHARS = 2048;
/**
 * Local mode only: replaces one provider's key (and base URL) of the daemon at run time. `api_key`
 * may be empty only for `custom` (a local server such as Ollama needs none). Never echoed back.
 */
export const SetProviderKeyFrame = z.object({
  op: z.literal('set_provider_key'),
  request_id: RequestId,
  provider: ProviderKeyName,
  api_key: z.string().max(MAX_PROVIDER_KEY_CHARS),
  base_url: z.string().min(1).max(MAX_PROVIDER_URL_CHARS).optional(),
});
/** Local mode only: forgets the key a client set; the provider falls back to the daemon's environment (if it has one there). */
export const RemoveProviderKeyFrame = z.object({ op: z.literal('remove_provider_key'), request_id: RequestId, provider: ProviderKeyName });

/** Every frame a client may send after hello_ack. */
export const ClientFrame = z.discriminatedUnion('op', [HelloFrame, AuthFrame, ListToolsFrame, CallToolFrame, CancelFrame, PingFrame, SetProviderKeyFrame, RemoveProviderKeyFrame]);
export type ClientFrame = z.infer<typeof ClientFrame>;
export type AuthFrame = z.infer<typeof AuthFrame>;
export type CallToolFrame = z.infer<typeof CallToolFrame>;
export type SetProviderKeyFrame = z.infer<typeof SetProviderKeyFrame>;
export type RemoveProviderKeyFrame = z.infer<typeof RemoveProviderKeyFrame>;
export type ProviderKeyName = z.infer<typeof ProviderKeyName>;

/** A configured provider as provider_key_ack lists it: never a key. */
export interface ConfiguredProvider {
  name: ProviderKeyName;
  host: string;
  /** Where its key came from: the daemon's environment, or a client's set_provider_key. */
  source: 'environment' | 'client';
}

// ---------------------------------------------------------------- daemon -> client

export interface WireUser {
  id: string;
  email: string | null;
}

export type HelloAck =
  | { op: 'hello_ack'; ok: true; session_id: string; user: WireUser; expires_at: number | null; server: { version: string } }
  | { op: 'hello_ack'; ok: false; error: WireError };

export type AuthAck =
  | { op: 'auth_ack'; request_id: string; ok: true; expires_at: number | null }
  | { op: 'auth_ack'; request_id: string; ok: false; error: WireError };

/** Hints about a tool's behaviour (MCP's ToolAnnotations): clients may use them, never trust them. */
export interface ToolAnnotations {
  /** The tool changes nothing (it only reads). */
  readOnlyHint?: boolean;
  /** Not read-only: it may destroy or overwrite something (false: it only adds). */
  destructiveHint?: boolean;
  /** Calling it again with the same arguments has no further effect. */
  idempotentHint?: boolean;
  /** It reaches outside the daemon (e.g. a model provider on the internet). */
  openWorldHint?: boolean;
}

/** A tool as both transports list it (list_tools_res here, tools/list on /mcp): one definition, server/tools/registry.ts. */
export interface ToolDescription {
  name: string;
  /** A short human-readable name, for menus. */
  title: string;
  description: string;
  inputSchema: Record<string, unknown>;
  annotations?: ToolAnnotations;
}

export interface TextOutput {
  type: 'text';
  text: string;
}

export type CallToolResult =
  | { op: 'call_tool_res'; request_id: string; ok: true; outputs: TextOutput[] }
  | { op: 'call_tool_res'; request_id: string; ok: false; error: WireError };

export type ServerFrame =
  | HelloAck
  | AuthAck
  | { op: 'auth_expiring'; expires_at: number }
  | { op: 'list_tools_res'; request_id?: string; tools: ToolDescription[] }
  | { op: 'call_tool_ack'; request_id: string; name: string }
  | { op: 'progress'; request_id: string; message: string }
  | CallToolResult
  | { op: 'cancel_ack'; request_id: string; ok: boolean }
  | { op: 'provider_key_ack'; request_id: string; ok: true; providers: ConfiguredProvider[] }
  | { op: 'provider_key_ack'; request_id: string; ok: false; error: WireError }
  | { op: 'pong'; request_id?: string }
  | { op: 'shutdown'; message: string }
  | { op: 'error'; request_id?: string; error: WireError };

/** Body of GET /health. Counts only: never a token, an email or a user id. */
export interface HealthBody {
  status: 'ok' | 'draining';
  version: string;
  mode: 'local' | 'supabase';
  uptime_s: number;
  /** Live WebSocket connections. */
  connections: number;
  /** Live MCP sessions on /mcp. */
  mcp_sessions: number;
  /** Distinct users over both. */
  users: number;
}

/** The line the daemon prints on stdout once it listens (or finds a live local daemon). */
export interface ListeningLine {
  event: 'listening' | 'already_running';
  host: string;
  port: number;
  pid: number;
  version: string;
}
