// The Host header rules against DNS rebinding (server/transport/hostCheck.ts), as a pure function.
// Over real sockets, for /health, other paths and the upgrade: test/daemon/httpFloods.test.ts.
import assert from 'node:assert/strict';
import { hostName, isAllowedHost } from '../../server/transport/hostCheck';

describe('the Host header check', function () {
  it('reads the host name out of name, name:port, [v6] and [v6]:port, in lower case', function () {
    assert.equal(hostName('Example.COM'), 'example.com');
    assert.equal(hostName('example.com:8079'), 'example.com');
    assert.equal(hostName('[::1]:8079'), '[::1]');
    assert.equal(hostName('[::1]'), '[::1]');
    assert.equal(hostName('127.0.0.1:80'), '127.0.0.1');
    for (const bad of ['', ':80', 'a:b:c', '::1', 'host:port', 'host:123456', '[::1', 'a[b]']) assert.equal(hostName(bad), null, bad);
  });

  it('loopback only: localhost, 127.0.0.0/8 and [::1] with any port; nothing else', function () {
    for (const ok of ['localhost', 'LocalHost:8079', '127.0.0.1', '127.0.0.1:9', '127.9.9.9:1', '[::1]', '[::1]:8079', undefined]) {
      assert.equal(isAllowedHost(ok, null), true, String(ok));
    }
    for (const bad of ['evil.example', 'evil.example:8079', 'localhost.evil.example', '127.0.0.1.nip.io', 'foo.localhost', 'localhost.',
      '10.0.0.5', '[2001:db8::1]', '0.0.0.0', '', 'localhost:abc', 'exai.example.com']) {
      assert.equal(isAllowedHost(bad, null), false, bad);
    }
  });

  it('hosted: the configured names, any IP address and loopback names; not other names, not subdomains', function () {
    const hosts = ['exai.example.com', 'exai'];
    for (const ok of ['exai.example.com', 'EXAI.EXAMPLE.COM:443', 'exai:8079', '10.0.0.5:8079', '203.0.113.9', '[2001:db8::1]:443', 'localhost', '127.0.0.1']) {
      assert.equal(isAllowedHost(ok, hosts), true, ok);
    }
    for (const bad of ['evil.example', 'sub.exai.example.com', 'exai.example.com.evil.example', 'example.com', '999.1.1.1', '[zz::1]', '']) {
      assert.equal(isAllowedHost(bad, hosts), false, bad);
    }
  });
});
