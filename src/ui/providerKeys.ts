// 'EXAI: Set Provider Key': pick a provider (GLM, Kimi, a custom OpenAI-compatible endpoint with its
// base URL, e.g. a local Ollama) or "Remove a provider key", type the key in a password box; the key
// goes to VS Code's SecretStorage (never settings.json) and to the daemon on this machine over the
// window's own connection, which uses it at once (no restart of VS Code or the daemon).
// Several windows share one local daemon: the last key set wins; every window gives the daemon the
// keys it holds when it connects, and again when its secret storage reports a change.
import * as vscode from 'vscode';
import type { ConfiguredProvider, ProviderKeyName } from '../../server/protocol';
import { PROVIDER_KEY_NAMES, PROVIDER_LABEL, providerOfSecret, type ProviderKeyStore, type StoredProviderKey } from '../daemon/providerKeyStore';
import type { WindowConnection } from '../daemon/windowConnection';
import type { WindowLog } from './log';

export const SET_PROVIDER_KEY_COMMAND = 'exai.setProviderKey';
/** Context key: this window holds at least one provider key (the walkthrough step shows as done). */
export const PROVIDER_KEY_CONTEXT = 'exai.providerKeyConfigured';
const OLLAMA_URL = 'http://127.0.0.1:11434/v1';

interface Deps {
  store: ProviderKeyStore;
  secrets: vscode.SecretStorage;
  connection(): WindowConnection | null;
  log: WindowLog;
}

export function registerProviderKeys(deps: Deps): vscode.Disposable[] {
  void updateContext(deps);
  return [
    vscode.commands.registerCommand(SET_PROVIDER_KEY_COMMAND, () => setProviderKey(deps)),
    // Another window (desktop shares the keychain) set or removed a key: give the daemon this
    // window's view too, so every window agrees with what the daemon uses.
    deps.secrets.onDidChange((e) => {
      const provider = providerOfSecret(e.key);
      if (provider) void pushOne(deps, provider, { quiet: true });
    }),
  ];
}

type Choice = vscode.QuickPickItem & { provider?: ProviderKeyName; remove?: true };

async function setProviderKey(deps: Deps): Promise<void> {
  const connection = deps.connection();
  if (connection?.mode === 'supabase') {
    void vscode.window.showInformationMessage('EXAI: this window uses a shared daemon (Supabase accounts), which uses the provider keys of its own environment. Ask its operator to configure the provider; keys set here would not reach it.');
    return;
  }
  const stored = new Map(await deps.store.all());
  const items: Choice[] = [
    ...PROVIDER_KEY_NAMES.map((provider): Choice => ({
      label: PROVIDER_LABEL[provider],
      description: stored.has(provider) ? 'set — choose to replace' : undefined,
      detail: provider === 'glm' ? 'glm-* models' : provider === 'kimi' ? 'kimi-* and moonshot-* models' : 'any OpenAI-compatible server, e.g. a local Ollama: every other model',
      provider,
    })),
    { label: 'Remove a provider key', remove: true, description: stored.size === 0 ? 'none set' : undefined },
  ];
  const picked = await vscode.window.showQuickPick(items, { title: 'EXAI: Set Provider Key', placeHolder: 'Which model provider?', ignoreFocusOut: true });
  if (!picked) return;
  if (picked.remove) return removeKey(deps, stored);
  const provider = picked.provider!;

  let baseUrl: string | undefined;
  if (provider === 'custom') {
    baseUrl = (await vscode.window.showInputBox({
      title: `EXAI: ${PROVIDER_LABEL.custom} (1 of 2)`,
      prompt: 'The base URL of the OpenAI-compatible API (it serves /chat/completions and /models)',
      value: stored.get('custom')?.baseUrl ?? OLLAMA_URL,
      ignoreFocusOut: true,
      validateInput: baseUrlProblem,
    }))?.trim().replace(/\/+$/, '');
    if (!baseUrl) return;
  }
  const apiKey = await vscode.window.showInputBox({
    title: `EXAI: ${PROVIDER_LABEL[provider]}${provider === 'custom' ? ' (2 of 2)' : ''}`,
    prompt: provider === 'custom' ? 'The API key (leave empty for a local server that needs none, such as Ollama)' : `The ${PROVIDER_LABEL[provider]} API key`,
    password: true,
    ignoreFocusOut: true,
    validateInput: (value) => keyProblem(provider, value),
  });
  if (apiKey === undefined) return;
  const key: StoredProviderKey = { apiKey: apiKey.trim(), ...(baseUrl ? { baseUrl } : {}) };
  deps.log.addSecret(key.apiKey);
  try {
    await deps.store.set(provider, key);
  } catch (err) {
    void vscode.window.showErrorMessage(`EXAI: could not save the key in VS Code's secret storage (${(err as Error).message}); nothing was changed. Check that the OS keychain is unlocked, then try again.`);
    return;
  }
  await pushOne(deps, provider, { quiet: false });
}

async function removeKey(deps: Deps, stored: Map<ProviderKeyName, StoredProviderKey>): Promise<void> {
  if (stored.size === 0) {
    void vscode.window.showInformationMessage('EXAI: no provider key is set in this window. Run \'EXAI: Set Provider Key\' to set one.');
    return;
  }
  const picked = await vscode.window.showQuickPick(
    [...stored.keys()].map((provider) => ({ label: PROVIDER_LABEL[provider], provider })),
    { title: 'EXAI: Remove a provider key', placeHolder: 'Whose key should EXAI forget?', ignoreFocusOut: true },
  );
  if (!picked) return;
  await deps.store.remove(picked.provider);
  await pushOne(deps, picked.provider, { quiet: false });
}

/** Gives the daemon what the store now holds for `provider` (its key, or its removal) and says how it went. */
async function pushOne(deps: Deps, provider: ProviderKeyName, opts: { quiet: boolean }): Promise<void> {
  void updateContext(deps);
  const connection = deps.connection();
  if (!connection || connection.mode !== 'local') return;
  const key = await deps.store.get(provider);
  if (key) deps.log.addSecret(key.apiKey);
  const what = `the ${PROVIDER_LABEL[provider]} key`;
  let providers: ConfiguredProvider[];
  try {
    providers = await connection.setProviderKey(provider, key);
  } catch (err) {
    deps.log.warn(`could not give the daemon ${what}: ${(err as Error).message}`);
    if (!opts.quiet) {
      void vscode.window.showWarningMessage(`EXAI: ${what} is ${key ? 'saved' : 'removed'} in VS Code, but the daemon has not taken it yet: ${(err as Error).message} It is given to the daemon each time this window connects.`, 'Show Log')
        .then((choice) => choice && deps.log.show());
    }
    return;
  }
  deps.log.info(`the daemon ${key ? 'uses' : 'no longer uses'} ${what}; its providers: ${providers.map((p) => p.name).join(', ') || 'none'}`);
  if (!opts.quiet) {
    void vscode.window.showInformationMessage(key
      ? `EXAI: ${what} is set; the daemon uses it from now on. Run 'EXAI: Try a Tool' → listmodels to see its models.`
      : `EXAI: ${what} is removed; the daemon now has ${providers.length ? providers.map((p) => p.name).join(', ') : 'no provider'}.`);
  }
}

async function updateContext(deps: Deps): Promise<void> {
  const configured = (await deps.store.all().catch(() => [])).length > 0;
  await vscode.commands.executeCommand('setContext', PROVIDER_KEY_CONTEXT, configured);
}

function baseUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return 'Give the API\'s base URL, e.g. http://127.0.0.1:11434/v1 (Ollama) or https://api.openai.com/v1.';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'The base URL must start with https:// (or http:// for a local server).';
  if (url.username || url.password) return 'Leave the user name and password out of the URL; give the key in the next step.';
  return undefined;
}

function keyProblem(provider: ProviderKeyName, value: string): string | undefined {
  const key = value.trim();
  if (key === '') return provider === 'custom' ? undefined : `Paste the ${PROVIDER_LABEL[provider]} API key from the provider's console.`;
  if (!/^[\x21-\x7e]+$/.test(key)) return 'The key contains spaces or characters outside printable ASCII; paste it exactly as the provider shows it.';
  return undefined;
}
