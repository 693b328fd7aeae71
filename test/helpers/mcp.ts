// Test clients for the daemon's /mcp endpoint:
//   - mcpConnect(): the SDK's own Client + StreamableHTTPClientTransport, with a bearer the test can
//     change between requests (a refreshed token, or another user's token on the same session);
//   - rawMcp(): one hand-made HTTP request (any Host, Origin, method or body), its answer parsed
//     (JSON, or the JSON-RPC messages of an SSE body). Every wait is bounded.
import http from 'node:http';
import https from 'node:https';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema, type LoggingMessageNotification } from '@modelcontextprotocol/sdk/types.js';
import { within } from './wait';

export interface McpTestClient {
  client: Client;
  transport: StreamableHTTPClientTransport;
  sessionId: string;
  /** The bearer sent from the next request on. */
  setToken(token: string): void;
  /** notifications/message received so far (on the GET stream). */
  logMessages: LoggingMessageNotification['params'][];
  /** Ends the session (DELETE) when `terminate`, then closes the client. Never throws. */
  close(terminate?: boolean): Promise<void>;
}

export function mcpUrl(port: number): URL {
  return new URL(`http://127.0.0.1:${port}/mcp`);
}

/** Initializes a session as the SDK client does (POST initialize, initialized, GET stream). */
export async function mcpConnect(port: number, token: string, name = 'exai-test'): Promise<McpTestClient> {
  let bearer = token;
  const client = new Client({ name, version: '1.2.3' });
  const logMessages: LoggingMessageNotification['params'][] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logMessages.push(n.params));
  const transport = new StreamableHTTPClientTransport(mcpUrl(port), {
    fetch: (url, init) => {
      const headers = new Headers(init?.headers);
      headers.set('authorization', `Bearer ${bearer}`);
      return fetch(url, { ...init, headers, signal: init?.signal ?? AbortSignal.timeout(30_000) });
    },
    reconnectionOptions: { maxReconnectionDelay: 1000, initialReconnectionDelay: 200, reconnectionDelayGrowFactor: 1.5, maxRetries: 0 },
  });
  client.onerror = () => {}; // a closed GET stream at the session's end is expected in these tests
  await client.connect(transport, { timeout: 10_000 });
  return {
    client,
    transport,
    sessionId: transport.sessionId!,
    setToken: (t) => void (bearer = t),
    logMessages,
    async close(terminate = true) {
      if (terminate) await within(transport.terminateSession(), 5000).catch(() => {});
      await within(client.close(), 5000).catch(() => {});
    },
  };
}

export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The JSON body, or the JSON-RPC messages of an SSE body, or null. */
  json: any;
  messages: any[];
}

export interface RawRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: unknown;
  /** Stop reading an SSE body after this long (default 5 s) and return what arrived. */
  readMs?: number;
  /**
   * Write the body but never end the request (for answers that come before the body is complete,
   * like 413): ending it after the daemon closed the socket would fail with EPIPE instead.
   */
  holdOpen?: boolean;
  /** Speak https, trusting this CA certificate. */
  ca?: Buffer;
}

/** One HTTP request to the daemon on 127.0.0.1; Host, Origin and everything else as given. */
export function rawMcp(port: number, req: RawRequest = {}): Promise<RawAnswer> {
  const body = req.body === undefined ? undefined : typeof req.body === 'string' ? req.body : JSON.stringify(req.body);
  const headers: Record<string, string> = {
    ...(body !== undefined ? { 'content-type': 'application/json', accept: 'application/json, text/event-stream' } : {}),
    ...req.headers,
  };
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, method: req.method ?? 'POST', path: req.path ?? '/mcp', headers, timeout: 10_000 };
    const r = (req.ca ? https.request({ ...options, ca: req.ca, servername: 'localhost' }, onAnswer) : http.request(options, onAnswer));
    function onAnswer(res: http.IncomingMessage) {
      let text = '';
      const timer = setTimeout(() => res.destroy(), req.readMs ?? 5000);
      const done = () => {
        clearTimeout(timer);
        let json: any = null;
        const messages: any[] = [];
        if (String(res.headers['content-type']).includes('text/event-stream')) {
          for (const line of text.split('\n')) if (line.startsWith('data: ') && line.length > 6) messages.push(JSON.parse(line.slice(6)));
        } else {
          try { json = JSON.parse(text); } catch { json = null; }
          if (json) messages.push(json);
        }
        resolve({ status: res.statusCode!, headers: res.headers, text, json, messages });
      };
      res.on('data', (d) => {
        text += d;
        // An SSE answer to one request ends with its response; stop there.
        if (String(res.headers['content-type']).includes('text/event-stream') && /"(result|error)":/.test(text) && text.endsWith('\n\n')) res.destroy();
      });
      res.on('end', done);
      res.on('close', done);
    }
    r.on('timeout', () => r.destroy(new Error('request timed out')));
    r.on('error', reject);
    if (req.holdOpen) r.write(body ?? '');
    else r.end(body);
  });
}

/** The initialize request body a client sends. */
export function initializeBody(protocolVersion = '2025-11-25', id: number | string = 1) {
  return { jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion, capabilities: {}, clientInfo: { name: 'raw-test', version: '0.0.1' } } };
}

/** Initializes with a raw request; returns the session id and the negotiated protocol version. */
export async function rawInitialize(port: number, token: string, protocolVersion = '2025-11-25'): Promise<{ sessionId: string; protocolVersion: string; answer: RawAnswer }> {
  const answer = await rawMcp(port, { body: initializeBody(protocolVersion), headers: { authorization: `Bearer ${token}` } });
  if (answer.status !== 200) throw new Error(`initialize answered ${answer.status}: ${answer.text}`);
  const sessionId = String(answer.headers['mcp-session-id']);
  await rawMcp(port, { body: { jsonrpc: '2.0', method: 'notifications/initialized' }, headers: { authorization: `Bearer ${token}`, 'mcp-session-id': sessionId } });
  return { sessionId, protocolVersion: answer.messages[0]?.result?.protocolVersion, answer };
}

/** @deprecated The same as `within` from ./wait; use that. (Kept so that tests written against this name still build.) */
export const withTimeout = within;
