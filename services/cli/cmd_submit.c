/* rollcall submit — files one report (or a batch) with the village intake,
 * as a clerk's app would: built from flags or read from a JSON file, sent
 * with the unit's token, the server's answer printed as it came.  Exit
 * status 0 only for a 2xx answer.  HTTP through libevent's evhttp client
 * (rc_httpc): no other HTTP library is needed. */
#include "cli.h"
#include "rc_httpc.h"
#include "rc_report.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (256 << 20)

typedef struct {
    const char *url, *token, *file, *unit, *period, *kind, *zone, *report_id, *submitter, *note;
    const char *incident_type, *description, *occurred_at;
    int severity;
    bool batch, protobuf;
    int timeout_s;
    json_t *indicators, *extra;
} submit_opts;

static char *read_file(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t cap = 1 << 16, n = 0;
    char *buf = NULL, *nb;

    if (!f) {
        fprintf(stderr, "rollcall submit: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (!(nb = realloc(buf, cap + 1)))
            goto fail;
        buf = nb;
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        if (cap >= MAX_FILE)
            goto fail;
        cap *= 2;
    }
    if (ferror(f))
        goto fail;
    buf[n] = '\0';
    *len = n;
    if (f != stdin)
        fclose(f);
    return buf;
fail:
    fprintf(stderr, "rollcall submit: cannot read %s\n", path);
    free(buf);
    if (f != stdin)
        fclose(f);
    return NULL;
}

/* --indicator NAME=VALUE: a core indicator, or an extra (province) one. */
static int add_indicator(submit_opts *o, const char *arg)
{
    const char *eq = strchr(arg, '=');
    char name[128], *end;
    long long v;

    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof name)
        return cli_usage_error("submit", "--indicator wants NAME=VALUE, got '%s'", arg);
    memcpy(name, arg, (size_t)(eq - arg));
    name[eq - arg] = '\0';
    errno = 0;
    v = strtoll(eq + 1, &end, 10);
    if (errno || end == eq + 1 || *end)
        return cli_usage_error("submit", "--indicator %s: '%s' is not an integer", name, eq + 1);
    json_object_set_new(rc_indicator_index(name) >= 0 ? o->indicators : o->extra, name,
                        json_integer(v));
    return 0;
}

/* The report as JSON, from the flags. */
static json_t *report_from_flags(const submit_opts *o)
{
    json_t *r = json_object();
    char today[11], now[40];

    rc_period_format(rc_period_of(rc_now_us()), today);
    rc_time_format_rfc3339(rc_now_us(), now);
    if (o->report_id)
        json_object_set_new(r, "report_id", json_string(o->report_id));
    json_object_set_new(r, "unit_code", json_string(o->unit));
    json_object_set_new(r, "level", json_string("village"));
    json_object_set_new(r, "period", json_string(o->period ? o->period : today));
    json_object_set_new(r, "kind", json_string(o->kind ? o->kind : "daily"));
    json_object_set_new(r, "submitted_at", json_string(now));
    if (o->submitter)
        json_object_set_new(r, "submitter", json_string(o->submitter));
    if (json_object_size(o->indicators))
        json_object_set(r, "indicators", o->indicators);
    if (json_object_size(o->extra))
        json_object_set(r, "extra", o->extra);
    if (o->zone)
        json_object_set_new(r, "zone_status", json_string(o->zone));
    if (o->note)
        json_object_set_new(r, "note", json_string(o->note));
    if (o->incident_type || o->severity || o->description || o->occurred_at
        || (o->kind && strcmp(o->kind, "urgent") == 0)) {
        json_t *inc = json_object();
        if (o->incident_type)
            json_object_set_new(inc, "type", json_string(o->incident_type));
        if (o->severity)
            json_object_set_new(inc, "severity", json_integer(o->severity));
        if (o->description)
            json_object_set_new(inc, "description", json_string(o->description));
        json_object_set_new(inc, "occurred_at", json_string(o->occurred_at ? o->occurred_at : now));
        json_object_set_new(r, "incident", inc);
    }
    return r;
}

/* Packs one JSON report as protobuf, appending a varint length first when
 * `delimited` (the batch stream).  Returns 0, or -1 after printing why. */
static int append_protobuf(const json_t *j, bool delimited, uint8_t **buf, size_t *len)
{
    rc_errors errs = {0};
    Rollcall__Report *r = rc_report_from_json(j, &errs);
    uint8_t *packed, *nb;
    size_t plen, at;
    char msg[1024];

    if (!r) {
        rc_errors_format(&errs, msg, sizeof msg);
        fprintf(stderr, "rollcall submit: cannot encode as protobuf: %s\n", msg);
        return -1;
    }
    packed = rc_report_pack(r, &plen);
    rc_report_free(r);
    if (!packed || !(nb = realloc(*buf, *len + plen + 10))) {
        free(packed);
        fprintf(stderr, "rollcall submit: out of memory\n");
        return -1;
    }
    *buf = nb;
    at = *len;
    if (delimited) {
        size_t v = plen;
        do {
            nb[at++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
            v >>= 7;
        } while (v);
    }
    memcpy(nb + at, packed, plen);
    *len = at + plen;
    free(packed);
    return 0;
}

static int send_body(const submit_opts *o, const char *body, size_t len, const char *ctype)
{
    char url[1024], auth[600], err[512];
    const char *base = o->url ? o->url : getenv("ROLLCALL_HTTP");
    rc_httpc_request req = {0};
    rc_httpc_response resp = {0};
    size_t bl;
    int rc;

    if (!base || !*base)
        base = "http://127.0.0.1:8080";
    bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    snprintf(url, sizeof url, "%.*s%s", (int)bl, base, o->batch ? "/v1/reports:batch" : "/v1/reports");
    req.method = "POST";
    req.url = url;
    req.content_type = ctype;
    req.body = body;
    req.body_len = len;
    req.timeout_ms = o->timeout_s * 1000;
    if (o->token) {
        snprintf(auth, sizeof auth, "Bearer %s", o->token);
        req.authorization = auth;
    }
    if (rc_httpc_do(&req, &resp, err, sizeof err) < 0) {
        fprintf(stderr, "rollcall submit: %s\n", err);
        rc_httpc_response_clear(&resp);
        return CLI_FAILED;
    }
    fprintf(stderr, "HTTP %d%s%s\n", resp.status, resp.retry_after[0] ? ", Retry-After: " : "",
            resp.retry_after);
    fwrite(resp.body, 1, resp.body_len, stdout);
    if (resp.body_len && resp.body[resp.body_len - 1] != '\n')
        putchar('\n');
    rc = resp.status >= 200 && resp.status < 300 ? CLI_OK : CLI_FAILED;
    rc_httpc_response_clear(&resp);
    memset(auth, 0, sizeof auth);
    return rc;
}

/* Fills o from the command line.  Returns CLI_OK, or CLI_USAGE after
 * saying what is wrong. */
static int parse_submit_options(int argc, char **argv, submit_opts *o)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'U'},
        {"token", required_argument, NULL, 'T'},
        {"file", required_argument, NULL, 'f'},
        {"batch", no_argument, NULL, 'b'},
        {"protobuf", no_argument, NULL, 'P'},
        {"unit", required_argument, NULL, 'u'},
        {"period", required_argument, NULL, 'p'},
        {"kind", required_argument, NULL, 'k'},
        {"indicator", required_argument, NULL, 'i'},
        {"zone", required_argument, NULL, 'z'},
        {"report-id", required_argument, NULL, 'r'},
        {"submitter", required_argument, NULL, 's'},
        {"note", required_argument, NULL, 'n'},
        {"incident-type", required_argument, NULL, 't'},
        {"severity", required_argument, NULL, 'S'},
        {"description", required_argument, NULL, 'D'},
        {"occurred-at", required_argument, NULL, 'o'},
        {"timeout", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'U': o->url = optarg; break;
        case 'T': o->token = optarg; break;
        case 'f': o->file = optarg; break;
        case 'b': o->batch = true; break;
        case 'P': o->protobuf = true; break;
        case 'u': o->unit = optarg; break;
        case 'p': o->period = optarg; break;
        case 'k': o->kind = optarg; break;
        case 'i':
            if (add_indicator(o, optarg) != 0)
                return CLI_USAGE;
            break;
        case 'z': o->zone = optarg; break;
        case 'r': o->report_id = optarg; break;
        case 's': o->submitter = optarg; break;
        case 'n': o->note = optarg; break;
        case 't': o->incident_type = optarg; break;
        case 'S': o->severity = atoi(optarg); break;
        case 'D': o->description = optarg; break;
        case 'o': o->occurred_at = optarg; break;
        case 'w': o->timeout_s = atoi(optarg) > 0 ? atoi(optarg) : 30; break;
        default: return cli_usage_error("submit", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("submit", "unexpected argument '%s'", argv[optind]);
    if (!o->token)
        o->token = getenv("ROLLCALL_TOKEN");
    if ((o->file != NULL) == (o->unit != NULL))
        return cli_usage_error("submit", "give --unit CODE (and flags) or --file FILE");
    if (o->batch && !o->file)
        return cli_usage_error("submit", "--batch needs --file (a JSON array of reports)");
    return CLI_OK;
}

/* Sends doc as protobuf: one report, or with --batch an array of them,
 * each length-delimited. */
static int send_protobuf(const submit_opts *o, const json_t *doc)
{
    uint8_t *pb = NULL;
    size_t pblen = 0;
    int rc = CLI_FAILED;

    if (o->batch) {
        size_t i;
        json_t *item;
        if (!json_is_array(doc)) {
            fprintf(stderr, "rollcall submit: --batch wants a JSON array of reports\n");
            goto done;
        }
        json_array_foreach(doc, i, item)
            if (append_protobuf(item, true, &pb, &pblen) < 0)
                goto done;
    } else if (append_protobuf(doc, false, &pb, &pblen) < 0) {
        goto done;
    }
    rc = send_body(o, (const char *)pb, pblen, "application/x-protobuf");
done:
    free(pb);
    return rc;
}

int cmd_submit(int argc, char **argv)
{
    submit_opts o = {.timeout_s = 30};
    json_t *doc = NULL;
    json_error_t jerr;
    char *text = NULL, *ftext = NULL;
    size_t len = 0;
    int rc;

    o.indicators = json_object();
    o.extra = json_object();
    if ((rc = parse_submit_options(argc, argv, &o)) != CLI_OK)
        goto done;
    rc = CLI_FAILED;
    if (o.file) {
        if (!(ftext = read_file(o.file, &len)))
            goto done;
        if (!o.protobuf) {
            rc = send_body(&o, ftext, len, "application/json");
            goto done;
        }
        if (!(doc = json_loadb(ftext, len, 0, &jerr))) {
            fprintf(stderr, "rollcall submit: %s:%d:%d: %s\n", o.file, jerr.line, jerr.column, jerr.text);
            goto done;
        }
    } else {
        doc = report_from_flags(&o);
    }
    if (o.protobuf) {
        rc = send_protobuf(&o, doc);
    } else {
        text = json_dumps(doc, JSON_COMPACT);
        rc = text ? send_body(&o, text, strlen(text), "application/json") : CLI_FAILED;
    }
done:
    json_decref(doc);
    json_decref(o.indicators);
    json_decref(o.extra);
    free(text);
    free(ftext);
    return rc;
}
