/* rc_config — see rc_config.h.  Every load is a "pass": raw strings are
 * collected from all sources, converted and bounds-checked into temporaries,
 * and only a pass without a single error is committed to the destinations. */
#include "rc_config.h"
#include "rc_log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SOURCE_LEN 160

typedef union {
    char *s;
    int i;
    bool b;
    rc_log_level l;
} value;

/* The outcome of reading all sources once; committed or thrown away. */
struct pass {
    char **raw;                 /* per item, malloc'ed, may be NULL */
    char (*src)[SOURCE_LEN];    /* per item: where raw came from */
    value *val;                 /* per item, after conversion */
    char **kafka;
    size_t nkafka, capkafka;
    char **args;                /* borrowed from argv */
    size_t nargs;
    char *file;
    bool help;
};

struct rc_config {
    const rc_cfg_item *items;
    size_t nitems;
    int argc;
    char **argv;
    char (*src)[SOURCE_LEN];
    char **owned;               /* per item: the string we put in *dest */
    char **kafka;
    size_t nkafka;
    char **args;
    size_t nargs;
    char *file;
    bool help;
    char **graveyard;           /* strings replaced by reloads */
    size_t ngrave;
};

static const char *type_name(rc_cfg_type t)
{
    switch (t) {
    case RC_CFG_STRING: return "STRING";
    case RC_CFG_INT: return "INT";
    case RC_CFG_BOOL: return "BOOL";
    case RC_CFG_MS: return "DURATION";
    case RC_CFG_CLOCK: return "HH:MM";
    case RC_CFG_LOGLEVEL: return "LEVEL";
    }
    return "?";
}

static bool is_secret(const rc_cfg_item *it)
{
    return (it->flags & RC_CFG_SECRET) != 0;
}

/* What an error or log line may show of a value. */
static const char *shown(const rc_cfg_item *it, const char *raw)
{
    if (is_secret(it))
        return "(secret)";
    return raw ? raw : "(null)";
}

static void effective_bounds(const rc_cfg_item *it, long long *lo, long long *hi)
{
    bool none = it->min == 0 && it->max == 0;
    switch (it->type) {
    case RC_CFG_INT:
        *lo = none ? INT_MIN : it->min;
        *hi = none ? INT_MAX : it->max;
        break;
    case RC_CFG_MS:
        *lo = none ? 0 : it->min;
        *hi = none ? INT_MAX : it->max;
        break;
    case RC_CFG_CLOCK:
        *lo = none ? 0 : it->min;
        *hi = none ? 1439 : it->max;
        break;
    case RC_CFG_STRING:
        *lo = none ? 0 : it->min;
        *hi = none ? LLONG_MAX : it->max;
        break;
    default:
        *lo = *hi = 0;
    }
}

static void format_ms(long long ms, char *buf, size_t len)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(buf, len, "%lldh", ms / 3600000);
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(buf, len, "%lldm", ms / 60000);
    else if (ms != 0 && ms % 1000 == 0)
        snprintf(buf, len, "%llds", ms / 1000);
    else
        snprintf(buf, len, "%lldms", ms);
}

static void format_bound(const rc_cfg_item *it, long long v, char *buf, size_t len)
{
    if (it->type == RC_CFG_MS)
        format_ms(v, buf, len);
    else if (it->type == RC_CFG_CLOCK)
        snprintf(buf, len, "%02lld:%02lld", v / 60, v % 60);
    else
        snprintf(buf, len, "%lld", v);
}

static int parse_ll(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_ms(const char *s, long long *out)
{
    char *end;
    long long mult;
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno)
        return -1;
    if (*end == '\0' || strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else
        return -1;
    if (v > LLONG_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

static int parse_clock(const char *s, long long *out)
{
    /* Exactly HH:MM: "9:30" is accepted, "09:30:00" and "24:00" are not. */
    int h = 0, m = 0, i = 0, digits = 0;
    for (; isdigit((unsigned char)s[i]) && digits < 2; i++, digits++)
        h = h * 10 + (s[i] - '0');
    if (digits == 0 || s[i++] != ':')
        return -1;
    if (!isdigit((unsigned char)s[i]) || !isdigit((unsigned char)s[i + 1]) || s[i + 2])
        return -1;
    m = (s[i] - '0') * 10 + (s[i + 1] - '0');
    if (h > 23 || m > 59)
        return -1;
    *out = h * 60 + m;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"0", "no", "false", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Converts item i of the pass.  Returns 0, or -1 with errbuf. */
static int convert(const rc_cfg_item *it, const char *raw, const char *src,
                   value *out, char *errbuf, size_t errlen)
{
    long long v = 0, lo, hi;
    const char *what = NULL;

    effective_bounds(it, &lo, &hi);
    switch (it->type) {
    case RC_CFG_STRING:
        out->s = NULL;
        v = raw ? (long long)strlen(raw) : 0;
        if (v < lo || v > hi) {
            rc_errf(errbuf, errlen, "config: %s = %s (from %s) must be %lld..%lld characters long",
                 it->key, shown(it, raw), src, lo, hi);
            return -1;
        }
        if (raw && !(out->s = strdup(raw))) {
            rc_errf(errbuf, errlen, "config: out of memory");
            return -1;
        }
        return 0;
    case RC_CFG_BOOL:
        if (!raw)
            out->b = false;
        else if (parse_bool(raw, &out->b) < 0)
            what = "is not a boolean (yes/no, true/false, on/off, 1/0)";
        break;
    case RC_CFG_LOGLEVEL:
        if (!raw)
            out->l = RC_LOG_INFO;
        else if (rc_log_level_parse(raw, &out->l) < 0)
            what = "is not a log level (debug, info, warn, error)";
        break;
    case RC_CFG_INT:
        if (raw && parse_ll(raw, &v) < 0)
            what = "is not an integer";
        break;
    case RC_CFG_MS:
        if (raw && parse_ms(raw, &v) < 0)
            what = "is not a duration (250ms, 5s, 2m, 1h, or milliseconds)";
        break;
    case RC_CFG_CLOCK:
        if (raw && parse_clock(raw, &v) < 0)
            what = "is not a time of day HH:MM";
        break;
    }
    if (what) {
        rc_errf(errbuf, errlen, "config: %s = %s (from %s) %s", it->key, shown(it, raw), src, what);
        return -1;
    }
    if (it->type == RC_CFG_INT || it->type == RC_CFG_MS || it->type == RC_CFG_CLOCK) {
        if (v < lo || v > hi) {
            char l[32], h[32];
            format_bound(it, lo, l, sizeof l);
            format_bound(it, hi, h, sizeof h);
            rc_errf(errbuf, errlen, "config: %s = %s (from %s) is out of range %s..%s",
                 it->key, shown(it, raw), src, l, h);
            return -1;
        }
        out->i = (int)v;
    }
    return 0;
}

static void pass_free(struct pass *p, size_t nitems, const rc_cfg_item *items)
{
    if (p->raw)
        for (size_t i = 0; i < nitems; i++)
            free(p->raw[i]);
    if (p->val)
        for (size_t i = 0; i < nitems; i++)
            if (items[i].type == RC_CFG_STRING)
                free(p->val[i].s);
    for (size_t i = 0; i < p->nkafka; i++)
        free(p->kafka[i]);
    free(p->kafka);
    free(p->raw);
    free(p->src);
    free(p->val);
    free(p->args);
    free(p->file);
    memset(p, 0, sizeof *p);
}

static int find_item(const rc_config *cfg, const char *key, size_t keylen)
{
    for (size_t i = 0; i < cfg->nitems; i++)
        if (strlen(cfg->items[i].key) == keylen && strncmp(cfg->items[i].key, key, keylen) == 0)
            return (int)i;
    return -1;
}

static int set_raw(struct pass *p, size_t i, const char *v, const char *src)
{
    char *copy = v ? strdup(v) : NULL;
    if (v && !copy)
        return -1;
    free(p->raw[i]);
    p->raw[i] = copy;
    snprintf(p->src[i], SOURCE_LEN, "%s", src);
    return 0;
}

static int add_kafka(struct pass *p, const char *name, size_t namelen, const char *v)
{
    if (p->nkafka == p->capkafka) {
        size_t cap = p->capkafka ? p->capkafka * 2 : 8;
        char **k = realloc(p->kafka, cap * sizeof *k);
        if (!k)
            return -1;
        p->kafka = k;
        p->capkafka = cap;
    }
    size_t len = namelen + 1 + strlen(v) + 1;
    char *s = malloc(len);
    if (!s)
        return -1;
    snprintf(s, len, "%.*s=%s", (int)namelen, name, v);
    p->kafka[p->nkafka++] = s;
    return 0;
}

char *rc_config_trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int read_file(const rc_config *cfg, struct pass *p, const char *named_by,
                     char *errbuf, size_t errlen)
{
    FILE *f = NULL;
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = -1;

    f = fopen(p->file, "r");
    if (!f) {
        rc_errf(errbuf, errlen, "config: cannot read %s (from %s): %s", p->file, named_by, strerror(errno));
        goto done;
    }
    while (getline(&line, &cap, f) >= 0) {
        char src[SOURCE_LEN], *key, *val, *eq;
        lineno++;
        key = rc_config_trim(line);
        if (*key == '\0' || *key == '#')
            continue;
        snprintf(src, sizeof src, "%s:%d", p->file, lineno);
        eq = strchr(key, '=');
        if (!eq) {
            rc_errf(errbuf, errlen, "config: line \"%s\" (from %s) is not key = value", key, src);
            goto done;
        }
        *eq = '\0';
        key = rc_config_trim(key);
        val = rc_config_trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = '\0';
            val++;
        }
        if (strncmp(key, "kafka.", 6) == 0 && key[6]) {
            if (add_kafka(p, key + 6, strlen(key + 6), val) < 0)
                goto oom;
            continue;
        }
        int i = find_item(cfg, key, strlen(key));
        if (i < 0) {
            rc_errf(errbuf, errlen, "config: unknown key %s (from %s)", key, src);
            goto done;
        }
        if (set_raw(p, (size_t)i, val, src) < 0)
            goto oom;
    }
    if (ferror(f)) {
        rc_errf(errbuf, errlen, "config: error reading %s: %s", p->file, strerror(errno));
        goto done;
    }
    rc = 0;
    goto done;
oom:
    rc_errf(errbuf, errlen, "config: out of memory");
done:
    free(line);
    if (f)
        fclose(f);
    return rc;
}

static void env_name(const char *key, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "ROLLCALL_");
    for (; *key && n + 1 < len; key++)
        buf[n++] = (*key == '.' || *key == '-') ? '_' : (char)toupper((unsigned char)*key);
    buf[n] = '\0';
}

/* Reads every source into p and converts.  Returns 0, or -1 with errbuf. */
static int collect(const rc_config *cfg, struct pass *p, char *errbuf, size_t errlen)
{
    const char *cfgpath = NULL, *named_by = NULL;
    int argc = cfg->argc;
    char **argv = cfg->argv;
    bool options = true;

    p->raw = calloc(cfg->nitems + 1, sizeof *p->raw);
    p->src = calloc(cfg->nitems + 1, sizeof *p->src);
    p->val = calloc(cfg->nitems + 1, sizeof *p->val);
    p->args = calloc((size_t)(argc > 0 ? argc : 1), sizeof *p->args);
    if (!p->raw || !p->src || !p->val || !p->args)
        goto oom;

    /* --help and --config first: they decide what else is read. */
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--") == 0)
            break;
        if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
            p->help = true;
            return 0;
        }
        if (strncmp(argv[a], "--config=", 9) == 0) {
            cfgpath = argv[a] + 9;
            named_by = "--config";
        } else if (strcmp(argv[a], "--config") == 0) {
            if (a + 1 >= argc) {
                rc_errf(errbuf, errlen, "config: option --config needs a value (from command line)");
                return -1;
            }
            cfgpath = argv[++a];
            named_by = "--config";
        }
    }
    if (!cfgpath && getenv("ROLLCALL_CONFIG") && *getenv("ROLLCALL_CONFIG")) {
        cfgpath = getenv("ROLLCALL_CONFIG");
        named_by = "ROLLCALL_CONFIG";
    }

    for (size_t i = 0; i < cfg->nitems; i++)
        if (set_raw(p, i, cfg->items[i].def, "default") < 0)
            goto oom;

    if (cfgpath) {
        if (!(p->file = strdup(cfgpath)))
            goto oom;
        if (read_file(cfg, p, named_by, errbuf, errlen) < 0)
            return -1;
    }

    for (size_t i = 0; i < cfg->nitems; i++) {
        char name[256];
        const char *v;
        env_name(cfg->items[i].key, name, sizeof name);
        if ((v = getenv(name)) && set_raw(p, i, v, name) < 0)
            goto oom;
    }

    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a], *key, *eq, *v;
        size_t keylen;
        char src[SOURCE_LEN];

        if (!options || strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (options && strcmp(arg, "--") == 0)
                options = false;
            else
                p->args[p->nargs++] = argv[a];
            continue;
        }
        key = arg + 2;
        eq = strchr(key, '=');
        keylen = eq ? (size_t)(eq - key) : strlen(key);
        if (keylen == 6 && strncmp(key, "config", 6) == 0) {
            if (!eq)
                a++;
            continue;
        }
        snprintf(src, sizeof src, "--%.*s", (int)keylen, key);
        if (keylen > 6 && strncmp(key, "kafka.", 6) == 0) {
            if (!eq && a + 1 >= argc) {
                rc_errf(errbuf, errlen, "config: option %s needs a value (from command line)", src);
                return -1;
            }
            if (add_kafka(p, key + 6, keylen - 6, eq ? eq + 1 : argv[++a]) < 0)
                goto oom;
            continue;
        }
        int i = find_item(cfg, key, keylen);
        if (i < 0) {
            rc_errf(errbuf, errlen, "config: unknown option %s (from command line)", src);
            return -1;
        }
        if (eq)
            v = eq + 1;
        else if (cfg->items[i].type == RC_CFG_BOOL)
            v = "true";
        else if (a + 1 < argc)
            v = argv[++a];
        else {
            rc_errf(errbuf, errlen, "config: option %s needs a value (from command line)", src);
            return -1;
        }
        if (set_raw(p, (size_t)i, v, src) < 0)
            goto oom;
    }

    for (size_t i = 0; i < cfg->nitems; i++)
        if (convert(&cfg->items[i], p->raw[i], p->src[i], &p->val[i], errbuf, errlen) < 0)
            return -1;
    return 0;
oom:
    rc_errf(errbuf, errlen, "config: out of memory");
    return -1;
}

static bool value_differs(const rc_cfg_item *it, const value *v, const char *cur_s)
{
    switch (it->type) {
    case RC_CFG_STRING:
        if (!v->s || !cur_s)
            return v->s != cur_s;
        return strcmp(v->s, cur_s) != 0;
    case RC_CFG_BOOL:
        return *(bool *)it->dest != v->b;
    case RC_CFG_LOGLEVEL:
        return *(rc_log_level *)it->dest != v->l;
    default:
        return *(int *)it->dest != v->i;
    }
}

/* Moves a validated pass into cfg and the destinations.  Cannot fail except
 * for the graveyard's growth, which is done first. */
static int commit(rc_config *cfg, struct pass *p, bool reload)
{
    if (reload) {
        char **g = realloc(cfg->graveyard, (cfg->ngrave + cfg->nitems + 1) * sizeof *g);
        if (!g)
            return -1;
        cfg->graveyard = g;
    }
    for (size_t i = 0; i < cfg->nitems; i++) {
        const rc_cfg_item *it = &cfg->items[i];
        if (reload && value_differs(it, &p->val[i], cfg->owned[i]))
            rc_info("config: reloaded key=%s value=%s from=%s", it->key,
                    shown(it, p->raw[i]), p->src[i]);
        switch (it->type) {
        case RC_CFG_STRING:
            if (reload && cfg->owned[i])
                cfg->graveyard[cfg->ngrave++] = cfg->owned[i];
            cfg->owned[i] = p->val[i].s;
            p->val[i].s = NULL;
            *(char **)it->dest = cfg->owned[i];
            break;
        case RC_CFG_BOOL:
            *(bool *)it->dest = p->val[i].b;
            break;
        case RC_CFG_LOGLEVEL:
            *(rc_log_level *)it->dest = p->val[i].l;
            break;
        default:
            *(int *)it->dest = p->val[i].i;
        }
        memcpy(cfg->src[i], p->src[i], SOURCE_LEN);
    }
    for (size_t i = 0; i < cfg->nkafka; i++)
        free(cfg->kafka[i]);
    free(cfg->kafka);
    cfg->kafka = p->kafka;
    cfg->nkafka = p->nkafka;
    p->kafka = NULL;
    p->nkafka = p->capkafka = 0;
    free(cfg->args);
    cfg->args = p->args;
    cfg->nargs = p->nargs;
    p->args = NULL;
    free(cfg->file);
    cfg->file = p->file;
    p->file = NULL;
    return 0;
}

rc_config *rc_config_load(const rc_cfg_item *items, int argc, char **argv,
                          char *errbuf, size_t errlen)
{
    rc_config *cfg = NULL;
    struct pass p = {0};

    if (!(cfg = calloc(1, sizeof *cfg)))
        goto oom;
    cfg->items = items;
    while (items[cfg->nitems].key)
        cfg->nitems++;
    cfg->argc = argc;
    cfg->argv = argv;
    cfg->src = calloc(cfg->nitems + 1, sizeof *cfg->src);
    cfg->owned = calloc(cfg->nitems + 1, sizeof *cfg->owned);
    if (!cfg->src || !cfg->owned)
        goto oom;

    if (collect(cfg, &p, errbuf, errlen) < 0)
        goto err;
    if (p.help) {
        cfg->help = true;
        pass_free(&p, cfg->nitems, items);
        return cfg;
    }
    if (commit(cfg, &p, false) < 0)
        goto oom;
    pass_free(&p, cfg->nitems, items);
    return cfg;
oom:
    rc_errf(errbuf, errlen, "config: out of memory");
err:
    if (cfg)
        pass_free(&p, cfg->nitems, items);
    rc_config_free(cfg);
    return NULL;
}

int rc_config_help_requested(const rc_config *cfg)
{
    return cfg && cfg->help;
}

int rc_config_reload(rc_config *cfg, char *errbuf, size_t errlen)
{
    struct pass p = {0};
    int rc = -1;

    if (collect(cfg, &p, errbuf, errlen) < 0)
        goto done;
    if (p.help) {
        rc = 0;
        goto done;
    }
    if (commit(cfg, &p, true) < 0) {
        rc_errf(errbuf, errlen, "config: out of memory");
        goto done;
    }
    rc = 0;
done:
    pass_free(&p, cfg->nitems, cfg->items);
    return rc;
}

const char *const *rc_config_kafka_props(const rc_config *cfg, size_t *n)
{
    *n = cfg->nkafka;
    return (const char *const *)cfg->kafka;
}

char *const *rc_config_args(const rc_config *cfg, size_t *n)
{
    *n = cfg->nargs;
    return cfg->args;
}

const char *rc_config_file(const rc_config *cfg)
{
    return cfg->file;
}

void rc_config_usage(const rc_cfg_item *items, FILE *out)
{
    fprintf(out, "Options (each also ROLLCALL_<KEY> in the environment, or \"key = value\" in --config FILE;\n"
                 "--kafka.<property>=<value> passes a librdkafka property):\n");
    for (const rc_cfg_item *it = items; it->key; it++) {
        char envn[256], bounds[80] = "", l[32], h[32];
        long long lo, hi;
        env_name(it->key, envn, sizeof envn);
        effective_bounds(it, &lo, &hi);
        if (it->min != 0 || it->max != 0) {
            format_bound(it, lo, l, sizeof l);
            format_bound(it, hi, h, sizeof h);
            snprintf(bounds, sizeof bounds, "  %s %s..%s",
                     it->type == RC_CFG_STRING ? "length" : "range", l, h);
        }
        fprintf(out, "  --%s=%s  default %s%s  [%s]\n      %s\n", it->key, type_name(it->type),
                is_secret(it) ? "(secret)" : it->def ? it->def : "(none)", bounds, envn,
                it->help ? it->help : "");
    }
}

void rc_config_dump(const rc_config *cfg, FILE *out)
{
    for (size_t i = 0; i < cfg->nitems; i++) {
        const rc_cfg_item *it = &cfg->items[i];
        char buf[64];
        const char *v = buf;
        if (is_secret(it))
            v = "(secret)";
        else if (it->type == RC_CFG_STRING)
            v = *(char **)it->dest ? *(char **)it->dest : "(none)";
        else if (it->type == RC_CFG_BOOL)
            v = *(bool *)it->dest ? "true" : "false";
        else if (it->type == RC_CFG_LOGLEVEL) {
            static const char *const names[] = {"debug", "info", "warn", "error"};
            v = names[*(rc_log_level *)it->dest];
        } else
            format_bound(it, *(int *)it->dest, buf, sizeof buf);
        fprintf(out, "%s = %s  # from %s\n", it->key, v, cfg->src[i]);
    }
    for (size_t i = 0; i < cfg->nkafka; i++) {
        const char *k = cfg->kafka[i], *eq = strchr(k, '=');
        /* librdkafka's secrets (sasl.password, ssl.key.password,
         * sasl.oauthbearer.client.secret) all say so in their names. */
        if (strstr(k, "password") || strstr(k, "secret"))
            fprintf(out, "kafka.%.*s = (secret)\n", (int)(eq - k), k);
        else
            fprintf(out, "kafka.%.*s = %s\n", (int)(eq - k), k, eq + 1);
    }
}

void rc_config_free(rc_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; cfg->owned && i < cfg->nitems; i++) {
        if (cfg->owned[i]) {
            if (*(char **)cfg->items[i].dest == cfg->owned[i])
                *(char **)cfg->items[i].dest = NULL;
            free(cfg->owned[i]);
        }
    }
    for (size_t i = 0; i < cfg->ngrave; i++)
        free(cfg->graveyard[i]);
    for (size_t i = 0; i < cfg->nkafka; i++)
        free(cfg->kafka[i]);
    free(cfg->graveyard);
    free(cfg->kafka);
    free(cfg->args);
    free(cfg->file);
    free(cfg->owned);
    free(cfg->src);
    free(cfg);
}
