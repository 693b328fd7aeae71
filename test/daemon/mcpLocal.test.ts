// MCP Streamable HTTP on /mcp in local mode: the real daemon (dist/server.js), the SDK's own client
// (StreamableHTTPClientTransport) and hand-made HTTP requests. Covers initialize and protocol
// versions, one tool registry behind both transports, isError sentences, progress and cancel
// (notifications/cancelled reaching the upstream request), ping and logging/setLevel, DNS-rebinding
// (Host, Origin), the bearer (missing, wrong, in the query string), request bounds, DELETE, 404 for
// unknown sessions, and the drain on SIGTERM. Every wait is bounded.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { ServerFrame, ToolDescription } from '../../server/protocol';
import { helloClient, type TestClient } from '../helpers/client';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { getJson } from '../helpers/getJson';
import { initializeBody, mcpConnect, rawInitialize, rawMcp, type McpTestClient } from '../helpers/mcp';
import { sleep, waitFor, within } from '../helpers/wait';
import { startFakeOpenAI, type FakeOpenAI } from '../providers/fakeOpenAI';

const API_KEY = 'sk-exai-mcp-test-0123456789abcdefghijkl';
const CLEAN_ENV: Record<string, undefined> = {
  MCP_ENABLE_MULTI_USER: undefined, SUPABASE_URL: undefined, SUPABASE_JWT_SECRET: undefined, DATABASE_URL: undefined,
  SUPABASE_ANON_KEY: undefined, MCP_SESSION_TIMEOUT: undefined, MCP_MAX_CONNECTIONS_PER_USER: undefined, EXAI_WS_HOST: undefined,
  EXAI_IDLE_EXIT_SECONDS: undefined, EXAI_DAEMON_ID: undefined, EXAI_DRAIN_SECONDS: undefined,
  EXAI_PROVIDER_BASE_URL: undefined, EXAI_PROVIDER_API_KEY: undefined, EXAI_DEFAULT_MODEL: undefined, EXAI_PROVIDER_TIMEOUT_SECONDS: undefined,
  KIMI_API_KEY: undefined, GLM_API_KEY: undefined,
};

const textOf = (result: any) => (result.content as { type: string; text: string }[]).map((c) => c.text).join('');

describe('MCP Streamable HTTP at /mcp: local mode (real daemon, SDK client)', function () {
  this.timeout(30000);
  let fake: FakeOpenAI;
  let daemon: RunningDaemon;
  let secret: string;
  const extra: RunningDaemon[] = [];
  const mcpClients: McpTestClient[] = [];
  const wsClients: TestClient[] = [];

  const secretOf = (d: RunningDaemon) => JSON.parse(fs.readFileSync(path.join(d.stateDir, 'daemon.json'), 'utf8')).secret as string;
  const connect = async (d = daemon) => {
    const c = await mcpConnect(d.port, secretOf(d));
    mcpClients.push(c);
    return c;
  };
  const bearer = () => ({ authorization: `Bearer ${secret}` });

  before(async function () {
    fake = await startFakeOpenAI({ apiKey: API_KEY });
    daemon = await startDaemon({
      env: { ...CLEAN_ENV, MCP_MAX_CONNECTIONS_PER_USER: '50', EXAI_PROVIDER_BASE_URL: fake.baseUrl, EXAI_PROVIDER_API_KEY: API_KEY, EXAI_DEFAULT_MODEL: 'fake-model' },
    });
    secret = secretOf(daemon);
  });

  beforeEach(function () {
    fake.set({});
    fake.clearRequests();
  });

  afterEach(async function () {
    await Promise.all(mcpClients.splice(0).map((c) => c.close()));
    await Promise.all(wsClients.splice(0).map((c) => c.close()));
    await Promise.all(extra.splice(0).map((d) => within(d.stop(), 15000, 'daemon stop').catch(() => d.kill9())));
  });

  after(async function () {
    this.timeout(20000);
    try {
      const logs = daemon.logs();
      assert.ok(logs.includes('mcp session opened'), 'the log records MCP sessions');
      assert.ok(!logs.includes(secret), 'the local secret never reaches the log');
      assert.ok(!logs.includes(API_KEY), 'the provider key never reaches the log');
      assert.equal(await within(daemon.stop(), 15000, 'daemon stop'), 0);
    } finally {
      await daemon?.kill9();
      await fake?.close();
    }
  });

  it('initializes with the local secret as bearer: a session id, server info, and the session in /health', async function () {
    const c = await connect();
    assert.match(c.sessionId, /^[0-9a-f-]{36}$/);
    assert.deepEqual(c.client.getServerVersion(), { name: 'exai', title: 'EXAI', version: daemon.line.version });
    assert.ok(c.client.getServerCapabilities()?.tools, 'tools capability');
    assert.ok(c.client.getServerCapabilities()?.logging, 'logging capability');
    const who = JSON.parse(textOf(await c.client.callTool({ name: 'whoami', arguments: {} })));
    assert.match(who.user_id, /^local:/);
    assert.equal(who.session_id, c.sessionId, "the tool sees the MCP session's id");
    const health = (await getJson(daemon.port, '/health')).body;
    assert.equal(health.mcp_sessions, 1);
    assert.equal(health.users, 1);
  });

  for (const version of ['2025-06-18', '2025-11-25']) {
    it(`negotiates protocol version ${version}`, async function () {
      const { sessionId, protocolVersion } = await rawInitialize(daemon.port, secret, version);
      assert.equal(protocolVersion, version);
      const list = await rawMcp(daemon.port, {
        body: { jsonrpc: '2.0', id: 2, method: 'tools/list' },
        headers: { ...bearer(), 'mcp-session-id': sessionId, 'mcp-protocol-version': version },
      });
      assert.equal(list.status, 200);
      assert.ok(list.messages[0].result.tools.length >= 6);
      const del = await rawMcp(daemon.port, { method: 'DELETE', headers: { ...bearer(), 'mcp-session-id': sessionId } });
      assert.equal(del.status, 200);
    });
  }

  it('serves the one tool registry: tools/list equals the WebSocket list_tools (schema, title, annotations)', async function () {
    const c = await connect();
    const { client: ws, ack } = await helloClient(daemon.url, secret, 'mcp-compare');
    wsClients.push(ws);
    assert.ok(ack.op === 'hello_ack' && ack.ok);
    ws.send({ op: 'list_tools', request_id: 'lt' });
    const wsTools = (await ws.next<Extract<ServerFrame, { op: 'list_tools_res' }>>((f) => f.op === 'list_tools_res')).tools;
    const mcpTools = (await c.client.listTools()).tools;
    const pick = (t: ToolDescription | (typeof mcpTools)[number]) => ({ name: t.name, title: t.title, description: t.description, inputSchema: t.inputSchema, annotations: t.annotations });
    assert.deepEqual(mcpTools.map(pick), wsTools.map(pick));
    const byName = Object.fromEntries(mcpTools.map((t) => [t.name, t]));
    for (const name of ['whoami', 'sessions', 'version']) assert.equal(byName[name].annotations?.readOnlyHint, true, `${name} is read-only`);
    assert.equal(byName.chat.annotations?.readOnlyHint, false);
    assert.equal(byName.chat.annotations?.openWorldHint, true);
    for (const t of mcpTools) assert.ok(t.title && t.title.length > 0, `${t.name} has a title`);
    assert.deepEqual((byName.echo.inputSchema as any).required, ['text']);
  });

  it('answers tool failures as isError results with the same sentences as the WebSocket', async function () {
    const c = await connect();
    const { client: ws } = await helloClient(daemon.url, secret, 'mcp-errors');
    wsClients.push(ws);
    const cases: [string, Record<string, unknown>][] = [
      ['echo', { nope: 1 }],
      ['no_such_tool', {}],
      ['chat', { prompt: 'x', continuation_id: '00000000-0000-4000-8000-000000000000' }],
    ];
    for (const [i, [name, args]] of cases.entries()) {
      ws.send({ op: 'call_tool', request_id: `e${i}`, name, arguments: args });
      const wsRes = await ws.next<any>((f) => f.op === 'call_tool_res' && f.request_id === `e${i}`);
      assert.equal(wsRes.ok, false);
      const mcpRes = await c.client.callTool({ name, arguments: args });
      assert.equal(mcpRes.isError, true, `${name}: isError`);
      assert.equal(textOf(mcpRes), wsRes.error.message, `${name}: the same sentence`);
      assert.equal((mcpRes._meta as any)['exai/error_code'], wsRes.error.code);
    }
  });

  it('answers ping and logging/setLevel with {}', async function () {
    const c = await connect();
    assert.deepEqual(await c.client.ping(), {});
    assert.deepEqual(await c.client.setLoggingLevel('info'), {});
  });

  it('sends progress as notifications/progress when the caller gives a progress token, and only then', async function () {
    const c = await connect();
    const seen: any[] = [];
    const res = await c.client.callTool({ name: 'echo', arguments: { text: 'later', delay_ms: 100 } }, undefined, { onprogress: (p) => void seen.push(p) });
    assert.equal(textOf(res), 'later');
    assert.deepEqual(seen, [{ progress: 1, message: 'waiting 100 ms' }]);

    // The chat answer streams as several notifications that add up to the answer.
    const chunks = ['one ', 'two ', 'three ', 'four'];
    fake.set({ chunks, chunkDelayMs: 300 });
    const streamed: any[] = [];
    const chat = await c.client.callTool({ name: 'chat', arguments: { prompt: 'count' } }, undefined, { onprogress: (p) => void streamed.push(p) });
    assert.ok(textOf(chat).startsWith('one two three four\n\ncontinuation_id: '), textOf(chat));
    assert.ok(streamed.length >= 2, JSON.stringify(streamed));
    assert.equal(streamed.map((p) => p.message).join(''), chunks.join(''));
    assert.deepEqual(streamed.map((p) => p.progress), streamed.map((_, i) => i + 1), 'progress increases');

    // Without a progress token: no notifications/progress on the call's stream.
    const raw = await rawMcp(daemon.port, {
      body: { jsonrpc: '2.0', id: 'no-token', method: 'tools/call', params: { name: 'echo', arguments: { text: 'quiet', delay_ms: 50 } } },
      headers: { ...bearer(), 'mcp-session-id': c.sessionId },
    });
    assert.equal(raw.status, 200);
    assert.deepEqual(raw.messages.map((m) => m.method ?? 'response'), ['response']);
    assert.equal(raw.messages[0].result.content[0].text, 'quiet');
  });

  it('notifications/cancelled aborts the call as cancel does: the upstream request is aborted, the call gets no response', async function () {
    const c = await connect();
    fake.set({ chunks: ['slow ', 'answer'], chunkDelayMs: 20_000 });
    const controller = new AbortController();
    const call = c.client.callTool({ name: 'chat', arguments: { prompt: 'cancel me' } }, undefined, { signal: controller.signal, timeout: 30_000 });
    await fake.waitForRequests(1, 10_000);
    controller.abort('the user pressed stop');
    await assert.rejects(call, /the user pressed stop/);
    const upstream = await fake.waitForAbort(0, 10_000);
    assert.equal(upstream.clientAborted, true, 'the provider request was aborted');

    // On the wire: the call's SSE stream ends without a response once the cancel arrives.
    const started = Date.now();
    const pending = rawMcp(daemon.port, {
      body: { jsonrpc: '2.0', id: 'raw-cancel', method: 'tools/call', params: { name: 'echo', arguments: { text: 'never', delay_ms: 30_000 } } },
      headers: { ...bearer(), 'mcp-session-id': c.sessionId },
      readMs: 20_000,
    });
    await sleep(300);
    const note = await rawMcp(daemon.port, {
      body: { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'raw-cancel', reason: 'test' } },
      headers: { ...bearer(), 'mcp-session-id': c.sessionId },
    });
    assert.equal(note.status, 202);
    const answer = await pending;
    assert.ok(Date.now() - started < 15_000, 'the stream ended when the call was cancelled');
    assert.deepEqual(answer.messages.filter((m) => 'result' in m || 'error' in m), [], 'no response for a cancelled call');
    // The session goes on.
    assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { text: 'after' } })), 'after');
  });

  it('refuses another Host (421) and a foreign Origin (403) before anything else; accepts loopback names', async function () {
    const evilHost = await rawMcp(daemon.port, { body: initializeBody(), headers: { ...bearer(), host: 'evil.example.com' } });
    assert.equal(evilHost.status, 421);
    // The daemon-wide Host check (transport/hostCheck.ts) answers before any route, /mcp included.
    assert.equal(evilHost.json.error, 'misdirected_request');
    assert.match(evilHost.json.message, /DNS rebinding/);
    for (const origin of ['http://evil.example.com', 'null', `http://localhost.evil.example.com:${daemon.port}`]) {
      const r = await rawMcp(daemon.port, { body: initializeBody(), headers: { ...bearer(), origin } });
      assert.equal(r.status, 403, `Origin ${origin}`);
    }
    // Refused before the token is even looked at.
    assert.equal((await rawMcp(daemon.port, { body: initializeBody(), headers: { host: 'evil.example.com' } })).status, 421);
    for (const [host, origin] of [[`localhost:${daemon.port}`, `http://localhost:${daemon.port}`], [`[::1]:${daemon.port}`, 'http://[::1]:6274'], [`127.0.0.1:${daemon.port}`, undefined]]) {
      const r = await rawMcp(daemon.port, { body: initializeBody(), headers: { ...bearer(), host: host!, ...(origin ? { origin } : {}) } });
      assert.equal(r.status, 200, `Host ${host} Origin ${origin}: ${r.text}`);
      await rawMcp(daemon.port, { method: 'DELETE', headers: { ...bearer(), 'mcp-session-id': String(r.headers['mcp-session-id']) } });
    }
  });

  it('refuses a missing or wrong bearer (401, WWW-Authenticate) and a token in the query string (400)', async function () {
    const none = await rawMcp(daemon.port, { body: initializeBody() });
    assert.equal(none.status, 401);
    assert.match(String(none.headers['www-authenticate']), /^Bearer /);
    assert.doesNotMatch(String(none.headers['www-authenticate']), /error=/, 'no error code when no token was sent (RFC 6750)');
    assert.match(none.json.error.message, /Authorization: Bearer/);

    const wrong = await rawMcp(daemon.port, { body: initializeBody(), headers: { authorization: 'Bearer not-the-secret' } });
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.headers['www-authenticate']), /error="invalid_token"/);
    assert.match(wrong.json.error.message, /local daemon secret did not match/);

    const basic = await rawMcp(daemon.port, { body: initializeBody(), headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } });
    assert.equal(basic.status, 401);

    const query = await rawMcp(daemon.port, { path: `/mcp?access_token=${secret}`, body: initializeBody(), headers: bearer() });
    assert.equal(query.status, 400);
    assert.match(query.json.error.message, /Authorization header/);
    assert.match(String(query.headers['www-authenticate']), /error="invalid_request"/);
    const jwtAnyName = await rawMcp(daemon.port, { path: '/mcp?t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln', body: initializeBody(), headers: bearer() });
    assert.equal(jwtAnyName.status, 400, 'a JWT in the query string, whatever its name');

    // Local mode has no authorization server to name.
    const meta = await rawMcp(daemon.port, { method: 'GET', path: '/.well-known/oauth-protected-resource/mcp' });
    assert.equal(meta.status, 404);
    assert.match(meta.json.error.message, /local mode/);
  });

  it('bounds requests: 413 over 4 MiB, no batches, no ids over 128 characters, POST/GET/DELETE only', async function () {
    const c = await connect();
    const session = { ...bearer(), 'mcp-session-id': c.sessionId };
    const huge = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x'.repeat(4 * 1024 * 1024 + 10) } } });
    // Declared too long: refused before a byte of the body is read.
    const declared = await rawMcp(daemon.port, { body: '{', headers: { ...session, 'content-length': String(huge.length) }, holdOpen: true });
    assert.equal(declared.status, 413);
    assert.match(declared.json.error.message, /at most 4194304 bytes/);
    // Sent without a length (chunked): refused once more than the bound has arrived.
    const streamed = await rawMcp(daemon.port, { body: huge, headers: { ...session, 'transfer-encoding': 'chunked' }, holdOpen: true });
    assert.equal(streamed.status, 413);
    const batch = await rawMcp(daemon.port, { body: [{ jsonrpc: '2.0', id: 1, method: 'ping' }, { jsonrpc: '2.0', id: 2, method: 'ping' }], headers: session });
    assert.equal(batch.status, 400);
    assert.match(batch.json.error.message, /batches/);
    const longId = await rawMcp(daemon.port, { body: { jsonrpc: '2.0', id: 'i'.repeat(129), method: 'ping' }, headers: session });
    assert.equal(longId.status, 400);
    const notJson = await rawMcp(daemon.port, { body: '{"jsonrpc":', headers: session });
    assert.equal(notJson.status, 400);
    assert.equal(notJson.json.error.code, -32700);
    const put = await rawMcp(daemon.port, { method: 'PUT', body: {}, headers: session });
    assert.equal(put.status, 405);
    assert.equal(put.headers.allow, 'GET, POST, DELETE');
    // The session is unharmed.
    assert.deepEqual(await c.client.ping(), {});
  });

  it('without a session only initialize is accepted (400); an unknown session id gets 404, with or without a token', async function () {
    const list = await rawMcp(daemon.port, { body: { jsonrpc: '2.0', id: 1, method: 'tools/list' }, headers: bearer() });
    assert.equal(list.status, 400);
    const get = await rawMcp(daemon.port, { method: 'GET', headers: { ...bearer(), accept: 'text/event-stream' } });
    assert.equal(get.status, 400);
    const unknown = { 'mcp-session-id': '5f0c9a7e-1111-4222-8333-444455556666' };
    assert.equal((await rawMcp(daemon.port, { body: { jsonrpc: '2.0', id: 1, method: 'ping' }, headers: { ...bearer(), ...unknown } })).status, 404);
    assert.equal((await rawMcp(daemon.port, { body: { jsonrpc: '2.0', id: 1, method: 'ping' }, headers: unknown })).status, 404);
  });

  it('DELETE ends the session: later requests on it get 404 and /health no longer counts it', async function () {
    const c = await connect();
    const before = (await getJson(daemon.port, '/health')).body.mcp_sessions;
    await c.transport.terminateSession();
    const after = await rawMcp(daemon.port, { body: { jsonrpc: '2.0', id: 1, method: 'ping' }, headers: { ...bearer(), 'mcp-session-id': c.sessionId } });
    assert.equal(after.status, 404);
    assert.equal((await getJson(daemon.port, '/health')).body.mcp_sessions, before - 1);
  });

  it('drains on SIGTERM: calls in flight finish, new sessions get 503, late calls end shutting_down, exit 0', async function () {
    const d = await startDaemon({ env: { ...CLEAN_ENV, EXAI_DRAIN_SECONDS: '3' } });
    extra.push(d);
    const c = await mcpConnect(d.port, secretOf(d));
    mcpClients.push(c);
    const short = c.client.callTool({ name: 'echo', arguments: { text: 'made it', delay_ms: 1000 } });
    const long = c.client.callTool({ name: 'echo', arguments: { text: 'too slow', delay_ms: 60_000 } }, undefined, { timeout: 30_000 });
    await sleep(200);
    d.proc.kill('SIGTERM');
    await waitFor(async () => (await getJson(d.port, '/health').then((r) => r.body, () => ({ status: 'gone' }))).status !== 'ok', 5000, 'draining');
    const refused = await rawMcp(d.port, { body: initializeBody(), headers: { authorization: `Bearer ${secretOf(d)}` } }).catch(() => null);
    if (refused) assert.equal(refused.status, 503, refused.text);
    assert.equal(textOf(await short), 'made it');
    const late = await long;
    assert.equal(late.isError, true);
    assert.match(textOf(late), /shutting down and cancelled this echo call/);
    assert.equal((late._meta as any)['exai/error_code'], 'shutting_down');
    assert.equal(await within(d.exited, 15000, 'exit'), 0);
  });

  it('keeps a daemon that exits when unused running while an MCP session is open', async function () {
    const d = await startDaemon({ env: { ...CLEAN_ENV, EXAI_IDLE_EXIT_SECONDS: '1' } });
    extra.push(d);
    const c = await mcpConnect(d.port, secretOf(d));
    mcpClients.push(c);
    await sleep(2500);
    assert.equal(d.proc.exitCode, null, 'still running with an MCP session open');
    assert.deepEqual(await c.client.ping(), {});
    await c.transport.terminateSession();
    assert.equal(await within(d.exited, 10_000, 'exit once unused'), 0);
  });

  it('reports a 404 to the SDK client for a session this daemon does not hold', async function () {
    const c = await connect();
    await rawMcp(daemon.port, { method: 'DELETE', headers: { ...bearer(), 'mcp-session-id': c.sessionId } });
    const err = await c.client.ping().then(() => null, (e) => e);
    assert.ok(err instanceof StreamableHTTPError, String(err));
    assert.equal((err as StreamableHTTPError).code, 404);
  });
});
