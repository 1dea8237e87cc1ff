/*
 * test_reporting_intervals.c -- the working intervals redress-reporting writes into
 * reporting.work_intervals (services/reporting/intervals.c), held to rd_calendar itself: for
 * random pairs of instants, the business time the intervals give (the running total the SQL uses,
 * reporting.work_s) equals rd_calendar_between. On the shipped calendars (lunch breaks, weekends,
 * holidays, make-up days, DST), a 24/7 calendar (intervals cut at 7 days) and one without any
 * working time; and a series extended later (the horizon) equals one built at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rd_calendar.h"
#include "reporting.h"

#ifndef RD_TEST_CALENDARS_FILE
#error "RD_TEST_CALENDARS_FILE must name deploy/config/calendars.example.json"
#endif

#define HOUR_MS INT64_C(3600000)
#define DAY_MS  (24 * HOUR_MS)

/* 2025-12-01T00:00Z .. 2028-01-01T00:00Z: the span of the example's 2026/2027 holidays */
#define FROM_MS INT64_C(1764547200000)
#define TO_MS   INT64_C(1830297600000)

static rd_calendar_set *set;

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int64_t between(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(next() % (uint64_t)(hi - lo));
}

/* The structure: in order, not overlapping, each [start, end) working time, its end not working
 * (unless cut at 7 days), cum the running sum. */
static void checkShape(const rd_calendar *c, const rp_intervals *iv, int64_t cum0)
{
    int64_t cum = cum0;
    for (size_t i = 0; i < iv->n; i++) {
        const rp_interval *w = &iv->v[i];
        assert_true(w->end_ms > w->start_ms);
        assert_true(w->end_ms - w->start_ms <= RP_MAX_INTERVAL);
        if (i > 0)
            assert_true(w->start_ms >= iv->v[i - 1].end_ms);
        assert_int_equal(w->cum_ms, cum);
        assert_true(rd_calendar_is_working(c, w->start_ms));
        assert_true(rd_calendar_is_working(c, w->end_ms - 1));
        assert_int_equal(rd_calendar_between(c, w->start_ms, w->end_ms), w->end_ms - w->start_ms);
        if (w->end_ms - w->start_ms < RP_MAX_INTERVAL)
            assert_false(rd_calendar_is_working(c, w->end_ms));
        if (i > 0 && w->start_ms > iv->v[i - 1].end_ms) /* nothing working in the gap */
            assert_int_equal(rd_calendar_between(c, iv->v[i - 1].end_ms, w->start_ms), 0);
        cum += w->end_ms - w->start_ms;
    }
}

/* n random pairs in [lo, hi): the intervals' business time equals rd_calendar_between. Half the
 * pairs are short (up to three days), so lunch breaks and evenings are hit often. */
static void checkPairs(const rd_calendar *c, const rp_intervals *iv, int64_t lo, int64_t hi, int n)
{
    for (int i = 0; i < n; i++) {
        int64_t a = between(lo, hi);
        int64_t b = i % 2 ? between(a, hi) : a + between(0, 3 * DAY_MS);
        if (b > hi)
            b = hi;
        if (i % 7 == 0) /* on the minute: interval boundaries exactly */
            a -= a % 60000, b -= b % 60000;
        int64_t want = rd_calendar_between(c, a, b), got = rp_intervals_between(iv, a, b);
        if (want != got)
            fail_msg("%s: [%lld, %lld): intervals give %lld ms, rd_calendar_between %lld", rd_calendar_id(c),
                     (long long)a, (long long)b, (long long)got, (long long)want);
    }
}

static const rd_calendar *shipped(const char *id)
{
    const rd_calendar *c = rd_calendar_set_find(set, id);
    assert_non_null(c);
    return c;
}

static void test_cn_mainland(void **state)
{
    (void)state;
    const rd_calendar *c = shipped("cn-mainland");
    rp_intervals iv = {0};
    long n = rp_intervals_build(c, FROM_MS, TO_MS, 0, &iv);
    assert_true(n > 0);
    assert_int_equal((size_t)n, iv.n);
    /* two intervals a working day: about 250 days a year */
    assert_in_range(iv.n, 2 * 240 * 2, 2 * 260 * 2 + 40);
    checkShape(c, &iv, 0);
    checkPairs(c, &iv, FROM_MS, TO_MS, 4000);
    /* 2026-02-14 (Saturday) is a make-up working day: 08:30-12:00 and 13:30-17:30 China time */
    int64_t sat = INT64_C(1771029000000); /* 2026-02-14T08:30+08:00 */
    bool found = false;
    for (size_t i = 0; i < iv.n; i++)
        if (iv.v[i].start_ms == sat) {
            found = true;
            assert_int_equal(iv.v[i].end_ms - iv.v[i].start_ms, 3 * HOUR_MS + HOUR_MS / 2);
        }
    assert_true(found);
    rp_intervals_free(&iv);
}

static void test_us_ny_dst(void **state)
{
    (void)state;
    const rd_calendar *c = shipped("us-ny");
    rp_intervals iv = {0};
    assert_true(rp_intervals_build(c, FROM_MS, TO_MS, 0, &iv) > 0);
    checkShape(c, &iv, 0);
    checkPairs(c, &iv, FROM_MS, TO_MS, 4000);
    /* around the spring-forward weekend of 2026 (March 8) */
    checkPairs(c, &iv, INT64_C(1772841600000), INT64_C(1773100800000), 500);
    rp_intervals_free(&iv);
}

/* Reporting's own epoch to now-ish: what the service writes at start (cheap enough to test whole). */
static void test_from_epoch(void **state)
{
    (void)state;
    const rd_calendar *c = shipped("cn-mainland");
    rp_intervals iv = {0};
    int64_t from = rp_intervals_epoch(c);
    assert_int_equal(from, INT64_C(1420041600000)); /* 2015-01-01T00:00+08:00 */
    assert_true(rp_intervals_build(c, from, TO_MS, 0, &iv) > 0);
    assert_int_equal(iv.v[0].start_ms, INT64_C(1420072200000)); /* 2015-01-01 (Thursday) 08:30+08:00 */
    checkShape(c, &iv, 0);
    checkPairs(c, &iv, from, TO_MS, 2000);
    rp_intervals_free(&iv);
}

static void test_all_week(void **state)
{
    (void)state;
    static const char json[] = "{\"id\": \"always\", \"time_zone\": \"Europe/Berlin\", \"week\": {"
                               "\"mon\": [\"00:00-24:00\"], \"tue\": [\"00:00-24:00\"], \"wed\": [\"00:00-24:00\"],"
                               "\"thu\": [\"00:00-24:00\"], \"fri\": [\"00:00-24:00\"], \"sat\": [\"00:00-24:00\"],"
                               "\"sun\": [\"00:00-24:00\"]}}";
    char err[256];
    rd_calendar *c = rd_calendar_parse(json, sizeof(json) - 1, err, sizeof(err));
    assert_non_null(c);
    rp_intervals iv = {0};
    assert_true(rp_intervals_build(c, FROM_MS, FROM_MS + 60 * DAY_MS, 0, &iv) > 0);
    /* one stretch: cut every 7 days, no gaps */
    assert_int_equal(iv.n, 9); /* 60 days = 8 x 7 + 4 */
    for (size_t i = 0; i + 1 < iv.n; i++) {
        assert_int_equal(iv.v[i].end_ms - iv.v[i].start_ms, RP_MAX_INTERVAL);
        assert_int_equal(iv.v[i + 1].start_ms, iv.v[i].end_ms);
    }
    checkShape(c, &iv, 0);
    checkPairs(c, &iv, FROM_MS, FROM_MS + 60 * DAY_MS, 500);
    rp_intervals_free(&iv);
    rd_calendar_free(c);
}

static void test_no_working_time(void **state)
{
    (void)state;
    static const char json[] = "{\"id\": \"never\", \"time_zone\": \"UTC\", \"week\": {\"mon\": [], \"tue\": [],"
                               " \"wed\": [], \"thu\": [], \"fri\": [], \"sat\": [], \"sun\": []}}";
    char err[256];
    rd_calendar *c = rd_calendar_parse(json, sizeof(json) - 1, err, sizeof(err));
    assert_non_null(c);
    rp_intervals iv = {0};
    assert_int_equal(rp_intervals_build(c, FROM_MS, FROM_MS + 30 * DAY_MS, 0, &iv), 0);
    assert_int_equal(iv.n, 0);
    assert_int_equal(rp_intervals_between(&iv, FROM_MS, FROM_MS + DAY_MS), 0);
    rp_intervals_free(&iv);
    rd_calendar_free(c);
}

/* The horizon extension: intervals built up to M, then continued from the last end with its cum,
 * give the same business time as one build -- wherever M falls (inside a working interval too). */
static void test_extension(void **state)
{
    (void)state;
    const rd_calendar *c = shipped("cn-mainland");
    for (int k = 0; k < 20; k++) {
        int64_t mid = between(FROM_MS + 10 * DAY_MS, TO_MS - 10 * DAY_MS);
        rp_intervals iv = {0};
        assert_true(rp_intervals_build(c, FROM_MS, mid, 0, &iv) > 0);
        const rp_interval *last = &iv.v[iv.n - 1];
        int64_t from = last->end_ms, cum = last->cum_ms + (last->end_ms - last->start_ms);
        size_t before = iv.n;
        assert_true(rp_intervals_build(c, from, mid + 60 * DAY_MS, cum, &iv) > 0);
        checkShape(c, &iv, 0);
        assert_true(iv.n > before);
        checkPairs(c, &iv, FROM_MS, mid + 60 * DAY_MS, 300);
        rp_intervals_free(&iv);
    }
}

static int setup(void **state)
{
    (void)state;
    char err[256];
    set = rd_calendar_set_load(RD_TEST_CALENDARS_FILE, err, sizeof(err));
    if (set == NULL) {
        fprintf(stderr, "%s: %s\n", RD_TEST_CALENDARS_FILE, err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rd_calendar_set_free(set);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cn_mainland), cmocka_unit_test(test_us_ny_dst),       cmocka_unit_test(test_from_epoch),
        cmocka_unit_test(test_all_week),    cmocka_unit_test(test_no_working_time), cmocka_unit_test(test_extension),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
