/*
 * rd_calendar.h -- business calendars: SLA clocks that run in working time.
 *
 * A calendar is a JSON document (format and examples in docs/calendars.md and
 * deploy/config/calendars.example.json):
 *
 *   {"id": "cn-default", "name": "中国大陆工作日", "time_zone": "Asia/Shanghai",
 *    "week": {"mon": ["08:30-12:00", "13:30-17:30"], ..., "sat": [], "sun": []},
 *    "holidays": ["2026-01-01", {"from": "2026-02-15", "to": "2026-02-23", "name": "春节"}],
 *    "workdays": [{"date": "2026-02-14", "hours": ["08:30-12:00", "13:30-17:30"], "name": "春节调休"}]}
 *
 * Working hours are local wall-clock intervals "HH:MM-HH:MM" per weekday (all seven days must be
 * given; [] is a day off), in order and not overlapping ("24:00" is allowed as an end). Holidays
 * (single dates or inclusive ranges) have no working time; make-up working days ("workdays", e.g.
 * China's 调休 weekends) have their own "hours", or Monday's when "hours" is left out.
 *
 * Instants are int64 Unix epoch MILLISECONDS (UTC), in and out. Nothing here reads the clock:
 * every function is a pure function of its arguments, so tests run months of SLA time in
 * milliseconds. Wall time is converted with ICU's time zone data (real IANA zones, DST):
 *  - a wall time inside a spring-forward gap means the first valid instant after the gap (the
 *    transition itself): "02:30-05:00" in New York on the spring-forward day runs 03:00-05:00 EDT;
 *  - a repeated wall time (autumn) means its FIRST occurrence, and business time is real elapsed
 *    time: "00:00-24:00" on the fall-back day holds 25 hours of working time, on the
 *    spring-forward day 23.
 *
 * Supported instants: [RD_CALENDAR_MIN_MS, RD_CALENDAR_MAX_MS) (1970-01-01 .. 2200-01-01 UTC).
 * A parsed calendar is immutable and safe to share between threads.
 */
#ifndef RD_CALENDAR_H
#define RD_CALENDAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RD_CALENDAR_MIN_MS INT64_C(0)             /* 1970-01-01T00:00:00Z */
#define RD_CALENDAR_MAX_MS INT64_C(7258118400000) /* 2200-01-01T00:00:00Z (exclusive) */

/* Returned by rd_calendar_add (and rd_calendar_from_local) when there is no answer: invalid
 * arguments, or no (more) working time within RD_CALENDAR_HORIZON_DAYS of the start. */
#define RD_CALENDAR_NEVER INT64_MIN

/* How far rd_calendar_add looks ahead: ten years of local days. */
#define RD_CALENDAR_HORIZON_DAYS 3660

typedef struct rd_calendar rd_calendar;
typedef struct rd_calendar_set rd_calendar_set;

/* One calendar. NULL with a precise reason ("week.mon[1] \"13:30-12:00\": ...") on error. */
rd_calendar *rd_calendar_parse(const char *json, size_t len, char *err, int errlen);
void rd_calendar_free(rd_calendar *c);

const char *rd_calendar_id(const rd_calendar *c);
const char *rd_calendar_name(const rd_calendar *c); /* "" when the document has none */
const char *rd_calendar_time_zone(const rd_calendar *c);

/* The instant at which business_ms of working time have elapsed after from_ms. Counting starts at
 * from_ms if that is working time, otherwise at the next working instant. When the count is
 * reached exactly at the end of a working interval, that end is the answer (17:30, not the next
 * morning). business_ms == 0 gives the first working instant at or after from_ms (when the clock
 * starts). RD_CALENDAR_NEVER when business_ms < 0, from_ms is out of range, or the working time is
 * not found within RD_CALENDAR_HORIZON_DAYS (e.g. a calendar with no working time at all). */
int64_t rd_calendar_add(const rd_calendar *c, int64_t from_ms, int64_t business_ms);

/* Working milliseconds in [a_ms, b_ms); 0 when b_ms <= a_ms. The inverse of rd_calendar_add:
 * rd_calendar_between(c, a, rd_calendar_add(c, a, d)) == d. Arguments are clamped to the supported
 * range; -1 only when ICU fails (out of memory). */
int64_t rd_calendar_between(const rd_calendar *c, int64_t a_ms, int64_t b_ms);

/* Whether t_ms lies in a working interval (intervals are half-open: 17:30 is not working time). */
bool rd_calendar_is_working(const rd_calendar *c, int64_t t_ms);

/* Local wall time of an instant in the calendar's zone. */
typedef struct {
    int year, month, day; /* month 1..12 */
    int hour, minute, second, millisecond;
    int weekday;       /* 1 = Monday .. 7 = Sunday */
    int utc_offset_ms; /* local - UTC, DST included */
} rd_local_time;

/* false when t_ms is out of range. */
bool rd_calendar_to_local(const rd_calendar *c, int64_t t_ms, rd_local_time *out);

/* The instant of a local wall time (gap: first valid instant after it; repeated: first
 * occurrence). RD_CALENDAR_NEVER for an invalid or out-of-range date or time. */
int64_t rd_calendar_from_local(const rd_calendar *c, int year, int month, int day, int hour, int minute, int second);

/* A file of calendars (per department, region...): {"calendars": [calendar, ...]} with an optional
 * "description"; ids must be unique. */
rd_calendar_set *rd_calendar_set_parse(const char *json, size_t len, char *err, int errlen);
rd_calendar_set *rd_calendar_set_load(const char *path, char *err, int errlen);
void rd_calendar_set_free(rd_calendar_set *s);
int rd_calendar_set_count(const rd_calendar_set *s);
const rd_calendar *rd_calendar_set_at(const rd_calendar_set *s, int i);
const rd_calendar *rd_calendar_set_find(const rd_calendar_set *s, const char *id); /* NULL if absent */

#endif
