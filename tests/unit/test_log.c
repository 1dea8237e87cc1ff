/*
 * test_log.c -- logfmt formatting, escaping, truncation and whole-line writes.
 *
 * stderr is pointed at a temporary file opened with O_APPEND while a test logs, then the file is
 * read back and compared line by line. A file rather than a pipe means the many-thread test needs
 * no reader thread to keep the pipe from filling up.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rd_log.h"

typedef struct {
    char path[256];
    int saved_stderr;
} capture;

static void capture_start(capture *c)
{
    const char *dir = getenv("TMPDIR");
    snprintf(c->path, sizeof(c->path), "%s/rd_log_test_XXXXXX", dir && dir[0] ? dir : "/tmp");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    close(fd);
    fd = open(c->path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    c->saved_stderr = dup(STDERR_FILENO);
    assert_true(c->saved_stderr >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
}

/* Restores stderr and returns everything logged meanwhile (malloc'd). */
static char *capture_end(capture *c)
{
    dup2(c->saved_stderr, STDERR_FILENO);
    close(c->saved_stderr);
    FILE *f = fopen(c->path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *text = malloc((size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = '\0';
    fclose(f);
    unlink(c->path);
    return text;
}

/* Checks "ts=YYYY-MM-DDTHH:MM:SS.mmmZ " at the start of line and that it is close to now; returns
 * the rest of the line. */
static const char *skip_timestamp(const char *line)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *p = strptime(line, "ts=%Y-%m-%dT%H:%M:%S", &tm);
    assert_non_null(p);
    assert_true(p[0] == '.' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' && p[3] >= '0' && p[3] <= '9' &&
                p[4] == 'Z' && p[5] == ' ');
    time_t t = timegm(&tm);
    time_t now = time(NULL);
    assert_true(t <= now && now - t <= 5);
    return p + 6;
}

static void test_basic_record(void **state)
{
    (void)state;
    rd_log_init("intake", RD_LOG_INFO);
    capture c = {.saved_stderr = -1};
    capture_start(&c);
    rd_log(RD_LOG_DEBUG, "hidden", "k", "v", (char *)NULL);
    rd_log(RD_LOG_INFO, "batch committed", "events", "128", "ms", "2.1", (char *)NULL);
    rd_log(RD_LOG_ERROR, "plain", (char *)NULL);
    rd_logf(RD_LOG_WARN, "queue at %d%%", 85);
    rd_logf(RD_LOG_DEBUG, "also hidden %d", 1);
    char *text = capture_end(&c);

    char *save, *line = strtok_r(text, "\n", &save);
    assert_non_null(line);
    assert_string_equal(skip_timestamp(line), "level=info svc=intake msg=\"batch committed\" events=128 ms=2.1");
    line = strtok_r(NULL, "\n", &save);
    assert_non_null(line);
    assert_string_equal(skip_timestamp(line), "level=error svc=intake msg=plain");
    line = strtok_r(NULL, "\n", &save);
    assert_non_null(line);
    assert_string_equal(skip_timestamp(line), "level=warn svc=intake msg=\"queue at 85%\"");
    assert_null(strtok_r(NULL, "\n", &save));
    assert_null(strstr(text, "hidden"));
    free(text);
}

static void test_escaping(void **state)
{
    (void)state;
    rd_log_init("t", RD_LOG_DEBUG);
    capture c = {.saved_stderr = -1};
    capture_start(&c);
    rd_log(RD_LOG_DEBUG, "m", "quote", "say \"hi\"", "nl", "a\nb", "bs", "c:\\dir x", "eq", "a=b", "empty", "", "ctl",
           "x\x01y\ttab\r", "utf8", "投诉", "utf8sp", "投诉 内容", "bare_bs", "c:\\dir", "bad key", "v", (char *)NULL);
    char *text = capture_end(&c);
    assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
    text[strlen(text) - 1] = '\0';
    assert_null(strchr(text, '\n')); /* one record, one line */
    assert_string_equal(skip_timestamp(text), "level=debug svc=t msg=m quote=\"say \\\"hi\\\"\" nl=\"a\\nb\" "
                                              "bs=\"c:\\\\dir x\" eq=\"a=b\" empty=\"\" "
                                              "ctl=\"x\\u0001y\\ttab\\r\" utf8=投诉 utf8sp=\"投诉 内容\" "
                                              "bare_bs=c:\\dir bad_key=v");
    free(text);
}

static void test_null_value_and_no_service(void **state)
{
    (void)state;
    rd_log_init(NULL, RD_LOG_INFO);
    capture c = {.saved_stderr = -1};
    capture_start(&c);
    rd_log(RD_LOG_INFO, NULL, "a", (char *)NULL);
    char *text = capture_end(&c);
    text[strlen(text) - 1] = '\0';
    assert_string_equal(skip_timestamp(text), "level=info msg=\"\" a=\"\"");
    free(text);
}

static void test_truncation(void **state)
{
    (void)state;
    rd_log_init("t", RD_LOG_INFO);
    /* "诉 " repeated: quoted (spaces) and multi-byte, so the cut must land between characters */
    size_t big = 20000;
    char *v = malloc(big + 1);
    assert_non_null(v);
    for (size_t i = 0; i < big; i += 4)
        memcpy(v + i, "\xE8\xAF\x89 ", 4);
    v[big] = '\0';
    /* Four runs with the value starting at four different offsets: one of them must hit the
     * limit inside a character whatever the exact layout of the line. */
    const char *pads[] = {"1", "12", "123", "1234"};
    for (int run = 0; run < 4; run++) {
        capture c = {.saved_stderr = -1};
        capture_start(&c);
        rd_log(RD_LOG_INFO, "big", "before", pads[run], "v", v, "after", "2", (char *)NULL);
        char *text = capture_end(&c);
        size_t len = strlen(text);
        assert_true(len <= 8192);
        assert_string_equal(text + len - strlen("\" truncated=true\n"), "\" truncated=true\n");
        char want[32];
        snprintf(want, sizeof(want), " before=%s v=\"", pads[run]);
        assert_non_null(strstr(text, want));
        assert_null(strstr(text, "after="));
        int quotes = 0;
        for (const char *p = text; *p; p++)
            quotes += *p == '"' && p[-1] != '\\';
        assert_int_equal(quotes % 2, 0);
        /* the value ends with a whole character: a space or all three bytes of 诉 */
        const char *end = text + len - strlen("\" truncated=true\n");
        assert_true(end[-1] == ' ' || memcmp(end - 3, "\xE8\xAF\x89", 3) == 0);
        free(text);
    }
    free(v);
}

static void test_level_parse(void **state)
{
    (void)state;
    assert_int_equal(rd_log_level_parse("debug"), RD_LOG_DEBUG);
    assert_int_equal(rd_log_level_parse("info"), RD_LOG_INFO);
    assert_int_equal(rd_log_level_parse("warn"), RD_LOG_WARN);
    assert_int_equal(rd_log_level_parse("WARNING"), RD_LOG_WARN);
    assert_int_equal(rd_log_level_parse("Error"), RD_LOG_ERROR);
    assert_int_equal(rd_log_level_parse("verbose"), RD_LOG_INFO);
    assert_int_equal(rd_log_level_parse(""), RD_LOG_INFO);
    assert_int_equal(rd_log_level_parse(NULL), RD_LOG_INFO);
}

#define THREADS 4
#define RECORDS 2000

static void *log_many(void *arg)
{
    char id[16], seq[16];
    snprintf(id, sizeof(id), "%d", *(int *)arg);
    for (int i = 0; i < RECORDS; i++) {
        snprintf(seq, sizeof(seq), "%d", i);
        rd_log(RD_LOG_INFO, "a message long enough to make interleaving visible if writes were split", "thread", id,
               "seq", seq, "pad", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", (char *)NULL);
    }
    return NULL;
}

static void test_threads_whole_lines(void **state)
{
    (void)state;
    rd_log_init("t", RD_LOG_INFO);
    capture c = {.saved_stderr = -1};
    capture_start(&c);
    pthread_t t[THREADS];
    int ids[THREADS];
    for (int i = 0; i < THREADS; i++) {
        ids[i] = i;
        assert_int_equal(pthread_create(&t[i], NULL, log_many, &ids[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *text = capture_end(&c);
    int next[THREADS] = {0};
    int lines = 0;
    char *save;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int th, seq;
        const char *rest = skip_timestamp(line);
        const char *f = strstr(rest, " thread=");
        assert_non_null(f);
        assert_int_equal(sscanf(f, " thread=%d seq=%d", &th, &seq), 2);
        assert_true(th >= 0 && th < THREADS);
        assert_int_equal(seq, next[th]); /* each thread's records arrive whole and in order */
        next[th]++;
        lines++;
    }
    assert_int_equal(lines, THREADS * RECORDS);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_record),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_null_value_and_no_service),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_threads_whole_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
