// One fresh database per test file on the real PostgreSQL 15 started by scripts/postgres.sh:
// the plain-Postgres auth fixture, then every migration in supabase/migrations/, in order.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { Client } from 'pg';

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

export function migrationFiles(): string[] {
  const dir = path.join(ROOT, 'supabase', 'migrations');
  return fs.readdirSync(dir).filter((f) => f.endsWith('.sql')).sort().map((f) => path.join(dir, f));
}

/** The plain-Postgres auth fixture, then every migration, in the database `client` is connected to. */
export async function applySchema(client: Client): Promise<void> {
  await client.query(fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'plain-postgres-auth.sql'), 'utf8'));
  for (const file of migrationFiles()) {
    try {
      await client.query(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      throw new Error(`migration ${path.basename(file)} failed: ${(err as Error).message}`);
    }
  }
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
