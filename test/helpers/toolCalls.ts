// Calling a daemon tool from a test client and reading its result: the answer text, the error, the
// continuation_id line, the progress frames of one call. Every wait is bounded.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { CallToolResult, ServerFrame } from '../../server/protocol';
import type { TestClient } from './client';
import type { RunningDaemon } from './daemon';

let seq = 0;

export const isResult = (id: string) => (f: ServerFrame) => f.op === 'call_tool_res' && f.request_id === id;

/** Sends one call_tool and resolves with its result (and the request_id it used). */
export async function callTool(client: TestClient, name: string, args: Record<string, unknown>, timeoutMs = 15000): Promise<CallToolResult & { id: string }> {
  const id = `${name}-${++seq}`;
  client.send({ op: 'call_tool', request_id: id, name, arguments: args });
  return { ...(await client.next<CallToolResult>(isResult(id), timeoutMs)), id };
}

export function okText(res: CallToolResult): string {
  assert.ok(res.ok, `the call failed: ${JSON.stringify(res)}`);
  return res.outputs.map((o) => o.text).join('');
}

export function errorOf(res: CallToolResult): { code: string; message: string } {
  assert.ok(!res.ok, `expected an error, got ${JSON.stringify(res).slice(0, 2000)}`);
  return res.error;
}

export function continuationOf(text: string): string {
  const m = /\ncontinuation_id: ([0-9a-f-]{36})$/.exec(text);
  assert.ok(m, `no continuation_id line in ${JSON.stringify(text.slice(-500))}`);
  return m[1];
}

export function progressOf(client: TestClient, id: string): string[] {
  return client.frames
    .filter((f): f is Extract<ServerFrame, { op: 'progress' }> => f.op === 'progress' && f.request_id === id)
    .map((f) => f.message);
}

/** The local-mode secret a daemon wrote to its discovery file. */
export function localSecretOf(d: RunningDaemon): string {
  return JSON.parse(fs.readFileSync(path.join(d.stateDir, 'daemon.json'), 'utf8')).secret as string;
}

/** Environment that keeps the developer's own settings out of a spawned daemon. */
export const CLEAN_PROVIDER_ENV: Record<string, undefined> = {
  MCP_ENABLE_MULTI_USER: undefined, SUPABASE_URL: undefined, SUPABASE_JWT_SECRET: undefined, DATABASE_URL: undefined,
  SUPABASE_ANON_KEY: undefined, MCP_SESSION_TIMEOUT: undefined, MCP_MAX_CONNECTIONS_PER_USER: undefined, EXAI_WS_HOST: undefined,
  EXAI_IDLE_EXIT_SECONDS: undefined, EXAI_DAEMON_ID: undefined,
  EXAI_PROVIDER_BASE_URL: undefined, EXAI_PROVIDER_API_KEY: undefined, EXAI_DEFAULT_MODEL: undefined, EXAI_PROVIDER_TIMEOUT_SECONDS: undefined,
  EXAI_PROVIDER_MAX_CONCURRENT: undefined, EXAI_PROVIDER_QUEUE_LENGTH: undefined, EXAI_PROVIDER_MAX_RETRIES: undefined,
  EXAI_FILES_MAX_FILE_BYTES: undefined, EXAI_FILES_MAX_CALL_BYTES: undefined,
  KIMI_API_KEY: undefined, KIMI_API_URL: undefined, GLM_API_KEY: undefined, GLM_API_URL: undefined,
};
