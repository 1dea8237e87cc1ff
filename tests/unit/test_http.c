/*
 * test_http.c -- the HTTP side door, over real loopback sockets.
 *
 * The server is started on a port the kernel just handed out (bind to port 0, read it back,
 * close), and spoken to with plain HTTP/1.0 requests so the test needs no HTTP client library.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "rd_http.h"
#include "rd_metrics.h"

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* Sends raw request text and returns the whole response (malloc'd); the server closes after it. */
static char *http_raw(int port, const char *request)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    size_t len = strlen(request);
    assert_int_equal(write(fd, request, len), (ssize_t)len);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    ssize_t r;
    while ((r = read(fd, buf + n, cap - n - 1)) > 0) {
        n += (size_t)r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            char *bigger = realloc(buf, cap);
            assert_non_null(bigger);
            buf = bigger;
        }
    }
    close(fd);
    buf[n] = '\0';
    return buf;
}

static char *http_get(int port, const char *target)
{
    char req[512];
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", target);
    return http_raw(port, req);
}

static int status_of(const char *resp)
{
    int status = 0;
    assert_int_equal(sscanf(resp, "HTTP/1.%*d %d", &status), 1);
    return status;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    assert_non_null(b);
    return b + 4;
}

/* A header line, matched case-insensitively on the name. */
static bool has_header(const char *resp, const char *name, const char *value)
{
    char want[256];
    snprintf(want, sizeof(want), "\r\n%s: %s\r\n", name, value);
    const char *end = strstr(resp, "\r\n\r\n");
    const char *p = strcasestr(resp, want);
    return p != NULL && p <= end;
}

typedef struct {
    bool healthy;
    int calls;
} health_state;

static bool health_cb(void *arg, char *detail, size_t detail_len)
{
    health_state *hs = arg;
    hs->calls++;
    if (!hs->healthy)
        snprintf(detail, detail_len, "database unreachable");
    return hs->healthy;
}

static int echo_route(void *arg, const char *path, const char *query, char **body, size_t *body_len,
                      const char **content_type)
{
    if (asprintf(body, "%s path=%s query=%s", (const char *)arg, path, query) < 0)
        return 500;
    *body_len = strlen(*body);
    *content_type = "application/x-test";
    return 200;
}

static int bad_status_route(void *arg, const char *path, const char *query, char **body, size_t *body_len,
                            const char **content_type)
{
    (void)arg;
    (void)path;
    (void)query;
    (void)content_type;
    *body = strdup("never sent");
    *body_len = strlen(*body);
    return 42;
}

static int empty_route(void *arg, const char *path, const char *query, char **body, size_t *body_len,
                       const char **content_type)
{
    (void)arg;
    (void)path;
    (void)query;
    (void)body;
    (void)body_len;
    (void)content_type;
    return 204;
}

typedef struct {
    rd_http *h;
    int port;
    health_state hs;
} server;

static int setup(void **state)
{
    server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -1;
    s->hs.healthy = true;
    char err[256];
    for (int attempt = 0; attempt < 5 && s->h == NULL; attempt++) { /* the port may be taken meanwhile */
        s->port = free_port();
        s->h = rd_http_start("127.0.0.1", s->port, health_cb, &s->hs, err, sizeof(err));
    }
    if (s->h == NULL) {
        fprintf(stderr, "cannot start: %s\n", err);
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    server *s = *state;
    rd_http_stop(&s->h);
    free(s);
    return 0;
}

static void test_healthz(void **state)
{
    server *s = *state;
    char *r = http_get(s->port, "/healthz");
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r), "ok\n");
    free(r);
    s->hs.healthy = false;
    r = http_get(s->port, "/healthz");
    assert_int_equal(status_of(r), 503);
    assert_string_equal(body_of(r), "database unreachable\n");
    free(r);
    s->hs.healthy = true;
    assert_int_equal(s->hs.calls, 2);
    /* exact match only */
    r = http_get(s->port, "/healthz/extra");
    assert_int_equal(status_of(r), 404);
    free(r);
}

static void test_metrics(void **state)
{
    server *s = *state;
    rd_metric *c = rd_metric_counter("http_test_total", "A test counter.");
    rd_metric_inc(c, 7);
    char *r = http_get(s->port, "/metrics");
    assert_int_equal(status_of(r), 200);
    assert_true(has_header(r, "Content-Type", "text/plain; version=0.0.4"));
    assert_non_null(strstr(body_of(r), "# TYPE http_test_total counter\nhttp_test_total 7\n"));
    free(r);
}

static void test_methods(void **state)
{
    server *s = *state;
    char *r = http_raw(s->port, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                "Connection: close\r\n\r\nhello");
    assert_int_equal(status_of(r), 405);
    assert_true(has_header(r, "Allow", "GET, HEAD"));
    free(r);
    r = http_raw(s->port, "DELETE /metrics HTTP/1.0\r\n\r\n");
    assert_int_equal(status_of(r), 405);
    free(r);
    r = http_raw(s->port, "HEAD /healthz HTTP/1.0\r\n\r\n");
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r), "");
    free(r);
    /* a GET that carries a body is still answered */
    r = http_raw(s->port, "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r), "ok\n");
    free(r);
}

static void test_routes(void **state)
{
    server *s = *state;
    assert_true(rd_http_route(s->h, "/api/", echo_route, "short"));
    assert_true(rd_http_route(s->h, "/api/tickets", echo_route, "long"));
    assert_true(rd_http_route(s->h, "/bad", bad_status_route, NULL));
    assert_true(rd_http_route(s->h, "/empty", empty_route, NULL));
    assert_false(rd_http_route(s->h, "no-slash", echo_route, NULL));
    assert_false(rd_http_route(s->h, "/x", NULL, NULL));

    char *r = http_get(s->port, "/api/units?a=1&b=%20x");
    assert_int_equal(status_of(r), 200);
    assert_true(has_header(r, "Content-Type", "application/x-test"));
    assert_string_equal(body_of(r), "short path=/api/units query=a=1&b=%20x");
    free(r);
    r = http_get(s->port, "/api/tickets/42");
    assert_string_equal(body_of(r), "long path=/api/tickets/42 query=");
    free(r);
    r = http_get(s->port, "/api");
    assert_int_equal(status_of(r), 404);
    free(r);
    r = http_get(s->port, "/bad");
    assert_int_equal(status_of(r), 500);
    assert_null(strstr(r, "never sent"));
    free(r);
    r = http_get(s->port, "/empty");
    assert_int_equal(status_of(r), 204);
    free(r);
    r = http_get(s->port, "/nothing/here");
    assert_int_equal(status_of(r), 404);
    free(r);

    /* sixteen routes at most: 4 above, 12 more fit, the 17th does not */
    for (int i = 0; i < 12; i++)
        assert_true(rd_http_route(s->h, "/more", echo_route, "more"));
    assert_false(rd_http_route(s->h, "/one-too-many", echo_route, NULL));
}

static void test_disabled_and_errors(void **state)
{
    (void)state;
    char err[256] = "stale";
    rd_http *h = rd_http_start("127.0.0.1", 0, NULL, NULL, err, sizeof(err));
    assert_non_null(h);
    assert_string_equal(err, "");
    assert_true(rd_http_route(h, "/x", echo_route, NULL));
    rd_http_stop(&h);
    assert_null(h);
    rd_http_stop(&h); /* harmless twice */

    assert_null(rd_http_start("not-an-ip", 8080, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "not-an-ip"));
    assert_null(rd_http_start("127.0.0.1", 70000, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "port"));

    /* a port that is already in use */
    int port = free_port();
    rd_http *a = rd_http_start("127.0.0.1", port, NULL, NULL, err, sizeof(err));
    assert_non_null(a);
    rd_http *b = rd_http_start("127.0.0.1", port, NULL, NULL, err, sizeof(err));
    assert_null(b);
    assert_non_null(strstr(err, "cannot listen"));
    rd_http_stop(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_disabled_and_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
