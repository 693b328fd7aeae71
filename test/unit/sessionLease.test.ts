// server/sessions/lease.ts: one session's hold on its row (claim, renew, idle, expiry, heartbeat,
// final status through the daemon-wide PendingEndings), the one implementation behind both the
// WebSocket connection and the MCP session. Against the in-memory store, with faults injected
// where a test needs them; every wait bounded.
import assert from 'node:assert/strict';
import type { Identity } from '../../server/auth/identity';
import type { Logger } from '../../server/log';
import { SessionLease, type LeaseHooks, type LeaseRules } from '../../server/sessions/lease';
import { MemorySessionStore } from '../../server/sessions/memoryStore';
import { PendingEndings } from '../../server/sessions/pendingEndings';
import { StoreUnavailable } from '../../server/sessions/store';
import { sleep, waitFor } from '../helpers/wait';

const nowSec = () => Math.floor(Date.now() / 1000);

/** A logger that keeps its lines (level and message). */
function recordingLog() {
  const lines: { level: string; msg: string }[] = [];
  const log: Logger = {
    debug: (msg) => void lines.push({ level: 'debug', msg }),
    info: (msg) => void lines.push({ level: 'info', msg }),
    warn: (msg) => void lines.push({ level: 'warn', msg }),
    error: (msg) => void lines.push({ level: 'error', msg }),
    child: () => log,
  };
  return { log, lines };
}

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

const statusOf = async (store: MemorySessionStore, userId: string, sessionId: string) =>
  (await store.listOwn(identity(userId, null))).find((r) => r.session_id === sessionId)?.connection_status;

describe('SessionLease (one session’s row: claim, renew, idle, expiry, heartbeat, final status)', function () {
  const leases: SessionLease[] = [];
  const queues: PendingEndings[] = [];
  afterEach(async () => {
    await Promise.all(leases.splice(0).map((l) => l.end('disconnected')));
    for (const q of queues.splice(0)) await q.flush(0); // stops their timers
  });
  const setup = (retry = { firstRetryMs: 20, maxRetryMs: 80 }) => {
    const store = new MemorySessionStore();
    const { log, lines } = recordingLog();
    const endings = new PendingEndings({ store, log, ...retry });
    queues.push(endings);
    const lease = (id: string, r = rules()) => {
      const l = new SessionLease(id, { store, endings, log }, r);
      leases.push(l);
      return l;
    };
    return { store, endings, lease, lines };
  };

  it('claims under the per-user limit, records daemon id and pid, and ends the row once', async function () {
    const { store, lease } = setup();
    const a = lease('a', rules({ maxPerUser: 1 }));
    assert.equal(a.holder, null, 'no identity before the claim');
    assert.deepEqual(await a.claim(identity('u1', null), { instance: null, client_version: '1', transport: 'mcp' }), { ok: true });
    assert.equal(a.identity.userId, 'u1');
    const b = lease('b', rules({ maxPerUser: 1 }));
    assert.deepEqual(await b.claim(identity('u1', null), { instance: null, client_version: '1' }), { ok: false, active: 1 });
    assert.equal(b.holder, null, 'a refused claim holds no identity');
    const [row] = await store.listOwn(identity('u1', null));
    assert.deepEqual(row.metadata, { instance: null, client_version: '1', transport: 'mcp', client_name: null, daemon_id: 'unit', pid: process.pid });
    const first = a.end('expired');
    assert.equal(a.end('disconnected'), first, 'a second end is the same ending');
    await first;
    assert.equal(await statusOf(store, 'u1', 'a'), 'expired');
    await b.end('disconnected'); // a refused claim writes nothing
  });

  it('end() waits for a claim still in flight, so a row is never left connected', async function () {
    const { store, lease } = setup();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const claim = store.claim.bind(store);
    store.claim = async (...args) => { await gate; return claim(...args); };
    const l = lease('slow');
    const claiming = l.claim(identity('u1', null), { instance: null, client_version: null });
    const ending = l.end('disconnected');
    release();
    await claiming;
    await ending;
    assert.equal(await statusOf(store, 'u1', 'slow'), 'disconnected');
    l.start(recorder().hooks); // too late: an ended lease runs no rules
    assert.ok(l.ended);
  });

  it('a claim that failed (store down) writes no ending', async function () {
    const { store, lease } = setup();
    const closes: string[] = [];
    store.claim = async () => { throw new StoreUnavailable('down'); };
    store.close = async (_c, id) => void closes.push(id);
    const l = lease('refused');
    await assert.rejects(l.claim(identity('u1', null), { instance: null, client_version: null }), StoreUnavailable);
    await l.end('disconnected');
    assert.deepEqual(closes, []);
  });

  it("renew 'later-only' (MCP): the same user's later token replaces the identity; an older one does not; another user's changes nothing", async function () {
    const { lease } = setup();
    const l = lease('r');
    await l.claim(identity('u1', nowSec() + 100), { instance: null, client_version: null });
    l.start(recorder().hooks);
    assert.equal(l.renew(identity('u2', nowSec() + 9999), 'later-only'), false);
    assert.equal(l.identity.userId, 'u1');
    assert.equal(l.renew(identity('u1', nowSec() + 50), 'later-only'), true);
    assert.equal(l.identity.expiresAt, nowSec() + 100, 'an older token never shortens the session');
    const later = identity('u1', nowSec() + 1000, 'fresh');
    assert.equal(l.renew(later, 'later-only'), true);
    assert.equal(l.identity.accessToken, 'fresh');
  });

  it("renew 'any' (WebSocket auth): the same user's token replaces the identity even when it expires sooner, and moves the expiry", async function () {
    const { lease } = setup();
    const l = lease('w');
    await l.claim(identity('u1', nowSec() + 3600), { instance: null, client_version: null });
    const { fired, hooks } = recorder();
    l.start(hooks);
    assert.equal(l.renew(identity('u2', nowSec() + 1), 'any'), false, "another user's token");
    assert.equal(l.renew(identity('u1', nowSec() + 1, 'sooner'), 'any'), true);
    assert.equal(l.identity.accessToken, 'sooner');
    await waitFor(() => fired.includes('expired'), 4000, 'expired at the new token’s exp', { everyMs: 10 });
  });

  it('fires expiring at once when less than 60 s are left, then expired at exp; a renewal moves expired', async function () {
    const { lease } = setup();
    const l = lease('x');
    await l.claim(identity('u1', nowSec() + 1), { instance: null, client_version: null });
    const { fired, hooks } = recorder();
    l.start(hooks);
    await waitFor(() => fired.includes('expiring'), 1000, 'expiring', { everyMs: 10 });
    assert.ok(!fired.includes('expired'));
    await waitFor(() => fired.includes('expired'), 4000, 'expired', { everyMs: 10 });
    assert.ok(l.expiredNow());

    const m = lease('y');
    await m.claim(identity('u1', nowSec() + 1), { instance: null, client_version: null });
    const second = recorder();
    m.start(second.hooks);
    m.renew(identity('u1', nowSec() + 3600), 'later-only');
    await sleep(2500);
    assert.ok(!second.fired.includes('expired'), 'the renewed session did not expire');
  });

  it('idle only when nothing is in flight; activity restarts the clock', async function () {
    const { lease } = setup();
    let busy = 1;
    const l = lease('i', rules({ idleTimeoutSec: 0.2 }));
    await l.claim(identity('u1', null), { instance: null, client_version: null });
    const { fired, hooks } = recorder(() => busy);
    l.start(hooks);
    await sleep(600);
    assert.equal(fired.length, 0, 'a running call is activity');
    busy = 0;
    l.activity();
    await waitFor(() => fired.includes('idle'), 2000, 'idle', { everyMs: 10 });
  });

  it('heartbeat: a row ended elsewhere fires endedElsewhere', async function () {
    const { store, lease } = setup();
    const l = lease('h', rules({ heartbeatSec: 0.05 }));
    const who = identity('u1', null);
    await l.claim(who, { instance: null, client_version: null });
    const { fired, hooks } = recorder();
    l.start(hooks);
    await store.close(who, 'h', 'disconnected');
    await waitFor(() => fired.includes('endedElsewhere'), 2000, 'endedElsewhere', { everyMs: 10 });
  });

  it('heartbeat failures are logged once per outage; when it works again the queued endings are written at once', async function () {
    // A backoff far longer than the test waits: only the heartbeat's retryNow() can write the queue in time.
    const { store, lease, lines, endings } = setup({ firstRetryMs: 60_000, maxRetryMs: 60_000 });
    const who = identity('u1', null);
    const l = lease('beat', rules({ heartbeatSec: 0.05 }));
    await l.claim(who, { instance: null, client_version: null });
    const gone = lease('gone');
    await gone.claim(who, { instance: null, client_version: null });
    l.start(recorder().hooks);

    let down = true;
    const touch = store.touch.bind(store);
    const close = store.close.bind(store);
    let touches = 0;
    store.touch = async (...args) => { touches++; if (down) throw new StoreUnavailable('down'); return touch(...args); };
    store.close = async (...args) => { if (down) throw new StoreUnavailable('down'); return close(...args); };
    await waitFor(() => touches >= 5, 3000, 'five failed heartbeats', { everyMs: 10 });
    assert.equal(lines.filter((l) => /^heartbeat could not update/.test(l.msg)).length, 1, 'logged once, not once a beat');

    await gone.end('disconnected');
    assert.equal(endings.size, 1, 'the ending waits in the queue');
    down = false;
    await waitFor(() => endings.size === 0, 3000, 'the queued ending written after the heartbeat worked again', { everyMs: 10 });
    assert.equal(await statusOf(store, 'u1', 'gone'), 'disconnected');
    assert.equal(lines.filter((l) => l.msg === 'heartbeat works again').length, 1);

    down = true;
    const before = touches;
    await waitFor(() => touches >= before + 3, 3000, 'heartbeats failing again', { everyMs: 10 });
    assert.equal(lines.filter((l) => /^heartbeat could not update/.test(l.msg)).length, 2, 'a second outage is logged again, once');
  });

  it('the final status goes through PendingEndings: during an outage it is queued (end() does not wait) and written with the freshest token once the store is back', async function () {
    const { store, lease, endings } = setup();
    const close = store.close.bind(store);
    const seen: string[] = [];
    let down = true;
    store.close = async (caller, id, status) => {
      seen.push(caller.accessToken);
      if (down) throw new StoreUnavailable('The session database is unreachable; test.');
      return close(caller, id, status);
    };
    const l = lease('f');
    await l.claim(identity('u1', nowSec() + 100, 'old'), { instance: null, client_version: null });
    l.start(recorder().hooks);
    l.renew(identity('u1', nowSec() + 200, 'new'), 'later-only');
    await l.end('expired');
    assert.equal(endings.size, 1, 'queued, not given up on');
    assert.equal(await statusOf(store, 'u1', 'f'), 'connected');
    await sleep(300); // several backoff steps: the old lease gave up after 3 quick tries
    down = false;
    await waitFor(() => endings.size === 0, 3000, 'the queue written', { everyMs: 10 });
    assert.equal(await statusOf(store, 'u1', 'f'), 'expired');
    assert.ok(seen.length >= 2 && seen.every((t) => t === 'new'), JSON.stringify(seen));
  });
});
