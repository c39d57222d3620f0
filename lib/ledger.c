/* rc_ledger — see rc_ledger.h.  The recomputation keeps one slot per
 * village with a report (latest revision, earliest receive time) in an
 * open-addressing table, then walks the registry once, villages in code
 * order, summing into townships, townships into counties, counties into
 * provinces: linear in the registry, a few hundred ms for the nation. */
#include "rc_ledger.h"

#include "rc_loadgen.h"
#include "rc_report.h"
#include "rc_time.h"
#include "rollcall.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define VILLAGE_EXTRA_MAX 4
#define NIND RC_LEDGER_INDICATORS

/* ---- names ---- */

static const char *const kind_names[] = {"unspecified", "daily", "zero", "urgent"};
static const char *const zone_names[] = {"unspecified", "normal", "prevention", "control",
                                         "lockdown"};
static const char *const status_names[] = {"planned", "accepted", "rejected", "failed",
                                           "invalid"};
static const char *const role_names[] = {"first", "correction", "retry", "urgent", "invalid"};

static int name_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int)i;
    return -1;
}

#define NAMES(a) (a), (sizeof(a) / sizeof((a)[0]))

const char *rc_ledger_status_name(int status)
{
    return status >= 0 && status <= RC_LEDGER_INVALID ? status_names[status] : "?";
}

/* ---- records <-> JSON ---- */

json_t *rc_ledger_rec_to_json(const rc_ledger_rec *rec)
{
    json_t *o = json_object(), *ind = NULL, *extra = NULL;
    char at[40], period[11];
    bool any = false;

    if (!o)
        return NULL;
    rc_period_format(rec->period, period);
    rc_time_format_rfc3339(rec->received_at, at);
    json_object_set_new(o, "report_id", json_string(rec->report_id));
    json_object_set_new(o, "unit", json_string(rec->unit));
    json_object_set_new(o, "period", json_string(period));
    json_object_set_new(o, "kind", json_string(rec->kind >= 0 && rec->kind <= 3
                                                   ? kind_names[rec->kind] : "unspecified"));
    if (rec->role >= 0 && rec->role < 5)
        json_object_set_new(o, "role", json_string(role_names[rec->role]));
    json_object_set_new(o, "version", json_integer(rec->version));
    if (rec->received_at)
        json_object_set_new(o, "received_at", json_string(at));
    json_object_set_new(o, "zone_status", json_string(rec->zone >= 0 && rec->zone <= 4
                                                          ? zone_names[rec->zone]
                                                          : "unspecified"));
    for (size_t i = 0; i < NIND; i++)
        any |= rec->ind[i] != 0;
    if (any) {
        ind = json_array();
        for (size_t i = 0; ind && i < NIND; i++)
            json_array_append_new(ind, json_integer(rec->ind[i]));
        json_object_set_new(o, "indicators", ind);
    }
    if (rec->nextra) {
        extra = json_object();
        for (size_t i = 0; extra && i < rec->nextra; i++)
            json_object_set_new(extra, rec->extra[i].name, json_integer(rec->extra[i].value));
        json_object_set_new(o, "extra", extra);
    }
    json_object_set_new(o, "status", json_string(rc_ledger_status_name(rec->status)));
    if (rec->http)
        json_object_set_new(o, "http", json_integer(rec->http));
    if (rec->reason[0])
        json_object_set_new(o, "reason", json_string(rec->reason));
    return o;
}

static const char *get_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

int rc_ledger_rec_from_json(const json_t *obj, const int *names_map, size_t nnames,
                            rc_ledger_rec *rec, char *errbuf, size_t errlen)
{
    const char *s;
    const json_t *v;
    int k;

    memset(rec, 0, sizeof *rec);
    rec->role = -1;
    if (!json_is_object(obj)) {
        snprintf(errbuf, errlen, "not a JSON object");
        return -1;
    }
    s = get_str(obj, "report_id");
    if (!s || strlen(s) >= sizeof rec->report_id) {
        snprintf(errbuf, errlen, "report_id: missing or too long");
        return -1;
    }
    strcpy(rec->report_id, s);
    s = get_str(obj, "unit");
    if (!s || strlen(s) >= sizeof rec->unit) {
        snprintf(errbuf, errlen, "unit: missing or too long");
        return -1;
    }
    strcpy(rec->unit, s);
    if (!(s = get_str(obj, "period")) || rc_period_parse(s, &rec->period) < 0) {
        snprintf(errbuf, errlen, "period: missing or not YYYY-MM-DD");
        return -1;
    }
    if ((k = name_index(NAMES(kind_names), get_str(obj, "kind"))) < 0) {
        snprintf(errbuf, errlen, "kind: missing or unknown");
        return -1;
    }
    rec->kind = k;
    rec->role = name_index(NAMES(role_names), get_str(obj, "role"));
    v = json_object_get(obj, "version");
    if (v && !json_is_integer(v)) {
        snprintf(errbuf, errlen, "version: not an integer");
        return -1;
    }
    rec->version = v ? json_integer_value(v) : 0;
    if ((s = get_str(obj, "received_at")) && rc_time_parse_rfc3339(s, &rec->received_at) < 0) {
        snprintf(errbuf, errlen, "received_at: not RFC 3339");
        return -1;
    }
    if ((s = get_str(obj, "zone_status")) && (k = name_index(NAMES(zone_names), s)) >= 0)
        rec->zone = k;
    if ((v = json_object_get(obj, "indicators")) != NULL) {
        size_t n = json_array_size(v);

        if (!json_is_array(v)) {
            snprintf(errbuf, errlen, "indicators: not an array");
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            const json_t *x = json_array_get(v, i);
            int to = names_map ? (i < nnames ? names_map[i] : -1) : (int)i;

            if (!json_is_integer(x)) {
                snprintf(errbuf, errlen, "indicators[%zu]: not an integer", i);
                return -1;
            }
            if (to >= 0 && to < NIND)
                rec->ind[to] = json_integer_value(x);
        }
    }
    if ((v = json_object_get(obj, "extra")) != NULL) {
        const char *key;
        json_t *x;

        json_object_foreach((json_t *)v, key, x) {
            if (rec->nextra == RC_LEDGER_EXTRA_MAX || strlen(key) >= sizeof rec->extra[0].name ||
                !json_is_integer(x)) {
                snprintf(errbuf, errlen, "extra.%s: not an integer, or too many extra names", key);
                return -1;
            }
            strcpy(rec->extra[rec->nextra].name, key);
            rec->extra[rec->nextra++].value = json_integer_value(x);
        }
    }
    if ((k = name_index(NAMES(status_names), get_str(obj, "status"))) < 0) {
        snprintf(errbuf, errlen, "status: missing or unknown");
        return -1;
    }
    rec->status = k;
    rec->http = (int)json_integer_value(json_object_get(obj, "http"));
    if ((s = get_str(obj, "reason")) != NULL)
        snprintf(rec->reason, sizeof rec->reason, "%s", s);
    return 0;
}

/* ---- writer ---- */

struct rc_ledger_writer {
    FILE *f;
    char *path;
    int32_t cached_day;         /* the last period formatted, and its text */
    char cached_period[11];
};

rc_ledger_writer *rc_ledger_writer_open(const char *path, const json_t *header,
                                        char *errbuf, size_t errlen)
{
    rc_ledger_writer *w = calloc(1, sizeof *w);
    json_t *h = NULL, *names = NULL;
    char *text = NULL;

    if (!w || !(w->path = strdup(path)))
        goto oom;
    h = header ? json_deep_copy(header) : json_object();
    names = json_array();
    if (!h || !names)
        goto oom;
    for (size_t i = 0; i < NIND; i++)
        json_array_append_new(names, json_string(rc_indicator_name(i)));
    json_object_set_new(h, "ledger", json_string("rollcall-loadgen"));
    json_object_set_new(h, "format", json_integer(1));
    json_object_set_new(h, "indicator_names", names);
    names = NULL;
    if (!(text = json_dumps(h, JSON_COMPACT)))
        goto oom;
    if (!(w->f = fopen(path, "w"))) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    /* Large buffer: a national ledger is ~700,000 lines. */
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    if (fprintf(w->f, "%s\n", text) < 0) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    free(text);
    json_decref(h);
    return w;

oom:
    snprintf(errbuf, errlen, "out of memory");
fail:
    free(text);
    json_decref(h);
    json_decref(names);
    if (w) {
        if (w->f)
            fclose(w->f);
        free(w->path);
        free(w);
    }
    return NULL;
}

/* Strings that need no JSON escaping: codes, UUIDs, names, timestamps. */
static bool plain(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.' || *s == ':' || *s == '+'))
            return false;
    return true;
}

static char *put(char *p, const char *s)
{
    size_t n = strlen(s);

    memcpy(p, s, n);
    return p + n;
}

static char *put_int(char *p, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    if (v < 0)
        *p++ = '-';
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* The same line as json_dumpb(rc_ledger_rec_to_json(rec)) would write, for
 * records whose strings need no escaping (all of loadgen's but the refused
 * ones): a national ledger is 640,000 lines written while the pipeline
 * under test shares the CPU, and this is ~8x cheaper than building objects.
 * Returns the length, or 0 when the record is not plain. */
static size_t format_plain(rc_ledger_writer *w, const rc_ledger_rec *rec, char *buf)
{
    char at[40], *p = buf;
    bool any = false;

    if (rec->reason[0] || !plain(rec->report_id) || !plain(rec->unit))
        return 0;
    for (size_t i = 0; i < rec->nextra; i++)
        if (!plain(rec->extra[i].name))
            return 0;
    if (!w->cached_period[0] || w->cached_day != rec->period) {
        rc_period_format(rec->period, w->cached_period);
        w->cached_day = rec->period;
    }
    p = put(p, "{\"report_id\":\"");
    p = put(p, rec->report_id);
    p = put(p, "\",\"unit\":\"");
    p = put(p, rec->unit);
    p = put(p, "\",\"period\":\"");
    p = put(p, w->cached_period);
    p = put(p, "\",\"kind\":\"");
    p = put(p, rec->kind >= 0 && rec->kind <= 3 ? kind_names[rec->kind] : "unspecified");
    if (rec->role >= 0 && rec->role < 5) {
        p = put(p, "\",\"role\":\"");
        p = put(p, role_names[rec->role]);
    }
    p = put(p, "\",\"version\":");
    p = put_int(p, rec->version);
    if (rec->received_at) {
        rc_time_format_rfc3339(rec->received_at, at);
        p = put(p, ",\"received_at\":\"");
        p = put(p, at);
        *p++ = '"';
    }
    p = put(p, ",\"zone_status\":\"");
    p = put(p, rec->zone >= 0 && rec->zone <= 4 ? zone_names[rec->zone] : "unspecified");
    *p++ = '"';
    for (size_t i = 0; i < NIND; i++)
        any |= rec->ind[i] != 0;
    if (any) {
        p = put(p, ",\"indicators\":[");
        for (size_t i = 0; i < NIND; i++) {
            if (i)
                *p++ = ',';
            p = put_int(p, rec->ind[i]);
        }
        *p++ = ']';
    }
    if (rec->nextra) {
        p = put(p, ",\"extra\":{");
        for (size_t i = 0; i < rec->nextra; i++) {
            p = put(p, i ? ",\"" : "\"");
            p = put(p, rec->extra[i].name);
            p = put(p, "\":");
            p = put_int(p, rec->extra[i].value);
        }
        *p++ = '}';
    }
    p = put(p, ",\"status\":\"");
    p = put(p, rc_ledger_status_name(rec->status));
    *p++ = '"';
    if (rec->http) {
        p = put(p, ",\"http\":");
        p = put_int(p, rec->http);
    }
    *p++ = '}';
    return (size_t)(p - buf);
}

int rc_ledger_write(rc_ledger_writer *w, const rc_ledger_rec *rec, char *errbuf, size_t errlen)
{
    /* Bounded: 32 indicators and 8 extras of at most 21 characters each,
     * 47-character names, fixed fields; the slow path checks its own size. */
    char buf[4096];
    size_t n = format_plain(w, rec, buf);

    if (n == 0) {
        json_t *o = rc_ledger_rec_to_json(rec);

        if (!o) {
            snprintf(errbuf, errlen, "out of memory");
            return -1;
        }
        n = json_dumpb(o, buf, sizeof buf - 1, JSON_COMPACT);
        json_decref(o);
        if (n == 0 || n >= sizeof buf - 1) {
            snprintf(errbuf, errlen, "ledger record for %s does not fit", rec->report_id);
            return -1;
        }
    }
    buf[n++] = '\n';
    if (fwrite(buf, 1, n, w->f) != n) {
        snprintf(errbuf, errlen, "%s: %s", w->path, strerror(errno));
        return -1;
    }
    return 0;
}

int rc_ledger_writer_close(rc_ledger_writer *w, char *errbuf, size_t errlen)
{
    int rc = 0;

    if (!w)
        return 0;
    if (fflush(w->f) != 0 || ferror(w->f)) {
        snprintf(errbuf, errlen, "%s: %s", w->path, strerror(errno));
        rc = -1;
    }
    if (fclose(w->f) != 0 && rc == 0) {
        snprintf(errbuf, errlen, "%s: %s", w->path, strerror(errno));
        rc = -1;
    }
    free(w->path);
    free(w);
    return rc;
}

/* ---- reader ----
 *
 * jansson needs ~7 µs for a ledger line (an allocation per value), so a
 * national ledger (640,000 lines) is parsed by worker threads, one chunk of
 * lines at a time, while the caller's thread hands the records to fn in file
 * order.  At most READ_WINDOW chunks are parsed ahead of the consumer. */

#define READ_CHUNK (1 << 20)     /* bytes of text per chunk */
#define READ_WINDOW 8
#define READ_THREADS_MAX 4

typedef struct read_chunk {
    const char *start, *end;
    size_t first_line;
    rc_ledger_rec *recs;
    size_t n;
    bool done, failed;
    char err[256];
} read_chunk;

typedef struct reader {
    const char *path;
    const int *names_map;
    size_t nnames;
    read_chunk *chunks;
    size_t nchunks;
    size_t next;                /* next chunk to parse */
    size_t consumed;            /* chunks handed to fn */
    bool stop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
} reader;

/* Parses one line (len > 0, no newline) into rec.  Returns 0, or -1 with err. */
static int parse_line(const char *line, size_t len, const int *names_map, size_t nnames,
                      rc_ledger_rec *rec, bool *is_header, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *o = json_loadb(line, len, 0, &jerr);
    int rc;

    *is_header = false;
    if (!o) {
        snprintf(err, errlen, "%s", jerr.text);
        return -1;
    }
    if (json_object_get(o, "ledger")) {
        *is_header = true;
        json_decref(o);
        return 0;
    }
    rc = rc_ledger_rec_from_json(o, names_map, nnames, rec, err, errlen);
    json_decref(o);
    return rc;
}

static void parse_chunk(reader *rd, read_chunk *c)
{
    size_t cap = 1024, line = c->first_line;
    const char *p = c->start;

    c->recs = malloc(cap * sizeof *c->recs);
    if (!c->recs) {
        snprintf(c->err, sizeof c->err, "out of memory");
        c->failed = true;
        return;
    }
    while (p < c->end) {
        const char *nl = memchr(p, '\n', (size_t)(c->end - p));
        size_t len = (size_t)((nl ? nl : c->end) - p);
        char err[200];
        bool header;

        line++;
        while (len > 0 && p[len - 1] == '\r')
            len--;
        if (len > 0) {
            if (c->n == cap) {
                rc_ledger_rec *t = realloc(c->recs, 2 * cap * sizeof *t);

                if (!t) {
                    snprintf(c->err, sizeof c->err, "out of memory");
                    c->failed = true;
                    return;
                }
                c->recs = t;
                cap *= 2;
            }
            if (parse_line(p, len, rd->names_map, rd->nnames, &c->recs[c->n], &header, err,
                           sizeof err) < 0) {
                snprintf(c->err, sizeof c->err, "%s:%zu: %s", rd->path, line, err);
                c->failed = true;
                return;
            }
            if (!header)
                c->n++;
        }
        p = nl ? nl + 1 : c->end;
    }
}

static void *read_worker(void *arg)
{
    reader *rd = arg;

    pthread_mutex_lock(&rd->lock);
    for (;;) {
        read_chunk *c;

        while (!rd->stop && rd->next < rd->nchunks && rd->next >= rd->consumed + READ_WINDOW)
            pthread_cond_wait(&rd->cond, &rd->lock);
        if (rd->stop || rd->next >= rd->nchunks)
            break;
        c = &rd->chunks[rd->next++];
        pthread_mutex_unlock(&rd->lock);
        parse_chunk(rd, c);
        pthread_mutex_lock(&rd->lock);
        c->done = true;
        pthread_cond_broadcast(&rd->cond);
    }
    pthread_mutex_unlock(&rd->lock);
    return NULL;
}

int rc_ledger_read(const char *path, int (*fn)(const rc_ledger_rec *rec, void *opaque),
                   void *opaque, char *errbuf, size_t errlen)
{
    int fd = open(path, O_RDONLY), rc = -1, nthreads = 0;
    struct stat st;
    const char *map = MAP_FAILED, *p, *end;
    size_t size = 0, lines = 0;
    int *names_map = NULL;
    pthread_t threads[READ_THREADS_MAX];
    reader rd;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    memset(&rd, 0, sizeof rd);
    rd.path = path;
    pthread_mutex_init(&rd.lock, NULL);
    pthread_cond_init(&rd.cond, NULL);
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        goto done;
    }
    size = (size_t)st.st_size;
    if (size == 0) {
        rc = 0;
        goto done;
    }
    if ((map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        goto done;
    }
    madvise((void *)map, size, MADV_SEQUENTIAL);
    end = map + size;

    /* The header (first line) maps the indicator columns for every worker. */
    p = map;
    {
        const char *nl = memchr(p, '\n', size);
        size_t len = (size_t)((nl ? nl : end) - p);
        json_t *o = json_loadb(p, len, 0, NULL);

        if (o && json_object_get(o, "ledger")) {
            const json_t *names = json_object_get(o, "indicator_names");

            rd.nnames = json_array_size(names);
            if (rd.nnames && !(names_map = malloc(rd.nnames * sizeof *names_map))) {
                json_decref(o);
                snprintf(errbuf, errlen, "out of memory");
                goto done;
            }
            for (size_t i = 0; i < rd.nnames; i++)
                names_map[i] = rc_indicator_index(json_string_value(json_array_get(names, i)));
            rd.names_map = names_map;
            p = nl ? nl + 1 : end;
            lines = 1;
        }
        json_decref(o);
    }

    /* Chunks of whole lines. */
    rd.chunks = calloc(size / READ_CHUNK + 2, sizeof *rd.chunks);
    if (!rd.chunks) {
        snprintf(errbuf, errlen, "out of memory");
        goto done;
    }
    while (p < end) {
        read_chunk *c = &rd.chunks[rd.nchunks++];
        const char *q = p + READ_CHUNK < end ? p + READ_CHUNK : end;

        if (q < end) {
            const char *nl = memchr(q, '\n', (size_t)(end - q));

            q = nl ? nl + 1 : end;
        }
        c->start = p;
        c->end = q;
        c->first_line = lines;
        for (const char *x = p; (x = memchr(x, '\n', (size_t)(q - x))) != NULL; x++)
            lines++;
        p = q;
    }

    nthreads = ncpu > READ_THREADS_MAX ? READ_THREADS_MAX : ncpu < 1 ? 1 : (int)ncpu;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&threads[i], NULL, read_worker, &rd) != 0) {
            nthreads = i;
            break;
        }
    }
    if (nthreads == 0) {
        snprintf(errbuf, errlen, "cannot start a reader thread");
        goto done;
    }
    rc = 0;
    for (size_t i = 0; i < rd.nchunks && rc == 0; i++) {
        read_chunk *c = &rd.chunks[i];

        pthread_mutex_lock(&rd.lock);
        while (!c->done)
            pthread_cond_wait(&rd.cond, &rd.lock);
        pthread_mutex_unlock(&rd.lock);
        if (c->failed) {
            snprintf(errbuf, errlen, "%s", c->err);
            rc = -1;
        }
        for (size_t k = 0; rc == 0 && k < c->n; k++) {
            if (fn(&c->recs[k], opaque) < 0) {
                snprintf(errbuf, errlen, "%s: stopped at record %zu of chunk %zu", path, k, i);
                rc = -1;
            }
        }
        free(c->recs);
        c->recs = NULL;
        pthread_mutex_lock(&rd.lock);
        rd.consumed = i + 1;
        if (rc < 0)
            rd.stop = true;
        pthread_cond_broadcast(&rd.cond);
        pthread_mutex_unlock(&rd.lock);
    }

done:
    for (int i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    for (size_t i = 0; rd.chunks && i < rd.nchunks; i++)
        free(rd.chunks[i].recs);
    free(rd.chunks);
    free(names_map);
    if (map != MAP_FAILED)
        munmap((void *)map, size);
    if (fd >= 0)
        close(fd);
    pthread_mutex_destroy(&rd.lock);
    pthread_cond_destroy(&rd.cond);
    return rc;
}

/* ---- expected rows ---- */

typedef struct village {
    uint64_t code;
    int64_t version;
    int64_t first_rx;
    uint8_t rid[16];
    uint8_t kind, zone, nextra;
    uint8_t extra_id[VILLAGE_EXTRA_MAX];
    int64_t extra_val[VILLAGE_EXTRA_MAX];
    int64_t ind[NIND];
} village;

typedef struct agg {
    uint64_t code;
    int64_t vsum;               /* sum over the villages beneath of max(version - start, 1) */
    int32_t expected, reported, zero, late;
    int32_t v_expected, v_reported, v_zero, v_late;
    int32_t zone[5];
    uint32_t missing_off, nmissing;
    int64_t ind[NIND];
    int64_t extra[RC_LEDGER_EXTRA_MAX];
} agg;

typedef struct rid_slot {
    uint8_t rid[16];
    uint64_t unit;
    int64_t version;
    bool used;
} rid_slot;

struct rc_expect {
    int32_t period;
    int64_t start_us;           /* the period's first microsecond, Asia/Shanghai */
    int64_t deadline_us;
    village *v;
    size_t nv, capv;
    uint32_t *vmap;          /* village index + 1; 0 = empty */
    size_t vmap_cap;         /* power of two */
    uint32_t *vorder;        /* villages ascending by code, after compute */
    uint32_t *vrank;         /* inverse of vorder */
    rid_slot *rids;
    size_t nrids, rids_cap;  /* power of two */
    char extra_names[RC_LEDGER_EXTRA_MAX][48];
    size_t nextra_names;
    agg *aggs[6];            /* index 2, 3, 5 */
    size_t nagg[6], capagg[6];
    uint64_t *missing;
    size_t nmissing, capmissing;
    bool computed;
    bool failed;             /* out of memory inside the registry walk */
    rc_expect_stats stats;
};

static const int code_len[6] = {0, 12, 9, 6, 4, 2};

static uint64_t hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

int64_t rc_expect_deadline_us(int32_t period, int deadline_s)
{
    return (int64_t)period * RC_DAY_US - RC_TZ_OFFSET_US + (int64_t)deadline_s * 1000000;
}

void rc_expect_code_format(uint64_t code, int level, char out[13])
{
    int len = level >= 1 && level <= 5 ? code_len[level] : 0;

    out[len] = '\0';
    for (int i = len - 1; i >= 0; i--, code /= 10)
        out[i] = (char)('0' + code % 10);
}

/* Numeric value and level of a code; level 0 when it is not one. */
static int parse_code(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = 0;

    for (; s[n]; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 12)
            return 0;
        v = v * 10 + (uint64_t)(s[n] - '0');
    }
    *out = v;
    for (int l = 1; l <= 5; l++)
        if ((size_t)code_len[l] == n)
            return l;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* UUID text to bytes; -1 if malformed. */
static int parse_uuid(const char *s, uint8_t out[16])
{
    size_t k = 0;

    for (size_t i = 0; s[i] && k < 32; i++) {
        int h;

        if (s[i] == '-' && (i == 8 || i == 13 || i == 18 || i == 23))
            continue;
        if ((h = hexval(s[i])) < 0)
            return -1;
        if (k % 2 == 0)
            out[k / 2] = (uint8_t)(h << 4);
        else
            out[k / 2] |= (uint8_t)h;
        k++;
    }
    return k == 32 && strlen(s) == 36 ? 0 : -1;
}

rc_expect *rc_expect_new(int32_t period, int village_deadline_s)
{
    rc_expect *e = calloc(1, sizeof *e);

    if (!e)
        return NULL;
    e->period = period;
    e->start_us = rc_expect_deadline_us(period, 0);
    e->deadline_us = rc_expect_deadline_us(period, village_deadline_s);
    return e;
}

void rc_expect_free(rc_expect *e)
{
    if (!e)
        return;
    free(e->v);
    free(e->vmap);
    free(e->vorder);
    free(e->vrank);
    free(e->rids);
    for (int l = 0; l < 6; l++)
        free(e->aggs[l]);
    free(e->missing);
    free(e);
}

const rc_expect_stats *rc_expect_stats_of(const rc_expect *e)
{
    return &e->stats;
}

size_t rc_expect_extra_count(const rc_expect *e)
{
    return e->nextra_names;
}

const char *rc_expect_extra_name(const rc_expect *e, size_t i)
{
    return i < e->nextra_names ? e->extra_names[i] : NULL;
}

static int grow_rids(rc_expect *e)
{
    size_t cap = e->rids_cap ? e->rids_cap * 2 : 1 << 12;
    rid_slot *t = calloc(cap, sizeof *t);

    if (!t)
        return -1;
    for (size_t i = 0; i < e->rids_cap; i++) {
        rid_slot *s = &e->rids[i];
        uint64_t h;

        if (!s->used)
            continue;
        memcpy(&h, s->rid, 8);
        for (h = hash64(h) & (cap - 1); t[h].used; h = (h + 1) & (cap - 1))
            ;
        t[h] = *s;
    }
    free(e->rids);
    e->rids = t;
    e->rids_cap = cap;
    return 0;
}

/* The slot of rid: found (*found = true) or the empty one to fill. */
static rid_slot *rid_lookup(rc_expect *e, const uint8_t rid[16], bool *found)
{
    uint64_t h;

    memcpy(&h, rid, 8);
    for (h = hash64(h) & (e->rids_cap - 1);; h = (h + 1) & (e->rids_cap - 1)) {
        rid_slot *s = &e->rids[h];

        if (!s->used) {
            *found = false;
            return s;
        }
        if (memcmp(s->rid, rid, 16) == 0) {
            *found = true;
            return s;
        }
    }
}

static int grow_villages(rc_expect *e)
{
    size_t cap = e->vmap_cap ? e->vmap_cap * 2 : 1 << 12;
    uint32_t *m = calloc(cap, sizeof *m);

    if (!m)
        return -1;
    for (size_t i = 0; i < e->nv; i++) {
        uint64_t h;

        for (h = hash64(e->v[i].code) & (cap - 1); m[h]; h = (h + 1) & (cap - 1))
            ;
        m[h] = (uint32_t)i + 1;
    }
    free(e->vmap);
    e->vmap = m;
    e->vmap_cap = cap;
    return 0;
}

static village *village_find(const rc_expect *e, uint64_t code, uint32_t **slot)
{
    uint64_t h;

    if (!e->vmap_cap) {
        if (slot)
            *slot = NULL;
        return NULL;
    }
    for (h = hash64(code) & (e->vmap_cap - 1);; h = (h + 1) & (e->vmap_cap - 1)) {
        uint32_t idx = e->vmap[h];

        if (!idx) {
            if (slot)
                *slot = &e->vmap[h];
            return NULL;
        }
        if (e->v[idx - 1].code == code)
            return &e->v[idx - 1];
    }
}

static int extra_id(rc_expect *e, const char *name)
{
    for (size_t i = 0; i < e->nextra_names; i++)
        if (strcmp(e->extra_names[i], name) == 0)
            return (int)i;
    if (e->nextra_names == RC_LEDGER_EXTRA_MAX || strlen(name) >= sizeof e->extra_names[0])
        return -1;
    strcpy(e->extra_names[e->nextra_names], name);
    return (int)e->nextra_names++;
}

int rc_expect_add(rc_expect *e, const rc_ledger_rec *rec, char *errbuf, size_t errlen)
{
    uint8_t rid[16];
    uint64_t code;
    rid_slot *slot;
    village *v;
    uint32_t *vslot;
    bool found, newer;
    int ids[RC_LEDGER_EXTRA_MAX];

    e->stats.records++;
    if (rec->status != RC_LEDGER_ACCEPTED) {
        e->stats.excluded++;
        return 0;
    }
    if (rec->period != e->period) {
        e->stats.other_period++;
        return 0;
    }
    if (parse_uuid(rec->report_id, rid) < 0) {
        snprintf(errbuf, errlen, "accepted report with a malformed report_id '%s'", rec->report_id);
        return -1;
    }
    if (rec->nextra > VILLAGE_EXTRA_MAX) {
        snprintf(errbuf, errlen, "report %s: more than %d extra indicators", rec->report_id,
                 VILLAGE_EXTRA_MAX);
        return -1;
    }
    for (size_t i = 0; i < rec->nextra; i++) {
        if ((ids[i] = extra_id(e, rec->extra[i].name)) < 0) {
            snprintf(errbuf, errlen, "more than %d distinct extra indicator names",
                     RC_LEDGER_EXTRA_MAX);
            return -1;
        }
    }
    if ((e->nrids + 1) * 2 > e->rids_cap && grow_rids(e) < 0)
        goto oom;
    parse_code(rec->unit, &code);
    slot = rid_lookup(e, rid, &found);
    if (found) {
        /* A re-delivered report changes nothing; the same id acknowledged
         * with another version or unit is an anomaly of the acknowledger. */
        e->stats.duplicates++;
        if (slot->version != rec->version || slot->unit != code)
            e->stats.conflicts++;
        return 0;
    }
    memcpy(slot->rid, rid, 16);
    slot->unit = code;
    slot->version = rec->version;
    slot->used = true;
    e->nrids++;
    e->stats.accepted++;

    if (rec->kind == ROLLCALL__KIND__KIND_URGENT) {
        e->stats.urgent++;
        return 0;
    }
    if (rec->kind != ROLLCALL__KIND__KIND_DAILY && rec->kind != ROLLCALL__KIND__KIND_ZERO)
        return 0;
    if (parse_code(rec->unit, &code) != 1) {
        e->stats.not_village++;
        return 0;
    }
    if ((e->nv + 1) * 2 > e->vmap_cap && grow_villages(e) < 0)
        goto oom;
    if (!(v = village_find(e, code, &vslot))) {
        if (e->nv == e->capv) {
            size_t cap = e->capv ? e->capv * 2 : 1024;
            village *t = realloc(e->v, cap * sizeof *t);

            if (!t)
                goto oom;
            e->v = t;
            e->capv = cap;
        }
        v = &e->v[e->nv];
        memset(v, 0, sizeof *v);
        v->code = code;
        v->first_rx = rec->received_at;
        v->version = INT64_MIN;
        *vslot = (uint32_t)++e->nv;
        newer = true;
    } else {
        if (rec->received_at < v->first_rx)
            v->first_rx = rec->received_at;
        newer = rec->version > v->version ||
                (rec->version == v->version && memcmp(rid, v->rid, 16) > 0);
    }
    if (rec->version > e->stats.max_version)
        e->stats.max_version = rec->version;
    if (!newer)
        return 0;
    v->version = rec->version;
    memcpy(v->rid, rid, 16);
    v->kind = (uint8_t)rec->kind;
    v->zone = (uint8_t)(rec->zone >= 0 && rec->zone <= 4 ? rec->zone : 0);
    memcpy(v->ind, rec->ind, sizeof v->ind);
    v->nextra = (uint8_t)rec->nextra;
    for (size_t i = 0; i < rec->nextra; i++) {
        v->extra_id[i] = (uint8_t)ids[i];
        v->extra_val[i] = rec->extra[i].value;
    }
    return 0;

oom:
    snprintf(errbuf, errlen, "out of memory");
    return -1;
}

static int add_cb(const rc_ledger_rec *rec, void *opaque)
{
    void **ctx = opaque;
    rc_expect *e = ctx[0];
    char *err = ctx[1];

    return rc_expect_add(e, rec, err, 256);
}

int rc_expect_load(rc_expect *e, const char *path, char *errbuf, size_t errlen)
{
    char err[256] = "";
    void *ctx[2] = {e, err};

    if (rc_ledger_read(path, add_cb, ctx, errbuf, errlen) < 0) {
        if (err[0])
            snprintf(errbuf, errlen, "%s: %s", path, err);
        return -1;
    }
    return 0;
}

/* ---- the registry walk ---- */

static agg *agg_push(rc_expect *e, int level, uint64_t code)
{
    agg *a;

    if (e->nagg[level] == e->capagg[level]) {
        size_t cap = e->capagg[level] ? e->capagg[level] * 2 : 64;
        agg *t = realloc(e->aggs[level], cap * sizeof *t);

        if (!t)
            return NULL;
        e->aggs[level] = t;
        e->capagg[level] = cap;
    }
    a = &e->aggs[level][e->nagg[level]++];
    memset(a, 0, sizeof *a);
    a->code = code;
    return a;
}

static int missing_push(rc_expect *e, agg *a, uint64_t child)
{
    if (e->nmissing == e->capmissing) {
        size_t cap = e->capmissing ? e->capmissing * 2 : 1024;
        uint64_t *t = realloc(e->missing, cap * sizeof *t);

        if (!t)
            return -1;
        e->missing = t;
        e->capmissing = cap;
    }
    if (a->nmissing == 0)
        a->missing_off = (uint32_t)e->nmissing;
    e->missing[e->nmissing++] = child;
    a->nmissing++;
    return 0;
}

typedef struct walk {
    rc_expect *e;
    size_t township;        /* merge cursor into aggs[2] */
    size_t matched;         /* ledger villages found in the registry */
} walk;

static void walk_unit(const rc_unit *u, void *opaque)
{
    walk *w = opaque;
    rc_expect *e = w->e;
    uint64_t code;
    agg *t;
    village *v;

    if (e->failed)
        return;
    parse_code(u->code, &code);
    if (u->level == ROLLCALL__LEVEL__LEVEL_TOWNSHIP || u->level == ROLLCALL__LEVEL__LEVEL_COUNTY ||
        u->level == ROLLCALL__LEVEL__LEVEL_PROVINCE) {
        if (!agg_push(e, u->level, code))
            e->failed = true;
        return;
    }
    if (u->level != ROLLCALL__LEVEL__LEVEL_VILLAGE)
        return;
    /* Villages arrive ascending, so their townships do too. */
    while (w->township < e->nagg[2] && e->aggs[2][w->township].code < code / 1000)
        w->township++;
    if (w->township == e->nagg[2] || e->aggs[2][w->township].code != code / 1000)
        return;   /* cannot happen: the registry holds every village's township */
    t = &e->aggs[2][w->township];
    t->expected++;
    if (!(v = village_find(e, code, NULL))) {
        if (missing_push(e, t, code) < 0)
            e->failed = true;
        return;
    }
    w->matched++;
    t->reported++;
    if (v->kind == ROLLCALL__KIND__KIND_ZERO)
        t->zero++;
    if (v->first_rx > e->deadline_us) {
        t->late++;
        e->stats.late_villages++;
    }
    t->zone[v->zone]++;
    t->vsum += v->version - e->start_us > 1 ? v->version - e->start_us : 1;
    for (size_t i = 0; i < NIND; i++)
        t->ind[i] += v->ind[i];
    for (size_t i = 0; i < v->nextra; i++)
        t->extra[v->extra_id[i]] += v->extra_val[i];
}

/* Sums the children at level cl into their parents at level pl (aggs
 * ascending at both levels); `divisor` turns a child code into its parent's. */
static int roll_up(rc_expect *e, int cl, int pl, uint64_t divisor)
{
    size_t p = 0;

    for (size_t i = 0; i < e->nagg[cl]; i++) {
        const agg *c = &e->aggs[cl][i];
        bool complete = c->v_expected > 0 && c->v_reported == c->v_expected;
        agg *a;

        while (p < e->nagg[pl] && e->aggs[pl][p].code < c->code / divisor)
            p++;
        if (p == e->nagg[pl] || e->aggs[pl][p].code != c->code / divisor)
            continue;
        a = &e->aggs[pl][p];
        a->expected++;
        if (complete) {
            a->reported++;
            if (c->v_zero == c->v_expected)
                a->zero++;
            if (c->v_late > 0)
                a->late++;
        } else if (missing_push(e, a, c->code) < 0) {
            return -1;
        }
        a->v_expected += c->v_expected;
        a->v_reported += c->v_reported;
        a->v_zero += c->v_zero;
        a->v_late += c->v_late;
        for (int z = 0; z < 5; z++)
            a->zone[z] += c->zone[z];
        a->vsum += c->vsum;
        for (size_t k = 0; k < NIND; k++)
            a->ind[k] += c->ind[k];
        for (size_t k = 0; k < RC_LEDGER_EXTRA_MAX; k++)
            a->extra[k] += c->extra[k];
    }
    return 0;
}

static int cmp_vorder(const void *a, const void *b, void *arg)
{
    const rc_expect *e = arg;
    uint64_t x = e->v[*(const uint32_t *)a].code, y = e->v[*(const uint32_t *)b].code;

    return x < y ? -1 : x > y;
}

int rc_expect_compute(rc_expect *e, const rc_registry *reg, char *errbuf, size_t errlen)
{
    walk w = {.e = e};

    if (e->computed) {
        snprintf(errbuf, errlen, "expectations already computed");
        return -1;
    }
    rc_registry_foreach(reg, walk_unit, &w);
    if (e->failed)
        goto oom;
    /* A township's village coverage is its own children. */
    for (size_t i = 0; i < e->nagg[2]; i++) {
        agg *t = &e->aggs[2][i];

        t->v_expected = t->expected;
        t->v_reported = t->reported;
        t->v_zero = t->zero;
        t->v_late = t->late;
    }
    if (roll_up(e, 2, 3, 1000) < 0 || roll_up(e, 3, 5, 10000) < 0)
        goto oom;
    e->stats.villages = e->nv;
    e->stats.unknown_units = e->nv - w.matched;
    if (e->nv && !(e->vorder = malloc(e->nv * sizeof *e->vorder)))
        goto oom;
    for (size_t i = 0; i < e->nv; i++)
        e->vorder[i] = (uint32_t)i;
    qsort_r(e->vorder, e->nv, sizeof *e->vorder, cmp_vorder, e);
    if (e->nv && !(e->vrank = malloc(e->nv * sizeof *e->vrank)))
        goto oom;
    for (size_t i = 0; i < e->nv; i++)
        e->vrank[e->vorder[i]] = (uint32_t)i;
    e->computed = true;
    return 0;

oom:
    snprintf(errbuf, errlen, "out of memory");
    return -1;
}

/* ---- rows ---- */

static void village_row(const rc_expect *e, const village *v, rc_expect_row *row)
{
    memset(row, 0, sizeof *row);
    row->index = e->vrank ? e->vrank[v - e->v] : 0;
    row->code = v->code;
    row->level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    row->present = true;
    row->kind = v->kind;
    row->zone_status = v->zone;
    rc_loadgen_uuid_format(v->rid, row->report_id);
    row->first_received_at = v->first_rx;
    row->version = v->version;
    row->villages_expected = 1;
    row->villages_reported = 1;
    row->villages_zero = v->kind == ROLLCALL__KIND__KIND_ZERO;
    row->villages_late = v->first_rx > e->deadline_us;
    row->zone[v->zone] = 1;
    row->ind = v->ind;
    for (size_t i = 0; i < v->nextra; i++)
        row->extra[v->extra_id[i]] += v->extra_val[i];
}

static void agg_row(const rc_expect *e, const agg *a, int level, rc_expect_row *row)
{
    size_t base = e->nv + (level >= 3 ? e->nagg[2] : 0) + (level == 5 ? e->nagg[3] : 0);

    memset(row, 0, sizeof *row);
    row->index = base + (size_t)(a - e->aggs[level]);
    row->code = a->code;
    row->level = level;
    row->present = a->v_reported > 0;
    row->kind = ROLLCALL__KIND__KIND_UNSPECIFIED;
    /* An aggregate's version (Report.version in proto/rollcall.proto): the
     * period's start plus the sum over its villages of their versions'
     * distance from it, so that any change beneath raises it; 0 while
     * nothing beneath has reported. */
    row->version = a->vsum ? e->start_us + a->vsum : 0;
    row->expected = a->expected;
    row->reported = a->reported;
    row->zero = a->zero;
    row->late = a->late;
    row->villages_expected = a->v_expected;
    row->villages_reported = a->v_reported;
    row->villages_zero = a->v_zero;
    row->villages_late = a->v_late;
    memcpy(row->zone, a->zone, sizeof row->zone);
    row->ind = a->ind;
    memcpy(row->extra, a->extra, sizeof row->extra);
    row->missing = a->nmissing ? e->missing + a->missing_off : NULL;
    row->nmissing = a->nmissing;
}

int rc_expect_find(const rc_expect *e, const char *code, rc_expect_row *row)
{
    uint64_t c;
    int level = parse_code(code, &c);
    const village *v;

    if (!e->computed)
        return -1;
    if (level == ROLLCALL__LEVEL__LEVEL_VILLAGE) {
        if (!(v = village_find(e, c, NULL)))
            return -1;
        village_row(e, v, row);
        return 0;
    }
    if (level == 2 || level == 3 || level == 5) {
        size_t lo = 0, hi = e->nagg[level];

        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;

            if (e->aggs[level][mid].code < c)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < e->nagg[level] && e->aggs[level][lo].code == c) {
            agg_row(e, &e->aggs[level][lo], level, row);
            return 0;
        }
    }
    return -1;
}

size_t rc_expect_count(const rc_expect *e)
{
    return e->computed ? e->nv + e->nagg[2] + e->nagg[3] + e->nagg[5] : 0;
}

int rc_expect_at(const rc_expect *e, size_t i, rc_expect_row *row)
{
    static const int levels[] = {2, 3, 5};

    if (!e->computed)
        return -1;
    if (i < e->nv) {
        village_row(e, &e->v[e->vorder[i]], row);
        return 0;
    }
    i -= e->nv;
    for (size_t k = 0; k < 3; k++) {
        int l = levels[k];

        if (i < e->nagg[l]) {
            agg_row(e, &e->aggs[l][i], l, row);
            return 0;
        }
        i -= e->nagg[l];
    }
    return -1;
}
