// Start-up failures of the real daemon: a bad setting exits 2 with ONE line on stderr that names
// the setting; a port already in use exits 1 naming the port. (loadConfig itself: test/unit/config.test.ts.)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { runDaemon, tempDir } from '../helpers/daemon';

/** Settings of the test runner's environment that would change what the daemon does. */
const CLEAN_ENV: Record<string, undefined> = {
  MCP_ENABLE_MULTI_USER: undefined, SUPABASE_URL: undefined, SUPABASE_JWT_SECRET: undefined, DATABASE_URL: undefined,
  MCP_SESSION_TIMEOUT: undefined, MCP_MAX_CONNECTIONS_PER_USER: undefined, EXAI_WS_HOST: undefined,
  EXAI_IDLE_EXIT_SECONDS: undefined, EXAI_PUBLIC_HOSTS: undefined, EXAI_BEHIND_PROXY: undefined,
};
const SUPABASE = { MCP_ENABLE_MULTI_USER: 'true', SUPABASE_URL: 'https://abcdefgh.supabase.co', DATABASE_URL: 'postgres://u:p@127.0.0.1:1/db' };

describe('daemon start-up errors', function () {
  let root: string;
  let n = 0;
  const run = (env: Record<string, string | undefined>, args: string[] = []) =>
    runDaemon({ stateDir: path.join(root, `s${n++}`), env: { ...CLEAN_ENV, ...env }, args }, 10000);

  before(() => (root = tempDir('cfg')));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  const cases: [string, Record<string, string | undefined>, string[], RegExp][] = [
    ['EXAI_WS_PORT=abc', { EXAI_WS_PORT: 'abc' }, [], /EXAI_WS_PORT/],
    ['EXAI_WS_PORT=70000', { EXAI_WS_PORT: '70000' }, [], /EXAI_WS_PORT.*70000/],
    ['--port abc', {}, ['--port', 'abc'], /--port/],
    ['--port 70000', {}, ['--port', '70000'], /--port/],
    ['--port without a value', {}, ['--port'], /--port/],
    ['an unknown flag', {}, ['--bogus'], /--bogus/],
    ['--mode bogus', {}, ['--mode', 'bogus'], /--mode.*bogus/],
    ['MCP_ENABLE_MULTI_USER=maybe', { MCP_ENABLE_MULTI_USER: 'maybe' }, [], /MCP_ENABLE_MULTI_USER/],
    ['supabase mode without SUPABASE_URL', { ...SUPABASE, SUPABASE_URL: undefined }, [], /SUPABASE_URL/],
    ['--mode supabase without SUPABASE_URL', { DATABASE_URL: SUPABASE.DATABASE_URL }, ['--mode', 'supabase'], /SUPABASE_URL/],
    ['supabase mode without DATABASE_URL', { ...SUPABASE, DATABASE_URL: undefined }, [], /DATABASE_URL/],
    ['a malformed SUPABASE_URL', { ...SUPABASE, SUPABASE_URL: 'not a url' }, [], /SUPABASE_URL/],
    ['a DATABASE_URL that is not postgres://', { ...SUPABASE, DATABASE_URL: 'mysql://u:p@h/db' }, [], /DATABASE_URL/],
    ['a too-short SUPABASE_JWT_SECRET', { ...SUPABASE, SUPABASE_JWT_SECRET: 'short-secret' }, [], /SUPABASE_JWT_SECRET/],
    ['MCP_MAX_CONNECTIONS_PER_USER=0', { MCP_MAX_CONNECTIONS_PER_USER: '0' }, [], /MCP_MAX_CONNECTIONS_PER_USER/],
    ['MCP_SESSION_TIMEOUT=-5', { MCP_SESSION_TIMEOUT: '-5' }, [], /MCP_SESSION_TIMEOUT/],
    ['EXAI_MAX_UNAUTHENTICATED=0', { EXAI_MAX_UNAUTHENTICATED: '0' }, [], /EXAI_MAX_UNAUTHENTICATED must be a whole number/],
    ['EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS=x', { EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS: 'x' }, [], /EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS must be a whole number/],
    ['EXAI_LOG_MAX_MB=0', { EXAI_LOG_MAX_MB: '0' }, [], /EXAI_LOG_MAX_MB must be a whole number/],
    ['--behind-proxy without EXAI_PUBLIC_HOSTS', SUPABASE, ['--behind-proxy'], /needs --public-host \(EXAI_PUBLIC_HOSTS\)/],
  ];
  for (const [what, env, args, names] of cases) {
    it(`${what} -> exit 2, one line naming the setting`, async function () {
      const res = await run(env, args);
      assert.equal(res.code, 2, `stdout=${res.stdout} stderr=${res.stderr}`);
      assert.equal(res.stdout, '');
      const lines = res.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `one line: ${JSON.stringify(res.stderr)}`);
      assert.match(lines[0], names);
      assert.ok(!lines[0].includes('short-secret') && !lines[0].includes('u:p@'), 'no secret echoed');
    });
  }

  it('a port already in use -> exit 1, one sentence naming the port, no lock or discovery left', async function () {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const stateDir = path.join(root, 'busy');
      const res = await runDaemon({ stateDir, env: { ...CLEAN_ENV, EXAI_WS_PORT: String(port) } }, 10000);
      assert.equal(res.code, 1, res.stderr);
      assert.equal(res.stdout, '');
      const lines = res.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, res.stderr);
      assert.match(lines[0], new RegExp(`port ${port}\\b.*in use`));
      assert.equal(fs.existsSync(path.join(stateDir, 'daemon.lock')), false, 'the lock was released');
      assert.equal(fs.existsSync(path.join(stateDir, 'daemon.json')), false);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });
});
