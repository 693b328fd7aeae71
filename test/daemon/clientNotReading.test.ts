// src/daemon/client.ts and close 4010 (client_not_reading): the window tells the user why, in one
// sentence, and reconnects by itself. A fake daemon sends the close (the real one does so only to a
// client that stops reading: connectionFloods.test.ts).
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { CloseCode } from '../../server/protocol';
import { DaemonClient } from '../../src/daemon/client';
import { waitState } from '../helpers/clientState';

describe('DaemonClient: close 4010 (the window stopped reading)', function () {
  this.timeout(15000);

  it('reconnects by itself, giving the user a sentence that says what happened', async function () {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => wss.once('listening', r));
    let connections = 0;
    wss.on('connection', (ws) => {
      const index = connections++;
      ws.once('message', () => {
        ws.send(JSON.stringify({ op: 'hello_ack', ok: true, session_id: `s${index}`, user: { id: 'u1', email: null }, expires_at: null, server: { version: 'fake' } }));
        if (index === 0) setTimeout(() => ws.close(CloseCode.clientNotReading, 'client_not_reading'), 50);
      });
    });
    const client = new DaemonClient({
      endpoint: async () => ({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, token: 't' }),
      instance: 'vscode-test',
      clientVersion: '0.1.0-test',
      log: { info: () => {}, warn: () => {}, error: () => {} },
      backoff: { baseMs: 50, maxMs: 200 },
    });
    try {
      client.start();
      const reconnecting = await waitState(client, (s) => s.kind === 'reconnecting');
      assert.equal(reconnecting.kind === 'reconnecting' && reconnecting.reason,
        'The EXAI daemon closed the connection because this window stopped reading its replies (too many piled up, e.g. while VS Code was busy or suspended).');
      await waitState(client, (s) => s.kind === 'connected' && s.sessionId === 's1');
    } finally {
      client.stop();
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => wss.close(r));
    }
  });
});
