// src/daemon/client.ts: against the real daemon in local mode (token = the secret in daemon.json),
// and against tiny fake servers for the close codes a local daemon never sends (4004, 4008, 4009)
// and for heartbeat and crash handling. Every wait is bounded.
import assert from 'node:assert/strict';
import net from 'node:net';
import os from 'node:os';
import { WebSocketServer, type WebSocket } from 'ws';
import { readDiscovery } from '../../server/auth/localMode';
import { PROTOCOL_VERSION, type ServerFrame } from '../../server/protocol';
import {
  DEFAULT_TIMING, DaemonClient, DaemonRequestError, backoffDelay,
  type ClientState, type DaemonClientOptions,
} from '../../src/daemon/client';
import { isLoopbackHost } from '../../server/net';
import { CrashGuard, DaemonStartFailed, DaemonVersionMismatch } from '../../src/daemon/launcher';
import { waitState } from '../helpers/clientState';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { sleep } from '../helpers/wait';

interface Harness {
  client: DaemonClient;
  states: ClientState[];
  logs: string[];
  endpointCalls: () => number;
}

const is = <K extends ClientState['kind']>(kind: K) => (s: ClientState) => s.kind === kind;

/** A fake daemon: accepts sockets, hands each hello to `onHello`, records what happened. */
async function fakeDaemon(onHello: (ws: WebSocket, hello: any, index: number) => void, host = '127.0.0.1') {
  const wss = new WebSocketServer({ host, port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const rec = { connections: 0, hellos: [] as any[], frames: [] as any[], clientCloseCodes: [] as number[] };
  wss.on('connection', (ws) => {
    rec.connections++;
    let first = true;
    ws.on('close', (code) => rec.clientCloseCodes.push(code));
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      if (!first) return void rec.frames.push(frame);
      first = false;
      rec.hellos.push(frame);
      onHello(ws, frame, rec.hellos.length - 1);
    });
  });
  const port = (wss.address() as net.AddressInfo).port;
  return {
    rec,
    port,
    url: `ws://127.0.0.1:${port}/`,
    close: () => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => r()); }),
  };
}

const ackOk = (ws: WebSocket, extra: Record<string, unknown> = {}) =>
  ws.send(JSON.stringify({ op: 'hello_ack', ok: true, session_id: 'fake-session', user: { id: 'u1', email: 'a@example.com' }, expires_at: null, server: { version: 'fake' }, ...extra }));
const refuse = (ws: WebSocket, closeCode: number, code: string, message: string) => {
  ws.send(JSON.stringify({ op: 'hello_ack', ok: false, error: { code, message } }));
  ws.close(closeCode, code);
};

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('DaemonClient', function () {
  this.timeout(20_000);
  let daemon: RunningDaemon;
  let secret: string;
  const clients: DaemonClient[] = [];
  const extraDaemons: RunningDaemon[] = [];
  const fakes: { close(): Promise<void> }[] = [];

  const harness = (endpoint: DaemonClientOptions['endpoint'], over: Partial<DaemonClientOptions> = {}): Harness => {
    let calls = 0;
    const logs: string[] = [];
    const client = new DaemonClient({
      endpoint: () => { calls++; return endpoint(); },
      instance: 'vscode-test',
      clientVersion: '0.1.0-test',
      log: { info: (m) => logs.push(`info ${m}`), warn: (m) => logs.push(`warn ${m}`), error: (m) => logs.push(`error ${m}`) },
      backoff: { baseMs: 50, maxMs: 500 },
      ...over,
    });
    const states: ClientState[] = [];
    client.onState((s) => states.push(s));
    clients.push(client);
    return { client, states, logs, endpointCalls: () => calls };
  };
  const local = (over: Partial<DaemonClientOptions> = {}) => harness(async () => ({ url: daemon.url, token: secret }), over);
  const connected = async (h: Harness) => {
    h.client.start();
    return (await waitState(h.client, is('connected'))) as Extract<ClientState, { kind: 'connected' }>;
  };

  before(async function () {
    daemon = await startDaemon();
    secret = readDiscovery(daemon.stateDir)!.secret!;
  });
  afterEach(async function () {
    for (const c of clients.splice(0)) c.stop();
    await Promise.all(fakes.splice(0).map((f) => f.close()));
    // SIGTERM, bounded wait, then SIGKILL (a no-op for one that exited).
    await Promise.all(extraDaemons.splice(0).map(async (d) => {
      await Promise.race([d.stop(), sleep(5000)]);
      await d.kill9();
    }));
  });
  after(async function () {
    await Promise.race([daemon.stop(), sleep(5000)]);
    await daemon.kill9();
  });

  describe('with the real daemon', function () {
    it('connects: connecting -> connected with session id, user and server version; never logs the token', async function () {
      const h = local();
      const s = await connected(h);
      assert.match(s.sessionId, /^[0-9a-f-]{36}$/);
      assert.match(s.user.id, /^local:/);
      assert.equal(s.expiresAt, null);
      assert.equal(s.serverVersion, daemon.line.version);
      assert.deepEqual(h.states.map((x) => x.kind), ['connecting', 'connected']);
      assert.deepEqual(h.states[0], { kind: 'connecting', attempt: 0 });
      assert.ok(h.logs.some((l) => l.includes('token present')));
      assert.ok(h.logs.every((l) => !l.includes(secret)), 'a log line carries the token');
    });

    it('routes many concurrent calls by request_id (results arrive out of order)', async function () {
      const h = local();
      await connected(h);
      const n = 40;
      const progress = new Map<number, string[]>();
      // Later calls finish first: a client that took "the next frame" would mix them up.
      const calls = Array.from({ length: n }, (_, i) => {
        progress.set(i, []);
        return h.client.callTool('echo', { text: `msg-${i}`, delay_ms: (n - i) * 5 }, { onProgress: (m) => progress.get(i)!.push(m) });
      });
      const results = await Promise.all(calls);
      results.forEach((r, i) => {
        assert.ok(r.ok, JSON.stringify(r));
        assert.deepEqual(r.outputs, [{ type: 'text', text: `msg-${i}` }]);
        assert.deepEqual(progress.get(i), [`waiting ${(n - i) * 5} ms`]);
      });
    });

    it('cancels a call through its AbortSignal: ok:false, code cancelled', async function () {
      const h = local();
      await connected(h);
      const controller = new AbortController();
      const t0 = Date.now();
      const pending = h.client.callTool('echo', { text: 'slow', delay_ms: 30_000 }, { signal: controller.signal });
      const other = h.client.callTool('echo', { text: 'other', delay_ms: 300 });
      setTimeout(() => controller.abort(), 100);
      const res = await pending;
      assert.equal(res.ok, false);
      assert.equal(!res.ok && res.error.code, 'cancelled');
      assert.ok(Date.now() - t0 < 3000);
      // Only that call: the other one still completes.
      assert.deepEqual(await other, { ok: true, outputs: [{ type: 'text', text: 'other' }] });
    });

    it('does not send a call whose signal is already aborted', async function () {
      const h = local();
      await connected(h);
      const res = await h.client.callTool('echo', { text: 'x' }, { signal: AbortSignal.abort() });
      assert.deepEqual(res, { ok: false, error: { code: 'cancelled', message: 'The call was cancelled before it was sent.' } });
    });

    it("returns the daemon's refusals as ok:false (unknown tool, bad arguments)", async function () {
      const h = local();
      await connected(h);
      const unknown = await h.client.callTool('no_such_tool', {});
      assert.equal(!unknown.ok && unknown.error.code, 'unknown_tool');
      const bad = await h.client.callTool('echo', { text: 42 });
      assert.equal(!bad.ok && bad.error.code, 'invalid_arguments');
    });

    it('lists the tools', async function () {
      const h = local();
      await connected(h);
      const names = (await h.client.listTools()).map((t) => t.name).sort();
      assert.deepEqual(names, [
        'challenge', 'chat', 'codereview', 'consensus', 'debug', 'echo', 'listmodels', 'planner', 'sessions', 'thinkdeep', 'threads', 'usage', 'version', 'whoami',
      ]);
    });

    it('reauthenticates with the local secret, and reports a refused token', async function () {
      const h = local();
      await connected(h);
      assert.deepEqual(await h.client.reauthenticate(secret), { ok: true, expiresAt: null });
      const bad = await h.client.reauthenticate('not-the-secret');
      assert.equal(bad.ok, false);
      assert.equal(!bad.ok && bad.code, 'token_invalid');
      // The connection stays usable.
      assert.equal(h.client.state.kind, 'connected');
      assert.equal((await h.client.callTool('echo', { text: 'still here' })).ok, true);
    });

    it('4003: a wrong token -> error token_invalid, not retried until reconnectNow()', async function () {
      let token = 'wrong-token';
      const h = harness(async () => ({ url: daemon.url, token }));
      h.client.start();
      const s = await waitState(h.client, is('error'));
      assert.equal(s.kind === 'error' && s.code, 'token_invalid');
      assert.equal(s.kind === 'error' && s.closeCode, 4003);
      assert.equal(s.kind === 'error' && s.retrying, false);
      assert.match(s.kind === 'error' ? s.message : '', /Sign in again/);
      await sleep(1000);
      assert.equal(h.endpointCalls(), 1, 'the client tried again');
      assert.equal(h.client.state, s);
      assert.ok(h.logs.every((l) => !l.includes('wrong-token')));
      token = secret;
      h.client.reconnectNow();
      await waitState(h.client, is('connected'));
      assert.equal(h.endpointCalls(), 2);
    });

    it('rejects calls in flight when the daemon dies (never resent), then reconnects to a new daemon by itself', async function () {
      const first = await startDaemon();
      extraDaemons.push(first);
      let target = { url: first.url, token: readDiscovery(first.stateDir)!.secret! };
      const h = harness(async () => target);
      const before = await connected(h);
      const inflight = [
        h.client.callTool('echo', { text: 'a', delay_ms: 10_000 }),
        h.client.callTool('echo', { text: 'b', delay_ms: 10_000 }),
      ];
      const failures = inflight.map((p) => p.then((r) => assert.fail(`resolved: ${JSON.stringify(r)}`), (err: unknown) => err));
      await sleep(100);
      await first.kill9();
      for (const err of await Promise.all(failures)) {
        assert.ok(err instanceof DaemonRequestError, String(err));
        assert.equal(err.code, 'connection_lost');
        assert.match(err.message, /connection to the EXAI daemon was lost .* it was not resent/);
      }
      await waitState(h.client, is('reconnecting'));
      // Not connected: new calls fail at once with a clear error.
      await assert.rejects(h.client.callTool('echo', { text: 'x' }), (err: DaemonRequestError) => err.code === 'not_connected' && /Not connected to the EXAI daemon/.test(err.message));

      const second = await startDaemon();
      extraDaemons.push(second);
      target = { url: second.url, token: readDiscovery(second.stateDir)!.secret! };
      const t0 = Date.now();
      const after = (await waitState(h.client, is('connected'), 5000)) as Extract<ClientState, { kind: 'connected' }>;
      assert.ok(Date.now() - t0 < 2000, 'reconnected within the backoff bound (max 500 ms)');
      assert.notEqual(after.sessionId, before.sessionId);
      assert.deepEqual(await h.client.callTool('echo', { text: 'back' }), { ok: true, outputs: [{ type: 'text', text: 'back' }] });
    });

    it('keeps a healthy connection through many heartbeats', async function () {
      const h = local({ timing: { pingIntervalMs: 50, pongTimeoutMs: 200 } });
      const s = await connected(h);
      await sleep(600);
      assert.equal(h.client.state, s);
    });

    it('stop() closes, emits stopped and does not reconnect; calls in flight reject', async function () {
      const h = local();
      await connected(h);
      const call = h.client.callTool('echo', { text: 'x', delay_ms: 5000 });
      h.client.stop();
      await assert.rejects(call, (err: DaemonRequestError) => err.code === 'stopped');
      assert.deepEqual(h.client.state, { kind: 'stopped' });
      await sleep(300);
      assert.equal(h.endpointCalls(), 1);
      assert.deepEqual(h.client.state, { kind: 'stopped' });
    });
  });

  describe('idle timeout (real daemon, MCP_SESSION_TIMEOUT=1)', function () {
    let idleDaemon: RunningDaemon;
    let idleSecret: string;
    before(async function () {
      idleDaemon = await startDaemon({ env: { MCP_SESSION_TIMEOUT: '1' } });
      idleSecret = readDiscovery(idleDaemon.stateDir)!.secret!;
    });
    after(async function () {
      await Promise.race([idleDaemon.stop(), sleep(5000)]);
      await idleDaemon.kill9();
    });
    const idleHarness = () => harness(async () => ({ url: idleDaemon.url, token: idleSecret }));

    it('a 4005 close is idle, not an error, and nothing reconnects until the connection is used', async function () {
      const h = idleHarness();
      await connected(h);
      const idle = await waitState(h.client, is('idle'), 10_000);
      assert.deepEqual(idle, { kind: 'idle', reason: 'The daemon closed the connection because nothing used it for its idle timeout.' });
      await sleep(2500); // more than two idle timeouts: a client that reconnected would show it
      assert.deepEqual(h.states.map((x) => x.kind), ['connecting', 'connected', 'idle']);
      assert.equal(h.endpointCalls(), 1);
      assert.ok(h.logs.every((l) => !l.startsWith('warn') && !l.startsWith('error')), h.logs.join('\n'));
    });

    it('the next use reconnects and goes through: concurrent calls share one reconnect; idle again afterwards, no loop', async function () {
      const h = idleHarness();
      const first = await connected(h);
      await waitState(h.client, is('idle'), 10_000);
      const [a, b, tools] = await Promise.all([
        h.client.callTool('echo', { text: 'a' }),
        h.client.callTool('echo', { text: 'b' }),
        h.client.listTools(),
      ]);
      assert.deepEqual(a, { ok: true, outputs: [{ type: 'text', text: 'a' }] });
      assert.deepEqual(b, { ok: true, outputs: [{ type: 'text', text: 'b' }] });
      assert.ok(tools.some((t) => t.name === 'whoami'));
      assert.equal(h.endpointCalls(), 2, 'one reconnect for the three calls');
      const now = h.client.state;
      assert.ok(now.kind === 'connected' && now.sessionId !== first.sessionId);
      await waitState(h.client, is('idle'), 10_000);
      await sleep(1500);
      assert.equal(h.client.state.kind, 'idle');
      assert.equal(h.endpointCalls(), 2);
      assert.deepEqual(h.states.map((x) => x.kind), ['connecting', 'connected', 'idle', 'connecting', 'connected', 'idle']);
    });

    it('re-authentication is upkeep, not use: it does not wake an idle client', async function () {
      const h = idleHarness();
      await connected(h);
      await waitState(h.client, is('idle'), 10_000);
      const r = await h.client.reauthenticate(idleSecret);
      assert.equal(!r.ok && r.code, 'not_connected');
      assert.equal(h.client.state.kind, 'idle');
      assert.equal(h.endpointCalls(), 1);
    });

    it('a call that wakes it while the daemon is gone fails as not connected (bounded), then the client retries as usual', async function () {
      const gone = await startDaemon({ env: { MCP_SESSION_TIMEOUT: '1' } });
      extraDaemons.push(gone);
      const target = { url: gone.url, token: readDiscovery(gone.stateDir)!.secret! };
      const h = harness(async () => target, { timing: { wakeMs: 5000 } });
      await connected(h);
      await waitState(h.client, is('idle'), 10_000);
      await gone.kill9();
      const t0 = Date.now();
      await assert.rejects(h.client.callTool('echo', { text: 'x' }), (err: DaemonRequestError) => err.code === 'not_connected' && /Not connected to the EXAI daemon/.test(err.message));
      assert.ok(Date.now() - t0 < 6000);
      assert.ok(['reconnecting', 'connecting'].includes(h.client.state.kind), JSON.stringify(h.client.state));
    });
  });

  describe('refusing insecure addresses', function () {
    it('never sends a token over ws:// to a non-loopback host (no connection attempt)', async function () {
      const external = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
      // A server that would see the attempt, on the machine's external address when it has one.
      const fake = await fakeDaemon((ws) => ackOk(ws), external ?? '127.0.0.1');
      fakes.push(fake);
      const host = external ?? 'exai.example.com';
      const h = harness(async () => ({ url: `ws://${host}:${fake.port}/`, token: 'secret-token' }));
      h.client.start();
      const s = await waitState(h.client, is('error'));
      assert.deepEqual(s, {
        kind: 'error', code: 'insecure_url', retrying: false,
        message: `Refusing to send your sign-in token over unencrypted ws:// to ${host}; use wss:// for a remote daemon.`,
      });
      await sleep(300);
      assert.equal(fake.rec.connections, 0, 'the client connected anyway');
      assert.equal(h.endpointCalls(), 1);
    });

    it('treats 127.0.0.0/8, ::1 and localhost as loopback, nothing else', function () {
      for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]']) assert.equal(isLoopbackHost(host), true, host);
      for (const host of ['10.0.0.1', '128.0.0.1', 'localhost.example.com', 'example.com', '0.0.0.0', '::', '127.0.0.1.nip.io']) assert.equal(isLoopbackHost(host), false, host);
    });

    it('connects over ws:// to localhost and [::1]-style loopback names', async function () {
      const h = harness(async () => ({ url: `ws://localhost:${daemon.port}/`, token: secret }));
      await connected(h);
    });
  });

  describe('close codes (fake daemon)', function () {
    it('4009: error protocol_unsupported with the daemon message, not retried', async function () {
      const fake = await fakeDaemon((ws, hello) => refuse(ws, 4009, 'protocol_unsupported', `This daemon speaks protocol 99, the client asked for ${hello.protocol}. Update the extension or the daemon so their versions match.`));
      fakes.push(fake);
      const h = harness(async () => ({ url: fake.url, token: 't' }));
      h.client.start();
      const s = await waitState(h.client, is('error'));
      assert.equal(s.kind === 'error' && s.code, 'protocol_unsupported');
      assert.equal(s.kind === 'error' && s.closeCode, 4009);
      assert.equal(s.kind === 'error' && s.retrying, false);
      assert.match(s.kind === 'error' ? s.message : '', /Update the extension or the daemon/);
      await sleep(500);
      assert.equal(fake.rec.connections, 1);
    });

    it('sends the documented hello frame', async function () {
      const fake = await fakeDaemon((ws) => ackOk(ws));
      fakes.push(fake);
      await connected(harness(async () => ({ url: fake.url, token: 'tok-1' })));
      assert.deepEqual(fake.rec.hellos[0], { op: 'hello', protocol: PROTOCOL_VERSION, token: 'tok-1', client: { instance: 'vscode-test', version: '0.1.0-test' } });
    });

    it('4004: calls onTokenExpired, then reconnects at once with the refreshed token', async function () {
      const fake = await fakeDaemon((ws, hello) => (hello.token === 'old' ? refuse(ws, 4004, 'token_expired', 'The token expired.') : ackOk(ws)));
      fakes.push(fake);
      let token = 'old';
      let refreshed = 0;
      const h = harness(async () => ({ url: fake.url, token }), { onTokenExpired: async () => { refreshed++; token = 'new'; } });
      h.client.start();
      await waitState(h.client, is('connected'));
      assert.equal(refreshed, 1);
      assert.deepEqual(fake.rec.hellos.map((x) => x.token), ['old', 'new']);
      const reconnecting = h.states.find((s) => s.kind === 'reconnecting');
      assert.equal(reconnecting?.kind === 'reconnecting' && reconnecting.delayMs, 0);
    });

    it('4004 twice in a row without a successful hello -> error token_expired, not retried', async function () {
      const fake = await fakeDaemon((ws) => refuse(ws, 4004, 'token_expired', 'The token expired.'));
      fakes.push(fake);
      let refreshed = 0;
      const h = harness(async () => ({ url: fake.url, token: 'stale' }), { onTokenExpired: async () => void refreshed++ });
      h.client.start();
      const s = await waitState(h.client, is('error'));
      assert.equal(s.kind === 'error' && s.code, 'token_expired');
      assert.equal(s.kind === 'error' && s.retrying, false);
      assert.match(s.kind === 'error' ? s.message : '', /Sign in again/);
      assert.equal(refreshed, 1);
      await sleep(300);
      assert.equal(fake.rec.connections, 2);
    });

    it('4008: error too_many_connections with the daemon message, retried slowly', async function () {
      const message = 'This account already has 5 open connections (the limit is 5). Close another VS Code window or wait for an idle one to time out.';
      const fake = await fakeDaemon((ws) => refuse(ws, 4008, 'too_many_connections', message));
      fakes.push(fake);
      const h = harness(async () => ({ url: fake.url, token: 't' }), { timing: { slowRetryMs: 600 } });
      h.client.start();
      const s = await waitState(h.client, is('error'));
      const t0 = Date.now();
      assert.equal(s.kind === 'error' && s.code, 'too_many_connections');
      assert.equal(s.kind === 'error' && s.retrying, true);
      assert.equal(s.kind === 'error' && s.closeCode, 4008);
      assert.ok(s.kind === 'error' && s.message.startsWith(message), s.kind === 'error' ? s.message : '');
      await sleep(400);
      assert.equal(fake.rec.connections, 1, 'retried before the slow delay');
      await waitState(h.client, is('connecting'), 2000);
      assert.ok(Date.now() - t0 >= 550);
    });

    it('4008 is retried every 10 s by default, so a killed daemon\'s user gets back in within a minute (45 s liveness bound + one retry)', function () {
      assert.equal(DEFAULT_TIMING.slowRetryMs, 10_000);
    });

    it('1001 after a shutdown frame: reconnecting, with the daemon message as the reason', async function () {
      const fake = await fakeDaemon((ws, _hello, i) => {
        if (i > 0) return ackOk(ws);
        ackOk(ws);
        setTimeout(() => {
          ws.send(JSON.stringify({ op: 'shutdown', message: 'The daemon is shutting down; reconnect to another daemon.' }));
          ws.close(1001, 'daemon shutting down');
        }, 50);
      });
      fakes.push(fake);
      const h = harness(async () => ({ url: fake.url, token: 't' }));
      h.client.start();
      const s = await waitState(h.client, is('reconnecting'));
      assert.equal(s.kind === 'reconnecting' && s.reason, 'The daemon is shutting down; reconnect to another daemon.');
      await waitState(h.client, (x) => x.kind === 'connected' && fake.rec.connections === 2);
    });

    it('stop() closes the socket with 1000', async function () {
      const fake = await fakeDaemon((ws) => ackOk(ws));
      fakes.push(fake);
      const h = harness(async () => ({ url: fake.url, token: 't' }));
      await connected(h);
      h.client.stop();
      for (let i = 0; i < 40 && fake.rec.clientCloseCodes.length === 0; i++) await sleep(25);
      assert.deepEqual(fake.rec.clientCloseCodes, [1000]);
    });

    it('emits auth_expiring frames to onAuthExpiring listeners', async function () {
      const fake = await fakeDaemon((ws) => {
        ackOk(ws, { expires_at: 2_000_000_000 });
        ws.send(JSON.stringify({ op: 'auth_expiring', expires_at: 2_000_000_000 }));
      });
      fakes.push(fake);
      const h = harness(async () => ({ url: fake.url, token: 't' }));
      const seen = new Promise<number>((r) => h.client.onAuthExpiring(r));
      h.client.start();
      assert.equal(await seen, 2_000_000_000);
    });

    it('updates expiresAt in the connected state after a successful reauthenticate', async function () {
      const fake = await fakeDaemon((ws) => {
        ackOk(ws, { expires_at: 100 });
        ws.on('message', (d) => {
          const f = JSON.parse(d.toString());
          if (f.op === 'auth') ws.send(JSON.stringify({ op: 'auth_ack', request_id: f.request_id, ok: true, expires_at: 200 } satisfies ServerFrame));
        });
      });
      fakes.push(fake);
      const h = harness(async () => ({ url: fake.url, token: 't' }));
      await connected(h);
      assert.deepEqual(await h.client.reauthenticate('t2'), { ok: true, expiresAt: 200 });
      assert.equal(h.client.state.kind === 'connected' && h.client.state.expiresAt, 200);
    });

    it('times out a hello that is never acknowledged and retries with backoff', async function () {
      const fake = await fakeDaemon(() => {});
      fakes.push(fake);
      const h = harness(async () => ({ url: fake.url, token: 't' }), { timing: { helloMs: 200 } });
      h.client.start();
      const s = await waitState(h.client, is('reconnecting'), 2000);
      assert.match(s.kind === 'reconnecting' ? s.reason : '', /did not complete the handshake within 0.2 s/);
    });
  });

  describe('heartbeat, backoff and crashes', function () {
    it('terminates and reconnects when a ping gets no pong', async function () {
      const fake = await fakeDaemon((ws) => ackOk(ws)); // never answers ping
      fakes.push(fake);
      const h = harness(async () => ({ url: fake.url, token: 't' }), { timing: { pingIntervalMs: 100, pongTimeoutMs: 100 } });
      await connected(h);
      const s = await waitState(h.client, is('reconnecting'), 2000);
      assert.match(s.kind === 'reconnecting' ? s.reason : '', /did not answer a ping within 0.1 s/);
      assert.ok(fake.rec.frames.some((f) => f.op === 'ping' && typeof f.request_id === 'string'));
    });

    it('waits exactly random() * min(maxMs, baseMs * 2^retry) between attempts', async function () {
      const port = await closedPort();
      const h = harness(async () => ({ url: `ws://127.0.0.1:${port}/`, token: 't' }), { backoff: { baseMs: 40, maxMs: 200 }, random: () => 0.5 });
      h.client.start();
      await waitState(h.client, (s) => s.kind === 'reconnecting' && s.attempt === 6, 5000);
      h.client.stop();
      const waits = h.states.filter((s) => s.kind === 'reconnecting').map((s) => s.kind === 'reconnecting' && [s.attempt, s.delayMs]);
      assert.deepEqual(waits, [[1, 20], [2, 40], [3, 80], [4, 100], [5, 100], [6, 100]]);
      const connecting = h.states.filter((s) => s.kind === 'connecting').map((s) => s.kind === 'connecting' && s.attempt);
      assert.deepEqual(connecting, [0, 1, 2, 3, 4, 5]);
      const first = h.states.find((s) => s.kind === 'reconnecting');
      assert.match(first?.kind === 'reconnecting' ? first.reason : '', /ECONNREFUSED/);
    });

    it('backoffDelay is full jitter with a cap', function () {
      assert.equal(backoffDelay(0, 500, 30_000, () => 1), 500);
      assert.equal(backoffDelay(3, 500, 30_000, () => 0.25), 1000);
      assert.equal(backoffDelay(10, 500, 30_000, () => 0.5), 15_000);
      assert.equal(backoffDelay(5, 500, 30_000, () => 0), 0);
    });

    it('resets the backoff after a successful hello', async function () {
      // Three refusals (1013), then a hello that succeeds before the daemon drops the socket again.
      const fake = await fakeDaemon((ws, _hello, i) => {
        if (i < 3) return ws.close(1013, 'auth_unavailable');
        ackOk(ws);
        if (i === 3) setTimeout(() => ws.close(1013, 'store_unavailable'), 50);
      });
      fakes.push(fake);
      const h = harness(async () => ({ url: fake.url, token: 't' }), { backoff: { baseMs: 20, maxMs: 1000 }, random: () => 1 });
      h.client.start();
      await waitState(h.client, (s) => s.kind === 'connected' && fake.rec.connections === 5, 5000);
      const waits = h.states.filter((s) => s.kind === 'reconnecting').map((s) => s.kind === 'reconnecting' && [s.attempt, s.delayMs]);
      assert.deepEqual(waits, [[1, 20], [2, 40], [3, 80], [1, 20]]);
    });

    it('endpoint() failures: DaemonStartFailed is retried with backoff, DaemonVersionMismatch is not', async function () {
      const h1 = harness(async () => { throw new DaemonStartFailed('The EXAI daemon could not start: port 8079 is in use.'); });
      h1.client.start();
      const s1 = await waitState(h1.client, is('error'));
      assert.equal(s1.kind === 'error' && s1.code, 'daemon_start_failed');
      assert.equal(s1.kind === 'error' && s1.retrying, true);
      assert.match(s1.kind === 'error' ? s1.message : '', /^The EXAI daemon could not start: port 8079 is in use\. Retrying in /);
      await waitState(h1.client, () => h1.endpointCalls() >= 3, 3000);

      const h2 = harness(async () => { throw new DaemonVersionMismatch('0.0.9', '0.1.0', 4242); });
      h2.client.start();
      const s2 = await waitState(h2.client, is('error'));
      assert.equal(s2.kind === 'error' && s2.code, 'version_mismatch');
      assert.equal(s2.kind === 'error' && s2.retrying, false);
      assert.match(s2.kind === 'error' ? s2.message : '', /Restart the daemon/);
      await sleep(500);
      assert.equal(h2.endpointCalls(), 1);
    });

    it('CrashGuard: stops respawning after 3 daemon crashes in a minute, until reconnectNow()', async function () {
      // A daemon that dies (socket lost, no close frame) right after every hello.
      const fake = await fakeDaemon((ws) => {
        ackOk(ws);
        setTimeout(() => ws.terminate(), 20);
      });
      fakes.push(fake);
      const guard = new CrashGuard({ logDir: '/tmp/exai-logs' });
      const h = harness(async () => ({ url: fake.url, token: 't' }), { crashGuard: guard });
      h.client.start();
      const s = await waitState(h.client, is('error'), 5000);
      assert.deepEqual(s, {
        kind: 'error', code: 'daemon_crashed', closeCode: 1006, retrying: false,
        message: "The EXAI daemon crashed 3 times in a minute; see its log at /tmp/exai-logs. Run 'EXAI: Reconnect' to try again.",
      });
      assert.equal(fake.rec.connections, 3);
      await sleep(300);
      assert.equal(fake.rec.connections, 3);
      h.client.reconnectNow();
      await waitState(h.client, (x) => x.kind === 'connected' && fake.rec.connections === 4);
    });
  });
});
