// The bare servers the daemon is compared with (bench/programs/baselineServer.ts), each in its own
// Node process on loopback, as the daemon is.
import { startProgram } from './processes';

export type BaselineKind = 'ws-echo' | 'ws-echo-ack' | 'mcp-http';

export const BASELINE_LABEL: Record<BaselineKind, string> = {
  'ws-echo': 'bare ws (echo)',
  'ws-echo-ack': 'bare ws (ack+echo)',
  'mcp-http': 'bare HTTP JSON-RPC',
};

export interface Baseline {
  kind: BaselineKind;
  label: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

export async function startBaseline(kind: BaselineKind, extraEnv: Record<string, string> = {}): Promise<Baseline> {
  const program = await startProgram<{ port: number; pid: number }>('baselineServer', [kind], { ...process.env, ...extraEnv });
  return { kind, label: BASELINE_LABEL[kind], port: program.line.port, pid: program.pid, stop: program.stop };
}

/** Starts several, stops them all if one fails. */
export async function startBaselines(kinds: readonly BaselineKind[]): Promise<Baseline[]> {
  const started = await Promise.allSettled(kinds.map((k) => startBaseline(k)));
  const failed = started.find((s) => s.status === 'rejected');
  const ok = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  if (failed) {
    await Promise.all(ok.map((b) => b.stop()));
    throw (failed as PromiseRejectedResult).reason;
  }
  return ok;
}
