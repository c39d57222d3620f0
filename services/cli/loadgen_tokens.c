/* rollcall loadgen's token set-up: one bearer token per scope unit (village,
 * township, ...) for the HTTP mode — reused from a tokens file when still
 * valid in rollcall.unit_token, issued (hash stored) otherwise. */
#include "loadgen.h"

/* ---- tokens ---- */

/* A fresh bearer token: 32 random bytes, base64url without padding (43
 * characters), the format of the intake's `rollcall token issue`. */
static int token_generate(char out[48])
{
    unsigned char raw[32], b64[64];
    int n;

    if (RAND_bytes(raw, sizeof raw) != 1)
        return -1;
    n = EVP_EncodeBlock(b64, raw, sizeof raw);
    while (n > 0 && b64[n - 1] == '=')
        n--;
    for (int i = 0; i < n; i++)
        out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    out[n] = '\0';
    return 0;
}

static void token_hash_hex(const char *token, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    EVP_Digest(token, strlen(token), md, &mdlen, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

static int cmp_token(const void *a, const void *b)
{
    const token_entry *x = a, *y = b;

    return x->unit < y->unit ? -1 : x->unit > y->unit;
}

const token_entry *lg_token_find(const lgctx *g, uint64_t scope_unit)
{
    token_entry key = {.unit = scope_unit};

    return g->ntokens ? bsearch(&key, g->tokens, g->ntokens, sizeof key, cmp_token) : NULL;
}

/* Reads the valid token hashes of rollcall.unit_token into a sorted array
 * of 32-byte keys; -1 when the table is missing or unreadable. */
static int cmp_hash(const void *a, const void *b)
{
    return memcmp(a, b, 64);
}

static char *load_valid_hashes(lgctx *g, size_t *n)
{
    PGconn *conn = rc_pg_conn(g->pg);
    PGresult *res;
    char *row = NULL, *hashes = NULL;
    size_t cap = 0;
    int len;

    *n = 0;
    if (!conn)
        return NULL;
    res = PQexec(conn, "COPY (SELECT token_hash FROM rollcall.unit_token WHERE revoked_at IS NULL)"
                       " TO STDOUT");
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        PQclear(res);
        return NULL;
    }
    PQclear(res);
    while ((len = PQgetCopyData(conn, &row, 0)) > 0) {
        if (len >= 64) {
            if (*n == cap) {
                char *t;

                cap = cap ? cap * 2 : 4096;
                if (!(t = realloc(hashes, cap * 64))) {
                    PQfreemem(row);
                    break;
                }
                hashes = t;
            }
            memcpy(hashes + *n * 64, row, 64);
            (*n)++;
        }
        PQfreemem(row);
    }
    while ((res = PQgetResult(conn)) != NULL)
        PQclear(res);
    if (*n)
        qsort(hashes, *n, 64, cmp_hash);
    return hashes ? hashes : calloc(1, 64);
}

/* Takes the tokens of the tokens file that are still valid (their hash in
 * `valid`, nvalid sorted hashes) for the scope units of the run.  Returns
 * how many were taken; a missing file takes none. */
static size_t reuse_from_file(lgctx *g, const char *valid, size_t nvalid)
{
    char line[256], hash[65];
    size_t reused = 0;
    FILE *f;

    if (!g->tokens_path || !(f = fopen(g->tokens_path, "r")))
        return 0;
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t'), *nl;
        token_entry *e;
        uint64_t u = 0;

        if (!tab)
            continue;
        *tab = '\0';
        if ((nl = strchr(tab + 1, '\n')))
            *nl = '\0';
        if ((int)strlen(line) != lg_scope_len[g->token_scope] || strlen(tab + 1) >= 48)
            continue;
        for (const char *p = line; *p; p++)
            u = u * 10 + (uint64_t)(*p - '0');
        e = (token_entry *)lg_token_find(g, u);
        token_hash_hex(tab + 1, hash);
        if (e && bsearch(hash, valid, nvalid, 64, cmp_hash)) {
            snprintf(e->token, sizeof e->token, "%s", tab + 1);
            reused++;
        }
    }
    fclose(f);
    return reused;
}

/* Stores the hashes of the fresh tokens in rollcall.unit_token (one COPY,
 * one transaction).  Returns 0, or -1 with err filled and nothing stored. */
static int store_fresh(lgctx *g, const token_entry *fresh, size_t nnew, char *err, size_t errlen)
{
    char *buf = malloc(1 << 20), hash[65], code[13], msg[256];
    size_t len = 0;

    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (rc_pg_begin(g->pg, err, errlen) < 0 ||
        rc_pg_copy_begin(g->pg, "COPY rollcall.unit_token (token_hash, unit_code) FROM STDIN",
                         err, errlen) < 0)
        goto failed;
    for (size_t i = 0; i < nnew; i++) {
        rc_expect_code_format(fresh[i].unit, g->token_scope, code);
        token_hash_hex(fresh[i].token, hash);
        len += (size_t)snprintf(buf + len, 128, "%s\t%s\n", hash, code);
        if ((len > (1 << 20) - 256 || i + 1 == nnew) &&
            (rc_pg_copy_put(g->pg, buf, len, err, errlen) < 0 || ((len = 0), 0)))
            goto failed;
    }
    if (rc_pg_copy_end(g->pg, NULL, err, errlen) < 0 || rc_pg_commit(g->pg, err, errlen) < 0)
        goto failed;
    free(buf);
    return 0;
failed:
    free(buf);
    if (rc_pg_in_transaction(g->pg))
        rc_pg_rollback(g->pg, msg, sizeof msg);
    return -1;
}

/* Appends the fresh tokens (in clear: the file is the run's credentials,
 * mode 0600) to the tokens file.  Returns 0, or -1 with err filled. */
static int append_to_file(const lgctx *g, const token_entry *fresh, size_t nnew, char *err,
                          size_t errlen)
{
    char code[13];
    int fd = open(g->tokens_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    FILE *f;

    if (fd < 0 || !(f = fdopen(fd, "a"))) {
        snprintf(err, errlen, "%s: %s", g->tokens_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    for (size_t i = 0; i < nnew; i++) {
        rc_expect_code_format(fresh[i].unit, g->token_scope, code);
        fprintf(f, "%s\t%s\n", code, fresh[i].token);
    }
    if (fclose(f) != 0) {
        snprintf(err, errlen, "%s: %s", g->tokens_path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Makes sure every scope unit of the plan has a valid token: reuses those of
 * --tokens FILE that PostgreSQL still holds, issues the others (hash into
 * rollcall.unit_token with COPY, one transaction) and appends them to FILE. */
int lg_prepare_tokens(lgctx *g)
{
    const uint64_t *vil;
    size_t nv = rc_loadgen_villages(g->plan, &vil), nvalid = 0, nnew = 0, reused = 0;
    char *valid = NULL, err[512];
    token_entry *fresh = NULL;
    int rc = -1;
    double t = cli_now();

    if (!(valid = load_valid_hashes(g, &nvalid))) {
        if (!g->quiet)
            fprintf(stderr, "loadgen: no rollcall.unit_token table: sending without tokens\n");
        return 0;
    }
    /* Scope units, ascending (villages are ascending, so are their prefixes). */
    g->tokens = calloc(nv, sizeof *g->tokens);
    fresh = calloc(nv, sizeof *fresh);
    if (!g->tokens || !fresh) {
        snprintf(err, sizeof err, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nv; i++) {
        uint64_t s = lg_scope_of(g, vil[i]);

        if (g->ntokens == 0 || g->tokens[g->ntokens - 1].unit != s)
            g->tokens[g->ntokens++].unit = s;
    }
    reused = reuse_from_file(g, valid, nvalid);
    for (size_t i = 0; i < g->ntokens; i++) {
        if (g->tokens[i].token[0])
            continue;
        if (token_generate(g->tokens[i].token) < 0) {
            snprintf(err, sizeof err, "the random generator failed");
            goto done;
        }
        fresh[nnew++] = g->tokens[i];
    }
    if (nnew) {
        if (store_fresh(g, fresh, nnew, err, sizeof err) < 0)
            goto done;
        g->tokens_issued_at = cli_now();
        g->tokens_issued = nnew;
        if (g->tokens_path && append_to_file(g, fresh, nnew, err, sizeof err) < 0)
            goto done;
        if (!g->tokens_path && !g->quiet)
            fprintf(stderr, "loadgen: %zu tokens issued for this run only (give --tokens FILE "
                            "to keep them)\n", nnew);
    }
    if (!g->quiet)
        fprintf(stderr, "loadgen: %zu %s tokens (%zu reused, %zu issued) in %.2f s\n", g->ntokens,
                lg_scope_names[g->token_scope], reused, nnew, cli_now() - t);
    rc = 0;
done:
    if (rc < 0)
        fprintf(stderr, "rollcall loadgen: tokens: %s\n", err);
    free(valid);
    free(fresh);
    return rc;
}
