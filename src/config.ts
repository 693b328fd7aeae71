// Setting values -> one typed, validated configuration (pure; src/settings.ts reads VS Code's
// settings). A bad setting becomes a `problem` sentence shown once with an "Open Settings" action,
// instead of failing on every reconnect.
import { isLoopbackHost } from '../server/net';

export interface ExaiConfig {
  /** null: local mode (no sign-in; the daemon runs as the OS user). */
  supabase: { url: string; anonKey: string } | null;
  /** null: start or reuse the bundled daemon. */
  daemonUrl: string | null;
  idleExitSec: number;
  /** Human sentences; non-empty means the extension cannot run as configured. */
  problems: string[];
}

/** What VS Code's `inspect()` reports about a setting (the parts EXAI reads). */
export interface InspectedSetting<T> {
  defaultValue?: T;
  /** User settings (in a remote window: the local and remote user settings). */
  globalValue?: T;
  workspaceValue?: T;
  workspaceFolderValue?: T;
}

/** The user's value of a setting, else its default: never a workspace's or a folder's. */
export function userValue<T>(inspected: InspectedSetting<T> | undefined): T | undefined {
  return inspected?.globalValue ?? inspected?.defaultValue;
}

/** Pure: raw setting values -> config. */
export function parseConfig(raw: { url?: string; anonKey?: string; daemonUrl?: string; idleExitMinutes?: number }): ExaiConfig {
  const problems: string[] = [];
  const url = (raw.url ?? '').trim().replace(/\/+$/, '');
  const anonKey = (raw.anonKey ?? '').trim();
  let supabase: ExaiConfig['supabase'] = null;
  if (url) {
    let parsed: URL | null = null;
    try {
      parsed = new URL(url);
    } catch {
      problems.push(`exai.supabase.url "${url}" is not a URL; use your project URL, e.g. https://<project-ref>.supabase.co.`);
    }
    if (parsed && parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && isLoopbackHost(parsed.hostname))) {
      problems.push('exai.supabase.url must start with https:// (http:// only for a local Supabase on 127.0.0.1).');
    }
    if (!anonKey) problems.push("exai.supabase.anonKey is empty; copy the project's anon (public) key from Project Settings → API.");
    else if (looksLikeServiceRole(anonKey)) problems.push("exai.supabase.anonKey holds the service_role key; that key must never be on a user's machine. Use the anon (public) key.");
    supabase = { url, anonKey };
  }
  const daemonRaw = (raw.daemonUrl ?? '').trim();
  let daemonUrl: string | null = null;
  if (daemonRaw) {
    try {
      const d = new URL(daemonRaw);
      if (d.protocol !== 'ws:' && d.protocol !== 'wss:') problems.push('exai.daemon.url must start with wss:// (or ws:// for 127.0.0.1).');
      else if (d.protocol === 'ws:' && !isLoopbackHost(d.hostname)) problems.push(`exai.daemon.url uses unencrypted ws:// to ${d.hostname}; your sign-in token would travel in clear text. Use wss://.`);
      daemonUrl = daemonRaw;
    } catch {
      problems.push(`exai.daemon.url "${daemonRaw}" is not a URL (expected wss://host/).`);
    }
  }
  const minutes = Number.isFinite(raw.idleExitMinutes) ? Math.max(0, raw.idleExitMinutes!) : 10;
  return { supabase, daemonUrl, idleExitSec: Math.round(minutes * 60), problems };
}

function looksLikeServiceRole(key: string): boolean {
  if (key.startsWith('sb_secret_')) return true;
  const payload = key.split('.')[1];
  if (!payload) return false;
  try {
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')).role === 'service_role';
  } catch {
    return false;
  }
}
