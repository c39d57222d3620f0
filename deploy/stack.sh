#!/usr/bin/env bash
# The embedded stack on one machine, no containers: a PostgreSQL cluster in
# var/pg, the development broker, the migrations, and every Rollcall service
# that has been built.  `up` is idempotent; `down` stops exactly what `up`
# started (pid files in var/run).  Connection settings go to var/stack.env.
#
#   deploy/stack.sh up | down | status | env | start SERVICE...
#
# `start` starts the named services (village, rollup, ...) that are not
# running, with the settings `up` wrote, and nothing else: a service that
# died comes back in a second.
#
# Ports: ROLLCALL_PORT_BASE (default 25400: below the ephemeral range
# 32768-60999, where a client's TIME_WAIT socket can block a listener) + 32 PostgreSQL, +80 village
# intake, +81 rollup, +82 township, +83 county, +84 province, +86 dashboard,
# +89 broker control.
#
# Every service and the operators' CLI connect with a role of their own
# (migrations/007_access.sql): its password is random, kept in var/pgpass
# (0600, libpq's passfile) and set by `up`; var/stack.env gets one DSN per
# role (ROLLCALL_PG_DSN_<ROLE>), without the password.  ROLLCALL_PG_DSN
# stays the owner's (the migrations and the registry import).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
VAR=$ROOT/var
RUN=$VAR/run
LOG=$VAR/log
BASE=${ROLLCALL_PORT_BASE:-25400}
PG_PORT=$((BASE + 32))
CONTROL_PORT=$((BASE + 89))
PGBIN=${ROLLCALL_PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
PG_DSN="host=127.0.0.1 port=$PG_PORT dbname=rollcall user=postgres"

# Services and their port offsets; a service is started only once it is built.
SERVICES=(village:80 rollup:81 township:82 county:83 province:84 dashboard:86)
# The database role each service connects as.
service_role() {
    case $1 in
        village) echo intake ;;
        township|county|province) echo level ;;
        *) echo "$1" ;;
    esac
}
ROLES=(intake rollup level dashboard ops)

say() { printf 'stack: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# PostgreSQL refuses to run as root: the data directory belongs to the
# postgres user.  When that user cannot reach var/ (a checkout under /root),
# the cluster lives under /var/tmp and var/pg points at it.
pg_datadir() {
    if [ -L "$VAR/pg" ] || [ -d "$VAR/pg" ]; then
        readlink -f "$VAR/pg"
        return
    fi
    mkdir -p "$VAR/pg"
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$VAR/pg"
        if ! runuser -u postgres -- test -w "$VAR/pg"; then
            rmdir "$VAR/pg"
            local alt
            alt=/var/tmp/rollcall-pg-$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)
            mkdir -p "$alt"; chown postgres: "$alt"
            ln -s "$alt" "$VAR/pg"
        fi
    fi
    readlink -f "$VAR/pg"
}

pg_up() {
    [ -x "$PGBIN/initdb" ] || die "PostgreSQL binaries not found (install the postgresql package)"
    local data; data=$(pg_datadir)
    if [ ! -f "$data/PG_VERSION" ]; then
        say "initialising PostgreSQL cluster in $data"
        as_postgres "$PGBIN/initdb" -D "$data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$LOG/initdb.log" 2>&1 \
            || die "initdb failed, see $LOG/initdb.log"
        cat >>"$data/postgresql.conf" <<CONF
# Rollcall embedded stack
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = 1GB
work_mem = 64MB
maintenance_work_mem = 512MB
max_wal_size = 8GB
checkpoint_timeout = 30min
CONF
    fi
    # The component roles sign in with their password (the owner keeps the
    # embedded cluster's trust): first match wins, so these lines go first.
    if ! grep -q '^# rollcall roles' "$data/pg_hba.conf"; then
        local roles; roles=$(printf 'rollcall_%s,' "${ROLES[@]}"); roles=${roles%,}
        { echo "# rollcall roles: password required"
          echo "host all $roles 127.0.0.1/32 scram-sha-256"
          echo "local all $roles scram-sha-256"
          cat "$data/pg_hba.conf"; } >"$data/pg_hba.conf.new"
        chown --reference="$data/pg_hba.conf" "$data/pg_hba.conf.new"
        mv "$data/pg_hba.conf.new" "$data/pg_hba.conf"
        if as_postgres "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
            as_postgres "$PGBIN/pg_ctl" -D "$data" reload >/dev/null
        fi
    fi
    if as_postgres "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        say "PostgreSQL already running on port $PG_PORT"
    else
        as_postgres "$PGBIN/pg_ctl" -D "$data" -w -t 60 -l "$data/server.log" \
            -o "-p $PG_PORT -k $data" start >/dev/null || die "PostgreSQL did not start, see $data/server.log"
        echo started >"$RUN/pg.started"
        say "PostgreSQL started on port $PG_PORT"
    fi
    if ! psql -qAt "host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres" \
            -c "SELECT 1 FROM pg_database WHERE datname = 'rollcall'" | grep -q 1; then
        psql -q "host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres" -c "CREATE DATABASE rollcall" \
            || die "could not create database rollcall"
    fi
}

pg_down() {
    [ -e "$VAR/pg" ] || return 0
    local data; data=$(readlink -f "$VAR/pg")
    if as_postgres "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_postgres "$PGBIN/pg_ctl" -D "$data" -w -m fast stop >/dev/null && say "PostgreSQL stopped"
    fi
    rm -f "$RUN/pg.started"
}

broker_up() {
    local bin=$BUILD/rollcall-devbroker
    [ -x "$bin" ] || die "$bin is not built (run make)"
    if alive "$RUN/devbroker.pid"; then
        say "development broker already running"
        return
    fi
    rm -f "$RUN/broker.addr"
    "$bin" --control-port "$CONTROL_PORT" --bootstrap-file "$RUN/broker.addr" \
        >"$LOG/devbroker.out" 2>"$LOG/devbroker.log" </dev/null &
    echo $! >"$RUN/devbroker.pid"
    for _ in $(seq 1 100); do
        [ -s "$RUN/broker.addr" ] && break
        alive "$RUN/devbroker.pid" || die "development broker exited, see $LOG/devbroker.log"
        sleep 0.1
    done
    [ -s "$RUN/broker.addr" ] || die "development broker did not report its address"
    # The development broker starts empty: offsets remembered from an earlier
    # broker would point past the end of the new, empty topics.
    psql -qAt "$PG_DSN" -c "DO \$\$ BEGIN IF to_regclass('rollcall.consumer_offset') IS NOT NULL THEN DELETE FROM rollcall.consumer_offset; END IF; END \$\$" >/dev/null
    say "development broker at $(cat "$RUN/broker.addr") (in memory only: ~5 MiB kept per partition)"
}

write_env() {
    local village_port=$((BASE + 80))
    cat >"$VAR/stack.env.tmp" <<ENV
# Written by deploy/stack.sh; source it: set -a; . var/stack.env; set +a
ROLLCALL_KAFKA_BROKERS=$(cat "$RUN/broker.addr")
ROLLCALL_PG_DSN='$PG_DSN'
ROLLCALL_HTTP=http://127.0.0.1:$village_port
ROLLCALL_BROKER_CONTROL=http://127.0.0.1:$CONTROL_PORT
ROLLCALL_PORT_BASE=$BASE
ROLLCALL_DASHBOARD=http://127.0.0.1:$((BASE + 86))
ENV
    if [ -s "$VAR/pgpass" ]; then
        local r
        for r in "${ROLES[@]}"; do
            printf "ROLLCALL_PG_DSN_%s='host=127.0.0.1 port=%s dbname=rollcall user=rollcall_%s passfile=%s'\n" \
                "${r^^}" "$PG_PORT" "$r" "$VAR/pgpass" >>"$VAR/stack.env.tmp"
        done
    fi
    mv "$VAR/stack.env.tmp" "$VAR/stack.env"
}

# Gives every component role (created by migration 007) a random password,
# once: kept in var/pgpass, passed to psql on stdin, never on a command line.
role_passwords() {
    local r pw
    if [ ! -s "$VAR/pgpass" ]; then
        umask 077
        : >"$VAR/pgpass.tmp"
        for r in "${ROLES[@]}"; do
            pw=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
            printf '127.0.0.1:%s:*:rollcall_%s:%s\n' "$PG_PORT" "$r" "$pw" >>"$VAR/pgpass.tmp"
        done
        mv "$VAR/pgpass.tmp" "$VAR/pgpass"
        umask 022
    fi
    # The port may have changed since the file was written (another
    # ROLLCALL_PORT_BASE): the passwords stay, the port follows.
    sed -i "s/^127\.0\.0\.1:[0-9]*:/127.0.0.1:$PG_PORT:/" "$VAR/pgpass"
    while IFS=: read -r _ _ _ r pw; do
        printf "ALTER ROLE %s PASSWORD '%s';\n" "$r" "$pw"
    done <"$VAR/pgpass" | psql -X -q -v ON_ERROR_STOP=1 "$PG_DSN" >/dev/null \
        || die "could not set the roles' passwords"
}

# Starts every built service that is not running, or only those named.
services_up() {
    set -a; . "$VAR/stack.env"; set +a
    local entry name port bin role dsn_var extra only=" $* "
    for entry in "${SERVICES[@]}"; do
        name=${entry%%:*}; port=$((BASE + ${entry##*:}))
        [ $# -eq 0 ] || [[ $only == *" $name "* ]] || continue
        bin=$BUILD/rollcall-$name
        [ -x "$bin" ] || continue
        if alive "$RUN/$name.pid"; then continue; fi
        role=$(service_role "$name")
        dsn_var=ROLLCALL_PG_DSN_${role^^}
        [ -n "${!dsn_var:-}" ] || die "$dsn_var is not in var/stack.env"
        extra=()
        [ "$name" = dashboard ] && extra=(--web_root="$ROOT/$BUILD/web")
        ROLLCALL_PG_DSN=${!dsn_var} "$bin" --http_port="$port" "${extra[@]}" >>"$LOG/$name.log" 2>&1 </dev/null &
        echo $! >"$RUN/$name.pid"
        for _ in $(seq 1 50); do
            curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
            alive "$RUN/$name.pid" || die "rollcall-$name exited at start, see $LOG/$name.log"
            sleep 0.1
        done
        say "rollcall-$name on port $port"
    done
}

stop_pidfile() {
    local f=$1 name; name=$(basename "$f" .pid)
    if alive "$f"; then
        kill -TERM "$(cat "$f")" 2>/dev/null || true
        for _ in $(seq 1 100); do alive "$f" || break; sleep 0.1; done
        if alive "$f"; then kill -KILL "$(cat "$f")" 2>/dev/null || true; fi
        say "$name stopped"
    fi
    rm -f "$f"
}

up() {
    mkdir -p "$RUN" "$LOG"
    pg_up
    broker_up
    write_env
    "$BUILD/rollcall" migrate --dsn "$PG_DSN" >&2 || die "migrations failed"
    role_passwords
    write_env
    # An empty registry gets the sample county, so that a new stack can take
    # reports at once; `rollcall registry import` loads the real one.
    if [ "$(psql -qAt "$PG_DSN" -c "SELECT count(*) FROM rollcall.unit")" = 0 ]; then
        "$BUILD/rollcall" registry import --csv tests/data/registry-130102.csv --dsn "$PG_DSN" >/dev/null \
            || die "sample registry import failed"
        say "empty registry: imported the sample county 130102"
    fi
    services_up
    say "up; settings in var/stack.env"
}

down() {
    local entry
    for entry in "${SERVICES[@]}"; do stop_pidfile "$RUN/${entry%%:*}.pid"; done
    stop_pidfile "$RUN/devbroker.pid"
    pg_down
    rm -f "$VAR/stack.env"
}

status() {
    local f
    for f in "$RUN"/*.pid; do
        [ -e "$f" ] || continue
        if alive "$f"; then echo "$(basename "$f" .pid): running (pid $(cat "$f"))"
        else echo "$(basename "$f" .pid): not running"; fi
    done
    if [ -e "$VAR/pg" ] && as_postgres "$PGBIN/pg_ctl" -D "$(readlink -f "$VAR/pg")" status >/dev/null 2>&1; then
        echo "postgresql: running (port $PG_PORT)"
    else
        echo "postgresql: not running"
    fi
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    env) cat "$VAR/stack.env" ;;
    start)
        shift
        [ $# -gt 0 ] || die "start: name the services"
        [ -f "$VAR/stack.env" ] || die "start: the stack is not up (deploy/stack.sh up)"
        services_up "$@" ;;
    *) echo "usage: $0 up|down|status|env|start SERVICE..." >&2; exit 2 ;;
esac
