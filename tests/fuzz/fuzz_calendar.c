/*
 * fuzz_calendar.c -- libFuzzer target for the business calendar parser (rd_calendar_parse) and,
 * whenever a document parses, for the arithmetic on it (rd_calendar_add, _between, _is_working,
 * _to_local).
 *
 * Calendars come from operators' files, so a broken document must end in an error message, never
 * in a crash, a leak or undefined behaviour. Beyond "no crash" the target checks the contract the
 * escalation service relies on: a refused document leaves a message; a due date is never before
 * its start plus the business time; between(a, add(a, d)) == d; between never exceeds the real
 * elapsed time.
 *
 * Build and run: see tests/fuzz/CMakeLists.txt (ctest -L fuzz runs each target for 20 seconds).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rd_calendar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HOUR_MS INT64_C(3600000)

/* Start instants: around the 2026 DST changes in America and Europe, a year end, the epoch. */
static const int64_t starts[] = {
    INT64_C(1772953200000), /* 2026-03-08T07:00:00Z */
    INT64_C(1774746000000), /* 2026-03-29T01:00:00Z */
    INT64_C(1761436800000), /* 2025-10-26T00:00:00Z */
    INT64_C(1798675200000), /* 2026-12-31T00:00:00Z */
    INT64_C(0),
};

static uint64_t tail_bits(const uint8_t *data, size_t size)
{
    uint64_t x = 0;
    for (size_t i = size > 8 ? size - 8 : 0; i < size; i++)
        x = x << 8 | data[i];
    return x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    err[0] = '\0';
    rd_calendar *c = rd_calendar_parse((const char *)data, size, err, sizeof err);
    if (c == NULL) {
        if (err[0] == '\0')
            abort();
        return 0;
    }
    if (rd_calendar_id(c)[0] == '\0' || rd_calendar_time_zone(c)[0] == '\0')
        abort();
    uint64_t x = tail_bits(data, size);
    for (size_t i = 0; i < sizeof starts / sizeof *starts; i++) {
        int64_t a = starts[i] + (int64_t)(x % (uint64_t)(48 * HOUR_MS));
        int64_t d = (int64_t)((x >> 24) % (uint64_t)(200 * HOUR_MS));
        x = x * 6364136223846793005u + 1442695040888963407u;
        int64_t due = rd_calendar_add(c, a, d);
        if (due != RD_CALENDAR_NEVER) {
            if (due < a + d || due >= RD_CALENDAR_MAX_MS)
                abort();
            if (rd_calendar_between(c, a, due) != d)
                abort();
            if (d > 0 && !rd_calendar_is_working(c, due - 1))
                abort();
        }
        int64_t b = a + (int64_t)(x % (uint64_t)(30 * 24 * HOUR_MS));
        int64_t w = rd_calendar_between(c, a, b);
        if (w < 0 || w > b - a)
            abort();
        rd_local_time lt;
        if (!rd_calendar_to_local(c, a, &lt) || lt.month < 1 || lt.month > 12 || lt.hour > 23 || lt.weekday < 1 ||
            lt.weekday > 7)
            abort();
    }
    rd_calendar_free(c);
    return 0;
}
