// What every model tool takes (prompt, model, continuation_id, temperature, files, the provider
// features) and how a tool made of a system prompt runs on the one engine. chat.ts, thinkdeep.ts,
// codereview.ts, debug.ts, planner.ts and challenge.ts are each one call of defineModelTool.
import { z } from 'zod';
import { defineTool } from '../registry';
import type { ChatEngine, TurnRequest } from './chatEngine';
import { FilesArgument } from './files';

export const MAX_PROMPT_CHARS = 100_000;

export const modelArguments = {
  model: z.string().min(1).max(128).optional()
    .describe('Model name, e.g. glm-4.5-flash, kimi-k2-0905-preview, or one the daemon\'s custom endpoint serves (the listmodels tool shows them). Default: the daemon\'s EXAI_DEFAULT_MODEL.'),
  continuation_id: z.uuid().optional()
    .describe('Continue an earlier conversation: the continuation_id printed at the end of a previous answer of any model tool (chat, thinkdeep, codereview, debug, planner, challenge, consensus). Your own conversations only.'),
  temperature: z.number().min(0).max(2).optional().describe('Sampling temperature (0-2; providers may accept less).'),
  files: FilesArgument,
};

export const featureArguments = {
  thinking: z.boolean().optional()
    .describe('GLM (Z.ai) models only: true turns the model\'s thinking on, false off. Default: not sent (the model\'s own default). Refused for other providers.'),
  web_search: z.boolean().optional()
    .describe('Let the model search the web before answering: GLM (Z.ai) and Kimi (Moonshot) models only, refused for others. Default: off.'),
};

export function promptArgument(description: string) {
  return z.string().min(1).max(MAX_PROMPT_CHARS).describe(description);
}

/** A model tool calls a provider on the internet and adds the turn to the caller's conversation (never overwrites). */
export const MODEL_TOOL_ANNOTATIONS = { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true } as const;

export interface ModelToolSpec {
  name: string;
  /** A short human-readable name (MCP `title`). */
  title: string;
  description: string;
  /** The tool's system prompt (server/tools/prompts/<name>.md). */
  systemPrompt: string;
  /** What the prompt argument should hold, for this tool. */
  promptDescription: string;
}

type ModelArguments = { prompt: string } & Partial<{ [K in keyof typeof modelArguments]: z.infer<(typeof modelArguments)[K]> }>
  & Partial<{ [K in keyof typeof featureArguments]: z.infer<(typeof featureArguments)[K]> }>;

/** A model tool's arguments as one engine turn. */
export function turnOf(tool: string, system: string | undefined, args: ModelArguments): TurnRequest {
  return {
    tool,
    system,
    prompt: args.prompt,
    files: args.files,
    model: args.model,
    continuationId: args.continuation_id,
    temperature: args.temperature,
    features: { thinking: args.thinking, webSearch: args.web_search },
  };
}

/** A model tool that is the engine plus a system prompt. */
export function defineModelTool(spec: ModelToolSpec, engine: ChatEngine) {
  return defineTool({
    name: spec.name,
    title: spec.title,
    annotations: MODEL_TOOL_ANNOTATIONS,
    description: spec.description,
    input: z.object({ prompt: promptArgument(spec.promptDescription), ...modelArguments, ...featureArguments }).strict(),
    run: (args, ctx) => engine.turn(ctx, turnOf(spec.name, spec.systemPrompt, args)),
  });
}
