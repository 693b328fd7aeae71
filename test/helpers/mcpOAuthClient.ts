// An MCP agent that signs in the way the MCP authorization spec says, using the MCP SDK's own OAuth
// client (`auth()` in @modelcontextprotocol/sdk client/auth.js, driven by StreamableHTTPClientTransport's
// `authProvider`): 401 -> protected-resource metadata -> authorization-server metadata -> dynamic
// registration -> authorize (PKCE) -> the person answers the consent page -> code -> token.
//
// Here live only the parts an agent supplies itself: an in-memory OAuthClientProvider (what Claude
// Code keeps in its keychain), the loopback HTTP listener its redirect URI points at (which captures
// code and state), and a log of its token requests. Who answers the consent page, and how, is the
// caller's: tests and `npm run start:multi-user -- --check` drive it in Chromium
// (test/helpers/oauthConsent.ts).
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError, type OAuthClientProvider, type OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';

/** What the redirect listener saw: the query of one request to the redirect URI. */
export interface RedirectCapture {
  url: string;
  code: string | null;
  state: string | null;
  error: string | null;
  errorDescription: string | null;
}

export interface RedirectListener {
  /** The redirect URI, `http://127.0.0.1:<port>/callback` (loopback http is allowed by Supabase). */
  redirectUri: string;
  /** The next capture (one already received, or the next to arrive), within `timeoutMs`. */
  next(timeoutMs?: number): Promise<RedirectCapture>;
  close(): Promise<void>;
}

/** Captures kept until read; a flood of requests to the listener cannot grow it further. */
const MAX_CAPTURES = 16;
const CALLBACK_PATH = '/callback';

/** The loopback listener an agent's redirect URI points at, as Claude Code and MCP Inspector run one. */
export async function startRedirectListener(): Promise<RedirectListener> {
  const captures: RedirectCapture[] = [];
  const waiters: ((c: RedirectCapture) => void)[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method !== 'GET' || url.pathname !== CALLBACK_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const capture: RedirectCapture = {
      url: `${redirectUri}${url.search}`,
      code: url.searchParams.get('code'),
      state: url.searchParams.get('state'),
      error: url.searchParams.get('error'),
      errorDescription: url.searchParams.get('error_description'),
    };
    const waiter = waiters.shift();
    if (waiter) waiter(capture);
    else if (captures.length < MAX_CAPTURES) captures.push(capture);
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' })
      .end(capture.code ? 'Signed in. You can close this window.' : 'Sign-in did not complete. You can close this window.');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}${CALLBACK_PATH}`;
  return {
    redirectUri,
    next(timeoutMs = 30_000) {
      const ready = captures.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        const waiter = (c: RedirectCapture) => {
          clearTimeout(timer);
          resolve(c);
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`nothing arrived at ${redirectUri} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * The SDK's OAuthClientProvider, kept in memory: a public client (PKCE, no secret) registered
 * dynamically with one loopback redirect URI, as Claude Code and MCP Inspector register.
 */
export class MemoryOAuthProvider implements OAuthClientProvider {
  private client: OAuthClientInformationMixed | undefined;
  private stored: OAuthTokens | undefined;
  private verifier: string | undefined;
  private discovery: OAuthDiscoveryState | undefined;
  private lastState: string | undefined;
  /** Every authorization URL the SDK asked us to open, oldest first. */
  readonly authorizationUrls: URL[] = [];
  /** How many times the SDK stored tokens (a code exchange or a refresh). */
  savedTokens = 0;

  /** `preRegistered`: a client the operator created (no dynamic registration), as `{client_id}`. */
  constructor(private readonly redirectUri: string, private readonly clientName: string, preRegistered?: { client_id: string }) {
    this.client = preRegistered;
  }

  get redirectUrl(): string {
    return this.redirectUri;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: this.clientName,
      redirect_uris: [this.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state(): string {
    this.lastState = crypto.randomBytes(16).toString('base64url');
    return this.lastState;
  }

  /** The `state` of the last authorization URL: a redirect carrying any other is not ours. */
  expectedState(): string | undefined {
    return this.lastState;
  }

  clientInformation() {
    return this.client;
  }

  saveClientInformation(info: OAuthClientInformationMixed): void {
    this.client = info;
  }

  tokens() {
    return this.stored;
  }

  saveTokens(tokens: OAuthTokens): void {
    this.stored = tokens;
    this.savedTokens++;
  }

  redirectToAuthorization(url: URL): void {
    this.authorizationUrls.push(url);
  }

  saveCodeVerifier(verifier: string): void {
    this.verifier = verifier;
  }

  codeVerifier(): string {
    if (!this.verifier) throw new Error('no PKCE code verifier saved: no authorization was started');
    return this.verifier;
  }

  saveDiscoveryState(state: OAuthDiscoveryState): void {
    this.discovery = state;
  }

  discoveryState() {
    return this.discovery;
  }

  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    if (scope === 'all' || scope === 'client') this.client = undefined;
    if (scope === 'all' || scope === 'tokens') this.stored = undefined;
    if (scope === 'all' || scope === 'verifier') this.verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this.discovery = undefined;
  }

  /** The registered client id (after dynamic registration). */
  clientId(): string | undefined {
    return this.client?.client_id;
  }

  /**
   * Replaces the access token with one the daemon refuses, keeping the refresh token: what an agent
   * holds once its access token expired. Its next request gets 401 and the SDK refreshes.
   */
  spoilAccessToken(): void {
    if (!this.stored) throw new Error('no tokens to spoil');
    this.stored = { ...this.stored, access_token: 'an-expired-access-token' };
  }
}

const MAX_LOGGED = 200;

/** One request the agent made to the authorization server's token endpoint. */
export interface TokenRequest {
  grantType: string | null;
  status: number;
  /** The answer's `error` / `code` / `error_code` field, for failures. */
  error: string | null;
}

/** An MCP client with the SDK's OAuth support, and the helpers a test or --check needs around it. */
export class OAuthAgent {
  readonly provider: MemoryOAuthProvider;
  readonly tokenRequests: TokenRequest[] = [];
  /** `METHOD url -> status` of every request the agent made, oldest first (the last MAX_LOGGED). */
  readonly requests: string[] = [];
  private transport: StreamableHTTPClientTransport | undefined;
  private client: Client | undefined;

  constructor(readonly mcpUrl: URL, readonly redirect: RedirectListener, readonly name: string, preRegistered?: { client_id: string }) {
    this.provider = new MemoryOAuthProvider(redirect.redirectUri, name, preRegistered);
  }

  /**
   * Connects with what the provider holds. Resolves with the connected client, or with the
   * authorization URL to open when the SDK needs the person (it already registered the client,
   * made the PKCE pair and saved it).
   */
  async connect(): Promise<{ client: Client } | { authorizationUrl: URL }> {
    await this.disconnect();
    const transport = new StreamableHTTPClientTransport(this.mcpUrl, {
      authProvider: this.provider,
      fetch: this.fetch,
      reconnectionOptions: { maxReconnectionDelay: 1000, initialReconnectionDelay: 200, reconnectionDelayGrowFactor: 1.5, maxRetries: 0 },
    });
    const client = new Client({ name: this.name, version: '1.0.0' });
    client.onerror = () => {}; // a closed server stream at the session's end is expected
    const before = this.provider.authorizationUrls.length;
    this.transport = transport;
    try {
      await client.connect(transport, { timeout: 30_000 });
    } catch (err) {
      await client.close().catch(() => {});
      this.transport = undefined;
      if (err instanceof UnauthorizedError && this.provider.authorizationUrls.length > before) {
        return { authorizationUrl: this.provider.authorizationUrls[this.provider.authorizationUrls.length - 1] };
      }
      throw err;
    }
    this.client = client;
    return { client };
  }

  /**
   * The redirect came back: checks its `state`, then lets the SDK trade the code for tokens
   * (`finishAuth`). Throws with the redirect's error (e.g. access_denied) when there is no code.
   */
  async finishAuthorization(capture: RedirectCapture): Promise<void> {
    if (capture.state !== this.provider.expectedState()) {
      throw new Error(`the redirect's state ${JSON.stringify(capture.state)} is not the one this agent sent; refusing its code`);
    }
    if (!capture.code) throw new Error(`the authorization ended without a code: ${capture.error ?? 'no error'}: ${capture.errorDescription ?? ''}`);
    const transport = new StreamableHTTPClientTransport(this.mcpUrl, { authProvider: this.provider, fetch: this.fetch });
    await transport.finishAuth(capture.code);
  }

  /**
   * The whole sign-in: connect; when the SDK needs the person, `answer` opens the authorization URL
   * and answers the consent page (e.g. page.goto + approveInBrowser); then the redirect's code is
   * traded and the agent connects again. Resolves with what arrived at the redirect URI (null when
   * the tokens it held were enough).
   */
  async signIn(answer: (authorizationUrl: URL) => Promise<unknown>, timeoutMs = 60_000): Promise<RedirectCapture | null> {
    const first = await this.connect();
    if ('client' in first) return null;
    await answer(first.authorizationUrl);
    const capture = await this.redirect.next(timeoutMs);
    await this.finishAuthorization(capture);
    const second = await this.connect();
    if (!('client' in second)) throw new Error('the agent got tokens but the daemon still asked it to authorize');
    return capture;
  }

  /** `tools/call whoami` on the connected session. */
  async whoami(): Promise<{ user_id: string; email: string | null; session_id: string }> {
    if (!this.client) throw new Error('not connected');
    const result = await this.client.callTool({ name: 'whoami', arguments: {} }, undefined, { timeout: 30_000 });
    const text = (result.content as { type: string; text: string }[]).map((c) => c.text).join('');
    return JSON.parse(text);
  }

  /** The MCP session id the daemon gave this agent's connection. */
  sessionId(): string | undefined {
    return this.transport?.sessionId;
  }

  async disconnect(): Promise<void> {
    const { client, transport } = this;
    this.client = undefined;
    this.transport = undefined;
    if (transport) await bounded(transport.terminateSession().catch(() => {}), 5000);
    if (client) await bounded(client.close().catch(() => {}), 5000);
  }

  /** All the agent's HTTP (to the daemon and to Supabase Auth), bounded in time; token requests are logged. */
  private readonly fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
    const response = await fetch(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(30_000) });
    this.requests.push(`${method} ${url.origin}${url.pathname} -> ${response.status}`);
    if (this.requests.length > MAX_LOGGED) this.requests.shift();
    if (url.pathname.endsWith('/oauth/token')) {
      const body = typeof init?.body === 'string' || init?.body instanceof URLSearchParams ? new URLSearchParams(init.body) : null;
      let error: string | null = null;
      if (!response.ok) {
        const answer = await response.clone().json().catch(() => null) as Record<string, unknown> | null;
        const field = answer?.error ?? answer?.error_code ?? answer?.code;
        error = typeof field === 'string' ? field : null;
      }
      this.tokenRequests.push({ grantType: body?.get('grant_type') ?? null, status: response.status, error });
    }
    return response;
  };
}

function bounded(p: Promise<unknown>, ms: number): Promise<unknown> {
  return Promise.race([p, new Promise((resolve) => setTimeout(resolve, ms).unref())]);
}
