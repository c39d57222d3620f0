/* The request workers.  The loop hands each API request over as a job; a
 * worker runs it on a context of its own (its PostgreSQL connection) and
 * appends it to the finished list; an eventfd wakes the loop, which sends
 * the replies.  libevent runs without its thread support (rc_service.h), so
 * nothing here touches libevent from a worker: the eventfd is the only way
 * back. */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

typedef struct queue {
    pool_job *head, *tail;
    size_t n;
} queue;

struct pool {
    pool_run_fn *run;
    pool_done_fn *done;
    void *arg;
    size_t max_queued;
    int nthreads, started;
    pthread_t *threads;
    struct thread_arg { pool *p; void *ctx; } *targs;
    pthread_mutex_t lock;
    pthread_cond_t work;
    queue waiting, finished;
    bool stopping;
    int wake_fd;
    struct event *wake;
};

static void push(queue *q, pool_job *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->n++;
}

static pool_job *take_all(queue *q)
{
    pool_job *h = q->head;
    q->head = q->tail = NULL;
    q->n = 0;
    return h;
}

static void *worker_main(void *arg)
{
    struct thread_arg *t = arg;
    pool *p = t->p;
    uint64_t one = 1;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->waiting.head && !p->stopping)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->stopping)
            break;
        pool_job *j = p->waiting.head;
        p->waiting.head = j->next;
        if (!p->waiting.head)
            p->waiting.tail = NULL;
        p->waiting.n--;
        pthread_mutex_unlock(&p->lock);

        p->run(t->ctx, j);
        j->ran = true;

        pthread_mutex_lock(&p->lock);
        push(&p->finished, j);
        /* A full eventfd counter cannot happen (2^64 - 2 wakes). */
        if (write(p->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
            perror("dashboard pool: eventfd");
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void deliver(pool *p)
{
    pthread_mutex_lock(&p->lock);
    pool_job *j = take_all(&p->finished);
    pthread_mutex_unlock(&p->lock);
    while (j) {
        pool_job *next = j->next;
        p->done(p->arg, j);
        j = next;
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    uint64_t n;
    (void)what;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        perror("dashboard pool: eventfd");
    deliver(arg);
}

pool *pool_new(struct event_base *base, int nthreads, size_t max_queued, void **contexts,
               pool_run_fn *run, pool_done_fn *done, void *arg, char *errbuf, size_t errlen)
{
    pool *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    p->wake_fd = -1;
    if (!(p->threads = calloc((size_t)nthreads, sizeof *p->threads)) ||
        !(p->targs = calloc((size_t)nthreads, sizeof *p->targs))) {
        snprintf(errbuf, errlen, "out of memory");
        goto failed;
    }
    p->run = run;
    p->done = done;
    p->arg = arg;
    p->max_queued = max_queued;
    p->nthreads = nthreads;
    if ((p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
        !(p->wake = event_new(base, p->wake_fd, EV_READ | EV_PERSIST, on_wake, p)) ||
        event_add(p->wake, NULL) < 0) {
        snprintf(errbuf, errlen, "pool: cannot watch an eventfd: %s", strerror(errno));
        goto failed;
    }
    for (; p->started < nthreads; p->started++) {
        int e;
        p->targs[p->started] = (struct thread_arg){p, contexts[p->started]};
        if ((e = pthread_create(&p->threads[p->started], NULL, worker_main, &p->targs[p->started]))) {
            snprintf(errbuf, errlen, "pool: pthread_create: %s", strerror(e));
            goto failed;
        }
    }
    return p;
failed:
    pool_free(p);
    return NULL;
}

int pool_submit(pool *p, pool_job *j)
{
    int rc = -1;
    j->ran = false;
    pthread_mutex_lock(&p->lock);
    if (!p->stopping && p->waiting.n < p->max_queued) {
        push(&p->waiting, j);
        pthread_cond_signal(&p->work);
        rc = 0;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

size_t pool_queued(pool *p)
{
    pthread_mutex_lock(&p->lock);
    size_t n = p->waiting.n;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void pool_stop(pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    bool was = p->stopping;
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    if (was)
        return;
    for (int i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    p->started = 0;
    deliver(p);
    /* Jobs no worker took: handed back with ran == false. */
    pool_job *j = take_all(&p->waiting);
    while (j) {
        pool_job *next = j->next;
        p->done(p->arg, j);
        j = next;
    }
}

void pool_free(pool *p)
{
    if (!p)
        return;
    pool_stop(p);
    if (p->wake)
        event_free(p->wake);
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p->targs);
    free(p);
}
