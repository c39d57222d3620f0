#!/usr/bin/env bash
# The configuration tables of the services' READMEs, generated from each
# program's --help (its configuration table), so that no README can go
# stale.  A table lives between
#   <!-- config: rollcall-NAME -->  and  <!-- /config -->
#
#   scripts/config-tables.sh          rewrites every such table
#   scripts/config-tables.sh --check  exits 1 naming each README whose table
#                                     differs from its program's --help
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
check=; [ "${1:-}" = --check ] && check=1

# --help lines: "  --key=TYPE  default X  range ..  [ENV]" then "      help".
table() {
    "$BUILD/$1" --help | awk '
        BEGIN { print "| key | default | environment | what |"; print "| --- | --- | --- | --- |" }
        /^  --[a-z]/ {
            line = $0; sub(/^  --/, "", line)
            key = line; sub(/=.*/, "", key)
            def = ""
            if (match(line, /  default [^ ]*( |$)/)) { def = substr(line, RSTART + 10, RLENGTH - 10); gsub(/ /, "", def) }
            if (def == "(secret)") def = ""
            env = ""; if (match(line, /\[[A-Z_]+\]/)) env = substr(line, RSTART + 1, RLENGTH - 2)
            getline what; sub(/^ +/, "", what); gsub(/\|/, "\\|", what); gsub(/</, "\\&lt;", what)
            printf "| `%s` | %s | `%s` | %s |\n", key, (def == "" ? "" : "`" def "`"), env, what
        }'
}

status=0
for readme in services/*/README.md; do
    grep -q '^<!-- config: ' "$readme" || continue
    bin=$(sed -n 's/^<!-- config: \(rollcall[a-z-]*\) -->$/\1/p' "$readme")
    [ -x "$BUILD/$bin" ] || { echo "config-tables: $BUILD/$bin is not built" >&2; exit 1; }
    new=$(awk -v t="$(table "$bin")" '
        /^<!-- config: / { print; print t; skip = 1; next }
        /^<!-- \/config -->/ { skip = 0 }
        !skip' "$readme")
    if [ -n "$check" ]; then
        if [ "$new" != "$(cat "$readme")" ]; then
            echo "config-tables: $readme differs from $bin --help (run scripts/config-tables.sh)"
            status=1
        fi
    else
        printf '%s\n' "$new" >"$readme"
    fi
done
exit $status
