// A small Playwright driver for the daemon's consent page (server/oauth/), for tests that run an
// OAuth client against the daemon: given a page already at the client's authorize URL (which
// redirects to `<daemon>/oauth/consent?authorization_id=…`), it signs in with email and password
// when the page asks, then clicks Approve or Deny, and returns the URL the daemon redirected to
// (the client's redirect_uri with `code` and `state`, or with `error=access_denied`).
//
// It reads the 303's Location rather than waiting for the browser to load it: a client's redirect
// URI may be a loopback listener that has already closed, or a custom scheme Chromium cannot open.
// Only the stable selectors of the pages are used (docs/architecture.md, server/oauth/pages.ts).
import type { Page, Response } from 'playwright-core';

export interface ConsentCredentials {
  email: string;
  password: string;
}

export interface ConsentDriverOptions {
  /** Bound on each step (page load, sign-in, the approve/deny answer); default 30 s. */
  timeoutMs?: number;
}

export function approveInBrowser(page: Page, who: ConsentCredentials, opts: ConsentDriverOptions = {}): Promise<string> {
  return answerConsent(page, who, 'approve', opts);
}

export function denyInBrowser(page: Page, who: ConsentCredentials, opts: ConsentDriverOptions = {}): Promise<string> {
  return answerConsent(page, who, 'deny', opts);
}

/** Signs in on the consent page when it shows the sign-in form (a signed-in browser skips this). */
export async function signInOnConsentPage(page: Page, who: ConsentCredentials, opts: ConsentDriverOptions = {}): Promise<void> {
  const timeout = opts.timeoutMs ?? 30_000;
  const details = page.locator('#consent-details');
  const signIn = page.locator('button#sign-in-password');
  await details.or(signIn).first().waitFor({ timeout }).catch((err: Error) => {
    throw new Error(`the consent page did not load (the browser is at ${page.url()}): ${err.message}`);
  });
  if (await details.isVisible()) return;
  const form = page.locator('form', { has: signIn });
  await form.locator('input[name="email"]').fill(who.email);
  await form.locator('input[name="password"]').fill(who.password);
  await signIn.click();
  await details.waitFor({ timeout }).catch(async (err: Error) => {
    const alert = await page.locator('[role="alert"]').first().textContent({ timeout: 1000 }).catch(() => null);
    throw new Error(`signing in as ${who.email} on the consent page did not lead to the consent details${alert ? ` (the page says: ${alert.trim()})` : ''}: ${err.message}`);
  });
}

async function answerConsent(page: Page, who: ConsentCredentials, action: 'approve' | 'deny', opts: ConsentDriverOptions): Promise<string> {
  const timeout = opts.timeoutMs ?? 30_000;
  await signInOnConsentPage(page, who, opts);
  const answered = page.waitForResponse((r: Response) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/oauth/consent', { timeout });
  // The browser then follows the 303 to the client; that load may fail (a closed listener), which is not ours to judge.
  await page.locator(`button[name="action"][value="${action}"]`).click();
  const response = await answered;
  const location = response.headers()['location'];
  if (response.status() !== 303 || !location) {
    const body = await response.text().catch(() => '');
    throw new Error(`the consent page answered ${action} with ${response.status()}, not a redirect to the client: ${body.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 500)}`);
  }
  return new URL(location, response.url()).toString();
}
