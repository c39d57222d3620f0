/* Unit tests for rc_service: a real service on an ephemeral port, its loop
 * in a thread, spoken to over raw sockets — health, metrics, 404/405, the
 * evhttp limits as libevent 2.1.12 really behaves, and SIGTERM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "rc_metrics.h"
#include "rc_service.h"

struct fixture {
    rc_service *svc;
    pthread_t thread;
    int run_rc;
    atomic_int healthy;
    atomic_int echo_calls;
    char order[16];             /* stop hooks append their letter */
    atomic_int norder;
};

static void *loop_thread(void *arg)
{
    struct fixture *fx = arg;
    fx->run_rc = rc_service_run(fx->svc);
    return NULL;
}

static int kafka_check(void *opaque, char *msg, size_t len)
{
    struct fixture *fx = opaque;
    if (atomic_load(&fx->healthy))
        return 0;
    snprintf(msg, len, "broker down");
    return -1;
}

static int always_ok(void *opaque, char *msg, size_t len)
{
    return 0;
}

static void echo(struct evhttp_request *req, void *arg)
{
    struct fixture *fx = arg;
    char text[64];
    struct evbuffer *out = evbuffer_new();
    atomic_fetch_add(&fx->echo_calls, 1);
    snprintf(text, sizeof text, "%zu bytes\n",
             evbuffer_get_length(evhttp_request_get_input_buffer(req)));
    evbuffer_add(out, text, strlen(text));
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void hook_a(void *opaque)
{
    struct fixture *fx = opaque;
    fx->order[atomic_fetch_add(&fx->norder, 1)] = 'a';
}

static void hook_b(void *opaque)
{
    struct fixture *fx = opaque;
    fx->order[atomic_fetch_add(&fx->norder, 1)] = 'b';
}

static int setup(void **state)
{
    char err[256];
    struct fixture *fx = calloc(1, sizeof *fx);
    atomic_store(&fx->healthy, 1);
    fx->svc = rc_service_new("test", "127.0.0.1", 0, err, sizeof err);
    assert_non_null(fx->svc);
    assert_true(rc_service_port(fx->svc) > 0);
    rc_service_add_health_check(fx->svc, "pg", always_ok, fx);
    rc_service_add_health_check(fx->svc, "kafka", kafka_check, fx);
    rc_service_on_stop(fx->svc, hook_a, fx);
    rc_service_on_stop(fx->svc, hook_b, fx);
    rc_service_set_limits(fx->svc, 1024, 2048, 5);
    rc_service_set_grace(fx->svc, 20);
    assert_int_equal(rc_service_route(fx->svc, "/echo", echo, fx), 0);
    assert_int_equal(rc_service_route(fx->svc, "/echo", echo, fx), -1);
    assert_int_equal(pthread_create(&fx->thread, NULL, loop_thread, fx), 0);
    *state = fx;
    return 0;
}

static void stop_and_join(struct fixture *fx)
{
    raise(SIGTERM);
    pthread_join(fx->thread, NULL);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    if (fx->svc) {
        stop_and_join(fx);
        rc_service_free(fx->svc);
    }
    rc_metrics_reset_for_tests();
    free(fx);
    return 0;
}

static int connect_to(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends `req` (then `extra` bytes of 'x' if any), reads until EOF into a
 * malloc'ed string.  Returns the status code, or -1 if the connection failed
 * before a status line arrived. */
static int http(int port, const char *req, size_t extra, char **resp)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    int fd = connect_to(port), code = -1;
    ssize_t n;

    *resp = buf;
    buf[0] = '\0';
    if (fd < 0)
        return -1;
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
        goto done;
    if (extra) {
        char *body = malloc(extra);
        memset(body, 'x', extra);
        (void)!send(fd, body, extra, MSG_NOSIGNAL);
        free(body);
    }
    while ((n = recv(fd, buf + len, cap - len - 1, 0)) > 0) {
        len += (size_t)n;
        if (len + 1 == cap)
            buf = *resp = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1)
        code = -1;
done:
    close(fd);
    return code;
}

static const char *body_of(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    return p ? p + 4 : "";
}

static void test_healthz(void **state)
{
    struct fixture *fx = *state;
    int port = rc_service_port(fx->svc);
    char *r;
    assert_int_equal(http(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0, &r), 200);
    assert_string_equal(body_of(r), "ok\n");
    assert_non_null(strstr(r, "Content-Type: text/plain; charset=utf-8\r\n"));
    free(r);
    atomic_store(&fx->healthy, 0);
    assert_int_equal(http(port, "GET /healthz HTTP/1.0\r\n\r\n", 0, &r), 503);
    assert_string_equal(body_of(r), "fail kafka: broker down\n");
    free(r);
    assert_int_equal(http(port, "POST /healthz HTTP/1.0\r\nContent-Length: 0\r\n\r\n", 0, &r), 405);
    assert_non_null(strstr(r, "Allow: GET, HEAD\r\n"));
    free(r);
}

/* A failing check is logged when it starts failing and when it recovers,
 * not on every request: a probe polling /healthz must not flood the log. */
static void test_healthz_log_rate(void **state)
{
    struct fixture *fx = *state;
    int port = rc_service_port(fx->svc);
    char path[] = "/tmp/test_service_log_XXXXXX", line[512];
    int fd = mkstemp(path), saved = dup(2), failed = 0, recovered = 0;
    char *r;
    FILE *f;

    assert_true(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, 2);
    atomic_store(&fx->healthy, 0);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(http(port, "GET /healthz HTTP/1.0\r\n\r\n", 0, &r), 503);
        free(r);
    }
    atomic_store(&fx->healthy, 1);
    assert_int_equal(http(port, "GET /healthz HTTP/1.0\r\n\r\n", 0, &r), 200);
    free(r);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    f = fdopen(fd, "r");
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        failed += strstr(line, "health check failed check=kafka") != NULL;
        recovered += strstr(line, "health check recovered check=kafka failed_requests_unlogged=19") != NULL;
    }
    fclose(f);
    unlink(path);
    assert_int_equal(failed, 1);
    assert_int_equal(recovered, 1);
}

static void test_metrics_and_404(void **state)
{
    struct fixture *fx = *state;
    int port = rc_service_port(fx->svc);
    char *r;
    assert_int_equal(http(port, "GET /nope HTTP/1.0\r\n\r\n", 0, &r), 404);
    assert_string_equal(body_of(r), "not found\n");
    free(r);
    assert_int_equal(http(port, "GET /healthz HTTP/1.0\r\n\r\n", 0, &r), 200);
    free(r);
    assert_int_equal(http(port, "GET /metrics HTTP/1.0\r\n\r\n", 0, &r), 200);
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4\r\n"));
    const char *b = body_of(r);
    assert_non_null(strstr(b, "rc_http_requests_total{path=\"other\",code=\"404\"} 1\n"));
    assert_non_null(strstr(b, "rc_http_requests_total{path=\"/healthz\",code=\"200\"} 1\n"));
    assert_non_null(strstr(b, "\nprocess_resident_memory_bytes "));

    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        char path[] = "/tmp/rc_service_metrics_XXXXXX", cmd[128];
        int fd = mkstemp(path);
        assert_int_equal(write(fd, b, strlen(b)), (ssize_t)strlen(b));
        close(fd);
        snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
        int rc = system(cmd);
        unlink(path);
        assert_int_equal(rc, 0);
    }
    free(r);
}

static void test_limits(void **state)
{
    struct fixture *fx = *state;
    int port = rc_service_port(fx->svc);
    char *r;

    /* Under the limit: the route runs. */
    assert_int_equal(http(port, "POST /echo HTTP/1.0\r\nContent-Length: 1000\r\n\r\n", 1000, &r), 200);
    assert_string_equal(body_of(r), "1000 bytes\n");
    free(r);
    assert_int_equal(atomic_load(&fx->echo_calls), 1);

    /* Over the limit, declared by Content-Length: evhttp answers 413 itself
     * and never calls the route.  With lingering close on it first reads
     * the body, so even a client that sent a whole megabyte before reading
     * gets the 413 rather than a connection reset. */
    assert_int_equal(http(port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
                          5000, &r), 413);
    assert_non_null(strstr(r, "Connection: close\r\n"));
    free(r);
    assert_int_equal(http(port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n",
                          1048576, &r), 413);
    free(r);
    /* Expect: 100-continue: no "100 Continue"; a client that then sends the
     * body anyway (curl does after 1 s) gets the 413. */
    assert_int_equal(http(port, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                "Content-Length: 5000\r\n\r\n", 5000, &r), 413);
    assert_null(strstr(r, "100 Continue"));
    free(r);
    /* Chunked, no length up front: 413 as soon as a chunk size passes the limit. */
    assert_int_equal(http(port, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "800\r\n", 0, &r), 413);
    free(r);
    assert_int_equal(atomic_load(&fx->echo_calls), 1);

    /* Headers over max_headers: 400 (not 413) from evhttp. */
    char big[4096];
    snprintf(big, sizeof big, "GET /healthz HTTP/1.0\r\nX-Pad: %03000d\r\n\r\n", 0);
    assert_int_equal(http(port, big, 0, &r), 400);
    free(r);

    /* A method outside evhttp's default allowed set: 501 from evhttp. */
    assert_int_equal(http(port, "PATCH /echo HTTP/1.0\r\nContent-Length: 0\r\n\r\n", 0, &r), 501);
    free(r);
    assert_int_equal(atomic_load(&fx->echo_calls), 1);
}

static void test_sigterm(void **state)
{
    struct fixture *fx = *state;
    int port = rc_service_port(fx->svc);
    stop_and_join(fx);
    assert_int_equal(fx->run_rc, 0);
    assert_int_equal(atomic_load(&fx->norder), 2);
    assert_memory_equal(fx->order, "ba", 2);    /* reverse order of addition */
    assert_int_equal(connect_to(port), -1);    /* listener closed */
    rc_service_free(fx->svc);
    fx->svc = NULL;
}

static void test_bad_listen(void **state)
{
    char err[256];
    assert_null(rc_service_new("test", "256.0.0.1", 0, err, sizeof err));
    assert_string_equal(err, "service: cannot listen on 256.0.0.1:0");
    rc_service_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_healthz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_healthz_log_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_and_404, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm, setup, teardown),
        cmocka_unit_test(test_bad_listen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
