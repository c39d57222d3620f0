/* rollcall signoff — an official signs a unit's report for a period: the
 * level service files the signed version at its next sweep.  --pending
 * lists what waits for a signature (rollcall.v_pending_signoff). */
#include "cli.h"
#include "rc_level.h"
#include "rc_time.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int list_pending(rc_pg *pg, const char *level)
{
    const char *params[1] = {level};
    char err[512];
    PGresult *res;

    res = rc_pg_exec_params(pg,
                            "SELECT unit_code, level, period::text, live_version, reported_children,"
                            "       expected_children, coalesce(to_char(ready_at AT TIME ZONE INTERVAL '+08:00',"
                            "       'YYYY-MM-DD HH24:MI:SS'), '')"
                            "  FROM rollcall.v_pending_signoff"
                            " WHERE $1::text IS NULL OR level = $1::text"
                            " ORDER BY period, unit_code",
                            1, params, err, sizeof err);
    if (!res) {
        fprintf(stderr, "rollcall signoff: %s\n", err);
        return CLI_FAILED;
    }
    printf("%-12s %-8s %-10s %20s %9s  %s\n", "unit", "level", "period", "version", "reported",
           "waiting since (+08:00)");
    for (int i = 0; i < PQntuples(res); i++)
        printf("%-12s %-8s %-10s %20s %4s/%-4s  %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
               PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
               PQgetvalue(res, i, 5), PQgetvalue(res, i, 6));
    printf("%d report(s) awaiting sign-off\n", PQntuples(res));
    PQclear(res);
    return CLI_OK;
}

int cmd_signoff(int argc, char **argv)
{
    static const struct option opts[] = {
        {"by", required_argument, NULL, 'b'},
        {"pending", no_argument, NULL, 'p'},
        {"level", required_argument, NULL, 'l'},
        {"dsn", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    const char *by = NULL, *dsn = NULL, *level = NULL, *unit, *period;
    bool pending = false;
    char err[512];
    int32_t day;
    rc_pg *pg = NULL;
    PGresult *res = NULL;
    int c, rc = CLI_FAILED;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'b': by = optarg; break;
        case 'p': pending = true; break;
        case 'l': level = optarg; break;
        case 'D': dsn = optarg; break;
        default: return cli_usage_error("signoff", "bad option");
        }
    }
    if (level && !rc_level_parse(level))
        return cli_usage_error("signoff", "unknown level '%s'", level);
    if (pending) {
        if (optind < argc)
            return cli_usage_error("signoff", "--pending takes no UNIT PERIOD");
        pg = cli_connect(dsn, "signoff");
        if (!pg)
            return CLI_FAILED;
        rc = list_pending(pg, level ? rc_level_name(rc_level_parse(level)) : NULL);
        rc_pg_free(pg);
        return rc;
    }
    if (argc - optind != 2)
        return cli_usage_error("signoff", "UNIT and PERIOD expected");
    unit = argv[optind];
    period = argv[optind + 1];
    if (rc_period_parse(period, &day) < 0)
        return cli_usage_error("signoff", "PERIOD '%s' is not a YYYY-MM-DD date", period);
    if (!by || !*by) {
        by = getenv("USER");
        if (!by || !*by)
            by = "official";
    }
    pg = cli_connect(dsn, "signoff");
    if (!pg)
        goto done;
    const char *params[3] = {unit, period, by};
    /* The signature is for the version on the desk now: numbers that change
     * afterwards need a new signature. */
    res = rc_pg_exec_params(pg,
                            "WITH s AS (UPDATE rollcall.filing SET signoff_version = live_version,"
                            "                  signoff_by = $3, signoff_at = now()"
                            "            WHERE unit_code = $1 AND period = $2::date"
                            "        RETURNING level, live_version, filed_version, live_reported, live_expected)"
                            " SELECT s.level, s.live_version, coalesce(s.filed_version = s.live_version, false),"
                            "        s.live_reported, s.live_expected, coalesce(p.signoff_required, false)"
                            "   FROM s LEFT JOIN rollcall.level_policy p ON p.level = s.level",
                            3, params, err, sizeof err);
    if (!res) {
        fprintf(stderr, "rollcall signoff: %s\n", err);
        goto done;
    }
    if (PQntuples(res) != 1) {
        fprintf(stderr, "rollcall signoff: no report on the desk for %s %s yet "
                        "(nothing has been aggregated for it)\n", unit, period);
        goto done;
    }
    printf("signed %s %s (%s) version %s, %s of %s children reported, by %s\n", unit, period,
           rc_level_name(atoi(PQgetvalue(res, 0, 0))), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 3),
           PQgetvalue(res, 0, 4), by);
    if (PQgetvalue(res, 0, 2)[0] == 't')
        printf("that version is already filed; the signature is recorded\n");
    else
        printf("rollcall-%s files it at its next sweep (about a second)\n",
               rc_level_name(atoi(PQgetvalue(res, 0, 0))));
    if (PQgetvalue(res, 0, 5)[0] != 't')
        printf("note: this level does not require a sign-off (rollcall.level_policy.signoff_required)\n");
    rc = CLI_OK;
done:
    PQclear(res);
    rc_pg_free(pg);
    return rc;
}
