// OAuth (e.g. GitHub) with PKCE through a loopback redirect. A one-shot HTTP server on 127.0.0.1
// receives `?code=`; supabase-js keeps the code verifier in the flow's client and exchanges it.
// The redirect URL goes through `asExternalUri`, because where VS Code runs remotely (code-server,
// Remote-SSH, Codespaces) the browser cannot reach the extension host's 127.0.0.1 directly; for
// code-server that gives http://<server>/proxy/<port>/ and drops our path, so we append it again.
import http from 'node:http';
import { CancelledError, unlessAborted, type SignInFlow } from './types';

export const CALLBACK_PATH = '/auth-callback';

export interface OAuthEnvironment {
  /** vscode.env.asExternalUri, as a string function. */
  asExternalUrl(localUrl: string): Promise<string>;
  /** vscode.env.openExternal. */
  openBrowser(url: string): Promise<boolean>;
}

export function oauthPkceFlow(provider: 'github' | 'google' | 'gitlab' | 'azure', env: OAuthEnvironment): SignInFlow {
  return async (client, signal) => {
    const callback = await startCallbackServer(signal);
    try {
      const redirectTo = withCallbackPath(await env.asExternalUrl(`http://127.0.0.1:${callback.port}${CALLBACK_PATH}`));
      const { data, error } = await client.auth.signInWithOAuth({ provider, options: { redirectTo, skipBrowserRedirect: true } });
      if (error) throw error;
      if (!(await env.openBrowser(data.url))) throw new CancelledError('The browser did not open the sign-in page.');
      const code = await unlessAborted(callback.code, signal);
      const exchanged = await unlessAborted(client.auth.exchangeCodeForSession(code), signal);
      if (exchanged.error) throw exchanged.error;
      return exchanged.data.session;
    } finally {
      callback.close();
    }
  };
}

/** Makes sure the external URL ends with our callback path (code-server's proxy URL drops it). */
export function withCallbackPath(external: string): string {
  const url = new URL(external);
  if (!url.pathname.endsWith(CALLBACK_PATH)) url.pathname = url.pathname.replace(/\/?$/, '') + CALLBACK_PATH;
  return url.toString();
}

interface CallbackServer {
  port: number;
  code: Promise<string>;
  close(): void;
}

function startCallbackServer(signal: AbortSignal): Promise<CallbackServer> {
  let resolveCode!: (code: string) => void;
  let rejectCode!: (err: Error) => void;
  const code = new Promise<string>((res, rej) => ((resolveCode = res), (rejectCode = rej)));
  code.catch(() => {}); // observed by the flow; avoid an unhandled rejection when it never awaits
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (!url.pathname.endsWith(CALLBACK_PATH)) {
      res.writeHead(404).end();
      return;
    }
    const error = url.searchParams.get('error_description') ?? url.searchParams.get('error');
    const received = url.searchParams.get('code');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page(error ? `Sign-in failed: ${escapeHtml(error)}` : 'Signed in to EXAI. You can close this tab and return to VS Code.'));
    if (error) rejectCode(new Error(`The identity provider refused the sign-in: ${error}`));
    else if (received) resolveCode(received);
    else rejectCode(new Error('The sign-in redirect carried no code.'));
  });
  signal.addEventListener('abort', () => server.close(), { once: true });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      resolve({ port, code, close: () => server.close() });
    });
  });
}

function page(message: string): string {
  return `<!doctype html><meta charset="utf-8"><title>EXAI</title><body style="font-family:sans-serif;margin:3em"><p>${message}</p></body>`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
