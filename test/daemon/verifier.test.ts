// SupabaseJwtVerifier and the local-secret verifier: one test per acceptance / refusal rule.
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { exportSPKI } from 'jose';
import { TokenRejected, type TokenVerifier } from '../../server/auth/identity';
import { createLocalSecretVerifier, SupabaseJwtVerifier } from '../../server/auth/verifier';
import {
  JAZEEL,
  MICHELLE,
  mintAccessToken,
  mintAnonKey,
  mintServiceRoleKey,
  startJwksServer,
  unsignedToken,
  type JwksServer,
  type MintOptions,
} from '../helpers/tokens';

const JWT_SECRET = 'super-secret-jwt-token-with-at-least-32-characters-long';

async function assertRejected(
  verifier: TokenVerifier,
  token: string,
  code: TokenRejected['code'],
  messagePattern?: RegExp,
): Promise<TokenRejected> {
  let caught: unknown;
  try {
    await verifier.verify(token);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof TokenRejected, `expected TokenRejected, got ${caught === undefined ? 'acceptance' : String(caught)}`);
  assert.equal(caught.code, code, `code (message: ${caught.message})`);
  if (token.length > 0) assert.ok(!caught.message.includes(token), 'the message must not contain the token');
  // Nor a recognisable part of it (header / payload / signature segments).
  for (const part of token.split('.')) {
    if (part.length >= 16) assert.ok(!caught.message.includes(part), 'the message must not contain part of the token');
  }
  if (messagePattern) assert.match(caught.message, messagePattern);
  return caught;
}

describe('SupabaseJwtVerifier', () => {
  let jwks: JwksServer;
  let verifier: SupabaseJwtVerifier;
  const nowSec = () => Math.floor(Date.now() / 1000);
  const mint = (opts: Partial<MintOptions> = {}) => mintAccessToken({ key: jwks.keys.es256, issuer: jwks.issuer, ...opts });

  before(async () => {
    jwks = await startJwksServer();
  });
  after(async () => {
    await jwks.close();
  });
  beforeEach(() => {
    jwks.setPublished([jwks.keys.es256.kid, jwks.keys.rs256.kid]);
    jwks.setStatus(200);
    verifier = new SupabaseJwtVerifier({ supabaseUrl: jwks.url });
  });

  describe('accepts', () => {
    it('a valid ES256 access token, mapped to Identity', async () => {
      const sessionId = '6a1f3c5e-2b4d-4f6a-8c9e-0d1b2c3d4e5f';
      const token = await mint({ user: MICHELLE, sessionId });
      const id = await verifier.verify(token);
      assert.equal(id.userId, MICHELLE.id);
      assert.equal(id.email, MICHELLE.email);
      assert.equal(id.authSessionId, sessionId);
      assert.equal(typeof id.expiresAt, 'number');
      assert.ok(id.expiresAt! > nowSec() + 3000 && id.expiresAt! <= nowSec() + 3600);
      assert.equal(id.accessToken, token);
      assert.equal(id.claims.sub, MICHELLE.id);
      assert.equal(id.claims.role, 'authenticated');
      assert.equal(id.claims.aud, 'authenticated');
      assert.equal(id.claims.iss, jwks.issuer);
      assert.equal(id.claims.session_id, sessionId);
    });

    it('a valid RS256 access token', async () => {
      const id = await verifier.verify(await mint({ key: jwks.keys.rs256, user: JAZEEL }));
      assert.equal(id.userId, JAZEEL.id);
      assert.equal(id.email, JAZEEL.email);
    });

    it('a SUPABASE_URL with a trailing slash (issuer compared without it)', async () => {
      const v = new SupabaseJwtVerifier({ supabaseUrl: `${jwks.url}/` });
      assert.equal((await v.verify(await mint())).userId, JAZEEL.id);
    });

    it('a token signed by a rotated-in key once it is published (refetch on unknown kid)', async () => {
      const v = new SupabaseJwtVerifier({ supabaseUrl: jwks.url, jwksCooldownMs: 0 });
      await v.verify(await mint()); // JWKS fetched and cached
      const rotated = await mint({ key: jwks.keys.es256Rotated });
      await assertRejected(v, rotated, 'token_invalid', /signing key is not in the project's key set/);

      jwks.setPublished([jwks.keys.es256.kid, jwks.keys.es256Rotated.kid]);
      const before = jwks.requests();
      const id = await v.verify(rotated);
      assert.equal(id.userId, JAZEEL.id);
      assert.equal(jwks.requests(), before + 1, 'the unknown kid triggered exactly one refetch');
    });

    it('caches the JWKS between verifications', async () => {
      const v = new SupabaseJwtVerifier({ supabaseUrl: jwks.url });
      const before = jwks.requests();
      await v.verify(await mint());
      await v.verify(await mint({ key: jwks.keys.rs256 }));
      await v.verify(await mint({ user: MICHELLE }));
      assert.equal(jwks.requests(), before + 1);
    });

    it('a legacy HS256 token when jwtSecret is configured', async () => {
      const v = new SupabaseJwtVerifier({ supabaseUrl: jwks.url, jwtSecret: JWT_SECRET });
      const id = await v.verify(await mint({ key: { secret: JWT_SECRET }, user: MICHELLE }));
      assert.equal(id.userId, MICHELLE.id);
    });
  });

  describe('refuses', () => {
    it('an expired token (token_expired)', async () => {
      const token = await mint({ expiresInSec: -60, claims: { iat: nowSec() - 3660 } });
      await assertRejected(verifier, token, 'token_expired', /sign-in expired/);
    });

    it('a token that is not valid yet (nbf in the future)', async () => {
      const token = await mint({ claims: { nbf: nowSec() + 120 } });
      await assertRejected(verifier, token, 'token_invalid', /not valid yet/);
    });

    it('a token issued in the future (iat beyond the clock tolerance)', async () => {
      const token = await mint({ claims: { iat: nowSec() + 120 } });
      await assertRejected(verifier, token, 'token_invalid', /issued .*in the future/);
    });

    it('a wrong signature (unpublished key, published kid)', async () => {
      const token = await mint({ key: jwks.keys.es256Rotated, header: { kid: jwks.keys.es256.kid } });
      await assertRejected(verifier, token, 'token_invalid', /signature does not verify/);
    });

    it('a tampered payload', async () => {
      const token = await mint();
      const [h, , s] = token.split('.');
      const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()), sub: MICHELLE.id })).toString('base64url');
      await assertRejected(verifier, `${h}.${forged}.${s}`, 'token_invalid', /signature does not verify/);
    });

    it("alg 'none'", async () => {
      const token = unsignedToken({
        iss: jwks.issuer, sub: JAZEEL.id, aud: 'authenticated', role: 'authenticated',
        session_id: '6a1f3c5e-2b4d-4f6a-8c9e-0d1b2c3d4e5f', iat: nowSec(), exp: nowSec() + 3600,
      });
      await assertRejected(verifier, token, 'token_invalid', /alg "none"/);
    });

    it('an alg outside the allow-list (HS512)', async () => {
      const token = await mint({ key: { secret: JWT_SECRET }, header: { alg: 'HS512' } });
      await assertRejected(verifier, token, 'token_invalid', /alg "HS512"/);
    });

    it('HS256 when only the JWKS is configured', async () => {
      const token = await mint({ key: { secret: JWT_SECRET } });
      await assertRejected(verifier, token, 'token_invalid', /signed with HS256 but this daemon only trusts the project's JWKS/);
    });

    it('HS256 signed with the wrong secret', async () => {
      const v = new SupabaseJwtVerifier({ supabaseUrl: jwks.url, jwtSecret: JWT_SECRET });
      const token = await mint({ key: { secret: 'another-projects-secret-another-projects-secret' } });
      await assertRejected(v, token, 'token_invalid', /does not match the configured SUPABASE_JWT_SECRET/);
    });

    it('a wrong iss', async () => {
      const token = await mint({ claims: { iss: 'https://other-project.supabase.co/auth/v1' } });
      await assertRejected(verifier, token, 'token_invalid', /other-project\.supabase\.co.*trusts only/);
    });

    it('a wrong aud', async () => {
      const token = await mint({ claims: { aud: 'anon' } });
      await assertRejected(verifier, token, 'token_invalid', /audience/);
    });

    it("role 'anon' with otherwise valid claims", async () => {
      const token = await mint({ claims: { role: 'anon' } });
      await assertRejected(verifier, token, 'token_invalid', /role is "anon", not 'authenticated'/);
    });

    it("the project's anon key", async () => {
      const v = new SupabaseJwtVerifier({ supabaseUrl: jwks.url, jwtSecret: JWT_SECRET });
      const key = await mintAnonKey(JWT_SECRET);
      await assertRejected(v, key, 'token_invalid', /anon key \(or service_role key\), not a user's access token; sign in/);
      await assertRejected(verifier, key, 'token_invalid', /anon key/); // same message without the secret configured
    });

    it("the project's service_role key", async () => {
      const v = new SupabaseJwtVerifier({ supabaseUrl: jwks.url, jwtSecret: JWT_SECRET });
      const key = await mintServiceRoleKey(JWT_SECRET);
      await assertRejected(v, key, 'token_invalid', /service_role key\), not a user's access token/);
      await assertRejected(verifier, key, 'token_invalid', /service_role key/);
    });

    it('a token of an anonymous Supabase user (is_anonymous: true), unless the operator opts in', async () => {
      const token = await mint({ claims: { is_anonymous: true, email: undefined } });
      await assertRejected(verifier, token, 'token_invalid', /anonymous \(guest\) Supabase user.*EXAI_ALLOW_ANONYMOUS=true/);
      const optedIn = new SupabaseJwtVerifier({ supabaseUrl: jwks.url, allowAnonymous: true });
      assert.equal((await optedIn.verify(token)).userId, JAZEEL.id);
      // is_anonymous: false is an ordinary signed-in user.
      assert.equal((await verifier.verify(await mint({ claims: { is_anonymous: false } }))).userId, JAZEEL.id);
    });

    it('a token without sub', async () => {
      const token = await mint({ claims: { sub: undefined } });
      await assertRejected(verifier, token, 'token_invalid', /no sub claim/);
    });

    it('a non-UUID sub', async () => {
      const token = await mint({ claims: { sub: 'jazeel' } });
      await assertRejected(verifier, token, 'token_invalid', /sub claim is not a user id/);
    });

    it('a token without session_id', async () => {
      const token = await mint({ claims: { session_id: undefined } });
      await assertRejected(verifier, token, 'token_invalid', /no session_id/);
    });

    it('a token without exp', async () => {
      const token = await mint({ claims: { exp: undefined } });
      await assertRejected(verifier, token, 'token_invalid', /no exp/);
    });

    it('a garbage string', async () => {
      await assertRejected(verifier, 'not-a-jwt-at-all-just-some-garbage-text', 'token_invalid', /not a JWT/);
      await assertRejected(verifier, 'aaaa.bbbb.cccc', 'token_invalid', /not a JWT/);
      await assertRejected(verifier, '', 'token_invalid', /No access token/);
    });

    it('alg confusion: an RS256 token re-signed as HS256 with the RSA public key as secret', async () => {
      const pem = await exportSPKI(jwks.keys.rs256.publicKey);
      const jwkJson = JSON.stringify(jwks.keys.rs256.publicJwk);
      for (const secret of [pem, jwkJson]) {
        const token = await mint({ key: { secret }, header: { kid: jwks.keys.rs256.kid } });
        // JWKS only: HS256 is never looked up in the JWKS.
        await assertRejected(verifier, token, 'token_invalid', /signed with HS256 but this daemon only trusts/);
        // With a legacy secret: HS256 is checked against that secret only.
        const v = new SupabaseJwtVerifier({ supabaseUrl: jwks.url, jwtSecret: JWT_SECRET });
        await assertRejected(v, token, 'token_invalid', /SUPABASE_JWT_SECRET/);
      }
    });
  });

  describe('tokens of the project\'s OAuth server (client_id claim): EXAI_OAUTH_CLIENTS', () => {
    const CLIENT_A = '6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b';
    const CLIENT_B = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
    // As GoTrue issues them at /oauth/token: client_id, scope and an oauth_provider amr.
    const oauthToken = (clientId: unknown, user = JAZEEL) => mint({
      user,
      claims: { client_id: clientId, scope: 'email', amr: [{ method: 'oauth_provider/authorization_code', timestamp: nowSec() }] },
    });

    it('refuses every one by default, with a sentence naming EXAI_OAUTH_CLIENTS', async () => {
      const err = await assertRejected(verifier, await oauthToken(CLIENT_A), 'token_invalid', /accepts no OAuth-issued tokens.*EXAI_OAUTH_CLIENTS: \*/);
      assert.ok(err.message.includes(CLIENT_A), 'names the client');
      await assertRejected(new SupabaseJwtVerifier({ supabaseUrl: jwks.url, oauthClients: [] }), await oauthToken(CLIENT_A), 'token_invalid', /EXAI_OAUTH_CLIENTS/);
    });

    it('accepts any client with *, as the token\'s user', async () => {
      const v = new SupabaseJwtVerifier({ supabaseUrl: jwks.url, oauthClients: '*' });
      const id = await v.verify(await oauthToken(CLIENT_A, MICHELLE));
      assert.equal(id.userId, MICHELLE.id);
      assert.equal(id.claims.client_id, CLIENT_A);
      assert.equal((await v.verify(await oauthToken(CLIENT_B))).userId, JAZEEL.id);
    });

    it('accepts only the listed client ids (compared case-insensitively)', async () => {
      const v = new SupabaseJwtVerifier({ supabaseUrl: jwks.url, oauthClients: [CLIENT_A.toUpperCase()] });
      assert.equal((await v.verify(await oauthToken(CLIENT_A))).userId, JAZEEL.id);
      const err = await assertRejected(v, await oauthToken(CLIENT_B), 'token_invalid', /not in this daemon's EXAI_OAUTH_CLIENTS/);
      assert.ok(err.message.includes(CLIENT_B));
    });

    it('refuses a client_id claim that is not a client id, whatever the setting', async () => {
      const v = new SupabaseJwtVerifier({ supabaseUrl: jwks.url, oauthClients: '*' });
      for (const bad of ['', 'claude-code', 42, null, [CLIENT_A]]) {
        await assertRejected(v, await oauthToken(bad), 'token_invalid', /client_id claim is .*not an OAuth client id/);
      }
    });

    it('leaves the extension\'s own sign-in tokens (no client_id) alone under every setting', async () => {
      for (const oauthClients of [undefined, [], '*', [CLIENT_A]] as const) {
        const v = new SupabaseJwtVerifier({ supabaseUrl: jwks.url, oauthClients });
        assert.equal((await v.verify(await mint({ user: MICHELLE }))).userId, MICHELLE.id);
      }
    });
  });

  describe('JWKS unavailable', () => {
    it('server down → auth_unavailable naming the JWKS host', async () => {
      const down = await startJwksServer();
      const token = await mintAccessToken({ key: down.keys.es256, issuer: down.issuer });
      await down.close();
      const v = new SupabaseJwtVerifier({ supabaseUrl: down.url });
      const err = await assertRejected(v, token, 'auth_unavailable', /Retry.*SUPABASE_URL/);
      assert.ok(err.message.includes(new URL(down.url).host), err.message);
    });

    it('non-200 answer → auth_unavailable', async () => {
      jwks.setStatus(503);
      const err = await assertRejected(verifier, await mint(), 'auth_unavailable', /200 OK/);
      assert.ok(err.message.includes(new URL(jwks.url).host));
    });

    it('a JWKS request that times out → auth_unavailable', async () => {
      const sockets = new Set<net.Socket>();
      const hang = net.createServer((s) => sockets.add(s)); // accepts, never answers
      await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
      try {
        const url = `http://127.0.0.1:${(hang.address() as AddressInfo).port}`;
        const v = new SupabaseJwtVerifier({ supabaseUrl: url, jwksTimeoutMs: 200 });
        const token = await mintAccessToken({ key: jwks.keys.es256, issuer: `${url}/auth/v1` });
        await assertRejected(v, token, 'auth_unavailable', /timed out/);
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise<void>((r) => hang.close(() => r()));
      }
    });

    it('recovers once the JWKS answers again', async () => {
      jwks.setStatus(500);
      const token = await mint();
      await assertRejected(verifier, token, 'auth_unavailable');
      jwks.setStatus(200);
      assert.equal((await verifier.verify(token)).userId, JAZEEL.id);
    });
  });
});

describe('createLocalSecretVerifier', () => {
  const SECRET = 'b5c0f1e2d3a4958677a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0';
  const verifier = createLocalSecretVerifier(SECRET, 'jazeel');

  it('accepts the right secret as local:<os user>', async () => {
    const id = await verifier.verify(SECRET);
    assert.deepEqual(id, {
      userId: 'local:jazeel',
      email: null,
      authSessionId: null,
      expiresAt: null,
      claims: { sub: 'local:jazeel', role: 'local' },
      accessToken: SECRET,
    });
  });

  it('refuses a wrong secret of the same length', async () => {
    const wrong = SECRET.slice(0, -1) + (SECRET.endsWith('0') ? '1' : '0');
    await assertRejected(verifier, wrong, 'token_invalid', /local daemon secret did not match.*reconnect/);
  });

  it('refuses a shorter secret (a prefix)', async () => {
    await assertRejected(verifier, SECRET.slice(0, 32), 'token_invalid', /did not match/);
  });

  it('refuses a longer secret (secret + suffix)', async () => {
    await assertRejected(verifier, SECRET + 'x', 'token_invalid', /did not match/);
  });

  it('refuses an empty token', async () => {
    await assertRejected(verifier, '', 'token_invalid', /did not match/);
  });
});
