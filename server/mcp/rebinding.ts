// DNS-rebinding protection for /mcp, as the MCP transport spec requires of servers: the Host and
// Origin headers are checked before anything else. A page on evil.example that re-resolved its name
// to 127.0.0.1 still sends `Host: evil.example` and `Origin: http://evil.example`.
//
// - A loopback daemon (bound to loopback, no TLS, not behind a proxy) answers only to loopback
//   names: Host must be localhost, 127.0.0.0/8 or [::1] (any port: SSH tunnels change it), and an
//   Origin, when sent, must be an http(s) origin on one of those names.
// - A hosted daemon cannot know every name a proxy or load balancer gives it, so Host is left to the
//   daemon-wide check; an Origin is always refused there: browser pages never drive a hosted daemon
//   (the WebSocket endpoint refuses any Origin for the same reason).
// No Host header at all (HTTP/1.0) is accepted: browsers always send one.
import type http from 'node:http';
import { isLoopbackHost } from '../net';

export interface Refusal {
  status: number;
  message: string;
}

/** The host name of a Host header value (`name`, `name:port`, `[v6]`, `[v6]:port`), lower case; null when malformed. */
export function hostName(header: string): string | null {
  const match = /^(\[[0-9a-f:.]+\]|[^:[\]\s]+)(?::(\d{1,5}))?$/i.exec(header.trim());
  return match ? match[1].toLowerCase() : null;
}

function loopbackOrigin(origin: string): boolean {
  try {
    const url = new URL(origin);
    return (url.protocol === 'http:' || url.protocol === 'https:') && isLoopbackHost(url.hostname);
  } catch {
    return false; // includes the opaque origin "null"
  }
}

/** Null when the request may go on; otherwise the status and sentence to answer with. */
export function checkRebinding(req: http.IncomingMessage, loopbackOnly: boolean): Refusal | null {
  const host = req.headers.host;
  if (loopbackOnly && host !== undefined) {
    const name = hostName(host);
    if (name === null || !isLoopbackHost(name)) {
      return { status: 421, message: 'This EXAI daemon answers /mcp only as localhost, 127.0.0.1 or [::1]; the Host header named another host (a web page may be trying DNS rebinding).' };
    }
  }
  const origin = req.headers.origin;
  if (origin !== undefined) {
    if (!loopbackOnly) return { status: 403, message: 'Browser origins may not use the EXAI daemon; connect from an MCP client, not a web page.' };
    if (!loopbackOrigin(origin)) {
      return { status: 403, message: 'The Origin of this request is not a page on this machine (localhost); web pages on other sites may not use the EXAI daemon.' };
    }
  }
  return null;
}
