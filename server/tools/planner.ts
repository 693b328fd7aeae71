// `planner`: the chat engine with a system prompt for planning work (prompts/planner.md).
import type { ChatEngine } from './engine/chatEngine';
import { defineModelTool } from './engine/modelTool';
import systemPrompt from './prompts/planner.md';

export const createPlannerTool = (engine: ChatEngine) => defineModelTool({
  name: 'planner',
  title: 'Plan the work',
  description:
    'Turns a task or project into an ordered, checkable plan by a second model: steps with dependencies, the files they touch, risks, checkpoints and what to decide first. ' +
    'Use before a large change, migration or feature. Ends with a continuation_id line: continue the conversation to revise the plan.',
  systemPrompt,
  promptDescription: 'The goal, its constraints (deadline, compatibility, what must not change) and what is already known or done.',
}, engine);
