// The daemon's consent page in Chromium (Playwright + Debian Chromium): with the keyboard alone,
// through GitHub sign-in (the test server's GitHub stand-in), and through the Playwright driver
// other suites use (test/helpers/oauthConsent.ts). The client's redirect URI is a local listener, so
// the browser really arrives there: Chromium applies the page's CSP form-action to the redirect
// after Approve, which only these tests can show. HTTP-level cases: test/daemon/oauthConsent.test.ts.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import path from 'node:path';
import { CHROME_ARGS, ROOT } from '../helpers/codeServer';
import { startConsentStack, type ConsentStack, type RegisteredClient } from '../helpers/consentStack';
import { approveInBrowser, denyInBrowser } from '../helpers/oauthConsent';
import { waitFor } from '../helpers/wait';

/** Screenshots of the pages, for a person to look at (not compared). */
const OUT = path.join(ROOT, 'test-results', 'e2e');

/** The OAuth client's redirect URI: records each URL the browser arrives with. */
async function startRedirectListener(): Promise<{ url: string; arrivals: URL[]; close(): Promise<void> }> {
  const arrivals: URL[] = [];
  const server = http.createServer((req, res) => {
    arrivals.push(new URL(req.url ?? '/', 'http://127.0.0.1'));
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>Client</title><p id="client-arrived">The application got its answer.</p>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`,
    arrivals,
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}

/** The page's `document` as the page sees it (this project compiles without the DOM library). */
interface PageElement { tagName: string; id: string; getAttribute(name: string): string | null }
declare const document: { activeElement: PageElement | null };

async function focusedId(page: Page): Promise<string> {
  return page.evaluate(() => {
    const el = document.activeElement;
    return el ? `${el.tagName.toLowerCase()}#${el.id}${el.getAttribute('value') ? `[value=${el.getAttribute('value')}]` : ''}` : '';
  });
}

/** Presses Tab until the element matching `selector` has focus (at most `max` presses); fails naming what got focus. */
async function tabTo(page: Page, selector: string, max = 12): Promise<number> {
  for (let presses = 1; presses <= max; presses++) {
    await page.keyboard.press('Tab');
    if (await page.locator(selector).evaluate((el) => el === document.activeElement)) return presses;
  }
  throw new Error(`${selector} did not get focus within ${max} Tab presses (focus is on ${await focusedId(page)})`);
}

describe('e2e: the OAuth consent page in Chromium', function () {
  this.timeout(120_000);
  let stack: ConsentStack;
  let listener: Awaited<ReturnType<typeof startRedirectListener>>;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const cspViolations: string[] = [];

  async function newPage(): Promise<Page> {
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    page.on('console', (m) => { if (/Content Security Policy|Content-Security-Policy/i.test(m.text())) cspViolations.push(m.text()); });
    return page;
  }

  /** The browser's arrival at the client's redirect URI with this state (Chromium also asks the listener for /favicon.ico). */
  function arrival(state: string): Promise<URL> {
    return waitFor(() => listener.arrivals.find((a) => a.pathname === '/callback' && a.searchParams.get('state') === state), 10_000, 'the browser arriving at the client');
  }

  async function client(name: string): Promise<RegisteredClient> {
    return stack.registerClient({ name, redirectUri: listener.url });
  }

  before(async function () {
    listener = await startRedirectListener();
    stack = await startConsentStack();
    browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: CHROME_ARGS });
  });
  after(async function () {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    await stack?.stop();
    await listener?.close();
  });
  afterEach(function () {
    assert.deepEqual(cspViolations.splice(0), [], 'the page ran into its own Content-Security-Policy');
  });

  it('signs in and approves with the keyboard alone; the browser lands on the client with code and state', async function () {
    const app = await client('Keyboard Client');
    const { url, state } = stack.authorizeUrl(app, { scope: 'openid email' });
    const page = await newPage();
    await page.goto(url);
    await page.locator('button#sign-in-password').waitFor();
    assert.equal(await focusedId(page), 'input#email', 'the first field has focus when the page opens');
    await page.screenshot({ path: path.join(OUT, 'oauth-consent-sign-in.png'), fullPage: true });
    await page.keyboard.type(stack.user.email);
    assert.equal(await tabTo(page, 'input[name="password"]#password'), 1, 'password comes right after email');
    await page.keyboard.type(stack.user.password);
    assert.equal(await tabTo(page, 'button#sign-in-password'), 1, 'the sign-in button comes right after the password');
    await page.keyboard.press('Enter');

    await page.locator('#consent-details').waitFor();
    assert.match(await page.locator('#consent-details').innerText(), /Keyboard Client[\s\S]*consent-jazeel@example\.com[\s\S]*See your email address/);
    await page.screenshot({ path: path.join(OUT, 'oauth-consent-details.png'), fullPage: true });
    assert.equal(await tabTo(page, 'button[name="action"][value="approve"]'), 1, 'Approve is the first stop on the consent page');
    await page.keyboard.press('Enter');
    await page.locator('#client-arrived').waitFor();
    const arrived = await arrival(state);
    assert.ok(arrived.searchParams.get('code'), 'the client got a code');
  });

  it('signs in through GitHub (the stand-in), then approves', async function () {
    const app = await client('GitHub Client');
    const { url, state, verifier } = stack.authorizeUrl(app, { scope: 'email' });
    const page = await newPage();
    await page.goto(url);
    await page.locator('a#sign-in-github').focus();
    await page.keyboard.press('Enter');
    const github = page.locator('#authorize');
    await github.waitFor({ timeout: 30_000 });
    await page.locator('#email').fill(stack.user.email); // the verified email links GitHub to this user
    await github.click();
    await page.locator('#consent-details').waitFor({ timeout: 30_000 });
    assert.match(await page.locator('#consent-details').innerText(), /GitHub Client[\s\S]*consent-jazeel@example\.com/);
    await page.locator('button[name="action"][value="approve"]').click();
    await page.locator('#client-arrived').waitFor();
    const arrived = await arrival(state);
    const tokens = await stack.exchangeCode(app, arrived.searchParams.get('code')!, verifier);
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
  });

  it('the driver: approveInBrowser and denyInBrowser return the URL the daemon sent the browser to', async function () {
    const approving = await client('Driver Client');
    const first = stack.authorizeUrl(approving);
    const page = await newPage();
    await page.goto(first.url);
    const approved = new URL(await approveInBrowser(page, { email: stack.user.email, password: stack.user.password }));
    assert.equal(`${approved.origin}${approved.pathname}`, listener.url);
    assert.equal(approved.searchParams.get('state'), first.state);
    assert.ok(approved.searchParams.get('code'));

    // Same browser, already signed in: the driver skips the form.
    const denying = await client('Denied Driver Client');
    const second = stack.authorizeUrl(denying);
    await page.goto(second.url);
    const denied = new URL(await denyInBrowser(page, { email: stack.user.email, password: stack.user.password }));
    assert.equal(denied.searchParams.get('error'), 'access_denied');
    assert.equal(denied.searchParams.get('state'), second.state);
    await arrival(second.state);
  });
});
