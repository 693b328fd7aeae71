// Provider keys a local client hands the daemon at run time (set_provider_key / remove_provider_key).
//
// Why this channel: the daemon the extension spawns inherits only a whitelisted environment, and an
// environment variable is readable by every process of the same OS user (/proc/<pid>/environ), argv
// by everyone (ps). Instead the window sends the key over its own WebSocket, after its hello with the
// local secret (daemon.json, mode 0600) on a loopback-only port that refuses any Origin: only a
// process that can read that file can set a key, and the key lives only in the daemon's memory. It
// also takes effect at once, without restarting the daemon or VS Code.
//
// Only in local mode: a supabase-mode (team-hosted) daemon keeps the keys of its own environment,
// and no user may replace them (the connection refuses the ops with not_allowed).
// Several windows share one local daemon: the last key set for a provider wins; each window sends
// the keys it holds when it connects and when they change.
import { GLM_DEFAULT_URL, KIMI_DEFAULT_URL, type ProviderEndpoint } from '../config';
import type { Logger } from '../log';
import type { ConfiguredProvider, ProviderKeyName } from '../protocol';
import type { Providers } from './providers';

/** Keys registered with the log's redactor beyond the ones in use (replaced keys stay redacted for a while). */
const MAX_RETIRED_KEYS = 16;

const LABEL: Record<ProviderKeyName, string> = { glm: 'GLM (Z.ai)', kimi: 'Kimi (Moonshot)', custom: 'OpenAI-compatible endpoint' };
const DEFAULT_URL: Partial<Record<ProviderKeyName, string>> = { glm: GLM_DEFAULT_URL, kimi: KIMI_DEFAULT_URL };

/** A key or URL a client sent that cannot be used; the message never quotes the key. */
export class ProviderKeyRejected extends Error {
  override name = 'ProviderKeyRejected';
}

export interface SecretRegistry {
  addSecret(value: string | null | undefined): void;
  removeSecret(value: string): void;
}

export class RuntimeProviderKeys {
  /** Keys no longer in use, oldest first, still redacted from the log (bounded). */
  private readonly retired: string[] = [];

  constructor(
    private readonly providers: Providers,
    private readonly redactor: SecretRegistry,
    private readonly log: Logger,
  ) {}

  set(provider: ProviderKeyName, apiKey: string, baseUrl: string | undefined): ConfiguredProvider[] {
    const key = apiKey.trim();
    if (key === '' && provider !== 'custom') throw new ProviderKeyRejected(`The ${LABEL[provider]} key is empty; paste the API key from the provider's console.`);
    // Sent as an HTTP header: anything but visible ASCII would break the request (or inject a header).
    if (key !== '' && !/^[\x21-\x7e]+$/.test(key)) throw new ProviderKeyRejected(`The ${LABEL[provider]} key contains spaces or characters outside printable ASCII; paste the key exactly as the provider shows it.`);
    const url = endpointUrl(provider, baseUrl);
    const endpoint: ProviderEndpoint = {
      name: provider, baseUrl: url, apiKey: key || null, fromClient: true,
      keyEnv: `the ${LABEL[provider]} key`, urlEnv: `the ${LABEL[provider]} base URL set with 'EXAI: Set Provider Key'`,
    };
    this.redactor.addSecret(endpoint.apiKey); // before anything could log it
    const previous = this.providers.endpoint(provider);
    if (previous?.apiKey !== endpoint.apiKey) this.retire(previous); // windows re-give the same key on every connect
    this.providers.setEndpoint(endpoint);
    this.log.info('provider key set by a local client', { provider, host: new URL(url).host, with_key: endpoint.apiKey !== null });
    return this.providers.describe();
  }

  remove(provider: ProviderKeyName): ConfiguredProvider[] {
    this.retire(this.providers.endpoint(provider));
    this.providers.removeEndpoint(provider);
    this.log.info('provider key removed by a local client', { provider, now: this.providers.endpoint(provider) ? 'the environment\'s' : 'not configured' });
    return this.providers.describe();
  }

  private retire(endpoint: ProviderEndpoint | undefined): void {
    if (!endpoint?.fromClient || !endpoint.apiKey) return;
    this.retired.push(endpoint.apiKey);
    while (this.retired.length > MAX_RETIRED_KEYS) {
      const old = this.retired.shift()!;
      if (!this.inUse(old) && !this.retired.includes(old)) this.redactor.removeSecret(old);
    }
  }

  private inUse(key: string): boolean {
    return (['glm', 'kimi', 'custom'] as const).some((n) => this.providers.endpoint(n)?.apiKey === key);
  }
}

function endpointUrl(provider: ProviderKeyName, raw: string | undefined): string {
  const text = raw?.trim() || DEFAULT_URL[provider];
  if (!text) throw new ProviderKeyRejected('A custom OpenAI-compatible endpoint needs its base URL (e.g. http://127.0.0.1:11434/v1 for Ollama, or https://api.openai.com/v1).');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ProviderKeyRejected(`The base URL of the ${LABEL[provider]} is not a valid URL; give the OpenAI-compatible base URL, e.g. https://api.example.com/v1.`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ProviderKeyRejected(`The base URL of the ${LABEL[provider]} must start with https:// (or http:// for a local server).`);
  if (url.username || url.password) throw new ProviderKeyRejected(`The base URL of the ${LABEL[provider]} must not contain a user name or password; give the key as the key.`);
  return text.replace(/\/+$/, '');
}
