/* Unit tests for the dashboard's request workers (services/dashboard/pool.c,
 * built into this test as PgBouncer's tests build their module sources):
 * every job runs once on a worker with that worker's context and comes back
 * on the loop; jobs run side by side; the queue bound refuses; a stop hands
 * back the jobs no worker took. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../../services/dashboard/pool.c"

#include <stdatomic.h>

typedef struct tjob {
    pool_job link;
    int id;
    void *ran_with;             /* the context the worker passed */
    pthread_t ran_on;
} tjob;

typedef struct harness {
    struct event_base *base;
    pthread_t loop_thread;
    int delivered, unrun;
    int order[64];
    _Atomic int running, most_running;
    _Atomic int hold;           /* workers wait while set */
    int expect;
} harness;

static harness H;

static void run_job(void *context, pool_job *pj)
{
    tjob *j = (tjob *)pj;
    int now = atomic_fetch_add(&H.running, 1) + 1, most = atomic_load(&H.most_running);
    while (now > most && !atomic_compare_exchange_weak(&H.most_running, &most, now))
        ;
    while (atomic_load(&H.hold))
        usleep(1000);
    j->ran_with = context;
    j->ran_on = pthread_self();
    atomic_fetch_sub(&H.running, 1);
}

static void done_job(void *arg, pool_job *pj)
{
    tjob *j = (tjob *)pj;
    assert_ptr_equal(arg, &H);
    assert_true(pthread_equal(pthread_self(), H.loop_thread));
    if (pj->ran)
        H.order[H.delivered++] = j->id;
    else
        H.unrun++;
    if (H.delivered + H.unrun == H.expect)
        event_base_loopbreak(H.base);
}

static void loop_until_delivered(int n)
{
    H.expect = n;
    struct timeval limit = {10, 0};
    event_base_loopexit(H.base, &limit);
    event_base_dispatch(H.base);
}

static int setup(void **state)
{
    (void)state;
    memset(&H, 0, sizeof H);
    H.base = event_base_new();
    H.loop_thread = pthread_self();
    return H.base ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    event_base_free(H.base);
    return 0;
}

static void every_job_runs_once_with_its_workers_context(void **state)
{
    (void)state;
    int ctx[3];
    void *contexts[3] = {&ctx[0], &ctx[1], &ctx[2]};
    char err[256];
    tjob jobs[40];
    pool *p = pool_new(H.base, 3, 64, contexts, run_job, done_job, &H, err, sizeof err);
    assert_non_null(p);
    for (int i = 0; i < 40; i++) {
        jobs[i] = (tjob){.id = i};
        assert_int_equal(pool_submit(p, &jobs[i].link), 0);
    }
    loop_until_delivered(40);
    assert_int_equal(H.delivered, 40);
    assert_int_equal(H.unrun, 0);
    int seen[40] = {0};
    for (int i = 0; i < 40; i++)
        seen[H.order[i]]++;
    for (int i = 0; i < 40; i++) {
        assert_int_equal(seen[i], 1);
        assert_true(jobs[i].ran_with == &ctx[0] || jobs[i].ran_with == &ctx[1] ||
                    jobs[i].ran_with == &ctx[2]);
        assert_false(pthread_equal(jobs[i].ran_on, H.loop_thread));
    }
    pool_free(p);
}

static void jobs_run_side_by_side_and_the_queue_is_bounded(void **state)
{
    (void)state;
    int ctx[2];
    void *contexts[2] = {&ctx[0], &ctx[1]};
    char err[256];
    tjob jobs[5];
    pool *p = pool_new(H.base, 2, 2, contexts, run_job, done_job, &H, err, sizeof err);
    assert_non_null(p);
    atomic_store(&H.hold, 1);
    for (int i = 0; i < 2; i++) {
        jobs[i] = (tjob){.id = i};
        assert_int_equal(pool_submit(p, &jobs[i].link), 0);
    }
    for (int t = 0; t < 5000 && atomic_load(&H.running) < 2; t++)
        usleep(1000);
    assert_int_equal(atomic_load(&H.running), 2);          /* both workers busy at once */
    for (int i = 2; i < 4; i++) {
        jobs[i] = (tjob){.id = i};
        assert_int_equal(pool_submit(p, &jobs[i].link), 0);
    }
    assert_int_equal(pool_queued(p), 2);
    jobs[4] = (tjob){.id = 4};
    assert_int_equal(pool_submit(p, &jobs[4].link), -1);   /* beyond max_queued */
    atomic_store(&H.hold, 0);
    loop_until_delivered(4);
    assert_int_equal(H.delivered, 4);
    assert_int_equal(atomic_load(&H.most_running), 2);
    pool_free(p);
}

static void a_stop_hands_back_what_no_worker_took(void **state)
{
    (void)state;
    int ctx;
    void *contexts[1] = {&ctx};
    char err[256];
    tjob jobs[4];
    pool *p = pool_new(H.base, 1, 8, contexts, run_job, done_job, &H, err, sizeof err);
    assert_non_null(p);
    atomic_store(&H.hold, 1);
    for (int i = 0; i < 4; i++) {
        jobs[i] = (tjob){.id = i};
        assert_int_equal(pool_submit(p, &jobs[i].link), 0);
    }
    for (int t = 0; t < 5000 && atomic_load(&H.running) < 1; t++)
        usleep(1000);
    atomic_store(&H.hold, 0);
    H.expect = 4;
    pool_stop(p);             /* the running job finishes; the others come back unrun */
    assert_int_equal(H.delivered + H.unrun, 4);
    assert_true(H.delivered >= 1);
    assert_int_equal(pool_submit(p, &jobs[0].link), -1);   /* stopped */
    pool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_job_runs_once_with_its_workers_context, setup, teardown),
        cmocka_unit_test_setup_teardown(jobs_run_side_by_side_and_the_queue_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(a_stop_hands_back_what_no_worker_took, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
