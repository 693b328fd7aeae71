// Waits on the window's daemon client (src/daemon/client.ts) for a state.
import type { ClientState, DaemonClient } from '../../src/daemon/client';

/** Resolves with the first state (current or future) that matches; rejects after timeoutMs. */
export function waitState(client: DaemonClient, match: (s: ClientState) => boolean, timeoutMs = 5000): Promise<ClientState> {
  if (match(client.state)) return Promise.resolve(client.state);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.dispose();
      reject(new Error(`no matching state within ${timeoutMs} ms; last: ${JSON.stringify(client.state)}`));
    }, timeoutMs);
    const sub = client.onState((s) => {
      if (!match(s)) return;
      clearTimeout(timer);
      sub.dispose();
      resolve(s);
    });
  });
}
