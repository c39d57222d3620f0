#!/usr/bin/env bash
# Writes a commented example configuration for one service to stdout, from
# the service's own config table (its --help), so the example never drifts
# from the code: every key with its help, type, bounds and default,
# commented out, plus the production settings every service needs.
#
#   deploy/gen-conf.sh BINARY NAME      e.g. build/rollcall-rollup rollup
set -euo pipefail
bin=$1 name=$2
help=$("$bin" --help 2>&1) || true
grep -q -- '^  --' <<<"$help" || { echo "gen-conf: $bin --help printed no options" >&2; exit 1; }

cat <<HEAD
# /etc/rollcall/$name.conf — rollcall-$name (generated from its --help by
# deploy/gen-conf.sh; every key is shown commented out with its default).
#
# Lines are "key = value"; '#' starts a comment.  The environment
# (ROLLCALL_<KEY>) and the command line (--key=value) override this file.
# The unit passes this file as a systemd credential: keep it mode 0600,
# owner root — it holds the database and Kafka passwords.
#
# Kafka: "kafka.<property> = value" passes any librdkafka property.  On a
# secured Apache Kafka (SASL/SCRAM, see deploy/README.md):
#kafka.security.protocol = SASL_SSL
#kafka.sasl.mechanism = SCRAM-SHA-512
#kafka.sasl.username = rollcall-$name
#kafka.sasl.password = (from your secret store)
#kafka.ssl.ca.location = /etc/rollcall/kafka-ca.pem
#
# PostgreSQL: pg_dsn is a libpq conninfo; its role is this component's own
# (see deploy/README.md, "Roles"), e.g.
#pg_dsn = host=db.example dbname=rollcall user=rollcall_<component> password=... sslmode=verify-full
HEAD
awk '
/^  --/ {
    line = substr($0, 5)
    split(line, parts, "  ")
    kv = parts[1]; eq = index(kv, "=")
    key = substr(kv, 1, eq - 1); type = substr(kv, eq + 1)
    def = ""; bounds = ""; env = ""
    for (i = 2; i in parts; i++) {
        p = parts[i]
        if (p ~ /^default /) def = substr(p, 9)
        else if (p ~ /^(range|length) /) bounds = p
        else if (p ~ /^\[/) env = substr(p, 2, length(p) - 2)
    }
    next_is_help = 1
    next
}
next_is_help && /^      / {
    sub(/^      /, "")
    printf "\n# %s\n#   %s%s%s\n", $0, type, (bounds != "" ? ", " bounds : ""), (env != "" ? "; env " env : "")
    if (def == "(none)") def = ""
    if (def == "(secret)") def = ""
    printf "#%s = %s\n", key, def
    next_is_help = 0
}' <<<"$help"
