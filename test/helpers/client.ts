// A test client for the daemon's wire protocol: send frames, await the next frame that matches,
// observe the close code. Every wait is bounded.
import WebSocket from 'ws';
import type { ServerFrame } from '../../server/protocol';
import { sleep } from './wait';

export interface TestClient {
  ws: WebSocket;
  frames: ServerFrame[];
  send(frame: unknown): void;
  sendRaw(text: string): void;
  /** Resolves with the first frame (already received or future) matching `match`. */
  next<T extends ServerFrame = ServerFrame>(match: (f: ServerFrame) => boolean, timeoutMs?: number): Promise<T>;
  closed: Promise<{ code: number; reason: string }>;
  close(): Promise<void>;
}

export function connect(url: string, options: WebSocket.ClientOptions = {}): Promise<TestClient> {
  const ws = new WebSocket(url, options);
  const frames: ServerFrame[] = [];
  const waiters: { match: (f: ServerFrame) => boolean; resolve: (f: ServerFrame) => void }[] = [];
  const consumed = new Set<ServerFrame>();
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString()) as ServerFrame;
    frames.push(frame);
    const i = waiters.findIndex((w) => w.match(frame));
    if (i >= 0) { consumed.add(frame); waiters.splice(i, 1)[0].resolve(frame); }
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const client: TestClient = {
    ws,
    frames,
    send: (frame) => ws.send(JSON.stringify(frame)),
    sendRaw: (text) => ws.send(text),
    next: (match, timeoutMs = 10000) => {
      const seen = frames.find((f) => !consumed.has(f) && match(f));
      if (seen) { consumed.add(seen); return Promise.resolve(seen as any); }
      return new Promise((resolve, reject) => {
        const waiter = { match, resolve: (f: ServerFrame) => { clearTimeout(timer); resolve(f as any); } };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(frames)}`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    closed,
    async close() {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(1000);
      await Promise.race([closed, sleep(3000)]);
    },
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(client));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode })));
  });
}

/** Connects and says hello; returns the client and its hello_ack. */
export async function helloClient(url: string, token: string, instance = 'vscode-test', extra: Record<string, unknown> = {}) {
  const client = await connect(url);
  client.send({ op: 'hello', protocol: 2, token, client: { instance, version: 'test' }, ...extra });
  const ack = await client.next((f) => f.op === 'hello_ack');
  return { client, ack };
}
