// OAuth (e.g. GitHub) with PKCE through a loopback redirect. A one-shot HTTP server on 127.0.0.1
// receives `?code=`; supabase-js keeps the code verifier in the flow's client and exchanges it.
// Its URL goes through `asExternalUri`, because where VS Code runs remotely (code-server,
// Remote-SSH, Codespaces) the browser cannot reach the extension host's 127.0.0.1 directly; for
// code-server that gives http://<server>/proxy/<port>/ and drops our path, so we append it again.
// The browser is sent to our own /auth-start, which redirects to the provider: code-server's
// openExternal rewrites any other localhost URL (e.g. a local Supabase) to a path-less proxy URL.
import http from 'node:http';
import { CancelledError, unlessAborted, type SignInFlow } from './types';

export const CALLBACK_PATH = '/auth-callback';
export const START_PATH = '/auth-start';

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
      const external = await env.asExternalUrl(`http://127.0.0.1:${callback.port}${CALLBACK_PATH}`);
      const { data, error } = await client.auth.signInWithOAuth({ provider, options: { redirectTo: withPath(external, CALLBACK_PATH), skipBrowserRedirect: true } });
      if (error) throw error;
      callback.authorizeUrl = data.url;
      if (!(await env.openBrowser(withPath(external, START_PATH)))) throw new CancelledError('The browser did not open the sign-in page.');
      const code = await unlessAborted(callback.code, signal);
      const exchanged = await unlessAborted(client.auth.exchangeCodeForSession(code), signal);
      if (exchanged.error) throw exchanged.error;
      return exchanged.data.session;
    } finally {
      callback.close();
    }
  };
}

/** The external URL of our server with `path` (code-server's proxy URL drops the path we asked for). */
export function withPath(external: string, path: string): string {
  const url = new URL(external);
  const base = url.pathname.endsWith(CALLBACK_PATH) ? url.pathname.slice(0, -CALLBACK_PATH.length) : url.pathname.replace(/\/$/, '');
  url.pathname = base + path;
  url.search = '';
  return url.toString();
}

interface CallbackServer {
  port: number;
  /** Where GET /auth-start redirects the browser (the provider's authorize URL). */
  authorizeUrl: string | null;
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
    if (url.pathname.endsWith(START_PATH) && result.authorizeUrl) {
      res.writeHead(302, { location: result.authorizeUrl, 'cache-control': 'no-store' }).end();
      return;
    }
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
  const result: CallbackServer = { port: 0, authorizeUrl: null, code, close: () => server.close() };
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      result.port = (server.address() as { port: number }).port;
      resolve(result);
    });
  });
}

function page(message: string): string {
  return `<!doctype html><meta charset="utf-8"><title>EXAI</title><body style="font-family:sans-serif;margin:3em"><p>${message}</p></body>`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
