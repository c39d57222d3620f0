#!/usr/bin/env bash
# Each service README's configuration table is its program's --help, as
# scripts/config-tables.sh generates it: a key added, renamed or given
# another default without the README fails here.
set -u
cd "$(dirname "$0")/../.."
if BUILD=${ROLLCALL_BUILD:-${BUILD:-build}} scripts/config-tables.sh --check; then
    echo "ok   config_tables: every README's table is its program's --help"
else
    echo "FAIL config_tables: run scripts/config-tables.sh and commit the READMEs"
    exit 1
fi
