/*
 * test_calendar.c -- business calendars (rd_calendar): parsing and validation, due-date
 * arithmetic across lunch breaks, weekends, holidays, make-up working days, year ends and DST.
 *
 * Expected instants are written out as local wall time WITH its UTC offset ("2026-03-08 03:00
 * -04:00") and converted here with timegm(), independently of ICU, so a test states exactly which
 * instant it means. Nothing reads the clock: months of SLA time run in milliseconds.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "rd_calendar.h"

#define MIN_MS  INT64_C(60000)
#define HOUR_MS INT64_C(3600000)
#define DAY_MS  (24 * HOUR_MS)

/* "YYYY-MM-DD HH:MM[:SS] +HH:MM" -> Unix ms. */
static int64_t T(const char *s)
{
    int y, mo, d, h, mi, sec = 0, oh, om;
    char sign;
    if (sscanf(s, "%d-%d-%d %d:%d:%d %c%d:%d", &y, &mo, &d, &h, &mi, &sec, &sign, &oh, &om) != 9) {
        sec = 0;
        if (sscanf(s, "%d-%d-%d %d:%d %c%d:%d", &y, &mo, &d, &h, &mi, &sign, &oh, &om) != 8) {
            fail_msg("bad test instant \"%s\"", s);
        }
    }
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    int64_t off = (int64_t)(oh * 60 + om) * 60 * (sign == '-' ? -1 : 1);
    return ((int64_t)timegm(&tm) - off) * 1000;
}

static void fmt_local(const rd_calendar *c, int64_t t, char *buf, size_t n)
{
    rd_local_time lt;
    if (t == RD_CALENDAR_NEVER || !rd_calendar_to_local(c, t, &lt)) {
        snprintf(buf, n, "(never: %lld)", (long long)t);
        return;
    }
    int off = lt.utc_offset_ms / 60000;
    snprintf(buf, n, "%04d-%02d-%02d %02d:%02d:%02d.%03d %c%02d:%02d", lt.year, lt.month, lt.day, lt.hour, lt.minute,
             lt.second, lt.millisecond, off < 0 ? '-' : '+', abs(off) / 60, abs(off) % 60);
}

#define assert_at(c, got, expected) assert_at_(c, got, expected, __FILE__, __LINE__)

static void assert_at_(const rd_calendar *c, int64_t got, const char *expected, const char *file, int line)
{
    int64_t want = T(expected);
    if (got != want) {
        char g[64];
        fmt_local(c, got, g, sizeof g);
        print_error("%s:%d: got %s, expected %s\n", file, line, g, expected);
        fail();
    }
}

static rd_calendar *parse_ok(const char *json)
{
    char err[512] = "";
    rd_calendar *c = rd_calendar_parse(json, strlen(json), err, sizeof err);
    if (c == NULL)
        fail_msg("calendar refused: %s", err);
    return c;
}

#define WEEKDAYS_SPLIT                                                                                                 \
    "\"mon\": [\"08:30-12:00\", \"13:30-17:30\"], \"tue\": [\"08:30-12:00\", \"13:30-17:30\"], "                       \
    "\"wed\": [\"08:30-12:00\", \"13:30-17:30\"], \"thu\": [\"08:30-12:00\", \"13:30-17:30\"], "                       \
    "\"fri\": [\"08:30-12:00\", \"13:30-17:30\"], \"sat\": [], \"sun\": []"

/* Mainland China, 2026 official schedule (State Council notice of 2025-11-04) + 2027-01-01. */
static const char cn_json[] =
    "{\"id\": \"cn\", \"name\": \"中国大陆工作日\", \"time_zone\": \"Asia/Shanghai\", \"week\": {" WEEKDAYS_SPLIT "},"
    " \"holidays\": [{\"from\": \"2026-01-01\", \"to\": \"2026-01-03\", \"name\": \"元旦\"},"
    "  {\"from\": \"2026-02-15\", \"to\": \"2026-02-23\", \"name\": \"春节\"},"
    "  {\"from\": \"2026-04-04\", \"to\": \"2026-04-06\"}, {\"from\": \"2026-05-01\", \"to\": \"2026-05-05\"},"
    "  {\"from\": \"2026-06-19\", \"to\": \"2026-06-21\"}, {\"from\": \"2026-09-25\", \"to\": \"2026-09-27\"},"
    "  {\"from\": \"2026-10-01\", \"to\": \"2026-10-07\", \"name\": \"国庆节\"}, \"2027-01-01\"],"
    " \"workdays\": [\"2026-01-04\", {\"date\": \"2026-02-14\", \"name\": \"春节调休\"}, {\"date\": \"2026-02-28\"},"
    "  {\"date\": \"2026-05-09\"}, {\"date\": \"2026-09-20\"}, {\"date\": \"2026-10-10\"}]}";

static const int64_t cn_day = 7 * HOUR_MS + 30 * MIN_MS; /* 3.5 h + 4 h */

#define ALL_WEEK(h)                                                                                                    \
    "\"mon\": [" h "], \"tue\": [" h "], \"wed\": [" h "], \"thu\": [" h "], \"fri\": [" h "], \"sat\": [" h           \
    "], \"sun\": [" h "]"

static const char ny_24_json[] =
    "{\"id\": \"ny24\", \"time_zone\": \"America/New_York\", \"week\": {" ALL_WEEK("\"00:00-24:00\"") "}}";
static const char berlin_24_json[] =
    "{\"id\": \"de24\", \"time_zone\": \"Europe/Berlin\", \"week\": {" ALL_WEEK("\"00:00-24:00\"") "}}";
static const char ny_9to5_json[] =
    "{\"id\": \"ny95\", \"time_zone\": \"America/New_York\", \"week\": {" ALL_WEEK("\"09:00-17:00\"") "}}";
static const char berlin_9to5_json[] =
    "{\"id\": \"de95\", \"time_zone\": \"Europe/Berlin\", \"week\": {" ALL_WEEK("\"09:00-17:00\"") "}}";
/* A night shift across the change (01:00-04:00), one that starts inside the New York gap
 * (02:30-05:00 does not exist until 03:00 on the spring-forward day) and a day shift. */
static const char ny_night_json[] = "{\"id\": \"nynight\", \"time_zone\": \"America/New_York\", \"week\": {" ALL_WEEK(
    "\"01:00-04:00\"") "}, \"workdays\": [{\"date\": \"2026-03-08\", \"hours\": [\"02:30-05:00\", "
                       "\"09:00-10:00\"]}]}";
static const char berlin_night_json[] =
    "{\"id\": \"denight\", \"time_zone\": \"Europe/Berlin\", \"week\": {" ALL_WEEK("\"01:00-04:00\"") "}}";

/* ---- the SLA examples ---- */

/* "Accept in 5 minutes": across the lunch break, the evening, the weekend. */
static void test_accept_in_5_minutes(void **state)
{
    (void)state;
    rd_calendar *c = parse_ok(cn_json);
    int64_t five = 5 * MIN_MS;
    assert_at(c, rd_calendar_add(c, T("2026-03-10 10:00 +08:00"), five), "2026-03-10 10:05 +08:00");
    assert_at(c, rd_calendar_add(c, T("2026-03-10 11:58 +08:00"), five), "2026-03-10 13:33 +08:00");
    assert_at(c, rd_calendar_add(c, T("2026-03-10 12:30 +08:00"), five), "2026-03-10 13:35 +08:00");
    assert_at(c, rd_calendar_add(c, T("2026-03-13 17:28 +08:00"), five), "2026-03-16 08:33 +08:00");
    assert_at(c, rd_calendar_add(c, T("2026-03-14 10:00 +08:00"), five), "2026-03-16 08:35 +08:00");
    assert_at(c, rd_calendar_add(c, T("2026-03-10 07:00 +08:00"), five), "2026-03-10 08:35 +08:00");
    /* exactly at the end of the morning: due at 12:00, not 13:30 */
    assert_at(c, rd_calendar_add(c, T("2026-03-10 11:55 +08:00"), five), "2026-03-10 12:00 +08:00");
    rd_calendar_free(c);
}

/* "Contact within 3 working days" = 3 x 7.5 h of working time. */
static void test_contact_within_3_working_days(void **state)
{
    (void)state;
    rd_calendar *c = parse_ok(cn_json);
    int64_t three = 3 * cn_day;
    /* ordinary week: Thu 10:00 -> Tue 10:00 */
    assert_at(c, rd_calendar_add(c, T("2026-03-12 10:00 +08:00"), three), "2026-03-17 10:00 +08:00");
    /* Spring Festival: Fri 02-13, make-up Sat 02-14, 02-15..02-23 off -> Wed 02-25 10:00 */
    assert_at(c, rd_calendar_add(c, T("2026-02-13 10:00 +08:00"), three), "2026-02-25 10:00 +08:00");
    /* a ticket arriving during the festival starts counting on Tue 02-24 08:30 */
    assert_at(c, rd_calendar_add(c, T("2026-02-18 15:00 +08:00"), three), "2026-02-26 17:30 +08:00");
    assert_at(c, rd_calendar_add(c, T("2026-02-18 15:00 +08:00"), 0), "2026-02-24 08:30 +08:00");
    /* Golden Week: Wed 09-30 16:00 (1.5 h), 10-01..10-07 off, Thu 10-08, Fri 10-09 (15 h), make-up
     * Sat 10-10 (3.5 h + 2.5 h) */
    assert_at(c, rd_calendar_add(c, T("2026-09-30 16:00 +08:00"), three), "2026-10-10 16:00 +08:00");
    assert_int_equal(rd_calendar_between(c, T("2026-09-30 16:00 +08:00"), T("2026-10-10 16:00 +08:00")), three);
    rd_calendar_free(c);
}

/* "Resolve in 12 h" / "resolve in 24 h": in working time and on a 24/7 calendar (across DST). */
static void test_resolve_in_12_or_24_hours(void **state)
{
    (void)state;
    rd_calendar *c = parse_ok(cn_json);
    /* Mon 09:00: 3 h + 4 h on Monday, 3.5 h + 1.5 h on Tuesday */
    assert_at(c, rd_calendar_add(c, T("2026-03-09 09:00 +08:00"), 12 * HOUR_MS), "2026-03-10 15:00 +08:00");
    /* 24 h: 7 h on Monday, 7.5 h on Tuesday and Wednesday, 2 h on Thursday */
    assert_at(c, rd_calendar_add(c, T("2026-03-09 09:00 +08:00"), 24 * HOUR_MS), "2026-03-12 10:30 +08:00");
    rd_calendar_free(c);

    c = parse_ok(ny_24_json);
    assert_at(c, rd_calendar_add(c, T("2026-06-10 20:00 -04:00"), 12 * HOUR_MS), "2026-06-11 08:00 -04:00");
    /* spring forward: 12 real hours after 20:00 EST the clock shows 09:00 EDT */
    assert_at(c, rd_calendar_add(c, T("2026-03-07 20:00 -05:00"), 12 * HOUR_MS), "2026-03-08 09:00 -04:00");
    /* fall back: 24 real hours after Saturday noon it is 11:00 on Sunday */
    assert_at(c, rd_calendar_add(c, T("2026-10-31 12:00 -04:00"), 24 * HOUR_MS), "2026-11-01 11:00 -05:00");
    rd_calendar_free(c);
}

/* ---- calendar features ---- */

static void test_split_shift_and_weekend(void **state)
{
    (void)state;
    rd_calendar *c = parse_ok(cn_json);
    assert_true(rd_calendar_is_working(c, T("2026-03-10 08:30 +08:00")));
    assert_true(rd_calendar_is_working(c, T("2026-03-10 11:59:59 +08:00")));
    assert_false(rd_calendar_is_working(c, T("2026-03-10 12:00 +08:00")));
    assert_false(rd_calendar_is_working(c, T("2026-03-10 13:00 +08:00")));
    assert_true(rd_calendar_is_working(c, T("2026-03-10 13:30 +08:00")));
    assert_false(rd_calendar_is_working(c, T("2026-03-10 17:30 +08:00")));
    assert_false(rd_calendar_is_working(c, T("2026-03-14 10:00 +08:00"))); /* Saturday */
    assert_int_equal(rd_calendar_between(c, T("2026-03-10 00:00 +08:00"), T("2026-03-11 00:00 +08:00")), cn_day);
    assert_int_equal(rd_calendar_between(c, T("2026-03-10 11:00 +08:00"), T("2026-03-10 14:00 +08:00")), 90 * MIN_MS);
    /* a whole week: five days */
    assert_int_equal(rd_calendar_between(c, T("2026-03-09 00:00 +08:00"), T("2026-03-16 00:00 +08:00")), 5 * cn_day);
    /* across the weekend: Fri 16:00 + 3 h (1.5 h on Friday) -> Mon 10:00 */
    assert_at(c, rd_calendar_add(c, T("2026-03-13 16:00 +08:00"), 3 * HOUR_MS), "2026-03-16 10:00 +08:00");
    assert_int_equal(rd_calendar_between(c, T("2026-03-13 16:00 +08:00"), T("2026-03-16 10:00 +08:00")), 3 * HOUR_MS);
    assert_int_equal(rd_calendar_between(c, T("2026-03-16 10:00 +08:00"), T("2026-03-13 16:00 +08:00")), 0);
    /* business_ms = 0: the next working instant at or after from */
    assert_at(c, rd_calendar_add(c, T("2026-03-10 10:00 +08:00"), 0), "2026-03-10 10:00 +08:00");
    assert_at(c, rd_calendar_add(c, T("2026-03-10 12:00 +08:00"), 0), "2026-03-10 13:30 +08:00");
    assert_true(rd_calendar_add(c, T("2026-03-10 12:00 +08:00"), -1) == RD_CALENDAR_NEVER);
    rd_calendar_free(c);
}

static void test_spring_festival_and_make_up_days(void **state)
{
    (void)state;
    rd_calendar *c = parse_ok(cn_json);
    assert_true(rd_calendar_is_working(c, T("2026-02-14 09:00 +08:00")));  /* make-up Saturday */
    assert_true(rd_calendar_is_working(c, T("2026-02-14 14:00 +08:00")));  /* Monday's hours */
    assert_false(rd_calendar_is_working(c, T("2026-02-14 12:30 +08:00"))); /* with the lunch break */
    assert_false(rd_calendar_is_working(c, T("2026-02-16 09:00 +08:00"))); /* a Monday in the festival */
    assert_false(rd_calendar_is_working(c, T("2026-02-23 09:00 +08:00")));
    assert_true(rd_calendar_is_working(c, T("2026-02-24 09:00 +08:00")));
    assert_true(rd_calendar_is_working(c, T("2026-02-28 09:00 +08:00"))); /* second make-up Saturday */
    assert_true(rd_calendar_is_working(c, T("2026-01-04 09:00 +08:00"))); /* make-up Sunday */
    /* 2026-02-09 .. 02-28: 5 + 1 (02-14) + 0 + 4 (02-24..27) + 1 (02-28) working days */
    assert_int_equal(rd_calendar_between(c, T("2026-02-09 00:00 +08:00"), T("2026-03-01 00:00 +08:00")), 11 * cn_day);
    /* the last hour before the festival and the first after it */
    assert_at(c, rd_calendar_add(c, T("2026-02-14 16:30 +08:00"), 2 * HOUR_MS), "2026-02-24 09:30 +08:00");
    /* 30 working days across the autumn holidays: Thu 09-24 08:30 .. Wed 11-11 17:30 */
    assert_at(c, rd_calendar_add(c, T("2026-09-24 08:30 +08:00"), 30 * cn_day), "2026-11-11 17:30 +08:00");
    rd_calendar_free(c);
}

static void test_make_up_day_with_own_hours(void **state)
{
    (void)state;
    rd_calendar *c = parse_ok("{\"id\": \"x\", \"time_zone\": \"Asia/Shanghai\", \"week\": {" WEEKDAYS_SPLIT
                              "}, \"workdays\": [{\"date\": \"2026-02-28\", \"hours\": [\"09:00-12:00\"]}]}");
    assert_false(rd_calendar_is_working(c, T("2026-02-28 08:45 +08:00")));
    assert_true(rd_calendar_is_working(c, T("2026-02-28 09:00 +08:00")));
    assert_false(rd_calendar_is_working(c, T("2026-02-28 14:00 +08:00")));
    /* Fri 17:00: 0.5 h on Friday, 1.5 h of the Saturday's 09:00-12:00 */
    assert_at(c, rd_calendar_add(c, T("2026-02-27 17:00 +08:00"), 2 * HOUR_MS), "2026-02-28 10:30 +08:00");
    /* 0.5 h + 3 h (all of Saturday) + 0.5 h on Monday */
    assert_at(c, rd_calendar_add(c, T("2026-02-27 17:00 +08:00"), 4 * HOUR_MS), "2026-03-02 09:00 +08:00");
    assert_int_equal(rd_calendar_between(c, T("2026-02-28 00:00 +08:00"), T("2026-03-01 00:00 +08:00")), 3 * HOUR_MS);
    rd_calendar_free(c);
}

static void test_year_end(void **state)
{
    (void)state;
    rd_calendar *c = parse_ok(cn_json);
    /* Thu 2026-12-31 16:30: 1 h left; 2027-01-01 holiday, then the weekend */
    assert_at(c, rd_calendar_add(c, T("2026-12-31 16:30 +08:00"), 2 * HOUR_MS), "2027-01-04 09:30 +08:00");
    assert_int_equal(rd_calendar_between(c, T("2026-12-31 00:00 +08:00"), T("2027-01-05 00:00 +08:00")), 2 * cn_day);
    rd_calendar_free(c);

    c = parse_ok(ny_9to5_json);
    /* every day 09:00-17:00: New Year's Eve 16:00 + 2 h -> 2027-01-01 10:00 */
    assert_at(c, rd_calendar_add(c, T("2026-12-31 16:00 -05:00"), 2 * HOUR_MS), "2027-01-01 10:00 -05:00");
    rd_calendar_free(c);
}

/* ---- DST ---- */

static void test_dst_all_day_calendars(void **state)
{
    (void)state;
    rd_calendar *ny = parse_ok(ny_24_json);
    rd_calendar *de = parse_ok(berlin_24_json);
    /* New York: 2026-03-08 has 23 hours, 2026-11-01 has 25 */
    assert_int_equal(rd_calendar_between(ny, T("2026-03-08 00:00 -05:00"), T("2026-03-09 00:00 -04:00")), 23 * HOUR_MS);
    assert_int_equal(rd_calendar_between(ny, T("2026-11-01 00:00 -04:00"), T("2026-11-02 00:00 -05:00")), 25 * HOUR_MS);
    /* Berlin: 2026-03-29 has 23 hours, 2026-10-25 has 25 */
    assert_int_equal(rd_calendar_between(de, T("2026-03-29 00:00 +01:00"), T("2026-03-30 00:00 +02:00")), 23 * HOUR_MS);
    assert_int_equal(rd_calendar_between(de, T("2026-10-25 00:00 +02:00"), T("2026-10-26 00:00 +01:00")), 25 * HOUR_MS);
    /* one business hour from 01:30 EST on the spring-forward day is 03:30 EDT */
    assert_at(ny, rd_calendar_add(ny, T("2026-03-08 01:30 -05:00"), HOUR_MS), "2026-03-08 03:30 -04:00");
    /* one business hour from the first 01:30 of the fall-back day is the second 01:30 */
    assert_at(ny, rd_calendar_add(ny, T("2026-11-01 01:30 -04:00"), HOUR_MS), "2026-11-01 01:30 -05:00");
    assert_at(de, rd_calendar_add(de, T("2026-10-25 02:30 +02:00"), HOUR_MS), "2026-10-25 02:30 +01:00");

    /* business time == real elapsed time, everywhere (seeded pseudo-random instants 2026..2027) */
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 500; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t a = T("2026-01-01 00:00 +00:00") + (int64_t)(x % (uint64_t)(700 * DAY_MS));
        int64_t d = (int64_t)((x >> 20) % (uint64_t)(40 * DAY_MS));
        const rd_calendar *c = (i & 1) ? ny : de;
        assert_true(rd_calendar_is_working(c, a));
        assert_int_equal(rd_calendar_add(c, a, d), a + d);
        assert_int_equal(rd_calendar_between(c, a, a + d), d);
    }
    rd_calendar_free(ny);
    rd_calendar_free(de);
}

static void test_dst_office_hours_on_transition_days(void **state)
{
    (void)state;
    rd_calendar *ny = parse_ok(ny_9to5_json);
    rd_calendar *de = parse_ok(berlin_9to5_json);
    /* the transition days (Sundays) still have 8 working hours */
    assert_int_equal(rd_calendar_between(ny, T("2026-03-08 00:00 -05:00"), T("2026-03-09 00:00 -04:00")), 8 * HOUR_MS);
    assert_int_equal(rd_calendar_between(ny, T("2026-11-01 00:00 -04:00"), T("2026-11-02 00:00 -05:00")), 8 * HOUR_MS);
    assert_int_equal(rd_calendar_between(de, T("2026-03-29 00:00 +01:00"), T("2026-03-30 00:00 +02:00")), 8 * HOUR_MS);
    assert_int_equal(rd_calendar_between(de, T("2026-10-25 00:00 +02:00"), T("2026-10-26 00:00 +01:00")), 8 * HOUR_MS);
    /* Sat 16:00 EST + 2 h -> Sun 10:00 EDT (17 real hours later) */
    assert_at(ny, rd_calendar_add(ny, T("2026-03-07 16:00 -05:00"), 2 * HOUR_MS), "2026-03-08 10:00 -04:00");
    assert_at(ny, rd_calendar_add(ny, T("2026-10-31 16:00 -04:00"), 2 * HOUR_MS), "2026-11-01 10:00 -05:00");
    assert_at(de, rd_calendar_add(de, T("2026-03-28 16:00 +01:00"), 2 * HOUR_MS), "2026-03-29 10:00 +02:00");
    assert_at(de, rd_calendar_add(de, T("2026-10-24 16:00 +02:00"), 2 * HOUR_MS), "2026-10-25 10:00 +01:00");
    rd_calendar_free(ny);
    rd_calendar_free(de);
}

static void test_dst_shifts_across_the_change(void **state)
{
    (void)state;
    rd_calendar *ny = parse_ok(ny_night_json);
    rd_calendar *de = parse_ok(berlin_night_json);
    /* 01:00-04:00 is 3 hours on an ordinary night, 2 in spring, 4 in autumn */
    assert_int_equal(rd_calendar_between(de, T("2026-03-28 00:00 +01:00"), T("2026-03-29 00:00 +01:00")), 3 * HOUR_MS);
    assert_int_equal(rd_calendar_between(de, T("2026-03-29 00:00 +01:00"), T("2026-03-30 00:00 +02:00")), 2 * HOUR_MS);
    assert_int_equal(rd_calendar_between(de, T("2026-10-25 00:00 +02:00"), T("2026-10-26 00:00 +01:00")), 4 * HOUR_MS);
    assert_int_equal(rd_calendar_between(ny, T("2026-11-01 00:00 -04:00"), T("2026-11-02 00:00 -05:00")), 4 * HOUR_MS);
    /* autumn: the shift starts at the first 01:00 (EDT) and ends at 04:00 EST */
    assert_at(ny, rd_calendar_add(ny, T("2026-11-01 00:00 -04:00"), 0), "2026-11-01 01:00 -04:00");
    assert_at(ny, rd_calendar_add(ny, T("2026-11-01 00:00 -04:00"), 3 * HOUR_MS + 30 * MIN_MS),
              "2026-11-01 03:30 -05:00");
    assert_at(ny, rd_calendar_add(ny, T("2026-11-01 00:00 -04:00"), 4 * HOUR_MS), "2026-11-01 04:00 -05:00");
    assert_true(rd_calendar_is_working(ny, T("2026-11-01 01:30 -05:00"))); /* the second 01:30 too */
    assert_at(de, rd_calendar_add(de, T("2026-03-29 00:00 +01:00"), 90 * MIN_MS), "2026-03-29 03:30 +02:00");
    /* New York spring forward: 02:30-05:00 starts at the first valid instant, 03:00 EDT */
    assert_at(ny, rd_calendar_add(ny, T("2026-03-08 00:00 -05:00"), 0), "2026-03-08 03:00 -04:00");
    assert_false(rd_calendar_is_working(ny, T("2026-03-08 01:59 -05:00")));
    assert_true(rd_calendar_is_working(ny, T("2026-03-08 03:00 -04:00")));
    assert_int_equal(rd_calendar_between(ny, T("2026-03-08 00:00 -05:00"), T("2026-03-09 00:00 -04:00")), 3 * HOUR_MS);
    assert_at(ny, rd_calendar_add(ny, T("2026-03-08 00:00 -05:00"), 150 * MIN_MS), "2026-03-08 09:30 -04:00");
    rd_calendar_free(ny);
    rd_calendar_free(de);
}

static void test_local_time_conversions(void **state)
{
    (void)state;
    rd_calendar *ny = parse_ok(ny_24_json);
    rd_calendar *de = parse_ok(berlin_24_json);
    assert_at(de, rd_calendar_from_local(de, 2026, 3, 29, 2, 30, 0), "2026-03-29 03:00 +02:00");  /* gap */
    assert_at(de, rd_calendar_from_local(de, 2026, 10, 25, 2, 30, 0), "2026-10-25 02:30 +02:00"); /* first */
    assert_at(ny, rd_calendar_from_local(ny, 2026, 11, 1, 1, 30, 0), "2026-11-01 01:30 -04:00");
    assert_at(ny, rd_calendar_from_local(ny, 2026, 7, 4, 12, 0, 0), "2026-07-04 12:00 -04:00");
    assert_true(rd_calendar_from_local(ny, 2026, 2, 29, 12, 0, 0) == RD_CALENDAR_NEVER);
    assert_true(rd_calendar_from_local(ny, 2026, 1, 1, 24, 0, 0) == RD_CALENDAR_NEVER);
    rd_local_time lt;
    assert_true(rd_calendar_to_local(ny, T("2026-11-01 01:30 -05:00") + 250, &lt));
    assert_int_equal(lt.year, 2026);
    assert_int_equal(lt.month, 11);
    assert_int_equal(lt.day, 1);
    assert_int_equal(lt.hour, 1);
    assert_int_equal(lt.minute, 30);
    assert_int_equal(lt.millisecond, 250);
    assert_int_equal(lt.weekday, 7);
    assert_int_equal(lt.utc_offset_ms, -5 * 3600000);
    assert_false(rd_calendar_to_local(ny, -1, &lt));
    assert_string_equal(rd_calendar_id(ny), "ny24");
    assert_string_equal(rd_calendar_time_zone(ny), "America/New_York");
    assert_string_equal(rd_calendar_name(ny), "");
    rd_calendar_free(ny);
    rd_calendar_free(de);
}

/* ---- properties ---- */

static void test_round_trip_property(void **state)
{
    (void)state;
    const char *docs[] = {cn_json, ny_9to5_json, ny_night_json, berlin_night_json};
    uint64_t x = 88172645463325252u;
    for (size_t k = 0; k < sizeof docs / sizeof *docs; k++) {
        rd_calendar *c = parse_ok(docs[k]);
        for (int i = 0; i < 300; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            int64_t a = T("2026-01-01 00:00 +00:00") + (int64_t)(x % (uint64_t)(720 * DAY_MS));
            int64_t d = (int64_t)((x >> 17) % (uint64_t)(120 * HOUR_MS));
            if (i % 3 == 0)
                a = rd_calendar_add(c, a, 0); /* a working instant */
            int64_t due = rd_calendar_add(c, a, d);
            assert_true(due != RD_CALENDAR_NEVER);
            assert_true(due >= a + d);
            assert_int_equal(rd_calendar_between(c, a, due), d);
            if (d > 0)
                assert_true(rd_calendar_between(c, a, due - 1) == d - 1);
            /* between is additive */
            int64_t m = a + (due - a) / 3;
            assert_int_equal(rd_calendar_between(c, a, m) + rd_calendar_between(c, m, due), d);
            /* and add of the elapsed working time from a working start comes back */
            int64_t s = rd_calendar_add(c, a, 0);
            if (rd_calendar_is_working(c, due - 1) && due - 1 >= s)
                assert_int_equal(rd_calendar_add(c, s, rd_calendar_between(c, s, due - 1)), due - 1);
        }
        rd_calendar_free(c);
    }
}

static void test_no_working_time(void **state)
{
    (void)state;
    rd_calendar *c = parse_ok("{\"id\": \"none\", \"time_zone\": \"UTC\", \"week\": {" ALL_WEEK("") "}}");
    assert_true(rd_calendar_add(c, T("2026-01-01 00:00 +00:00"), 0) == RD_CALENDAR_NEVER);
    assert_true(rd_calendar_add(c, T("2026-01-01 00:00 +00:00"), HOUR_MS) == RD_CALENDAR_NEVER);
    assert_int_equal(rd_calendar_between(c, T("2026-01-01 00:00 +00:00"), T("2027-01-01 00:00 +00:00")), 0);
    assert_false(rd_calendar_is_working(c, T("2026-01-01 00:00 +00:00")));
    rd_calendar_free(c);

    /* only one make-up day: found from before it, never after it (the search is bounded) */
    c = parse_ok("{\"id\": \"one\", \"time_zone\": \"UTC\", \"week\": {" ALL_WEEK(
        "") "}, \"workdays\": [{\"date\": \"2026-06-01\", \"hours\": [\"10:00-11:00\"]}]}");
    assert_at(c, rd_calendar_add(c, T("2020-01-01 00:00 +00:00"), 30 * MIN_MS), "2026-06-01 10:30 +00:00");
    assert_true(rd_calendar_add(c, T("2026-06-01 10:30 +00:00"), HOUR_MS) == RD_CALENDAR_NEVER);
    assert_true(rd_calendar_add(c, T("2010-01-01 00:00 +00:00"), 0) == RD_CALENDAR_NEVER); /* > 10 years */
    rd_calendar_free(c);

    /* out of range arguments */
    c = parse_ok(ny_24_json);
    assert_true(rd_calendar_add(c, -1, 0) == RD_CALENDAR_NEVER);
    assert_true(rd_calendar_add(c, RD_CALENDAR_MAX_MS, 0) == RD_CALENDAR_NEVER);
    assert_true(rd_calendar_add(c, RD_CALENDAR_MAX_MS - HOUR_MS, 2 * HOUR_MS) == RD_CALENDAR_NEVER);
    assert_int_equal(rd_calendar_between(c, RD_CALENDAR_MAX_MS - HOUR_MS, INT64_MAX), HOUR_MS);
    assert_int_equal(rd_calendar_between(c, INT64_MIN, 1000), 1000);
    rd_calendar_free(c);
}

/* One calendar shared by several threads (each call clones its own ICU calendar). */
static void *thread_sums(void *arg)
{
    const rd_calendar *c = arg;
    int64_t sum = 0;
    for (int i = 0; i < 200; i++) {
        int64_t a = T("2026-02-01 00:00 +08:00") + i * 7 * HOUR_MS;
        sum += rd_calendar_add(c, a, 3 * cn_day) - a + rd_calendar_between(c, a, a + 10 * DAY_MS);
    }
    return (void *)(intptr_t)(sum % 1000000007);
}

static void test_shared_between_threads(void **state)
{
    (void)state;
    rd_calendar *c = parse_ok(cn_json);
    void *expected = thread_sums(c);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_sums, c), 0);
    for (int i = 0; i < 4; i++) {
        void *got;
        assert_int_equal(pthread_join(th[i], &got), 0);
        assert_ptr_equal(got, expected);
    }
    rd_calendar_free(c);
}

/* ---- parse errors ---- */

static void expect_error(const char *json, const char *fragment)
{
    char err[512] = "";
    rd_calendar *c = rd_calendar_parse(json, strlen(json), err, sizeof err);
    if (c != NULL) {
        rd_calendar_free(c);
        fail_msg("accepted, expected an error with \"%s\": %s", fragment, json);
    }
    if (strstr(err, fragment) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", err, fragment);
}

#define CAL(week, extra) "{\"id\": \"t\", \"time_zone\": \"Europe/Berlin\", \"week\": {" week "}" extra "}"
#define WEEK_MON(h)      "\"mon\": [" h "], \"tue\": [], \"wed\": [], \"thu\": [], \"fri\": [], \"sat\": [], \"sun\": []"

static void test_parse_errors(void **state)
{
    (void)state;
    /* times */
    expect_error(CAL(WEEK_MON("\"8:30-12:00\""), ""), "week.mon[0] \"8:30-12:00\": expected \"HH:MM-HH:MM\"");
    expect_error(CAL(WEEK_MON("\"08:60-12:00\""), ""), "expected \"HH:MM-HH:MM\"");
    expect_error(CAL(WEEK_MON("\"25:00-26:00\""), ""), "expected \"HH:MM-HH:MM\"");
    expect_error(CAL(WEEK_MON("\"24:00-24:00\""), ""), "24:00 allowed only as an end");
    expect_error(CAL(WEEK_MON("\"20:00-24:01\""), ""), "expected \"HH:MM-HH:MM\"");
    expect_error(CAL(WEEK_MON("\"08:00-12:00 \""), ""), "expected \"HH:MM-HH:MM\"");
    expect_error(CAL(WEEK_MON("8"), ""), "week.mon[0]: expected a string");
    expect_error(CAL("\"mon\": \"08:00-12:00\", \"tue\": [], \"wed\": [], \"thu\": [], \"fri\": [], \"sat\": [], "
                     "\"sun\": []",
                     ""),
                 "week.mon: expected an array");
    /* intervals */
    expect_error(CAL(WEEK_MON("\"12:00-08:30\""), ""), "week.mon[0] \"12:00-08:30\": the start must be before the end");
    expect_error(CAL(WEEK_MON("\"09:00-09:00\""), ""), "the start must be before the end");
    expect_error(CAL(WEEK_MON("\"08:00-12:00\", \"11:00-13:00\""), ""), "week.mon[1] \"11:00-13:00\": overlaps");
    expect_error(CAL(WEEK_MON("\"13:00-14:00\", \"08:00-09:00\""), ""), "intervals must be in order");
    /* keys */
    expect_error("{\"id\": \"t\", \"timezone\": \"UTC\"}", "unknown key \"timezone\"");
    expect_error(CAL(WEEK_MON("") ", \"monday\": []", ""), "week: unknown key \"monday\"");
    expect_error(CAL("\"mon\": [], \"tue\": [], \"wed\": [], \"thu\": [], \"fri\": [], \"sat\": []", ""),
                 "week.sun is missing");
    expect_error(CAL(WEEK_MON("\"09:00-17:00\""), ", \"holidays\": [{\"date_from\": \"2026-01-01\"}]"),
                 "holidays[0]: unknown key \"date_from\"");
    expect_error(CAL(WEEK_MON("\"09:00-17:00\""), ", \"workdays\": [{\"date\": \"2026-01-03\", \"hour\": []}]"),
                 "workdays[0]: unknown key \"hour\"");
    expect_error("{\"time_zone\": \"UTC\", \"week\": {}}", "id: required");
    expect_error("{\"id\": \"a b\", \"time_zone\": \"UTC\", \"week\": {}}", "id: required");
    expect_error("[]", "a calendar must be a JSON object");
    expect_error("{\"id\": \"t\",", "invalid JSON");
    expect_error("{\"id\": \"t\", \"id\": \"u\"}", "invalid JSON");
    /* dates */
    expect_error(CAL(WEEK_MON("\"09:00-17:00\""), ", \"holidays\": [\"2026-02-30\"]"),
                 "holidays[0] \"2026-02-30\": no such date");
    expect_error(CAL(WEEK_MON("\"09:00-17:00\""), ", \"holidays\": [\"2026-2-3\"]"), "expected a date \"YYYY-MM-DD\"");
    expect_error(CAL(WEEK_MON("\"09:00-17:00\""), ", \"holidays\": [\"2025-13-01\"]"), "no such date");
    expect_error(CAL(WEEK_MON("\"09:00-17:00\""), ", \"holidays\": [\"1960-01-01\"]"), "the year must be in");
    expect_error(CAL(WEEK_MON("\"09:00-17:00\""), ", \"holidays\": [20260101]"), "expected a date");
    expect_error(CAL(WEEK_MON("\"09:00-17:00\""), ", \"holidays\": [\"2028-02-29\", \"2027-02-29\"]"),
                 "holidays[1] \"2027-02-29\": no such date");
    expect_error(
        CAL(WEEK_MON("\"09:00-17:00\""), ", \"holidays\": [{\"from\": \"2026-02-23\", \"to\": \"2026-02-15\"}]"),
        "\"to\" is before \"from\"");
    expect_error(CAL(WEEK_MON("\"09:00-17:00\""), ", \"holidays\": [{\"from\": \"2026-02-23\"}]"),
                 "needs both \"from\" and \"to\"");
    expect_error(
        CAL(WEEK_MON("\"09:00-17:00\""), ", \"holidays\": [{\"from\": \"2026-01-01\", \"to\": \"2027-06-01\"}]"),
        "at most 366 days");
    expect_error(CAL(WEEK_MON("\"09:00-17:00\""),
                     ", \"holidays\": [{\"from\": \"2026-02-15\", \"to\": \"2026-02-23\"}, \"2026-02-20\"]"),
                 "2026-02-20 is listed more than once");
    expect_error(CAL(WEEK_MON("\"09:00-17:00\""), ", \"workdays\": [\"2026-02-14\", {\"date\": \"2026-02-14\"}]"),
                 "workdays: 2026-02-14 is listed more than once");
    /* holiday and workday at once */
    expect_error(CAL(WEEK_MON("\"09:00-17:00\""),
                     ", \"holidays\": [{\"from\": \"2026-02-14\", \"to\": \"2026-02-16\"}], "
                     "\"workdays\": [{\"date\": \"2026-02-15\"}]"),
                 "2026-02-15 is both a holiday and a make-up working day");
    /* make-up days */
    expect_error(CAL(WEEK_MON(""), ", \"workdays\": [{\"date\": \"2026-02-14\"}]"), "Monday (the default) has none");
    expect_error(CAL(WEEK_MON(""), ", \"workdays\": [{\"date\": \"2026-02-14\", \"hours\": []}]"),
                 "needs working hours");
    expect_error(CAL(WEEK_MON(""), ", \"workdays\": [{\"hours\": [\"09:00-10:00\"]}]"), "\"date\" is required");
    expect_error(CAL(WEEK_MON(""), ", \"workdays\": [{\"date\": \"2026-02-14\", \"hours\": [\"10:00-09:00\"]}]"),
                 "workdays[0].hours[0] \"10:00-09:00\": the start must be before the end");
    /* time zones */
    expect_error("{\"id\": \"t\", \"time_zone\": \"Mars/Olympus\", \"week\": {" WEEK_MON("") "}}",
                 "time_zone \"Mars/Olympus\": unknown time zone");
    expect_error("{\"id\": \"t\", \"time_zone\": \"Asia/Shangai\", \"week\": {" WEEK_MON("") "}}", "unknown time zone");
    expect_error("{\"id\": \"t\", \"time_zone\": \"\", \"week\": {" WEEK_MON("") "}}", "unknown time zone");
    expect_error("{\"id\": \"t\", \"time_zone\": \"GMT+08:00\", \"week\": {" WEEK_MON("") "}}", "unknown time zone");
    expect_error("{\"id\": \"t\", \"time_zone\": \"Etc/Unknown\", \"week\": {" WEEK_MON("") "}}", "unknown time zone");
    expect_error("{\"id\": \"t\", \"time_zone\": 8, \"week\": {" WEEK_MON("") "}}", "time_zone: expected");
    expect_error("{\"id\": \"t\", \"week\": {" WEEK_MON("") "}}", "time_zone is required");

    /* what is allowed: 24:00 as an end, touching intervals, a name and a description */
    rd_calendar *c = parse_ok("{\"id\": \"ok\", \"name\": \"夜班\", \"description\": \"d\", \"time_zone\": "
                              "\"Europe/Berlin\", \"week\": {" WEEK_MON("\"00:00-08:00\", \"08:00-12:00\", "
                                                                        "\"18:00-24:00\"") "}}");
    assert_string_equal(rd_calendar_name(c), "夜班");
    assert_int_equal(rd_calendar_between(c, T("2026-03-02 00:00 +01:00"), T("2026-03-03 00:00 +01:00")), 18 * HOUR_MS);
    rd_calendar_free(c);
}

/* ---- sets and the shipped example ---- */

static void test_calendar_set(void **state)
{
    (void)state;
    char err[512] = "";
    const char *two =
        "{\"calendars\": [" CAL(WEEK_MON("\"09:00-17:00\""), "") ", {\"id\": \"u\", \"time_zone\": "
                                                                 "\"UTC\", \"week\": {" WEEK_MON("") "}}]}";
    rd_calendar_set *s = rd_calendar_set_parse(two, strlen(two), err, sizeof err);
    assert_non_null(s);
    assert_int_equal(rd_calendar_set_count(s), 2);
    assert_string_equal(rd_calendar_time_zone(rd_calendar_set_find(s, "u")), "UTC");
    assert_ptr_equal(rd_calendar_set_find(s, "t"), rd_calendar_set_at(s, 0));
    assert_null(rd_calendar_set_find(s, "v"));
    assert_null(rd_calendar_set_at(s, 2));
    rd_calendar_set_free(s);

    const char *dup = "{\"calendars\": [" CAL(WEEK_MON(""), "") ", " CAL(WEEK_MON(""), "") "]}";
    assert_null(rd_calendar_set_parse(dup, strlen(dup), err, sizeof err));
    assert_non_null(strstr(err, "calendars[1] (\"t\"): the id \"t\" is used twice"));
    const char *bad = "{\"calendars\": [" CAL(WEEK_MON(""), "") ", " CAL(WEEK_MON("\"9-5\""), "") "]}";
    assert_null(rd_calendar_set_parse(bad, strlen(bad), err, sizeof err));
    assert_non_null(strstr(err, "calendars[1] (\"t\"): week.mon[0] \"9-5\""));
    const char *extra = "{\"calendars\": [" CAL(WEEK_MON(""), "") "], \"version\": 1}";
    assert_null(rd_calendar_set_parse(extra, strlen(extra), err, sizeof err));
    assert_null(rd_calendar_set_parse("{\"calendars\": []}", 17, err, sizeof err));
    assert_null(rd_calendar_set_load("/nonexistent/calendars.json", err, sizeof err));
}

static void test_example_file(void **state)
{
    (void)state;
    char err[512] = "";
    rd_calendar_set *s = rd_calendar_set_load(RD_TEST_CALENDARS_FILE, err, sizeof err);
    if (s == NULL)
        fail_msg("%s", err);
    const rd_calendar *cn = rd_calendar_set_find(s, "cn-mainland");
    const rd_calendar *us = rd_calendar_set_find(s, "us-ny");
    assert_non_null(cn);
    assert_non_null(us);
    assert_true(rd_calendar_is_working(cn, T("2026-02-14 09:00 +08:00")));
    assert_true(rd_calendar_is_working(cn, T("2026-09-20 09:00 +08:00")));
    assert_false(rd_calendar_is_working(cn, T("2026-10-01 09:00 +08:00")));
    assert_at(cn, rd_calendar_add(cn, T("2026-09-24 08:30 +08:00"), 30 * cn_day), "2026-11-11 17:30 +08:00");
    assert_at(cn, rd_calendar_add(cn, T("2026-02-13 10:00 +08:00"), 3 * cn_day), "2026-02-25 10:00 +08:00");
    assert_false(rd_calendar_is_working(us, T("2026-07-03 10:00 -04:00")));
    assert_true(rd_calendar_is_working(us, T("2026-07-06 10:00 -04:00")));
    /* Thanksgiving: Wed 16:00 + 3 h -> Fri 11:00 */
    assert_at(us, rd_calendar_add(us, T("2026-11-25 16:00 -05:00"), 3 * HOUR_MS), "2026-11-27 11:00 -05:00");
    /* year end: Thu 2026-12-31 16:00 + 2 h; 2027-01-01 is a holiday -> Mon 2027-01-04 10:00 */
    assert_at(us, rd_calendar_add(us, T("2026-12-31 16:00 -05:00"), 2 * HOUR_MS), "2027-01-04 10:00 -05:00");
    /* spring forward weekend: Fri 2026-03-06 16:00 EST + 2 h -> Mon 10:00 EDT */
    assert_at(us, rd_calendar_add(us, T("2026-03-06 16:00 -05:00"), 2 * HOUR_MS), "2026-03-09 10:00 -04:00");
    rd_calendar_set_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_in_5_minutes),
        cmocka_unit_test(test_contact_within_3_working_days),
        cmocka_unit_test(test_resolve_in_12_or_24_hours),
        cmocka_unit_test(test_split_shift_and_weekend),
        cmocka_unit_test(test_spring_festival_and_make_up_days),
        cmocka_unit_test(test_make_up_day_with_own_hours),
        cmocka_unit_test(test_year_end),
        cmocka_unit_test(test_dst_all_day_calendars),
        cmocka_unit_test(test_dst_office_hours_on_transition_days),
        cmocka_unit_test(test_dst_shifts_across_the_change),
        cmocka_unit_test(test_local_time_conversions),
        cmocka_unit_test(test_round_trip_property),
        cmocka_unit_test(test_no_working_time),
        cmocka_unit_test(test_shared_between_threads),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_calendar_set),
        cmocka_unit_test(test_example_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
