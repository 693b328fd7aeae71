// Round-trip cost of the daemon's call path, as a ratio against a bare `ws` echo server measured in
// the same run on the same machine (absolute numbers vary between machines; ratios much less).
//
//   npm run bench            (builds, then runs this with Node 22)
//
// Every loop is bounded by a call count and a time budget.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

const SEQUENTIAL_CALLS = Number(process.env.BENCH_SEQUENTIAL ?? 2000);
const PIPELINED_CALLS = Number(process.env.BENCH_PIPELINED ?? 20000);
const IN_FLIGHT = 32;
const TIME_BUDGET_MS = 60_000;

type Sender = { ws: WebSocket; frame: (id: string) => string };

// The baseline runs in its own process, like the daemon, so both pay the same cross-process cost.
const BARE_SERVER = `
const { WebSocketServer } = require('ws');
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
wss.on('connection', (ws) => ws.on('message', (data) => {
  const f = JSON.parse(data.toString());
  ws.send(JSON.stringify({ op: 'call_tool_res', request_id: f.request_id, ok: true, outputs: [{ type: 'text', text: f.arguments.text }] }));
}));
wss.on('listening', () => console.log(JSON.stringify({ port: wss.address().port })));
`;

async function bareBaseline(): Promise<{ url: string; close: () => void }> {
  const proc = spawn(process.execPath, ['-e', BARE_SERVER], { cwd: path.resolve(__dirname, '../..'), stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<{ port: number }>((resolve) => proc.stdout!.once('data', (d) => resolve(JSON.parse(d.toString()))));
  return { url: `ws://127.0.0.1:${line.port}/`, close: () => proc.kill('SIGTERM') };
}

async function startDaemon(): Promise<{ url: string; secret: string; stop: () => void }> {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-bench-'));
  const proc = spawn(process.execPath, [path.resolve(__dirname, '../../dist/server.js')], {
    env: { ...process.env, EXAI_STATE_DIR: stateDir, EXAI_WS_PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<{ port: number }>((resolve) => proc.stdout!.once('data', (d) => resolve(JSON.parse(d.toString()))));
  const secret = JSON.parse(fs.readFileSync(path.join(stateDir, 'daemon.json'), 'utf8')).secret;
  return { url: `ws://127.0.0.1:${line.port}/`, secret, stop: () => proc.kill('SIGTERM') };
}

function open(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  return new Promise((resolve, reject) => ws.once('open', () => resolve(ws)).once('error', reject));
}

/** Sends `total` calls keeping `window` in flight; resolves with elapsed ms. */
function run(sender: Sender, total: number, window: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let done = 0;
    const started = performance.now();
    const deadline = setTimeout(() => reject(new Error(`bench exceeded ${TIME_BUDGET_MS} ms`)), TIME_BUDGET_MS);
    const sendNext = () => sender.ws.send(sender.frame(`r${sent++}`));
    const onMessage = (data: WebSocket.RawData) => {
      if (JSON.parse(data.toString()).op !== 'call_tool_res') return;
      done++;
      if (done === total) {
        clearTimeout(deadline);
        sender.ws.off('message', onMessage);
        return resolve(performance.now() - started);
      }
      if (sent < total) sendNext();
    };
    sender.ws.on('message', onMessage);
    for (let i = 0; i < Math.min(window, total); i++) sendNext();
  });
}

async function main() {
  const callFrame = (id: string) => JSON.stringify({ op: 'call_tool', request_id: id, name: 'echo', arguments: { text: 'hello' } });
  const baseline = await bareBaseline();
  const daemon = await startDaemon();
  try {
    const bare: Sender = { ws: await open(baseline.url), frame: callFrame };
    const exai: Sender = { ws: await open(daemon.url), frame: callFrame };
    exai.ws.send(JSON.stringify({ op: 'hello', protocol: 2, token: daemon.secret, client: { instance: 'bench' } }));
    await new Promise((r) => exai.ws.once('message', r));

    await run(bare, 500, 1); // warm-up both paths
    await run(exai, 500, 1);
    const rows = [
      { case: `sequential (${SEQUENTIAL_CALLS} calls, 1 in flight)`, bare: await run(bare, SEQUENTIAL_CALLS, 1), exai: await run(exai, SEQUENTIAL_CALLS, 1), n: SEQUENTIAL_CALLS },
      { case: `pipelined (${PIPELINED_CALLS} calls, ${IN_FLIGHT} in flight)`, bare: await run(bare, PIPELINED_CALLS, IN_FLIGHT), exai: await run(exai, PIPELINED_CALLS, IN_FLIGHT), n: PIPELINED_CALLS },
    ];
    const report = rows.map((r) => ({
      case: r.case,
      bare_ws_calls_per_s: Math.round((r.n / r.bare) * 1000),
      daemon_calls_per_s: Math.round((r.n / r.exai) * 1000),
      daemon_time_ratio: Number((r.exai / r.bare).toFixed(2)),
    }));
    console.table(report);
    const out = path.resolve(__dirname, '../../bench/results');
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'roundTrip.json'), JSON.stringify({ node: process.version, cpus: os.cpus().length, at: new Date().toISOString(), report }, null, 2));
    bare.ws.close();
    exai.ws.close();
  } finally {
    baseline.close();
    daemon.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
