// Every tool that talks to a model, built on the one chat engine (each defined once, so every
// transport that serves the registry serves them all): chat, the specialised thinkdeep /
// codereview / debug / planner / challenge, consensus, and listmodels; plus threads, the list of
// the conversations they share, and usage, the tokens they spent (every provider call is metered).
import type { FileLimits } from '../config';
import type { ThreadStore, UsageStore } from '../sessions/store';
import { createChallengeTool } from './challenge';
import { createChatTool } from './chat';
import { createCodeReviewTool } from './codereview';
import { createConsensusTool } from './consensus';
import { createDebugTool } from './debug';
import { ChatEngine } from './engine/chatEngine';
import { UsageMeter } from './engine/usageMeter';
import { createListModelsTool } from './listmodels';
import { createPlannerTool } from './planner';
import type { Providers } from './providers';
import type { Tool } from './registry';
import { createThinkDeepTool } from './thinkdeep';
import { createThreadsTool } from './threads';
import { createUsageTool } from './usage';

export interface ModelToolDeps {
  providers: Providers;
  threads: ThreadStore;
  usage: UsageStore;
  files: FileLimits;
  /** EXAI_DAILY_TOKENS_PER_USER; null: unlimited. */
  dailyTokensPerUser: number | null;
}

export function createModelTools(deps: ModelToolDeps): Tool<any>[] {
  const usage = new UsageMeter({ store: deps.usage, dailyLimit: deps.dailyTokensPerUser, providerTimeoutSec: deps.providers.settings.timeoutSec });
  const engine = new ChatEngine({ providers: deps.providers, threads: deps.threads, files: deps.files, usage });
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
    createUsageTool(deps.usage, deps.dailyTokensPerUser),
  ];
}
