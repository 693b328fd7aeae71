// `codereview`: the chat engine with a system prompt for code review (prompts/codereview.md).
import type { ChatEngine } from './engine/chatEngine';
import { defineModelTool } from './engine/modelTool';
import systemPrompt from './prompts/codereview.md';

export const createCodeReviewTool = (engine: ChatEngine) => defineModelTool({
  name: 'codereview',
  title: 'Review code',
  description:
    'Code review by a second model of the files you send: bugs, security problems, performance, maintainability and style, ' +
    'each finding with severity, location and a concrete fix, then the top three things to fix. ' +
    'Send the code in files and say in the prompt what it is for and what to focus on. Ends with a continuation_id line (usable in any model tool).',
  systemPrompt,
  promptDescription: 'What the code does, what the change is for, and what to focus on (e.g. security, concurrency). The code itself goes in files.',
}, engine);
