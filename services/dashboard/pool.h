/* The dashboard's request workers (pool.c): a fixed set of threads, each
 * with a context of its own (api.c: a PostgreSQL connection), running jobs
 * the loop submits, and handing each finished job back to the loop. */
#ifndef DASHBOARD_POOL_H
#define DASHBOARD_POOL_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;

/* Embedded first in the caller's job. */
typedef struct pool_job {
    struct pool_job *next;
    bool ran;                   /* false: handed back unrun (the pool stopped) */
} pool_job;

typedef struct pool pool;
/* On a worker thread, with that worker's context. */
typedef void pool_run_fn(void *context, pool_job *j);
/* On the loop, once per submitted job, in the order the jobs finished. */
typedef void pool_done_fn(void *arg, pool_job *j);

/* Starts `nthreads` workers; worker i runs with contexts[i] (borrowed).  At
 * most `max_queued` jobs wait for a worker.  Returns NULL with errbuf. */
pool *pool_new(struct event_base *base, int nthreads, size_t max_queued, void **contexts,
               pool_run_fn *run, pool_done_fn *done, void *arg, char *errbuf, size_t errlen);
/* Queues a job.  Returns 0, or -1 when max_queued jobs already wait or the
 * pool has stopped (the job stays the caller's). */
int pool_submit(pool *p, pool_job *j);
/* Jobs waiting for a worker. */
size_t pool_queued(pool *p);
/* On the loop: lets the running jobs finish, joins the workers and hands
 * every job back through `done` (the unrun ones with ran == false).  Later
 * calls do nothing. */
void pool_stop(pool *p);
/* pool_stop, then frees the pool.  NULL is a no-op. */
void pool_free(pool *p);

#endif
