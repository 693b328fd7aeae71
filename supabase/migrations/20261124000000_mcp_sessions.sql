-- One row per MCP connection to the daemon. The business rules (per-user limit, liveness,
-- ownership) are in 20261124000100_mcp_session_functions.sql; this file is the table and its RLS.
-- Relies only on what a Supabase project already has (roles anon/authenticated, auth.users,
-- auth.uid()); test/fixtures/plain-postgres-auth.sql provides the same for plain PostgreSQL.

create table if not exists public.mcp_sessions (
  id                uuid primary key default gen_random_uuid(),
  user_id           uuid not null default auth.uid() references auth.users (id) on delete cascade,
  session_id        varchar(128) not null unique,
  created_at        timestamptz not null default now(),
  last_active       timestamptz not null default now(),
  connection_status varchar(16) not null default 'connected'
                    check (connection_status in ('connected', 'disconnected', 'expired')),
  metadata          jsonb not null default '{}'::jsonb
);

comment on table public.mcp_sessions is
  'MCP connections to the EXAI daemon. A connected row whose last_active is older than public.mcp_session_stale_after() is treated as not connected.';

-- Own-rows lookups (RLS predicate, list, cascade from auth.users).
create index if not exists mcp_sessions_user_id_idx on public.mcp_sessions (user_id);
-- The live count in mcp_claim_session: user_id = ? and connection_status = 'connected' and last_active > ?.
create index if not exists mcp_sessions_user_status_active_idx
  on public.mcp_sessions (user_id, connection_status, last_active);
-- Housekeeping by age (finding stale rows across users, pruning old history).
create index if not exists mcp_sessions_last_active_idx on public.mcp_sessions (last_active);

-- Supabase's default privileges grant ALL on new public tables to anon and authenticated; start from nothing.
revoke all on table public.mcp_sessions from anon, authenticated;
-- authenticated needs select/insert/update because the session functions are SECURITY INVOKER (RLS
-- applies to them). No DELETE: a row is history; it ends by status change, and disappears only with its
-- user (ON DELETE CASCADE runs as the table owner) or through an owner/service-side cleanup job.
grant select, insert, update on table public.mcp_sessions to authenticated;

alter table public.mcp_sessions enable row level security;

-- `(select auth.uid())` is evaluated once per statement instead of once per row.
drop policy if exists mcp_sessions_select_own on public.mcp_sessions;
create policy mcp_sessions_select_own on public.mcp_sessions
  for select to authenticated
  using ((select auth.uid()) = user_id);

drop policy if exists mcp_sessions_insert_own on public.mcp_sessions;
create policy mcp_sessions_insert_own on public.mcp_sessions
  for insert to authenticated
  with check ((select auth.uid()) = user_id);

-- USING limits which rows can be targeted; WITH CHECK stops handing a row over to another user.
drop policy if exists mcp_sessions_update_own on public.mcp_sessions;
create policy mcp_sessions_update_own on public.mcp_sessions
  for update to authenticated
  using ((select auth.uid()) = user_id)
  with check ((select auth.uid()) = user_id);
