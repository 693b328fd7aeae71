// CLI for the GoTrue-compatible test server, for manual tries and multi-user runs:
//
//   node out/test/auth-server/main.js --port 54321 [--jwt-expiry 3600] [--signing ES256|HS256]
//        [--reuse-interval 10] [--site-url http://127.0.0.1:3000] [--no-auto-confirm] [--verbose]
//        [--oauth-server] [--oauth-authorization-path /oauth/consent] [--no-dynamic-registration]
//        [--no-registration-rate-limit]
//
// --oauth-server (or EXAI_TEST_AUTH_OAUTH_SERVER=1) turns the OAuth 2.1 server on with the
// authorization path /oauth/consent and dynamic client registration allowed, as the daemon's consent
// page expects. Its consent redirect goes to the site URL: when that is only known later (the
// daemon's port), set it with POST /__test/config {"siteUrl":"http://127.0.0.1:<port>"}.
//
// Seeds two confirmed users, jazeel@example.com and michelle@example.com (the ids of JAZEEL and
// MICHELLE in test/helpers/tokens.ts), with the passwords from EXAI_TEST_PASSWORD_JAZEEL /
// EXAI_TEST_PASSWORD_MICHELLE, or generated ones (then printed in the listening line).
// Prints one JSON line on stdout once listening:
//   {"event":"listening","url":…,"issuer":…,"anonKey":…,"serviceRoleKey":…,"jwtSecret":…,"signing":…,"users":[…]}
// Test hooks: GET /__test/otp?email=…, GET /__test/outbox, GET /__test/stats, POST /__test/clock
// {advanceSec|advanceMs|nowMs|reset}, POST /__test/config {jwtExpirySec, reuseIntervalSec, siteUrl,
// oauthServer: {enabled, allowDynamicRegistration, authorizationPath, …}}, POST /__test/users.
// SIGINT / SIGTERM close it.
import crypto from 'node:crypto';
import { JAZEEL, MICHELLE } from '../helpers/tokens';
import { startAuthServer, type AuthServerOptions } from './server';
import type { SigningMode } from './tokens';

/** What --oauth-server turns on: the daemon's consent page path and dynamic registration (MCP clients register themselves). */
const OAUTH_SERVER_ON = { enabled: true, allowDynamicRegistration: true, authorizationPath: '/oauth/consent' };

function parseArgs(argv: string[], env: NodeJS.ProcessEnv): AuthServerOptions & { verbose: boolean } {
  const opts: AuthServerOptions & { verbose: boolean } = { verbose: false };
  if (env.EXAI_TEST_AUTH_OAUTH_SERVER === '1' || env.EXAI_TEST_AUTH_OAUTH_SERVER === 'true') opts.oauthServer = { ...OAUTH_SERVER_ON };
  const oauth = () => (opts.oauthServer ??= { ...OAUTH_SERVER_ON });
  const value = (i: number, name: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
    return v;
  };
  const int = (s: string, name: string): number => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${s}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--port':
        opts.port = int(value(i++, a), a);
        break;
      case '--jwt-expiry':
        opts.jwtExpirySec = int(value(i++, a), a);
        break;
      case '--reuse-interval':
        opts.reuseIntervalSec = int(value(i++, a), a);
        break;
      case '--signing': {
        const s = value(i++, a).toUpperCase();
        if (s !== 'ES256' && s !== 'HS256') throw new Error(`--signing must be ES256 or HS256, got ${s}`);
        opts.signing = s as SigningMode;
        break;
      }
      case '--site-url':
        opts.siteUrl = value(i++, a);
        break;
      case '--jwt-secret':
        opts.jwtSecret = value(i++, a);
        break;
      case '--no-auto-confirm':
        opts.autoConfirm = false;
        break;
      case '--verbose':
        opts.verbose = true;
        break;
      case '--oauth-server':
        oauth();
        break;
      case '--oauth-authorization-path':
        oauth().authorizationPath = value(i++, a);
        break;
      case '--no-dynamic-registration':
        oauth().allowDynamicRegistration = false;
        break;
      case '--no-registration-rate-limit':
        oauth().registrationRateLimit = false;
        break;
      case '--help':
      case '-h':
        process.stdout.write('usage: main.js --port N [--jwt-expiry S] [--signing ES256|HS256] [--reuse-interval S] [--site-url URL] [--jwt-secret S] [--no-auto-confirm] [--verbose] [--oauth-server] [--oauth-authorization-path P] [--no-dynamic-registration] [--no-registration-rate-limit]\n');
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a}`);
    }
  }
  return opts;
}

async function main(): Promise<void> {
  const { verbose, ...options } = parseArgs(process.argv.slice(2), process.env);
  if (verbose) options.log = (line) => process.stderr.write(`[auth-server] ${line}\n`);
  const server = await startAuthServer(options);

  const users = [
    { ...JAZEEL, env: 'EXAI_TEST_PASSWORD_JAZEEL' },
    { ...MICHELLE, env: 'EXAI_TEST_PASSWORD_MICHELLE' },
  ].map((u) => {
    const fromEnv = process.env[u.env];
    const password = fromEnv || `Pw-${crypto.randomBytes(12).toString('base64url')}`;
    server.createUser({ id: u.id, email: u.email, password, confirmed: true });
    return { id: u.id, email: u.email, ...(fromEnv ? { passwordFrom: u.env } : { password }) };
  });

  process.stdout.write(
    `${JSON.stringify({
      event: 'listening',
      url: server.url,
      issuer: server.issuer,
      port: server.port,
      anonKey: server.anonKey,
      serviceRoleKey: server.serviceRoleKey,
      jwtSecret: server.jwtSecret,
      signing: server.signing,
      kid: server.kid ?? null,
      oauthServer: options.oauthServer ?? { enabled: false },
      users,
    })}\n`,
  );

  const stop = (signal: string) => {
    process.stderr.write(`[auth-server] ${signal}: closing\n`);
    server.close().then(() => process.exit(0));
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err) => {
  process.stderr.write(`[auth-server] ${(err as Error).message}\n`);
  process.exit(1);
});
