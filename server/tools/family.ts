// Every tool that talks to a model, built on the one chat engine (each defined once, so every
// transport that serves the registry serves them all): chat, the specialised thinkdeep /
// codereview / debug / planner / challenge, consensus, and listmodels; plus threads, the list of
// the conversations they share.
import type { FileLimits } from '../config';
import type { ThreadStore } from '../sessions/store';
import { createChallengeTool } from './challenge';
import { createChatTool } from './chat';
import { createCodeReviewTool } from './codereview';
import { createConsensusTool } from './consensus';
import { createDebugTool } from './debug';
import { ChatEngine } from './engine/chatEngine';
import { createListModelsTool } from './listmodels';
import { createPlannerTool } from './planner';
import type { Providers } from './providers';
import type { Tool } from './registry';
import { createThinkDeepTool } from './thinkdeep';
import { createThreadsTool } from './threads';

export function createModelTools(deps: { providers: Providers; threads: ThreadStore; files: FileLimits }): Tool<any>[] {
  const engine = new ChatEngine(deps);
  return [
    createChatTool(engine),
    createThinkDeepTool(engine),
    createCodeReviewTool(engine),
    createDebugTool(engine),
    createPlannerTool(engine),
    createChallengeTool(engine),
    createConsensusTool(engine),
    createListModelsTool(deps.providers),
    createThreadsTool(deps.threads),
  ];
}
