-- Writes to the session and thread tables go only through the SQL functions.
--
-- Until now the functions were SECURITY INVOKER, so signed-in users held INSERT/UPDATE (and, on the
-- thread tables, DELETE) on the tables themselves, and anyone with the anon key and their own token
-- could use them through the Data API: backdate last_active of their own rows to escape the per-user
-- limit, or insert rows of any size. From here on:
--   - anon and authenticated keep only SELECT (own rows, under RLS); no INSERT/UPDATE/DELETE;
--   - every function a user calls is SECURITY DEFINER, owned by the tables' owner, with an empty
--     search_path, and checks auth.uid() itself and filters every statement by it;
--   - liveness (created_at, last_active) comes only from now(), never from the caller;
--   - what a caller can put in is bounded: session_id format, metadata keys and sizes, the per-user
--     limit (SQL ceiling), rows kept per user, thread titles, message sizes, messages per thread.
-- The liveness bound drops from 180 s to 45 s (heartbeat 15 s), so a user whose daemon was killed
-- can connect through another daemon within a minute.
-- Idempotent: safe to run again, and on projects that applied the earlier migrations.

-- ---------------------------------------------------------------- table privileges

revoke all on table public.mcp_sessions from anon, authenticated;
revoke all on table public.mcp_threads from anon, authenticated;
revoke all on table public.mcp_thread_messages from anon, authenticated;
-- Reading one's own rows (RLS below) stays a user's right; the functions do not need it.
grant select on table public.mcp_sessions to authenticated;
grant select on table public.mcp_threads to authenticated;
grant select on table public.mcp_thread_messages to authenticated;

-- The write policies belonged to the old grants; without the grants they could only mislead.
drop policy if exists mcp_sessions_insert_own on public.mcp_sessions;
drop policy if exists mcp_sessions_update_own on public.mcp_sessions;
drop policy if exists mcp_threads_insert_own on public.mcp_threads;
drop policy if exists mcp_threads_update_own on public.mcp_threads;
drop policy if exists mcp_threads_delete_own on public.mcp_threads;
drop policy if exists mcp_thread_messages_insert_own on public.mcp_thread_messages;
drop policy if exists mcp_thread_messages_delete_own on public.mcp_thread_messages;

-- ---------------------------------------------------------------- cheap heartbeats

-- A heartbeat changes only last_active. With last_active in no index, PostgreSQL can make that a
-- HOT update (new tuple on the same page, no index entries written, pruned without VACUUM); the two
-- indexes below were the only ones on last_active. The live count of mcp_claim_session uses the
-- partial index instead: a user's connected rows, few at any time however long the history grows.
drop index if exists public.mcp_sessions_user_status_active_idx;
drop index if exists public.mcp_sessions_last_active_idx;
create index if not exists mcp_sessions_user_connected_idx
  on public.mcp_sessions (user_id) where connection_status = 'connected';
-- Leave room on each page for the heartbeat's new tuple (applies to pages written from now on).
alter table public.mcp_sessions set (fillfactor = 80);

-- ---------------------------------------------------------------- sessions

-- Liveness bound: the ONE place that defines it. Daemons refresh last_active every 15 s
-- (EXAI_HEARTBEAT_SECONDS); a `connected` row not refreshed for three heartbeats (a daemon killed
-- with -9, a crashed host, a daemon cut off from the database) is treated as not connected: it reads
-- `stale` and does not count toward the per-user limit. So a killed daemon's rows free their slots at
-- most 45 s after the kill.
create or replace function public.mcp_session_stale_after()
returns interval
language sql
immutable
parallel safe
security invoker
set search_path = ''
as $$ select interval '45 seconds' $$;

-- Inserts the caller's session unless they already have p_max_per_user live ones.
-- Returns (claimed, active): active is the live count including the new row when claimed.
-- Bounds on what a caller can put in (a user can call this directly over /rest/v1/rpc):
--   p_session_id   a lowercase UUID (the daemon sends crypto.randomUUID());
--   p_max_per_user clamped to 1000 (MCP_MAX_CONNECTIONS_PER_USER's maximum);
--   p_metadata     only daemon_id (string, 1..512 chars), instance (string <= 128 or null),
--                  client_version (string <= 64 or null), pid (integer or null), transport
--                  ('websocket', 'mcp' or null) and client_name (string <= 64 or null: an MCP
--                  client's name) are stored; other keys are dropped;
--   history        at most 50 rows per user that are not live (ended or stale) are kept: the
--                  oldest go at each claim, so a user's rows are bounded by the ceiling + 50.
create or replace function public.mcp_claim_session(p_session_id text, p_max_per_user int, p_metadata jsonb)
returns table (claimed boolean, active int)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  v_limit int;
  v_metadata jsonb := coalesce(p_metadata, '{}'::jsonb);
  v_live int;
begin
  if v_uid is null then
    raise exception 'mcp_claim_session: no authenticated user' using errcode = '42501';
  end if;
  if p_max_per_user is null or p_max_per_user < 0 then
    raise exception 'mcp_claim_session: p_max_per_user must be >= 0' using errcode = '22023';
  end if;
  v_limit := least(p_max_per_user, 1000);
  if p_session_id is null or p_session_id !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    raise exception 'mcp_claim_session: session_id must be a lowercase UUID' using errcode = '22023';
  end if;
  if pg_catalog.jsonb_typeof(v_metadata) <> 'object'
     or pg_catalog.jsonb_typeof(v_metadata -> 'daemon_id') is distinct from 'string'
     or pg_catalog.char_length(v_metadata ->> 'daemon_id') not between 1 and 512
     or coalesce(pg_catalog.jsonb_typeof(v_metadata -> 'instance'), 'null') not in ('string', 'null')
     or pg_catalog.char_length(v_metadata ->> 'instance') > 128
     or coalesce(pg_catalog.jsonb_typeof(v_metadata -> 'client_version'), 'null') not in ('string', 'null')
     or pg_catalog.char_length(v_metadata ->> 'client_version') > 64
     or coalesce(pg_catalog.jsonb_typeof(v_metadata -> 'pid'), 'null') not in ('number', 'null')
     or (v_metadata ->> 'pid') !~ '^[0-9]{1,10}$'
     or coalesce(v_metadata ->> 'transport', 'websocket') not in ('websocket', 'mcp')
     or coalesce(pg_catalog.jsonb_typeof(v_metadata -> 'client_name'), 'null') not in ('string', 'null')
     or pg_catalog.char_length(v_metadata ->> 'client_name') > 64
  then
    raise exception 'mcp_claim_session: metadata must be {daemon_id: 1-512 chars, instance: <= 128 chars or null, client_version: <= 64 chars or null, pid: integer or null, transport: websocket or mcp, client_name: <= 64 chars or null}'
      using errcode = '22023';
  end if;
  v_metadata := pg_catalog.jsonb_build_object(
    'daemon_id', v_metadata -> 'daemon_id',
    'instance', coalesce(v_metadata -> 'instance', 'null'::jsonb),
    'client_version', coalesce(v_metadata -> 'client_version', 'null'::jsonb),
    'pid', coalesce(v_metadata -> 'pid', 'null'::jsonb),
    'transport', coalesce(v_metadata -> 'transport', '"websocket"'::jsonb),
    'client_name', coalesce(v_metadata -> 'client_name', 'null'::jsonb));

  -- Serialize claims of one user across connections and daemons until this transaction ends, so the
  -- count below and the insert cannot interleave with another claim. (Under READ COMMITTED the count
  -- takes a new snapshot after the lock, so it sees the previous holder's committed row.)
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('mcp_sessions:' || v_uid::text, 0));

  select pg_catalog.count(*)::int into v_live
    from public.mcp_sessions s
   where s.user_id = v_uid
     and s.connection_status = 'connected'
     and s.last_active > pg_catalog.now() - public.mcp_session_stale_after();

  if v_live >= v_limit then
    return query select false, v_live;
    return;
  end if;

  -- History: keep the caller's 50 most recently active rows that are not live.
  delete from public.mcp_sessions d
   where d.id in (
     select s.id
       from public.mcp_sessions s
      where s.user_id = v_uid
        and not (s.connection_status = 'connected' and s.last_active > pg_catalog.now() - public.mcp_session_stale_after())
      order by s.last_active desc, s.id desc
     offset 50);

  -- created_at and last_active take their defaults: now().
  insert into public.mcp_sessions (session_id, user_id, metadata)
  values (p_session_id, v_uid, v_metadata);
  return query select true, v_live + 1;
end
$$;

-- Heartbeat: refreshes the caller's own row while its stored status is `connected` (this also
-- revives a row that read `stale` because heartbeats could not reach the database for a while).
create or replace function public.mcp_touch_session(p_session_id text)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
begin
  if v_uid is null then
    raise exception 'mcp_touch_session: no authenticated user' using errcode = '42501';
  end if;
  update public.mcp_sessions s
     set last_active = pg_catalog.now()
   where s.session_id = p_session_id
     and s.user_id = v_uid
     and s.connection_status = 'connected';
  return found;
end
$$;

-- Ends the caller's own connected row with a final status. False when there was nothing to end.
create or replace function public.mcp_close_session(p_session_id text, p_status text)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
begin
  if v_uid is null then
    raise exception 'mcp_close_session: no authenticated user' using errcode = '42501';
  end if;
  if p_status is null or p_status not in ('disconnected', 'expired') then
    raise exception 'mcp_close_session: status must be disconnected or expired, not %', pg_catalog.left(coalesce(p_status, 'null'), 32)
      using errcode = '22023';
  end if;
  update public.mcp_sessions s
     set connection_status = p_status,
         last_active = pg_catalog.now()
   where s.session_id = p_session_id
     and s.user_id = v_uid
     and s.connection_status = 'connected';
  return found;
end
$$;

-- The caller's own sessions, newest first, with the liveness bound applied to the status.
create or replace function public.mcp_list_sessions()
returns table (session_id text, created_at timestamptz, last_active timestamptz, connection_status text, metadata jsonb)
language sql
stable
security definer
set search_path = ''
as $$
  select s.session_id::text,
         s.created_at,
         s.last_active,
         case
           when s.connection_status = 'connected'
            and s.last_active <= pg_catalog.now() - public.mcp_session_stale_after() then 'stale'
           else s.connection_status::text
         end,
         s.metadata
    from public.mcp_sessions s
   where s.user_id = (select auth.uid())
   order by s.created_at desc, s.id
$$;

-- mcp_disconnect_daemon_sessions stays SECURITY INVOKER: only the daemon's own role (table owner or
-- BYPASSRLS) runs it, never a user (EXECUTE is revoked from anon and authenticated).

-- ---------------------------------------------------------------- threads

-- A new thread of the caller. Returns its id (the continuation_id). Keeps the caller's 200 newest
-- threads (older ones go, with their messages), as the memory store of local mode does.
create or replace function public.mcp_thread_create(p_title text)
returns uuid
language plpgsql
volatile
security definer
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
  delete from public.mcp_threads d
   where d.id in (
     select t.id from public.mcp_threads t
      where t.user_id = v_uid
      order by t.created_at desc, t.id desc
     offset 200);
  return v_id;
end
$$;

-- Appends one message to one of the caller's threads and bumps its updated_at. Returns the message id.
-- Content is at most 1,000,000 characters. A thread keeps its newest messages, at most 200 and at
-- most 2,000,000 bytes of content (the newest message is always kept), as the memory store does.
create or replace function public.mcp_thread_append(p_thread_id uuid, p_role text, p_content text)
returns bigint
language plpgsql
volatile
security definer
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
    raise exception 'mcp_thread_append: role must be system, user or assistant, not %', pg_catalog.left(coalesce(p_role, 'null'), 32)
      using errcode = '22023';
  end if;
  if p_content is null then
    raise exception 'mcp_thread_append: content must not be null' using errcode = '22023';
  end if;
  if pg_catalog.char_length(p_content) > 1000000 then
    raise exception 'mcp_thread_append: content is longer than 1,000,000 characters' using errcode = '22001';
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
  -- octet_length reads the stored size without detoasting the content.
  delete from public.mcp_thread_messages d
   where d.id in (
     select m.id
       from (select m2.id,
                    pg_catalog.row_number() over w as n,
                    pg_catalog.sum(pg_catalog.octet_length(m2.content)) over w as bytes
               from public.mcp_thread_messages m2
              where m2.thread_id = p_thread_id
             window w as (order by m2.id desc)) m
      where m.n > 1 and (m.n > 200 or m.bytes > 2000000));
  return v_id;
end
$$;

-- The LAST p_limit messages (clamped to 1..1000) of one of the caller's threads, oldest first.
-- A thread that is not the caller's (or does not exist) raises 'thread not found' (P0002).
create or replace function public.mcp_thread_messages(p_thread_id uuid, p_limit int)
returns table (id bigint, role text, content text, created_at timestamptz)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
begin
  if v_uid is null then
    raise exception 'mcp_thread_messages: no authenticated user' using errcode = '42501';
  end if;
  if not exists (select 1 from public.mcp_threads t where t.id = p_thread_id and t.user_id = v_uid) then
    raise exception 'thread not found' using errcode = 'P0002',
      hint = 'The continuation_id is unknown or belongs to another user; start a new conversation.';
  end if;
  return query
    select m.id, m.role, m.content, m.created_at
      from (select m2.id, m2.role, m2.content, m2.created_at
              from public.mcp_thread_messages m2
             where m2.thread_id = p_thread_id
               and m2.user_id = v_uid
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
security definer
set search_path = ''
as $$
  select t.id, t.title, t.created_at, t.updated_at,
         (select pg_catalog.count(*)::int from public.mcp_thread_messages m where m.thread_id = t.id)
    from public.mcp_threads t
   where t.user_id = (select auth.uid())
   order by t.created_at desc, t.id
   limit 1000
$$;

-- Deleting a thread (and its messages, by cascade) is the user's right over their own data; it was a
-- table grant, now it is this function. False when the caller has no such thread.
create or replace function public.mcp_thread_delete(p_thread_id uuid)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
begin
  if v_uid is null then
    raise exception 'mcp_thread_delete: no authenticated user' using errcode = '42501';
  end if;
  delete from public.mcp_threads t where t.id = p_thread_id and t.user_id = v_uid;
  return found;
end
$$;

-- ---------------------------------------------------------------- owners and EXECUTE

-- A SECURITY DEFINER function runs with its owner's rights: make that the tables' owner (normally
-- already so: the role that runs the migrations, `postgres` on Supabase, created both).
do $$
declare
  v_sessions_owner name := (select pg_catalog.pg_get_userbyid(c.relowner) from pg_catalog.pg_class c where c.oid = 'public.mcp_sessions'::regclass);
  v_threads_owner name := (select pg_catalog.pg_get_userbyid(c.relowner) from pg_catalog.pg_class c where c.oid = 'public.mcp_threads'::regclass);
  v_fn text;
begin
  foreach v_fn in array array[
    'public.mcp_claim_session(text, int, jsonb)', 'public.mcp_touch_session(text)',
    'public.mcp_close_session(text, text)', 'public.mcp_list_sessions()'] loop
    execute pg_catalog.format('alter function %s owner to %I', v_fn, v_sessions_owner);
  end loop;
  foreach v_fn in array array[
    'public.mcp_thread_create(text)', 'public.mcp_thread_append(uuid, text, text)',
    'public.mcp_thread_messages(uuid, int)', 'public.mcp_thread_list()', 'public.mcp_thread_delete(uuid)'] loop
    execute pg_catalog.format('alter function %s owner to %I', v_fn, v_threads_owner);
  end loop;
end
$$;

-- PUBLIC has EXECUTE on new functions by default and Supabase grants it to anon: revoke, then grant
-- signed-in users only. (The earlier migrations did the same for the functions they created.)
revoke all on function public.mcp_thread_delete(uuid) from public, anon;
grant execute on function public.mcp_thread_delete(uuid) to authenticated;
