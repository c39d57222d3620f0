/* rollcall migrate — finds the migrations directory and runs rc_migrate. */
#include "cli.h"
#include "rc_migrate.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* $ROLLCALL_MIGRATIONS, ./migrations, then beside the executable (installed
 * layout first, then the source tree's build/ and build/asan/). */
static const char *default_dir(char *buf, size_t len)
{
    const char *env = getenv("ROLLCALL_MIGRATIONS");
    const char *exe = cli_exe_dir();
    static const char *const rel[] = {"/../share/rollcall/migrations", "/../migrations",
                                      "/../../migrations"};

    if (env && env[0])
        return env;
    if (is_dir("migrations"))
        return "migrations";
    for (size_t i = 0; exe && i < sizeof rel / sizeof rel[0]; i++) {
        snprintf(buf, len, "%s%s", exe, rel[i]);
        if (is_dir(buf))
            return buf;
    }
    return NULL;
}

int cmd_migrate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"dry-run", no_argument, NULL, 'n'},
        {"dsn", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *dsn = NULL;
    char buf[4096], err[1024];
    bool dry_run = false;
    rc_pg *pg = NULL;
    int c, rc = CLI_FAILED;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'n': dry_run = true; break;
        case 'D': dsn = optarg; break;
        default: return cli_usage_error("migrate", "bad option");
        }
    }
    if (optind < argc)
        return cli_usage_error("migrate", "unexpected argument '%s'", argv[optind]);
    if (!dir && !(dir = default_dir(buf, sizeof buf))) {
        fprintf(stderr, "rollcall migrate: no migrations directory found "
                        "(tried $ROLLCALL_MIGRATIONS, ./migrations, beside the executable); "
                        "use --dir\n");
        return CLI_FAILED;
    }
    pg = cli_connect(dsn, "migrate");
    if (!pg)
        goto done;
    if (rc_migrate(pg, dir, dry_run, err, sizeof err) < 0) {
        fprintf(stderr, "rollcall migrate: %s\n", err);
        goto done;
    }
    rc = CLI_OK;
done:
    rc_pg_free(pg);
    return rc;
}
