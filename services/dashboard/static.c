/* The front end's files.  A request path is resolved under web_root with
 * realpath(): a path with "..", or a symlink that leads out of web_root,
 * is not served; any path that is not a regular file inside web_root gets
 * index.html (the pages route on the client: /unit/130102/today). */
#include "dashboard.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

static const struct { const char *ext, *type; } types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".json", "application/json"},
    {".woff2", "font/woff2"},
    {".map", "application/json"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* Opens web_root/rel if it is a regular file inside web_root.  Returns the
 * fd (size in *size), or -1. */
static int open_inside(const char *root_real, const char *rel, off_t *size)
{
    char joined[PATH_MAX], real[PATH_MAX];
    struct stat st;
    size_t rl = strlen(root_real);
    int fd;

    if (strstr(rel, "..") || strlen(rel) > 1024)
        return -1;
    if (snprintf(joined, sizeof joined, "%s/%s", root_real, rel) >= (int)sizeof joined)
        return -1;
    if (!realpath(joined, real))
        return -1;
    if (strncmp(real, root_real, rl) != 0 || real[rl] != '/')
        return -1;
    if ((fd = open(real, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -1;
    }
    *size = st.st_size;
    return fd;
}

void static_serve(const char *web_root, struct evhttp_request *req, const char *path)
{
    char root_real[PATH_MAX];
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evbuffer *body;
    const char *rel = path;
    bool fallback = false;
    char *decoded = NULL;
    off_t size = 0;
    int fd = -1;

    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
        evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
        evhttp_send_error(req, 405, NULL);
        return;
    }
    if (!realpath(web_root, root_real)) {
        rc_warn("web_root %s: %s", web_root, strerror(errno));
        evhttp_send_error(req, 404, NULL);
        return;
    }
    decoded = evhttp_uridecode(path, 0, NULL);
    rel = decoded ? decoded : path;
    while (*rel == '/')
        rel++;
    if (*rel)
        fd = open_inside(root_real, rel, &size);
    if (fd < 0) {
        fallback = true;
        rel = "index.html";
        fd = open_inside(root_real, rel, &size);
    }
    if (fd < 0) {
        free(decoded);
        evhttp_send_error(req, 404, NULL);
        return;
    }
    evhttp_add_header(out, "Content-Type", content_type(rel));
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    /* index.html names the current bundles: always revalidated.  Other
     * files are served under the names the build gives them. */
    evhttp_add_header(out, "Cache-Control",
                      fallback || strcmp(rel, "index.html") == 0 ? "no-cache" : "public, max-age=3600");
    body = evbuffer_new();
    if (!body || evbuffer_add_file(body, fd, 0, size) < 0) {
        if (body)
            evbuffer_free(body);
        else
            close(fd);
        free(decoded);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
    free(decoded);
}
