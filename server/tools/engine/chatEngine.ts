// The one chat engine behind every model tool (chat, thinkdeep, codereview, debug, planner,
// challenge, consensus): model choice, the caller's files, conversation memory, streaming, cancel.
// A tool is a system prompt plus this engine; it never talks to a provider or a thread itself.
//
// Conversation memory: a call without continuation_id starts a thread; its id comes back on the
// answer's last line and continues the conversation, from any model tool (a thinkdeep thread may go
// on in codereview). Threads live in the caller's own rows (RLS in supabase mode; per user in memory
// in local mode), so nobody can continue another user's thread. The history sent upstream is bounded
// (the last HISTORY_TURNS turns, then a character budget, oldest dropped first): a long thread never
// grows the request (the original's "token explosion"). Each tool's system prompt is sent, never
// stored. Files go with the turn they came with; the thread keeps only their names.
//
// The answer streams as progress frames; cancel aborts the upstream request. There is no cache:
// every call is its own upstream request. Every provider call is metered (usageMeter.ts): a
// reservation against the caller's daily token budget before it starts, the provider's counts after.
import { StoreUnavailable, ThreadNotFound, type ThreadMessage, type ThreadStore } from '../../sessions/store';
import type { FileLimits } from '../../config';
import type { ChatMessage, ModelFeatures, Providers, ResolvedModel } from '../providers';
import { ToolError, type ToolContext } from '../registry';
import { describeFiles, gatherFiles, renderFiles, type AttachedFile, type FileArgument } from './files';
import { PROGRESS_INTERVAL_MS, throttledProgress } from './progress';
import type { UsageMeter } from './usageMeter';

/** Turns of history sent with a continued prompt (a turn = the user's message and the answer). */
export const HISTORY_TURNS = 20;
/** Characters of history sent with a continued prompt; the oldest messages go first. */
export const HISTORY_CHAR_BUDGET = 60_000;
const TITLE_CHARS = 80;

export const ChatErrorCode = {
  threadNotFound: 'thread_not_found',
  storeUnavailable: 'store_unavailable',
} as const;

export interface ChatEngineDeps {
  providers: Providers;
  threads: ThreadStore;
  files: FileLimits;
  usage: UsageMeter;
  historyTurns?: number;
  historyChars?: number;
  progressIntervalMs?: number;
}

/** One turn of a model tool, as its arguments ask. */
export interface TurnRequest {
  /** The tool's name (for the log). */
  tool: string;
  /** The system prompt: the tool's own, or chat's `system` argument. Sent, not stored. */
  system?: string;
  prompt: string;
  files?: FileArgument[];
  model?: string;
  continuationId?: string;
  temperature?: number;
  features?: ModelFeatures;
}

/** A turn made ready to send: its model, files, history and the user message. */
export interface PreparedTurn {
  files: AttachedFile[];
  history: ChatMessage[];
  /** The user message sent upstream: files, then the prompt. */
  userContent: string;
  /** The user message the thread remembers: the prompt, and the files' names. */
  storedContent: string;
}

/** The history to send: the last `turns` turns, then whole messages within `chars`, oldest dropped first. */
export function boundHistory(messages: ThreadMessage[], turns = HISTORY_TURNS, chars = HISTORY_CHAR_BUDGET): ChatMessage[] {
  const kept: ChatMessage[] = [];
  let used = 0;
  let userTurns = 0;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (used + m.content.length > chars) break;
    if (m.role === 'user' && ++userTurns > turns) break;
    used += m.content.length;
    kept.push({ role: m.role, content: m.content });
  }
  kept.reverse();
  // Start at a user message: an answer without its question only confuses the model.
  while (kept.length > 0 && kept[0].role === 'assistant') kept.shift();
  return kept;
}

export class ChatEngine {
  readonly providers: Providers;
  private readonly turns: number;
  private readonly chars: number;
  private readonly interval: number;

  constructor(private readonly deps: ChatEngineDeps) {
    this.providers = deps.providers;
    this.turns = deps.historyTurns ?? HISTORY_TURNS;
    this.chars = deps.historyChars ?? HISTORY_CHAR_BUDGET;
    this.interval = deps.progressIntervalMs ?? PROGRESS_INTERVAL_MS;
  }

  /** One whole turn: model, files, history, the streamed answer, the thread; the answer ends with its continuation_id line. */
  async turn(ctx: ToolContext, request: TurnRequest): Promise<string> {
    const resolved = this.providers.resolve(request.model);
    // Refused before a file is read or a thread loaded: nothing is spent on a call that cannot run.
    this.providers.checkFeatures(resolved, request.features);
    const prepared = await this.prepare(ctx, request);
    const messages: ChatMessage[] = [
      ...(request.system ? [{ role: 'system' as const, content: request.system }] : []),
      ...prepared.history,
      { role: 'user', content: prepared.userContent },
    ];
    const started = Date.now();
    const answer = await this.ask(ctx, resolved, messages, { tool: request.tool, temperature: request.temperature, features: request.features, stream: true });
    ctx.log.info(`${request.tool} answered`, {
      provider: resolved.endpoint.name,
      model: resolved.model,
      ms: Date.now() - started,
      history_messages: prepared.history.length,
      prompt_chars: request.prompt.length,
      files: prepared.files.length,
      file_bytes: prepared.files.reduce((n, f) => n + f.bytes, 0),
      answer_chars: answer.length,
      continued: request.continuationId !== undefined,
    });
    return this.finish(ctx, request.continuationId, request.prompt, prepared.storedContent, answer);
  }

  /** Reads the files (every cap checked) and the bounded history of the continued thread. */
  async prepare(ctx: ToolContext, request: Pick<TurnRequest, 'prompt' | 'files' | 'continuationId'>): Promise<PreparedTurn> {
    const files = await gatherFiles(request.files, this.deps.files, ctx.mode);
    // ctx.identity is read at each store call, not kept: it follows an in-band re-auth (same user,
    // new token), so the Data API store still has a valid token after a long answer.
    let history: ChatMessage[] = [];
    if (request.continuationId) {
      // Two messages per turn, plus slack for system/unpaired messages; boundHistory cuts to the budget.
      const stored = await threadCall(() => this.deps.threads.threadMessages(ctx.identity, request.continuationId!, this.turns * 2 + 2));
      history = boundHistory(stored, this.turns, this.chars);
    }
    return {
      files,
      history,
      userContent: files.length > 0 ? `${renderFiles(files)}\n\n${request.prompt}` : request.prompt,
      storedContent: files.length > 0 ? `${request.prompt}\n\n${describeFiles(files)}` : request.prompt,
    };
  }

  /**
   * One answer from one model: one metered provider call, recorded for `tool`. `stream: true` sends
   * the text as throttled progress frames; otherwise only notices go out, each prefixed with
   * `noticePrefix` (consensus: the model's name). Refused before anything is sent when the caller's
   * daily token budget is spent.
   */
  async ask(
    ctx: ToolContext, resolved: ResolvedModel, messages: ChatMessage[],
    options: { tool: string; temperature?: number; features?: ModelFeatures; stream: boolean; noticePrefix?: string },
  ): Promise<string> {
    const metered = await this.deps.usage.begin(ctx, { tool: options.tool, resolved, messages, features: options.features });
    const progress = throttledProgress(ctx, this.interval);
    let answer: string;
    try {
      answer = await this.providers.chat(resolved, {
        model: resolved.model,
        messages,
        temperature: options.temperature,
        features: options.features,
        signal: ctx.signal,
        onText: (delta) => {
          metered.addText(delta);
          if (options.stream) progress.push(delta);
        },
        onNotice: (message) => progress.notice(options.noticePrefix ? `${options.noticePrefix} ${message}` : message),
        log: ctx.log,
        maxOutputTokens: this.deps.usage.maxOutputTokens,
        onUsage: metered.addUsage,
      });
    } finally {
      progress.stop();
      // Also after a failure or a cancel: what the provider counted is the caller's usage.
      await metered.settle();
    }
    progress.flush(); // the progress frames then add up to the whole answer
    return answer;
  }

  /**
   * Remembers a complete turn (`storedContent`, then `answer`) and returns `shown` (default: the
   * answer) with its continuation_id line.
   */
  async finish(ctx: ToolContext, continuationId: string | undefined, prompt: string, storedContent: string, answer: string, shown = answer): Promise<string> {
    // Only a complete turn is remembered: a failed or cancelled call leaves the thread as it was.
    const saved = await this.remember(ctx, continuationId, prompt, storedContent, answer);
    if (!saved.ok) {
      return `${shown}\n\n(This turn could not be saved, so a continuation will not remember it: ${saved.reason})` +
        (continuationId ? `\ncontinuation_id: ${continuationId}` : '');
    }
    return `${shown}\n\ncontinuation_id: ${saved.threadId}`;
  }

  private async remember(
    ctx: ToolContext, continuationId: string | undefined, prompt: string, storedContent: string, answer: string,
  ): Promise<{ ok: true; threadId: string } | { ok: false; reason: string }> {
    const threads = this.deps.threads;
    try {
      const threadId = continuationId ?? (await threads.createThread(ctx.identity, titleOf(prompt)));
      await threads.appendMessage(ctx.identity, threadId, 'user', storedContent);
      await threads.appendMessage(ctx.identity, threadId, 'assistant', answer);
      return { ok: true, threadId };
    } catch (err) {
      ctx.log.error('could not save the turn', { error: err });
      return { ok: false, reason: err instanceof StoreUnavailable || err instanceof ThreadNotFound ? err.message : 'the conversation store failed' };
    }
  }
}

/** Thread look-ups: a foreign or unknown thread and an unreachable store become clear tool errors. */
async function threadCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ThreadNotFound) throw new ToolError(ChatErrorCode.threadNotFound, err.message);
    if (err instanceof StoreUnavailable) throw new ToolError(ChatErrorCode.storeUnavailable, err.message);
    throw err;
  }
}

function titleOf(prompt: string): string {
  const line = prompt.replace(/\s+/g, ' ').trim();
  return line.length > TITLE_CHARS ? `${line.slice(0, TITLE_CHARS - 1)}…` : line;
}
