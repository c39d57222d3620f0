#!/usr/bin/env bash
# The Today page in the browser: navigation start to fully drawn, for the
# sample county (bench/dashboard-page.js prints the figures).  Runs against
# the stack as it is (make up; the browser tests leave 30 days of 130102 in
# it); a bench account is created or given a new password each run.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BUILD=$BUILD deploy/stack.sh up >/dev/null 2>&1
set -a; . var/stack.env; set +a
[ -x "$BUILD/rollcall-dashboard" ] || { echo "dashboard-page: $BUILD/rollcall-dashboard is not built"; exit 1; }
export RC_UNIT=${RC_UNIT:-130102} RC_USER=bench.viewer.${RC_UNIT:-130102}
RC_PASSWORD=$(head -c 18 /dev/urandom | base64); export RC_PASSWORD
printf '%s\n' "$RC_PASSWORD" | "$BUILD/rollcall" user add "$RC_USER" --unit "$RC_UNIT" --role viewer >/dev/null 2>&1 \
    || printf '%s\n' "$RC_PASSWORD" | "$BUILD/rollcall" user passwd "$RC_USER" >/dev/null
days=$(psql -qAtX "$ROLLCALL_PG_DSN" -c "SELECT count(DISTINCT period) FROM rollcall.aggregate WHERE unit_code = '$RC_UNIT'")
echo "dashboard-page: $RC_UNIT has $days days of aggregates"
node bench/dashboard-page.js
