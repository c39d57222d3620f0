/* rc_ledger — see rc_ledger.h: the ledger file format.  Records to and
 * from JSON, the writer, and the reader (chunks parsed by a few threads, in
 * file order).  The recomputation from a ledger is lib/expect.c. */
#include "rc_ledger.h"
#include "rc_buf.h"

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
    p = rc_put_str(p, "{\"report_id\":\"");
    p = rc_put_str(p, rec->report_id);
    p = rc_put_str(p, "\",\"unit\":\"");
    p = rc_put_str(p, rec->unit);
    p = rc_put_str(p, "\",\"period\":\"");
    p = rc_put_str(p, w->cached_period);
    p = rc_put_str(p, "\",\"kind\":\"");
    p = rc_put_str(p, rec->kind >= 0 && rec->kind <= 3 ? kind_names[rec->kind] : "unspecified");
    if (rec->role >= 0 && rec->role < 5) {
        p = rc_put_str(p, "\",\"role\":\"");
        p = rc_put_str(p, role_names[rec->role]);
    }
    p = rc_put_str(p, "\",\"version\":");
    p = rc_put_int(p, rec->version);
    if (rec->received_at) {
        rc_time_format_rfc3339(rec->received_at, at);
        p = rc_put_str(p, ",\"received_at\":\"");
        p = rc_put_str(p, at);
        *p++ = '"';
    }
    p = rc_put_str(p, ",\"zone_status\":\"");
    p = rc_put_str(p, rec->zone >= 0 && rec->zone <= 4 ? zone_names[rec->zone] : "unspecified");
    *p++ = '"';
    for (size_t i = 0; i < NIND; i++)
        any |= rec->ind[i] != 0;
    if (any) {
        p = rc_put_str(p, ",\"indicators\":[");
        for (size_t i = 0; i < NIND; i++) {
            if (i)
                *p++ = ',';
            p = rc_put_int(p, rec->ind[i]);
        }
        *p++ = ']';
    }
    if (rec->nextra) {
        p = rc_put_str(p, ",\"extra\":{");
        for (size_t i = 0; i < rec->nextra; i++) {
            p = rc_put_str(p, i ? ",\"" : "\"");
            p = rc_put_str(p, rec->extra[i].name);
            p = rc_put_str(p, "\":");
            p = rc_put_int(p, rec->extra[i].value);
        }
        *p++ = '}';
    }
    p = rc_put_str(p, ",\"status\":\"");
    p = rc_put_str(p, rc_ledger_status_name(rec->status));
    *p++ = '"';
    if (rec->http) {
        p = rc_put_str(p, ",\"http\":");
        p = rc_put_int(p, rec->http);
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

/* The header (first line, when it is one) maps the indicator columns for
 * every worker: sets rd->names_map (malloc'd, in *names_map for the caller
 * to free) and rd->nnames, and moves *p past it, counting it in *lines.
 * Returns 0, or -1 when out of memory. */
static int read_header(reader *rd, const char **p, const char *end, int **names_map,
                       size_t *lines, char *errbuf, size_t errlen)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t len = (size_t)((nl ? nl : end) - *p);
    json_t *o = json_loadb(*p, len, 0, NULL);

    if (o && json_object_get(o, "ledger")) {
        const json_t *names = json_object_get(o, "indicator_names");

        rd->nnames = json_array_size(names);
        if (rd->nnames && !(*names_map = malloc(rd->nnames * sizeof **names_map))) {
            json_decref(o);
            snprintf(errbuf, errlen, "out of memory");
            return -1;
        }
        for (size_t i = 0; i < rd->nnames; i++)
            (*names_map)[i] = rc_indicator_index(json_string_value(json_array_get(names, i)));
        rd->names_map = *names_map;
        *p = nl ? nl + 1 : end;
        *lines = 1;
    }
    json_decref(o);
    return 0;
}

/* Cuts [p, end) into chunks of whole lines of about READ_CHUNK bytes, each
 * knowing its first line number (lines before p: `lines`).  Returns 0, or
 * -1 when out of memory. */
static int cut_chunks(reader *rd, const char *p, const char *end, size_t size, size_t lines,
                      char *errbuf, size_t errlen)
{
    rd->chunks = calloc(size / READ_CHUNK + 2, sizeof *rd->chunks);
    if (!rd->chunks) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    while (p < end) {
        read_chunk *c = &rd->chunks[rd->nchunks++];
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
    return 0;
}

/* Hands the parsed records to fn chunk by chunk, in file order, as the
 * workers finish them; on the first failure (a worker's or fn's) tells the
 * workers to stop.  Returns 0, or -1 with errbuf set. */
static int deliver_chunks(reader *rd, int (*fn)(const rc_ledger_rec *rec, void *opaque),
                          void *opaque, char *errbuf, size_t errlen)
{
    int rc = 0;

    for (size_t i = 0; i < rd->nchunks && rc == 0; i++) {
        read_chunk *c = &rd->chunks[i];

        pthread_mutex_lock(&rd->lock);
        while (!c->done)
            pthread_cond_wait(&rd->cond, &rd->lock);
        pthread_mutex_unlock(&rd->lock);
        if (c->failed) {
            snprintf(errbuf, errlen, "%s", c->err);
            rc = -1;
        }
        for (size_t k = 0; rc == 0 && k < c->n; k++) {
            if (fn(&c->recs[k], opaque) < 0) {
                snprintf(errbuf, errlen, "%s: stopped at record %zu of chunk %zu", rd->path, k, i);
                rc = -1;
            }
        }
        free(c->recs);
        c->recs = NULL;
        pthread_mutex_lock(&rd->lock);
        rd->consumed = i + 1;
        if (rc < 0)
            rd->stop = true;
        pthread_cond_broadcast(&rd->cond);
        pthread_mutex_unlock(&rd->lock);
    }
    return rc;
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
    p = map;
    if (read_header(&rd, &p, end, &names_map, &lines, errbuf, errlen) < 0 ||
        cut_chunks(&rd, p, end, size, lines, errbuf, errlen) < 0)
        goto done;

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
    rc = deliver_chunks(&rd, fn, opaque, errbuf, errlen);

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
