// A lean client of the daemon's WebSocket protocol for the bench: the same code talks to the daemon
// and to the bare baselines, so whatever the client costs is paid equally by both sides. Every wait
// is bounded; a refusal (hello_ack ok:false, an error frame, a close) rejects with its code.
import WebSocket from 'ws';
import { PROTOCOL_VERSION } from '../../server/protocol';

export const WAIT_MS = 30_000;

export class Refused extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

interface Pending {
  resolve(): void;
  reject(err: Error): void;
}

export class BenchSocket {
  private readonly pending = new Map<string, Pending>();
  private helloWaiter: Pending | null = null;
  private nextId = 0;
  private closedWith: Error | null = null;
  readonly closed: Promise<void>;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => this.onFrame(data.toString()));
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => {
      this.fail(new Refused(`close_${code}`, `socket closed (${code} ${reason.toString()})`));
      resolve();
    }));
    ws.on('error', (err) => this.fail(err));
  }

  /** Opens a WebSocket; rejects on an HTTP refusal (e.g. 503) or after WAIT_MS. */
  static open(url: string): Promise<BenchSocket> {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: WAIT_MS });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new BenchSocket(ws)));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => {
        reject(new Refused(`http_${res.statusCode}`, `upgrade refused with HTTP ${res.statusCode}`));
        ws.terminate();
      });
    });
  }

  /** hello -> hello_ack ok:true; rejects with the daemon's error code otherwise. */
  hello(token: string, instance = 'bench'): Promise<void> {
    return this.await((p) => {
      this.helloWaiter = p;
      this.ws.send(JSON.stringify({ op: 'hello', protocol: PROTOCOL_VERSION, token, client: { instance, version: 'bench' } }));
    }, 'hello_ack');
  }

  /** One `call_tool echo`; resolves on its call_tool_res (any call_tool_ack before it is read and dropped). */
  call(text: string): Promise<void> {
    const id = `b${this.nextId++}`;
    return this.await((p) => {
      this.pending.set(id, p);
      this.ws.send(JSON.stringify({ op: 'call_tool', request_id: id, name: 'echo', arguments: { text } }));
    }, `call_tool_res ${id}`, () => this.pending.delete(id));
  }

  /** Closes and waits (bounded) for the close handshake. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
    await Promise.race([this.closed, new Promise((r) => setTimeout(r, 5000).unref())]);
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
  }

  private await(start: (p: Pending) => void, what: string, cleanup?: () => void): Promise<void> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { cleanup?.(); reject(new Refused('timeout', `no ${what} within ${WAIT_MS} ms`)); }, WAIT_MS);
      start({
        resolve: () => { clearTimeout(timer); resolve(); },
        reject: (err) => { clearTimeout(timer); reject(err); },
      });
    });
  }

  private onFrame(text: string): void {
    let frame: { op: string; request_id?: string; ok?: boolean; error?: { code: string; message: string } };
    try {
      frame = JSON.parse(text);
    } catch {
      this.fail(new Refused('invalid_json', `the server sent a frame that is not JSON: ${text.slice(0, 100)}`));
      this.ws.terminate();
      return;
    }
    if (frame.op === 'call_tool_res' || (frame.op === 'error' && frame.request_id)) {
      const p = this.pending.get(frame.request_id!);
      if (!p) return;
      this.pending.delete(frame.request_id!);
      if (frame.op === 'call_tool_res' && frame.ok) p.resolve();
      else p.reject(new Refused(frame.error?.code ?? 'error', frame.error?.message ?? text));
    } else if (frame.op === 'hello_ack') {
      const p = this.helloWaiter;
      this.helloWaiter = null;
      if (frame.ok) p?.resolve();
      else p?.reject(new Refused(frame.error?.code ?? 'refused', frame.error?.message ?? text));
    }
  }

  private fail(err: Error): void {
    this.closedWith ??= err;
    this.helloWaiter?.reject(err);
    this.helloWaiter = null;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
