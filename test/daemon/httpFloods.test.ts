// Strangers at the HTTP level, against the real dist/server.js on loopback: half-sent upgrades and
// silent sockets time out, a held flood of them is capped (the oldest are closed) while real
// clients and /health still get through, a flood of junk hellos writes a bounded amount of log,
// and the Host header is checked (DNS rebinding) for /health, other paths and the upgrade.
// Every loop is bounded in count and time; assertions are on behaviour, never on speed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import type { HelloAck } from '../../server/protocol';
import { connect, type TestClient } from '../helpers/client';
import { startDaemon, tempDir, type RunningDaemon } from '../helpers/daemon';
import { makeCert, requireOpenssl } from '../helpers/tlsCert';
import { waitFor } from '../helpers/wait';

/** Settings of the test runner's environment that would change what the daemon does. */
const CLEAN_ENV: Record<string, undefined> = {
  MCP_ENABLE_MULTI_USER: undefined, SUPABASE_URL: undefined, SUPABASE_JWT_SECRET: undefined, DATABASE_URL: undefined,
  SUPABASE_ANON_KEY: undefined, EXAI_WS_HOST: undefined, EXAI_IDLE_EXIT_SECONDS: undefined, EXAI_TLS_CERT: undefined,
  EXAI_TLS_KEY: undefined, EXAI_BEHIND_PROXY: undefined, EXAI_PUBLIC_HOSTS: undefined, EXAI_HELLO_TIMEOUT_MS: undefined,
  EXAI_MAX_UNAUTHENTICATED: undefined, EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS: undefined, EXAI_LOG_MAX_MB: undefined,
};

const HALF_UPGRADE = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'; // no blank line: never finished

/** A raw TCP socket to the daemon (optionally from another loopback address); `closed` is set when the daemon ends it. */
function rawSocket(port: number, localAddress?: string): Promise<net.Socket & { closedAt?: number }> {
  return new Promise((resolve, reject) => {
    const socket: net.Socket & { closedAt?: number } = net.connect({ port, host: '127.0.0.1', localAddress }, () => resolve(socket));
    socket.on('error', reject);
    socket.on('close', () => (socket.closedAt = Date.now()));
    socket.on('data', () => {});
  });
}

/** Opens `count` sockets (cycling through `addresses`), each sending half an upgrade; at most `withinMs`. */
async function halfUpgrades(port: number, count: number, addresses: string[], withinMs: number): Promise<(net.Socket & { closedAt?: number })[]> {
  const sockets: (net.Socket & { closedAt?: number })[] = [];
  const deadline = Date.now() + withinMs;
  for (let i = 0; i < count && Date.now() < deadline; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, (_, j) =>
        rawSocket(port, addresses[(i + j) % addresses.length]).then((s) => (s.write(HALF_UPGRADE), s), () => null)),
    );
    for (const s of batch) if (s) { s.on('error', () => {}); sockets.push(s); }
  }
  return sockets;
}

/** One raw HTTP request (the text as given), read to the end: status line and JSON body. */
function rawRequest(port: number, request: string, timeoutMs = 5000): Promise<{ status: number; text: string; body: any }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' }, () => socket.write(request));
    let text = '';
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no answer within ${timeoutMs} ms to ${JSON.stringify(request)}`)); }, timeoutMs);
    socket.on('data', (d) => (text += d));
    socket.on('error', (err) => { clearTimeout(timer); reject(err); });
    socket.on('close', () => {
      clearTimeout(timer);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
      const head = text.slice(0, text.indexOf('\r\n\r\n'));
      let bodyText = text.slice(head.length + 4);
      if (/^transfer-encoding: chunked/im.test(head)) bodyText = dechunk(bodyText);
      let body: any = null;
      try { body = JSON.parse(bodyText); } catch { /* not JSON */ }
      resolve({ status, text, body });
    });
  });
}

function dechunk(text: string): string {
  let out = '';
  for (let at = 0; ;) {
    const eol = text.indexOf('\r\n', at);
    const size = parseInt(text.slice(at, eol), 16);
    if (!(size > 0)) return out;
    out += text.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

const get = (port: number, urlPath: string, host: string | null) =>
  rawRequest(port, `GET ${urlPath} HTTP/1.${host === null ? 0 : 1}\r\n${host === null ? '' : `Host: ${host}\r\n`}Connection: close\r\n\r\n`);

/** A WebSocket upgrade with this Host header: the HTTP status (101 when it upgraded). */
function upgradeStatus(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { Host: host }, handshakeTimeout: 5000 });
    ws.once('open', () => { ws.terminate(); resolve(101); });
    ws.once('unexpected-response', (_req, res) => { res.resume(); resolve(res.statusCode!); ws.terminate(); });
    ws.once('error', reject);
  });
}

function logLines(d: RunningDaemon): Record<string, any>[] {
  return d.logLines();
}

describe('HTTP-level floods and DNS rebinding', function () {
  this.timeout(90000);
  const daemons: RunningDaemon[] = [];
  const clients: TestClient[] = [];
  const sockets: net.Socket[] = [];

  const start = async (env: Record<string, string> = {}, args: string[] = []) => {
    const d = await startDaemon({ env: { ...CLEAN_ENV, ...env }, args });
    daemons.push(d);
    return d;
  };
  const secretOf = (d: RunningDaemon) => JSON.parse(fs.readFileSync(path.join(d.stateDir, 'daemon.json'), 'utf8')).secret as string;
  const helloOk = async (d: RunningDaemon, instance: string) => {
    const client = await connect(d.url);
    clients.push(client);
    client.send({ op: 'hello', protocol: 2, token: secretOf(d), client: { instance, version: 'test' } });
    const ack = await client.next<HelloAck>((f) => f.op === 'hello_ack', 10000);
    assert.ok(ack.ok, `hello refused: ${JSON.stringify(ack)}`);
    return { client, ack };
  };

  afterEach(async function () {
    for (const s of sockets.splice(0)) s.destroy();
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(daemons.splice(0).map((d) => d.stop().catch(() => d.kill9())));
  });

  // ------------------------------------------------------------------ half-sent upgrades

  describe('unauthenticated sockets', function () {
    it('a half-sent upgrade and a socket that sends nothing are closed after the hello timeout (not held 90 s)', async function () {
      const d = await start({ EXAI_HELLO_TIMEOUT_MS: '1000' });
      const opened = Date.now();
      const half = await rawSocket(d.port);
      half.write(HALF_UPGRADE);
      const silent = await rawSocket(d.port);
      sockets.push(half, silent);
      await waitFor(() => half.closedAt && silent.closedAt, 8000, 'both sockets closed by the daemon');
      const took = Math.max(half.closedAt!, silent.closedAt!) - opened;
      assert.ok(took >= 900, `closed only after the timeout (${took} ms)`);
      this.test!.title += ` [${took} ms]`;
      // The daemon still serves.
      assert.equal((await get(d.port, '/health', '127.0.0.1')).status, 200);
    });

    it('with TLS, a socket that never starts the handshake is closed after the hello timeout too', async function () {
      requireOpenssl();
      const dir = tempDir('flood-tls');
      try {
        const cert = makeCert(dir, 'c');
        const d = await start({ EXAI_HELLO_TIMEOUT_MS: '1000' }, ['--tls-cert', cert.cert, '--tls-key', cert.key]);
        const opened = Date.now();
        const silent = await rawSocket(d.port);
        sockets.push(silent);
        await waitFor(() => silent.closedAt, 8000, 'closed by the daemon');
        this.test!.title += ` [${silent.closedAt! - opened} ms]`;
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('while 1,000 half-sent upgrades from one address are held, a real client says hello and /health answers; the daemon keeps at most the per-address cap', async function () {
      const d = await start({ EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS: '32' });
      const flood = await halfUpgrades(d.port, 1000, ['127.0.0.1'], 30000);
      sockets.push(...flood);
      assert.ok(flood.length >= 900, `opened ${flood.length} of 1000`);
      await waitFor(() => flood.filter((s) => s.closedAt === undefined).length <= 32, 10000, 'the flood beyond the cap is closed');

      const health = await get(d.port, '/health', '127.0.0.1');
      assert.equal(health.status, 200, health.text);
      assert.equal(health.body.status, 'ok');
      const { ack } = await helloOk(d, 'real-window');
      assert.ok(ack.ok);
      assert.equal((await get(d.port, '/health', '127.0.0.1')).body.connections, 1);
      const held = flood.filter((s) => s.closedAt === undefined).length;
      assert.ok(held <= 32, `held ${held}`);

      // Once authenticated, a connection no longer counts: a second flood does not close it.
      const { client } = await helloOk(d, 'real-window-2');
      const second = await halfUpgrades(d.port, 200, ['127.0.0.1'], 15000);
      sockets.push(...second);
      await waitFor(() => second.filter((s) => s.closedAt === undefined).length <= 32, 10000, 'the second flood beyond the cap is closed');
      client.send({ op: 'call_tool', request_id: 'still-here', name: 'echo', arguments: { text: 'still here' } });
      await client.next((f) => f.op === 'call_tool_res' && f.request_id === 'still-here', 5000);
      assert.equal((await get(d.port, '/health', '127.0.0.1')).body.connections, 2);
      this.test!.title += ` [${flood.length} opened, ${held} still held]`;
    });

    it('1,000 half-sent upgrades spread over 40 addresses: at most the total cap is held, and real clients and /health still get through', async function () {
      const d = await start({ EXAI_MAX_UNAUTHENTICATED: '200', EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS: '32' });
      const started = Date.now();
      const addresses = Array.from({ length: 40 }, (_, i) => `127.0.0.${i + 2}`);
      const flood = await halfUpgrades(d.port, 1000, addresses, 30000);
      sockets.push(...flood);
      assert.ok(flood.length >= 900, `opened ${flood.length} of 1000`);
      await waitFor(() => flood.filter((s) => s.closedAt === undefined).length <= 200, 10000, 'the flood beyond the total cap is closed');

      assert.equal((await get(d.port, '/health', 'localhost')).status, 200);
      await helloOk(d, 'real-1');
      await helloOk(d, 'real-2');
      assert.equal((await get(d.port, '/health', 'localhost')).body.connections, 2);
      // The closures were logged, within the log budget.
      const evictions = logLines(d).filter((l) => /closed the oldest unauthenticated socket/.test(l.msg));
      const budget = 100 + 2 * ((Date.now() - started) / 1000) + 1;
      assert.ok(evictions.length >= 1 && evictions.length <= budget, `${evictions.length} eviction lines for ~800 closed sockets`);
    });
  });

  // ------------------------------------------------------------------ log flood

  describe('the log budget for unauthenticated connections', function () {
    it('10,000 junk hellos write a bounded amount of log, summarised in one line; an authenticated connection\'s lines all appear', async function () {
      const d = await start();
      const before = Buffer.byteLength(d.logs());
      const junk = [
        JSON.stringify({ op: 'hello', protocol: 2, token: 'not-the-secret', client: { instance: 'junk', version: 'x' } }),
        '{"op":"hello"',
        JSON.stringify({ op: 'list_tools', request_id: 'r' }),
      ];
      const TOTAL = 10000;
      const CONCURRENCY = 16;
      const started = Date.now();
      const deadline = started + 60000;
      let sent = 0;
      const worker = async () => {
        while (sent < TOTAL && Date.now() < deadline) {
          const n = sent++;
          await new Promise<void>((resolve) => {
            const ws = new WebSocket(d.url, { handshakeTimeout: 5000 });
            ws.on('open', () => ws.send(junk[n % junk.length]));
            ws.on('close', () => resolve());
            ws.on('error', () => resolve());
          });
        }
      };
      const flooding = Promise.all(Array.from({ length: CONCURRENCY }, worker));
      // Mid-flood, a real window connects: the budget is spent by then.
      await waitFor(() => sent >= TOTAL / 2 || Date.now() > deadline, 65000, 'half the flood');
      const authenticated = await helloOk(d, 'real-during-flood');
      await flooding;
      const elapsedS = (Date.now() - started) / 1000;
      assert.ok(sent >= 2000, `only ${sent} junk hellos were sent within 60 s`);

      await authenticated.client.close();
      const session = (authenticated.ack as HelloAck & { ok: true }).session_id;
      // A summary is written at most every 10 s, so a slow flood has several: together they count
      // what was dropped (the last one comes at most 10 s after the flood).
      const suppressedSoFar = () => logLines(d)
        .filter((l) => /^suppressed \d+ log lines from unauthenticated connections$/.test(l.msg))
        .reduce((sum, l) => sum + Number(l.suppressed), 0);
      const suppressed = await waitFor(() => (suppressedSoFar() > sent / 2 ? suppressedSoFar() : 0), 15000, 'summary lines counting the dropped lines');
      assert.ok(suppressed > sent / 2, `suppressed ${suppressed} of about ${2 * sent}`);
      await waitFor(() => logLines(d).some((l) => l.msg === 'closed' && l.session === session), 5000, 'the authenticated connection\'s closed line');
      assert.ok(logLines(d).some((l) => l.msg === 'connected' && l.session === session), 'its connected line');

      const written = Buffer.byteLength(d.logs()) - before;
      // The budget: 100 lines, then 2 a second, plus a summary per 10 s; lines are ~300 bytes (1 KiB is generous).
      const allowance = (100 + 2 * elapsedS + elapsedS / 10 + 10) * 1024;
      assert.ok(written < allowance, `${written} bytes for ${sent} junk hellos in ${elapsedS.toFixed(1)} s (allowance ${Math.round(allowance)})`);
      assert.ok(written < 1024 * 1024, `${written} bytes: before the budget, 10,000 junk hellos wrote about 4.9 MB`);
      this.test!.title += ` [${sent} hellos in ${elapsedS.toFixed(1)} s: ${written} bytes of log]`;
    });
  });

  describe('the log file\'s byte bound (EXAI_LOG_MAX_MB)', function () {
    it('past 1 MiB the file moves to <file>.old and a new one starts: never more than about 2 MiB on disk, the newest lines kept', async function () {
      const d = await start({ EXAI_LOG_MAX_MB: '1' });
      const { client } = await helloOk(d, `big-${'x'.repeat(100)}`);
      const file = path.join(d.logDir, `exai-daemon-${d.pid}.log`);
      // Each in-band re-auth writes one authenticated line (never dropped): about 3 MiB of them.
      client.send({ op: 'auth', request_id: 'first', token: secretOf(d) });
      await client.next((f) => f.op === 'auth_ack' && f.request_id === 'first');
      const line = await waitFor(() => d.logs().split('\n').find((l) => l.includes('"re-authenticated"')), 3000, 'a re-auth line');
      const lineBytes = Buffer.byteLength(line) + 1;
      const count = Math.ceil((3 * 1024 * 1024) / lineBytes);
      const deadline = Date.now() + 60000;
      for (let i = 0; i < count && Date.now() < deadline; i += 100) {
        const last = Math.min(count, i + 100) - 1;
        for (let j = i; j <= last; j++) client.send({ op: 'auth', request_id: `re-${j}`, token: secretOf(d) });
        await client.next((f) => f.op === 'auth_ack' && f.request_id === `re-${last}`, 10000);
      }
      await client.close();
      await waitFor(() => fs.readFileSync(file, 'utf8').includes('"msg":"closed"'), 5000, 'the newest line (closed) in the current file');

      const limit = 1024 * 1024;
      const current = fs.statSync(file).size;
      const old = fs.statSync(`${file}.old`).size;
      assert.ok(current <= limit && old <= limit, `file ${current} bytes, .old ${old} bytes`);
      assert.ok(old > limit - 2 * lineBytes, `the old file was full when it moved (${old} bytes)`);
      assert.deepEqual(fs.readdirSync(d.logDir).sort(), [`exai-daemon-${d.pid}.log`, `exai-daemon-${d.pid}.log.old`], 'one previous file only');
      const kept = fs.readFileSync(`${file}.old`, 'utf8') + fs.readFileSync(file, 'utf8');
      assert.ok(!kept.includes('"msg":"listening"'), 'the oldest lines are gone');
      for (const l of kept.split('\n').filter(Boolean)) JSON.parse(l); // whole lines only, never cut
      this.test!.title += ` [${count} lines of ~${lineBytes} bytes]`;
    });
  });

  // ------------------------------------------------------------------ Host header

  describe('the Host header (DNS rebinding)', function () {
    it('a loopback daemon answers /health, other paths and the upgrade only for loopback names', async function () {
      const d = await start();
      const p = d.port;
      for (const host of [`127.0.0.1:${p}`, `localhost:${p}`, 'LOCALHOST', `[::1]:${p}`, '127.0.0.1', `localhost:${p + 1}`]) {
        assert.equal((await get(p, '/health', host)).status, 200, host);
      }
      assert.equal((await get(p, '/health', null)).status, 200, 'HTTP/1.0 without a Host header (not a browser)');
      for (const host of [`evil.example:${p}`, 'evil.example', `localhost.evil.example:${p}`, `127.0.0.1.nip.io:${p}`, `foo.localhost:${p}`, `10.0.0.5:${p}`, `[2001:db8::1]:${p}`, 'localhost:x', '']) {
        const res = await get(p, '/health', host);
        assert.equal(res.status, 421, `${JSON.stringify(host)}: ${res.text}`);
        assert.match(res.body.message, /answers only to localhost, 127\.0\.0\.1 and \[::1\]/);
        assert.ok(!('connections' in res.body), 'no health counts');
      }
      assert.equal((await get(p, '/nothing', `evil.example:${p}`)).status, 421, 'other paths too (not 404)');
      assert.equal((await get(p, '/nothing', `localhost:${p}`)).status, 404);

      assert.equal(await upgradeStatus(p, `evil.example:${p}`), 421);
      assert.equal(await upgradeStatus(p, `localhost:${p}`), 101);
      await waitFor(() => logLines(d).some((l) => /refused a request for another host name/.test(l.msg) && l.host === 'evil.example'), 3000, 'the refusal is logged');
      await waitFor(() => logLines(d).some((l) => l.msg === 'websocket opened'), 3000, 'the good upgrade opened a WebSocket');
      assert.equal(logLines(d).filter((l) => l.msg === 'websocket opened').length, 1, 'only the good upgrade opened a WebSocket');
    });

    it('a hosted daemon answers its EXAI_PUBLIC_HOSTS names, IP addresses and loopback names, and nothing else', async function () {
      // Hosted behind a proxy on loopback; the database is never reached for /health and refused upgrades.
      const d = await start({
        MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: 'http://127.0.0.1:1', DATABASE_URL: 'postgres://u:p@127.0.0.1:1/db',
        EXAI_PUBLIC_HOSTS: 'exai.example.com, Other.Example.org',
      }, ['--behind-proxy']);
      const p = d.port;
      for (const host of ['exai.example.com', 'EXAI.example.com:443', 'other.example.org', `10.1.2.3:${p}`, '[2001:db8::1]:443', `127.0.0.1:${p}`, 'localhost']) {
        assert.equal((await get(p, '/health', host)).status, 200, host);
      }
      for (const host of ['evil.example', 'exai.example.com.evil.example', 'sub.exai.example.com', 'example.com']) {
        const res = await get(p, '/health', host);
        assert.equal(res.status, 421, host);
        assert.match(res.body.message, /EXAI_PUBLIC_HOSTS/);
      }
      assert.equal(await upgradeStatus(p, 'evil.example'), 421);
      assert.equal(await upgradeStatus(p, 'exai.example.com'), 101);
      assert.deepEqual(logLines(d).find((l) => l.msg === 'listening')?.public_hosts, ['exai.example.com', 'other.example.org']);
    });
  });
});
