/*
 * test_config.c -- the configuration file parser and environment overrides.
 *
 * Each test writes its file with mkstemp under $TMPDIR (or /tmp) and removes it afterwards.
 * Environment variables used here all start with REDRESS_TEST_ so they cannot collide with a
 * developer's real settings, and each test clears the ones it set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rd_config.h"

/* Writes text into a fresh temporary file; returns its malloc'd path. */
static char *write_temp(const char *text)
{
    const char *dir = getenv("TMPDIR");
    char *path;
    assert_true(asprintf(&path, "%s/rd_config_test_XXXXXX", dir && dir[0] ? dir : "/tmp") > 0);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static void remove_temp(char *path)
{
    unlink(path);
    free(path);
}

/* Loads text; the config, or NULL with the error copied into err. */
static rd_config *load_text(const char *text, char *err, int errlen, char **path_out)
{
    char *path = write_temp(text);
    rd_config *cfg = rd_config_load(path, err, errlen);
    if (path_out)
        *path_out = path;
    else
        remove_temp(path);
    return cfg;
}

static void test_basic_sections_comments(void **state)
{
    (void)state;
    char err[256];
    const char *text = "# leading comment\n"
                       "\n"
                       "top = 1\n"
                       "   spaced   =    value with spaces   \n"
                       "[log]\n"
                       "level = info                       # debug | info | warn | error\n"
                       "  # indented comment\n"
                       "[pg]   # a comment after a section\n"
                       "dsn = host=127.0.0.1 port=5432 dbname=redress\n"
                       "pass=ab#c\n"
                       "empty =\n"
                       "hashonly = # nothing but a comment\n"
                       "[ intake ]\n"
                       "bind=tcp://127.0.0.1:7401\t# tab before comment\n"
                       "crlf = yes\r\n";
    rd_config *cfg = load_text(text, err, sizeof(err), NULL);
    assert_non_null(cfg);
    assert_string_equal(err, "");
    assert_string_equal(rd_config_str(cfg, "top", NULL), "1");
    assert_string_equal(rd_config_str(cfg, "spaced", NULL), "value with spaces");
    assert_string_equal(rd_config_str(cfg, "log.level", NULL), "info");
    assert_string_equal(rd_config_str(cfg, "pg.dsn", NULL), "host=127.0.0.1 port=5432 dbname=redress");
    assert_string_equal(rd_config_str(cfg, "pg.pass", NULL), "ab#c");
    assert_string_equal(rd_config_str(cfg, "pg.empty", "def"), "");
    assert_string_equal(rd_config_str(cfg, "pg.hashonly", "def"), "");
    assert_string_equal(rd_config_str(cfg, "intake.bind", NULL), "tcp://127.0.0.1:7401");
    assert_string_equal(rd_config_str(cfg, "intake.crlf", NULL), "yes");
    /* keys are not found without their section, nor in another one */
    assert_null(rd_config_str(cfg, "level", NULL));
    assert_null(rd_config_str(cfg, "dsn", NULL));
    assert_null(rd_config_str(cfg, "log.dsn", NULL));
    assert_string_equal(rd_config_str(cfg, "missing", "fallback"), "fallback");
    rd_config_destroy(&cfg);
    assert_null(cfg);
    rd_config_destroy(&cfg); /* a second destroy is harmless */
}

static void test_quoted_values(void **state)
{
    (void)state;
    char err[256];
    const char *text = "a = \"  padded  \"\n"
                       "b = \"has # hash\"   # and a comment\n"
                       "c = \"esc \\\"q\\\" back\\\\slash\\nnl\\ttab\"\n"
                       "d = \"\"\n"
                       "e = not \"quoted\" really\n";
    rd_config *cfg = load_text(text, err, sizeof(err), NULL);
    assert_non_null(cfg);
    assert_string_equal(rd_config_str(cfg, "a", NULL), "  padded  ");
    assert_string_equal(rd_config_str(cfg, "b", NULL), "has # hash");
    assert_string_equal(rd_config_str(cfg, "c", NULL), "esc \"q\" back\\slash\nnl\ttab");
    assert_string_equal(rd_config_str(cfg, "d", "x"), "");
    assert_string_equal(rd_config_str(cfg, "e", NULL), "not \"quoted\" really");
    rd_config_destroy(&cfg);
}

/* Each bad file must fail and name the right line. */
static void test_syntax_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int line;
        const char *words;
    } cases[] = {
        {"a = 1\nno equals sign here\n", 2, "expected"},
        {"# c\n\n[pg\nx = 1\n", 3, "section"},
        {"[]\n", 1, "section"},
        {"[bad name]\n", 1, "section"},
        {"a = 1\n = 2\n", 2, "invalid key"},
        {"bad key = 1\n", 1, "invalid key"},
        {"a = \"open\n", 1, "unterminated"},
        {"a = 1\nb = 2\nc = \"x\" trailing\n", 3, "after closing quote"},
        {"a = \"\\q\"\n", 1, "escape"},
        {"[s]\na = 1\n\n[s]\na = 2\n", 5, "duplicate key 's.a'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "untouched";
        char *path;
        rd_config *cfg = load_text(cases[i].text, err, sizeof(err), &path);
        if (cfg != NULL)
            fail_msg("case %zu loaded but should fail", i);
        char where[512];
        snprintf(where, sizeof(where), "%s:%d: ", path, cases[i].line);
        if (strncmp(err, where, strlen(where)) != 0 || strstr(err, cases[i].words) == NULL)
            fail_msg("case %zu: error \"%s\", want prefix \"%s\" and \"%s\"", i, err, where, cases[i].words);
        remove_temp(path);
    }
}

static void test_missing_file(void **state)
{
    (void)state;
    char err[256] = "";
    rd_config *cfg = rd_config_load("/nonexistent/dir/redress.conf", err, sizeof(err));
    assert_null(cfg);
    assert_non_null(strstr(err, "/nonexistent/dir/redress.conf"));
    assert_non_null(strstr(err, "No such file"));
    /* a tiny error buffer is still NUL-terminated and not overrun */
    char tiny[8];
    memset(tiny, 'x', sizeof(tiny));
    assert_null(rd_config_load("/nonexistent/x", tiny, 5));
    assert_int_equal(strlen(tiny), 4);
    assert_int_equal(tiny[5], 'x');
}

static void test_env_overrides(void **state)
{
    (void)state;
    char err[256];
    setenv("REDRESS_TEST_PG_DSN", "from-env", 1);
    setenv("REDRESS_TEST_ONLY_IN_ENV", "env-only", 1);
    setenv("REDRESS_TEST_DASHED_KEY", "dashed", 1);
    setenv("REDRESS_TEST_EMPTY", "", 1);
    const char *text = "[test.pg]\ndsn = from-file\nuser = file-user\n[test]\nempty = nonempty\n";
    rd_config *cfg = load_text(text, err, sizeof(err), NULL);
    assert_non_null(cfg);
    /* environment beats file beats default */
    assert_string_equal(rd_config_str(cfg, "test.pg.dsn", "def"), "from-env");
    assert_string_equal(rd_config_str(cfg, "test.pg.user", "def"), "file-user");
    assert_string_equal(rd_config_str(cfg, "test.pg.port", "def"), "def");
    /* a key never mentioned in the file is still found in the environment */
    assert_string_equal(rd_config_str(cfg, "test.only.in.env", NULL), "env-only");
    assert_string_equal(rd_config_str(cfg, "test.only_in.env", NULL), "env-only");
    assert_string_equal(rd_config_str(cfg, "Test.Dashed-Key", NULL), "dashed");
    /* an empty variable is set: it overrides */
    assert_string_equal(rd_config_str(cfg, "test.empty", "def"), "");

    /* the environment is captured at load time: the returned strings stay valid afterwards */
    const char *v = rd_config_str(cfg, "test.pg.dsn", NULL);
    setenv("REDRESS_TEST_PG_DSN", "changed-later", 1);
    unsetenv("REDRESS_TEST_ONLY_IN_ENV");
    assert_string_equal(v, "from-env");
    assert_string_equal(rd_config_str(cfg, "test.only.in.env", NULL), "env-only");
    rd_config_destroy(&cfg);

    /* path NULL: environment and defaults only */
    cfg = rd_config_load(NULL, err, sizeof(err));
    assert_non_null(cfg);
    assert_string_equal(rd_config_str(cfg, "test.pg.dsn", NULL), "changed-later");
    assert_null(rd_config_str(cfg, "test.only.in.env", NULL));
    assert_string_equal(rd_config_str(cfg, "test.pg.user", "def"), "def");
    rd_config_destroy(&cfg);

    unsetenv("REDRESS_TEST_PG_DSN");
    unsetenv("REDRESS_TEST_DASHED_KEY");
    unsetenv("REDRESS_TEST_EMPTY");
}

static void test_int(void **state)
{
    (void)state;
    char err[256];
    const char *text = "[n]\nok = 42\nneg = -7\nplus = +5\nbig = 99999999999999999999\n"
                       "frac = 1.5\nword = ten\nempty =\nsuffix = 10k\nspace = \" 3\"\n"
                       "max = 9223372036854775807\nmin = -9223372036854775808\n";
    setenv("REDRESS_TEST_N_ENVNUM", "77", 1);
    rd_config *cfg = load_text(text, err, sizeof(err), NULL);
    unsetenv("REDRESS_TEST_N_ENVNUM");
    assert_non_null(cfg);
    int64_t v = 0;
    assert_true(rd_config_int(cfg, "n.ok", 1, 0, 100, &v, err, sizeof(err)));
    assert_int_equal(v, 42);
    assert_true(rd_config_int(cfg, "n.neg", 1, -10, 10, &v, err, sizeof(err)));
    assert_int_equal(v, -7);
    assert_true(rd_config_int(cfg, "n.plus", 1, 0, 10, &v, err, sizeof(err)));
    assert_int_equal(v, 5);
    assert_true(rd_config_int(cfg, "n.absent", 13, 0, 10, &v, err, sizeof(err)));
    assert_int_equal(v, 13); /* the default is returned as is, even outside [min, max] */
    assert_true(rd_config_int(cfg, "test.n.envnum", 1, 0, 100, &v, err, sizeof(err)));
    assert_int_equal(v, 77);
    assert_true(rd_config_int(cfg, "n.max", 0, INT64_MIN, INT64_MAX, &v, err, sizeof(err)));
    assert_true(v == INT64_MAX);
    assert_true(rd_config_int(cfg, "n.min", 0, INT64_MIN, INT64_MAX, &v, err, sizeof(err)));
    assert_true(v == INT64_MIN);

    /* range: the bounds themselves are inside */
    assert_true(rd_config_int(cfg, "n.ok", 0, 42, 42, &v, err, sizeof(err)));
    v = 1234;
    assert_false(rd_config_int(cfg, "n.ok", 0, 0, 41, &v, err, sizeof(err)));
    assert_int_equal(v, 1234); /* untouched on error */
    assert_non_null(strstr(err, "n.ok"));
    assert_non_null(strstr(err, "out of range [0, 41]"));
    assert_non_null(strstr(err, "line 2"));
    assert_false(rd_config_int(cfg, "n.neg", 0, 0, 10, &v, err, sizeof(err)));
    assert_non_null(strstr(err, "out of range"));
    assert_false(rd_config_int(cfg, "n.big", 0, INT64_MIN, INT64_MAX, &v, err, sizeof(err)));
    assert_non_null(strstr(err, "out of range"));

    const char *not_numbers[] = {"n.frac", "n.word", "n.empty", "n.suffix", "n.space"};
    for (size_t i = 0; i < sizeof(not_numbers) / sizeof(not_numbers[0]); i++) {
        err[0] = '\0';
        if (rd_config_int(cfg, not_numbers[i], 0, INT64_MIN, INT64_MAX, &v, err, sizeof(err)))
            fail_msg("%s parsed as %lld", not_numbers[i], (long long)v);
        assert_non_null(strstr(err, "not a whole number"));
        assert_non_null(strstr(err, not_numbers[i]));
    }
    rd_config_destroy(&cfg);
}

static void test_int_error_names_env(void **state)
{
    (void)state;
    char err[256];
    setenv("REDRESS_TEST_WRITERS", "lots", 1);
    rd_config *cfg = rd_config_load(NULL, err, sizeof(err));
    unsetenv("REDRESS_TEST_WRITERS");
    assert_non_null(cfg);
    int64_t v;
    assert_false(rd_config_int(cfg, "test.writers", 2, 1, 64, &v, err, sizeof(err)));
    assert_non_null(strstr(err, "REDRESS_TEST_WRITERS"));
    rd_config_destroy(&cfg);
}

static void test_bool(void **state)
{
    (void)state;
    char err[256];
    const char *text = "t1 = true\nt2 = YES\nt3 = on\nt4 = 1\nf1 = false\nf2 = No\nf3 = OFF\nf4 = 0\n"
                       "bad1 = maybe\nbad2 = 2\nbad3 =\nbad4 = truex\n";
    rd_config *cfg = load_text(text, err, sizeof(err), NULL);
    assert_non_null(cfg);
    const char *yes[] = {"t1", "t2", "t3", "t4"}, *no[] = {"f1", "f2", "f3", "f4"};
    for (size_t i = 0; i < 4; i++) {
        bool b = false;
        assert_true(rd_config_bool(cfg, yes[i], false, &b, err, sizeof(err)));
        assert_true(b);
        b = true;
        assert_true(rd_config_bool(cfg, no[i], true, &b, err, sizeof(err)));
        assert_false(b);
    }
    bool b = false;
    assert_true(rd_config_bool(cfg, "absent", true, &b, err, sizeof(err)));
    assert_true(b);
    const char *bad[] = {"bad1", "bad2", "bad3", "bad4"};
    for (size_t i = 0; i < 4; i++) {
        err[0] = '\0';
        assert_false(rd_config_bool(cfg, bad[i], false, &b, err, sizeof(err)));
        assert_non_null(strstr(err, "not a boolean"));
        assert_non_null(strstr(err, bad[i]));
    }
    rd_config_destroy(&cfg);
}

static void test_example_config(void **state)
{
    (void)state;
    /* The shipped example must load; its path is passed by CMake, skip when run by hand. */
    const char *path = getenv("RD_TEST_EXAMPLE_CONF");
    if (path == NULL || path[0] == '\0')
        skip();
    char err[256];
    rd_config *cfg = rd_config_load(path, err, sizeof(err));
    if (cfg == NULL)
        fail_msg("%s", err);
    rd_config_destroy(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_sections_comments), cmocka_unit_test(test_quoted_values),
        cmocka_unit_test(test_syntax_errors),           cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_env_overrides),           cmocka_unit_test(test_int),
        cmocka_unit_test(test_int_error_names_env),     cmocka_unit_test(test_bool),
        cmocka_unit_test(test_example_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
