// `consensus`: one question to 2-5 named models at once, each answer sent as progress as it lands,
// then a synthesis by one chosen model. A model that fails (not configured, rejected, timed out) is
// reported by name and the others still answer; only when none answers does the call fail. The
// parallel calls are bounded twice: at most 5 models, and each provider's own queue
// (providers.ts), which every other model call shares.
import { z } from 'zod';
import type { ChatEngine } from './engine/chatEngine';
import { MODEL_TOOL_ANNOTATIONS, modelArguments, promptArgument } from './engine/modelTool';
import type { ChatMessage, ResolvedModel } from './providers';
import { defineTool, ToolError, type ToolContext } from './registry';
import answerPrompt from './prompts/consensus.md';
import synthesisPrompt from './prompts/consensus-synthesis.md';

export const MIN_CONSENSUS_MODELS = 2;
export const MAX_CONSENSUS_MODELS = 5;
/**
 * Characters of each answer the synthesis reads and the result repeats (a longer one is cut, and says
 * so; its whole text went out as progress). Bounds the result at 5 answers plus one synthesis.
 */
export const CONSENSUS_ANSWER_CHARS = 100_000;
/** Characters the thread keeps of a consensus without a synthesis. */
const STORED_CHARS = 200_000;

export const ConsensusErrorCode = { noAnswer: 'consensus_failed' } as const;

type Outcome = { model: string; ok: true; answer: string } | { model: string; ok: false; code: string; message: string };

export function createConsensusTool(engine: ChatEngine) {
  return defineTool({
    name: 'consensus',
    title: 'Ask several models',
    annotations: MODEL_TOOL_ANNOTATIONS,
    description:
      `Asks the same question to ${MIN_CONSENSUS_MODELS}-${MAX_CONSENSUS_MODELS} different models in parallel, then has one model synthesise their answers: ` +
      'where they agree, where they differ and why, and a recommendation. Each answer is sent as progress as soon as it lands; a model that fails is reported by name while the others still answer. ' +
      'Use for decisions where independent opinions matter (technology choices, designs, risky changes). Ends with a continuation_id line (usable in any model tool).',
    input: z.object({
      prompt: promptArgument('The question or decision every model answers, with the context they need.'),
      models: z.array(z.string().min(1).max(128)).min(MIN_CONSENSUS_MODELS).max(MAX_CONSENSUS_MODELS)
        .refine((names) => new Set(names.map((n) => n.trim().toLowerCase())).size === names.length, 'name each model once')
        .describe(`${MIN_CONSENSUS_MODELS} to ${MAX_CONSENSUS_MODELS} different model names (the listmodels tool shows them), e.g. ["glm-4.6", "kimi-k2-0905-preview"].`),
      synthesis_model: z.string().min(1).max(128).optional()
        .describe('The model that compares the answers and recommends. Default: the daemon\'s EXAI_DEFAULT_MODEL.'),
      continuation_id: modelArguments.continuation_id,
      temperature: modelArguments.temperature,
      files: modelArguments.files,
    }).strict(),
    async run(args, ctx) {
      // The synthesis model must exist before any model is asked: otherwise the answers would be paid for in vain.
      const synthesis = engine.providers.resolve(args.synthesis_model);
      const prepared = await engine.prepare(ctx, { prompt: args.prompt, files: args.files, continuationId: args.continuation_id });
      const messages: ChatMessage[] = [{ role: 'system', content: answerPrompt }, ...prepared.history, { role: 'user', content: prepared.userContent }];

      const outcomes = await Promise.all(args.models.map((model) => answerOf(engine, ctx, model, messages, args.temperature)));
      if (ctx.signal.aborted) throw new Error('aborted');
      const answered = outcomes.filter((o) => o.ok);
      if (answered.length === 0) {
        throw new ToolError(ConsensusErrorCode.noAnswer,
          `None of the ${outcomes.length} models answered: ${outcomes.map((o) => `${o.model}: ${o.ok ? '' : o.message}`).join(' ')}`);
      }

      const sections = outcomes.map((o) => (o.ok ? `## ${o.model}\n\n${cut(o.answer, CONSENSUS_ANSWER_CHARS)}` : `## ${o.model} (failed: ${o.code})\n\n${o.message}`));
      ctx.progress(`[consensus: ${synthesis.model} is comparing the answers]\n`);
      let synthesisText: string | null = null;
      let synthesisError: string | null = null;
      try {
        synthesisText = await engine.ask(ctx, synthesis, [
          { role: 'system', content: synthesisPrompt },
          { role: 'user', content: synthesisInput(args.prompt, outcomes) },
        ], { tool: 'consensus', temperature: args.temperature, stream: true });
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        synthesisError = err instanceof ToolError ? err.message : 'the synthesis failed unexpectedly';
        if (!(err instanceof ToolError)) ctx.log.error('consensus synthesis failed', { error: err });
      }
      ctx.log.info('consensus answered', { models: outcomes.map((o) => ({ model: o.model, ok: o.ok })), synthesis_model: synthesis.model, synthesis_ok: synthesisText !== null });

      const answer = [
        ...sections,
        synthesisText !== null
          ? `## Synthesis (${synthesis.model})\n\n${synthesisText}`
          : `## Synthesis (${synthesis.model}) failed\n\n${synthesisError}\nThe answers above are complete; compare them yourself, or call consensus again.`,
      ].join('\n\n');
      // The thread keeps the synthesis (what the conversation goes on from), or the answers when there is none.
      const remembered = synthesisText !== null ? synthesisText : cut(answer, STORED_CHARS);
      return engine.finish(ctx, args.continuation_id, args.prompt, prepared.storedContent, remembered, answer);
    },
  });
}

/** One model's answer, sent as progress when it lands; any failure becomes an outcome, never a throw. */
async function answerOf(engine: ChatEngine, ctx: ToolContext, model: string, messages: ChatMessage[], temperature: number | undefined): Promise<Outcome> {
  let resolved: ResolvedModel;
  try {
    resolved = engine.providers.resolve(model);
    const answer = await engine.ask(ctx, resolved, messages, { tool: 'consensus', temperature, stream: false, noticePrefix: `[consensus: ${model}]` });
    ctx.progress(`[consensus: ${model} answered]\n${answer}\n`);
    return { model, ok: true, answer };
  } catch (err) {
    const failure = err instanceof ToolError
      ? { code: err.code, message: err.message }
      : { code: 'tool_failed', message: ctx.signal.aborted ? 'cancelled' : 'failed unexpectedly (see the daemon log)' };
    if (!(err instanceof ToolError) && !ctx.signal.aborted) ctx.log.error('consensus model failed', { model, error: err });
    if (!ctx.signal.aborted) ctx.progress(`[consensus: ${model} failed (${failure.code})] ${failure.message}\n`);
    return { model, ok: false, ...failure };
  }
}

function synthesisInput(question: string, outcomes: Outcome[]): string {
  const parts = outcomes.map((o) => (o.ok
    ? `<answer model="${o.model}">\n${cut(o.answer, CONSENSUS_ANSWER_CHARS)}\n</answer>`
    : `<answer model="${o.model}" failed="true">(no answer: ${o.code})</answer>`));
  return `The question:\n\n${question}\n\nThe models' answers:\n\n${parts.join('\n\n')}`;
}

function cut(text: string, chars: number): string {
  return text.length > chars ? `${text.slice(0, chars)}\n[… cut at ${chars.toLocaleString('en-US')} characters]` : text;
}
