// The connection limits of loadConfig(): the per-user limit by mode, its ceiling, and the bound on
// replies waiting for a client that does not read (EXAI_MAX_BUFFERED_BYTES).
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../server/config';

const SUPABASE_ENV = {
  MCP_ENABLE_MULTI_USER: 'true',
  SUPABASE_URL: 'https://abcdefgh.supabase.co',
  DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db',
};

function refusal(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig([], env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.message;
  }
  assert.fail('loadConfig accepted the settings');
}

describe('loadConfig: connection limits', function () {
  it('local mode (one OS user owns every window) defaults to 10,000 connections, not the hosted 5', function () {
    assert.equal(loadConfig([], {}).maxConnectionsPerUser, 10_000);
  });

  it('supabase mode keeps the hosted default of 5 per user', function () {
    assert.equal(loadConfig([], SUPABASE_ENV).maxConnectionsPerUser, 5);
  });

  it('MCP_MAX_CONNECTIONS_PER_USER still applies when set, in both modes', function () {
    assert.equal(loadConfig([], { MCP_MAX_CONNECTIONS_PER_USER: '3' }).maxConnectionsPerUser, 3);
    assert.equal(loadConfig([], { ...SUPABASE_ENV, MCP_MAX_CONNECTIONS_PER_USER: '12' }).maxConnectionsPerUser, 12);
  });

  it('local mode accepts limits far above 1,000 (one account holding 2,000 connections)', function () {
    assert.equal(loadConfig([], { MCP_MAX_CONNECTIONS_PER_USER: '2000' }).maxConnectionsPerUser, 2000);
    assert.equal(loadConfig([], { MCP_MAX_CONNECTIONS_PER_USER: '1000000' }).maxConnectionsPerUser, 1_000_000);
  });

  it('supabase mode stops at the SQL rule\'s ceiling of 1000 per account (mcp_claim_session clamps to it)', function () {
    assert.equal(loadConfig([], { ...SUPABASE_ENV, MCP_MAX_CONNECTIONS_PER_USER: '1000' }).maxConnectionsPerUser, 1000);
    assert.match(refusal({ ...SUPABASE_ENV, MCP_MAX_CONNECTIONS_PER_USER: '1001' }), /^MCP_MAX_CONNECTIONS_PER_USER must be a whole number from 1 to 1000 \(got "1001"\)\.$/);
  });

  it('refuses 0 and values past the ceiling with one sentence naming the setting and its range', function () {
    assert.match(refusal({ ...SUPABASE_ENV, MCP_MAX_CONNECTIONS_PER_USER: '0' }), /^MCP_MAX_CONNECTIONS_PER_USER must be a whole number from 1 to 1000 \(got "0"\)\.$/);
    assert.match(refusal({ MCP_MAX_CONNECTIONS_PER_USER: '1000001' }), /MCP_MAX_CONNECTIONS_PER_USER must be a whole number from 1 to 1000000/);
  });

  it('EXAI_MAX_BUFFERED_BYTES: 16 MiB by default, settable from 64 KiB to 1 GiB', function () {
    assert.equal(loadConfig([], {}).maxBufferedBytes, 16 * 1024 * 1024);
    assert.equal(loadConfig([], { EXAI_MAX_BUFFERED_BYTES: '65536' }).maxBufferedBytes, 65536);
    assert.equal(loadConfig([], { EXAI_MAX_BUFFERED_BYTES: String(1024 ** 3) }).maxBufferedBytes, 1024 ** 3);
    assert.match(refusal({ EXAI_MAX_BUFFERED_BYTES: '1000' }), /^EXAI_MAX_BUFFERED_BYTES must be a whole number from 65536 to 1073741824/);
    assert.match(refusal({ EXAI_MAX_BUFFERED_BYTES: 'lots' }), /EXAI_MAX_BUFFERED_BYTES/);
  });
});
