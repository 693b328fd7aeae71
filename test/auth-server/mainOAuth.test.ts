// The test server's CLI (main.ts, what `npm run start:multi-user` runs) with the OAuth 2.1 server:
// --oauth-server / EXAI_TEST_AUTH_OAUTH_SERVER=1 turn it on with /oauth/consent and dynamic
// registration, and POST /__test/config {siteUrl} points the consent redirect at a daemon whose
// port is known only after the auth server started.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import readline from 'node:readline';

const MAIN_JS = path.join(__dirname, 'main.js');

interface Listening {
  url: string;
  issuer: string;
  oauthServer: { enabled: boolean; authorizationPath?: string };
}

const children: ChildProcess[] = [];

/** Starts main.js and resolves with its listening line (bounded by a 15 s deadline). */
function startCli(args: string[], env: Record<string, string> = {}): Promise<Listening> {
  const child = spawn(process.execPath, [MAIN_JS, '--port', '0', ...args], { env: { ...process.env, EXAI_TEST_AUTH_OAUTH_SERVER: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`main.js did not listen within 15 s: ${stderr}`)), 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`main.js exited (${code}): ${stderr}`));
    });
    readline.createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      resolve(JSON.parse(line) as Listening);
    });
  });
}

describe('test auth server CLI: the OAuth 2.1 server', function () {
  this.timeout(30_000);

  after(function () {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  });

  it('--oauth-server serves the path-inserted metadata with a registration endpoint; POST /__test/config {siteUrl} moves the consent redirect', async function () {
    const cli = await startCli(['--oauth-server', '--no-registration-rate-limit']);
    assert.equal(cli.oauthServer.enabled, true);
    const meta = await fetch(`${cli.url}/.well-known/oauth-authorization-server/auth/v1`);
    assert.equal(meta.status, 200);
    assert.equal(((await meta.json()) as Record<string, unknown>).registration_endpoint, `${cli.issuer}/oauth/clients/register`);

    const reg = await fetch(`${cli.issuer}/oauth/clients/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:50001/cb'], token_endpoint_auth_method: 'none' }),
    });
    assert.equal(reg.status, 201);
    const { client_id } = (await reg.json()) as { client_id: string };

    const set = await fetch(`${cli.url}/__test/config`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ siteUrl: 'http://127.0.0.1:45678' }) });
    assert.equal(set.status, 200);
    assert.equal(((await set.json()) as Record<string, unknown>).siteUrl, 'http://127.0.0.1:45678');

    const challenge = crypto.createHash('sha256').update('v'.repeat(50)).digest('base64url');
    const q = new URLSearchParams({ client_id, redirect_uri: 'http://127.0.0.1:50001/cb', code_challenge: challenge, code_challenge_method: 'S256' });
    const res = await fetch(`${cli.issuer}/oauth/authorize?${q}`, { redirect: 'manual' });
    assert.equal(res.status, 302);
    assert.match(res.headers.get('location')!, /^http:\/\/127\.0\.0\.1:45678\/oauth\/consent\?authorization_id=[a-z2-7]{32}$/);
  });

  it('EXAI_TEST_AUTH_OAUTH_SERVER=1 turns it on too; without either it is off (404 feature_disabled)', async function () {
    const on = await startCli([], { EXAI_TEST_AUTH_OAUTH_SERVER: '1' });
    assert.equal(on.oauthServer.enabled, true);
    assert.equal(on.oauthServer.authorizationPath, '/oauth/consent');
    assert.equal((await fetch(`${on.issuer}/.well-known/oauth-authorization-server`)).status, 200);

    const off = await startCli([]);
    assert.equal(off.oauthServer.enabled, false);
    const res = await fetch(`${off.issuer}/.well-known/oauth-authorization-server`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as Record<string, unknown>).error_code, 'feature_disabled');
  });

  it('POST /__test/config {oauthServer} changes the settings of a running server', async function () {
    const cli = await startCli(['--oauth-server', '--no-dynamic-registration']);
    const reg = () => fetch(`${cli.issuer}/oauth/clients/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:50001/cb'] }) });
    assert.equal((await reg()).status, 403);
    await fetch(`${cli.url}/__test/config`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ oauthServer: { allowDynamicRegistration: true } }) });
    assert.equal((await reg()).status, 201);
  });
});
