// An MCP session's sockets leave the daemon's caps on unauthenticated sockets once their bearer
// checks out (the endpoint calls the HTTP server's `authenticated` hook after authenticate()). The
// caps close the OLDEST unauthenticated socket of an address past EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS,
// so without the hook a long-lived GET /mcp stream (the server's stream to its client) would be the
// first casualty of a slow-loris flood from the same address. Local mode, the real daemon, raw
// sockets on loopback; every wait bounded.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { rawInitialize, rawMcp } from '../helpers/mcp';
import { sleep, waitFor, within } from '../helpers/wait';

const CLEAN_ENV: Record<string, undefined> = {
  MCP_ENABLE_MULTI_USER: undefined, SUPABASE_URL: undefined, SUPABASE_JWT_SECRET: undefined, DATABASE_URL: undefined,
  SUPABASE_ANON_KEY: undefined, EXAI_WS_HOST: undefined, EXAI_IDLE_EXIT_SECONDS: undefined, EXAI_TLS_CERT: undefined,
  EXAI_TLS_KEY: undefined, EXAI_BEHIND_PROXY: undefined, EXAI_PUBLIC_HOSTS: undefined, EXAI_HELLO_TIMEOUT_MS: undefined,
  EXAI_MAX_UNAUTHENTICATED: undefined, EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS: undefined, MCP_SESSION_TIMEOUT: undefined,
};
const PER_ADDRESS_CAP = 8;
const FLOOD = 40;
const HALF_UPGRADE = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'; // no blank line: never finished

type TrackedSocket = net.Socket & { closedAt?: number };

/** A half-sent WebSocket upgrade from 127.0.0.1: an unauthenticated socket the daemon holds until its hello timeout. */
function halfUpgrade(port: number): Promise<TrackedSocket> {
  return new Promise((resolve, reject) => {
    const socket: TrackedSocket = net.connect({ port, host: '127.0.0.1' }, () => {
      socket.write(HALF_UPGRADE);
      resolve(socket);
    });
    socket.on('error', reject);
    socket.on('close', () => (socket.closedAt = Date.now()));
    socket.on('data', () => {});
  });
}

/** GET /mcp: the session's server stream, on a socket of its own, held open until the test ends it. */
function openServerStream(port: number, token: string, sessionId: string): Promise<{ res: http.IncomingMessage; req: http.ClientRequest; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    let closed = false;
    const req = http.request({
      host: '127.0.0.1', port, method: 'GET', path: '/mcp', agent: false,
      headers: { authorization: `Bearer ${token}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18', accept: 'text/event-stream' },
    }, (res) => {
      res.on('data', () => {});
      res.on('close', () => (closed = true));
      resolve({ res, req, closed: () => closed || res.destroyed || req.socket?.destroyed === true });
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('no answer to GET /mcp')));
    req.end();
  });
}

describe('MCP sockets and the caps on unauthenticated sockets', function () {
  this.timeout(60_000);
  let daemon: RunningDaemon | undefined;
  const sockets: net.Socket[] = [];

  afterEach(async function () {
    for (const s of sockets.splice(0)) s.destroy();
    if (daemon) await within(daemon.stop(), 15_000, 'daemon stop').catch(() => daemon!.kill9());
    daemon = undefined;
  });

  it(`a session's GET /mcp stream outlives a flood of ${FLOOD} half-sent upgrades from its address (cap ${PER_ADDRESS_CAP}); the session still answers`, async function () {
    daemon = await startDaemon({ env: { ...CLEAN_ENV, EXAI_MAX_UNAUTHENTICATED_PER_ADDRESS: String(PER_ADDRESS_CAP) } });
    const d = daemon;
    const token = JSON.parse(fs.readFileSync(path.join(d.stateDir, 'daemon.json'), 'utf8')).secret as string;
    const { sessionId } = await rawInitialize(d.port, token);
    const stream = await openServerStream(d.port, token, sessionId);
    sockets.push(stream.req.socket!);
    assert.equal(stream.res.statusCode, 200);
    assert.match(String(stream.res.headers['content-type']), /text\/event-stream/);

    // The stream is now the oldest socket of 127.0.0.1: the first to go if it still counted.
    const flood: TrackedSocket[] = [];
    for (let i = 0; i < FLOOD; i++) {
      const s = await halfUpgrade(d.port).catch(() => null);
      if (s) { s.on('error', () => {}); flood.push(s); sockets.push(s); }
    }
    assert.ok(flood.length >= FLOOD - 5, `opened ${flood.length} of ${FLOOD}`);
    await waitFor(() => flood.filter((s) => s.closedAt === undefined).length <= PER_ADDRESS_CAP, 10_000, 'the flood beyond the cap is closed');
    await sleep(200); // any eviction of the stream would have happened with the flood's

    assert.equal(stream.closed(), false, 'the server stream is still open');
    const ping = await rawMcp(d.port, {
      body: { jsonrpc: '2.0', id: 'still-here', method: 'ping' },
      headers: { authorization: `Bearer ${token}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' },
    });
    assert.equal(ping.status, 200, ping.text);
    assert.deepEqual(ping.messages[0], { jsonrpc: '2.0', id: 'still-here', result: {} });
    assert.equal(stream.closed(), false, 'the server stream is still open after the ping');
    const evictions = d.logs().split('\n').filter((l) => l.includes('closed the oldest unauthenticated socket')).length;
    this.test!.title += ` [${flood.length - flood.filter((s) => s.closedAt === undefined).length} evicted, ${evictions} eviction lines]`;
  });
});
