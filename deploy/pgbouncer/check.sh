#!/usr/bin/env bash
# Drill: run the test suite through a real PgBouncer in transaction mode, in front of the PostgreSQL
# that DATABASE_URL names, the way production runs (DATABASE_POOLING=transaction, LISTEN direct).
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/kellyos deploy/pgbouncer/check.sh [PYTEST ARGS]
#
# Without arguments: the ledger, receivables, till and M-Pesa tests (bookings, concurrency, webhooks)
# and the live updates. It starts its own pgbouncer on a free port of 127.0.0.1 (trust auth, config
# in a temporary directory), stops it afterwards and drops the test database it made; the server is
# not reconfigured. Prints PgBouncer's own count of the transactions and queries it carried.
# Exits 0 with SKIP when pgbouncer is not installed (Debian: apt-get install pgbouncer).
set -euo pipefail

cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}

if ! command -v pgbouncer >/dev/null; then
    echo "SKIP: pgbouncer is not installed (apt-get install pgbouncer); nothing was run."
    exit 0
fi
if [ -z "${DATABASE_URL:-}" ]; then
    echo "DATABASE_URL must name the PostgreSQL server to put PgBouncer in front of." >&2
    exit 2
fi

# host, port, user and database from DATABASE_URL, and a free port for pgbouncer.
read -r PG_HOST PG_PORT PG_USER PG_NAME PGB_PORT < <("$PYTHON" - <<'PY'
import os, socket
from urllib.parse import urlsplit
url = urlsplit(os.environ["DATABASE_URL"])
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    free = s.getsockname()[1]
print(url.hostname or "127.0.0.1", url.port or 5432, url.username or "postgres", url.path.lstrip("/") or "kellyos", free)
PY
)
DRILL_NAME="${PG_NAME}_pgbouncer"
TEST_DB="test_${DRILL_NAME}"
DIRECT="postgres://${PG_USER}@${PG_HOST}:${PG_PORT}"

WORK=$(mktemp -d /tmp/kellyos-pgbouncer.XXXXXX)
RUN_AS=()
if [ "$(id -u)" = 0 ]; then  # pgbouncer refuses to run as root
    chown nobody "$WORK"
    RUN_AS=(runuser -u nobody --)
fi
chmod 755 "$WORK"

# deploy/pgbouncer/pgbouncer.ini as shipped (pool mode, pool sizes, timeouts), with only where it
# listens, whom it trusts and where it writes moved into the sandbox.
PG_HOST=$PG_HOST PG_PORT=$PG_PORT PG_USER=$PG_USER PGB_PORT=$PGB_PORT WORK=$WORK "$PYTHON" - <<'PY'
import os, re
e = os.environ
override = {
    "listen_addr": "127.0.0.1", "listen_port": e["PGB_PORT"], "unix_socket_dir": "",
    "auth_type": "trust", "auth_file": f"{e['WORK']}/userlist.txt",
    "admin_users": e["PG_USER"], "stats_users": e["PG_USER"],
    "logfile": f"{e['WORK']}/pgbouncer.log", "pidfile": f"{e['WORK']}/pgbouncer.pid",
}
if e.get("PGB_POOL_SIZE"):
    override["default_pool_size"] = e["PGB_POOL_SIZE"]
lines, section = [], None
for line in open("deploy/pgbouncer/pgbouncer.ini"):
    if m := re.match(r"\[(\w+)\]", line):
        section = m[1]
    elif section == "databases" and re.match(r"\w+\s*=", line):
        line = f"* = host={e['PG_HOST']} port={e['PG_PORT']}\n"  # any database name, as the tests need
    elif section == "pgbouncer" and (m := re.match(r"(\w+)\s*=", line)) and m[1] in override:
        line = f"{m[1]} = {override[m[1]]}\n"
        if m[1] == "auth_type":  # roles the tests create on the fly are looked up in pg_shadow
            line += f"auth_user = {e['PG_USER']}\n"
    lines.append(line)
open(f"{e['WORK']}/pgbouncer.ini", "w").write("".join(lines))
PY
printf '"%s" ""\n' "$PG_USER" >"$WORK/userlist.txt"
chmod 644 "$WORK/pgbouncer.ini" "$WORK/userlist.txt"

drop_test_database() {
    PGOPTIONS="-c client_min_messages=warning" psql -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres \
        -c "DROP DATABASE IF EXISTS \"${TEST_DB}\" WITH (FORCE)" >/dev/null
}

stop() {
    if [ -s "$WORK/pgbouncer.pid" ]; then
        kill "$(cat "$WORK/pgbouncer.pid")" 2>/dev/null || true
    fi
    wait "$PGB" 2>/dev/null || true
    drop_test_database || true
    rm -rf "$WORK"
}

drop_test_database
"${RUN_AS[@]}" pgbouncer --quiet "$WORK/pgbouncer.ini" &
PGB=$!
trap stop EXIT
for _ in $(seq 50); do
    pg_isready -q -h 127.0.0.1 -p "$PGB_PORT" && break
    sleep 0.1
done
pg_isready -q -h 127.0.0.1 -p "$PGB_PORT" || { cat "$WORK/pgbouncer.log" >&2; exit 1; }
echo "$(pgbouncer --version | head -1) on 127.0.0.1:${PGB_PORT}, in front of ${PG_HOST}:${PG_PORT}:"
grep -E '^(pool_mode|default_pool_size|reserve_pool_size|max_client_conn|query_wait_timeout|idle_transaction_timeout) ' \
    "$WORK/pgbouncer.ini" | sed 's/^/  /' 

if [ $# -eq 0 ]; then
    set -- tests/ledger tests/customers tests/invoices tests/pos tests/mpesa tests/kellyos/test_events.py \
        tests/kellyos/test_pooling.py -q
fi
status=0
# --reuse-db: Django's drop at the end would go through PgBouncer, which still holds server
# connections to the test database; it is dropped directly afterwards instead.
DATABASE_URL="postgres://${PG_USER}@127.0.0.1:${PGB_PORT}/${DRILL_NAME}" \
    DATABASE_POOLING=transaction EVENTS_DATABASE_URL="$DIRECT" \
    .venv/bin/pytest --reuse-db -p no:cacheprovider "$@" || status=$?

echo "PgBouncer's counters for ${TEST_DB} (SHOW STATS):"
psql -h 127.0.0.1 -p "$PGB_PORT" -U "$PG_USER" -d pgbouncer -A -F ' ' -c "SHOW STATS" \
    | awk -v db="$TEST_DB" 'NR==1 {for (i = 1; i <= NF; i++) col[$i] = i}
        $1 == db {print "  transactions " $col["total_xact_count"] ", queries " $col["total_query_count"]}'
exit $status
