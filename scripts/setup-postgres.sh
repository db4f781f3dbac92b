#!/usr/bin/env bash
# Makes a local PostgreSQL server ready for the PostgreSQL store tests: installs Debian's
# `postgresql` if missing, starts its cluster, creates the role and database, and prints the
# URL to pass as COFLUX_TEST_DATABASE_URL (last line of output).
# Idempotent: re-running only checks that each part is there.
#
# Role, password and database: $COFLUX_PG_USER (coflux), $COFLUX_PG_PASSWORD (coflux),
# $COFLUX_PG_DB (coflux_test). Needs root (apt-get, and running commands as `postgres`).
set -euo pipefail

user="${COFLUX_PG_USER:-coflux}"
password="${COFLUX_PG_PASSWORD:-coflux}"
db="${COFLUX_PG_DB:-coflux_test}"

if ! command -v pg_lsclusters >/dev/null || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
  echo "installing postgresql" >&2
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
fi

version="$(ls /usr/lib/postgresql | sort -n | tail -n 1)"
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
  echo "creating cluster $version/main" >&2
  pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
  echo "starting cluster $version/main" >&2
  pg_ctlcluster "$version" main start >&2
fi
port="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')"

psql_admin() {
  runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qtA "$@"
}
for _ in $(seq 1 50); do
  psql_admin -c "SELECT 1" >/dev/null 2>&1 && break
  sleep 0.2
done
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" != "1" ]; then
  echo "creating role $user" >&2
  psql_admin -c "CREATE ROLE \"$user\" LOGIN PASSWORD '$password'" >&2
fi
# CREATEDB: the end-to-end suite on PostgreSQL gives each server a database of its own
# (tests/src/backend.rs), and the cluster chaos tests each test cluster.
if [ "$(psql_admin -c "SELECT rolcreatedb FROM pg_roles WHERE rolname = '$user'")" != "t" ]; then
  echo "granting CREATEDB to $user" >&2
  psql_admin -c "ALTER ROLE \"$user\" CREATEDB" >&2
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != "1" ]; then
  echo "creating database $db" >&2
  psql_admin -c "CREATE DATABASE \"$db\" OWNER \"$user\"" >&2
fi

echo "postgres://$user:$password@127.0.0.1:$port/$db"
