-- Token usage per user, and the optional daily token budget (EXAI_DAILY_TOKENS_PER_USER).
--
-- One row per provider call: the tool, the model, the tokens in and out as the provider reported
-- them. A row is born as a RESERVATION before the call starts and SETTLED with the real counts after
-- it, so the budget is enforced across every daemon on this database without a race:
--
--   mcp_usage_reserve   under a per-user advisory lock (the same pattern as mcp_claim_session), sums
--                       the caller's settled tokens of the current UTC day plus the tokens held by
--                       their live reservations. While that sum is below the daemon's limit, it
--                       inserts a reservation holding the call's upper bound (the daemon's estimate:
--                       the prompt's UTF-8 bytes plus the max_tokens it sends); otherwise it refuses.
--   mcp_usage_settle    replaces the hold with the real counts.
--   mcp_usage_summary   the caller's figures: today and this month, by model, and what is held now.
--
-- Why "never more than one call's worth over": a call is admitted only while settled + held < limit,
-- and every call in flight holds at least what it can spend, so after the admitted call the total
-- can exceed the limit by at most that one call. Reservations made at the same moment on two daemons
-- queue on the advisory lock and each sees the previous one's row (READ COMMITTED: the sum takes a new
-- snapshot after the lock). A daemon that dies mid-call never settles: its reservation stops holding
-- budget at hold_until (the daemon's provider deadline plus a minute) and is deleted two days later.
--
-- Writes go only through these SECURITY DEFINER functions (as 20261201000000_writes_through_functions.sql
-- does for sessions and threads); users may only read their own rows (RLS, and not the settle key).
-- What a user calling the functions directly with their own token can and cannot do:
--   - they cannot settle, change or delete a reservation the daemon made: settling needs the random key
--     the daemon generated for it, which is never stored (only its SHA-256) and never sent to a client;
--   - they cannot erase usage: no function deletes a row before the retention bound, counts must be
--     0..1,000,000,000, a row is settled once;
--   - they cannot raise the budget: the limit is the daemon's setting, passed on each of ITS calls;
--     a direct call with a larger limit only adds a reservation (usage) of their own;
--   - they CAN add fake usage rows of their own (a reservation they settle themselves, any tool or
--     model name within the length bounds). That only lowers their own remaining budget and shows in
--     their own figures; nobody else's rows or budget are touched. Bounded: at most
--     mcp_usage_max_calls_per_day() rows per user and UTC day, kept from the first day of the previous
--     month on (older rows go at each reservation).
-- Idempotent: safe to run again.

create table if not exists public.mcp_usage (
  id              bigint generated always as identity primary key,
  user_id         uuid not null references auth.users (id) on delete cascade,
  -- The UTC day the call started (its reservation); the budget counts per such day.
  day             date not null,
  created_at      timestamptz not null default now(),
  tool            text not null check (pg_catalog.char_length(tool) between 1 and 64),
  model           text not null check (pg_catalog.char_length(model) between 1 and 128),
  state           text not null default 'reserved' check (state in ('reserved', 'settled')),
  -- What the reservation holds while the call runs: the call's upper bound.
  reserved_tokens bigint not null check (reserved_tokens between 0 and 1000000000),
  -- A reservation not settled by then stops holding budget (its daemon died).
  hold_until      timestamptz not null,
  -- SHA-256 of the key that settles the reservation (the key itself is never stored).
  settle_key_hash bytea not null,
  input_tokens    bigint not null default 0 check (input_tokens between 0 and 1000000000),
  output_tokens   bigint not null default 0 check (output_tokens between 0 and 1000000000),
  -- True when the provider reported no usage and the daemon estimated it from the text.
  estimated       boolean not null default false,
  settled_at      timestamptz
);

comment on table public.mcp_usage is
  'EXAI: tokens per provider call and user (reservation, then settled counts). Own rows readable (RLS); writes only through mcp_usage_* functions.';

-- The day's sum of one user (mcp_usage_reserve, mcp_usage_summary) and the cascade from auth.users.
create index if not exists mcp_usage_user_day_idx on public.mcp_usage (user_id, day);
-- Reservations never settled, for their clean-up (few at any time).
create index if not exists mcp_usage_user_reserved_idx on public.mcp_usage (user_id, day) where state = 'reserved';

revoke all on table public.mcp_usage from anon, authenticated;
-- Reading one's own usage is a user's right; the settle key's hash is left out.
grant select (id, user_id, day, created_at, tool, model, state, reserved_tokens, hold_until,
              input_tokens, output_tokens, estimated, settled_at)
  on table public.mcp_usage to authenticated;

alter table public.mcp_usage enable row level security;

drop policy if exists mcp_usage_select_own on public.mcp_usage;
create policy mcp_usage_select_own on public.mcp_usage
  for select to authenticated
  using ((select auth.uid()) = user_id);

-- Rows one user may add per UTC day (each provider call is one): the ONE place that defines it.
-- 20,000 is a call every 4.3 s around the clock; it bounds what a user calling mcp_usage_reserve in a
-- loop can store.
create or replace function public.mcp_usage_max_calls_per_day()
returns int
language sql
immutable
parallel safe
security invoker
set search_path = ''
as $$ select 20000 $$;

-- Reserves p_tokens of the caller's current UTC day for one provider call, unless the day's settled
-- tokens plus the live holds already reach p_daily_limit (null: no budget, always reserved) or the
-- caller already has mcp_usage_max_calls_per_day() rows today.
-- Returns one row: reservation_id (null when refused), refused ('budget', 'calls' or null), the day's
-- used (settled) and held tokens and held calls BEFORE this reservation, and when the day ends.
-- p_hold_seconds (1..7200): how long the hold lasts if the call is never settled.
-- p_settle_key (32..128 characters): the daemon's random secret for mcp_usage_settle.
create or replace function public.mcp_usage_reserve(
  p_tool text, p_model text, p_tokens bigint, p_daily_limit bigint, p_hold_seconds int, p_settle_key text)
returns table (reservation_id bigint, refused text, used_tokens bigint, held_tokens bigint, held_calls int, resets_at timestamptz)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  v_now timestamptz := pg_catalog.clock_timestamp();
  v_today date;
  v_used bigint;
  v_held bigint;
  v_held_calls int;
  v_calls int;
  v_resets timestamptz;
  v_id bigint;
begin
  if v_uid is null then
    raise exception 'mcp_usage_reserve: no authenticated user' using errcode = '42501';
  end if;
  if p_tool is null or pg_catalog.char_length(p_tool) not between 1 and 64 then
    raise exception 'mcp_usage_reserve: tool must be 1-64 characters' using errcode = '22023';
  end if;
  if p_model is null or pg_catalog.char_length(p_model) not between 1 and 128 then
    raise exception 'mcp_usage_reserve: model must be 1-128 characters' using errcode = '22023';
  end if;
  if p_tokens is null or p_tokens not between 0 and 1000000000 then
    raise exception 'mcp_usage_reserve: tokens must be 0-1000000000' using errcode = '22023';
  end if;
  if p_daily_limit is not null and p_daily_limit < 0 then
    raise exception 'mcp_usage_reserve: daily limit must be >= 0 or null' using errcode = '22023';
  end if;
  if p_hold_seconds is null or p_hold_seconds not between 1 and 7200 then
    raise exception 'mcp_usage_reserve: hold seconds must be 1-7200' using errcode = '22023';
  end if;
  if p_settle_key is null or pg_catalog.char_length(p_settle_key) not between 32 and 128 then
    raise exception 'mcp_usage_reserve: settle key must be 32-128 characters' using errcode = '22023';
  end if;

  -- Serialize the reservations of one user across connections and daemons until this transaction
  -- ends: the sum below and the insert cannot interleave with another reservation. The clock is read
  -- again after the wait.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('mcp_usage:' || v_uid::text, 0));
  v_now := pg_catalog.clock_timestamp();
  v_today := (v_now at time zone 'UTC')::date;
  v_resets := ((v_today + 1)::timestamp at time zone 'UTC');

  -- Retention: rows from the first day of the previous month on; reservations never settled (their
  -- daemon died; a hold lasts at most 2 h) once their day is two days past.
  delete from public.mcp_usage d
   where d.user_id = v_uid
     and d.day < (pg_catalog.date_trunc('month', v_today::timestamp) - interval '1 month')::date;
  delete from public.mcp_usage d
   where d.user_id = v_uid
     and d.state = 'reserved'
     and d.day < v_today - 1;

  select coalesce(pg_catalog.sum(u.input_tokens + u.output_tokens) filter (where u.state = 'settled'), 0)::bigint,
         coalesce(pg_catalog.sum(u.reserved_tokens) filter (where u.state = 'reserved' and u.hold_until > v_now), 0)::bigint,
         (pg_catalog.count(*) filter (where u.state = 'reserved' and u.hold_until > v_now))::int,
         pg_catalog.count(*)::int
    into v_used, v_held, v_held_calls, v_calls
    from public.mcp_usage u
   where u.user_id = v_uid
     and u.day = v_today;

  if v_calls >= public.mcp_usage_max_calls_per_day() then
    return query select null::bigint, 'calls'::text, v_used, v_held, v_held_calls, v_resets;
    return;
  end if;
  if p_daily_limit is not null and v_used + v_held >= p_daily_limit then
    return query select null::bigint, 'budget'::text, v_used, v_held, v_held_calls, v_resets;
    return;
  end if;

  insert into public.mcp_usage (user_id, day, tool, model, reserved_tokens, hold_until, settle_key_hash)
  values (v_uid, v_today, p_tool, p_model, p_tokens, v_now + pg_catalog.make_interval(secs => p_hold_seconds),
          pg_catalog.sha256(pg_catalog.convert_to(p_settle_key, 'UTF8')))
  returning id into v_id;
  return query select v_id, null::text, v_used, v_held, v_held_calls, v_resets;
end
$$;

-- Settles one of the caller's reservations with the provider's counts (0..1,000,000,000 each), once.
-- Needs the key given to mcp_usage_reserve. False when there is no such unsettled reservation (wrong
-- id or key, another user's, already settled, or deleted two days after it was made). A reservation
-- that expired but is still there is settled: the counts are real, only the hold had lapsed.
create or replace function public.mcp_usage_settle(
  p_reservation_id bigint, p_settle_key text, p_input_tokens bigint, p_output_tokens bigint, p_estimated boolean)
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
    raise exception 'mcp_usage_settle: no authenticated user' using errcode = '42501';
  end if;
  if p_input_tokens is null or p_input_tokens not between 0 and 1000000000
     or p_output_tokens is null or p_output_tokens not between 0 and 1000000000 then
    raise exception 'mcp_usage_settle: token counts must be 0-1000000000' using errcode = '22023';
  end if;
  if p_settle_key is null then
    return false;
  end if;
  update public.mcp_usage u
     set state = 'settled',
         input_tokens = p_input_tokens,
         output_tokens = p_output_tokens,
         estimated = coalesce(p_estimated, false),
         settled_at = pg_catalog.clock_timestamp()
   where u.id = p_reservation_id
     and u.user_id = v_uid
     and u.state = 'reserved'
     and u.settle_key_hash = pg_catalog.sha256(pg_catalog.convert_to(p_settle_key, 'UTF8'));
  return found;
end
$$;

-- The caller's usage by model: period 'today' (the current UTC day) and 'month' (the current UTC
-- month, today included). calls / input_tokens / output_tokens count settled calls; held_calls /
-- held_tokens the live reservations (calls still running) of today.
create or replace function public.mcp_usage_summary()
returns table (period text, model text, calls int, input_tokens bigint, output_tokens bigint, held_calls int, held_tokens bigint)
language sql
stable
security definer
set search_path = ''
as $$
  with clock as (
    select pg_catalog.now() as now_at, (pg_catalog.now() at time zone 'UTC')::date as today
  ), mine as (
    select u.*
      from public.mcp_usage u, clock c
     where u.user_id = (select auth.uid())
       and u.day >= pg_catalog.date_trunc('month', c.today::timestamp)::date
  )
  select p.period, m.model,
         (pg_catalog.count(*) filter (where m.state = 'settled'))::int,
         coalesce(pg_catalog.sum(m.input_tokens) filter (where m.state = 'settled'), 0)::bigint,
         coalesce(pg_catalog.sum(m.output_tokens) filter (where m.state = 'settled'), 0)::bigint,
         (pg_catalog.count(*) filter (where p.period = 'today' and m.state = 'reserved' and m.hold_until > c.now_at))::int,
         coalesce(pg_catalog.sum(m.reserved_tokens) filter (where p.period = 'today' and m.state = 'reserved' and m.hold_until > c.now_at), 0)::bigint
    from mine m
    cross join clock c
    join (values ('today'), ('month')) as p (period) on p.period = 'month' or m.day = c.today
   group by p.period, m.model
  having pg_catalog.count(*) filter (where m.state = 'settled') > 0
      or pg_catalog.count(*) filter (where p.period = 'today' and m.state = 'reserved' and m.hold_until > c.now_at) > 0
   order by p.period desc, m.model
$$;

-- PUBLIC has EXECUTE on new functions by default and Supabase grants it to anon: revoke, then grant
-- signed-in users only.
revoke all on function public.mcp_usage_max_calls_per_day() from public, anon;
revoke all on function public.mcp_usage_reserve(text, text, bigint, bigint, int, text) from public, anon;
revoke all on function public.mcp_usage_settle(bigint, text, bigint, bigint, boolean) from public, anon;
revoke all on function public.mcp_usage_summary() from public, anon;
grant execute on function public.mcp_usage_max_calls_per_day() to authenticated;
grant execute on function public.mcp_usage_reserve(text, text, bigint, bigint, int, text) to authenticated;
grant execute on function public.mcp_usage_settle(bigint, text, bigint, bigint, boolean) to authenticated;
grant execute on function public.mcp_usage_summary() to authenticated;
