#!/bin/bash
# One-shot job of docker-compose.yml, after the migrations: gives each
# component's PostgreSQL role (created by the migrations, never a superuser,
# never an owner) its password from its docker secret, and creates Grafana's
# read-only role: a member of rollcall_dashboard (so row-level security scopes
# it), read-only by default, scoped to one unit (ROLLCALL_GRAFANA_SCOPE).
set -euo pipefail
export PGHOST=${PGHOST:-postgres} PGDATABASE=${PGDATABASE:-rollcall} PGUSER=${PGUSER:-rollcall}
PGPASSWORD=$(cat /run/secrets/pg_password); export PGPASSWORD
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

for i in $(seq 1 60); do
    pg_isready -q && break
    [ "$i" = 60 ] && { echo "init-roles: PostgreSQL not reachable" >&2; exit 1; }
    sleep 2
done
for pair in intake:pg_intake_password rollup:pg_rollup_password level:pg_level_password \
            dashboard:pg_dashboard_password ops:pg_ops_password; do
    role=rollcall_${pair%%:*} file=/run/secrets/${pair#*:}
    if [ "$(psql_q -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$role'")" != 1 ]; then
        echo "init-roles: role $role does not exist: the migrations create it (007_access.sql); run migrate first" >&2
        exit 1
    fi
    psql_q -v role="$role" -v pw="$(cat "$file")" <<'SQL'
ALTER ROLE :"role" WITH LOGIN PASSWORD :'pw';
SQL
    echo "init-roles: password set for $role"
done
psql_q -v pw="$(cat /run/secrets/pg_grafana_password)" -v scope="${ROLLCALL_GRAFANA_SCOPE:-}" <<'SQL'
SELECT 'CREATE ROLE rollcall_grafana' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rollcall_grafana') \gexec
ALTER ROLE rollcall_grafana WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'pw';
GRANT rollcall_dashboard TO rollcall_grafana;
ALTER ROLE rollcall_grafana SET default_transaction_read_only = on;
ALTER ROLE rollcall_grafana SET rollcall.scope = :'scope';
SQL
echo "init-roles: rollcall_grafana read-only, scope '${ROLLCALL_GRAFANA_SCOPE:-}'"
