// The ways a client talks to the daemon, each with the bare baselines it is compared with. The
// handshake and call cases run over every protocol listed in PROTOCOLS that the daemon serves; a
// protocol the daemon lacks is skipped with its reason printed. Adding a transport = one entry here.
import { BASELINE_LABEL, type Baseline, type BaselineKind } from './baseline';
import { McpHttpSession, mcpUnavailable } from './mcpClient';
import { BenchSocket } from './wsClient';

/** One client's open session: a connection that said hello, or an initialized MCP session. */
export interface Session {
  call(text: string): Promise<void>;
  close(): Promise<void>;
}

/** Where sessions are opened: the daemon (the i-th session as the i-th test user) or a baseline. */
export interface Endpoint {
  name: string;
  pid: number;
  open(i: number): Promise<Session>;
  /**
   * Resolves once the server has finished with closed sessions (the daemon writes each session's
   * final status after the socket closes). Handshake cases wait for it, untimed, so that work is not
   * billed to whichever side takes the next turn.
   */
  settle(): Promise<void>;
}

/** A running daemon as the cases see it. */
export interface DaemonUnderTest {
  /** Resolves (bounded) once the daemon counts no open connection or session. */
  idle(): Promise<void>;
  /** e.g. "local", "supabase + Postgres". */
  mode: string;
  port: number;
  pid: number;
  /** The token the i-th session presents (local mode: the same secret for all). */
  token(i: number): string;
}

export interface Protocol {
  name: string;
  /** What "handshake" means here, for the table. */
  handshake: string;
  /** What the baseline's "handshake" is. */
  bareHandshake: string;
  /** null when the daemon serves this protocol; otherwise the reason printed for skipping it. */
  unavailable(daemon: DaemonUnderTest): Promise<string | null>;
  daemon(daemon: DaemonUnderTest): Endpoint;
  /** The baselines to compare with; the first is the one the targets refer to. */
  baselines: BaselineKind[];
  bare(baseline: Baseline): Endpoint;
}

/** What every `echo` call sends. */
export const ECHO_TEXT = 'hello';

export const WEBSOCKET: Protocol = {
  name: 'WebSocket /',
  handshake: 'connect + hello → hello_ack',
  bareHandshake: 'connect + one echo',
  unavailable: async () => null,
  daemon: (d) => ({
    name: `daemon (${d.mode})`,
    pid: d.pid,
    async open(i) {
      const socket = await BenchSocket.open(`ws://127.0.0.1:${d.port}/`);
      try {
        await socket.hello(d.token(i), `bench-${i}`);
      } catch (err) {
        await socket.close();
        throw err;
      }
      return socket;
    },
    settle: () => d.idle(),
  }),
  baselines: ['ws-echo', 'ws-echo-ack'],
  bare: (b) => ({
    name: BASELINE_LABEL[b.kind],
    pid: b.pid,
    async open() {
      const socket = await BenchSocket.open(`ws://127.0.0.1:${b.port}/`);
      await socket.call(ECHO_TEXT);
      return socket;
    },
    settle: async () => {},
  }),
};

export const MCP_HTTP: Protocol = {
  name: 'MCP /mcp',
  handshake: 'initialize + initialized',
  bareHandshake: 'initialize + initialized',
  unavailable: (d) => mcpUnavailable(`http://127.0.0.1:${d.port}`),
  daemon: (d) => ({
    name: `daemon /mcp (${d.mode})`,
    pid: d.pid,
    open: (i) => McpHttpSession.initialize(`http://127.0.0.1:${d.port}/mcp`, d.token(i)),
    settle: () => d.idle(),
  }),
  baselines: ['mcp-http'],
  bare: (b) => ({
    name: BASELINE_LABEL[b.kind],
    pid: b.pid,
    open: () => McpHttpSession.initialize(`http://127.0.0.1:${b.port}/mcp`, null),
    settle: async () => {},
  }),
};

export const PROTOCOLS: readonly Protocol[] = [WEBSOCKET, MCP_HTTP];
