// server/transport/keepAlive.ts: one timer pings every watched socket; a socket that did not answer
// the previous ping is cut off; closed sockets are forgotten.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { KeepAlive } from '../../server/transport/keepAlive';

class FakeSocket extends EventEmitter {
  pings = 0;
  terminated = false;
  constructor(private readonly answers: boolean) {
    super();
  }
  ping(): void {
    this.pings++;
    if (this.answers) setImmediate(() => this.emit('pong'));
  }
  terminate(): void {
    this.terminated = true;
    setImmediate(() => this.emit('close'));
  }
}

async function until(condition: () => boolean, what: string, deadlineMs = 5000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('KeepAlive (WebSocket ping/pong)', function () {
  it('pings every socket; cuts off one that does not answer, keeps those that do; forgets closed ones', async function () {
    const keepAlive = new KeepAlive(20);
    const answering = new FakeSocket(true);
    const silent = new FakeSocket(false);
    const closed = new FakeSocket(true);
    for (const s of [answering, silent, closed]) keepAlive.watch(s as never);
    closed.emit('close');
    try {
      await until(() => silent.terminated, 'the silent socket to be cut off');
      assert.equal(silent.pings, 1, 'cut off at the sweep after its unanswered ping');
      await until(() => answering.pings >= 4, 'the answering socket to be pinged again');
      assert.equal(answering.terminated, false);
      assert.equal(closed.pings, 0, 'a closed socket is not pinged');
      const pingsOfSilent = silent.pings;
      await until(() => answering.pings >= 6, 'more sweeps');
      assert.equal(silent.pings, pingsOfSilent, 'a socket cut off is not pinged again');
    } finally {
      keepAlive.stop();
    }
  });

  it('shares its listeners: watching many sockets adds no function per socket', function () {
    const keepAlive = new KeepAlive(60_000);
    const sockets = [new FakeSocket(true), new FakeSocket(true)];
    for (const s of sockets) keepAlive.watch(s as never);
    keepAlive.stop();
    assert.equal(sockets[0].listeners('pong')[0], sockets[1].listeners('pong')[0]);
    assert.equal(sockets[0].listeners('close')[0], sockets[1].listeners('close')[0]);
  });
});
