// Which hosts are this machine's loopback: the daemon binds only these in local mode, and the
// extension sends a token over plain ws:// (or a Supabase URL over http://) only to these.

/** 127.0.0.0/8, ::1 (with or without URL brackets) and localhost. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
