// A lean MCP Streamable HTTP client for the bench (JSON-RPC over POST; the answer may come as JSON or
// as an SSE stream, both are read). Used against the daemon's /mcp and the bare mcp-http baseline, so
// the client's own cost is the same on both sides. Every request is bounded by WAIT_MS.
import { Refused, WAIT_MS } from './wsClient';

/** The MCP revision the bench asks for (what @modelcontextprotocol/sdk clients send today). */
export const MCP_PROTOCOL_VERSION = '2025-06-18';

interface JsonRpcAnswer {
  id?: number | string;
  result?: unknown;
  error?: { code: number; message: string };
}

export class McpHttpSession {
  private nextId = 1;

  private constructor(private readonly url: string, private readonly token: string | null, private readonly sessionId: string) {}

  /** initialize -> the session id, then notifications/initialized: what a client does before its first call. */
  static async initialize(url: string, token: string | null): Promise<McpHttpSession> {
    const res = await post(url, token, null, {
      jsonrpc: '2.0', id: 0, method: 'initialize',
      params: { protocolVersion: MCP_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'exai-bench', version: '0' } },
    });
    const sessionId = res.headers.get('mcp-session-id');
    await answerOf(res, 0);
    if (!sessionId) throw new Refused('no_session', 'initialize answered without an Mcp-Session-Id');
    const session = new McpHttpSession(url, token, sessionId);
    const ack = await post(url, token, sessionId, { jsonrpc: '2.0', method: 'notifications/initialized' });
    await ack.arrayBuffer();
    if (ack.status !== 202 && ack.status !== 200) throw new Refused(`http_${ack.status}`, `notifications/initialized answered ${ack.status}`);
    return session;
  }

  async call(text: string): Promise<void> {
    const id = this.nextId++;
    const res = await post(this.url, this.token, this.sessionId, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { text } } });
    const answer = await answerOf(res, id);
    if ((answer.result as { isError?: boolean } | undefined)?.isError) throw new Refused('tool_error', JSON.stringify(answer.result));
  }

  async close(): Promise<void> {
    const res = await fetch(this.url, { method: 'DELETE', headers: headers(this.token, this.sessionId), signal: AbortSignal.timeout(WAIT_MS) }).catch(() => null);
    await res?.arrayBuffer().catch(() => {});
  }
}

function headers(token: string | null, sessionId: string | null): Record<string, string> {
  const h: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': MCP_PROTOCOL_VERSION,
  };
  if (token) h.authorization = `Bearer ${token}`;
  if (sessionId) h['mcp-session-id'] = sessionId;
  return h;
}

function post(url: string, token: string | null, sessionId: string | null, body: unknown): Promise<Response> {
  return fetch(url, { method: 'POST', headers: headers(token, sessionId), body: JSON.stringify(body), signal: AbortSignal.timeout(WAIT_MS) });
}

/** The JSON-RPC answer with `id`, from a JSON body or from the `data:` lines of an SSE body. */
async function answerOf(res: Response, id: number): Promise<JsonRpcAnswer> {
  const text = await res.text();
  if (!res.ok) throw new Refused(`http_${res.status}`, `HTTP ${res.status}: ${text.slice(0, 300)}`);
  const messages: JsonRpcAnswer[] = (res.headers.get('content-type') ?? '').includes('text/event-stream')
    ? text.split('\n').filter((l) => l.startsWith('data:')).map((l) => JSON.parse(l.slice(5)))
    : [JSON.parse(text)];
  const answer = messages.find((m) => m.id === id);
  if (!answer) throw new Refused('no_answer', `no JSON-RPC answer with id ${id}: ${text.slice(0, 300)}`);
  if (answer.error) throw new Refused(`jsonrpc_${answer.error.code}`, answer.error.message);
  return answer;
}

/**
 * null when `origin` serves MCP at /mcp; otherwise why not. A daemon without /mcp answers 404 (its
 * "not found" for every unknown path); one with it answers a token-less POST with 401.
 */
export async function mcpUnavailable(origin: string): Promise<string | null> {
  try {
    const res = await fetch(`${origin}/mcp`, { method: 'POST', headers: headers(null, null), body: '{}', signal: AbortSignal.timeout(WAIT_MS) });
    await res.arrayBuffer();
    if (res.status === 404) return 'this daemon has no /mcp endpoint (POST /mcp answered 404)';
    return null;
  } catch (err) {
    return `POST /mcp failed: ${(err as Error).message}`;
  }
}
