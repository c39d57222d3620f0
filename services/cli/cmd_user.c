/* rollcall user — the dashboard's accounts: add, passwd, disable, apikey.
 * Passwords are hashed with libsodium's crypto_pwhash (argon2id) and only
 * the hash is stored; an API key is 32 random bytes printed once, stored as
 * its SHA-256.  Neither a password nor a key is ever logged or echoed. */
#include "cli.h"

#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* argon2id cost: OWASP's minimum (19 MiB, 2 passes), which keeps a
 * verification inside the dashboard's memory budget. */
#define USER_PWHASH_OPS 2
#define USER_PWHASH_MEM (19u << 20)

/* Reads a password: the first line of `file` ("-" or NULL: stdin, without
 * echo on a terminal).  Returns 0, or -1 with a message printed. */
static int read_password(const char *file, char *out, size_t len)
{
    FILE *f = stdin;
    struct termios old, quiet;
    bool tty = false;
    size_t n;

    if (file && strcmp(file, "-") != 0 && !(f = fopen(file, "r"))) {
        perror(file);
        return -1;
    }
    if (f == stdin && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tty = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
        fprintf(stderr, "password: ");
    }
    if (!fgets(out, (int)len, f))
        out[0] = '\0';
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (f != stdin)
        fclose(f);
    n = strcspn(out, "\r\n");
    out[n] = '\0';
    if (n < 8) {
        fprintf(stderr, "rollcall user: a password has at least 8 characters\n");
        return -1;
    }
    return 0;
}

static int hash_password(const char *file, char hash[crypto_pwhash_STRBYTES])
{
    char pw[1024];
    int rc = -1;
    if (read_password(file, pw, sizeof pw) < 0)
        goto done;
    if (crypto_pwhash_str(hash, pw, strlen(pw), USER_PWHASH_OPS, USER_PWHASH_MEM) != 0) {
        fprintf(stderr, "rollcall user: out of memory hashing the password\n");
        goto done;
    }
    rc = 0;
done:
    sodium_memzero(pw, sizeof pw);
    return rc;
}

static int exec_one(rc_pg *pg, const char *what, const char *sql, int n, const char *const *v)
{
    char err[512];
    PGresult *res = rc_pg_exec_params(pg, sql, n, v, err, sizeof err);
    int rows;
    if (!res) {
        fprintf(stderr, "rollcall user %s: %s\n", what, err);
        return -1;
    }
    rows = atoi(PQcmdTuples(res));
    PQclear(res);
    if (rows != 1) {
        fprintf(stderr, "rollcall user %s: no such account\n", what);
        return -1;
    }
    return 0;
}

/* add: a new account for unit with role, its password from pwfile. */
static int user_add(const char *dsn, const char *name, const char *unit, const char *role,
                    const char *pwfile)
{
    char hash[crypto_pwhash_STRBYTES];
    rc_pg *pg = NULL;
    int rc = CLI_FAILED;

    if (!unit)
        return cli_usage_error("user", "add needs --unit CODE");
    if (hash_password(pwfile, hash) < 0 || !(pg = cli_connect(dsn, "user")))
        goto done;
    const char *v[4] = {name, unit, role, hash};
    if (exec_one(pg, "add",
                 "INSERT INTO rollcall.account (name, unit_code, role, password_hash)"
                 " SELECT $1, code, $3, $4 FROM rollcall.unit WHERE code = $2",
                 4, v) < 0) {
        fprintf(stderr, "rollcall user add: (is %s a unit of the registry?)\n", unit);
        goto done;
    }
    printf("account %s added: unit %s, role %s\n", name, unit, role);
    rc = CLI_OK;
done:
    sodium_memzero(hash, sizeof hash);
    rc_pg_free(pg);
    return rc;
}

/* passwd: a new password from pwfile; it ends every session of the account. */
static int user_passwd(const char *dsn, const char *name, const char *pwfile)
{
    char hash[crypto_pwhash_STRBYTES];
    rc_pg *pg = NULL;
    int rc = CLI_FAILED;

    if (hash_password(pwfile, hash) < 0 || !(pg = cli_connect(dsn, "user")))
        goto done;
    const char *v[2] = {name, hash};
    if (exec_one(pg, "passwd",
                 "WITH s AS (DELETE FROM rollcall.account_session WHERE account = $1)"
                 " UPDATE rollcall.account SET password_hash = $2, password_changed_at = now()"
                 " WHERE name = $1",
                 2, v) < 0)
        goto done;
    printf("password of %s changed; its sessions are closed\n", name);
    rc = CLI_OK;
done:
    sodium_memzero(hash, sizeof hash);
    rc_pg_free(pg);
    return rc;
}

/* disable: the account, its sessions and its API keys stop working. */
static int user_disable(const char *dsn, const char *name)
{
    rc_pg *pg = cli_connect(dsn, "user");
    int rc = CLI_FAILED;

    if (!pg)
        return CLI_FAILED;
    const char *v[1] = {name};
    if (exec_one(pg, "disable",
                 "WITH s AS (DELETE FROM rollcall.account_session WHERE account = $1),"
                 " k AS (UPDATE rollcall.account_apikey SET revoked_at = now()"
                 "        WHERE account = $1 AND revoked_at IS NULL)"
                 " UPDATE rollcall.account SET disabled_at = coalesce(disabled_at, now())"
                 " WHERE name = $1",
                 1, v) == 0) {
        printf("account %s disabled; its sessions and keys no longer work\n", name);
        rc = CLI_OK;
    }
    rc_pg_free(pg);
    return rc;
}

/* apikey: a new random key for the account, printed once; only its hash
 * is kept. */
static int user_apikey(const char *dsn, const char *name)
{
    unsigned char raw[32], h[crypto_hash_sha256_BYTES];
    char key[65], khash[65];
    rc_pg *pg = cli_connect(dsn, "user");
    int rc = CLI_FAILED;

    if (!pg)
        return CLI_FAILED;
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(key, sizeof key, raw, sizeof raw);
    crypto_hash_sha256(h, (const unsigned char *)key, strlen(key));
    sodium_bin2hex(khash, sizeof khash, h, sizeof h);
    const char *v[2] = {name, khash};
    if (exec_one(pg, "apikey",
                 "INSERT INTO rollcall.account_apikey (key_hash, account)"
                 " SELECT $2, name FROM rollcall.account WHERE name = $1 AND disabled_at IS NULL",
                 2, v) == 0) {
        printf("%s\n", key);
        rc = CLI_OK;
    }
    sodium_memzero(key, sizeof key);
    rc_pg_free(pg);
    return rc;
}

int cmd_user(int argc, char **argv)
{
    static const struct option opts[] = {
        {"unit", required_argument, NULL, 'u'},
        {"role", required_argument, NULL, 'r'},
        {"password-file", required_argument, NULL, 'p'},
        {"dsn", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    const char *unit = NULL, *role = "viewer", *pwfile = NULL, *dsn = NULL, *sub, *name;
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'u': unit = optarg; break;
        case 'r': role = optarg; break;
        case 'p': pwfile = optarg; break;
        case 'D': dsn = optarg; break;
        default: return cli_usage_error("user", "bad option");
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("user", "SUBCOMMAND and NAME expected");
    sub = argv[optind];
    name = argv[optind + 1];
    if (strcmp(role, "viewer") != 0 && strcmp(role, "signer") != 0 && strcmp(role, "ops") != 0)
        return cli_usage_error("user", "role is viewer, signer or ops");
    if (sodium_init() < 0) {
        fprintf(stderr, "rollcall user: libsodium did not initialise\n");
        return CLI_FAILED;
    }
    if (strcmp(sub, "add") == 0)
        return user_add(dsn, name, unit, role, pwfile);
    if (strcmp(sub, "passwd") == 0)
        return user_passwd(dsn, name, pwfile);
    if (strcmp(sub, "disable") == 0)
        return user_disable(dsn, name);
    if (strcmp(sub, "apikey") == 0)
        return user_apikey(dsn, name);
    return cli_usage_error("user", "unknown subcommand '%s'", sub);
}
