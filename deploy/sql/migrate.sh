#!/usr/bin/env bash
# migrate.sh: bring a Redress database up to date with the migrations beside this script.
#
# Each deploy/sql/NNNN_name.sql is applied once, in order of NNNN, in one transaction together
# with its row in schema_migrations (version = NNNN), so a migration is either wholly applied
# and recorded or not at all. Every transaction first takes a transaction-level advisory lock
# and re-checks schema_migrations, so concurrent runs (parallel tests, two hosts deploying at
# once) serialise instead of racing: the second one finds the work done and skips it.
# Never edit or renumber a migration that has been applied anywhere; add a new one.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: deploy/sql/migrate.sh [--dsn DSN] [--dir DIR] [--quiet]

Applies every DIR/NNNN_*.sql not yet recorded in the table schema_migrations (created if
missing), in order, each in its own transaction. Safe to re-run and to run concurrently.

Options:
  --dsn DSN   libpq connection string or URI (default: $REDRESS_PG_DSN)
  --dir DIR   where the migrations are (default: the directory of this script)
  -q, --quiet print nothing unless something fails
  -h, --help  show this help

Example:
  deploy/sql/migrate.sh --dsn "host=127.0.0.1 port=55432 dbname=redress user=redress"
EOF
}

die() {
  printf 'migrate: error: %s\n' "$*" >&2
  exit 1
}

dsn=${REDRESS_PG_DSN:-}
dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
quiet=0
while (($#)); do
  case $1 in
    --dsn) (($# >= 2)) || die "--dsn needs a value"; dsn=$2; shift 2 ;;
    --dsn=*) dsn=${1#--dsn=}; shift ;;
    --dir) (($# >= 2)) || die "--dir needs a value"; dir=$2; shift 2 ;;
    --dir=*) dir=${1#--dir=}; shift ;;
    -q | --quiet) quiet=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ -n $dsn ]] || die "no database given: pass --dsn DSN or set REDRESS_PG_DSN"
[[ -d $dir ]] || die "no such directory: $dir"

say() { ((quiet)) || printf 'migrate: %s\n' "$*"; }

psql_bin=$(command -v psql || true)
if [[ -z $psql_bin ]]; then
  for d in /usr/lib/postgresql/*/bin; do [[ -x $d/psql ]] && psql_bin=$d/psql; done
fi
[[ -n $psql_bin ]] || die "psql not found; install the 'postgresql-client' package"

export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}
export PGOPTIONS="${PGOPTIONS:+$PGOPTIONS }-c client_min_messages=warning"
# Arbitrary but fixed: every migrate.sh of every version must use the same key.
lock_key=7265647265737301

run_psql() { "$psql_bin" -X -q -v ON_ERROR_STOP=1 -d "$dsn" "$@"; }

# Collect the migrations, refusing two with one number (two branches each adding "0007_...").
declare -A seen=()
files=()
while IFS= read -r f; do
  base=${f##*/}
  version=${base%%_*}
  [[ -z ${seen[$version]:-} ]] || die "two migrations share the number $version: ${seen[$version]} and $base; renumber one"
  seen[$version]=$base
  files+=("$f")
done < <(find "$dir" -maxdepth 1 -type f -name '[0-9][0-9][0-9][0-9]*_*.sql' | LC_ALL=C sort)
((${#files[@]})) || die "no migrations (NNNN_*.sql) in $dir"

run_psql -1 -o /dev/null \
  -c "SELECT pg_advisory_xact_lock($lock_key)" \
  -c "CREATE TABLE IF NOT EXISTS schema_migrations (
        version    text PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT now())" ||
  die "could not reach the database or create schema_migrations (dsn: $dsn)"

applied=$(run_psql -At -c "SELECT version FROM schema_migrations") || die "could not read schema_migrations"
declare -A done_before=()
while IFS= read -r v; do [[ -n $v ]] && done_before[$v]=1; done <<<"$applied"

count=0
for f in "${files[@]}"; do
  base=${f##*/}
  version=${base%%_*}
  [[ -z ${done_before[$version]:-} ]] || continue
  # The lock and the re-check happen inside the migration's own transaction: whoever gets the
  # lock second sees the first one's row and skips the file.
  if ! result=$(run_psql -1 -v version="$version" -v file="$f" -v lock_key="$lock_key" -f - <<'SQL'
\o /dev/null
SELECT pg_advisory_xact_lock(:lock_key);
SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = :'version') AS rd_already \gset
\if :rd_already
\echo skipped
\else
\i :file
INSERT INTO schema_migrations (version) VALUES (:'version');
\echo applied
\endif
SQL
  ); then
    die "$base failed (rolled back, nothing of it applied); see the error above"
  fi
  case $result in
    *applied) say "applied $base"; count=$((count + 1)) ;;
    *skipped) say "skipped $base (applied meanwhile by a concurrent run)" ;;
    *) die "unexpected output while applying $base: $result" ;;
  esac
done
say "database is up to date ($count applied now, ${#files[@]} known)"
