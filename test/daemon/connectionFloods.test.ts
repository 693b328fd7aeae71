// One connection must not be able to hurt the daemon's other users (local mode, real daemon
// processes): bytes before hello_ack, a client that stops reading its replies, kept call_tool
// results, bad input echoed back, and the local connection limit. Every loop is bounded in count
// and time; memory is read from /proc/<pid>/status and only bounded generously.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { connect, helloClient, type TestClient } from '../helpers/client';
import { startDaemon, type DaemonOptions, type RunningDaemon } from '../helpers/daemon';
import { getJson } from '../helpers/getJson';
import { sleep, waitFor, within } from '../helpers/wait';
import { readDiscovery } from '../../server/auth/localMode';
import {
  MAX_BYTES_BEFORE_HELLO_ACK, MAX_ERROR_MESSAGE_CHARS, type CallToolResult, type HelloAck, type ServerFrame,
} from '../../server/protocol';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Settings of the test runner's environment that would change what the daemon does. */
const CLEAN_ENV: Record<string, undefined> = {
  MCP_ENABLE_MULTI_USER: undefined, SUPABASE_URL: undefined, DATABASE_URL: undefined, MCP_SESSION_TIMEOUT: undefined,
  MCP_MAX_CONNECTIONS_PER_USER: undefined, EXAI_MAX_BUFFERED_BYTES: undefined, NODE_OPTIONS: undefined,
};

const isResult = (id: string) => (f: ServerFrame) => f.op === 'call_tool_res' && f.request_id === id;
const wireBytes = (frame: ServerFrame) => Buffer.byteLength(JSON.stringify(frame));

/** The daemon's resident memory in bytes (Linux /proc). */
function rssOf(pid: number): number {
  const kB = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kB) * 1024;
}

describe('connection floods (local mode daemon)', function () {
  this.timeout(60000);
  const daemons: RunningDaemon[] = [];
  const clients: TestClient[] = [];

  const start = async (env: DaemonOptions['env'] = {}) => {
    const d = await startDaemon({ env: { ...CLEAN_ENV, EXAI_HELLO_TIMEOUT_MS: '5000', ...env } });
    daemons.push(d);
    return d;
  };
  const secretOf = (d: RunningDaemon) => readDiscovery(d.stateDir)!.secret!;
  const open = async (d: RunningDaemon, instance: string) => {
    const { client, ack } = await helloClient(d.url, secretOf(d), instance);
    clients.push(client);
    assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
    return client;
  };
  const raw = async (d: RunningDaemon) => {
    const client = await connect(d.url);
    clients.push(client);
    return client;
  };

  afterEach(async function () {
    await Promise.all(clients.splice(0).map((c) => { c.ws.resume(); return c.close(); }));
  });
  after(async function () {
    for (const d of daemons.splice(0)) await within(d.stop(), 15000, 'daemon stop').catch(() => d.kill9());
  });

  describe('before hello_ack', function () {
    let daemon: RunningDaemon;
    before(async () => (daemon = await start()));

    it(`closes with 1009 once more than ${MAX_BYTES_BEFORE_HELLO_ACK / KiB} KiB arrive, before the 4 MiB first frame is complete`, async function () {
      const client = await raw(daemon);
      // One 4 MiB text message sent as 16 KiB fragments; the last fragment (fin) is never needed.
      const fragment = '['.repeat(16 * KiB);
      let sent = 0;
      let refused = false;
      void client.closed.then(() => (refused = true));
      void client.next((f) => f.op === 'hello_ack', 30000).then(() => (refused = true), () => {});
      while (!refused && sent < 255) {
        client.ws.send(fragment, { fin: false });
        sent++;
        await sleep(30);
      }
      assert.ok(refused, `no refusal after ${sent} fragments (${sent * 16} KiB)`);
      assert.equal((await within(client.closed, 10000, 'close')).code, 1009);
      const ack = client.frames.find((f) => f.op === 'hello_ack') as Extract<HelloAck, { ok: false }> | undefined;
      assert.equal(ack?.error.code, 'frame_too_large');
      assert.match(ack!.error.message, /before the hello was answered/);
      // The daemon stopped at the first socket chunk past the bound (a chunk is at most 64 KiB).
      const line = daemon.logLines().find((l) => l.msg === 'too many bytes before hello_ack');
      assert.ok(line, 'the daemon logs the refusal');
      assert.ok(line.bytes > MAX_BYTES_BEFORE_HELLO_ACK && line.bytes <= MAX_BYTES_BEFORE_HELLO_ACK + 64 * KiB, `refused after ${line.bytes} bytes`);
    });

    it('refuses twenty deeply nested 1 MiB first frames with 1009 without parsing them (never 4000/4001)', async function () {
      const nested = '['.repeat(512 * KiB) + ']'.repeat(512 * KiB);
      const sockets = await Promise.all(Array.from({ length: 20 }, () => raw(daemon)));
      for (const s of sockets) s.sendRaw(nested);
      const codes = await within(Promise.all(sockets.map((s) => s.closed.then((c) => c.code))), 20000, 'all closed');
      assert.deepEqual(codes, Array(20).fill(1009));
      // Everyone else was not frozen: a signed-in window still answers.
      const client = await open(daemon, 'vscode-bystander');
      client.send({ op: 'ping', request_id: 'p' });
      await client.next((f) => f.op === 'pong', 5000);
    });

    it('still reads a hello with the largest allowed token (16 KiB) and refuses it for its token, not its size', async function () {
      const client = await raw(daemon);
      client.send({ op: 'hello', protocol: 2, token: 'x'.repeat(16 * KiB), client: { instance: 'i'.repeat(128), version: 'v'.repeat(64) } });
      const ack = await client.next((f) => f.op === 'hello_ack');
      assert.equal(ack.op === 'hello_ack' && !ack.ok && ack.error.code, 'token_invalid');
      assert.equal((await within(client.closed, 5000, 'close')).code, 4003);
    });

    it('after hello_ack the bound no longer applies: a 1 MiB echo goes through', async function () {
      const client = await open(daemon, 'vscode-big-after-ack');
      const text = 'y'.repeat(MiB);
      client.send({ op: 'call_tool', request_id: 'big', name: 'echo', arguments: { text } });
      const res = await client.next<CallToolResult>(isResult('big'), 15000);
      assert.ok(res.ok && res.outputs[0].text === text);
    });
  });

  describe('a client that stops reading (EXAI_MAX_BUFFERED_BYTES=1 MiB)', function () {
    it('is closed with 4010 instead of the daemon queueing its replies without bound', async function () {
      const daemon = await start({ EXAI_MAX_BUFFERED_BYTES: String(MiB) });
      const client = await open(daemon, 'vscode-not-reading');
      const bystander = await open(daemon, 'vscode-bystander');
      const rssBefore = rssOf(daemon.pid);
      (client.ws as unknown as { _socket: import('node:net').Socket })._socket.pause(); // stops reading; keeps sending
      // 100,000 small requests (about 4 MB sent) would queue over 300 MiB of list_tools replies.
      const frame = JSON.stringify({ op: 'list_tools', request_id: 'l' });
      let sent = 0;
      const deadline = Date.now() + 30000;
      while (sent < 100_000 && Date.now() < deadline) {
        for (let i = 0; i < 1000; i++) client.ws.send(frame);
        sent += 1000;
        await new Promise((r) => setImmediate(r));
        if (client.ws.bufferedAmount > 8 * MiB) await sleep(50); // the daemon stopped reading us: no point piling up here
      }
      await waitFor(async () => (await getJson(daemon.port, '/health')).body.connections === 1, 15000, 'the non-reading connection is closed', { everyMs: 100 });
      const grew = rssOf(daemon.pid) - rssBefore;
      assert.ok(grew < 150 * MiB, `daemon RSS grew by ${Math.round(grew / MiB)} MiB`);

      const line = daemon.logLines().find((l) => l.msg === 'client is not reading its replies');
      assert.ok(line, 'the daemon logs why it closed the connection');
      assert.equal(line.limit, MiB);
      assert.ok(line.buffered_bytes > MiB && line.buffered_bytes < MiB + 64 * KiB, `closed at ${line.buffered_bytes} buffered bytes`);
      assert.ok(daemon.logs().includes('"reason":"client_not_reading"'));

      (client.ws as unknown as { _socket: import('node:net').Socket })._socket.resume();
      const { code } = await within(client.closed, 15000, 'client sees the close');
      assert.ok(code === 4010 || code === 1006, `close code ${code}`);
      bystander.send({ op: 'ping', request_id: 'still-here' });
      await bystander.next((f) => f.op === 'pong', 5000);
    });
  });

  describe('kept call_tool results are bounded in bytes (daemon heap capped at 128 MiB)', function () {
    it('200 sequential 1 MiB echo calls on one connection keep the daemon alive; the oldest result is no longer kept', async function () {
      const daemon = await start({ NODE_OPTIONS: '--max-old-space-size=128' });
      const client = await open(daemon, 'vscode-echo-flood');
      const text = (i: number) => `${i}:`.padEnd(MiB - 16, 'z');
      /** Waits without the helper's next(), which remembers every frame it returned: this test must not keep 200 MiB either. */
      const result = (id: string) => within(new Promise<CallToolResult>((resolve) => {
        const onMessage = (data: Buffer) => {
          const frame = JSON.parse(data.toString()) as ServerFrame;
          if (!isResult(id)(frame)) return;
          client.ws.off('message', onMessage);
          resolve(frame as CallToolResult);
        };
        client.ws.on('message', onMessage);
      }), 15000, `result ${id}`);
      for (let i = 0; i < 200; i++) {
        const pending = result(`e${i}`);
        client.send({ op: 'call_tool', request_id: `e${i}`, name: 'echo', arguments: { text: text(i) } });
        const res = await pending;
        assert.ok(res.ok, JSON.stringify(res).slice(0, 300));
        client.frames.length = 0;
      }
      assert.equal(daemon.proc.exitCode, null, `the daemon died: ${daemon.stderr().slice(-500)}`);
      assert.ok(rssOf(daemon.pid) < 512 * MiB, `daemon RSS ${Math.round(rssOf(daemon.pid) / MiB)} MiB`);

      // The newest result is still replayed as it was; the oldest was dropped and says so.
      client.send({ op: 'call_tool', request_id: 'e199', name: 'echo', arguments: { text: 'ignored' } });
      const replayed = await client.next<CallToolResult>(isResult('e199'), 15000);
      assert.ok(replayed.ok && replayed.outputs[0].text === text(199));
      client.send({ op: 'call_tool', request_id: 'e0', name: 'echo', arguments: { text: 'ignored' } });
      const dropped = await client.next<CallToolResult>(isResult('e0'), 15000);
      assert.ok(!dropped.ok && dropped.error.code === 'result_unavailable', JSON.stringify(dropped).slice(0, 300));
      assert.match(dropped.error.message, /new request_id/);
    });
  });

  describe('bad input gets a short error, never an echo of itself', function () {
    let daemon: RunningDaemon;
    let client: TestClient;
    before(async () => {
      daemon = await start();
    });
    beforeEach(async () => {
      client = await open(daemon, 'vscode-bad-input');
    });
    const errorFor = async (frame: unknown) => {
      client.frames.length = 0;
      client.sendRaw(JSON.stringify(frame));
      return client.next((f) => f.op === 'error' || f.op === 'call_tool_res', 15000);
    };

    it('a 3 MiB request_id: the error carries no request_id and is under 300 bytes', async function () {
      const reply = await errorFor({ op: 'call_tool', request_id: 'r'.repeat(3 * MiB), name: 'echo', arguments: { text: 'hi' } });
      assert.equal(reply.op, 'error');
      assert.equal('request_id' in reply, false);
      assert.ok(wireBytes(reply) < 300, `${wireBytes(reply)} bytes: ${JSON.stringify(reply)}`);
      assert.match(JSON.stringify(reply), /request_id/); // it names the field at fault
    });

    it('a request_id that is not a string is not echoed either', async function () {
      const reply = await errorFor({ op: 'call_tool', request_id: { nested: 'x'.repeat(MiB) }, name: 'echo', arguments: {} });
      assert.equal('request_id' in reply, false);
      assert.ok(wireBytes(reply) < 300, `${wireBytes(reply)} bytes`);
    });

    it('a 3 MiB op: unknown_op in under 300 bytes, naming only its length', async function () {
      const reply = await errorFor({ op: 'o'.repeat(3 * MiB), request_id: 'op1' });
      assert.ok(reply.op === 'error' && reply.error.code === 'unknown_op');
      assert.equal(reply.request_id, 'op1');
      assert.ok(wireBytes(reply) < 300, `${wireBytes(reply)} bytes: ${JSON.stringify(reply)}`);
      assert.match(reply.error.message, /3145728-character string/);
    });

    it('an op that is a big object: unknown_op in under 300 bytes', async function () {
      const reply = await errorFor({ op: { a: 'x'.repeat(MiB) }, request_id: 'op2' });
      assert.ok(reply.op === 'error' && reply.error.code === 'unknown_op');
      assert.ok(wireBytes(reply) < 300, `${wireBytes(reply)} bytes`);
    });

    it('a short unknown op is still quoted', async function () {
      const reply = await errorFor({ op: 'frobnicate', request_id: 'op3' });
      assert.ok(reply.op === 'error' && reply.error.message.includes('"frobnicate"'));
    });

    it('250,000 unknown argument keys: invalid_frame in under 300 bytes', async function () {
      const args: Record<string, number> = { text: 0 };
      for (let i = 0; i < 250_000; i++) args[`k${i}`] = 1;
      const reply = await errorFor({ op: 'call_tool', request_id: 'keys', name: 'echo', arguments: args });
      assert.ok(reply.op === 'error' && reply.error.code === 'invalid_frame', JSON.stringify(reply).slice(0, 300));
      assert.equal(reply.request_id, 'keys');
      assert.ok(wireBytes(reply) < 300, `${wireBytes(reply)} bytes: ${JSON.stringify(reply)}`);
      assert.match(reply.error.message, /at most 256 keys/);
    });

    it('unknown argument keys of 2 MiB in all: invalid_arguments cut to 1000 characters', async function () {
      const args: Record<string, string> = { text: 'hi' };
      for (let i = 0; i < 200; i++) args[`${i}:`.padEnd(10 * KiB, 'k')] = 'v';
      const reply = await errorFor({ op: 'call_tool', request_id: 'long-keys', name: 'echo', arguments: args });
      assert.ok(reply.op === 'call_tool_res' && !reply.ok && reply.error.code === 'invalid_arguments', JSON.stringify(reply).slice(0, 300));
      assert.ok(reply.error.message.length <= MAX_ERROR_MESSAGE_CHARS + 60, `${reply.error.message.length} characters`);
      assert.ok(wireBytes(reply) < 1200, `${wireBytes(reply)} bytes`);
      assert.match(reply.error.message, /^Invalid arguments for echo: .*Unrecognized keys/s);
      assert.match(reply.error.message, /more characters left out\)$/);
    });

    it('an auth frame with a 3 MiB token: a short invalid_frame', async function () {
      const reply = await errorFor({ op: 'auth', request_id: 'a1', token: 't'.repeat(3 * MiB) });
      assert.ok(reply.op === 'error' && reply.error.code === 'invalid_frame');
      assert.equal(reply.request_id, 'a1');
      assert.ok(wireBytes(reply) < 300, `${wireBytes(reply)} bytes`);
    });
  });

  describe('limits', function () {
    it('local mode accepts a 6th, 7th… 12th VS Code window with the default settings', async function () {
      const daemon = await start();
      for (let i = 1; i <= 12; i++) await open(daemon, `vscode-window-${i}`);
      assert.equal((await getJson(daemon.port, '/health')).body.connections, 12);
    });
  });
});
