/* The floor for bench/village.sh: an evhttp server that answers every
 * request 202 with a report-sized JSON body and does nothing else, on one
 * thread like rollcall-village.  What libevent, the kernel and wrk cost on
 * this machine, measured in the same run as the intake.
 *
 *   bare202 PORT */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_request(struct evhttp_request *req, void *arg)
{
    static const char body[] = "{\"report_id\":\"00000000-0000-4000-8000-000000000000\",\"version\":1765000000000000}";
    (void)arg;
    evbuffer_add(evhttp_request_get_output_buffer(req), body, sizeof body - 1);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 202, "Accepted", NULL);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
    struct event_base *base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    struct event *term = base ? evsignal_new(base, SIGTERM, on_signal, base) : NULL;

    if (argc != 2 || !http || !term) {
        fprintf(stderr, "usage: bare202 PORT\n");
        return 2;
    }
    evhttp_set_gencb(http, on_request, NULL);
    if (evhttp_bind_socket(http, "127.0.0.1", (unsigned short)atoi(argv[1])) < 0) {
        fprintf(stderr, "bare202: cannot bind port %s\n", argv[1]);
        return 1;
    }
    event_add(term, NULL);
    event_base_dispatch(base);
    event_free(term);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
