#!/usr/bin/env bash
# Makes the machine's PostgreSQL 15 ready for the PostgreSQL tests:
# starts the stopped cluster (CI images ship it installed but stopped), makes
# sure the role faxbridge (password faxbridge, CREATEDB) and the database
# faxbridge exist, and checks a login with the test URL. Idempotent: a running
# cluster, an existing role or database are left as they are.
#
# Exit 0: PostgreSQL is reachable at the URL printed on stdout (the caller
# exports it as FAXBRIDGE_TEST_DATABASE_URL). Exit 1: no PostgreSQL here (not
# installed, not root, failed to start); a note goes to stderr, nothing is
# changed, and the PostgreSQL tests skip.
set -uo pipefail

# Only the URL may reach stdout: the caller takes stdout as the URL, and
# pg_ctlcluster, psql and friends print notices there on some machines (a CI
# run once exported such a notice as FAXBRIDGE_TEST_DATABASE_URL). Everything
# else goes to stderr; the URL goes to the saved stdout (fd 3) at the end.
exec 3>&1 1>&2

URL="postgres://faxbridge:faxbridge@127.0.0.1:5432/faxbridge"
VERSION=15
CLUSTER=main

note() { echo "note: $*; PostgreSQL tests will be skipped" >&2; }

if ! command -v pg_lsclusters >/dev/null || ! command -v psql >/dev/null; then
  note "PostgreSQL is not installed (no pg_lsclusters/psql)"
  exit 1
fi
status=$(pg_lsclusters --no-header 2>/dev/null | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c { print $4 }')
if [ -z "$status" ]; then
  note "no PostgreSQL $VERSION cluster '$CLUSTER' on this machine"
  exit 1
fi

# As the postgres superuser (root switches to it; anyone else can only use what is there).
as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"
  elif [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"
  else return 1
  fi
}

if [ "$status" != online ]; then
  if [ "$(id -u)" != 0 ]; then
    note "PostgreSQL $VERSION/$CLUSTER is $status and starting it needs root"
    exit 1
  fi
  # 3>&- : the server it leaves running must not hold the caller's stdout open.
  if ! pg_ctlcluster "$VERSION" "$CLUSTER" start 3>&-; then
    note "pg_ctlcluster $VERSION $CLUSTER start failed"
    exit 1
  fi
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 0.5
done
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  note "PostgreSQL $VERSION/$CLUSTER does not accept connections on 127.0.0.1:5432"
  exit 1
fi

# Role and database, created only when missing (an existing role keeps its password).
if as_postgres true 2>/dev/null; then
  as_postgres psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL' >/dev/null || { note "could not create the role faxbridge"; exit 1; }
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'faxbridge') THEN
    CREATE ROLE faxbridge LOGIN CREATEDB PASSWORD 'faxbridge';
  ELSIF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'faxbridge' AND rolcanlogin AND rolcreatedb) THEN
    ALTER ROLE faxbridge LOGIN CREATEDB;
  END IF;
END
$$;
SQL
  if [ "$(as_postgres psql -X -qtA -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'faxbridge'")" != 1 ]; then
    as_postgres psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE faxbridge OWNER faxbridge" >/dev/null \
      || { note "could not create the database faxbridge"; exit 1; }
  fi
fi

if ! PGCONNECT_TIMEOUT=5 psql -X -qtA "$URL" -c "SELECT 1" >/dev/null 2>&1; then
  note "cannot log in as faxbridge at 127.0.0.1:5432/faxbridge"
  exit 1
fi
echo "$URL" >&3
