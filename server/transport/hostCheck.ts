// Which `Host` header the daemon answers, for every HTTP path and the WebSocket upgrade alike.
// A DNS-rebinding page (evil.example re-resolved to 127.0.0.1 or to a daemon's private address)
// is same-origin with the daemon in the browser's eyes, but its requests still say
// `Host: evil.example:PORT`; refusing names the daemon was not given closes that door.
//
// - Loopback names (localhost, 127.0.0.0/8, [::1]) are always accepted: a rebinding page always
//   sends a name the attacker registered, and `localhost` is resolved by the machine, never by DNS.
//   `*.localhost` is not accepted: no EXAI client uses it, and not every resolver keeps it local.
// - A hosted daemon (TLS, --behind-proxy or a non-loopback --host) also accepts the names in
//   EXAI_PUBLIC_HOSTS and any IP address literal (what load balancers' health checks send: a
//   page whose origin is an IP address is served by that address, so it cannot be rebinding).
// - The port is not checked: the name alone defeats rebinding, and proxies and SSH tunnels
//   (`ssh -L 9000:localhost:8079`) change the port a client sees.
// - No Host header at all (HTTP/1.0) is accepted: browsers always send one. Node itself answers
//   400 to an HTTP/1.1 request without one.
import http from 'node:http';
import net from 'node:net';
import { isLoopbackHost } from '../net';

/** The operator's public names (lower case) when the daemon is hosted; null when it serves loopback only. */
export type PublicHosts = readonly string[] | null;

export const MISDIRECTED = 421;

/** The host name in a Host header value (`name`, `name:port`, `[v6]`, `[v6]:port`), lower case; null when malformed. */
export function hostName(header: string): string | null {
  const match = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(header.trim());
  return match ? match[1].toLowerCase() : null;
}

/** True when a request with this Host header is addressed to this daemon (see the rules above). */
export function isAllowedHost(header: string | undefined, publicHosts: PublicHosts): boolean {
  if (header === undefined) return true;
  const name = hostName(header);
  if (name === null) return false;
  if (isLoopbackHost(name)) return true;
  if (publicHosts === null) return false;
  return net.isIPv4(name) || (name.startsWith('[') && net.isIPv6(name.slice(1, -1))) || publicHosts.includes(name);
}

/** The one sentence a refused request gets. */
export function misdirectedMessage(publicHosts: PublicHosts): string {
  return publicHosts === null
    ? 'This EXAI daemon answers only to localhost, 127.0.0.1 and [::1]; the Host header named another host (a web page may be trying DNS rebinding).'
    : 'This EXAI daemon answers only to its configured names (EXAI_PUBLIC_HOSTS) and IP addresses; the Host header named another host.';
}

/**
 * For request handlers: answers 421 and returns false when the Host header is not one this daemon
 * serves. Every HTTP route (and the upgrade, through isAllowedHost) must pass this first.
 */
export function checkHost(req: http.IncomingMessage, res: http.ServerResponse, publicHosts: PublicHosts): boolean {
  if (isAllowedHost(req.headers.host, publicHosts)) return true;
  res.writeHead(MISDIRECTED, { 'content-type': 'application/json', 'cache-control': 'no-store', connection: 'close' });
  res.end(JSON.stringify({ error: 'misdirected_request', message: misdirectedMessage(publicHosts) }));
  return false;
}
