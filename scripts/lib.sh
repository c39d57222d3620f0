# scripts/lib.sh — the helpers every shell script of the project shares.
# Source it from the repository root:  . scripts/lib.sh
# and set SAY_AS to the script's name (the prefix of every message).
#
#   say MSG          "NAME: MSG" on stderr
#   die MSG          "FAIL NAME: MSG", counted, exit 1 (an EXIT trap sees FAILED)
#   fail MSG         "FAIL NAME: MSG", counted; the script goes on
#   pass MSG         "ok   NAME: MSG"
#   skip MSG         "SKIP NAME: MSG", exit 0 (a test whose prerequisites are missing)
#   finish           exit 1 when any fail was counted, else 0
#   now / secs A B   a wall clock in seconds, and B - A with two decimals
#   stack_env        exports var/stack.env (the embedded stack's settings)
#   stack_env_unless_set  the same unless ROLLCALL_PG_DSN is already set
#                    (a caller's own database wins); nothing when absent
#   psql_at DSN ...  psql quiet, unaligned, tuples only, stopping on error
#   psql_admin ...   psql_at on the maintenance database of ROLLCALL_PG_DSN
#   await_healthz URL [TRIES]  waits for URL/healthz to answer 2xx
#   stop_pidfiles RUNDIR NAME...  stops each process RUNDIR/NAME.pid names
#                    (TERM, KILL after 10 s) and removes the pid file
SAY_AS=${SAY_AS:-$(basename "$0" .sh)}
FAILED=${FAILED:-0}

say() { printf '%s: %s\n' "$SAY_AS" "$*" >&2; }
die() { printf 'FAIL %s: %s\n' "$SAY_AS" "$*"; FAILED=$((FAILED + 1)); exit 1; }
fail() { printf 'FAIL %s: %s\n' "$SAY_AS" "$*"; FAILED=$((FAILED + 1)); }
pass() { printf 'ok   %s: %s\n' "$SAY_AS" "$*"; }
skip() { printf 'SKIP %s: %s\n' "$SAY_AS" "$*"; exit 0; }
finish() {
    if [ "$FAILED" -gt 0 ]; then say "$FAILED failed"; exit 1; fi
    say "ok"; exit 0
}

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

stack_env() { set -a; . var/stack.env; set +a; }
stack_env_unless_set() {
    if [ -z "${ROLLCALL_PG_DSN:-}" ] && [ -f var/stack.env ]; then stack_env; fi
}

# 0.1 s a try, 100 by default; returns 1 if it never answers.
await_healthz() {
    local url=$1 tries=${2:-100}
    for _ in $(seq 1 "$tries"); do
        curl -fs "$url/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

psql_at() { local dsn=$1; shift; psql -X -qAt -v ON_ERROR_STOP=1 "$dsn" "$@"; }
psql_admin() { psql_at "$ROLLCALL_PG_DSN dbname=postgres" "$@"; }

stop_pidfiles() {
    local run=$1 name pid
    shift
    for name in "$@"; do
        [ -f "$run/$name.pid" ] || continue
        pid=$(cat "$run/$name.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        fi
        rm -f "$run/$name.pid"
    done
}
