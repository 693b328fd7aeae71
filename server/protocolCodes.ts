// The protocol's version and WebSocket close codes (server/protocol.ts re-exports them with the frames).
// No zod here: the extension imports these values, and loading zod would cost it ~10 ms of
// activation for schemas only the daemon uses (issue 14).

/**
 * 3: a call that finishes within the daemon's event-loop turn is answered with call_tool_res alone
 * (call_tool_ack only for a call still running then). 2: every call is acked first.
 */
export const PROTOCOL_VERSION = 3;
/** Versions the daemon accepts in hello; older clients get what their version says. */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [2, 3];

/** WebSocket close codes the daemon uses. 4000-4999 are reserved for applications by RFC 6455. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001, // daemon shutting down (drain)
  tryAgainLater: 1013, // auth backend (JWKS, database) unreachable right now
  notJson: 4000,
  notHello: 4001,
  helloTimeout: 4002,
  tokenInvalid: 4003,
  tokenExpired: 4004,
  idleTimeout: 4005,
  sessionEnded: 4006, // the session row was ended outside this connection
  tooManyConnections: 4008,
  protocolUnsupported: 4009,
  clientNotReading: 4010, // replies piled up past EXAI_MAX_BUFFERED_BYTES: the client stopped reading
  tooBig: 1009, // more than MAX_BYTES_BEFORE_HELLO_ACK before hello_ack (ws also uses it past maxPayload)
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
