// `thinkdeep`: the chat engine with a system prompt for extended reasoning (prompts/thinkdeep.md).
import type { ChatEngine } from './engine/chatEngine';
import { defineModelTool } from './engine/modelTool';
import systemPrompt from './prompts/thinkdeep.md';

export const createThinkDeepTool = (engine: ChatEngine) => defineModelTool({
  name: 'thinkdeep',
  title: 'Think deeply',
  description:
    'Extended, step-by-step reasoning by a second model on a hard problem. Send your current analysis, hypotheses and the relevant files; ' +
    'it checks each assumption, finds gaps, edge cases and risks, weighs alternatives and ends with concrete next steps. ' +
    'Use for architecture decisions, complex bugs, performance or security trade-offs: whenever a deeper look than a quick chat is worth it. ' +
    'Ends with a continuation_id line (usable in any model tool).',
  systemPrompt,
  promptDescription: 'The problem, your current thinking about it (findings, hypotheses, what you are unsure of) and what you want examined.',
}, engine);
