// The window's connection status and how it reads in the status bar. Pure (no vscode import), so
// every wording is unit-tested.
import type { UsageReport } from '../../server/tools/usage';
import { describeReset } from '../../server/tools/usageReset';

export type NextAction = 'signIn' | 'switchUser' | 'reconnect' | 'openSettings' | 'restartDaemon' | 'showLog' | 'signOut' | 'showSessions';

export type Status =
  | { kind: 'signed_out'; reason?: string }
  | { kind: 'connecting'; who: string | null; daemon: string | null }
  | {
      kind: 'connected';
      who: string;
      daemon: string;
      sessionId: string;
      tokenExpiresAt: number | null;
      serverVersion: string;
      mode: 'local' | 'supabase';
      /** The window user's usage today (the daemon's `usage` tool); absent: not known (yet), or a daemon without it. */
      usage?: UsageToday | null;
    }
  | { kind: 'reconnecting'; who: string | null; attempt: number; delayMs: number; reason: string }
  /** The daemon closed the connection as idle; the next use (a tool call, Try a Tool, Show Sessions) reconnects. */
  | { kind: 'idle'; who: string | null; daemon: string | null }
  | { kind: 'error'; who: string | null; message: string; actions: NextAction[] };

export interface StatusView {
  text: string;
  /** Markdown. */
  tooltip: string;
  ariaLabel: string;
  isError: boolean;
  isWarning: boolean;
  actions: NextAction[];
}

/** What the tooltip shows of the daemon's usage report. */
export interface UsageToday {
  totalTokens: number;
  calls: number;
  budget: { limit: number; resetsAt: string } | null;
}

/** The `usage` tool's answer as UsageToday; null when it is not a usage report. */
export function usageTodayOf(text: string): UsageToday | null {
  let report: Partial<UsageReport>;
  try {
    report = JSON.parse(text) as Partial<UsageReport>;
  } catch {
    return null;
  }
  const total = report?.today?.total_tokens;
  const calls = report?.today?.calls;
  if (typeof total !== 'number' || typeof calls !== 'number') return null;
  const b = report.daily_budget;
  return { totalTokens: total, calls, budget: b && typeof b.limit === 'number' && typeof b.resets_at === 'string' ? { limit: b.limit, resetsAt: b.resets_at } : null };
}

/** "12,345 tokens in 3 calls of 100,000 (resets 00:00 UTC, in 3 h 12 min)" */
export function describeUsageToday(usage: UsageToday, now = Date.now()): string {
  const n = (v: number) => v.toLocaleString('en-US');
  const used = `${n(usage.totalTokens)} tokens in ${usage.calls} call${usage.calls === 1 ? '' : 's'}`;
  return usage.budget ? `${used} of ${n(usage.budget.limit)} (resets ${describeReset(usage.budget.resetsAt, now)})` : used;
}

const md = (s: string) => s.replace(/([\\`*_{}[\]()#+\-.!|<>])/g, '\\$1');

export function describeStatus(status: Status, now = Date.now()): StatusView {
  switch (status.kind) {
    case 'signed_out':
      return {
        text: '$(account) EXAI: Sign in',
        tooltip: `**EXAI** — not signed in.${status.reason ? `\n\n${md(status.reason)}` : ''}\n\nClick to sign in.`,
        ariaLabel: 'EXAI signed out. Activate to sign in.',
        isError: false,
        isWarning: Boolean(status.reason),
        actions: ['signIn', 'switchUser', 'showLog'],
      };
    case 'connecting':
      return {
        text: `$(sync~spin) EXAI: connecting${status.who ? ` as ${status.who}` : ''}…`,
        tooltip: `**EXAI** — connecting${status.who ? ` as ${md(status.who)}` : ''}${status.daemon ? ` to \`${status.daemon}\`` : ''}…`,
        ariaLabel: `EXAI connecting${status.who ? ` as ${status.who}` : ''}`,
        isError: false,
        isWarning: false,
        actions: ['reconnect', 'showLog'],
      };
    case 'connected': {
      const expiry = status.tokenExpiresAt === null ? 'does not expire (local mode)' : `${formatDelta(status.tokenExpiresAt * 1000 - now)} (renewed automatically)`;
      return {
        text: `$(plug) EXAI: ${status.who}`,
        tooltip: [
          `**EXAI** — connected as **${md(status.who)}**`,
          '',
          `| | |`,
          `|---|---|`,
          `| Daemon | \`${status.daemon}\` (v${md(status.serverVersion)}, ${status.mode} mode) |`,
          `| Session | \`${status.sessionId}\` |`,
          `| Token | ${expiry} |`,
          // Numbers and our own words only: nothing to escape.
          ...(status.usage ? [`| Usage today | ${describeUsageToday(status.usage, now)} |`] : []),
        ].join('\n'),
        ariaLabel: `EXAI connected as ${status.who}`,
        isError: false,
        isWarning: false,
        actions: status.mode === 'supabase' ? ['switchUser', 'showSessions', 'reconnect', 'signOut', 'showLog'] : ['showSessions', 'reconnect', 'showLog'],
      };
    }
    case 'reconnecting':
      return {
        text: `$(debug-disconnect) EXAI: reconnecting…`,
        tooltip: `**EXAI** — connection lost: ${md(status.reason)}\n\nRetry ${status.attempt} in ${Math.max(1, Math.round(status.delayMs / 1000))} s. Click to reconnect now.`,
        ariaLabel: `EXAI reconnecting${status.who ? ` as ${status.who}` : ''}: ${status.reason}`,
        isError: false,
        isWarning: true,
        actions: ['reconnect', 'showLog'],
      };
    case 'idle':
      return {
        text: '$(debug-pause) EXAI: idle — reconnects when used',
        tooltip: `**EXAI** — idle${status.who ? ` (${md(status.who)})` : ''}: the daemon${status.daemon ? ` \`${status.daemon}\`` : ''} closed this window's connection because nothing used it for its idle timeout.\n\nIt reconnects by itself the next time you use it (a tool call, Try a Tool, Show Sessions). Click to reconnect now.`,
        ariaLabel: `EXAI idle${status.who ? ` as ${status.who}` : ''}: reconnects when used`,
        isError: false,
        isWarning: false,
        actions: ['reconnect', 'showSessions', 'showLog'],
      };
    case 'error':
      return {
        text: `$(error) EXAI: ${shortError(status.message)}`,
        tooltip: `**EXAI** — ${md(status.message)}`,
        ariaLabel: `EXAI error: ${status.message}`,
        isError: true,
        isWarning: false,
        actions: status.actions.length ? status.actions : ['reconnect', 'showLog'],
      };
  }
}

function shortError(message: string): string {
  const first = message.split(/(?<=[.;])\s/)[0].replace(/[.;]$/, '');
  return first.length > 40 ? `${first.slice(0, 39)}…` : first;
}

export function formatDelta(ms: number): string {
  if (ms <= 0) return 'expired';
  const s = Math.round(ms / 1000);
  if (s < 90) return `expires in ${s} s`;
  const m = Math.round(s / 60);
  if (m < 90) return `expires in ${m} min`;
  return `expires in ${Math.round(m / 60)} h`;
}

export const ACTION_LABELS: Record<NextAction, string> = {
  signIn: '$(sign-in) Sign in…',
  switchUser: '$(account) Switch user…',
  reconnect: '$(refresh) Reconnect',
  openSettings: '$(gear) Open settings',
  restartDaemon: '$(debug-restart) Restart the daemon',
  showLog: '$(output) Show log',
  signOut: '$(sign-out) Sign out',
  showSessions: '$(list-flat) Show my sessions',
};
