// The model tools' providers: OpenAI-compatible endpoints (the `openai` SDK), chosen by model
// name. A custom endpoint (EXAI_PROVIDER_BASE_URL), and the original daemon's two when their keys are
// set: Kimi / Moonshot (kimi-*, moonshot-*) and GLM / Z.ai (glm-*).
//
// Under load: each provider runs at most EXAI_PROVIDER_MAX_CONCURRENT requests at once; further calls
// wait in a bounded queue (providerQueue.ts) and are told their place; past the queue's bound they are
// refused with over_capacity at once. One deadline (EXAI_PROVIDER_TIMEOUT_SECONDS) bounds a whole call:
// its wait, its retries and its streamed answer, so a call can never hang for the original's unread-env
// 300 s. Only a 429 or 503 that carries Retry-After is retried, at most EXAI_PROVIDER_MAX_RETRIES times
// and only when the wait fits the deadline; everything else fails at once with its own sentence.
//
// Deliberately absent: any response cache (the original's prompt-keyed caches served one user's answer
// to another). API keys are only ever handed to the SDK; every message names the variable, never the value.
import OpenAI from 'openai';
import type { ProviderEndpoint, ProviderSettings } from '../config';
import type { Logger } from '../log';
import { ProviderQueue, QueueFull, type QueuePosition } from './providerQueue';
import { abortableDelay, ToolError } from './registry';

export const ProviderErrorCode = {
  notConfigured: 'provider_not_configured',
  keyRejected: 'provider_key_rejected',
  modelNotFound: 'model_not_found',
  rateLimited: 'rate_limited',
  unavailable: 'provider_unavailable',
  timeout: 'provider_timeout',
  rejected: 'provider_error',
  overCapacity: 'over_capacity',
  featureUnsupported: 'feature_unsupported',
} as const;

/** Longest answer kept (the thread store refuses longer messages; see mcp_thread_append). */
export const MAX_ANSWER_CHARS = 1_000_000;
/** Kimi web search: how many search rounds one answer may take before we stop asking. */
export const MAX_SEARCH_ROUNDS = 4;
/** Models listed per provider (a /models answer longer than this is cut). */
export const MAX_LISTED_MODELS = 500;
const MAX_TOOL_ARGUMENT_CHARS = 64 * 1024;

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** Provider features the original daemon exposed; each is off unless the caller asks. */
export interface ModelFeatures {
  /** GLM only: `thinking: {type: "enabled" | "disabled"}`; undefined sends nothing (the model's default). */
  thinking?: boolean;
  /** GLM: the server-side `web_search` tool; Kimi: the `$web_search` builtin function. */
  webSearch?: boolean;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
  features?: ModelFeatures;
  /** The caller's cancel; aborting it aborts the upstream HTTP request (or the wait for a slot). */
  signal: AbortSignal;
  /** Each piece of streamed text, as it arrives. */
  onText(delta: string): void;
  /** A notice for the caller: the call waits for a slot, or retries after Retry-After. */
  onNotice?(message: string): void;
  /** Where waits, refusals and retries are logged (never a key). */
  log?: Logger;
  /** Sent as `max_tokens` (the bound a daily budget reserves); undefined sends nothing: the model's own default. */
  maxOutputTokens?: number;
  /** The tokens of each upstream request, as the provider reported them (a Kimi web search makes several). */
  onUsage?(usage: TokenUsage): void;
}

/** One upstream request's tokens, as the provider reported them. */
export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
}

export interface ResolvedModel {
  endpoint: ProviderEndpoint;
  model: string;
}

export type ProviderName = ProviderEndpoint['name'];

/** What listmodels says of every provider this daemon knows, configured or not. */
export interface ProviderCatalogEntry {
  name: ProviderName;
  label: string;
  /** Which model names it serves. */
  serves: string;
  /** The variables that configure it. */
  configure: string;
  /** Models it is known to serve, when it has no /models endpoint (or that fails). */
  knownModels: string[];
  /** Whether it answers GET /models (an OpenAI-compatible list). */
  hasModelsEndpoint: boolean;
  features: (keyof ModelFeatures)[];
}

// Sources for the facts below (read 2026-12):
// - GLM (Z.ai): chat completions at https://api.z.ai/api/paas/v4, `thinking: {"type": "enabled"|"disabled"}`
//   (docs.z.ai/guides/capabilities/thinking-mode), web search inside chat as the tool
//   `{"type": "web_search", "web_search": {"enable": true, "search_engine": "search_pro_jina", "search_result": true}}`
//   (docs.z.ai/api-reference/llm/chat-completion; the original daemon's src/providers/capabilities.py used the same
//   engine). Z.ai documents no GET /models, so its list is the original daemon's known models.
// - Kimi (Moonshot): GET https://api.moonshot.ai/v1/models (platform.kimi.ai/docs/api/list-models); web search is
//   the builtin function `{"type": "builtin_function", "function": {"name": "$web_search"}}`: the model answers
//   with finish_reason "tool_calls" for `$web_search`, and the caller sends the call's arguments back unchanged as
//   a `tool` message, after which Kimi searches and answers (platform.moonshot.ai/docs/guide/use-web-search).
export const PROVIDER_CATALOG: Record<ProviderName, ProviderCatalogEntry> = {
  custom: {
    name: 'custom', label: 'OpenAI-compatible endpoint', serves: 'every model not routed to Kimi or GLM',
    configure: 'Set EXAI_PROVIDER_BASE_URL (e.g. https://api.openai.com/v1, or http://127.0.0.1:11434/v1 for a local server) and EXAI_PROVIDER_API_KEY in the daemon\'s environment, then restart the daemon. With the VS Code extension in local mode: run \'EXAI: Set Provider Key\' (no restart).',
    knownModels: [], hasModelsEndpoint: true, features: [],
  },
  kimi: {
    name: 'kimi', label: 'Kimi (Moonshot)', serves: 'kimi-* and moonshot-* models',
    configure: 'Set KIMI_API_KEY (and KIMI_API_URL for another endpoint than https://api.moonshot.ai/v1) in the daemon\'s environment, then restart the daemon. With the VS Code extension in local mode: run \'EXAI: Set Provider Key\' (no restart).',
    knownModels: ['kimi-k2-0905-preview', 'kimi-k2-0711-preview', 'kimi-k2-turbo-preview', 'kimi-latest', 'kimi-thinking-preview', 'moonshot-v1-8k', 'moonshot-v1-32k', 'moonshot-v1-128k'],
    hasModelsEndpoint: true, features: ['webSearch'],
  },
  glm: {
    name: 'glm', label: 'GLM (Z.ai)', serves: 'glm-* models',
    configure: 'Set GLM_API_KEY (and GLM_API_URL for another endpoint than https://api.z.ai/api/paas/v4) in the daemon\'s environment, then restart the daemon. With the VS Code extension in local mode: run \'EXAI: Set Provider Key\' (no restart).',
    knownModels: ['glm-4.6', 'glm-4.5-flash', 'glm-4.5', 'glm-4.5-air', 'glm-4.5v'],
    hasModelsEndpoint: false, features: ['thinking', 'webSearch'],
  },
};

const FEATURE_ARGUMENT: Record<keyof ModelFeatures, string> = { thinking: 'thinking', webSearch: 'web_search' };

/** Which provider serves a model name. */
function familyOf(model: string): 'kimi' | 'glm' | null {
  if (/^(kimi|moonshot)-/i.test(model)) return 'kimi';
  if (/^glm-/i.test(model)) return 'glm';
  return null;
}

const FAMILY_ENV = { kimi: 'KIMI_API_KEY', glm: 'GLM_API_KEY' } as const;

interface ToolCall {
  id: string;
  type: string;
  function: { name: string; arguments: string };
}

export class Providers {
  /** Keyed by the endpoint object: a key replaced at run time gets a new client, calls in flight keep theirs. */
  private readonly clients = new WeakMap<ProviderEndpoint, OpenAI>();
  private readonly queues = new Map<string, ProviderQueue>();
  /** The endpoints in use: the environment's, with those a local client set (setEndpoint) in their place. */
  private endpoints: ProviderEndpoint[];

  constructor(readonly settings: ProviderSettings) {
    this.endpoints = [...settings.endpoints];
  }

  get configured(): boolean {
    return this.endpoints.length > 0;
  }

  /** Names only (for the log and provider_key_ack): never a key. */
  describe(): { name: ProviderName; host: string; source: 'environment' | 'client' }[] {
    return this.endpoints.map((e) => ({ name: e.name, host: safeHost(e.baseUrl), source: e.fromClient ? 'client' : 'environment' }));
  }

  endpoint(name: ProviderName): ProviderEndpoint | undefined {
    return this.endpoints.find((e) => e.name === name);
  }

  /** Uses `endpoint` for its provider from now on (server/tools/providerKeys.ts; local mode only). */
  setEndpoint(endpoint: ProviderEndpoint): void {
    this.endpoints = [...this.endpoints.filter((e) => e.name !== endpoint.name), endpoint];
  }

  /** Drops the run-time endpoint of `name`: the environment's (if any) is used again. */
  removeEndpoint(name: ProviderName): void {
    const fromEnv = this.settings.endpoints.find((e) => e.name === name);
    this.endpoints = [...this.endpoints.filter((e) => e.name !== name), ...(fromEnv ? [fromEnv] : [])];
  }

  /** The model a call without `model` gets, or null when nothing is configured. */
  defaultModel(): string | null {
    return this.settings.defaultModel || this.fallbackModel();
  }

  /**
   * The endpoint for `model` (or the default model). kimi-* / moonshot-* go to Kimi and glm-* to GLM
   * when their keys are set; everything else (and those, when only a custom endpoint exists) to the
   * custom endpoint. Throws a ToolError that says which variable to set.
   */
  resolve(requested: string | undefined): ResolvedModel {
    const model = requested?.trim() || this.defaultModel();
    if (!this.configured) {
      throw new ToolError(ProviderErrorCode.notConfigured,
        'No model provider is configured on this daemon. With the VS Code extension in local mode, run \'EXAI: Set Provider Key\'; otherwise set EXAI_PROVIDER_BASE_URL and EXAI_PROVIDER_API_KEY (any OpenAI-compatible endpoint) with EXAI_DEFAULT_MODEL, or KIMI_API_KEY, or GLM_API_KEY, and restart the daemon.');
    }
    if (!model) {
      throw new ToolError(ProviderErrorCode.notConfigured,
        'No model was named, and this daemon has no default model for its OpenAI-compatible endpoint; name one in `model` (listmodels lists them), or set EXAI_DEFAULT_MODEL.');
    }
    const family = familyOf(model);
    const endpoint = (family && this.endpoint(family)) || this.endpoint('custom');
    if (endpoint) return { endpoint, model };
    if (family) {
      throw new ToolError(ProviderErrorCode.notConfigured,
        `The model "${model}" needs the ${family === 'kimi' ? 'Kimi (Moonshot)' : 'GLM (Z.ai)'} provider, which is not configured on this daemon: set ${FAMILY_ENV[family]} (or EXAI_PROVIDER_BASE_URL for an OpenAI-compatible endpoint that serves it) and restart the daemon.`);
    }
    const known = this.endpoints.map((e) => (e.name === 'kimi' ? 'kimi-* / moonshot-*' : 'glm-*')).join(', ');
    throw new ToolError(ProviderErrorCode.notConfigured,
      `No configured provider serves the model "${model}"${known ? ` (this daemon serves ${known})` : ''}. Use one of those models, or set EXAI_PROVIDER_BASE_URL and EXAI_PROVIDER_API_KEY to an OpenAI-compatible endpoint that serves it.`);
  }

  /** Refuses, before anything is sent, a feature the model's provider does not have. */
  checkFeatures(resolved: ResolvedModel, features: ModelFeatures | undefined): void {
    const offered = PROVIDER_CATALOG[resolved.endpoint.name].features;
    for (const feature of ['thinking', 'webSearch'] as const) {
      if (features?.[feature] !== true || offered.includes(feature)) continue;
      const who = Object.values(PROVIDER_CATALOG).filter((p) => p.features.includes(feature)).map((p) => `${p.label} (${p.serves})`).join(' and ');
      throw new ToolError(ProviderErrorCode.featureUnsupported,
        `${FEATURE_ARGUMENT[feature]} is a feature of ${who}; the model "${resolved.model}" is served by ${label(resolved.endpoint).replace(/^The /, 'the ')}, which has no such feature. Omit ${FEATURE_ARGUMENT[feature]}, or choose a model of a provider that has it.`);
    }
  }

  /**
   * Streams one chat completion; resolves with the whole text. Waits for a slot of the provider's
   * queue first. Errors are ToolErrors with one clear sentence; a cancel rethrows as it is.
   */
  async chat(resolved: ResolvedModel, request: ChatRequest): Promise<string> {
    const { endpoint } = resolved;
    this.checkFeatures(resolved, request.features);
    const timeoutMs = this.settings.timeoutSec * 1000;
    const deadlineAt = Date.now() + timeoutMs;
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any([request.signal, deadline]);
    const release = await this.slot(endpoint, signal, deadline, request);
    try {
      return await this.converse(resolved, request, signal, deadline, deadlineAt);
    } finally {
      release();
    }
  }

  /** The models a configured provider serves: its GET /models. Throws a ToolError with one sentence. */
  async listModels(endpoint: ProviderEndpoint, signal: AbortSignal): Promise<string[]> {
    const timeoutSec = Math.min(this.settings.timeoutSec, 15);
    const deadline = AbortSignal.timeout(timeoutSec * 1000);
    const ids: string[] = [];
    try {
      for await (const m of this.client(endpoint).models.list({ signal: AbortSignal.any([signal, deadline]), timeout: timeoutSec * 1000, maxRetries: 0 })) {
        if (typeof m.id === 'string' && m.id.length <= 256) ids.push(m.id);
        if (ids.length >= MAX_LISTED_MODELS) break;
      }
    } catch (err) {
      if (signal.aborted) throw err;
      throw providerError(err, endpoint, null, deadline.aborted, timeoutSec);
    }
    return ids;
  }

  private queue(endpoint: ProviderEndpoint): ProviderQueue {
    let queue = this.queues.get(endpoint.name);
    if (!queue) {
      queue = new ProviderQueue(this.settings.maxConcurrent, this.settings.queueLength);
      this.queues.set(endpoint.name, queue);
    }
    return queue;
  }

  private async slot(endpoint: ProviderEndpoint, signal: AbortSignal, deadline: AbortSignal, request: ChatRequest): Promise<() => void> {
    const who = label(endpoint);
    const started = Date.now();
    let queuedAt: number | null = null;
    try {
      const release = await this.queue(endpoint).acquire(signal, (p: QueuePosition) => {
        queuedAt ??= p.position;
        request.onNotice?.(`[waiting for a free slot of ${who.replace(/^The /, 'the ')}: position ${p.position} of ${p.waiting} in its queue, ${p.running} calls running]`);
      });
      if (queuedAt !== null) request.log?.info('got a provider slot after waiting', { provider: endpoint.name, queued_at: queuedAt, waited_ms: Date.now() - started });
      return release;
    } catch (err) {
      if (err instanceof QueueFull) {
        request.log?.warn('provider queue full: call refused', { provider: endpoint.name, running: err.running, waiting: err.waiting });
        throw new ToolError(ProviderErrorCode.overCapacity,
          `${who} is busy: ${err.running} calls are running (EXAI_PROVIDER_MAX_CONCURRENT=${this.settings.maxConcurrent}) and ${err.waiting} are waiting, the most this daemon queues for it (EXAI_PROVIDER_QUEUE_LENGTH=${this.settings.queueLength}); try again in a moment.`);
      }
      if (request.signal.aborted) throw err;
      if (deadline.aborted) {
        throw new ToolError(ProviderErrorCode.timeout,
          `${who} was busy: this call waited ${this.settings.timeoutSec} s (EXAI_PROVIDER_TIMEOUT_SECONDS) for one of its ${this.settings.maxConcurrent} slots (EXAI_PROVIDER_MAX_CONCURRENT) without getting one; try again later.`);
      }
      throw err;
    }
  }

  /** The rounds of one answer: one request, or more while Kimi asks for `$web_search`. */
  private async converse(resolved: ResolvedModel, request: ChatRequest, signal: AbortSignal, deadline: AbortSignal, deadlineAt: number): Promise<string> {
    const { endpoint, model } = resolved;
    const features = request.features ?? {};
    const kimiSearch = endpoint.name === 'kimi' && features.webSearch === true;
    const body: Record<string, unknown> = {
      model,
      stream: true,
      // The usage of a streamed answer comes only when asked for: then one last chunk carries it
      // (OpenAI: `choices: []` and a top-level `usage`; GLM: `usage` beside the final choice; Kimi:
      // the same final chunk, older answers inside `choices[0].usage`). See tokenUsageOf().
      stream_options: { include_usage: true },
      ...(request.maxOutputTokens !== undefined ? { max_tokens: request.maxOutputTokens } : {}),
      ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
      ...requestFeatures(endpoint.name, features),
    };
    const messages: Record<string, unknown>[] = request.messages.map((m) => ({ ...m }));
    let text = '';
    const onText = (delta: string) => {
      text += delta;
      if (text.length > MAX_ANSWER_CHARS) {
        throw new ToolError(ProviderErrorCode.rejected, `${label(endpoint)} sent an answer longer than ${MAX_ANSWER_CHARS.toLocaleString('en-US')} characters, the most a model tool keeps; ask for a shorter answer.`);
      }
      request.onText(delta);
    };
    for (let round = 0; ; round++) {
      const answer = await this.withRetries(resolved, { ...body, messages }, request, signal, deadline, deadlineAt, onText);
      if (answer.finish !== 'tool_calls' || answer.toolCalls.length === 0) break;
      const foreign = answer.toolCalls.find((c) => !(kimiSearch && c.function.name === '$web_search'));
      if (foreign) {
        throw new ToolError(ProviderErrorCode.rejected, `${label(endpoint)} asked to call the tool "${foreign.function.name.slice(0, 64)}", which this daemon did not offer; try again.`);
      }
      if (round + 1 >= MAX_SEARCH_ROUNDS) {
        throw new ToolError(ProviderErrorCode.rejected, `${label(endpoint)} asked for more than ${MAX_SEARCH_ROUNDS} rounds of web search for one answer; ask a narrower question, or omit web_search.`);
      }
      // Kimi's builtin $web_search: echo each call's arguments back unchanged; Kimi then searches.
      messages.push({ role: 'assistant', content: answer.text, tool_calls: answer.toolCalls });
      for (const call of answer.toolCalls) messages.push({ role: 'tool', tool_call_id: call.id, name: call.function.name, content: call.function.arguments });
    }
    return text;
  }

  /** One upstream request, retried only for 429/503 with a Retry-After that fits the deadline. */
  private async withRetries(
    resolved: ResolvedModel, body: Record<string, unknown>, request: ChatRequest, signal: AbortSignal,
    deadline: AbortSignal, deadlineAt: number, onText: (delta: string) => void,
  ): Promise<{ text: string; toolCalls: ToolCall[]; finish: string | null }> {
    const { endpoint, model } = resolved;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.streamOnce(endpoint, body, signal, Math.max(1, deadlineAt - Date.now()), onText, request.onUsage);
      } catch (err) {
        if (request.signal.aborted) throw err; // cancelled by the caller: the registry reports `cancelled`
        const waitMs = attempt < this.settings.maxRetries ? retryDelayMs(err) : null;
        if (waitMs === null || Date.now() + waitMs >= deadlineAt) {
          throw providerError(err, endpoint, model, deadline.aborted, this.settings.timeoutSec);
        }
        const status = (err as InstanceType<typeof OpenAI.APIError>).status;
        request.log?.warn('provider asked to retry', { provider: endpoint.name, model, status, retry_after_ms: waitMs, retry: attempt + 1 });
        request.onNotice?.(`[${label(endpoint).replace(/^The /, 'the ')} answered HTTP ${status} with Retry-After ${Math.ceil(waitMs / 1000)} s; retrying (${attempt + 1} of at most ${this.settings.maxRetries})]`);
        try {
          await abortableDelay(waitMs, signal);
        } catch {
          if (request.signal.aborted) throw new Error('aborted');
          throw timeoutError(endpoint, this.settings.timeoutSec);
        }
      }
    }
  }

  private async streamOnce(
    endpoint: ProviderEndpoint, body: Record<string, unknown>, signal: AbortSignal, timeoutMs: number, onText: (delta: string) => void,
    onUsage: ((usage: TokenUsage) => void) | undefined,
  ): Promise<{ text: string; toolCalls: ToolCall[]; finish: string | null }> {
    let text = '';
    let finish: string | null = null;
    let usage: TokenUsage | null = null;
    const calls: ToolCall[] = [];
    // Extra fields (thinking, provider tools) are sent as given: the SDK posts the body as JSON.
    const stream = await this.client(endpoint).chat.completions.create(
      body as unknown as OpenAI.Chat.ChatCompletionCreateParamsStreaming,
      { signal, timeout: timeoutMs, maxRetries: 0 },
    );
    for await (const chunk of stream) {
      usage = tokenUsageOf(chunk) ?? usage;
      const choice = chunk.choices?.[0];
      const delta = choice?.delta;
      if (typeof delta?.content === 'string' && delta.content !== '') {
        text += delta.content;
        onText(delta.content);
      }
      for (const part of delta?.tool_calls ?? []) {
        const call = (calls[part.index ?? 0] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
        if (part.id) call.id = part.id;
        if (part.type) call.type = part.type;
        if (part.function?.name) call.function.name += part.function.name;
        if (part.function?.arguments) call.function.arguments += part.function.arguments;
        if (call.function.arguments.length + call.function.name.length > MAX_TOOL_ARGUMENT_CHARS) {
          throw new ToolError(ProviderErrorCode.rejected, `${label(endpoint)} sent a tool call larger than ${MAX_TOOL_ARGUMENT_CHARS} characters; try again.`);
        }
      }
      if (choice?.finish_reason) finish = choice.finish_reason;
    }
    // Reported even when the stream then counts as failed: the provider counted these tokens.
    if (usage) onUsage?.(usage);
    if (signal.aborted) throw signal.reason ?? new Error('aborted');
    return { text, toolCalls: calls.filter(Boolean), finish };
  }

  private fallbackModel(): string | null {
    // No EXAI_DEFAULT_MODEL: the original daemon's defaults for the providers it knew.
    if (this.endpoint('glm')) return 'glm-4.5-flash';
    if (this.endpoint('kimi')) return 'kimi-k2-0905-preview';
    return null;
  }

  /** One SDK client per endpoint (it holds settings, not answers: nothing is cached across calls). */
  private client(endpoint: ProviderEndpoint): OpenAI {
    let client = this.clients.get(endpoint);
    if (!client) {
      client = new OpenAI({
        apiKey: endpoint.apiKey ?? 'no-key',
        baseURL: endpoint.baseUrl,
        maxRetries: 0,
        timeout: this.settings.timeoutSec * 1000,
        logLevel: 'off',
      });
      this.clients.set(endpoint, client);
    }
    return client;
  }
}

/** The request fields a feature adds, for the provider that has it (checkFeatures refused the rest). */
function requestFeatures(provider: ProviderName, features: ModelFeatures): Record<string, unknown> {
  const extra: Record<string, unknown> = {};
  if (provider === 'glm') {
    if (features.thinking !== undefined) extra.thinking = { type: features.thinking ? 'enabled' : 'disabled' };
    if (features.webSearch) extra.tools = [{ type: 'web_search', web_search: { enable: true, search_engine: 'search_pro_jina', search_result: true } }];
  }
  if (provider === 'kimi' && features.webSearch) extra.tools = [{ type: 'builtin_function', function: { name: '$web_search' } }];
  return extra;
}

/**
 * The `usage` of a stream chunk, wherever the provider puts it: top-level (OpenAI's last chunk with
 * `stream_options.include_usage`, platform.openai.com/docs/api-reference/chat/create; GLM's final
 * chunk, as recorded from api.z.ai in charmbracelet/fantasy providertests/testdata/
 * TestOpenAICompatibleCommon/zai-glm-4.5/simple_streaming.yaml), or inside `choices[0]` (Kimi's
 * finish chunk, platform.kimi.com/docs/guide/utilize-the-streaming-output-feature-of-kimi-api).
 * Null when the chunk carries none or it is not made of whole non-negative numbers.
 */
export function tokenUsageOf(chunk: unknown): TokenUsage | null {
  const c = chunk as { usage?: unknown; choices?: { usage?: unknown }[] } | null;
  const raw = (c?.usage ?? c?.choices?.[0]?.usage) as { prompt_tokens?: unknown; completion_tokens?: unknown } | null | undefined;
  const count = (v: unknown) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : null);
  const input = count(raw?.prompt_tokens);
  const output = count(raw?.completion_tokens);
  return input === null || output === null ? null : { inputTokens: input, outputTokens: output };
}

/** How long a 429/503 asks us to wait (Retry-After: seconds or an HTTP date); null: not a retry we make. */
export function retryDelayMs(err: unknown): number | null {
  if (!(err instanceof OpenAI.APIError) || (err.status !== 429 && err.status !== 503)) return null;
  return parseRetryAfter(err.headers?.get('retry-after') ?? null);
}

export function parseRetryAfter(raw: string | null, now = Date.now()): number | null {
  const value = raw?.trim();
  if (!value) return null;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  if (!/ GMT$/.test(value)) return null; // an HTTP-date (RFC 9110 §10.2.3) ends in GMT; nothing else is a date here
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
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
export function providerError(err: unknown, endpoint: ProviderEndpoint, model: string | null, timedOut: boolean, timeoutSec: number): ToolError {
  if (err instanceof ToolError) return err;
  if (timedOut || err instanceof OpenAI.APIConnectionTimeoutError) return timeoutError(endpoint, timeoutSec);
  const who = label(endpoint);
  if (err instanceof OpenAI.APIError && typeof err.status === 'number') {
    const status = err.status;
    if (status === 401 || status === 403) {
      return new ToolError(ProviderErrorCode.keyRejected,
        `${who} rejected the API key (HTTP ${status}); ${endpoint.fromClient ? `run 'EXAI: Set Provider Key' to give ${endpoint.keyEnv} again` : `check ${endpoint.keyEnv} and restart the daemon`}.`);
    }
    if (status === 404 && model === null) {
      return new ToolError(ProviderErrorCode.modelNotFound, `${who} has no model list (GET /models answered HTTP 404).`);
    }
    if (status === 404) {
      return new ToolError(ProviderErrorCode.modelNotFound,
        `${who} does not know the model "${model}" (HTTP 404); check the model name (or EXAI_DEFAULT_MODEL), and that ${endpoint.urlEnv} is the API's base URL.`);
    }
    if (status === 429) {
      const retryAfterMs = parseRetryAfter(err.headers?.get('retry-after') ?? null);
      const when = retryAfterMs !== null && retryAfterMs > 0 ? `retry in about ${Math.ceil(retryAfterMs / 1000)} s` : 'retry later';
      return new ToolError(ProviderErrorCode.rateLimited, `${who} is rate limiting this daemon's key (HTTP 429); ${when}.`);
    }
    if (status >= 500) {
      return new ToolError(ProviderErrorCode.unavailable, `${who} failed (HTTP ${status}); try again shortly.`);
    }
    const detail = upstreamMessage(err, endpoint);
    return new ToolError(ProviderErrorCode.rejected, `${who} rejected the request${model === null ? '' : ` for "${model}"`} (HTTP ${status})${detail ? `: ${detail}` : ''}.`);
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
