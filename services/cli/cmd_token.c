/* rollcall token — unit tokens for the village intake: issue (prints each
 * clear token exactly once, stores only its SHA-256), revoke, list.  Running
 * intakes learn every change at commit through the table's NOTIFY trigger
 * (migration 002). */
#include "cli.h"
#include "rc_registry.h"
#include "rc_token.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char unit[13];
    char token[RC_TOKEN_LEN + 1];
} issued;

/* Units to issue for: the arguments, or every village under a code. */
static int collect_units(rc_pg *pg, char **args, int nargs, const char *under, issued **out,
                         size_t *n)
{
    char err[512];
    PGresult *res = NULL;
    int rc = -1;

    *out = NULL;
    *n = 0;
    if (under) {
        const char *params[1] = {under};
        res = rc_pg_exec_params(pg,
                                "SELECT code FROM rollcall.unit WHERE level = 1 AND code LIKE $1 || '%' "
                                "ORDER BY code",
                                1, params, err, sizeof err);
        if (!res) {
            fprintf(stderr, "rollcall token: %s\n", err);
            goto done;
        }
        *n = (size_t)PQntuples(res);
        if (*n == 0) {
            fprintf(stderr, "rollcall token: no village under %s in rollcall.unit\n", under);
            goto done;
        }
    } else {
        *n = (size_t)nargs;
    }
    if (!(*out = calloc(*n, sizeof **out))) {
        fprintf(stderr, "rollcall token: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < *n; i++) {
        const char *code = under ? PQgetvalue(res, (int)i, 0) : args[i];
        if (rc_code_level(code) == 0) {
            fprintf(stderr, "rollcall token: %s is not a unit code (2, 4, 6, 9 or 12 digits)\n", code);
            goto done;
        }
        snprintf((*out)[i].unit, sizeof (*out)[i].unit, "%s", code);
        if (rc_token_generate((*out)[i].token) < 0) {
            fprintf(stderr, "rollcall token: the random generator failed\n");
            goto done;
        }
    }
    rc = 0;
done:
    PQclear(res);
    if (rc < 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* Checks that every unit exists (a friendlier message than the foreign key). */
static int check_units(rc_pg *pg, const issued *t, size_t n)
{
    char err[512];
    for (size_t i = 0; i < n; i++) {
        const char *params[1] = {t[i].unit};
        PGresult *res = rc_pg_exec_params(pg, "SELECT 1 FROM rollcall.unit WHERE code = $1", 1,
                                          params, err, sizeof err);
        int found = res && PQntuples(res) == 1;
        PQclear(res);
        if (!res) {
            fprintf(stderr, "rollcall token: %s\n", err);
            return -1;
        }
        if (!found) {
            fprintf(stderr, "rollcall token: unknown unit %s (import the registry first)\n", t[i].unit);
            return -1;
        }
    }
    return 0;
}

static int token_issue(rc_pg *pg, char **args, int nargs, const char *under)
{
    char err[512], line[128];
    issued *t = NULL;
    size_t n = 0;
    int rc = CLI_FAILED;

    if (collect_units(pg, args, nargs, under, &t, &n) < 0)
        goto done;
    if (!under && check_units(pg, t, n) < 0)
        goto done;
    if (rc_pg_begin(pg, err, sizeof err) < 0
        || rc_pg_copy_begin(pg, "COPY rollcall.unit_token (token_hash, unit_code) FROM STDIN", err,
                            sizeof err) < 0)
        goto failed;
    for (size_t i = 0; i < n; i++) {
        char hex[RC_TOKEN_HEX_LEN + 1];
        int len;
        rc_token_hash_hex(t[i].token, strlen(t[i].token), hex);
        len = snprintf(line, sizeof line, "%s\t%s\n", hex, t[i].unit);
        if (rc_pg_copy_put(pg, line, (size_t)len, err, sizeof err) < 0)
            goto failed;
    }
    if (rc_pg_copy_end(pg, NULL, err, sizeof err) < 0 || rc_pg_commit(pg, err, sizeof err) < 0)
        goto failed;
    /* Only now, once stored: a token shown but not stored would be useless. */
    for (size_t i = 0; i < n; i++) {
        if (n == 1 && !under)
            printf("%s\n", t[i].token);
        else
            printf("%s %s\n", t[i].unit, t[i].token);
    }
    fflush(stdout);
    fprintf(stderr, "rollcall token: issued %zu token%s (shown once; only hashes are stored)\n", n,
            n == 1 ? "" : "s");
    rc = CLI_OK;
    goto done;
failed:
    fprintf(stderr, "rollcall token issue: %s\n", err);
    if (rc_pg_in_transaction(pg))
        rc_pg_rollback(pg, err, sizeof err);
done:
    if (t) {
        memset(t, 0, n * sizeof *t);
        free(t);
    }
    return rc;
}

static int token_revoke(rc_pg *pg, const char *unit)
{
    char err[512];
    const char *params[1] = {unit};
    PGresult *res = rc_pg_exec_params(pg,
                                      "UPDATE rollcall.unit_token SET revoked_at = now() "
                                      "WHERE unit_code = $1 AND revoked_at IS NULL",
                                      1, params, err, sizeof err);
    if (!res) {
        fprintf(stderr, "rollcall token revoke: %s\n", err);
        return CLI_FAILED;
    }
    printf("revoked %s token%s of %s\n", PQcmdTuples(res), strcmp(PQcmdTuples(res), "1") ? "s" : "",
           unit);
    PQclear(res);
    return CLI_OK;
}

static int token_list(rc_pg *pg, const char *unit)
{
    char err[512];
    const char *params[1] = {unit ? unit : ""};
    PGresult *res = rc_pg_exec_params(
        pg,
        "SELECT unit_code, left(token_hash, 12), to_char(issued_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), "
        "coalesce(to_char(revoked_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), '-') "
        "FROM rollcall.unit_token WHERE unit_code LIKE $1 || '%' ORDER BY unit_code, issued_at",
        1, params, err, sizeof err);
    if (!res) {
        fprintf(stderr, "rollcall token list: %s\n", err);
        return CLI_FAILED;
    }
    printf("%-12s  %-12s  %-22s  %s\n", "unit", "hash", "issued_at", "revoked_at");
    for (int i = 0; i < PQntuples(res); i++)
        printf("%-12s  %-12s  %-22s  %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
               PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
    PQclear(res);
    return CLI_OK;
}

int cmd_token(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dsn", required_argument, NULL, 'd'},
        {"villages-under", required_argument, NULL, 'u'},
        {NULL, 0, NULL, 0},
    };
    const char *dsn = NULL, *under = NULL, *action;
    rc_pg *pg;
    int c, rc, nargs;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dsn = optarg; break;
        case 'u': under = optarg; break;
        default: return cli_usage_error("token", "unknown option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("token", "issue, revoke or list?");
    action = argv[optind++];
    nargs = argc - optind;
    if (strcmp(action, "issue") == 0) {
        if ((nargs == 0) == (under == NULL))
            return cli_usage_error("token", "issue takes UNIT... or --villages-under CODE");
        if (under && rc_code_level(under) == 0)
            return cli_usage_error("token", "--villages-under %s is not a unit code", under);
    } else if (strcmp(action, "revoke") == 0) {
        if (nargs != 1 || under)
            return cli_usage_error("token", "revoke takes exactly one UNIT");
    } else if (strcmp(action, "list") == 0) {
        if (nargs > 1 || under)
            return cli_usage_error("token", "list takes at most one UNIT");
    } else {
        return cli_usage_error("token", "unknown action '%s'", action);
    }
    if (!(pg = cli_connect(dsn, "token")))
        return CLI_FAILED;
    if (strcmp(action, "issue") == 0)
        rc = token_issue(pg, argv + optind, nargs, under);
    else if (strcmp(action, "revoke") == 0)
        rc = token_revoke(pg, argv[optind]);
    else
        rc = token_list(pg, nargs ? argv[optind] : NULL);
    rc_pg_free(pg);
    return rc;
}
