-- Conversation threads of the `chat` tool (the continuation_id is a thread id): the tables, their
-- RLS, and the functions every store calls (direct Postgres as `authenticated` with the user's claims,
-- or the Supabase Data API with the user's own token). The rules (ownership, order, bounds) live here.
-- All functions are SECURITY INVOKER with an empty search_path, so RLS applies to them.

create table if not exists public.mcp_threads (
  id         uuid primary key default gen_random_uuid(),
  user_id    uuid not null default auth.uid() references auth.users (id) on delete cascade,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  title      text check (title is null or pg_catalog.char_length(title) <= 200)
);

comment on table public.mcp_threads is
  'Conversation threads of the EXAI chat tool; id is the continuation_id. Own rows only (RLS).';

create table if not exists public.mcp_thread_messages (
  id         bigint generated always as identity primary key,
  thread_id  uuid not null references public.mcp_threads (id) on delete cascade,
  user_id    uuid not null default auth.uid() references auth.users (id) on delete cascade,
  role       text not null check (role in ('system', 'user', 'assistant')),
  -- A prompt is at most 100k characters; an answer may be longer, but not unbounded.
  content    text not null check (pg_catalog.char_length(content) <= 1000000),
  created_at timestamptz not null default now()
);

-- Own threads, newest first (RLS predicate + mcp_thread_list).
create index if not exists mcp_threads_user_created_idx on public.mcp_threads (user_id, created_at desc);
-- The last N messages of a thread (mcp_thread_messages), and the cascade from mcp_threads.
create index if not exists mcp_thread_messages_thread_id_idx on public.mcp_thread_messages (thread_id, id desc);
-- The cascade from auth.users and the RLS predicate.
create index if not exists mcp_thread_messages_user_id_idx on public.mcp_thread_messages (user_id);

-- Supabase's default privileges grant ALL on new public tables to anon and authenticated; start from nothing.
revoke all on table public.mcp_threads from anon, authenticated;
revoke all on table public.mcp_thread_messages from anon, authenticated;
-- The functions are SECURITY INVOKER, so the caller needs these (RLS narrows them to own rows).
-- Deleting a thread (and its messages, by cascade) is the user's right over their own data.
grant select, insert, update, delete on table public.mcp_threads to authenticated;
grant select, insert, delete on table public.mcp_thread_messages to authenticated;

alter table public.mcp_threads enable row level security;
alter table public.mcp_thread_messages enable row level security;

-- `(select auth.uid())` is evaluated once per statement instead of once per row.
drop policy if exists mcp_threads_select_own on public.mcp_threads;
create policy mcp_threads_select_own on public.mcp_threads
  for select to authenticated
  using ((select auth.uid()) = user_id);

drop policy if exists mcp_threads_insert_own on public.mcp_threads;
create policy mcp_threads_insert_own on public.mcp_threads
  for insert to authenticated
  with check ((select auth.uid()) = user_id);

drop policy if exists mcp_threads_update_own on public.mcp_threads;
create policy mcp_threads_update_own on public.mcp_threads
  for update to authenticated
  using ((select auth.uid()) = user_id)
  with check ((select auth.uid()) = user_id);

drop policy if exists mcp_threads_delete_own on public.mcp_threads;
create policy mcp_threads_delete_own on public.mcp_threads
  for delete to authenticated
  using ((select auth.uid()) = user_id);

drop policy if exists mcp_thread_messages_select_own on public.mcp_thread_messages;
create policy mcp_thread_messages_select_own on public.mcp_thread_messages
  for select to authenticated
  using ((select auth.uid()) = user_id);

-- A message may only go into a thread of the same user (the thread must be visible to the caller).
drop policy if exists mcp_thread_messages_insert_own on public.mcp_thread_messages;
create policy mcp_thread_messages_insert_own on public.mcp_thread_messages
  for insert to authenticated
  with check (
    (select auth.uid()) = user_id
    and exists (select 1 from public.mcp_threads t where t.id = thread_id and t.user_id = (select auth.uid()))
  );

drop policy if exists mcp_thread_messages_delete_own on public.mcp_thread_messages;
create policy mcp_thread_messages_delete_own on public.mcp_thread_messages
  for delete to authenticated
  using ((select auth.uid()) = user_id);

-- A new thread of the caller. Returns its id (the continuation_id).
create or replace function public.mcp_thread_create(p_title text)
returns uuid
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  v_id uuid;
begin
  if v_uid is null then
    raise exception 'mcp_thread_create: no authenticated user' using errcode = '42501';
  end if;
  insert into public.mcp_threads (user_id, title)
  values (v_uid, nullif(pg_catalog.left(pg_catalog.btrim(coalesce(p_title, '')), 200), ''))
  returning id into v_id;
  return v_id;
end
$$;

-- Appends one message to one of the caller's threads and bumps its updated_at. Returns the message id.
-- Another user's thread is invisible under RLS, so it fails exactly like a thread that does not exist.
create or replace function public.mcp_thread_append(p_thread_id uuid, p_role text, p_content text)
returns bigint
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  v_id bigint;
begin
  if v_uid is null then
    raise exception 'mcp_thread_append: no authenticated user' using errcode = '42501';
  end if;
  if p_role is null or p_role not in ('system', 'user', 'assistant') then
    raise exception 'mcp_thread_append: role must be system, user or assistant, not %', coalesce(p_role, 'null')
      using errcode = '22023';
  end if;
  if p_content is null then
    raise exception 'mcp_thread_append: content must not be null' using errcode = '22023';
  end if;
  -- The row lock orders concurrent appends to one thread (ids then follow commit order).
  update public.mcp_threads t
     set updated_at = pg_catalog.now()
   where t.id = p_thread_id
     and t.user_id = v_uid;
  if not found then
    raise exception 'thread not found' using errcode = 'P0002',
      hint = 'The continuation_id is unknown or belongs to another user; start a new conversation.';
  end if;
  insert into public.mcp_thread_messages (thread_id, user_id, role, content)
  values (p_thread_id, v_uid, p_role, p_content)
  returning id into v_id;
  return v_id;
end
$$;

-- The LAST p_limit messages (clamped to 1..1000) of one of the caller's threads, oldest first.
-- A thread that is not the caller's (or does not exist) raises 'thread not found' (P0002).
create or replace function public.mcp_thread_messages(p_thread_id uuid, p_limit int)
returns table (id bigint, role text, content text, created_at timestamptz)
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  if auth.uid() is null then
    raise exception 'mcp_thread_messages: no authenticated user' using errcode = '42501';
  end if;
  if not exists (select 1 from public.mcp_threads t where t.id = p_thread_id and t.user_id = (select auth.uid())) then
    raise exception 'thread not found' using errcode = 'P0002',
      hint = 'The continuation_id is unknown or belongs to another user; start a new conversation.';
  end if;
  return query
    select m.id, m.role, m.content, m.created_at
      from (select m2.id, m2.role, m2.content, m2.created_at
              from public.mcp_thread_messages m2
             where m2.thread_id = p_thread_id
               and m2.user_id = (select auth.uid())
             order by m2.id desc
             limit least(greatest(coalesce(p_limit, 20), 1), 1000)) m
     order by m.id asc;
end
$$;

-- The caller's own threads, newest first (at most 1000), with their message counts.
create or replace function public.mcp_thread_list()
returns table (id uuid, title text, created_at timestamptz, updated_at timestamptz, message_count int)
language sql
stable
security invoker
set search_path = ''
as $$
  select t.id, t.title, t.created_at, t.updated_at,
         (select pg_catalog.count(*)::int from public.mcp_thread_messages m where m.thread_id = t.id)
    from public.mcp_threads t
   where t.user_id = (select auth.uid())
   order by t.created_at desc, t.id
   limit 1000
$$;

-- PUBLIC has EXECUTE by default and Supabase grants it to anon: revoke, then grant signed-in users only.
revoke all on function public.mcp_thread_create(text) from public, anon;
revoke all on function public.mcp_thread_append(uuid, text, text) from public, anon;
revoke all on function public.mcp_thread_messages(uuid, int) from public, anon;
revoke all on function public.mcp_thread_list() from public, anon;

grant execute on function public.mcp_thread_create(text) to authenticated;
grant execute on function public.mcp_thread_append(uuid, text, text) to authenticated;
grant execute on function public.mcp_thread_messages(uuid, int) to authenticated;
grant execute on function public.mcp_thread_list() to authenticated;
