// Database side of the PostgREST stand-in: the `authenticator` login role that Supabase's PostgREST
// connects as, and a bare database (the auth fixture, no migrations) for "functions missing" tests.
//
// As on Supabase (and in PostgREST's docs, "Authentication > Roles"), `authenticator` is LOGIN
// NOINHERIT with no privileges of its own and is a member of anon / authenticated / service_role, so
// the only thing it can do is `set local role <role from the JWT>` inside a transaction.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { sleep } from '../helpers/wait';

const ROOT = path.resolve(__dirname, '../../..'); // out/test/<dir>/x.js -> repo root

export const AUTHENTICATOR_ROLE = 'authenticator';
/** Test-only password of the cluster-wide `authenticator` role (the test cluster listens on loopback only). */
export const AUTHENTICATOR_PASSWORD = 'exai-postgrest-authenticator-test-only';

/** The same database as `databaseUrl`, logged in as `authenticator`. */
export function authenticatorUrl(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  url.username = AUTHENTICATOR_ROLE;
  url.password = AUTHENTICATOR_PASSWORD;
  return url.toString();
}

/**
 * Creates (or resets) `authenticator` and its memberships, and grants service_role the table
 * privileges a Supabase project gives it by default (its default privileges grant ALL on new public
 * tables to anon, authenticated and service_role; our migration revokes them from the first two only).
 * `superuserUrl` must log in as a superuser. Safe to run concurrently from several test processes.
 */
export async function prepareDatabase(superuserUrl: string): Promise<void> {
  const client = new Client({ connectionString: superuserUrl });
  await client.connect();
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await client.query(`do $$ begin
          if not exists (select from pg_roles where rolname = 'anon') then create role anon nologin noinherit; end if;
          if not exists (select from pg_roles where rolname = 'authenticated') then create role authenticated nologin noinherit; end if;
          if not exists (select from pg_roles where rolname = 'service_role') then create role service_role nologin noinherit bypassrls; end if;
          if not exists (select from pg_roles where rolname = '${AUTHENTICATOR_ROLE}') then
            create role ${AUTHENTICATOR_ROLE} login noinherit password '${AUTHENTICATOR_PASSWORD}';
          end if;
        end $$`);
        await client.query(`alter role ${AUTHENTICATOR_ROLE} with login noinherit nosuperuser nocreatedb nocreaterole nobypassrls password '${AUTHENTICATOR_PASSWORD}'`);
        await client.query(`grant anon, authenticated, service_role to ${AUTHENTICATOR_ROLE}`);
        break;
      } catch (err) {
        // Two test processes creating / altering the same cluster-wide role at once.
        const code = (err as { code?: string }).code;
        if (attempt >= 5 || !['42710', '23505', 'XX000', '40001', '40P01'].includes(code ?? '')) throw err;
        await sleep(50 * attempt + Math.random() * 100);
      }
    }
    await client.query(`do $$ begin
      if to_regclass('public.mcp_sessions') is not null then
        grant select, insert, update, delete on table public.mcp_sessions to service_role;
      end if;
    end $$`);
  } finally {
    await client.end();
  }
}

export interface BareDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A fresh database with only test/fixtures/plain-postgres-auth.sql: roles, auth.users, auth.uid(); no mcp_sessions. */
export async function createBareDatabase(adminUrl: string): Promise<BareDatabase> {
  const name = `exai_bare_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const client = new Client({ connectionString: url.toString() });
  await client.connect();
  await client.query(fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'plain-postgres-auth.sql'), 'utf8'));
  await client.end();
  return {
    url: url.toString(),
    async drop() {
      const a = new Client({ connectionString: adminUrl });
      await a.connect();
      await a.query(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}
