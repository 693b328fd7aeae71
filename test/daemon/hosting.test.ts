// A daemon a team hosts (issue 7), end to end with the real dist/server.js on loopback sockets:
// its own TLS (wss:// + https /health, a self-signed certificate made with openssl at test time,
// re-read on SIGHUP), the start-up rules for non-loopback hosts, public host names (EXAI_PUBLIC_HOSTS) and bad certificate files,
// --behind-proxy and the client address in the log, the graceful drain on SIGTERM (bounded by
// EXAI_DRAIN_SECONDS; a second signal exits at once) and log rotation (SIGHUP reopens the file).
// Every wait is bounded.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type WebSocket from 'ws';
import { ConfigError, loadConfig } from '../../server/config';
import { isLoopbackHost } from '../../server/net';
import type { CallToolResult, HelloAck, ServerFrame } from '../../server/protocol';
import { connect, type TestClient } from '../helpers/client';
import { runDaemon, startDaemon, tempDir, type RunningDaemon } from '../helpers/daemon';
import { getJson } from '../helpers/getJson';
import { createTestDatabase, type TestDatabase } from '../helpers/pg';
import { makeCert, requireOpenssl, type TestCert } from '../helpers/tlsCert';
import { JAZEEL, MICHELLE, mintAccessToken, startJwksServer, type JwksServer, type TestUser } from '../helpers/tokens';
import { sleep, waitFor, within } from '../helpers/wait';

type OkAck = Extract<HelloAck, { ok: true }>;

const isResult = (id: string) => (f: ServerFrame) => f.op === 'call_tool_res' && f.request_id === id;
const isAck = (id: string) => (f: ServerFrame) => f.op === 'call_tool_ack' && f.request_id === id;

/** Settings of the test runner's environment that would change what the daemon does. */
const CLEAN_ENV: Record<string, undefined> = {
  MCP_ENABLE_MULTI_USER: undefined, SUPABASE_URL: undefined, SUPABASE_JWT_SECRET: undefined, DATABASE_URL: undefined,
  SUPABASE_ANON_KEY: undefined, MCP_SESSION_TIMEOUT: undefined, MCP_MAX_CONNECTIONS_PER_USER: undefined,
  EXAI_WS_HOST: undefined, EXAI_IDLE_EXIT_SECONDS: undefined, EXAI_DAEMON_ID: undefined,
  EXAI_TLS_CERT: undefined, EXAI_TLS_KEY: undefined, EXAI_BEHIND_PROXY: undefined, EXAI_DRAIN_SECONDS: undefined,
  EXAI_PUBLIC_HOSTS: undefined,
};
/** Supabase settings that pass the config checks; nothing is reached before the checks under test fail. */
const FAKE_SUPABASE = { MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: 'https://abcdefgh.supabase.co', DATABASE_URL: 'postgres://u:p@127.0.0.1:1/db' };
/** A hosted daemon (TLS, --behind-proxy or a non-loopback --host) must name the hosts it answers to. */
const PUBLIC_HOSTS = { EXAI_PUBLIC_HOSTS: 'exai.example.com' };
const HOSTED = { ...FAKE_SUPABASE, ...PUBLIC_HOSTS };

/** The JSON lines of the daemon's log file(s) so far. */
function logLines(d: RunningDaemon): Record<string, any>[] {
  return d.logLines();
}

describe('hosting a daemon (TLS, proxies, drain, log rotation)', function () {
  this.timeout(20000);

  let certDir: string;
  let certA: TestCert;
  let certB: TestCert;
  let db: TestDatabase;
  let jwks: JwksServer;
  const daemons: RunningDaemon[] = [];
  const clients: TestClient[] = [];

  const mint = (user: TestUser = JAZEEL) => mintAccessToken({ key: jwks.keys.es256, issuer: jwks.issuer, user });

  const startSupabase = async (daemonId: string, opts: { env?: Record<string, string>; args?: string[] } = {}) => {
    const d = await startDaemon({
      env: {
        ...CLEAN_ENV,
        MCP_ENABLE_MULTI_USER: 'true',
        SUPABASE_URL: jwks.url,
        DATABASE_URL: db.url,
        EXAI_DAEMON_ID: daemonId,
        ...opts.env,
      },
      args: opts.args,
    });
    daemons.push(d);
    return d;
  };

  /** Connects (any ws options: ca, headers), says hello, expects ok. */
  const helloOk = async (url: string, token: string, instance: string, options: WebSocket.ClientOptions = {}) => {
    const client = await connect(url, options);
    clients.push(client);
    client.send({ op: 'hello', protocol: 2, token, client: { instance, version: 'test' } });
    const ack = await client.next<HelloAck>((f) => f.op === 'hello_ack');
    assert.ok(ack.ok, `hello refused: ${JSON.stringify(ack)}`);
    return { client, ack: ack as OkAck };
  };

  const statusOf = async (sessionId: string) =>
    (await db.query('select connection_status from public.mcp_sessions where session_id = $1', [sessionId]))[0]?.connection_status as string | undefined;

  before(async function () {
    this.timeout(30000);
    requireOpenssl();
    certDir = tempDir('tls');
    certA = makeCert(certDir, 'a');
    certB = makeCert(certDir, 'b');
    [db, jwks] = await Promise.all([createTestDatabase(), startJwksServer()]);
    await db.addUser(JAZEEL.id, JAZEEL.email);
    await db.addUser(MICHELLE.id, MICHELLE.email);
  });

  afterEach(async function () {
    this.timeout(15000);
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(daemons.splice(0).map((d) => within(d.stop(), 12000, 'daemon stop').catch(() => d.kill9())));
  });

  after(async function () {
    this.timeout(20000);
    await jwks?.close();
    await db?.drop();
    if (certDir) fs.rmSync(certDir, { recursive: true, force: true });
  });

  // ------------------------------------------------------------------ TLS

  describe('TLS (--tls-cert / --tls-key)', function () {
    it('serves wss:// hello and https GET /health on one port; plain ws:// and http:// and an untrusted certificate fail', async function () {
      const d = await startSupabase('tls', { env: PUBLIC_HOSTS, args: ['--tls-cert', certA.cert, '--tls-key', certA.key] });
      const wss = `wss://127.0.0.1:${d.port}/`;

      const { client, ack } = await helloOk(wss, await mint(), 'tls-1', { ca: certA.pem });
      assert.equal(ack.user.id, JAZEEL.id);
      client.send({ op: 'call_tool', request_id: 'tls-echo', name: 'echo', arguments: { text: 'over tls' } });
      const res = await client.next<CallToolResult>(isResult('tls-echo'));
      assert.ok(res.ok && res.outputs[0].text === 'over tls', JSON.stringify(res));
      assert.equal(await statusOf(ack.session_id), 'connected');

      const health = await getJson(d.port, '/health', { ca: certA.pem });
      assert.equal(health.status, 200);
      assert.equal(health.body.status, 'ok');
      assert.equal(health.body.connections, 1);

      await assert.rejects(connect(d.url), 'plain ws:// to the TLS port fails');
      await assert.rejects(getJson(d.port, '/health'), 'plain http:// to the TLS port fails');
      await assert.rejects(connect(wss), /self[- ]signed/i, 'without the ca the certificate is not trusted');
      await assert.rejects(getJson(d.port, '/health', { ca: certB.pem }), /self[- ]signed|unable to verify/i);

      const listening = logLines(d).find((l) => l.msg === 'listening');
      assert.equal(listening?.tls, true);
      assert.ok(logLines(d).some((l) => l.msg === 'TLS: serving HTTPS and WSS' && l.subject === 'CN=localhost'), 'the certificate is logged');
    });

    it('SIGHUP re-reads a renewed certificate; unusable files are logged and the current certificate kept', async function () {
      const live = { cert: path.join(certDir, 'live.crt.pem'), key: path.join(certDir, 'live.key.pem') };
      fs.copyFileSync(certA.cert, live.cert);
      fs.copyFileSync(certA.key, live.key);
      const d = await startSupabase('tls-reload', { env: { ...PUBLIC_HOSTS, EXAI_TLS_CERT: live.cert, EXAI_TLS_KEY: live.key } });
      assert.equal((await getJson(d.port, '/health', { ca: certA.pem })).status, 200);
      await assert.rejects(getJson(d.port, '/health', { ca: certB.pem }));

      // The renewal: new files at the same paths, then SIGHUP.
      fs.copyFileSync(certB.cert, live.cert);
      fs.copyFileSync(certB.key, live.key);
      d.proc.kill('SIGHUP');
      await waitFor(() => logLines(d).some((l) => l.msg === 'TLS: re-read the certificate (SIGHUP)'), 3000, 'certificate re-read', { everyMs: 25 });
      assert.equal((await getJson(d.port, '/health', { ca: certB.pem })).status, 200);
      await assert.rejects(getJson(d.port, '/health', { ca: certA.pem }), 'the old certificate is no longer served');
      await helloOk(`wss://127.0.0.1:${d.port}/`, await mint(), 'tls-renewed', { ca: certB.pem });

      // A half-written renewal (the key of another certificate): kept as it was.
      fs.copyFileSync(certA.key, live.key);
      d.proc.kill('SIGHUP');
      const kept = await waitFor(() => logLines(d).find((l) => /kept the current TLS certificate/.test(l.msg)), 3000, 'bad renewal logged', { everyMs: 25 });
      assert.match(kept.error, /EXAI_TLS_KEY .* is not the private key of the certificate in EXAI_TLS_CERT/);
      assert.equal((await getJson(d.port, '/health', { ca: certB.pem })).status, 200);
      assert.equal(d.proc.exitCode, null, 'still running');
    });

    it('local mode serves TLS on loopback too (the local secret as the hello token)', async function () {
      const d = await startDaemon({ env: CLEAN_ENV, args: ['--tls-cert', certA.cert, '--tls-key', certA.key] });
      daemons.push(d);
      const secret = JSON.parse(fs.readFileSync(path.join(d.stateDir, 'daemon.json'), 'utf8')).secret as string;
      const { ack } = await helloOk(`wss://127.0.0.1:${d.port}/`, secret, 'tls-local', { ca: certA.pem });
      assert.match(ack.user.id, /^local:/);
      assert.equal((await getJson(d.port, '/health', { ca: certA.pem })).body.mode, 'local');
    });
  });

  // ------------------------------------------------------------------ start-up rules

  describe('start-up: non-loopback hosts and certificate files', function () {
    let root: string;
    let n = 0;
    before(() => (root = tempDir('hosting-cfg')));
    after(() => fs.rmSync(root, { recursive: true, force: true }));
    const run = (env: Record<string, string | undefined>, args: string[] = []) =>
      runDaemon({ stateDir: path.join(root, `s${n++}`), env: { ...CLEAN_ENV, ...env }, args }, 10000);

    const notPem = () => {
      const file = path.join(root, 'not-pem.txt');
      fs.writeFileSync(file, 'this is not a certificate\n');
      return file;
    };

    // [what, () => [environment, arguments] (paths exist only once `before` ran), expected stderr]
    const cases: [string, () => [Record<string, string | undefined>, string[]], RegExp][] = [
      ['supabase mode, --host 0.0.0.0, neither TLS nor --behind-proxy', () => [FAKE_SUPABASE, ['--host', '0.0.0.0']],
        /^exai-daemon: --host 0\.0\.0\.0 is not a loopback address, so the daemon needs TLS: give --tls-cert and --tls-key .* or --behind-proxy .*\.$/],
      ['supabase mode, EXAI_WS_HOST=::, neither TLS nor proxy', () => [{ ...FAKE_SUPABASE, EXAI_WS_HOST: '::' }, []], /--host :: is not a loopback address.*--tls-cert.*--behind-proxy/],
      ['local mode, --host 0.0.0.0 even with TLS', () => [{}, ['--host', '0.0.0.0', '--tls-cert', certA.cert, '--tls-key', certA.key]],
        /--host 0\.0\.0\.0 is not a loopback address; local mode only listens on 127\.0\.0\.1 or ::1\./],
      ['a --tls-cert that does not exist', () => [HOSTED, ['--tls-cert', path.join(root, 'missing.pem'), '--tls-key', certA.key]],
        /^exai-daemon: --tls-cert \S*missing\.pem cannot be read \(ENOENT\)/],
      ['an EXAI_TLS_CERT that does not exist', () => [{ ...HOSTED, EXAI_TLS_CERT: path.join(root, 'missing.pem'), EXAI_TLS_KEY: certA.key }, []],
        /^exai-daemon: EXAI_TLS_CERT \S*missing\.pem cannot be read \(ENOENT\)/],
      ['a --tls-key that is a directory', () => [HOSTED, ['--tls-cert', certA.cert, '--tls-key', root]], /^exai-daemon: --tls-key \S+ cannot be read \(EISDIR\)/],
      ['a --tls-cert that is not PEM', () => [HOSTED, ['--tls-cert', notPem(), '--tls-key', certA.key]], /^exai-daemon: --tls-cert \S+ is not a PEM certificate/],
      ['a --tls-key that is not PEM', () => [HOSTED, ['--tls-cert', certA.cert, '--tls-key', notPem()]], /^exai-daemon: --tls-key \S+ is not a PEM private key/],
      ['a certificate given as the key', () => [HOSTED, ['--tls-cert', certA.cert, '--tls-key', certA.cert]], /^exai-daemon: --tls-key \S+ is not a PEM private key/],
      ['the key of another certificate', () => [HOSTED, ['--tls-cert', certA.cert, '--tls-key', certB.key]],
        /^exai-daemon: --tls-key \S+b\.key\.pem is not the private key of the certificate in --tls-cert \S+a\.crt\.pem\.$/],
      ['--tls-cert without --tls-key', () => [FAKE_SUPABASE, ['--tls-cert', certA.cert]], /^exai-daemon: --tls-cert needs --tls-key/],
      ['EXAI_TLS_KEY without EXAI_TLS_CERT', () => [{ ...FAKE_SUPABASE, EXAI_TLS_KEY: certA.key }, []], /^exai-daemon: EXAI_TLS_KEY needs --tls-cert \(EXAI_TLS_CERT\)/],
      ['EXAI_BEHIND_PROXY=maybe', () => [{ ...FAKE_SUPABASE, EXAI_BEHIND_PROXY: 'maybe' }, []], /EXAI_BEHIND_PROXY must be true or false/],
      ['EXAI_DRAIN_SECONDS=-1', () => [{ EXAI_DRAIN_SECONDS: '-1' }, []], /EXAI_DRAIN_SECONDS must be a whole number from 0 to 3600/],
      ['a daemon with its own TLS but no EXAI_PUBLIC_HOSTS', () => [FAKE_SUPABASE, ['--tls-cert', certA.cert, '--tls-key', certA.key]],
        /^exai-daemon: A hosted daemon \(TLS, --behind-proxy or a non-loopback --host\) needs --public-host \(EXAI_PUBLIC_HOSTS\): the host names clients reach it by, comma-separated .*DNS rebinding\.$/],
      ['--behind-proxy on 0.0.0.0 without EXAI_PUBLIC_HOSTS', () => [FAKE_SUPABASE, ['--host', '0.0.0.0', '--behind-proxy']], /needs --public-host \(EXAI_PUBLIC_HOSTS\)/],
      ['EXAI_PUBLIC_HOSTS=" , " (no name)', () => [{ ...FAKE_SUPABASE, EXAI_PUBLIC_HOSTS: ' , ' }, ['--behind-proxy']], /needs --public-host \(EXAI_PUBLIC_HOSTS\)/],
      ['a --public-host with a scheme', () => [FAKE_SUPABASE, ['--behind-proxy', '--public-host', 'https://exai.example.com']],
        /^exai-daemon: --public-host entry "https:\/\/exai\.example\.com" is not a host name; list names such as exai\.example\.com, without scheme or port/],
      ['an EXAI_PUBLIC_HOSTS entry with a port', () => [{ ...FAKE_SUPABASE, EXAI_PUBLIC_HOSTS: 'a.example.com,b.example.com:443' }, ['--behind-proxy']], /^exai-daemon: EXAI_PUBLIC_HOSTS entry "b\.example\.com:443" is not a host name/],
      ['EXAI_PUBLIC_HOSTS on a loopback-only daemon', () => [PUBLIC_HOSTS, []],
        /^exai-daemon: EXAI_PUBLIC_HOSTS is for a hosted daemon .* this one serves loopback only and answers to localhost, 127\.0\.0\.1 and \[::1\], so unset it\.$/],
    ];
    for (const [what, setting, expected] of cases) {
      it(`${what} -> exit 2, one sentence naming the setting`, async function () {
        const [env, args] = setting();
        const res = await run(env, args);
        assert.equal(res.code, 2, `stdout=${res.stdout} stderr=${res.stderr}`);
        assert.equal(res.stdout, '');
        const lines = res.stderr.trimEnd().split('\n');
        assert.equal(lines.length, 1, `one line: ${JSON.stringify(res.stderr)}`);
        assert.match(lines[0], expected);
        assert.ok(!lines[0].includes('u:p@'), 'no secret echoed');
      });
    }

    it('loadConfig: a non-loopback host in supabase mode is fine with TLS, --behind-proxy or EXAI_BEHIND_PROXY=true', function () {
      const env = { ...HOSTED, EXAI_STATE_DIR: root };
      const viaTls = loadConfig(['--host', '0.0.0.0', '--tls-cert', 'c.pem', '--tls-key', 'k.pem'], env);
      assert.deepEqual(viaTls.tls, { certFile: path.resolve('c.pem'), keyFile: path.resolve('k.pem'), certSetting: '--tls-cert', keySetting: '--tls-key' });
      assert.equal(viaTls.behindProxy, false);
      assert.equal(loadConfig(['--host', '0.0.0.0', '--behind-proxy'], env).behindProxy, true);
      assert.equal(loadConfig([], { ...env, EXAI_WS_HOST: '10.0.0.5', EXAI_BEHIND_PROXY: 'true' }).behindProxy, true);
      assert.equal(loadConfig([], { ...env, EXAI_TLS_CERT: '/c', EXAI_TLS_KEY: '/k' }).tls?.certSetting, 'EXAI_TLS_CERT');
      const defaults = loadConfig([], { ...FAKE_SUPABASE, EXAI_STATE_DIR: root });
      assert.equal(defaults.tls, null);
      assert.equal(defaults.publicHosts, null, 'loopback only: loopback names alone');
      assert.equal(defaults.behindProxy, false);
      assert.equal(defaults.drainSec, 10);
      assert.equal(loadConfig([], { ...FAKE_SUPABASE, EXAI_STATE_DIR: root, EXAI_DRAIN_SECONDS: '0' }).drainSec, 0);
      assert.throws(() => loadConfig(['--host', '0.0.0.0'], { ...env, EXAI_BEHIND_PROXY: 'false' }), ConfigError);
    });

    it('loadConfig: the public host names, from EXAI_PUBLIC_HOSTS or repeated --public-host flags, trimmed and lower case', function () {
      const env = { ...FAKE_SUPABASE, EXAI_STATE_DIR: root };
      assert.deepEqual(loadConfig(['--behind-proxy'], { ...env, EXAI_PUBLIC_HOSTS: ' EXAI.example.com ,b.example.org,' }).publicHosts, ['exai.example.com', 'b.example.org']);
      assert.deepEqual(loadConfig(['--behind-proxy', '--public-host', 'a.example.com,b.example.com', '--public-host', 'c.example.com'], { ...env, EXAI_PUBLIC_HOSTS: 'ignored.example.com' }).publicHosts,
        ['a.example.com', 'b.example.com', 'c.example.com'], 'the flag wins over the variable');
      assert.deepEqual(loadConfig(['--tls-cert', 'c.pem', '--tls-key', 'k.pem', '--public-host', 'exai'], env).publicHosts, ['exai'], 'TLS on loopback is hosted too; a single-label name is fine');
      assert.equal(loadConfig(['--tls-cert', 'c.pem', '--tls-key', 'k.pem'], { EXAI_STATE_DIR: root }).publicHosts, null, 'local mode with TLS is still loopback only');
    });
  });

  // ------------------------------------------------------------------ behind a proxy

  describe('--behind-proxy and the client address in the log', function () {
    it('starts on a non-loopback host with --behind-proxy and logs the first X-Forwarded-For hop as the client address', async function () {
      // `::ffff:127.0.0.1` is loopback on the wire but not by the daemon's loopback rule (which only
      // knows 127.0.0.0/8, ::1 and localhost), so the start-up check treats it as a public address
      // while the test never listens beyond this machine.
      const host = '::ffff:127.0.0.1';
      assert.equal(isLoopbackHost(host), false, 'the test host must count as non-loopback');
      const refused = await runDaemon({ env: { ...CLEAN_ENV, ...FAKE_SUPABASE }, args: ['--host', host] }, 10000);
      assert.equal(refused.code, 2, 'without --behind-proxy it is refused');

      const d = await startSupabase('proxy', { env: PUBLIC_HOSTS, args: ['--host', host, '--behind-proxy'] });
      const { ack } = await helloOk(d.url, await mint(), 'proxied', { headers: { 'X-Forwarded-For': '203.0.113.7, 10.1.2.3' } });
      const lines = await waitFor(() => {
        const all = logLines(d);
        return all.some((l) => l.msg === 'connected' && l.session === ack.session_id) ? all : null;
      }, 3000, 'connected line', { everyMs: 25 });
      const opened = lines.find((l) => l.msg === 'websocket opened' && l.session === ack.session_id);
      assert.equal(opened?.client_address, '203.0.113.7', JSON.stringify(opened));
      assert.equal(opened?.proxy_address, '::ffff:127.0.0.1');
      const connected = lines.find((l) => l.msg === 'connected' && l.session === ack.session_id);
      assert.equal(connected?.client_address, '203.0.113.7', 'the connection\'s own lines carry it too');
      assert.equal(lines.find((l) => l.msg === 'listening')?.behind_proxy, true);

      // No X-Forwarded-For behind the proxy: the socket's address.
      const plain = await helloOk(d.url, await mint(), 'proxied-no-xff');
      const line = await waitFor(() => logLines(d).find((l) => l.msg === 'websocket opened' && l.session === plain.ack.session_id), 3000, 'opened line', { everyMs: 25 });
      assert.equal(line.client_address, '::ffff:127.0.0.1');
    });

    it('without --behind-proxy a forged X-Forwarded-For is ignored: the socket address is logged', async function () {
      const d = await startSupabase('no-proxy');
      const { ack } = await helloOk(d.url, await mint(), 'forged', { headers: { 'X-Forwarded-For': '198.51.100.9' } });
      const opened = await waitFor(() => logLines(d).find((l) => l.msg === 'websocket opened' && l.session === ack.session_id), 3000, 'opened line', { everyMs: 25 });
      assert.equal(opened.client_address, '127.0.0.1');
      assert.equal(opened.proxy_address, undefined);
      await waitFor(() => logLines(d).some((l) => l.msg === 'connected' && l.session === ack.session_id), 3000, 'connected line', { everyMs: 25 });
      assert.ok(!d.logs().includes('198.51.100.9'), 'the forged address appears nowhere in the log');
    });
  });

  // ------------------------------------------------------------------ drain

  describe('graceful drain on SIGTERM', function () {
    it('EXAI_DRAIN_SECONDS=2: a 1 s call finishes, a 10 s call is cancelled, both close 1001, /health and upgrades 503, exit 0 in ~2 s, rows disconnected', async function () {
      const d = await startSupabase('drain', { env: { EXAI_DRAIN_SECONDS: '2' } });
      const a = await helloOk(d.url, await mint(JAZEEL), 'drain-fast');
      const b = await helloOk(d.url, await mint(MICHELLE), 'drain-slow');
      a.client.send({ op: 'call_tool', request_id: 'fast', name: 'echo', arguments: { text: 'made it', delay_ms: 1000 } });
      b.client.send({ op: 'call_tool', request_id: 'slow', name: 'echo', arguments: { text: 'too late', delay_ms: 10000 } });
      await Promise.all([a.client.next(isAck('fast')), b.client.next(isAck('slow'))]);

      const sigterm = Date.now();
      d.proc.kill('SIGTERM');
      const draining = await waitFor(async () => {
        const h = await getJson(d.port, '/health');
        return h.status === 503 ? h : null;
      }, 1000, '/health 503', { everyMs: 25 });
      assert.equal(draining.body.status, 'draining');
      await assert.rejects(connect(d.url), (err: any) => err.statusCode === 503, 'a new upgrade during the drain gets 503');

      // Both hear shutdown; a new call during the drain is refused at once.
      await a.client.next((f) => f.op === 'shutdown', 2000);
      await b.client.next((f) => f.op === 'shutdown', 2000);
      a.client.send({ op: 'call_tool', request_id: 'new', name: 'echo', arguments: { text: 'x' } });
      const refused = await a.client.next<CallToolResult>(isResult('new'), 1000);
      assert.ok(!refused.ok && refused.error.code === 'shutting_down', JSON.stringify(refused));

      const fast = await a.client.next<CallToolResult>(isResult('fast'), 3000);
      assert.ok(fast.ok && fast.outputs[0].text === 'made it', `the 1 s call finishes: ${JSON.stringify(fast)}`);
      assert.equal((await within(a.client.closed, 3000, 'fast client close')).code, 1001);

      const slow = await b.client.next<CallToolResult>(isResult('slow'), 3000);
      const slowAt = Date.now() - sigterm;
      assert.ok(!slow.ok && slow.error.code === 'shutting_down', JSON.stringify(slow));
      assert.ok(slowAt >= 1800 && slowAt < 3000, `the slow call is cancelled at the 2 s bound (after ${slowAt} ms)`);
      const closedB = await within(b.client.closed, 3000, 'slow client close');
      assert.equal(closedB.code, 1001);
      const frames = b.client.frames.map((f) => f.op);
      assert.ok(frames.indexOf('shutdown') < frames.lastIndexOf('call_tool_res'), `shutdown, then the result, then the close: ${frames}`);

      assert.equal(await within(d.exited, 3500, 'exit after the drain'), 0);
      const exitedAt = Date.now() - sigterm;
      assert.ok(exitedAt < 3500, `exited ${exitedAt} ms after SIGTERM`);
      assert.equal(await statusOf(a.ack.session_id), 'disconnected');
      assert.equal(await statusOf(b.ack.session_id), 'disconnected');
      this.test!.title += ` [exit after ${exitedAt} ms]`;
    });

    it('a second SIGTERM during the drain exits at once (code 1), still closing with 1001 and marking the row disconnected', async function () {
      const d = await startSupabase('drain-twice', { env: { EXAI_DRAIN_SECONDS: '30' } });
      const { client, ack } = await helloOk(d.url, await mint(), 'drain-twice');
      client.send({ op: 'call_tool', request_id: 'long', name: 'echo', arguments: { text: 'x', delay_ms: 20000 } });
      await client.next(isAck('long'));
      d.proc.kill('SIGTERM');
      await client.next((f) => f.op === 'shutdown', 2000);
      await sleep(200);
      assert.equal(d.proc.exitCode, null, 'still draining');
      const second = Date.now();
      d.proc.kill('SIGTERM');
      assert.equal(await within(d.exited, 2500, 'exit after the second SIGTERM'), 1);
      const took = Date.now() - second;
      assert.ok(took < 1500, `exited ${took} ms after the second signal`);
      assert.equal((await within(client.closed, 1000, 'close')).code, 1001);
      assert.equal(await statusOf(ack.session_id), 'disconnected');
      assert.ok(logLines(d).some((l) => l.msg === 'exiting without waiting for calls in flight'), 'the forced exit is logged');
      assert.ok(!fs.existsSync(path.join(d.stateDir, 'daemon.lock')), 'the lock is released');
    });
  });

  // ------------------------------------------------------------------ log rotation

  describe('log rotation', function () {
    it('SIGHUP after the file was renamed: new lines go to a fresh file at the original path', async function () {
      const d = await startSupabase('logrotate');
      const file = path.join(d.logDir, `exai-daemon-${d.pid}.log`);
      await waitFor(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes('"msg":"listening"'), 3000, 'listening line', { everyMs: 25 });
      fs.renameSync(file, `${file}.1`);
      d.proc.kill('SIGHUP');
      await waitFor(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes('reopened the log file'), 3000, 'fresh file', { everyMs: 25 });
      assert.equal((fs.statSync(file).mode & 0o777).toString(8), '600');

      const { ack } = await helloOk(d.url, await mint(), 'after-rotate');
      await waitFor(() => fs.readFileSync(file, 'utf8').includes(ack.session_id), 3000, 'new connection in the fresh file', { everyMs: 25 });
      const rotated = fs.readFileSync(`${file}.1`, 'utf8');
      assert.ok(rotated.includes('"msg":"listening"'), 'the old lines stay in the renamed file');
      assert.ok(!rotated.includes(ack.session_id) && !rotated.includes('reopened the log file'), 'nothing new goes to the renamed file');
      assert.equal(d.proc.exitCode, null, 'SIGHUP does not stop the daemon');

      // copytruncate: the file is truncated under the daemon; the next line starts at offset 0 (append mode), no hole.
      fs.truncateSync(file, 0);
      const again = await helloOk(d.url, await mint(), 'after-truncate');
      const text = await waitFor(() => {
        const t = fs.readFileSync(file, 'utf8');
        return t.includes(again.ack.session_id) ? t : null;
      }, 3000, 'line after truncation', { everyMs: 25 });
      assert.ok(!text.includes('\0'), 'no NUL bytes: writes follow the truncation');
      assert.ok(text.startsWith('{'), 'the first line starts at the beginning of the file');
    });
  });
});
