// The caps on unauthenticated sockets (server/transport/unauthenticated.ts) with stand-in sockets.
// With real sockets and 1,000 half-sent upgrades: test/daemon/httpFloods.test.ts.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { UnauthenticatedSockets, addressGroup, type Eviction } from '../../server/transport/unauthenticated';

let nextPort = 40000;

class FakeSocket extends EventEmitter {
  destroyed = false;
  readonly remotePort = nextPort++;
  constructor(readonly remoteAddress: string | undefined) {
    super();
  }
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    setImmediate(() => this.emit('close'));
  }
}

const socket = (address: string | undefined) => new FakeSocket(address) as FakeSocket & net.Socket;

describe('UnauthenticatedSockets', function () {
  it('past the per-address cap closes the oldest socket of that address, and only of that address', function () {
    const evicted: Eviction[] = [];
    const caps = new UnauthenticatedSockets({ total: 100, perAddress: 3 }, (e) => evicted.push(e));
    const a = [1, 2, 3].map(() => socket('10.0.0.1'));
    const other = socket('10.0.0.2');
    for (const s of [...a, other]) caps.admit(s);
    assert.equal(caps.size, 4);
    const newcomer = socket('10.0.0.1');
    caps.admit(newcomer);
    assert.deepEqual([...a, other, newcomer].map((s) => s.destroyed), [true, false, false, false, false]);
    assert.deepEqual(evicted, [{ address: '10.0.0.1', cap: 'per_address', unauthenticated: 4 }]);
    assert.equal(caps.size, 4);
  });

  it('past the total cap closes the oldest socket overall', function () {
    const caps = new UnauthenticatedSockets({ total: 3, perAddress: 3 });
    const sockets = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5'].map(socket);
    for (const s of sockets) caps.admit(s);
    assert.deepEqual(sockets.map((s) => s.destroyed), [true, true, false, false, false]);
    assert.equal(caps.size, 3);
  });

  it('an authenticated socket (found by its address and port, so a TLS socket finds its TCP socket) no longer counts', function () {
    const caps = new UnauthenticatedSockets({ total: 2, perAddress: 2 });
    const real = socket('10.0.0.1');
    caps.admit(real);
    caps.authenticated({ remoteAddress: real.remoteAddress, remotePort: real.remotePort });
    const flood = [socket('10.0.0.1'), socket('10.0.0.1'), socket('10.0.0.1')];
    for (const s of flood) caps.admit(s);
    assert.equal(real.destroyed, false, 'the authenticated socket is never closed for the flood');
    assert.deepEqual(flood.map((s) => s.destroyed), [true, false, false]);
  });

  it('a closed socket stops counting; a socket already gone on arrival is destroyed', async function () {
    const caps = new UnauthenticatedSockets({ total: 1, perAddress: 1 });
    const first = socket('10.0.0.1');
    caps.admit(first);
    first.destroy();
    await new Promise((r) => setImmediate(r));
    assert.equal(caps.size, 0);
    const gone = socket(undefined);
    caps.admit(gone);
    assert.equal(gone.destroyed, true);
    assert.equal(caps.size, 0);
  });

  it('without a per-address cap (behind a proxy) only the total applies', function () {
    const caps = new UnauthenticatedSockets({ total: 5, perAddress: null });
    const sockets = Array.from({ length: 6 }, () => socket('10.0.0.9'));
    for (const s of sockets) caps.admit(s);
    assert.deepEqual(sockets.map((s) => s.destroyed), [true, false, false, false, false, false]);
  });

  it('counts an IPv6 client by its /64 and an IPv4-mapped address as IPv4', function () {
    assert.equal(addressGroup('10.1.2.3'), '10.1.2.3');
    assert.equal(addressGroup('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(addressGroup('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(addressGroup('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
    assert.equal(addressGroup('2001:db8::2:1'), '2001:db8:0:0::/64');
    assert.equal(addressGroup('2001:db8:0:0:1::'), '2001:db8:0:0::/64');
    assert.equal(addressGroup('::1'), '0:0:0:0::/64');
    assert.equal(addressGroup('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(addressGroup('1::2:3:4:5:1.2.3.4'), '1:0:2:3::/64', 'a trailing IPv4 part is two groups');
    assert.notEqual(addressGroup('2001:db8:1:2::1'), addressGroup('2001:db8:1:3::1'));

    const caps = new UnauthenticatedSockets({ total: 100, perAddress: 2 });
    const sameHost = ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff::3'].map(socket);
    for (const s of sameHost) caps.admit(s);
    assert.deepEqual(sameHost.map((s) => s.destroyed), [true, false, false], 'picking new addresses in the /64 does not escape the cap');
  });
});
