// The chat tool's model providers: OpenAI-compatible endpoints (the `openai` SDK), chosen by model
// name. A custom endpoint (EXAI_PROVIDER_BASE_URL), and the original daemon's two when their keys are
// set: Kimi / Moonshot (kimi-*, moonshot-*) and GLM / Z.ai (glm-*).
//
// Deliberately absent: any response cache (the original's prompt-keyed caches served one user's answer
// to another), and retries (one upstream request per call, bounded by EXAI_PROVIDER_TIMEOUT_SECONDS from
// connect to the last streamed chunk, so a call can never hang for the original's unread-env 300 s).
// API keys are only ever handed to the SDK; every message below names the variable, never the value.
import OpenAI from 'openai';
import type { ProviderEndpoint, ProviderSettings } from '../config';
import { ToolError } from './registry';

export const ProviderErrorCode = {
  notConfigured: 'provider_not_configured',
  keyRejected: 'provider_key_rejected',
  modelNotFound: 'model_not_found',
  rateLimited: 'rate_limited',
  unavailable: 'provider_unavailable',
  timeout: 'provider_timeout',
  rejected: 'provider_error',
} as const;

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
  /** The caller's cancel; aborting it aborts the upstream HTTP request. */
  signal: AbortSignal;
  /** Each piece of streamed text, as it arrives. */
  onText(delta: string): void;
}

export interface ResolvedModel {
  endpoint: ProviderEndpoint;
  model: string;
}

/** Which provider serves a model name. */
function familyOf(model: string): 'kimi' | 'glm' | null {
  if (/^(kimi|moonshot)-/i.test(model)) return 'kimi';
  if (/^glm-/i.test(model)) return 'glm';
  return null;
}

const FAMILY_ENV = { kimi: 'KIMI_API_KEY', glm: 'GLM_API_KEY' } as const;

export class Providers {
  private readonly clients = new Map<string, OpenAI>();

  constructor(readonly settings: ProviderSettings) {}

  get configured(): boolean {
    return this.settings.endpoints.length > 0;
  }

  /** Names only (for the log): never a key. */
  describe(): { name: string; host: string }[] {
    return this.settings.endpoints.map((e) => ({ name: e.name, host: safeHost(e.baseUrl) }));
  }

  /**
   * The endpoint for `model` (or the default model). kimi-* / moonshot-* go to Kimi and glm-* to GLM
   * when their keys are set; everything else (and those, when only a custom endpoint exists) to the
   * custom endpoint. Throws a ToolError that says which variable to set.
   */
  resolve(requested: string | undefined): ResolvedModel {
    const model = requested?.trim() || this.settings.defaultModel || this.fallbackModel();
    if (!model) {
      throw new ToolError(ProviderErrorCode.notConfigured,
        'No model provider is configured on this daemon. Set EXAI_PROVIDER_BASE_URL and EXAI_PROVIDER_API_KEY (any OpenAI-compatible endpoint) with EXAI_DEFAULT_MODEL, or KIMI_API_KEY, or GLM_API_KEY, and restart the daemon.');
    }
    const family = familyOf(model);
    const byName = (name: ProviderEndpoint['name']) => this.settings.endpoints.find((e) => e.name === name);
    const endpoint = (family && byName(family)) || byName('custom');
    if (endpoint) return { endpoint, model };
    if (family) {
      throw new ToolError(ProviderErrorCode.notConfigured,
        `The model "${model}" needs the ${family === 'kimi' ? 'Kimi (Moonshot)' : 'GLM (Z.ai)'} provider, which is not configured on this daemon: set ${FAMILY_ENV[family]} (or EXAI_PROVIDER_BASE_URL for an OpenAI-compatible endpoint that serves it) and restart the daemon.`);
    }
    const known = this.settings.endpoints.map((e) => (e.name === 'kimi' ? 'kimi-* / moonshot-*' : 'glm-*')).join(', ');
    throw new ToolError(ProviderErrorCode.notConfigured,
      `No configured provider serves the model "${model}"${known ? ` (this daemon serves ${known})` : ''}. Use one of those models, or set EXAI_PROVIDER_BASE_URL and EXAI_PROVIDER_API_KEY to an OpenAI-compatible endpoint that serves it.`);
  }

  /** Streams one chat completion; resolves with the whole text. Errors are ToolErrors with one clear sentence. */
  async chat(resolved: ResolvedModel, request: ChatRequest): Promise<string> {
    const { endpoint, model } = resolved;
    const timeoutMs = this.settings.timeoutSec * 1000;
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any([request.signal, deadline]);
    let text = '';
    try {
      const stream = await this.client(endpoint).chat.completions.create(
        {
          model,
          messages: request.messages,
          stream: true,
          ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
        },
        { signal, timeout: timeoutMs, maxRetries: 0 },
      );
      for await (const chunk of stream) {
        const delta = chunk.choices?.[0]?.delta?.content;
        if (typeof delta === 'string' && delta !== '') {
          text += delta;
          request.onText(delta);
        }
      }
    } catch (err) {
      if (request.signal.aborted) throw err; // cancelled by the caller: the registry reports `cancelled`
      throw providerError(err, endpoint, model, deadline.aborted, this.settings.timeoutSec);
    }
    if (request.signal.aborted) throw new Error('aborted');
    if (deadline.aborted) throw timeoutError(endpoint, this.settings.timeoutSec);
    return text;
  }

  private fallbackModel(): string | null {
    // No EXAI_DEFAULT_MODEL: the original daemon's defaults for the providers it knew.
    if (this.settings.endpoints.some((e) => e.name === 'glm')) return 'glm-4.5-flash';
    if (this.settings.endpoints.some((e) => e.name === 'kimi')) return 'kimi-k2-0905-preview';
    return null;
  }

  /** One SDK client per endpoint (it holds settings, not answers: nothing is cached across calls). */
  private client(endpoint: ProviderEndpoint): OpenAI {
    let client = this.clients.get(endpoint.name);
    if (!client) {
      client = new OpenAI({
        apiKey: endpoint.apiKey ?? 'no-key',
        baseURL: endpoint.baseUrl,
        maxRetries: 0,
        timeout: this.settings.timeoutSec * 1000,
        logLevel: 'off',
      });
      this.clients.set(endpoint.name, client);
    }
    return client;
  }
}

function label(endpoint: ProviderEndpoint): string {
  const name = endpoint.name === 'kimi' ? 'Kimi (Moonshot)' : endpoint.name === 'glm' ? 'GLM (Z.ai)' : 'model';
  return `The ${name} provider at ${safeHost(endpoint.baseUrl)}`;
}

function timeoutError(endpoint: ProviderEndpoint, timeoutSec: number): ToolError {
  return new ToolError(ProviderErrorCode.timeout,
    `${label(endpoint)} did not finish answering within ${timeoutSec} s (EXAI_PROVIDER_TIMEOUT_SECONDS); try again, ask for a shorter answer, or raise that setting.`);
}

/** Maps an SDK failure to one sentence. Nothing from the request (headers hold the key) is echoed. */
export function providerError(err: unknown, endpoint: ProviderEndpoint, model: string, timedOut: boolean, timeoutSec: number): ToolError {
  if (err instanceof ToolError) return err;
  if (timedOut || err instanceof OpenAI.APIConnectionTimeoutError) return timeoutError(endpoint, timeoutSec);
  const who = label(endpoint);
  if (err instanceof OpenAI.APIError && typeof err.status === 'number') {
    const status = err.status;
    if (status === 401 || status === 403) {
      return new ToolError(ProviderErrorCode.keyRejected,
        `${who} rejected the API key (HTTP ${status}); check ${endpoint.keyEnv} and restart the daemon.`);
    }
    if (status === 404) {
      return new ToolError(ProviderErrorCode.modelNotFound,
        `${who} does not know the model "${model}" (HTTP 404); check the model name (or EXAI_DEFAULT_MODEL), and that ${endpoint.urlEnv} is the API's base URL.`);
    }
    if (status === 429) {
      const retryAfter = Number(err.headers?.get('retry-after'));
      const when = Number.isFinite(retryAfter) && retryAfter > 0 ? `retry in about ${Math.ceil(retryAfter)} s` : 'retry later';
      return new ToolError(ProviderErrorCode.rateLimited, `${who} is rate limiting this daemon's key (HTTP 429); ${when}.`);
    }
    if (status >= 500) {
      return new ToolError(ProviderErrorCode.unavailable, `${who} failed (HTTP ${status}); try again shortly.`);
    }
    const detail = upstreamMessage(err, endpoint);
    return new ToolError(ProviderErrorCode.rejected, `${who} rejected the request for "${model}" (HTTP ${status})${detail ? `: ${detail}` : ''}.`);
  }
  if (err instanceof OpenAI.APIConnectionError || err instanceof OpenAI.APIUserAbortError) {
    return new ToolError(ProviderErrorCode.unavailable,
      `${who} could not be reached (${networkReason(err)}); check ${endpoint.urlEnv} and the network, then try again.`);
  }
  // A stream that broke off mid-answer, or an unexpected body.
  return new ToolError(ProviderErrorCode.unavailable,
    `${who} broke off the answer (${(err as Error)?.name ?? 'error'}); try again.`);
}

/** The provider's own error message (for 400/422: e.g. a temperature out of range), short and without the key. */
function upstreamMessage(err: InstanceType<typeof OpenAI.APIError>, endpoint: ProviderEndpoint): string {
  const body = err.error as { message?: unknown } | undefined;
  let text = typeof body?.message === 'string' ? body.message : '';
  if (endpoint.apiKey) text = text.split(endpoint.apiKey).join('[redacted]');
  text = text.replace(/\s+/g, ' ').trim();
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

function networkReason(err: unknown): string {
  let e: unknown = err;
  for (let i = 0; i < 5 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z_]+$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return 'connection failed';
}

function safeHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'its configured URL';
  }
}
