// The `chat` tool: one prompt to an OpenAI-compatible model, with conversation memory per user.
// A call without continuation_id starts a thread; its id comes back on the answer's last line and
// continues the conversation. Threads live in the caller's own rows (RLS in supabase mode; per user
// in memory in local mode), so nobody can continue another user's thread.
//
// The history sent upstream is bounded (the last HISTORY_TURNS turns, then a character budget,
// dropping the oldest first): a long thread never grows the request (the original's "token explosion").
// The answer streams as progress frames (at most one every PROGRESS_INTERVAL_MS); cancel aborts the
// upstream request. There is no cache: every call is its own upstream request.
import { z } from 'zod';
import { StoreUnavailable, ThreadNotFound, type ThreadMessage, type ThreadStore } from '../sessions/store';
import type { ChatMessage, Providers } from './providers';
import { defineTool, ToolError, type ToolContext } from './registry';

export const MAX_PROMPT_CHARS = 100_000;
export const MAX_SYSTEM_CHARS = 20_000;
/** Turns of history sent with a continued prompt (a turn = the user's message and the answer). */
export const HISTORY_TURNS = 20;
/** Characters of history sent with a continued prompt; the oldest messages go first. */
export const HISTORY_CHAR_BUDGET = 60_000;
export const PROGRESS_INTERVAL_MS = 250;
const TITLE_CHARS = 80;

export const ChatErrorCode = {
  threadNotFound: 'thread_not_found',
  storeUnavailable: 'store_unavailable',
} as const;

export interface ChatToolDeps {
  providers: Providers;
  threads: ThreadStore;
  historyTurns?: number;
  historyChars?: number;
  progressIntervalMs?: number;
}

const ChatInput = z
  .object({
    prompt: z.string().min(1).max(MAX_PROMPT_CHARS).describe('What to ask the model.'),
    model: z.string().min(1).max(128).optional()
      .describe('Model name, e.g. glm-4.5-flash, kimi-k2-0905-preview, or one the daemon\'s custom endpoint serves. Default: the daemon\'s EXAI_DEFAULT_MODEL.'),
    continuation_id: z.uuid().optional()
      .describe('Continue an earlier conversation: the continuation_id printed at the end of a previous chat answer.'),
    temperature: z.number().min(0).max(2).optional().describe('Sampling temperature (0-2; providers may accept less).'),
    system: z.string().max(MAX_SYSTEM_CHARS).optional().describe('A system prompt for this call (not stored in the conversation).'),
  })
  .strict();

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

export function createChatTool(deps: ChatToolDeps) {
  const turns = deps.historyTurns ?? HISTORY_TURNS;
  const chars = deps.historyChars ?? HISTORY_CHAR_BUDGET;
  const interval = deps.progressIntervalMs ?? PROGRESS_INTERVAL_MS;

  return defineTool({
    name: 'chat',
    title: 'Ask a model',
    // It calls a provider on the internet and stores the turn in the caller's conversation (adds, never overwrites).
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    description:
      'Asks a language model (GLM, Kimi or the daemon\'s OpenAI-compatible endpoint) and returns its answer, streamed as progress. ' +
      'The answer ends with a continuation_id line: pass it back as continuation_id to continue the same conversation (your own conversations only).',
    input: ChatInput,
    async run(args, ctx) {
      const resolved = deps.providers.resolve(args.model);
      // ctx.identity is read at each store call, not kept: it follows an in-band re-auth (same user,
      // new token), so the Data API store still has a valid token after a long answer.
      let history: ChatMessage[] = [];
      if (args.continuation_id) {
        // Two messages per turn, plus slack for system/unpaired messages; boundHistory cuts to the budget.
        const stored = await threadCall(() => deps.threads.threadMessages(ctx.identity, args.continuation_id!, turns * 2 + 2));
        history = boundHistory(stored, turns, chars);
      }
      const messages: ChatMessage[] = [
        ...(args.system ? [{ role: 'system' as const, content: args.system }] : []),
        ...history,
        { role: 'user', content: args.prompt },
      ];

      const started = Date.now();
      const stream = throttled(ctx, interval);
      let answer: string;
      try {
        answer = await deps.providers.chat(resolved, {
          model: resolved.model,
          messages,
          temperature: args.temperature,
          signal: ctx.signal,
          onText: stream.push,
        });
      } finally {
        stream.stop();
      }
      stream.flush();
      ctx.log.info('chat answered', {
        provider: resolved.endpoint.name,
        model: resolved.model,
        ms: Date.now() - started,
        history_messages: history.length,
        prompt_chars: args.prompt.length,
        answer_chars: answer.length,
        continued: args.continuation_id !== undefined,
      });

      // Only a complete turn is remembered: a failed or cancelled call leaves the thread as it was.
      const saved = await remember(deps.threads, ctx, args.continuation_id, args.prompt, answer);
      if (!saved.ok) {
        return `${answer}\n\n(This turn could not be saved, so a continuation will not remember it: ${saved.reason})` +
          (args.continuation_id ? `\ncontinuation_id: ${args.continuation_id}` : '');
      }
      return `${answer}\n\ncontinuation_id: ${saved.threadId}`;
    },
  });
}

async function remember(
  threads: ThreadStore, ctx: ToolContext, continuationId: string | undefined, prompt: string, answer: string,
): Promise<{ ok: true; threadId: string } | { ok: false; reason: string }> {
  try {
    const threadId = continuationId ?? (await threads.createThread(ctx.identity, titleOf(prompt)));
    await threads.appendMessage(ctx.identity, threadId, 'user', prompt);
    await threads.appendMessage(ctx.identity, threadId, 'assistant', answer);
    return { ok: true, threadId };
  } catch (err) {
    ctx.log.error('could not save the chat turn', { error: err });
    return { ok: false, reason: err instanceof StoreUnavailable || err instanceof ThreadNotFound ? err.message : 'the conversation store failed' };
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

/** Streamed text as progress frames: at most one per `intervalMs`, each carrying the text since the last. */
function throttled(ctx: ToolContext, intervalMs: number) {
  let pending = '';
  let last = 0;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (pending === '' || ctx.signal.aborted) return;
    last = Date.now();
    const text = pending;
    pending = '';
    ctx.progress(text);
  };
  return {
    push(delta: string) {
      if (stopped) return;
      pending += delta;
      const wait = last + intervalMs - Date.now();
      if (wait <= 0) flush();
      else timer ??= setTimeout(flush, wait);
    },
    /** Sends what is left (the progress frames then add up to the whole answer). */
    flush,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}
