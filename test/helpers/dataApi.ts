// A Supabase Data API to test the DataApiSessionStore against: a fresh database with the
// migrations, the GoTrue-compatible auth server, and the PostgREST stand-in in front of the
// database; two stores (two "daemons"); users signed in for real, as the daemon would see them.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Identity } from '../../server/auth/identity';
import { SupabaseJwtVerifier } from '../../server/auth/verifier';
import { DataApiSessionStore } from '../../server/sessions/dataApiStore';
import { startAuthServer, type AuthServer } from '../auth-server/server';
import { startPostgrest, type Postgrest } from '../postgrest/server';
import { createTestDatabase, type TestDatabase } from './pg';

export interface DataApiFixture {
  db: TestDatabase;
  auth: AuthServer;
  rest: Postgrest;
  stores: [DataApiSessionStore, DataApiSessionStore];
  /** A new confirmed user, signed in with a password: the Identity the daemon would pass to its store. */
  newUser(): Promise<Identity>;
  close(): Promise<void>;
}

export async function startDataApiFixture(): Promise<DataApiFixture> {
  const db = await createTestDatabase();
  const auth = await startAuthServer();
  const rest = await startPostgrest({
    databaseUrl: db.url,
    jwksUrl: `${auth.url}/auth/v1/.well-known/jwks.json`,
    jwtSecret: auth.jwtSecret,
    anonKey: auth.anonKey,
    serviceRoleKey: auth.serviceRoleKey,
  });
  const verifier = new SupabaseJwtVerifier({ supabaseUrl: auth.url });
  const stores: [DataApiSessionStore, DataApiSessionStore] = [
    new DataApiSessionStore({ supabaseUrl: rest.url, anonKey: auth.anonKey }),
    new DataApiSessionStore({ supabaseUrl: rest.url, anonKey: auth.anonKey }),
  ];
  return {
    db, auth, rest, stores,
    async newUser() {
      const email = `u-${randomUUID().slice(0, 8)}@example.test`;
      const password = `pw-${randomUUID()}`;
      const user = auth.createUser({ email, password });
      await db.addUser(user.id, email);
      const res = await fetch(`${auth.url}/auth/v1/token?grant_type=password`, {
        method: 'POST',
        headers: { apikey: auth.anonKey, 'Content-Type': 'application/json' },
        body: JSON.stringify({ email, password }),
      });
      assert.equal(res.status, 200, await res.clone().text());
      const { access_token } = (await res.json()) as { access_token: string };
      return verifier.verify(access_token);
    },
    async close() {
      await Promise.all(stores.map((s) => s.end()));
      await rest.close();
      await auth.close();
      await db.drop();
    },
  };
}
