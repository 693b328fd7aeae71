// The bare baselines, each run as its own Node process (as the daemon is), so the daemon is compared
// with the least a server must do to answer the same frames — no validation, auth, sessions or logs:
//   ws-echo      a `ws` server: JSON.parse each frame, answer one `call_tool_res` (JSON.stringify)
//   ws-echo-ack  the same, but first a `call_tool_ack` frame, as the protocol promises: the gap
//                between the two shows what the protocol itself costs, apart from the implementation
//   mcp-http     node:http answering MCP Streamable HTTP JSON-RPC POSTs (initialize, the
//                initialized notification, tools/call echo) with plain JSON bodies
// Prints one line, {"port":N,"pid":N}, once listening. Loopback only.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

type Kind = 'ws-echo' | 'ws-echo-ack' | 'mcp-http';
const kind = process.argv[2] as Kind;
const MAX_BODY = 4 * 1024 * 1024;

function wsServer(withAck: boolean): http.Server {
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: MAX_BODY });
  wss.on('connection', (ws) => ws.on('message', (data) => {
    const frame = JSON.parse(data.toString());
    if (withAck) ws.send(JSON.stringify({ op: 'call_tool_ack', request_id: frame.request_id, name: frame.name }));
    ws.send(JSON.stringify({ op: 'call_tool_res', request_id: frame.request_id, ok: true, outputs: [{ type: 'text', text: frame.arguments?.text ?? '' }] }));
  }));
  return server;
}

function mcpServer(): http.Server {
  let sessions = 0;
  return http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      if (req.method === 'DELETE') return void res.writeHead(200).end();
      const msg = JSON.parse(Buffer.concat(chunks).toString() || 'null');
      if (!msg || msg.id === undefined) return void res.writeHead(202).end(); // a notification
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      let result: unknown;
      if (msg.method === 'initialize') {
        headers['mcp-session-id'] = `bare-${process.pid}-${++sessions}`;
        result = { protocolVersion: msg.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'bare', version: '0' } };
      } else {
        result = { content: [{ type: 'text', text: msg.params?.arguments?.text ?? '' }] };
      }
      res.writeHead(200, headers).end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }));
    });
  });
}

const server = kind === 'mcp-http' ? mcpServer() : kind === 'ws-echo' || kind === 'ws-echo-ack' ? wsServer(kind === 'ws-echo-ack') : null;
if (!server) {
  process.stderr.write(`baselineServer: unknown kind ${kind}\n`);
  process.exit(2);
}
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port, pid: process.pid }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
