// Users and identities of the test server, in memory, serialised like GoTrue's models.User.
//
// Source: supabase/auth v2.196.0 internal/models/user.go (User JSON tags), identity.go (Identity
// JSON: `identity_id` is the row id, `id` is the provider's user id), api/admin.go adminUserCreate
// (app_metadata `{provider, providers}`), api/signup.go. Emails are stored lower-cased (NewUser).
import crypto from 'node:crypto';

export interface Identity {
  identityId: string;
  providerId: string;
  provider: string;
  identityData: Record<string, unknown>;
  email: string | null;
  createdAt: number;
  updatedAt: number;
  lastSignInAt: number | null;
}

export interface UserRecord {
  id: string;
  aud: 'authenticated';
  role: string;
  email: string;
  phone: string;
  passwordHash: string | null;
  emailConfirmedAt: number | null;
  confirmationSentAt: number | null;
  recoverySentAt: number | null;
  lastSignInAt: number | null;
  appMetadata: { provider: string; providers: string[]; [k: string]: unknown };
  userMetadata: Record<string, unknown>;
  identities: Identity[];
  createdAt: number;
  updatedAt: number;
  /** Hashed OTPs, as GoTrue's confirmation_token / recovery_token columns (`pkce_` prefix for PKCE). */
  confirmationToken: string;
  recoveryToken: string;
}

/** The User JSON GoTrue returns (fields with `omitempty` are left out when empty). */
export interface UserJson {
  id: string;
  aud: string;
  role: string;
  email: string;
  email_confirmed_at?: string;
  phone: string;
  confirmation_sent_at?: string;
  confirmed_at?: string;
  recovery_sent_at?: string;
  last_sign_in_at?: string;
  app_metadata: Record<string, unknown>;
  user_metadata: Record<string, unknown>;
  identities: Array<Record<string, unknown>>;
  created_at: string;
  updated_at: string;
  is_anonymous: boolean;
}

const iso = (ms: number | null | undefined) => (ms == null ? undefined : new Date(ms).toISOString());

function hashPassword(password: string): string {
  const salt = crypto.randomBytes(16);
  const hash = crypto.scryptSync(password, salt, 32, { N: 1024 });
  return `${salt.toString('hex')}:${hash.toString('hex')}`;
}

function checkPassword(password: string, stored: string): boolean {
  const [saltHex, hashHex] = stored.split(':');
  const hash = crypto.scryptSync(password, Buffer.from(saltHex, 'hex'), 32, { N: 1024 });
  return crypto.timingSafeEqual(hash, Buffer.from(hashHex, 'hex'));
}

export interface NewUser {
  email: string;
  password?: string | null;
  confirmed: boolean;
  userMetadata?: Record<string, unknown>;
  appMetadata?: Record<string, unknown>;
  id?: string;
  role?: string;
  /** The first identity (default: email). */
  provider?: string;
  providerId?: string;
  identityData?: Record<string, unknown>;
}

export class UserStore {
  private readonly byId = new Map<string, UserRecord>();

  constructor(private readonly now: () => number) {}

  get(id: string): UserRecord | undefined {
    return this.byId.get(id);
  }

  findByEmail(email: string): UserRecord | undefined {
    const e = email.trim().toLowerCase();
    for (const u of this.byId.values()) if (u.email === e) return u;
    return undefined;
  }

  all(): UserRecord[] {
    return [...this.byId.values()];
  }

  delete(id: string): boolean {
    return this.byId.delete(id);
  }

  create(n: NewUser): UserRecord {
    const t = this.now();
    const id = n.id ?? crypto.randomUUID();
    const email = n.email.trim().toLowerCase();
    const provider = n.provider ?? 'email';
    const user: UserRecord = {
      id,
      aud: 'authenticated',
      role: n.role ?? 'authenticated',
      email,
      phone: '',
      passwordHash: n.password ? hashPassword(n.password) : null,
      emailConfirmedAt: n.confirmed ? t : null,
      confirmationSentAt: null,
      recoverySentAt: null,
      lastSignInAt: null,
      appMetadata: { ...n.appMetadata, provider, providers: [provider] },
      userMetadata: { ...n.userMetadata },
      identities: [],
      createdAt: t,
      updatedAt: t,
      confirmationToken: '',
      recoveryToken: '',
    };
    const identityData =
      n.identityData ?? { sub: id, email, email_verified: n.confirmed, phone_verified: false };
    this.addIdentity(user, provider, n.providerId ?? id, identityData);
    this.byId.set(id, user);
    return user;
  }

  addIdentity(user: UserRecord, provider: string, providerId: string, identityData: Record<string, unknown>): Identity {
    const t = this.now();
    const identity: Identity = {
      identityId: crypto.randomUUID(),
      providerId,
      provider,
      identityData,
      email: typeof identityData.email === 'string' ? identityData.email.toLowerCase() : null,
      createdAt: t,
      updatedAt: t,
      lastSignInAt: t,
    };
    user.identities.push(identity);
    // UpdateAppMetaDataProviders: every identity's provider, de-duplicated.
    user.appMetadata.providers = [...new Set(user.identities.map((i) => i.provider))];
    user.updatedAt = t;
    return identity;
  }

  setPassword(user: UserRecord, password: string): void {
    user.passwordHash = hashPassword(password);
    user.updatedAt = this.now();
  }

  passwordMatches(user: UserRecord, password: string): boolean {
    return user.passwordHash !== null && checkPassword(password, user.passwordHash);
  }

  /** user.Confirm: sets email_confirmed_at and clears the confirmation token. */
  confirm(user: UserRecord): void {
    const t = this.now();
    user.emailConfirmedAt ??= t;
    user.confirmationToken = '';
    user.updatedAt = t;
    for (const i of user.identities) if (i.provider === 'email') i.identityData = { ...i.identityData, email_verified: true };
    if (!('email_verified' in user.userMetadata) || user.userMetadata.email_verified === false) {
      user.userMetadata = { ...user.userMetadata, email_verified: true };
    }
  }

  toJson(user: UserRecord): UserJson {
    const json: UserJson = {
      id: user.id,
      aud: user.aud,
      role: user.role,
      email: user.email,
      email_confirmed_at: iso(user.emailConfirmedAt),
      phone: user.phone,
      confirmation_sent_at: iso(user.confirmationSentAt),
      confirmed_at: iso(user.emailConfirmedAt),
      recovery_sent_at: iso(user.recoverySentAt),
      last_sign_in_at: iso(user.lastSignInAt),
      app_metadata: { ...user.appMetadata },
      user_metadata: { ...user.userMetadata },
      identities: user.identities.map((i) => ({
        identity_id: i.identityId,
        id: i.providerId,
        user_id: user.id,
        identity_data: { ...i.identityData },
        provider: i.provider,
        last_sign_in_at: iso(i.lastSignInAt),
        created_at: iso(i.createdAt),
        updated_at: iso(i.updatedAt),
        ...(i.email ? { email: i.email } : {}),
      })),
      created_at: iso(user.createdAt)!,
      updated_at: iso(user.updatedAt)!,
      is_anonymous: false,
    };
    for (const k of Object.keys(json) as Array<keyof UserJson>) if (json[k] === undefined) delete json[k];
    return json;
  }
}
