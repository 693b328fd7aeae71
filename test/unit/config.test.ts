// loadConfig() as a pure function: flags + environment -> DaemonConfig, or ConfigError naming the setting.
// (The daemon's exit code and stderr for bad settings: test/daemon/config.test.ts.)
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../server/config';
import { isLoopbackHost as isLoopback } from '../../server/net';

const SUPABASE_ENV = {
  MCP_ENABLE_MULTI_USER: 'true',
  SUPABASE_URL: 'https://abcdefgh.supabase.co',
  DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db',
};

function configError(argv: string[], env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(argv, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.message;
  }
  assert.fail('loadConfig accepted the settings');
}

describe('loadConfig', function () {
  it('has the documented defaults with no flags and an empty environment', function () {
    const c = loadConfig([], {});
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 8079);
    assert.equal(c.mode, 'local');
    assert.equal(c.sessionTimeoutSec, 3600);
    assert.equal(c.maxConnectionsPerUser, 10_000); // local mode: see configLimits.test.ts
    assert.equal(c.idleExitSec, 0);
    assert.equal(c.supabaseUrl, null);
    assert.equal(c.databaseUrl, null);
    assert.equal(c.jwtSecret, null);
    assert.equal(c.stateDir, path.join(os.homedir(), '.exai'));
    assert.equal(c.logDir, path.join(os.homedir(), '.exai', 'logs'));
    assert.equal(c.publicHosts, null);
    assert.equal(c.maxUnauthenticated, 512);
    assert.equal(c.maxUnauthenticatedPerAddress, 128);
    assert.equal(c.logMaxBytes, 50 * 1024 * 1024);
  });

  it('reads the caps on unauthenticated sockets and the log file bound', function () {
    const c = loadConfig([], { EXAI_MAX_UNAUTHENTICATED: '1000', EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS: '8', EXAI_LOG_MAX_MB: '3' });
    assert.equal(c.maxUnauthenticated, 1000);
    assert.equal(c.maxUnauthenticatedPerAddress, 8);
    assert.equal(c.logMaxBytes, 3 * 1024 * 1024);
  });

  it('reads the environment', function () {
    const c = loadConfig([], {
      EXAI_WS_HOST: '::1', EXAI_WS_PORT: '9001', MCP_SESSION_TIMEOUT: '60', MCP_MAX_CONNECTIONS_PER_USER: '2',
      EXAI_STATE_DIR: '/tmp/exai-x', EXAI_LOG_DIR: '/tmp/exai-logs', EXAI_IDLE_EXIT_SECONDS: '30',
    });
    assert.equal(c.host, '::1');
    assert.equal(c.port, 9001);
    assert.equal(c.sessionTimeoutSec, 60);
    assert.equal(c.maxConnectionsPerUser, 2);
    assert.equal(c.stateDir, '/tmp/exai-x');
    assert.equal(c.logDir, '/tmp/exai-logs');
    assert.equal(c.idleExitSec, 30);
  });

  it('refuses anonymous Supabase users unless EXAI_ALLOW_ANONYMOUS=true', function () {
    assert.equal(loadConfig([], {}).allowAnonymous, false);
    assert.equal(loadConfig([], { EXAI_ALLOW_ANONYMOUS: 'true' }).allowAnonymous, true);
    assert.match(configError([], { EXAI_ALLOW_ANONYMOUS: 'yes' }), /EXAI_ALLOW_ANONYMOUS must be true or false/);
  });

  it('accepts no OAuth-issued token by default; EXAI_OAUTH_CLIENTS is * or a list of client ids', function () {
    const a = '6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b';
    const b = 'A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D';
    assert.deepEqual(loadConfig([], {}).oauthClients, []);
    assert.deepEqual(loadConfig([], { EXAI_OAUTH_CLIENTS: ' ' }).oauthClients, []);
    assert.equal(loadConfig([], { EXAI_OAUTH_CLIENTS: ' * ' }).oauthClients, '*');
    assert.deepEqual(loadConfig([], { EXAI_OAUTH_CLIENTS: `${a}, ${b},${a},` }).oauthClients, [a, b.toLowerCase()]);
    assert.match(configError([], { EXAI_OAUTH_CLIENTS: `*,${a}` }), /EXAI_OAUTH_CLIENTS is either \* .* or a list of client ids, not both/);
    assert.match(configError([], { EXAI_OAUTH_CLIENTS: `${a},claude-code` }), /EXAI_OAUTH_CLIENTS entry "claude-code" is not an OAuth client id/);
  });

  it('bounds EXAI_DAEMON_ID to what a session row stores (512 characters), and hashes a long default', function () {
    assert.equal(loadConfig([], { EXAI_DAEMON_ID: 'd'.repeat(512) }).daemonId, 'd'.repeat(512));
    assert.match(configError([], { EXAI_DAEMON_ID: 'd'.repeat(513) }), /EXAI_DAEMON_ID is 513 characters long; use at most 512/);
    const longState = '/tmp/' + 's'.repeat(600);
    const id = loadConfig([], { EXAI_STATE_DIR: longState }).daemonId;
    assert.ok(id.length <= 512 && id.includes(':sha256:'), id);
    assert.equal(id, loadConfig([], { EXAI_STATE_DIR: longState }).daemonId, 'the same state directory gives the same id across restarts');
  });

  it('treats empty environment values as unset for numbers and URLs', function () {
    const c = loadConfig([], { EXAI_WS_PORT: '', MCP_SESSION_TIMEOUT: '', SUPABASE_URL: '', DATABASE_URL: '', MCP_ENABLE_MULTI_USER: '' });
    assert.equal(c.port, 8079);
    assert.equal(c.sessionTimeoutSec, 3600);
    assert.equal(c.mode, 'local');
    assert.equal(c.supabaseUrl, null);
  });

  it('lets flags override the environment (--host, --port, --mode)', function () {
    const c = loadConfig(['--host', '127.0.0.2', '--port', '9002', '--mode', 'local'], {
      EXAI_WS_HOST: '127.0.0.3', EXAI_WS_PORT: '9003', ...SUPABASE_ENV,
    });
    assert.equal(c.host, '127.0.0.2');
    assert.equal(c.port, 9002);
    assert.equal(c.mode, 'local', '--mode local wins over MCP_ENABLE_MULTI_USER=true');
  });

  it('a valid --port flag wins even when EXAI_WS_PORT is invalid', function () {
    assert.equal(loadConfig(['--port', '0'], { EXAI_WS_PORT: 'abc' }).port, 0);
  });

  it('names --port (not EXAI_WS_PORT) when the flag is the bad value', function () {
    assert.match(configError(['--port', 'x'], { EXAI_WS_PORT: '9000' }), /^--port /);
    assert.match(configError([], { EXAI_WS_PORT: 'x' }), /^EXAI_WS_PORT /);
  });

  for (const on of ['true', '1']) {
    it(`MCP_ENABLE_MULTI_USER=${on} selects supabase mode`, function () {
      const c = loadConfig([], { ...SUPABASE_ENV, MCP_ENABLE_MULTI_USER: on });
      assert.equal(c.mode, 'supabase');
      assert.equal(c.databaseUrl, SUPABASE_ENV.DATABASE_URL);
    });
  }

  for (const off of ['false', '0']) {
    it(`MCP_ENABLE_MULTI_USER=${off} stays in local mode`, function () {
      assert.equal(loadConfig([], { MCP_ENABLE_MULTI_USER: off }).mode, 'local');
    });
  }

  it('strips trailing slashes from SUPABASE_URL', function () {
    assert.equal(loadConfig([], { ...SUPABASE_ENV, SUPABASE_URL: 'https://abcdefgh.supabase.co/' }).supabaseUrl, 'https://abcdefgh.supabase.co');
    assert.equal(loadConfig([], { ...SUPABASE_ENV, SUPABASE_URL: 'http://127.0.0.1:54321///' }).supabaseUrl, 'http://127.0.0.1:54321');
  });

  it('accepts postgresql:// as well as postgres://', function () {
    assert.equal(loadConfig([], { ...SUPABASE_ENV, DATABASE_URL: 'postgresql://u@h/db' }).databaseUrl, 'postgresql://u@h/db');
  });

  it('keeps a 32-character SUPABASE_JWT_SECRET', function () {
    assert.equal(loadConfig([], { ...SUPABASE_ENV, SUPABASE_JWT_SECRET: 'x'.repeat(32) }).jwtSecret, 'x'.repeat(32));
  });

  it('allows a non-loopback host in supabase mode only', function () {
    assert.equal(loadConfig(['--host', '0.0.0.0', '--behind-proxy', '--public-host', 'exai.example.com'], SUPABASE_ENV).host, '0.0.0.0'); // TLS and Host rules: test/daemon/hosting.test.ts
    assert.match(configError(['--host', '0.0.0.0'], {}), /--host 0\.0\.0\.0 is not a loopback address/);
  });

  it('recognises loopback hosts', function () {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.equal(isLoopback(h), true, h);
    for (const h of ['0.0.0.0', '::', '192.168.1.2', 'example.com', '128.0.0.1']) assert.equal(isLoopback(h), false, h);
  });

  it('derives the log dir from the state dir and the daemon id from host name + state dir', function () {
    const c = loadConfig([], { EXAI_STATE_DIR: '/tmp/exai-y' });
    assert.equal(c.logDir, '/tmp/exai-y/logs');
    assert.equal(c.daemonId, `${os.hostname()}:/tmp/exai-y`);
    assert.equal(loadConfig([], { EXAI_DAEMON_ID: 'd-1' }).daemonId, 'd-1');
  });

  const bad: [string, string[], NodeJS.ProcessEnv, RegExp][] = [
    ['EXAI_WS_PORT=abc', [], { EXAI_WS_PORT: 'abc' }, /EXAI_WS_PORT/],
    ['EXAI_WS_PORT=70000', [], { EXAI_WS_PORT: '70000' }, /EXAI_WS_PORT/],
    ['EXAI_WS_PORT=-1', [], { EXAI_WS_PORT: '-1' }, /EXAI_WS_PORT/],
    ['EXAI_WS_PORT=80.5', [], { EXAI_WS_PORT: '80.5' }, /EXAI_WS_PORT/],
    ['an unknown flag', ['--bogus'], {}, /--bogus/],
    ['a positional argument', ['extra'], {}, /extra/],
    ['--mode bogus', ['--mode', 'bogus'], {}, /--mode/],
    ['MCP_ENABLE_MULTI_USER=maybe', [], { MCP_ENABLE_MULTI_USER: 'maybe' }, /MCP_ENABLE_MULTI_USER/],
    ['supabase mode without SUPABASE_URL', [], { ...SUPABASE_ENV, SUPABASE_URL: undefined }, /SUPABASE_URL/],
    ['supabase mode without DATABASE_URL', [], { ...SUPABASE_ENV, DATABASE_URL: undefined }, /DATABASE_URL/],
    ['a malformed SUPABASE_URL', [], { ...SUPABASE_ENV, SUPABASE_URL: 'not a url' }, /SUPABASE_URL/],
    ['a non-http SUPABASE_URL', [], { ...SUPABASE_ENV, SUPABASE_URL: 'ftp://x.supabase.co' }, /SUPABASE_URL/],
    ['DATABASE_URL not postgres://', [], { ...SUPABASE_ENV, DATABASE_URL: 'mysql://u:p@h/db' }, /DATABASE_URL/],
    ['a short SUPABASE_JWT_SECRET', [], { ...SUPABASE_ENV, SUPABASE_JWT_SECRET: 'x'.repeat(31) }, /SUPABASE_JWT_SECRET/],
    ['MCP_MAX_CONNECTIONS_PER_USER=0', [], { MCP_MAX_CONNECTIONS_PER_USER: '0' }, /MCP_MAX_CONNECTIONS_PER_USER/],
    ['MCP_SESSION_TIMEOUT=-5', [], { MCP_SESSION_TIMEOUT: '-5' }, /MCP_SESSION_TIMEOUT/],
    ['EXAI_IDLE_EXIT_SECONDS=soon', [], { EXAI_IDLE_EXIT_SECONDS: 'soon' }, /EXAI_IDLE_EXIT_SECONDS/],
    ['an empty --host', ['--host', ''], {}, /--host/],
    ['EXAI_MAX_UNAUTHENTICATED=0', [], { EXAI_MAX_UNAUTHENTICATED: '0' }, /^EXAI_MAX_UNAUTHENTICATED must be a whole number from 1 to 100000/],
    ['EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS=many', [], { EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS: 'many' }, /^EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS must be a whole number/],
    ['EXAI_LOG_MAX_MB=0', [], { EXAI_LOG_MAX_MB: '0' }, /^EXAI_LOG_MAX_MB must be a whole number from 1 to 100000/],
    ['a hosted daemon without public host names', ['--behind-proxy'], SUPABASE_ENV, /needs --public-host \(EXAI_PUBLIC_HOSTS\)/],
    ['EXAI_PUBLIC_HOSTS in local mode', [], { EXAI_PUBLIC_HOSTS: 'exai.example.com' }, /^EXAI_PUBLIC_HOSTS is for a hosted daemon/],
    ['a --public-host that is not a name', ['--behind-proxy', '--public-host', 'exai.example.com/x'], SUPABASE_ENV, /^--public-host entry "exai\.example\.com\/x" is not a host name/],
  ];
  for (const [what, argv, env, names] of bad) {
    it(`refuses ${what} with one sentence naming the setting`, function () {
      const message = configError(argv, env);
      assert.match(message, names);
      assert.ok(!message.includes('\n'), `one line: ${JSON.stringify(message)}`);
    });
  }
});
