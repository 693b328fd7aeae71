// `debug`: the chat engine with a system prompt for root-cause analysis (prompts/debug.md).
import type { ChatEngine } from './engine/chatEngine';
import { defineModelTool } from './engine/modelTool';
import systemPrompt from './prompts/debug.md';

export const createDebugTool = (engine: ChatEngine) => defineModelTool({
  name: 'debug',
  title: 'Debug a problem',
  description:
    'Root-cause analysis of a bug by a second model. Describe the symptom (error messages, logs, stack traces, what you already tried) and send the relevant files; ' +
    'it ranks the likely causes, says how to confirm or rule out each, points at the code, and proposes the smallest real fix with a test. ' +
    'Ends with a continuation_id line: continue with new evidence.',
  systemPrompt,
  promptDescription: 'The symptom and the evidence: errors, logs, stack traces, how to reproduce, what you tried and ruled out.',
}, engine);
