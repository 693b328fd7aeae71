// One fresh database per test file on the real PostgreSQL 15 started by scripts/postgres.sh:
// the plain-Postgres auth fixture, then every migration in supabase/migrations/, in order. As on
// Supabase, where `postgres` runs the migrations and is no superuser, they run as MIGRATION_ROLE (no
// superuser, no BYPASSRLS), which therefore owns the tables and the SECURITY DEFINER functions.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { Client } from 'pg';
import { sleep } from './wait';

const ROOT = path.resolve(__dirname, '../../..'); // out/test/<dir>/x.js -> repo root
export const ADMIN_URL = process.env.EXAI_TEST_PG_ADMIN_URL ?? 'postgres://exai_test:exai_test@127.0.0.1:5432/postgres';

export interface TestDatabase {
  url: string;
  name: string;
  /** Runs SQL as the superuser test role (bypasses RLS): set-up and inspection only. */
  query<T = any>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Inserts auth.users rows. */
  addUser(id: string, email: string): Promise<void>;
  drop(): Promise<void>;
}

/** The role that runs the migrations (and so owns what they create); cluster-wide, shared by test runs. */
export const MIGRATION_ROLE = 'exai_test_migrator';

/** Creates MIGRATION_ROLE if missing. Safe to run concurrently from several test processes. */
async function ensureMigrationRole(client: Client): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await client.query(`do $$ begin
        if not exists (select from pg_roles where rolname = '${MIGRATION_ROLE}') then
          create role ${MIGRATION_ROLE} nologin nosuperuser nobypassrls;
        end if;
      end $$`);
      return;
    } catch (err) {
      // Two test processes creating the same cluster-wide role at once.
      const code = (err as { code?: string }).code;
      if (attempt >= 5 || !['42710', '23505', 'XX000', '40001', '40P01'].includes(code ?? '')) throw err;
      await sleep(50 * attempt + Math.random() * 100);
    }
  }
}

export function migrationFiles(): string[] {
  const dir = path.join(ROOT, 'supabase', 'migrations');
  return fs.readdirSync(dir).filter((f) => f.endsWith('.sql')).sort().map((f) => path.join(dir, f));
}

/** The plain-Postgres auth fixture, then every migration, in the database `client` is connected to. */
/**
 * The plain-Postgres auth fixture, then every migration as a role that is neither superuser nor
 * BYPASSRLS (as Supabase's `postgres`), so the SECURITY DEFINER functions run with realistic rights.
 * `client` must be connected as a superuser of its cluster.
 */
export async function applySchema(client: Client): Promise<void> {
  await client.query(fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'plain-postgres-auth.sql'), 'utf8'));
  await ensureMigrationRole(client);
  // What Supabase's `postgres` may do that the migrations need: create in public, reference auth.users.
  await client.query(`grant create, usage on schema public to ${MIGRATION_ROLE}; grant usage on schema auth to ${MIGRATION_ROLE};
                      grant references, select on auth.users to ${MIGRATION_ROLE}`);
  await client.query(`set role ${MIGRATION_ROLE}`);
  for (const file of migrationFiles()) {
    try {
      await client.query(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      throw new Error(`migration ${path.basename(file)} failed: ${(err as Error).message}`);
    }
  }
  await client.query('reset role');
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `exai_test_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();

  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const client = new Client({ connectionString: url.toString() });
  await client.connect();
  await applySchema(client);
  return {
    url: url.toString(),
    name,
    async query(sql, params) {
      return (await client.query(sql, params as any[])).rows;
    },
    async addUser(id, email) {
      await client.query('insert into auth.users (id, email) values ($1, $2)', [id, email]);
    },
    async drop() {
      await client.end();
      const a = new Client({ connectionString: ADMIN_URL });
      await a.connect();
      await a.query(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}
