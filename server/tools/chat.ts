// The `chat` tool: one prompt to a model, with the caller's own system prompt if any. It is the chat
// engine (engine/chatEngine.ts) with no system prompt of its own; see there for conversation memory,
// streaming, cancel and files.
import { z } from 'zod';
import { defineTool } from './registry';
import type { ChatEngine } from './engine/chatEngine';
import { MODEL_TOOL_ANNOTATIONS, featureArguments, modelArguments, promptArgument, turnOf } from './engine/modelTool';

export { HISTORY_CHAR_BUDGET, HISTORY_TURNS, boundHistory } from './engine/chatEngine';
export { MAX_PROMPT_CHARS } from './engine/modelTool';
export { PROGRESS_INTERVAL_MS } from './engine/progress';
export const MAX_SYSTEM_CHARS = 20_000;

export function createChatTool(engine: ChatEngine) {
  return defineTool({
    name: 'chat',
    title: 'Ask a model',
    annotations: MODEL_TOOL_ANNOTATIONS,
    description:
      'Asks a language model (GLM, Kimi or the daemon\'s OpenAI-compatible endpoint) a question and returns its answer, streamed as progress: ' +
      'brainstorming, explanations, a second opinion, with optional files to read. For a focused job prefer thinkdeep (hard reasoning), codereview, debug, planner, challenge or consensus. ' +
      'The answer ends with a continuation_id line: pass it back as continuation_id to continue the same conversation, in this or another model tool (your own conversations only).',
    input: z.object({
      prompt: promptArgument('What to ask the model.'),
      ...modelArguments,
      ...featureArguments,
      system: z.string().max(MAX_SYSTEM_CHARS).optional().describe('A system prompt for this call (not stored in the conversation).'),
    }).strict(),
    run: (args, ctx) => engine.turn(ctx, turnOf('chat', args.system, args)),
  });
}
