/*
 * test_metrics.c -- the metrics registry and its Prometheus text rendering.
 *
 * The registry is process-wide and metrics live until exit, so every test uses its own metric
 * names and checks the rendered text for the lines it expects.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rd_metrics.h"

/* True when text has line as one complete line. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

static int count_occurrences(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void expect_lines(const char *text, const char *const *lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!has_line(text, lines[i]))
            fail_msg("missing line \"%s\"", lines[i]); /* the test leaks text; it is failing anyway */
}

static void test_counter_and_gauge(void **state)
{
    (void)state;
    rd_metric *c = rd_metric_counter("t1_events_total", "Events seen.");
    rd_metric *g = rd_metric_gauge("t1_pending", "Events waiting.");
    assert_non_null(c);
    assert_non_null(g);
    rd_metric_inc(c, 3);
    rd_metric_inc(c, 1);
    rd_metric_set(g, 10);
    rd_metric_add(g, -25);
    assert_int_equal(rd_metric_value(c), 4);
    assert_int_equal((int64_t)rd_metric_value(g), -15);
    /* wrong-typed and NULL updates do nothing */
    rd_metric_set(c, 100);
    rd_metric_add(c, 100);
    rd_metric_observe(c, 1.0);
    rd_metric_inc(NULL, 1);
    rd_metric_observe(NULL, 1.0);
    assert_int_equal(rd_metric_value(c), 4);
    assert_int_equal(rd_metric_value(NULL), 0);

    char *text = rd_metrics_render();
    assert_non_null(text);
    const char *lines[] = {
        "# HELP t1_events_total Events seen.", "# TYPE t1_events_total counter", "t1_events_total 4",
        "# HELP t1_pending Events waiting.",   "# TYPE t1_pending gauge",        "t1_pending -15",
    };
    expect_lines(text, lines, sizeof(lines) / sizeof(lines[0]));
    /* HELP comes before TYPE, which comes before the sample */
    assert_true(strstr(text, "# HELP t1_events_total") < strstr(text, "# TYPE t1_events_total"));
    assert_true(strstr(text, "# TYPE t1_events_total") < strstr(text, "t1_events_total 4"));
    free(text);
}

static void test_same_name_same_metric(void **state)
{
    (void)state;
    rd_metric *a = rd_metric_counter("t2_total", "first help");
    rd_metric *b = rd_metric_counter("t2_total", "second help");
    assert_non_null(a);
    assert_ptr_equal(a, b);
    /* same base, another type: refused */
    assert_null(rd_metric_gauge("t2_total", "x"));
    assert_null(rd_metric_gauge("t2_total{k=\"v\"}", "x"));
    char *text = rd_metrics_render();
    assert_true(has_line(text, "# HELP t2_total first help"));
    assert_int_equal(count_occurrences(text, "# TYPE t2_total "), 1);
    free(text);
}

static void test_labels_share_header(void **state)
{
    (void)state;
    rd_metric *a = rd_metric_counter("t3_nacks_total{code=\"conflict\"}", "Refusals by code.");
    rd_metric *b = rd_metric_counter("t3_nacks_total{code=\"malformed\"}", "ignored help");
    rd_metric *c = rd_metric_counter("t3_nacks_total{code=\"conflict\"}", "again");
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_equal(a, c);
    assert_ptr_not_equal(a, b);
    rd_metric_inc(a, 2);
    rd_metric_inc(b, 5);
    char *text = rd_metrics_render();
    const char *lines[] = {
        "# HELP t3_nacks_total Refusals by code.",
        "# TYPE t3_nacks_total counter",
        "t3_nacks_total{code=\"conflict\"} 2",
        "t3_nacks_total{code=\"malformed\"} 5",
    };
    expect_lines(text, lines, sizeof(lines) / sizeof(lines[0]));
    assert_int_equal(count_occurrences(text, "# HELP t3_nacks_total "), 1);
    assert_int_equal(count_occurrences(text, "# TYPE t3_nacks_total "), 1);
    assert_null(strstr(text, "ignored help"));
    free(text);
}

static void test_bad_names(void **state)
{
    (void)state;
    const char *bad[] = {"",          "1abc",        "has space",   "x{",  "x{}",        "x{a=b}",
                         "x{a=\"b\"", "x{a=\"b\",}", "x{1a=\"b\"}", "x-y", "x{a=\"b\"}z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (rd_metric_counter(bad[i], "h") != NULL)
            fail_msg("accepted bad name %s", bad[i]);
    assert_null(rd_metric_counter(NULL, "h"));
    assert_non_null(rd_metric_counter("t4:ok_total{a=\"x\",b_2=\"y \\\"q\\\"\"}", NULL));
    const double b[] = {1, 2};
    assert_null(rd_metric_histogram("t4_h{le=\"1\"}", "h", b, 2));
    const double unsorted[] = {2, 1}, dup[] = {1, 1}, inf[] = {1, INFINITY};
    assert_null(rd_metric_histogram("t4_h1", "h", unsorted, 2));
    assert_null(rd_metric_histogram("t4_h2", "h", dup, 2));
    assert_null(rd_metric_histogram("t4_h3", "h", inf, 2));
    double many[33];
    for (int i = 0; i < 33; i++)
        many[i] = i;
    assert_null(rd_metric_histogram("t4_h4", "h", many, 33));
    assert_non_null(rd_metric_histogram("t4_h5", "h", many, 32));
    assert_null(rd_metric_histogram("t4_h5", "h", many, 31)); /* same name, other buckets */
    assert_non_null(rd_metric_histogram("t4_h5", "h", many, 32));
}

static void test_histogram(void **state)
{
    (void)state;
    const double bounds[] = {0.005, 0.1, 0.5, 2.5};
    rd_metric *h = rd_metric_histogram("t5_seconds", "Latency.", bounds, 4);
    assert_non_null(h);
    const double obs[] = {0.001, 0.005, 0.05, 0.3, 0.4, 1, 100, NAN};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        rd_metric_observe(h, obs[i]);
    char *text = rd_metrics_render();
    /* 0.005 lands in le="0.005" (bounds are inclusive); NaN is dropped */
    const char *lines[] = {
        "# HELP t5_seconds Latency.",       "# TYPE t5_seconds histogram",     "t5_seconds_bucket{le=\"0.005\"} 2",
        "t5_seconds_bucket{le=\"0.1\"} 3",  "t5_seconds_bucket{le=\"0.5\"} 5", "t5_seconds_bucket{le=\"2.5\"} 6",
        "t5_seconds_bucket{le=\"+Inf\"} 7", "t5_seconds_sum 101.756",          "t5_seconds_count 7",
    };
    expect_lines(text, lines, sizeof(lines) / sizeof(lines[0]));
    free(text);
}

/* le values and sums print as the shortest round-tripping decimal, without needless exponents */
static void test_number_format(void **state)
{
    (void)state;
    const double bounds[] = {0.3, 10, 250000, 1e21};
    rd_metric *h = rd_metric_histogram("t9_bytes", "Sizes.", bounds, 4);
    assert_non_null(h);
    rd_metric_observe(h, 0.1);
    rd_metric_observe(h, 0.2);
    char *text = rd_metrics_render();
    const char *lines[] = {
        "t9_bytes_bucket{le=\"0.3\"} 2",   "t9_bytes_bucket{le=\"10\"} 2",     "t9_bytes_bucket{le=\"250000\"} 2",
        "t9_bytes_bucket{le=\"1e+21\"} 2", "t9_bytes_sum 0.30000000000000004", /* 0.1 + 0.2 in binary floating point */
    };
    expect_lines(text, lines, sizeof(lines) / sizeof(lines[0]));
    free(text);
}

static void test_histogram_with_labels(void **state)
{
    (void)state;
    const double bounds[] = {0.5};
    rd_metric *h = rd_metric_histogram("t6_seconds{code=\"a\",unit=\"x\"}", "Labelled.", bounds, 1);
    rd_metric *h0 = rd_metric_histogram("t6_seconds", "other help", bounds, 1);
    assert_non_null(h);
    assert_non_null(h0);
    rd_metric_observe(h, 0.25);
    rd_metric_observe(h, 0.75);
    rd_metric_observe(h0, 0.5);
    char *text = rd_metrics_render();
    const char *lines[] = {
        "# TYPE t6_seconds histogram",
        "t6_seconds_bucket{code=\"a\",unit=\"x\",le=\"0.5\"} 1",
        "t6_seconds_bucket{code=\"a\",unit=\"x\",le=\"+Inf\"} 2",
        "t6_seconds_sum{code=\"a\",unit=\"x\"} 1",
        "t6_seconds_count{code=\"a\",unit=\"x\"} 2",
        "t6_seconds_bucket{le=\"0.5\"} 1",
        "t6_seconds_bucket{le=\"+Inf\"} 1",
        "t6_seconds_sum 0.5",
        "t6_seconds_count 1",
    };
    expect_lines(text, lines, sizeof(lines) / sizeof(lines[0]));
    assert_int_equal(count_occurrences(text, "# TYPE t6_seconds "), 1);
    assert_null(strstr(text, "t6_seconds{"));
    free(text);
}

static void test_help_escaping(void **state)
{
    (void)state;
    assert_non_null(rd_metric_gauge("t7_g", "line one\nback\\slash"));
    char *text = rd_metrics_render();
    assert_true(has_line(text, "# HELP t7_g line one\\nback\\\\slash"));
    free(text);
}

#define THREADS 4
#define PER     100000

typedef struct {
    rd_metric *c, *g, *h;
} hot;

static void *hammer(void *arg)
{
    hot *m = arg;
    for (int i = 0; i < PER; i++) {
        rd_metric_inc(m->c, 1);
        rd_metric_add(m->g, (i & 1) ? 1 : -1);
        rd_metric_observe(m->h, 0.25);
    }
    return NULL;
}

static void test_concurrency(void **state)
{
    (void)state;
    const double bounds[] = {1};
    hot m = {rd_metric_counter("t8_total", "c"), rd_metric_gauge("t8_g", "g"),
             rd_metric_histogram("t8_h", "h", bounds, 1)};
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &m), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(rd_metric_value(m.c), THREADS * PER);
    assert_int_equal((int64_t)rd_metric_value(m.g), 0);
    char *text = rd_metrics_render();
    const char *lines[] = {"t8_total 400000", "t8_h_bucket{le=\"1\"} 400000", "t8_h_count 400000", "t8_h_sum 100000"};
    expect_lines(text, lines, sizeof(lines) / sizeof(lines[0]));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge),   cmocka_unit_test(test_same_name_same_metric),
        cmocka_unit_test(test_labels_share_header), cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_histogram),           cmocka_unit_test(test_histogram_with_labels),
        cmocka_unit_test(test_number_format),       cmocka_unit_test(test_help_escaping),
        cmocka_unit_test(test_concurrency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
