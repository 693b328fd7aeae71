// The tools every daemon has: who am I, my sessions, echo (with an optional delay, so clients can
// exercise concurrency and cancel) and version.
import { z } from 'zod';
import { PROTOCOL_VERSION } from '../protocol';
import { VERSION } from '../version';
import { abortableDelay, defineTool, type Tool } from './registry';

const json = (value: unknown) => JSON.stringify(value, null, 2);

export const whoami = defineTool({
  name: 'whoami',
  title: 'Who am I',
  annotations: { readOnlyHint: true, openWorldHint: false },
  description: 'Shows the user this connection is signed in as, its session id and when its token expires.',
  input: z.object({}).strict(),
  async run(_args, ctx) {
    return json({
      user_id: ctx.identity.userId,
      email: ctx.identity.email,
      session_id: ctx.sessionId,
      instance: ctx.instance,
      token_expires_at: ctx.identity.expiresAt,
      mode: ctx.mode,
    });
  },
});

export const sessions = defineTool({
  name: 'sessions',
  title: 'My sessions',
  annotations: { readOnlyHint: true, openWorldHint: false },
  description: "Lists the caller's own daemon sessions (other users' sessions are never visible).",
  input: z.object({}).strict(),
  async run(_args, ctx) {
    const rows = await ctx.store.listOwn(ctx.identity);
    return json(rows.map((r) => ({ ...r, current: r.session_id === ctx.sessionId })));
  },
});

export const echo = defineTool({
  name: 'echo',
  title: 'Echo',
  annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  description: 'Returns the text it is given, optionally after a delay (cancellable).',
  input: z
    .object({
      text: z.string().max(1024 * 1024),
      delay_ms: z.number().int().min(0).max(60_000).optional(),
    })
    .strict(),
  async run(args, ctx) {
    if (args.delay_ms) {
      ctx.progress(`waiting ${args.delay_ms} ms`);
      await abortableDelay(args.delay_ms, ctx.signal);
    }
    return args.text;
  },
});

export const version = defineTool({
  name: 'version',
  title: 'Daemon version',
  annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  description: 'Shows the daemon version, wire protocol version, Node.js version and mode.',
  input: z.object({}).strict(),
  async run(_args, ctx) {
    return json({ version: VERSION, protocol: PROTOCOL_VERSION, node: process.version, mode: ctx.mode });
  },
});

export const builtinTools: Tool<any>[] = [whoami, sessions, echo, version];
