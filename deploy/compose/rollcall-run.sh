#!/bin/sh
# Entry point of every Rollcall container: turns the docker secrets (one
# password per file under /run/secrets) into the settings the program reads,
# in a file on the container's tmpfs, then runs the program.
#   RC_KAFKA_USER, RC_KAFKA_PASSWORD_FILE [RC_KAFKA_MECHANISM, RC_KAFKA_PROTOCOL]
#       -> kafka.security.protocol / kafka.sasl.* lines
#   RC_PG_ROLE, RC_PG_PASSWORD_FILE [RC_PG_HOST, RC_PG_DB]
#       -> pg_dsn (a service) or ROLLCALL_PG_DSN (the rollcall CLI)
# A service gets the file as --config; the CLI reads its kafka.* lines through
# ROLLCALL_CONFIG (`rollcall topics` reads the whole file).  Nothing secret
# is in the compose file, the image or the command line.
set -eu
umask 077
conf=/tmp/rollcall.conf
: >"$conf"
if [ -n "${RC_KAFKA_USER:-}" ]; then
    pw=$(cat "$RC_KAFKA_PASSWORD_FILE")
    printf 'kafka.security.protocol = %s\nkafka.sasl.mechanism = %s\nkafka.sasl.username = %s\nkafka.sasl.password = %s\n' \
        "${RC_KAFKA_PROTOCOL:-SASL_PLAINTEXT}" "${RC_KAFKA_MECHANISM:-SCRAM-SHA-512}" \
        "$RC_KAFKA_USER" "$pw" >>"$conf"
fi
dsn=
if [ -n "${RC_PG_ROLE:-}" ]; then
    # libpq conninfo quoting: backslash and single quote escaped.
    pw=$(sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g" "$RC_PG_PASSWORD_FILE")
    dsn="host=${RC_PG_HOST:-postgres} dbname=${RC_PG_DB:-rollcall} user=$RC_PG_ROLE password='$pw'"
fi
if [ "$(basename "$1")" = rollcall ]; then
    [ -n "$dsn" ] && export ROLLCALL_PG_DSN="$dsn"
    export ROLLCALL_CONFIG="$conf"
    exec "$@"
fi
[ -n "$dsn" ] && printf 'pg_dsn = %s\n' "$dsn" >>"$conf"
exec "$@" "--config=$conf"
