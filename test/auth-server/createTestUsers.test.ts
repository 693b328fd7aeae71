// scripts/create-test-users against the GoTrue-compatible test server's Admin API: it creates the
// original's two test users (confirmed, with seed.sql's ids, passwords from the environment), is
// idempotent (a second run changes nothing, never resets a password), finds users past the first
// page, and refuses bad settings with sentences that name them, never printing a key or a password.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createClient } from '@supabase/supabase-js';
import { JAZEEL, MICHELLE } from '../helpers/tokens';
import { startAuthServer, type AuthServer } from './server';

const SCRIPT = path.resolve(__dirname, '../../../scripts/create-test-users');
const PASSWORDS = { EXAI_TEST_PASSWORD_JAZEEL: 'jazeel-Secret-pw-1', EXAI_TEST_PASSWORD_MICHELLE: 'michelle-Secret-pw-2' };

function run(env: Record<string, string | undefined>, timeoutMs = 20000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, SUPABASE_URL: undefined, SUPABASE_SERVICE_ROLE_KEY: undefined, EXAI_TEST_PASSWORD_JAZEEL: undefined, EXAI_TEST_PASSWORD_MICHELLE: undefined, ...env })) {
    if (v !== undefined) clean[k] = v;
  }
  const proc = spawn(process.execPath, [SCRIPT], { env: clean, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`create-test-users did not finish within ${timeoutMs} ms: ${stdout} ${stderr}`)); }, timeoutMs);
    proc.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

describe('scripts/create-test-users (Admin API of the GoTrue-compatible test server)', function () {
  this.timeout(60000);
  let server: AuthServer;
  let env: Record<string, string>;
  const outputs: string[] = [];

  const runOk = async (extra: Record<string, string> = {}) => {
    const r = await run({ ...env, ...extra });
    outputs.push(r.stdout + r.stderr);
    assert.equal(r.code, 0, `exit ${r.code}: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const signIn = async (email: string, password: string) => {
    const supabase = createClient(server.url, server.anonKey, { auth: { persistSession: false, autoRefreshToken: false } });
    return supabase.auth.signInWithPassword({ email, password });
  };
  const admin = () => createClient(server.url, server.serviceRoleKey, { auth: { persistSession: false, autoRefreshToken: false } });

  beforeEach(async function () {
    server = await startAuthServer();
    env = { SUPABASE_URL: server.url, SUPABASE_SERVICE_ROLE_KEY: server.serviceRoleKey, ...PASSWORDS };
  });

  afterEach(async function () {
    await server?.close();
  });

  after(function () {
    const all = outputs.join('\n');
    for (const secret of [...Object.values(PASSWORDS), server.serviceRoleKey]) assert.ok(!all.includes(secret), 'a secret was printed');
  });

  it('creates both users, confirmed, with the ids of seed.sql and the passwords from the environment', async function () {
    const out = await runOk();
    assert.match(out, new RegExp(`^created jazeel@example\\.com \\(id ${JAZEEL.id}, email confirmed, password from EXAI_TEST_PASSWORD_JAZEEL\\)$`, 'm'));
    assert.match(out, new RegExp(`^created michelle@example\\.com \\(id ${MICHELLE.id}, email confirmed, password from EXAI_TEST_PASSWORD_MICHELLE\\)$`, 'm'));
    assert.match(out, /^done: 2 created, 0 already existed, in http:\/\/127\.0\.0\.1:\d+$/m);
    const j = await signIn(JAZEEL.email, PASSWORDS.EXAI_TEST_PASSWORD_JAZEEL);
    assert.equal(j.error, null);
    assert.equal(j.data.user?.id, JAZEEL.id);
    assert.ok(j.data.user?.email_confirmed_at);
    const m = await signIn(MICHELLE.email, PASSWORDS.EXAI_TEST_PASSWORD_MICHELLE);
    assert.equal(m.data.user?.id, MICHELLE.id);
  });

  it('is idempotent: a second run creates nothing and never resets a password; a deleted user is created again', async function () {
    await runOk();
    const out = await runOk({ EXAI_TEST_PASSWORD_JAZEEL: 'a-different-password-3', EXAI_TEST_PASSWORD_MICHELLE: 'another-different-pw-4' });
    assert.match(out, new RegExp(`^exists  jazeel@example\\.com \\(id ${JAZEEL.id}\\); left unchanged, its password was not reset$`, 'm'));
    assert.match(out, /^exists  michelle@example\.com .*left unchanged/m);
    assert.match(out, /^done: 0 created, 2 already existed/m);
    const { data } = await admin().auth.admin.listUsers();
    assert.deepEqual(data.users.map((u) => u.email).sort(), ['jazeel@example.com', 'michelle@example.com']);
    assert.equal((await signIn(JAZEEL.email, PASSWORDS.EXAI_TEST_PASSWORD_JAZEEL)).error, null, 'the first password still works');

    assert.equal((await admin().auth.admin.deleteUser(MICHELLE.id)).error, null);
    const again = await runOk();
    assert.match(again, /^exists  jazeel@example\.com/m);
    assert.match(again, /^created michelle@example\.com/m);
  });

  it('finds an existing user past the first page of the Admin API list (newest first)', async function () {
    server.createUser({ id: JAZEEL.id, email: JAZEEL.email, password: PASSWORDS.EXAI_TEST_PASSWORD_JAZEEL });
    for (let i = 0; i < 150; i++) server.createUser({ email: `filler-${i}@example.com`, password: 'filler-password-1' });
    const out = await runOk();
    assert.match(out, /^exists  jazeel@example\.com/m);
    assert.match(out, /^created michelle@example\.com/m);
    const page2 = await admin().auth.admin.listUsers({ page: 2, perPage: 100 });
    assert.ok(page2.data.users.some((u) => u.email === JAZEEL.email), 'the oldest user is on the second page');
  });

  it('reports a user that exists with another id, without touching it', async function () {
    const other = server.createUser({ email: MICHELLE.email, password: 'michelle-old-password-5' });
    const out = await runOk();
    assert.match(out, new RegExp(`^exists  michelle@example\\.com \\(id ${other.id} \\(not the id ${MICHELLE.id} of supabase/seed\\.sql\\)\\); left unchanged`, 'm'));
    assert.equal((await signIn(MICHELLE.email, 'michelle-old-password-5')).error, null);
  });

  it('refuses missing settings, a public key and a key of another project, naming what to set', async function () {
    let r = await run({ SUPABASE_URL: server.url });
    outputs.push(r.stdout + r.stderr);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^create-test-users: SUPABASE_SERVICE_ROLE_KEY, EXAI_TEST_PASSWORD_JAZEEL, EXAI_TEST_PASSWORD_MICHELLE are not set\./);

    r = await run({ ...env, SUPABASE_SERVICE_ROLE_KEY: server.anonKey });
    outputs.push(r.stdout + r.stderr);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /SUPABASE_SERVICE_ROLE_KEY holds a public \(role "anon"\) key; the Admin API needs the project's service_role/);

    const elsewhere = await startAuthServer();
    try {
      r = await run({ ...env, SUPABASE_SERVICE_ROLE_KEY: elsewhere.serviceRoleKey });
      outputs.push(r.stdout + r.stderr);
      assert.equal(r.code, 1);
      // The gateway refuses a key it does not know (401 Invalid API key) before GoTrue sees it.
      assert.match(r.stderr, /refused the Admin API call \(HTTP 401\) while listing users: SUPABASE_SERVICE_ROLE_KEY is not this project's service_role key/);
    } finally {
      await elsewhere.close();
    }

    r = await run({ ...env, EXAI_TEST_PASSWORD_MICHELLE: 'short' });
    outputs.push(r.stdout + r.stderr);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refused the password while creating michelle@example\.com: Password should be at least \d+ characters\. Choose a stronger one\./);
    assert.equal((await admin().auth.admin.listUsers()).data.users.length, 1, 'jazeel was created before michelle failed');
  });
});
