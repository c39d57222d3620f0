/* "Is this report_id already archived, and as what?" — asked of PostgreSQL
 * by a thread with its own connection, so that the loop never waits on the
 * database.  The loop hands over questions; the thread asks everything that
 * has queued up in one query (rollcall.intake_archived, migration 012), so
 * under load many reports share a round trip; the answers come back to the
 * loop through an eventfd.  While PostgreSQL does not answer, the thread
 * answers "unknown" at once (trying to reconnect at most once a second):
 * the intake stays available, and says how often it could not check. */
#include "village.h"
#include "rc_pg.h"

#include <event2/event.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#define MAX_IDS 1000            /* per query */
#define RETRY_MS 1000           /* between connection attempts while down */
#define STATEMENT_TIMEOUT "2s"

struct archive {
    char *dsn;
    struct event_base *base;
    archive_done_fn *fn;
    void *arg;
    int efd;
    struct event *ev;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    archive_ask *waiting, **waiting_tail; /* the loop's questions, in order */
    archive_ask *done;              /* the thread's answers */
    bool stop;
};

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Asks PostgreSQL about the asks of list (n of them).  Returns 0 with each
 * answered AR_FOUND or AR_ABSENT, or -1 (the connection or the query
 * failed) with errbuf filled and nothing answered. */
static int lookup(rc_pg *pg, archive_ask *list, size_t n, char *errbuf, size_t errlen)
{
    char *arr = malloc(n * 37 + 3), *p = arr;
    const char *vals[1];
    PGresult *res;

    if (!arr) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    *p++ = '{';
    for (archive_ask *a = list; a; a = a->next) {
        if (p != arr + 1)
            *p++ = ',';
        uuid_unparse_lower(a->id, p);
        p += 36;
    }
    *p++ = '}';
    *p = '\0';
    vals[0] = arr;
    res = rc_pg_exec_params(pg, "SELECT report_id::text, version, payload FROM rollcall.intake_archived($1::uuid[])",
                            1, vals, errbuf, errlen);
    free(arr);
    if (!res)
        return -1;
    for (archive_ask *a = list; a; a = a->next)
        a->answer = AR_ABSENT;
    for (int i = 0; i < PQntuples(res); i++) {
        uuid_t id;
        if (uuid_parse(PQgetvalue(res, i, 0), id) < 0)
            continue;
        for (archive_ask *a = list; a; a = a->next) {
            if (memcmp(a->id, id, 16) != 0 || a->answer == AR_FOUND)
                continue;
            a->answer = AR_FOUND;
            a->version = strtoll(PQgetvalue(res, i, 1), NULL, 10);
            if (!PQgetisnull(res, i, 2))
                a->payload = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &a->len);
            /* the same id asked twice in one query: both answered */
        }
    }
    PQclear(res);
    return 0;
}

static void *archive_main(void *arg)
{
    archive *ar = arg;
    rc_pg *pg = NULL;
    int64_t next_try = 0;
    char err[512];
    time_t logged = 0;

    for (;;) {
        archive_ask *list, *last;
        size_t n = 0;

        err[0] = '\0';
        pthread_mutex_lock(&ar->mu);
        while (!ar->waiting && !ar->stop)
            pthread_cond_wait(&ar->cond, &ar->mu);
        if (ar->stop) {
            pthread_mutex_unlock(&ar->mu);
            break;
        }
        list = last = ar->waiting;
        for (n = 1; n < MAX_IDS && last->next; n++)
            last = last->next;
        ar->waiting = last->next;
        if (!ar->waiting)
            ar->waiting_tail = &ar->waiting;
        last->next = NULL;
        pthread_mutex_unlock(&ar->mu);

        for (archive_ask *a = list; a; a = a->next)
            a->answer = AR_UNKNOWN;
        if (!pg && mono_ms() >= next_try) {
            if ((pg = rc_pg_connect(ar->dsn, "rollcall-village-archive", err, sizeof err))) {
                rc_pg_set_reconnect_timeout(pg, 0);
                if (rc_pg_command(pg, "SET statement_timeout = '" STATEMENT_TIMEOUT "'", err, sizeof err) < 0) {
                    rc_pg_free(pg);
                    pg = NULL;
                }
            }
            if (!pg)
                next_try = mono_ms() + RETRY_MS;
        }
        /* A reconnection inside rc_pg is a new session: the timeout again. */
        if (pg && rc_pg_was_disconnected(pg)
            && rc_pg_command(pg, "SET statement_timeout = '" STATEMENT_TIMEOUT "'", err, sizeof err) < 0) {
            rc_pg_free(pg);
            pg = NULL;
            next_try = mono_ms() + RETRY_MS;
        }
        if (pg && lookup(pg, list, n, err, sizeof err) < 0) {
            /* A lost connection is tried again by rc_pg (once); a server
             * that does not answer costs RETRY_MS of "unknown". */
            if (!rc_pg_conn(pg)) {
                rc_pg_free(pg);
                pg = NULL;
                next_try = mono_ms() + RETRY_MS;
            }
        }
        if (list->answer == AR_UNKNOWN && time(NULL) - logged >= 10) {
            rc_warn("report_id archive check unavailable, reports accepted unchecked: %s",
                    err[0] ? err : "no connection to PostgreSQL (tried again within 1 s)");
            logged = time(NULL);
        }

        pthread_mutex_lock(&ar->mu);
        last->next = ar->done;
        ar->done = list;
        pthread_mutex_unlock(&ar->mu);
        {
            uint64_t one = 1;
            if (write(ar->efd, &one, sizeof one) < 0) {
                /* the counter saturates only after 2^64 - 1 wake-ups */
            }
        }
    }
    rc_pg_free(pg);
    return NULL;
}

/* On the loop: hands every answer to the intake. */
static void on_answers(evutil_socket_t fd, short what, void *arg)
{
    archive *ar = arg;
    archive_ask *list, *next;
    uint64_t v;

    (void)what;
    if (read(fd, &v, sizeof v) < 0) {
        /* EAGAIN: another wake-up already took them */
    }
    pthread_mutex_lock(&ar->mu);
    list = ar->done;
    ar->done = NULL;
    pthread_mutex_unlock(&ar->mu);
    for (; list; list = next) {
        next = list->next;
        list->next = NULL;
        ar->fn(ar->arg, list);      /* takes ownership */
    }
}

archive *archive_new(const char *dsn, struct event_base *base, archive_done_fn *fn, void *arg,
                     char *errbuf, size_t errlen)
{
    archive *ar = calloc(1, sizeof *ar);

    if (!ar || !(ar->dsn = strdup(dsn ? dsn : ""))) {
        snprintf(errbuf, errlen, "out of memory");
        free(ar);
        return NULL;
    }
    ar->base = base;
    ar->fn = fn;
    ar->arg = arg;
    ar->waiting_tail = &ar->waiting;
    pthread_mutex_init(&ar->mu, NULL);
    pthread_cond_init(&ar->cond, NULL);
    if ((ar->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0
        || !(ar->ev = event_new(base, ar->efd, EV_READ | EV_PERSIST, on_answers, ar))
        || event_add(ar->ev, NULL) < 0) {
        snprintf(errbuf, errlen, "archive check: cannot set up its event");
        archive_free(ar);
        return NULL;
    }
    if (pthread_create(&ar->thread, NULL, archive_main, ar) != 0) {
        snprintf(errbuf, errlen, "archive check: cannot start its thread");
        archive_free(ar);
        return NULL;
    }
    ar->started = true;
    return ar;
}

int archive_ask_id(archive *ar, const uint8_t id[16], void *opaque)
{
    archive_ask *a = calloc(1, sizeof *a);

    if (!a)
        return -1;
    memcpy(a->id, id, 16);
    a->opaque = opaque;
    pthread_mutex_lock(&ar->mu);
    *ar->waiting_tail = a;
    ar->waiting_tail = &a->next;
    pthread_cond_signal(&ar->cond);
    pthread_mutex_unlock(&ar->mu);
    return 0;
}

void archive_ask_free(archive_ask *a)
{
    if (!a)
        return;
    PQfreemem(a->payload);
    free(a);
}

/* Stops the thread; questions not answered yet are answered AR_UNKNOWN,
 * on this thread, before it returns (their owners must still exist). */
void archive_free(archive *ar)
{
    archive_ask *list, *next;

    if (!ar)
        return;
    if (ar->started) {
        pthread_mutex_lock(&ar->mu);
        ar->stop = true;
        pthread_cond_signal(&ar->cond);
        pthread_mutex_unlock(&ar->mu);
        pthread_join(ar->thread, NULL);
    }
    if (ar->ev) {
        on_answers(ar->efd, EV_READ, ar);
        event_free(ar->ev);
    }
    for (list = ar->waiting; list; list = next) {
        next = list->next;
        list->next = NULL;
        list->answer = AR_UNKNOWN;
        ar->fn(ar->arg, list);
    }
    if (ar->efd > 0)
        close(ar->efd);
    pthread_mutex_destroy(&ar->mu);
    pthread_cond_destroy(&ar->cond);
    free(ar->dsn);
    free(ar);
}
