// The `threads` tool: the caller's own conversations with the model tools (their continuation ids), newest first.
// Other users' threads are never visible (RLS in supabase mode, per user in memory in local mode).
import { z } from 'zod';
import { StoreUnavailable, type ThreadStore } from '../sessions/store';
import { defineTool, ToolError } from './registry';

export function createThreadsTool(threads: ThreadStore) {
  return defineTool({
    name: 'threads',
    title: 'My conversations',
    annotations: { readOnlyHint: true, openWorldHint: false },
    description: "Lists the caller's own conversations with the model tools, newest first, with their titles and sizes: each id is a continuation_id to pass to chat, thinkdeep, codereview, debug, planner, challenge or consensus.",
    input: z.object({}).strict(),
    async run(_args, ctx) {
      try {
        const list = await threads.listThreads(ctx.identity);
        return JSON.stringify(list.map((t) => ({ continuation_id: t.id, title: t.title, created_at: t.created_at, updated_at: t.updated_at, messages: t.message_count })), null, 2);
      } catch (err) {
        if (err instanceof StoreUnavailable) throw new ToolError('store_unavailable', err.message);
        throw err;
      }
    },
  });
}
