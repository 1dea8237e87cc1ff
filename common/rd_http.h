/*
 * rd_http.h -- the small HTTP side door every service has (libmicrohttpd, own thread).
 *
 *   GET /healthz  200 "ok\n" when the health callback says healthy, else 503 with its reason
 *   GET /metrics  Prometheus text format from rd_metrics_render()
 *   anything registered with rd_http_route()
 *
 * port 0 disables the endpoint.
 */
#ifndef RD_HTTP_H
#define RD_HTTP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct rd_http rd_http;

/* Fills detail (NUL-terminated) with a short reason; returns true when healthy. */
typedef bool (*rd_health_fn)(void *arg, char *detail, size_t detail_len);

/* A route handler: writes a malloc'd body into *body and its content type into *content_type
 * (a static string); returns the HTTP status. query is the raw query string or "". */
typedef int (*rd_http_handler)(void *arg, const char *path, const char *query, char **body, size_t *body_len,
                               const char **content_type);

rd_http *rd_http_start(const char *bind_ip, int port, rd_health_fn health, void *health_arg, char *err, int errlen);
/* Registers a handler for every path starting with prefix. Call before traffic arrives. */
bool rd_http_route(rd_http *h, const char *prefix, rd_http_handler fn, void *arg);
void rd_http_stop(rd_http **h);

#endif
