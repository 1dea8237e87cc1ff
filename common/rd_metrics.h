/*
 * rd_metrics.h -- Prometheus metrics without a client library.
 *
 * A process-wide registry of counters, gauges and histograms, updated with relaxed atomics from
 * any thread and rendered in the Prometheus text exposition format (version 0.0.4) by the HTTP
 * endpoint. Names may carry a fixed label set: "redress_intake_nacks_total{code=\"conflict\"}".
 * Metrics sharing a base name share one HELP/TYPE header. Metrics live until exit.
 */
#ifndef RD_METRICS_H
#define RD_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct rd_metric rd_metric;

rd_metric *rd_metric_counter(const char *name, const char *help);
rd_metric *rd_metric_gauge(const char *name, const char *help);
/* bounds: ascending upper bounds of the buckets (le), +Inf is implied. At most 32 bounds. */
rd_metric *rd_metric_histogram(const char *name, const char *help, const double *bounds, int nbounds);

void rd_metric_inc(rd_metric *m, uint64_t n);   /* counters (and gauges) */
void rd_metric_set(rd_metric *m, int64_t v);    /* gauges */
void rd_metric_add(rd_metric *m, int64_t d);    /* gauges, may be negative */
void rd_metric_observe(rd_metric *m, double v); /* histograms */
uint64_t rd_metric_value(const rd_metric *m);   /* counters/gauges, for tests and logs */

/* Renders every metric; returns a malloc'd NUL-terminated string (caller frees). */
char *rd_metrics_render(void);

#endif
