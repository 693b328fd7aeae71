// server/sessions/lease.ts: one session's hold on its row (claim, renew, idle, expiry, heartbeat,
// final status), against the in-memory store with faults injected where a test needs them.
import assert from 'node:assert/strict';
import type { Identity } from '../../server/auth/identity';
import type { Logger } from '../../server/log';
import { SessionLease, type LeaseHooks, type LeaseRules } from '../../server/sessions/lease';
import { MemorySessionStore } from '../../server/sessions/memoryStore';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nowSec = () => Math.floor(Date.now() / 1000);

function identity(userId: string, expiresAt: number | null, token = `token-${userId}-${expiresAt}`): Identity {
  return { userId, email: null, authSessionId: 's', expiresAt, claims: { sub: userId }, accessToken: token };
}

function rules(over: Partial<LeaseRules> = {}): LeaseRules {
  return { daemonId: 'unit', maxPerUser: 5, idleTimeoutSec: 3600, heartbeatSec: 3600, ...over };
}

/** Hooks that record what fired. */
function recorder(inflight = () => 0) {
  const fired: string[] = [];
  const hooks: LeaseHooks = {
    inflight,
    expiring: () => void fired.push('expiring'),
    expired: () => void fired.push('expired'),
    idle: () => void fired.push('idle'),
    endedElsewhere: () => void fired.push('endedElsewhere'),
  };
  return { fired, hooks };
}

async function waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(10);
  }
}

describe('SessionLease (one session’s row: claim, renew, idle, expiry, final status)', function () {
  const leases: SessionLease[] = [];
  afterEach(async () => {
    await Promise.all(leases.splice(0).map((l) => l.end('disconnected')));
  });
  const lease = (store: MemorySessionStore, id: string, r = rules()) => {
    const l = new SessionLease(id, store, r, quiet);
    leases.push(l);
    return l;
  };

  it('claims under the per-user limit, records daemon id and pid, and ends the row once', async function () {
    const store = new MemorySessionStore();
    const a = lease(store, 'a', rules({ maxPerUser: 1 }));
    assert.deepEqual(await a.claim(identity('u1', null), { instance: null, client_version: '1', transport: 'mcp' }), { ok: true });
    const b = lease(store, 'b', rules({ maxPerUser: 1 }));
    assert.deepEqual(await b.claim(identity('u1', null), { instance: null, client_version: '1' }), { ok: false, active: 1 });
    const [row] = await store.listOwn(identity('u1', null));
    assert.deepEqual(row.metadata, { instance: null, client_version: '1', transport: 'mcp', client_name: null, daemon_id: 'unit', pid: process.pid });
    const first = a.end('expired');
    assert.equal(a.end('disconnected'), first, 'a second end is the same ending');
    await first;
    assert.equal((await store.listOwn(identity('u1', null)))[0].connection_status, 'expired');
    await b.end('disconnected'); // a refused claim writes nothing
  });

  it('end() waits for a claim still in flight, so a row is never left connected', async function () {
    const store = new MemorySessionStore();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const claim = store.claim.bind(store);
    store.claim = async (...args) => { await gate; return claim(...args); };
    const l = lease(store, 'slow');
    const claiming = l.claim(identity('u1', null), { instance: null, client_version: null });
    const ending = l.end('disconnected');
    release();
    await claiming;
    await ending;
    assert.equal((await store.listOwn(identity('u1', null)))[0].connection_status, 'disconnected');
  });

  it('renew: the same user’s later token replaces the identity; an older one does not; another user’s changes nothing', async function () {
    const store = new MemorySessionStore();
    const l = lease(store, 'r');
    await l.claim(identity('u1', nowSec() + 100), { instance: null, client_version: null });
    l.start(recorder().hooks);
    assert.equal(l.renew(identity('u2', nowSec() + 9999)), false);
    assert.equal(l.identity.userId, 'u1');
    assert.equal(l.renew(identity('u1', nowSec() + 50)), true);
    assert.equal(l.identity.expiresAt, nowSec() + 100, 'an older token never shortens the session');
    const later = identity('u1', nowSec() + 1000, 'fresh');
    assert.equal(l.renew(later), true);
    assert.equal(l.identity.accessToken, 'fresh');
  });

  it('fires expiring at once when less than 60 s are left, then expired at exp; a renewal moves expired', async function () {
    const store = new MemorySessionStore();
    const l = lease(store, 'x');
    await l.claim(identity('u1', nowSec() + 1), { instance: null, client_version: null });
    const { fired, hooks } = recorder();
    l.start(hooks);
    await waitFor(() => fired.includes('expiring'), 1000, 'expiring');
    assert.ok(!fired.includes('expired'));
    await waitFor(() => fired.includes('expired'), 4000, 'expired');
    assert.ok(l.expiredNow());

    const m = lease(store, 'y');
    await m.claim(identity('u1', nowSec() + 1), { instance: null, client_version: null });
    const second = recorder();
    m.start(second.hooks);
    m.renew(identity('u1', nowSec() + 3600));
    await sleep(2500);
    assert.ok(!second.fired.includes('expired'), 'the renewed session did not expire');
  });

  it('idle only when nothing is in flight; activity restarts the clock', async function () {
    const store = new MemorySessionStore();
    let busy = 1;
    const l = lease(store, 'i', rules({ idleTimeoutSec: 0.2 }));
    await l.claim(identity('u1', null), { instance: null, client_version: null });
    const { fired, hooks } = recorder(() => busy);
    l.start(hooks);
    await sleep(600);
    assert.equal(fired.length, 0, 'a running call is activity');
    busy = 0;
    l.activity();
    await waitFor(() => fired.includes('idle'), 2000, 'idle');
  });

  it('heartbeat: a row ended elsewhere fires endedElsewhere', async function () {
    const store = new MemorySessionStore();
    const l = lease(store, 'h', rules({ heartbeatSec: 0.05 }));
    const who = identity('u1', null);
    await l.claim(who, { instance: null, client_version: null });
    const { fired, hooks } = recorder();
    l.start(hooks);
    await store.close(who, 'h', 'disconnected');
    await waitFor(() => fired.includes('endedElsewhere'), 2000, 'endedElsewhere');
  });

  it('retries the final status (up to 3 times) and uses the freshest token', async function () {
    const store = new MemorySessionStore();
    const close = store.close.bind(store);
    const seen: string[] = [];
    let failures = 2;
    store.close = async (caller, id, status) => {
      seen.push(caller.accessToken);
      if (failures-- > 0) throw new Error('database away');
      return close(caller, id, status);
    };
    const l = lease(store, 'f');
    await l.claim(identity('u1', nowSec() + 100, 'old'), { instance: null, client_version: null });
    l.start(recorder().hooks);
    l.renew(identity('u1', nowSec() + 200, 'new'));
    await l.end('expired');
    assert.deepEqual(seen, ['new', 'new', 'new']);
    assert.equal((await store.listOwn(identity('u1', null)))[0].connection_status, 'expired');
  });
});
