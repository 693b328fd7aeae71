// The wire protocol (docs/protocol.md) against the real daemon in local mode: handshake and its
// close codes, the upgrade checks, tools, concurrency, cancel and per-connection dedup.
import assert from 'node:assert/strict';
import { connect, helloClient, type TestClient } from '../helpers/client';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { getJson } from '../helpers/getJson';
import { readDiscovery } from '../../server/auth/localMode';
import { PROTOCOL_VERSION, type CallToolResult, type HelloAck, type ServerFrame, type ToolDescription } from '../../server/protocol';

const isResult = (id: string) => (f: ServerFrame) => f.op === 'call_tool_res' && f.request_id === id;

describe('wire protocol (local mode daemon)', function () {
  let daemon: RunningDaemon;
  let secret: string;
  const clients: TestClient[] = [];
  const open = async (instance = 'vscode-a') => {
    const { client, ack } = await helloClient(daemon.url, secret, instance);
    clients.push(client);
    assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
    return { client, ack: ack as Extract<HelloAck, { ok: true }> };
  };

  before(async function () {
    daemon = await startDaemon({ env: { EXAI_HELLO_TIMEOUT_MS: '700' } });
    secret = readDiscovery(daemon.stateDir)!.secret!;
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  after(async () => {
    assert.equal(await daemon.stop(), 0);
  });

  it('prints exactly one listening line with host, port, pid and version', function () {
    assert.deepEqual(Object.keys(daemon.line).sort(), ['event', 'host', 'pid', 'port', 'version']);
    assert.equal(daemon.line.event, 'listening');
    assert.equal(daemon.line.host, '127.0.0.1');
    assert.equal(daemon.line.pid, daemon.proc.pid);
    assert.match(daemon.line.version, /^\d+\.\d+\.\d+/);
  });

  describe('handshake', function () {
    it('acknowledges a hello with session id, user, expiry and server version', async function () {
      const { ack } = await open();
      assert.match(ack.session_id, /^[0-9a-f-]{36}$/);
      assert.match(ack.user.id, /^local:/);
      assert.equal(ack.expires_at, null);
      assert.equal(ack.server.version, daemon.line.version);
    });

    it('gives each connection its own session id', async function () {
      const a = await open('vscode-a');
      const b = await open('vscode-b');
      assert.notEqual(a.ack.session_id, b.ack.session_id);
    });

    it('accepts the token from an Authorization: Bearer header on the upgrade', async function () {
      const client = await connect(daemon.url, { headers: { authorization: `Bearer ${secret}` } });
      clients.push(client);
      client.send({ op: 'hello', protocol: 2, client: { instance: 'vscode-header' } });
      const ack = await client.next((f) => f.op === 'hello_ack');
      assert.equal(ack.op === 'hello_ack' && ack.ok, true);
    });

    it('answers identical hellos from two windows (no global dedup)', async function () {
      const frame = JSON.stringify({ op: 'hello', protocol: 2, token: secret, client: { instance: 'same', version: '1' } });
      const [a, b] = await Promise.all([connect(daemon.url), connect(daemon.url)]);
      clients.push(a, b);
      a.sendRaw(frame);
      b.sendRaw(frame);
      const [ackA, ackB] = await Promise.all([a.next((f) => f.op === 'hello_ack'), b.next((f) => f.op === 'hello_ack')]);
      assert.equal((ackA as any).ok && (ackB as any).ok, true);
    });

    const refusals: [string, (c: TestClient) => void, number, string][] = [
      ['a first frame that is not JSON', (c) => c.sendRaw('{nope'), 4000, 'invalid_json'],
      ['a first frame that is not hello', (c) => c.send({ op: 'list_tools' }), 4001, 'hello_required'],
      ['a wrong token', (c) => c.send({ op: 'hello', protocol: 2, token: 'not-the-secret' }), 4003, 'token_invalid'],
      ['a hello without any token', (c) => c.send({ op: 'hello', protocol: 2 }), 4003, 'token_invalid'],
      ['an unsupported protocol', (c) => c.send({ op: 'hello', protocol: 1, token: 'x' }), 4009, 'protocol_unsupported'],
      ['a protocol newer than the daemon\'s', (c) => c.send({ op: 'hello', protocol: 4, token: 'x' }), 4009, 'protocol_unsupported'],
    ];
    for (const [what, act, code, errorCode] of refusals) {
      it(`closes with ${code} (${errorCode}) after ${what}`, async function () {
        const client = await connect(daemon.url);
        clients.push(client);
        act(client);
        const ack = await client.next((f) => f.op === 'hello_ack');
        assert.equal(ack.op === 'hello_ack' && !ack.ok && ack.error.code, errorCode);
        assert.ok(ack.op === 'hello_ack' && !ack.ok && ack.error.message.length > 10, 'a message a person can act on');
        assert.equal((await client.closed).code, code);
      });
    }

    it('closes with 4002 when no hello arrives in time', async function () {
      const client = await connect(daemon.url);
      clients.push(client);
      const started = Date.now();
      assert.equal((await client.closed).code, 4002);
      assert.ok(Date.now() - started >= 600, 'waited for the hello timeout');
      assert.equal((client.frames[0] as any).error.code, 'hello_timeout');
    });

    it('processes frames sent right behind the hello, before hello_ack', async function () {
      const client = await connect(daemon.url);
      clients.push(client);
      client.send({ op: 'hello', protocol: 2, token: secret });
      client.send({ op: 'ping', request_id: 'early' });
      await client.next((f) => f.op === 'pong' && f.request_id === 'early');
      assert.equal(client.frames[0].op, 'hello_ack', 'hello_ack comes first');
    });
  });

  describe('upgrade and HTTP', function () {
    it('refuses a browser Origin with HTTP 403', async function () {
      await assert.rejects(connect(daemon.url, { origin: 'https://evil.example' }), (err: any) => err.statusCode === 403);
    });

    it('refuses paths other than / with 404', async function () {
      await assert.rejects(connect(`ws://127.0.0.1:${daemon.port}/mcp`), (err: any) => err.statusCode === 404);
    });

    it('closes a connection whose frame exceeds maxPayload (1009)', async function () {
      const { client } = await open();
      client.sendRaw(JSON.stringify({ op: 'call_tool', request_id: 'big', name: 'echo', arguments: { text: 'x'.repeat(4 * 1024 * 1024 + 10) } }));
      assert.equal((await client.closed).code, 1009);
    });

    it('serves GET /health with counts and nothing secret', async function () {
      await open('vscode-h1');
      await open('vscode-h2');
      const { status, body } = await getJson(daemon.port, '/health');
      assert.equal(status, 200);
      assert.equal(body.status, 'ok');
      assert.equal(body.mode, 'local');
      assert.equal(body.version, daemon.line.version);
      assert.equal(body.connections, 2);
      assert.equal(body.users, 1);
      assert.ok(typeof body.uptime_s === 'number');
      const text = JSON.stringify(body);
      assert.ok(!text.includes(secret) && !text.includes('local:'), 'no secret, no user id');
    });
  });

  describe('after hello', function () {
    it('lists the built-in tools with JSON schemas, echoing request_id', async function () {
      const { client } = await open();
      client.send({ op: 'list_tools', request_id: 'lt-1' });
      const res = await client.next<{ op: 'list_tools_res'; request_id: string; tools: ToolDescription[] }>((f) => f.op === 'list_tools_res');
      assert.equal(res.request_id, 'lt-1');
      assert.deepEqual(res.tools.map((t) => t.name).sort(), [
        'challenge', 'chat', 'codereview', 'consensus', 'debug', 'echo', 'listmodels', 'planner', 'sessions', 'thinkdeep', 'threads', 'usage', 'version', 'whoami',
      ]);
      const echo = res.tools.find((t) => t.name === 'echo')!;
      assert.equal((echo.inputSchema as any).type, 'object');
      assert.deepEqual((echo.inputSchema as any).required, ['text']);
    });

    it('acks, then answers call_tool with outputs', async function () {
      const { client } = await open();
      client.send({ op: 'call_tool', request_id: 'c1', name: 'echo', arguments: { text: 'hi there' } });
      await client.next((f) => f.op === 'call_tool_ack' && f.request_id === 'c1');
      const res = await client.next<CallToolResult>(isResult('c1'));
      assert.deepEqual(res, { op: 'call_tool_res', request_id: 'c1', ok: true, outputs: [{ type: 'text', text: 'hi there' }] });
    });

    it('protocol 3: a call that finishes at once gets call_tool_res alone; a call still running gets call_tool_ack, its progress, then the result', async function () {
      const { client, ack } = await helloClient(daemon.url, secret, 'vscode-v3', { protocol: 3 });
      clients.push(client);
      assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
      // A pipelined batch: every echo finishes within the daemon's turn, so no acks at all.
      for (let i = 0; i < 20; i++) client.send({ op: 'call_tool', request_id: `fast-${i}`, name: 'echo', arguments: { text: `t${i}` } });
      client.send({ op: 'call_tool', request_id: 'slow', name: 'echo', arguments: { text: 'later', delay_ms: 300 } });
      for (let i = 0; i < 20; i++) await client.next(isResult(`fast-${i}`));
      const slow = await client.next<CallToolResult>(isResult('slow'));
      assert.deepEqual(slow, { op: 'call_tool_res', request_id: 'slow', ok: true, outputs: [{ type: 'text', text: 'later' }] });
      const about = (id: string) => client.frames.filter((f) => 'request_id' in f && f.request_id === id).map((f) => f.op);
      for (let i = 0; i < 20; i++) assert.deepEqual(about(`fast-${i}`), ['call_tool_res'], `fast-${i}`);
      assert.deepEqual(about('slow'), ['call_tool_ack', 'progress', 'call_tool_res']);
    });

    it('protocol 2 (older extensions): every call is still acked before its result', async function () {
      const { client } = await open('vscode-v2');
      for (let i = 0; i < 5; i++) client.send({ op: 'call_tool', request_id: `v2-${i}`, name: 'echo', arguments: { text: 'x' } });
      for (let i = 0; i < 5; i++) await client.next(isResult(`v2-${i}`));
      for (let i = 0; i < 5; i++) {
        assert.deepEqual(client.frames.filter((f) => 'request_id' in f && f.request_id === `v2-${i}`).map((f) => f.op), ['call_tool_ack', 'call_tool_res']);
      }
    });

    it('answers whoami with this connection’s user and session', async function () {
      const { client, ack } = await open('vscode-who');
      client.send({ op: 'call_tool', request_id: 'w', name: 'whoami', arguments: {} });
      const res = await client.next<CallToolResult>(isResult('w'));
      assert.ok(res.ok);
      const who = JSON.parse(res.outputs[0].text);
      assert.equal(who.session_id, ack.session_id);
      assert.equal(who.user_id, ack.user.id);
      assert.equal(who.instance, 'vscode-who');
    });

    it('answers version with the daemon and protocol versions', async function () {
      const { client } = await open();
      client.send({ op: 'call_tool', request_id: 'v', name: 'version', arguments: {} });
      const res = await client.next<CallToolResult>(isResult('v'));
      assert.ok(res.ok);
      const v = JSON.parse(res.outputs[0].text);
      assert.equal(v.version, daemon.line.version);
      assert.equal(v.protocol, 3);
      assert.equal(PROTOCOL_VERSION, 3);
      assert.equal(v.mode, 'local');
      assert.match(v.node, /^v22\./);
    });

    it('reports errors with the request_id: unknown tool, bad arguments, unknown op, malformed frame', async function () {
      const { client } = await open();
      client.send({ op: 'call_tool', request_id: 'u', name: 'nope', arguments: {} });
      client.send({ op: 'call_tool', request_id: 'b', name: 'echo', arguments: { text: 42 } });
      client.send({ op: 'frobnicate', request_id: 'f' });
      client.send({ op: 'cancel', request_id: 5 });
      client.send({ op: 'call_tool', request_id: 'm' });
      const unknownTool = await client.next<CallToolResult>(isResult('u'));
      const badArgs = await client.next<CallToolResult>(isResult('b'));
      const unknownOp = await client.next((f) => f.op === 'error' && f.request_id === 'f');
      const malformed = await client.next((f) => f.op === 'error' && f.request_id === 'm');
      assert.equal(!unknownTool.ok && unknownTool.error.code, 'unknown_tool');
      assert.equal(!badArgs.ok && badArgs.error.code, 'invalid_arguments');
      assert.equal(unknownOp.op === 'error' && unknownOp.error.code, 'unknown_op');
      assert.equal(malformed.op === 'error' && malformed.error.code, 'invalid_frame');
      await client.next((f) => f.op === 'error' && f.request_id === undefined && f.error.code === 'invalid_frame');
    });

    it('answers ping with pong and a non-JSON frame with an error, staying open', async function () {
      const { client } = await open();
      client.sendRaw('garbage');
      await client.next((f) => f.op === 'error' && f.error.code === 'invalid_json');
      client.send({ op: 'ping', request_id: 'p1' });
      await client.next((f) => f.op === 'pong' && f.request_id === 'p1');
    });

    it('runs many calls at once on one connection; a fast one overtakes a slow one', async function () {
      const { client } = await open();
      client.send({ op: 'call_tool', request_id: 'slow', name: 'echo', arguments: { text: 'slow', delay_ms: 800 } });
      for (let i = 0; i < 20; i++) client.send({ op: 'call_tool', request_id: `fast-${i}`, name: 'echo', arguments: { text: `f${i}`, delay_ms: 50 } });
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => client.next<CallToolResult>(isResult(`fast-${i}`))));
      assert.ok(results.every((r, i) => r.ok && r.outputs[0].text === `f${i}`));
      assert.equal(client.frames.some(isResult('slow')), false, 'the slow call is still running');
      const slow = await client.next<CallToolResult>(isResult('slow'));
      assert.ok(slow.ok);
    });

    it('cancel really stops a call in flight', async function () {
      const { client } = await open();
      const started = Date.now();
      client.send({ op: 'call_tool', request_id: 'long', name: 'echo', arguments: { text: 'never', delay_ms: 30000 } });
      await client.next((f) => f.op === 'progress' && f.request_id === 'long');
      client.send({ op: 'cancel', request_id: 'long' });
      const ack = await client.next((f) => f.op === 'cancel_ack');
      assert.deepEqual(ack, { op: 'cancel_ack', request_id: 'long', ok: true });
      const res = await client.next<CallToolResult>(isResult('long'));
      assert.equal(!res.ok && res.error.code, 'cancelled');
      assert.ok(Date.now() - started < 5000);
      client.send({ op: 'cancel', request_id: 'not-running' });
      assert.deepEqual(await client.next((f) => f.op === 'cancel_ack' && f.request_id === 'not-running'), { op: 'cancel_ack', request_id: 'not-running', ok: false });
    });

    it('runs a repeated request_id once on one connection (in flight and after)', async function () {
      const { client } = await open();
      client.send({ op: 'call_tool', request_id: 'dup', name: 'echo', arguments: { text: 'first', delay_ms: 300 } });
      client.send({ op: 'call_tool', request_id: 'dup', name: 'echo', arguments: { text: 'second', delay_ms: 300 } });
      const a = await client.next<CallToolResult>(isResult('dup'));
      const b = await client.next<CallToolResult>(isResult('dup'));
      assert.deepEqual(a, b);
      assert.equal(a.ok && a.outputs[0].text, 'first');
      // Ran once: one progress frame ("waiting ... ms") for the request_id.
      assert.equal(client.frames.filter((f) => f.op === 'progress' && f.request_id === 'dup').length, 1);
      client.send({ op: 'call_tool', request_id: 'dup', name: 'echo', arguments: { text: 'third' } });
      const c = await client.next<CallToolResult>(isResult('dup'));
      assert.equal(c.ok && c.outputs[0].text, 'first', 'after completion the stored result comes back');
    });

    it('never deduplicates identical frames across connections', async function () {
      const a = await open('vscode-a');
      const b = await open('vscode-b');
      const frame = JSON.stringify({ op: 'call_tool', request_id: 'same-id', name: 'echo', arguments: { text: 'same', delay_ms: 100 } });
      a.client.sendRaw(frame);
      b.client.sendRaw(frame);
      const [ra, rb] = await Promise.all([a.client.next<CallToolResult>(isResult('same-id')), b.client.next<CallToolResult>(isResult('same-id'))]);
      assert.ok(ra.ok && rb.ok);
      assert.equal(a.client.frames.filter((f) => f.op === 'progress').length, 1, 'ran on connection A');
      assert.equal(b.client.frames.filter((f) => f.op === 'progress').length, 1, 'ran on connection B too');
    });
  });
});
