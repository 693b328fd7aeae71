// The EXAI MCP server definition's pure parts (src/mcp/definition.ts): the daemon's /mcp address for
// its WebSocket address, and the version that changes exactly when who or where changes.
import assert from 'node:assert/strict';
import { definitionVersion, MCP_PROVIDER_ID, MCP_SERVER_LABEL, mcpUrlOf, sameIdentity } from '../../src/mcp/definition';
import pkg from '../../package.json';
import type { McpIdentity } from '../../src/daemon/windowConnection';

describe('the EXAI MCP server definition (pure parts)', function () {
  it('is contributed by the manifest under the id the extension registers (VS Code refuses others)', function () {
    assert.deepEqual(pkg.contributes.mcpServerDefinitionProviders, [{ id: MCP_PROVIDER_ID, label: MCP_SERVER_LABEL }]);
  });

  it('maps the daemon address to its /mcp endpoint: ws → http, wss → https', function () {
    assert.equal(mcpUrlOf('wss://exai.example.com/'), 'https://exai.example.com/mcp');
    assert.equal(mcpUrlOf('wss://exai.example.com'), 'https://exai.example.com/mcp');
    assert.equal(mcpUrlOf('wss://exai.example.com:8443/'), 'https://exai.example.com:8443/mcp');
    assert.equal(mcpUrlOf('ws://127.0.0.1:8079'), 'http://127.0.0.1:8079/mcp');
    assert.equal(mcpUrlOf('ws://127.0.0.1:8079/'), 'http://127.0.0.1:8079/mcp');
    assert.equal(mcpUrlOf('ws://[::1]:8079/'), 'http://[::1]:8079/mcp');
  });

  it('keeps a path prefix (a daemon behind a reverse proxy) and drops user info, query and fragment', function () {
    assert.equal(mcpUrlOf('wss://host/exai/'), 'https://host/exai/mcp');
    assert.equal(mcpUrlOf('wss://host/exai'), 'https://host/exai/mcp');
    assert.equal(mcpUrlOf('wss://user:secret@host/?token=abc#x'), 'https://host/mcp');
  });

  it('refuses an address that is not a daemon WebSocket address', function () {
    assert.throws(() => mcpUrlOf('http://host/'), /not a daemon address/);
    assert.throws(() => mcpUrlOf('not a url'));
  });

  const jazeel: McpIdentity = { mode: 'supabase', project: 'https://abc.supabase.co', accountId: 'user-j', daemonUrl: 'wss://exai.example.com/' };

  it('gives the same version for the same user at the same daemon, and another one when either changes', function () {
    const v = definitionVersion(jazeel, '0.1.0');
    assert.match(v, /^0\.1\.0\+[0-9a-f]{12}$/);
    assert.equal(definitionVersion({ ...jazeel }, '0.1.0'), v);
    const others: McpIdentity[] = [
      { ...jazeel, accountId: 'user-m' }, // Switch User
      { ...jazeel, accountId: null }, // signed out
      { ...jazeel, daemonUrl: 'ws://127.0.0.1:4000/' }, // another daemon
      { ...jazeel, project: 'https://other.supabase.co' },
      { mode: 'local', project: null, accountId: null, daemonUrl: 'ws://127.0.0.1:4000/' },
    ];
    for (const other of others) {
      assert.notEqual(definitionVersion(other, '0.1.0'), v, JSON.stringify(other));
      assert.equal(sameIdentity(jazeel, other), false, JSON.stringify(other));
    }
    assert.notEqual(definitionVersion(jazeel, '0.2.0'), v);
  });

  it('does not put the account id into the version in the clear (VS Code stores definitions)', function () {
    assert.ok(!definitionVersion(jazeel, '0.1.0').includes('user-j'));
  });

  it('treats the same who-and-where as unchanged, and nothing announced yet as changed', function () {
    assert.equal(sameIdentity(jazeel, { ...jazeel }), true);
    assert.equal(sameIdentity(null, jazeel), false);
  });
});
