// The HTML of the consent and grants pages: plain server-rendered forms, no JavaScript at all, one
// inline style sheet allowed by its hash in a strict Content-Security-Policy. Everything that came
// from outside (client names and URIs, emails, scopes, Supabase's messages) goes through `text()`.
//
// Stable selectors the browser tests (test/helpers/oauthConsent.ts) rely on: fields name="email",
// "password", "code"; button#sign-in-password, #send-code, #verify-code; a#sign-in-github;
// button[name="action"][value="approve"|"deny"]; button[name="revoke"]; errors in [role="alert"];
// the client, account and scopes in #consent-details.
import crypto from 'node:crypto';

export interface Page {
  status: number;
  html: string;
  /** Extra CSP form-action sources: the client's redirect origin, where a form on this page is redirected. */
  formAction?: string[];
  /** Extra response headers (e.g. Allow on a 405). */
  headers?: Record<string, string>;
}

/** What every page's forms carry: the form token, and the authorization being answered (if any). */
export interface FormContext {
  csrfToken: string;
  authorizationId: string | null;
}

export interface ClientInfo {
  id: string;
  name: string;
  uri: string;
}

export interface ConsentView {
  client: ClientInfo;
  /** Where approve or deny sends the browser (origin only). */
  redirectOrigin: string;
  email: string;
  scopes: string[];
  /** The daemon's own origin, named in the explanation. */
  daemonOrigin: string;
}

export interface GrantView {
  client: ClientInfo;
  scopes: string[];
  grantedAt: string;
}

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b;background:#fff}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
form{margin:1rem 0}label{display:block;margin:.5rem 0 .2rem}
input{font:inherit;padding:.4rem;width:100%;box-sizing:border-box;border:1px solid #767676;border-radius:4px}
button,a.button{font:inherit;display:inline-block;margin:.6rem .4rem 0 0;padding:.45rem 1rem;border-radius:4px;border:1px solid #0b57d0;background:#0b57d0;color:#fff;text-decoration:none;cursor:pointer}
button.secondary,a.button.secondary{background:#fff;color:#0b57d0}
:focus-visible{outline:3px solid #e37400;outline-offset:2px}
[role=alert]{border-left:4px solid #b3261e;background:#fdecea;padding:.6rem 1rem}
dt{font-weight:600}dd{margin:0 0 .6rem 0}.muted{color:#555;font-size:.9rem}
ul.grants{list-style:none;padding:0}ul.grants>li{border:1px solid #ddd;border-radius:4px;padding:.6rem 1rem;margin:.6rem 0}`;
const STYLE_HASH = `'sha256-${crypto.createHash('sha256').update(STYLE).digest('base64')}'`;

/** The headers of every page: a CSP that allows this page's style and forms to this daemon (and `formAction`) only. */
export function securityHeaders(formAction: string[] = []): Record<string, string> {
  const csp = [
    "default-src 'none'",
    `style-src ${STYLE_HASH}`,
    `form-action 'self'${formAction.map((s) => ` ${s}`).join('')}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
  return {
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': csp,
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    // Not no-referrer: with it Chromium sends `Origin: null` on the page's own form posts, which the
    // cross-site check (csrf.ts) must refuse. same-origin still keeps these URLs from other sites.
    'referrer-policy': 'same-origin',
    'cache-control': 'no-store',
    'cross-origin-opener-policy': 'same-origin',
  };
}

/** Characters that would let a client's name reorder or hide the text around it. */
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;

/** Text for HTML content and attribute values: escaped, invisible controls dropped, at most `max` characters. */
export function text(value: unknown, max = 200): string {
  let s = String(value ?? '').replace(INVISIBLE, '');
  if (s.length > max) s = `${s.slice(0, max - 1)}…`;
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The words a person reads for each OAuth scope Supabase's server knows. */
const SCOPE_WORDS: Record<string, string> = {
  openid: 'Confirm who you are (your account ID)',
  email: 'See your email address',
  profile: 'See your name and profile picture',
  phone: 'See your phone number',
  offline_access: 'Stay connected when you are not using it (it can renew its access without asking you again)',
};

export function scopeInWords(scope: string): string {
  return SCOPE_WORDS[scope] ?? `“${scope}” (a permission this page cannot describe)`;
}

export function clientName(client: { name?: unknown }): string {
  return typeof client.name === 'string' && client.name.trim() ? client.name.trim() : 'An unnamed application';
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="same-origin"><title>${text(title)} · EXAI</title><style>${STYLE}</style></head>
<body><main>
${body}
</main></body></html>`;
}

function alert(message: string | null | undefined): string {
  return message ? `<p role="alert">${text(message, 1000)}</p>` : '';
}

function hidden(ctx: FormContext): string {
  return `<input type="hidden" name="csrf" value="${text(ctx.csrfToken)}">`
    + (ctx.authorizationId ? `<input type="hidden" name="authorization_id" value="${text(ctx.authorizationId)}">` : '');
}

function returnQuery(authorizationId: string | null): string {
  return authorizationId ? `?authorization_id=${encodeURIComponent(authorizationId)}` : '';
}

export interface SignInView {
  /** Why the person sees the sign-in form (e.g. "You were signed out"), as an alert. */
  message?: string | null;
  /** A code was sent to this address: the code form comes first. */
  pendingEmail?: string | null;
  /** The email typed last (kept in the password form after a wrong password). */
  email?: string | null;
  daemonOrigin: string;
  status?: number;
}

export function signInPage(ctx: FormContext, view: SignInView): Page {
  const forConsent = ctx.authorizationId !== null;
  const intro = forConsent
    ? `An application asked to use the EXAI daemon at ${text(view.daemonOrigin)} as you. Sign in with your EXAI account to see which application it is and decide.`
    : `Sign in with your EXAI account to see the applications you allowed to use the EXAI daemon at ${text(view.daemonOrigin)}.`;
  const code = view.pendingEmail
    ? `<form method="post" action="/oauth/sign-in">${hidden(ctx)}
<p>We sent a sign-in code to ${text(view.pendingEmail)}. Enter it here; it works once.</p>
<input type="hidden" name="email" value="${text(view.pendingEmail, 320)}">
<label for="code">Code from the email</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" required maxlength="10" autofocus>
<button type="submit" id="verify-code" name="step" value="verify-code">Sign in with the code</button>
<button type="submit" id="new-code" name="step" value="new-code" class="secondary" formnovalidate>Use another address or get a new code</button>
</form>`
    : `<form method="post" action="/oauth/sign-in">${hidden(ctx)}
<label for="code-email">Email</label>
<input id="code-email" name="email" type="email" autocomplete="email" required maxlength="320">
<button type="submit" id="send-code" name="step" value="send-code">Email me a sign-in code</button>
</form>`;
  const password = `<form method="post" action="/oauth/sign-in">${hidden(ctx)}
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required maxlength="320" value="${text(view.email ?? '', 320)}"${view.pendingEmail ? '' : ' autofocus'}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024">
<button type="submit" id="sign-in-password" name="step" value="password">Sign in</button>
</form>`;
  const body = `<h1>Sign in to continue</h1>
${alert(view.message)}
<p>${intro}</p>
${view.pendingEmail ? `<h2>Sign in with the emailed code</h2>\n${code}\n<h2>Or with your password</h2>\n${password}` : `<h2>With your password</h2>\n${password}\n<h2>Or with a code sent by email</h2>\n${code}`}
<h2>Or with GitHub</h2>
<p><a class="button secondary" id="sign-in-github" href="/oauth/github${returnQuery(ctx.authorizationId)}">Sign in with GitHub</a></p>`;
  return { status: view.status ?? 200, html: layout('Sign in', body) };
}

export function consentPage(ctx: FormContext, view: ConsentView, formAction: string[]): Page {
  const name = clientName(view.client);
  const scopes = view.scopes.length ? view.scopes : ['email'];
  const body = `<h1>Allow ${text(name, 100)} to use EXAI as you?</h1>
<section id="consent-details" aria-label="What is asking, for which account">
<dl>
<dt>Application</dt><dd>${text(name, 100)}${view.client.uri ? ` <span class="muted">(says its web site is ${text(view.client.uri, 200)})</span>` : ''}</dd>
<dt>Sends you back to</dt><dd>${text(view.redirectOrigin, 200)}</dd>
<dt>Account</dt><dd>${text(view.email, 320)}</dd>
<dt>It asks to</dt><dd><ul>${scopes.map((s) => `<li>${text(scopeInWords(s), 300)}</li>`).join('')}</ul></dd>
</dl>
<p>If you approve, this application can call the EXAI daemon at ${text(view.daemonOrigin)} as you, until you revoke it. Approve only if you just started connecting it yourself.</p>
</section>
<form method="post" action="/oauth/consent">${hidden(ctx)}
<button type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="deny" class="secondary">Deny</button>
</form>
<form method="post" action="/oauth/sign-out">${hidden(ctx)}
<button type="submit" id="sign-out" class="secondary">Not ${text(view.email, 320)}? Sign out</button>
</form>
<p><a href="/oauth/grants">See and revoke the applications you allowed</a></p>`;
  return { status: 200, html: layout(`Allow ${name}?`, body), formAction };
}

export function grantsPage(ctx: FormContext, email: string, grants: GrantView[], message?: string | null): Page {
  const list = grants.length
    ? `<ul class="grants">${grants.map((g) => `<li>
<strong>${text(clientName(g.client), 100)}</strong>${g.client.uri ? ` <span class="muted">(${text(g.client.uri, 200)})</span>` : ''}
<div class="muted">Allowed ${text(g.grantedAt, 40)}; client ID ${text(g.client.id, 64)}</div>
<ul>${(g.scopes.length ? g.scopes : ['email']).map((s) => `<li>${text(scopeInWords(s), 300)}</li>`).join('')}</ul>
<form method="post" action="/oauth/grants">${hidden(ctx)}
<button type="submit" name="revoke" value="${text(g.client.id, 64)}" aria-label="Revoke ${text(clientName(g.client), 100)}">Revoke</button>
</form>
</li>`).join('\n')}</ul>`
    : '<p>You have not allowed any application to use EXAI as you.</p>';
  const body = `<h1>Applications you allowed</h1>
${alert(message)}
<p>Signed in as ${text(email, 320)}. Revoking an application ends its access: its next attempt to renew its access fails, and the access it already holds ends when it expires (on most projects within the hour).</p>
${list}
<form method="post" action="/oauth/sign-out">${hidden(ctx)}
<button type="submit" id="sign-out" class="secondary">Sign out</button>
</form>`;
  return { status: 200, html: layout('Applications you allowed', body) };
}

/** A page with one sentence (what happened, what to do), optional links onward, and a sign-out button when `signOut` is given. */
export function messagePage(status: number, title: string, message: string, links: Array<{ href: string; label: string }> = [], signOut?: FormContext): Page {
  const body = `<h1>${text(title)}</h1>
${alert(message)}
${links.map((l) => `<p><a href="${text(l.href, 2000)}">${text(l.label)}</a></p>`).join('\n')}
${signOut ? `<form method="post" action="/oauth/sign-out">${hidden(signOut)}\n<button type="submit" id="sign-out" class="secondary">Signed in with another account? Sign out</button>\n</form>` : ''}`;
  return { status, html: layout(title, body) };
}
