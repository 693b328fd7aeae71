// What the contract tests run against: the in-process test server, or a real Supabase project when
// SUPABASE_URL, SUPABASE_ANON_KEY and SUPABASE_SERVICE_ROLE_KEY are set. Test users are created with
// the admin API (service key) in both cases and deleted again by close().
import crypto from 'node:crypto';
import { createClient, type SupabaseClient, type SupabaseClientOptions } from '@supabase/supabase-js';
import { type AuthServer, type AuthServerOptions, startAuthServer } from './server';

export interface MemoryStorage {
  map: Map<string, string>;
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export function memoryStorage(): MemoryStorage {
  const map = new Map<string, string>();
  return {
    map,
    getItem: (k) => map.get(k) ?? null,
    setItem: (k, v) => void map.set(k, v),
    removeItem: (k) => void map.delete(k),
  };
}

export interface TestAccount {
  id: string;
  email: string;
  password: string;
}

export interface Target {
  kind: 'test-server' | 'real-project';
  /** SUPABASE_URL without a trailing slash. */
  url: string;
  issuer: string;
  anonKey: string;
  serviceRoleKey: string;
  /** The test server (undefined on a real project). */
  server: AuthServer | undefined;
  /** A client with the service key (admin API). */
  admin: SupabaseClient;
  /** A fresh client with its own in-memory storage, as an extension window would have. */
  client(opts?: { storageKey?: string; flowType?: 'pkce' | 'implicit' }): { supabase: SupabaseClient; storage: MemoryStorage; storageKey: string };
  /** Creates a user through POST /auth/v1/admin/users (service key). */
  createAccount(opts?: { confirmed?: boolean; label?: string }): Promise<TestAccount>;
  /** Deletes the accounts created, closes the test server. */
  close(): Promise<void>;
}

let clientCounter = 0;

function clientOptions(storage: MemoryStorage, storageKey: string, flowType: 'pkce' | 'implicit'): SupabaseClientOptions<'public'> {
  return { auth: { storage, storageKey, autoRefreshToken: false, persistSession: true, detectSessionInUrl: false, flowType } };
}

async function makeTarget(kind: Target['kind'], url: string, anonKey: string, serviceRoleKey: string, server: AuthServer | undefined): Promise<Target> {
  const adminStorage = memoryStorage();
  const admin = createClient(url, serviceRoleKey, {
    auth: { storage: adminStorage, storageKey: 'exai-contract-admin', autoRefreshToken: false, persistSession: false, detectSessionInUrl: false },
  });
  const created: string[] = [];
  const runId = crypto.randomBytes(3).toString('hex');
  return {
    kind,
    url,
    issuer: `${url}/auth/v1`,
    anonKey,
    serviceRoleKey,
    server,
    admin,
    client(opts = {}) {
      const storage = memoryStorage();
      const storageKey = opts.storageKey ?? `exai-contract-${++clientCounter}`;
      return { supabase: createClient(url, anonKey, clientOptions(storage, storageKey, opts.flowType ?? 'pkce')), storage, storageKey };
    },
    async createAccount(opts = {}) {
      const email = `exai-contract-${runId}-${opts.label ?? 'user'}-${crypto.randomBytes(3).toString('hex')}@example.com`;
      const password = `Pw-${crypto.randomBytes(12).toString('base64url')}`;
      const { data, error } = await admin.auth.admin.createUser({ email, password, email_confirm: opts.confirmed ?? true });
      if (error || !data.user) throw new Error(`admin createUser failed: ${error?.message ?? 'no user'}`);
      created.push(data.user.id);
      return { id: data.user.id, email, password };
    },
    async close() {
      for (const id of created.splice(0)) await admin.auth.admin.deleteUser(id);
      await server?.close();
    },
  };
}

/** A real Supabase project from SUPABASE_URL / SUPABASE_ANON_KEY / SUPABASE_SERVICE_ROLE_KEY. */
export function realProject(): Promise<Target> {
  const url = (process.env.SUPABASE_URL ?? '').replace(/\/+$/, '');
  const anonKey = process.env.SUPABASE_ANON_KEY ?? '';
  const serviceRoleKey = process.env.SUPABASE_SERVICE_ROLE_KEY ?? '';
  if (!url || !anonKey || !serviceRoleKey) {
    throw new Error('SUPABASE_URL, SUPABASE_ANON_KEY and SUPABASE_SERVICE_ROLE_KEY must all be set to run against a real project');
  }
  return makeTarget('real-project', url, anonKey, serviceRoleKey, undefined);
}

export async function testServerTarget(options: AuthServerOptions = {}): Promise<Target> {
  const server = await startAuthServer(options);
  return makeTarget('test-server', server.url, server.anonKey, server.serviceRoleKey, server);
}
