// The provider keys a person set with 'EXAI: Set Provider Key', kept in VS Code's SecretStorage (the
// OS keychain on desktop; never settings.json). Plain Node, no 'vscode': the extension passes its
// context.secrets in. One secret per provider, `exai.providerKey.<provider>`, holding JSON
// {"apiKey": "...", "baseUrl"?: "..."}. The daemon gets them over the window's own connection
// (WindowConnection.pushProviderKeys); see server/tools/providerKeys.ts for why that channel.
import type { ProviderKeyName } from '../../server/protocol';

export interface StoredProviderKey {
  /** Empty only for a custom endpoint that needs none (a local server such as Ollama). */
  apiKey: string;
  /** The custom endpoint's base URL (required there); absent for GLM and Kimi (their default endpoints). */
  baseUrl?: string;
}

/** The part of vscode.SecretStorage used here. */
export interface SecretStorageLike {
  get(key: string): PromiseLike<string | undefined>;
  store(key: string, value: string): PromiseLike<void>;
  delete(key: string): PromiseLike<void>;
}

export const PROVIDER_KEY_NAMES: readonly ProviderKeyName[] = ['glm', 'kimi', 'custom'];

export const PROVIDER_LABEL: Record<ProviderKeyName, string> = {
  glm: 'GLM (Z.ai)',
  kimi: 'Kimi (Moonshot)',
  custom: 'Custom OpenAI-compatible endpoint',
};

const PREFIX = 'exai.providerKey.';

/** The provider a SecretStorage key names, or null when it is not one of ours. */
export function providerOfSecret(secretKey: string): ProviderKeyName | null {
  const name = secretKey.startsWith(PREFIX) ? secretKey.slice(PREFIX.length) : '';
  return (PROVIDER_KEY_NAMES as readonly string[]).includes(name) ? (name as ProviderKeyName) : null;
}

export class ProviderKeyStore {
  constructor(private readonly secrets: SecretStorageLike) {}

  /** The stored key of `provider`, or null (also for an entry that is not ours to read). */
  async get(provider: ProviderKeyName): Promise<StoredProviderKey | null> {
    const raw = await this.secrets.get(PREFIX + provider);
    if (!raw) return null;
    try {
      const value = JSON.parse(raw) as Partial<StoredProviderKey>;
      if (typeof value.apiKey !== 'string') return null;
      return typeof value.baseUrl === 'string' ? { apiKey: value.apiKey, baseUrl: value.baseUrl } : { apiKey: value.apiKey };
    } catch {
      return null;
    }
  }

  /** Every stored key, in a fixed order. */
  async all(): Promise<[ProviderKeyName, StoredProviderKey][]> {
    const out: [ProviderKeyName, StoredProviderKey][] = [];
    for (const name of PROVIDER_KEY_NAMES) {
      const key = await this.get(name);
      if (key) out.push([name, key]);
    }
    return out;
  }

  async set(provider: ProviderKeyName, key: StoredProviderKey): Promise<void> {
    await this.secrets.store(PREFIX + provider, JSON.stringify(key.baseUrl ? { apiKey: key.apiKey, baseUrl: key.baseUrl } : { apiKey: key.apiKey }));
  }

  async remove(provider: ProviderKeyName): Promise<void> {
    await this.secrets.delete(PREFIX + provider);
  }
}
