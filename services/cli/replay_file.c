/* Reports collected outside the system, read from JSON lines or CSV (the
 * .proto field names; indicators as plain columns), given the identity the
 * intake would have given them and validated like the intake does. */
#include "replay.h"
#include "rc_log.h"

#include <csv.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const replay_file_opts *o;
    replay_report_fn *fn;
    void *opaque;
    size_t valid, invalid;
    int64_t base_us;        /* received_at given to line N is base_us + N */
} reader;

static void report_invalid(reader *rd, size_t line, const rc_errors *errs)
{
    size_t shown = errs->n < RC_ERRORS_MAX ? errs->n : RC_ERRORS_MAX;

    rd->invalid++;
    for (size_t i = 0; i < shown; i++)
        fprintf(stderr, "%s:%zu: %s: %s\n", rd->o->path, line,
                errs->e[i].field[0] ? errs->e[i].field : "(line)", errs->e[i].reason);
    if (errs->n > shown)
        fprintf(stderr, "%s:%zu: ... and %zu more problems\n", rd->o->path, line,
                errs->n - shown);
}

static char *dup_or_null(const char *s)
{
    char *d = strdup(s);
    if (!d)
        rc_error("out of memory");
    return d;
}

/* Checks the report like the intake (rc_report_validate with the registry,
 * then the intake's own rules: a village report, and nothing the system
 * assigns — a line carrying version or received_at is refused, as the
 * intake refuses it), then gives it what the intake assigns: a report_id
 * when it has none, received_at strictly increasing in file order (so a
 * later line for the same unit and period supersedes an earlier one) and
 * version = received_at.  Takes ownership of r: hands it to the callback,
 * or frees it. */
static void accept_report(reader *rd, Rollcall__Report *r, size_t line, rc_errors *errs)
{
    if (!r->report_id || !r->report_id[0]) {
        char id[37];
        rc_uuid_new(id);
        if (r->report_id && r->report_id != protobuf_c_empty_string)
            free(r->report_id);
        r->report_id = dup_or_null(id);
        if (!r->report_id) {
            r->report_id = (char *)protobuf_c_empty_string;
            rc_errors_add(errs, "report_id", "out of memory");
        }
    }
    if (r->level == ROLLCALL__LEVEL__LEVEL_UNSPECIFIED)
        r->level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    rc_report_validate(r, rd->o->validate, rd->o->registry, errs);
    rc_report_check_submission(r, rd->o->registry, errs);
    if (errs->n > 0) {
        report_invalid(rd, line, errs);
        rc_report_free(r);
        return;
    }
    r->received_at = rd->base_us + (int64_t)line;
    r->version = r->received_at;
    rd->valid++;
    rd->fn(rd->opaque, r, line);
}

/* ------------------------------------------------------------ JSON lines */

static int read_jsonl(reader *rd, FILE *f)
{
    char *buf = NULL;
    size_t cap = 0, line = 0;
    ssize_t n;

    while ((n = getline(&buf, &cap, f)) >= 0) {
        rc_errors errs = {0};
        Rollcall__Report *r;
        size_t i = 0;

        line++;
        while (i < (size_t)n && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
            i++;
        if (i == (size_t)n)
            continue;   /* blank line */
        r = rc_report_from_json_text(buf, (size_t)n, &errs);
        if (!r) {
            report_invalid(rd, line, &errs);
            continue;
        }
        accept_report(rd, r, line, &errs);
    }
    free(buf);
    if (ferror(f))
        return -1;
    return 0;
}

/* ------------------------------------------------------------------- CSV */

typedef enum { COL_TOP, COL_INDICATOR, COL_EXTRA, COL_INCIDENT } col_kind;

typedef struct {
    col_kind kind;
    char *name;                             /* the JSON member name */
    const ProtobufCFieldDescriptor *field;  /* COL_TOP, COL_INCIDENT */
} column;

typedef struct {
    reader *rd;
    column *cols;
    size_t ncols, cap;
    size_t record;          /* 1 = the header */
    size_t field;           /* index within the current record */
    json_t *obj;
    bool header_done;
    bool header_failed;
    rc_errors errs;         /* problems of the current record */
} csv_state;

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool is_timestamp(const ProtobufCFieldDescriptor *f)
{
    return f->type == PROTOBUF_C_TYPE_INT64 && ends_with(f->name, "_at");
}

/* Maps a header name to a column.  Returns 0, or -1 with the reason. */
static int add_column(csv_state *st, const char *name, char *why, size_t whylen)
{
    column c = {0};
    const ProtobufCFieldDescriptor *f;

    if (st->ncols == st->cap) {
        size_t ncap = st->cap ? 2 * st->cap : 64;
        column *n = realloc(st->cols, ncap * sizeof *n);
        if (!n) {
            snprintf(why, whylen, "out of memory");
            return -1;
        }
        st->cols = n;
        st->cap = ncap;
    }
    if (strncmp(name, "indicators.", 11) == 0 && rc_indicator_index(name + 11) >= 0) {
        c.kind = COL_INDICATOR;
        c.name = strdup(name + 11);
    } else if (rc_indicator_index(name) >= 0) {
        c.kind = COL_INDICATOR;
        c.name = strdup(name);
    } else if (strncmp(name, "extra.", 6) == 0 && name[6]) {
        c.kind = COL_EXTRA;
        c.name = strdup(name + 6);
    } else if (strncmp(name, "incident.", 9) == 0 &&
               (f = protobuf_c_message_descriptor_get_field_by_name(&rollcall__incident__descriptor,
                                                                    name + 9)) &&
               f->label != PROTOBUF_C_LABEL_REPEATED) {
        c.kind = COL_INCIDENT;
        c.field = f;
        c.name = strdup(name + 9);
    } else if ((f = protobuf_c_message_descriptor_get_field_by_name(&rollcall__report__descriptor,
                                                                   name)) &&
               f->type != PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED) {
        c.kind = COL_TOP;
        c.field = f;
        c.name = strdup(name);
    } else {
        snprintf(why, whylen, "column \"%s\" is not a Report field (use the .proto names; "
                 "indicators as plain columns, extra.NAME, incident.FIELD)", name);
        return -1;
    }
    if (!c.name) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    st->cols[st->ncols++] = c;
    return 0;
}

/* A cell as the JSON value the codec expects for the field: integers as
 * integers, timestamps and enums as strings, booleans as booleans.  A cell
 * that is not what the field needs is passed through as a string, so the
 * codec names the field and the problem. */
static json_t *cell_value(const ProtobufCFieldDescriptor *f, const char *s)
{
    char *end;
    long long v;

    if (f && (f->type == PROTOBUF_C_TYPE_BOOL)) {
        if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
            return json_true();
        if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
            return json_false();
        return json_string(s);
    }
    if (f && (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_ENUM ||
              is_timestamp(f)))
        return json_string(s);
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno == 0 && end != s && *end == '\0')
        return json_integer(v);
    return json_string(s);
}

static json_t *child_object(json_t *obj, const char *key)
{
    json_t *c = json_object_get(obj, key);
    if (!c) {
        c = json_object();
        json_object_set_new(obj, key, c);
    }
    return c;
}

static void csv_field(void *data, size_t len, void *opaque)
{
    csv_state *st = opaque;
    size_t idx = st->field++;
    char *s = data ? strndup(data, len) : strdup("");
    const column *c;

    if (!s) {
        rc_errors_add(&st->errs, "", "out of memory");
        return;
    }
    if (!st->header_done) {
        char why[256];
        if (!st->header_failed && add_column(st, s, why, sizeof why) < 0) {
            fprintf(stderr, "%s:1: %s\n", st->rd->o->path, why);
            st->header_failed = true;
        }
        free(s);
        return;
    }
    if (idx >= st->ncols) {
        if (s[0])
            rc_errors_add(&st->errs, "", "more cells than the header has columns");
        free(s);
        return;
    }
    c = &st->cols[idx];
    if (s[0]) {
        if (!st->obj)
            st->obj = json_object();
        switch (c->kind) {
        case COL_TOP:
            json_object_set_new(st->obj, c->name, cell_value(c->field, s));
            break;
        case COL_INDICATOR:
            json_object_set_new(child_object(st->obj, "indicators"), c->name, cell_value(NULL, s));
            break;
        case COL_EXTRA:
            json_object_set_new(child_object(st->obj, "extra"), c->name, cell_value(NULL, s));
            break;
        case COL_INCIDENT:
            json_object_set_new(child_object(st->obj, "incident"), c->name,
                                cell_value(c->field, s));
            break;
        }
    }
    free(s);
}

static void csv_record(int term, void *opaque)
{
    csv_state *st = opaque;
    Rollcall__Report *r;

    (void)term;
    st->record++;
    if (!st->header_done) {
        st->header_done = true;
        goto next;
    }
    if (st->header_failed)
        goto next;
    if (st->errs.n > 0 || !st->obj) {
        if (!st->obj && st->errs.n == 0)
            goto next;   /* an empty record */
        report_invalid(st->rd, st->record, &st->errs);
        goto next;
    }
    r = rc_report_from_json(st->obj, &st->errs);
    if (!r)
        report_invalid(st->rd, st->record, &st->errs);
    else
        accept_report(st->rd, r, st->record, &st->errs);
next:
    json_decref(st->obj);
    st->obj = NULL;
    st->field = 0;
    memset(&st->errs, 0, sizeof st->errs);
}

static int read_csv(reader *rd, FILE *f, char *errbuf, size_t errlen)
{
    struct csv_parser p;
    csv_state st = {0};
    char buf[65536];
    size_t n;
    int rc = -1;

    st.rd = rd;
    if (csv_init(&p, CSV_APPEND_NULL) != 0) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    while ((n = fread(buf, 1, sizeof buf, f)) > 0 && !st.header_failed) {
        if (csv_parse(&p, buf, n, csv_field, csv_record, &st) != n) {
            snprintf(errbuf, errlen, "%s: CSV: %s", rd->o->path, csv_strerror(csv_error(&p)));
            goto done;
        }
    }
    if (ferror(f)) {
        snprintf(errbuf, errlen, "%s: %s", rd->o->path, strerror(errno));
        goto done;
    }
    csv_fini(&p, csv_field, csv_record, &st);
    if (st.header_failed) {
        snprintf(errbuf, errlen, "%s: bad header, nothing read", rd->o->path);
        goto done;
    }
    rc = 0;
done:
    json_decref(st.obj);
    for (size_t i = 0; i < st.ncols; i++)
        free(st.cols[i].name);
    free(st.cols);
    csv_free(&p);
    return rc;
}

int replay_file_read(const replay_file_opts *o, replay_report_fn *fn, void *opaque,
                     size_t *valid, size_t *invalid, char *errbuf, size_t errlen)
{
    reader rd = {.o = o, .fn = fn, .opaque = opaque, .base_us = rc_now_us()};
    FILE *f = strcmp(o->path, "-") == 0 ? stdin : fopen(o->path, "r");
    int rc;

    if (!f) {
        snprintf(errbuf, errlen, "%s: %s", o->path, strerror(errno));
        return -1;
    }
    if (o->csv) {
        rc = read_csv(&rd, f, errbuf, errlen);
    } else {
        rc = read_jsonl(&rd, f);
        if (rc < 0)
            snprintf(errbuf, errlen, "%s: %s", o->path, strerror(errno));
    }
    if (f != stdin)
        fclose(f);
    *valid = rd.valid;
    *invalid = rd.invalid;
    return rc;
}
