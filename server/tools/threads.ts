// The `threads` tool: the caller's own chat conversations (their continuation ids), newest first.
// Other users' threads are never visible (RLS in supabase mode, per user in memory in local mode).
import { z } from 'zod';
import { StoreUnavailable, type ThreadStore } from '../sessions/store';
import { defineTool, ToolError } from './registry';

export function createThreadsTool(threads: ThreadStore) {
  return defineTool({
    name: 'threads',
    title: 'My conversations',
    annotations: { readOnlyHint: true, openWorldHint: false },
    description: "Lists the caller's own chat conversations, newest first: each id is a continuation_id for the chat tool.",
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
