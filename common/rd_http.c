/*
 * rd_http.c -- the HTTP side door: /healthz, /metrics and a few read-only routes.
 *
 * libmicrohttpd runs the endpoint on one internal polling thread. The handlers here are short
 * (render a string, call a callback) so one thread is plenty, and it keeps the service's own
 * threads free of HTTP entirely. Connections are capped and time out so a stuck scraper cannot
 * pile up sockets.
 *
 * Only GET (and HEAD, which libmicrohttpd answers from the GET response without a body) is
 * served; anything else gets 405. Routes match by path prefix, longest prefix first; the built-in
 * /healthz and /metrics match exactly and come before routes.
 *
 * libmicrohttpd hands the access handler the path without its query string, already decoded. The
 * raw query is captured in the URI log callback, which sees the request line before parsing; the
 * per-request object it returns is freed in the completion callback.
 *
 * Port 0 disables the endpoint: rd_http_start() then returns a valid handle with no daemon behind
 * it, rd_http_route() accepts and ignores routes, rd_http_stop() just frees it. Callers need no
 * special case for "HTTP off".
 */
#include "rd_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rd_log.h"
#include "rd_metrics.h"

#define MAX_ROUTES         16
#define MAX_PREFIX         128
#define CONNECTION_LIMIT   64
#define CONNECTION_TIMEOUT 10 /* seconds */

static const char text_plain[] = "text/plain; charset=utf-8";
static const char metrics_type[] = "text/plain; version=0.0.4";

typedef struct {
    char prefix[MAX_PREFIX];
    size_t prefix_len;
    rd_http_handler fn;
    void *arg;
} route;

struct rd_http {
    struct MHD_Daemon *daemon; /* NULL when disabled (port 0) */
    rd_health_fn health;
    void *health_arg;
    route routes[MAX_ROUTES];
    /* Routes are appended and published by a release store, so the HTTP thread (acquire load)
     * never sees a half-written entry even if a route is added while serving. */
    atomic_int nroutes;
};

typedef struct {
    char *query; /* raw query string, "" when none */
    bool seen;   /* the access handler has been called once for this request */
} request;

/* ---- per-request state --------------------------------------------------------------------- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    request *rq = calloc(1, sizeof(*rq));
    if (rq == NULL)
        return NULL;
    const char *q = uri ? strchr(uri, '?') : NULL;
    rq->query = strdup(q ? q + 1 : "");
    if (rq->query == NULL) {
        free(rq);
        return NULL;
    }
    return rq;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    request *rq = *con_cls;
    if (rq != NULL) {
        free(rq->query);
        free(rq);
        *con_cls = NULL;
    }
}

/* libmicrohttpd's own diagnostics (bind failures, protocol errors) go to the structured log. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    rd_log(RD_LOG_WARN, "http: libmicrohttpd", "detail", msg, (char *)NULL);
}

/* ---- responses ----------------------------------------------------------------------------- */

/* Queues body (malloc'd; ownership passes to libmicrohttpd, also on failure). */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, char *body, size_t len, const char *type)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned int status, const char *text)
{
    char *body = strdup(text);
    if (body == NULL)
        return MHD_NO;
    return reply(conn, status, body, strlen(body), text_plain);
}

static enum MHD_Result serve_health(const rd_http *h, struct MHD_Connection *conn)
{
    char detail[256] = "";
    if (h->health == NULL || h->health(h->health_arg, detail, sizeof(detail)))
        return reply_text(conn, MHD_HTTP_OK, "ok\n");
    detail[sizeof(detail) - 1] = '\0'; /* in case the callback forgot */
    char body[sizeof(detail) + 2];
    snprintf(body, sizeof(body), "%s\n", detail[0] ? detail : "unhealthy");
    return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

static enum MHD_Result serve_metrics(struct MHD_Connection *conn)
{
    char *body = rd_metrics_render();
    if (body == NULL)
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render metrics\n");
    return reply(conn, MHD_HTTP_OK, body, strlen(body), metrics_type);
}

static const route *find_route(rd_http *h, const char *path)
{
    const route *best = NULL;
    int n = atomic_load_explicit(&h->nroutes, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        const route *r = &h->routes[i];
        if (strncmp(path, r->prefix, r->prefix_len) == 0 && (best == NULL || r->prefix_len > best->prefix_len))
            best = r;
    }
    return best;
}

static enum MHD_Result serve_route(const route *r, struct MHD_Connection *conn, const char *path, const char *query)
{
    char *body = NULL;
    size_t len = 0;
    const char *type = NULL;
    int status = r->fn(r->arg, path, query, &body, &len, &type);
    if (status < 100 || status > 599) {
        free(body);
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "handler failed\n");
    }
    if (body == NULL)
        len = 0;
    /* MHD_create_response_from_buffer needs a non-NULL buffer only when len > 0. */
    return reply(conn, (unsigned int)status, body, len, type ? type : text_plain);
}

static enum MHD_Result dispatch(rd_http *h, struct MHD_Connection *conn, const char *path, const char *query)
{
    if (strcmp(path, "/healthz") == 0)
        return serve_health(h, conn);
    if (strcmp(path, "/metrics") == 0)
        return serve_metrics(conn);
    const route *r = find_route(h, path);
    if (r != NULL)
        return serve_route(r, conn, path, query);
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

/*
 * libmicrohttpd calls this at least twice per request: once when the headers are in, then once
 * per chunk of body, then once with *upload_data_size == 0. GET requests are answered on the last
 * call (any body is read and dropped); other methods are refused on the first, before their body
 * is read.
 */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    (void)upload_data;
    rd_http *h = cls;
    request *rq = *con_cls;
    if (rq == NULL) { /* the URI callback ran out of memory */
        rq = calloc(1, sizeof(*rq));
        if (rq == NULL)
            return MHD_NO;
        *con_cls = rq;
    }
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (!get)
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (!rq->seen) {
        rq->seen = true;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    return dispatch(h, conn, url, rq->query ? rq->query : "");
}

/* ---- public API ---------------------------------------------------------------------------- */

static void set_err(char *err, int errlen, const char *what, const char *detail)
{
    if (err != NULL && errlen > 0)
        snprintf(err, (size_t)errlen, "%s%s", what, detail);
}

rd_http *rd_http_start(const char *bind_ip, int port, rd_health_fn health, void *health_arg, char *err, int errlen)
{
    set_err(err, errlen, "", "");
    if (port < 0 || port > 65535) {
        set_err(err, errlen, "http: port out of range", "");
        return NULL;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    /* NULL or "" binds every interface, like most servers. */
    if (bind_ip != NULL && bind_ip[0] != '\0' && inet_pton(AF_INET, bind_ip, &sa.sin_addr) != 1) {
        set_err(err, errlen, "http: not an IPv4 address: ", bind_ip);
        return NULL;
    }
    rd_http *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        set_err(err, errlen, "http: out of memory", "");
        return NULL;
    }
    h->health = health;
    h->health_arg = health_arg;
    if (port == 0)
        return h; /* disabled: see the top of this file */
    /* The logger must be the first option or libmicrohttpd complains on its own stderr logger. */
    h->daemon =
        MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, on_request, h,
                         MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned int)CONNECTION_TIMEOUT, MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (h->daemon == NULL) {
        char where[96];
        snprintf(where, sizeof(where), "%s:%d", bind_ip && bind_ip[0] ? bind_ip : "0.0.0.0", port);
        set_err(err, errlen, "http: cannot listen on ", where);
        free(h);
        return NULL;
    }
    return h;
}

bool rd_http_route(rd_http *h, const char *prefix, rd_http_handler fn, void *arg)
{
    if (h == NULL || prefix == NULL || fn == NULL || prefix[0] != '/' || strlen(prefix) >= MAX_PREFIX)
        return false;
    if (h->daemon == NULL)
        return true; /* disabled endpoint: accepted, never called */
    int n = atomic_load_explicit(&h->nroutes, memory_order_relaxed);
    if (n >= MAX_ROUTES)
        return false;
    route *r = &h->routes[n];
    snprintf(r->prefix, sizeof(r->prefix), "%s", prefix);
    r->prefix_len = strlen(prefix);
    r->fn = fn;
    r->arg = arg;
    atomic_store_explicit(&h->nroutes, n + 1, memory_order_release);
    return true;
}

void rd_http_stop(rd_http **h)
{
    if (h == NULL || *h == NULL)
        return;
    if ((*h)->daemon != NULL)
        MHD_stop_daemon((*h)->daemon);
    free(*h);
    *h = NULL;
}
