#!/usr/bin/env bash
# Starts a Debian PostgreSQL server for CI and prints its DATABASE_URL on stdout (everything else goes to stderr).
#
#   export DATABASE_URL="$(scripts/db-ci-postgres.sh)"     # as root; then the PostgreSQL storage tests run
#   scripts/db-ci-postgres.sh --stop                       # stops the cluster again
#
# It uses its own cluster (default "priorpath" on port 5433), never the distribution's "main" cluster, and is
# idempotent: run twice, it reuses the cluster, the role and the database. Installs the `postgresql` package with
# apt when pg_createcluster is missing. Environment: PG_CLUSTER, PG_PORT, PG_VERSION (default: newest installed),
# PG_PASSWORD (default priorpath; a CI-only throwaway credential).
set -euo pipefail

log() { echo "db-ci-postgres: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = "0" ] || die "run as root (it creates a cluster and switches to the postgres user)"

cluster="${PG_CLUSTER:-priorpath}"
port="${PG_PORT:-5433}"
password="${PG_PASSWORD:-priorpath}"
[[ "$cluster" =~ ^[a-z][a-z0-9_]*$ ]] || die "PG_CLUSTER must be a lower-case identifier"
[[ "$port" =~ ^[0-9]+$ ]] || die "PG_PORT must be a number"
[[ "$password" =~ ^[A-Za-z0-9._-]+$ ]] || die "PG_PASSWORD may hold only letters, digits, . _ -"

if ! command -v pg_createcluster >/dev/null 2>&1; then
  log "installing postgresql with apt"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
fi

version="${PG_VERSION:-$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)}"
[ -n "$version" ] && [ -x "/usr/lib/postgresql/$version/bin/postgres" ] || die "no PostgreSQL server binaries under /usr/lib/postgresql"

# pg_lsclusters -h columns: version cluster port status owner datadir logfile
row() { pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c'; }

if [ "${1:-}" = "--stop" ]; then
  if [ -n "$(row)" ]; then pg_ctlcluster "$version" "$cluster" stop >&2 || true; fi
  log "stopped $version/$cluster"
  exit 0
fi

if [ -z "$(row)" ]; then
  log "creating cluster $version/$cluster on port $port"
  pg_createcluster --port "$port" "$version" "$cluster" >&2
fi
port="$(row | awk '{print $3}')"
if [ "$(row | awk '{print $4}')" != "online" ]; then
  log "starting $version/$cluster"
  pg_ctlcluster "$version" "$cluster" start >&2
fi
for _ in $(seq 1 30); do
  if pg_isready -q -h 127.0.0.1 -p "$port"; then break; fi
  sleep 1
done
pg_isready -q -h 127.0.0.1 -p "$port" || die "server on port $port did not become ready"

as_postgres() { runuser -u postgres -- "$@"; }
as_postgres psql -p "$port" -X -q -v ON_ERROR_STOP=1 -d postgres >&2 <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'priorpath') THEN
    CREATE ROLE priorpath LOGIN PASSWORD '${password}';
  ELSE
    ALTER ROLE priorpath LOGIN PASSWORD '${password}';
  END IF;
END
\$\$;
SQL
if [ "$(as_postgres psql -p "$port" -X -tAq -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'priorpath'")" != "1" ]; then
  as_postgres createdb -p "$port" -O priorpath priorpath >&2
fi

url="postgres://priorpath:${password}@127.0.0.1:${port}/priorpath"
PGPASSWORD="$password" psql "$url" -X -tAq -c 'SELECT 1' >/dev/null || die "cannot connect as priorpath"
log "ready: PostgreSQL $version cluster $cluster on 127.0.0.1:$port"
echo "$url"
