#!/usr/bin/env bash
# Makes sure a real PostgreSQL 15 runs on 127.0.0.1:5432 with a test role the suites can use.
# Source it: `. scripts/postgres.sh`. Exports EXAI_TEST_PG_ADMIN_URL.
# Installs postgresql-15 from Debian when missing (needs root, as on CI).
set -u
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -d /usr/lib/postgresql/15 ]; then
  echo "[setup] installing PostgreSQL 15 (apt-get) ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q postgresql-15; } >&2 \
    || { echo "[setup] could not install postgresql-15; install it, then re-run" >&2; return 1 2>/dev/null || exit 1; }
fi
if ! pg_lsclusters -h 2>/dev/null | grep -q '^15 *main'; then
  pg_createcluster 15 main >&2
fi
if ! pg_lsclusters -h | grep -q '^15 *main .* online'; then
  pg_ctlcluster --skip-systemctl-redirect 15 main start >&2 \
    || { echo "[setup] PostgreSQL 15 did not start; see /var/log/postgresql/postgresql-15-main.log" >&2; return 1 2>/dev/null || exit 1; }
fi
# A superuser role for tests only (it creates and drops one database per suite run).
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -c "do \$\$ begin
  if not exists (select from pg_roles where rolname = 'exai_test') then
    create role exai_test login superuser password 'exai_test';
  end if; end \$\$;" >&2
export EXAI_TEST_PG_ADMIN_URL=${EXAI_TEST_PG_ADMIN_URL:-postgres://exai_test:exai_test@127.0.0.1:5432/postgres}
