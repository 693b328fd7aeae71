// DNS-rebinding protection for /mcp, as the MCP transport spec requires of servers. The Host header
// is checked daemon-wide before any route (transport/hostCheck.ts: loopback names, and a hosted
// daemon's EXAI_PUBLIC_HOSTS); here, the Origin. A page on evil.example that re-resolved its name to
// 127.0.0.1 sends `Origin: http://evil.example`.
//
// - A loopback daemon (bound to loopback, no TLS, not behind a proxy) accepts an Origin only when it
//   is an http(s) origin on a loopback name (a local tool such as MCP Inspector's page).
// - A hosted daemon refuses every Origin: browser pages never drive a hosted daemon (the WebSocket
//   endpoint refuses any Origin for the same reason).
import type http from 'node:http';
import { isLoopbackHost } from '../net';

export interface Refusal {
  status: number;
  message: string;
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
  const origin = req.headers.origin;
  if (origin !== undefined) {
    if (!loopbackOnly) return { status: 403, message: 'Browser origins may not use the EXAI daemon; connect from an MCP client, not a web page.' };
    if (!loopbackOrigin(origin)) {
      return { status: 403, message: 'The Origin of this request is not a page on this machine (localhost); web pages on other sites may not use the EXAI daemon.' };
    }
  }
  return null;
}
