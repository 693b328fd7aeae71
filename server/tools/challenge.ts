// `challenge`: the chat engine with a system prompt for critical scrutiny (prompts/challenge.md).
import type { ChatEngine } from './engine/chatEngine';
import { defineModelTool } from './engine/modelTool';
import systemPrompt from './prompts/challenge.md';

export const createChallengeTool = (engine: ChatEngine) => defineModelTool({
  name: 'challenge',
  title: 'Challenge a claim',
  description:
    'Has a second model critically test a statement instead of agreeing with it: a claim, a decision, your own reasoning, or a user\'s objection to your work. ' +
    'It examines the reasoning and evidence, looks for counter-examples, and gives a plain verdict (holds, holds with caveats, does not hold). ' +
    'Use before accepting a claim without scrutiny, or when the user pushes back. Ends with a continuation_id line (usable in any model tool).',
  systemPrompt,
  promptDescription: 'The statement to test, with the reasoning or evidence behind it.',
}, engine);
