-- The session rules, once, for every store (direct Postgres and the Supabase Data API).
-- All functions are SECURITY INVOKER, so the caller's RLS policies on public.mcp_sessions apply,
-- and use an empty search_path with fully qualified names (pg_catalog is always searched first).

-- Liveness bound. The daemon refreshes last_active every 60 s; a daemon killed with -9 (or cut off
-- from the database) cannot mark its rows, so a `connected` row not refreshed for three heartbeats is
-- treated as not connected everywhere: it reads `stale` and does not count toward the per-user limit.
create or replace function public.mcp_session_stale_after()
returns interval
language sql
immutable
parallel safe
security invoker
set search_path = ''
as $$ select interval '180 seconds' $$;

-- Inserts the caller's session unless they already have p_max_per_user live ones.
-- Returns (claimed, active): active is the live count including the new row when claimed.
create or replace function public.mcp_claim_session(p_session_id text, p_max_per_user int, p_metadata jsonb)
returns table (claimed boolean, active int)
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  v_live int;
begin
  if v_uid is null then
    raise exception 'mcp_claim_session: no authenticated user' using errcode = '42501';
  end if;
  if p_max_per_user is null or p_max_per_user < 0 then
    raise exception 'mcp_claim_session: p_max_per_user must be >= 0' using errcode = '22023';
  end if;

  -- Serialize claims of one user across connections and daemons until this transaction ends, so the
  -- count below and the insert cannot interleave with another claim. (Under READ COMMITTED the count
  -- takes a new snapshot after the lock, so it sees the previous holder's committed row.)
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('mcp_sessions:' || v_uid::text, 0));

  select pg_catalog.count(*)::int into v_live
    from public.mcp_sessions s
   where s.user_id = v_uid
     and s.connection_status = 'connected'
     and s.last_active > pg_catalog.now() - public.mcp_session_stale_after();

  if v_live >= p_max_per_user then
    return query select false, v_live;
    return;
  end if;

  insert into public.mcp_sessions (session_id, user_id, metadata)
  values (p_session_id, v_uid, coalesce(p_metadata, '{}'::jsonb));
  return query select true, v_live + 1;
end
$$;

-- Heartbeat: refreshes the caller's own row while its stored status is `connected` (this also
-- revives a row that read `stale` because heartbeats could not reach the database for a while).
create or replace function public.mcp_touch_session(p_session_id text)
returns boolean
language plpgsql
volatile
security invoker
set search_path = ''
as $$
begin
  update public.mcp_sessions s
     set last_active = pg_catalog.now()
   where s.session_id = p_session_id
     and s.user_id = auth.uid()
     and s.connection_status = 'connected';
  return found;
end
$$;

-- Ends the caller's own connected row with a final status. False when there was nothing to end.
create or replace function public.mcp_close_session(p_session_id text, p_status text)
returns boolean
language plpgsql
volatile
security invoker
set search_path = ''
as $$
begin
  if p_status is null or p_status not in ('disconnected', 'expired') then
    raise exception 'mcp_close_session: status must be disconnected or expired, not %', coalesce(p_status, 'null')
      using errcode = '22023';
  end if;
  update public.mcp_sessions s
     set connection_status = p_status,
         last_active = pg_catalog.now()
   where s.session_id = p_session_id
     and s.user_id = auth.uid()
     and s.connection_status = 'connected';
  return found;
end
$$;

-- The caller's own sessions, newest first, with the liveness bound applied to the status.
create or replace function public.mcp_list_sessions()
returns table (session_id text, created_at timestamptz, last_active timestamptz, connection_status text, metadata jsonb)
language sql
stable
security invoker
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

-- Start-up recovery, run by a daemon with its own database role (table owner / superuser, which RLS
-- does not restrict), never as a user: the previous instance of this daemon left these rows
-- `connected`. last_active is kept: it is the last sign of life those connections gave.
create or replace function public.mcp_disconnect_daemon_sessions(p_daemon_id text)
returns integer
language sql
volatile
security invoker
set search_path = ''
as $$
  with ended as (
    update public.mcp_sessions s
       set connection_status = 'disconnected'
     where s.metadata ->> 'daemon_id' = p_daemon_id
       and s.connection_status = 'connected'
    returning 1
  )
  select pg_catalog.count(*)::int from ended
$$;

-- Supabase's default privileges grant EXECUTE on new functions to anon (and PUBLIC has it by
-- default in PostgreSQL): revoke explicitly, then grant only what signed-in users need.
revoke all on function public.mcp_session_stale_after() from public, anon;
revoke all on function public.mcp_claim_session(text, int, jsonb) from public, anon;
revoke all on function public.mcp_touch_session(text) from public, anon;
revoke all on function public.mcp_close_session(text, text) from public, anon;
revoke all on function public.mcp_list_sessions() from public, anon;
revoke all on function public.mcp_disconnect_daemon_sessions(text) from public, anon, authenticated;

-- mcp_session_stale_after is called inside the others, which run with the caller's privileges.
grant execute on function public.mcp_session_stale_after() to authenticated;
grant execute on function public.mcp_claim_session(text, int, jsonb) to authenticated;
grant execute on function public.mcp_touch_session(text) to authenticated;
grant execute on function public.mcp_close_session(text, text) to authenticated;
grant execute on function public.mcp_list_sessions() to authenticated;
