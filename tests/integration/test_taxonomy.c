/*
 * test_taxonomy -- redressctl taxonomy load / show against a real PostgreSQL
 * (tests/lib/with-stack.sh --no-redis).
 *
 * The tests run in order and build on each other: the Teddy 2020 category tree
 * (../shared/datasets/teddy2020/taxonomy.csv, 15 / 118 / 517 categories) is loaded after a dry
 * run, loaded again (nothing may change), then a smaller file with --replace (refused while a
 * classified ticket names a category it would remove, then accepted), then bad files, each
 * refused with nothing written. The tests skip when the datasets folder is absent.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "itest.h"

#define TEDDY REDRESS_SOURCE_DIR "/../shared/datasets/teddy2020/taxonomy.csv"

static PGconn *pg;
static char dir[512];

static bool have_teddy(void)
{
    struct stat st;

    if (stat(TEDDY, &st) == 0)
        return true;
    print_message("../shared/datasets/teddy2020 is absent: skipping\n");
    return false;
}

/* redressctl with args, output kept in dir (itest_ctl) */
#define ctl(...)               itest_ctl(dir, __VA_ARGS__)
#define printed(which, needle) itest_ctl_printed(dir, which, needle)

static int64_t count(const char *sql)
{
    return itest_count(pg, sql);
}

static int64_t at_level(int level)
{
    char sql[128];

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM taxonomy_categories WHERE level = %d", level);
    return count(sql);
}

/* Everything in the table, as one string: equal before and after means nothing changed. */
static char *fingerprint(void)
{
    PGresult *r = PQexec(pg, "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')"
                             "  FROM taxonomy_categories t");
    char *s = strdup(PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "error");

    PQclear(r);
    assert_non_null(s);
    return s;
}

static const char *write_file(const char *name, const char *content)
{
    static char path[600];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
    assert_int_equal(fclose(f), 0);
    return path;
}

static void test_load_teddy(void **state)
{
    (void)state;
    if (!have_teddy())
        skip();
    assert_int_equal(ctl("taxonomy show"), 0);
    assert_true(printed("out", "no categories"));
    /* A dry run says what it would do and does nothing. */
    assert_int_equal(ctl("taxonomy load %s --dry-run", TEDDY), 0);
    assert_true(printed("out", "dry run"));
    assert_int_equal(count("SELECT count(*) FROM taxonomy_categories"), 0);

    assert_int_equal(ctl("taxonomy load %s", TEDDY), 0);
    assert_true(printed("out", "650 categories"));
    assert_int_equal(at_level(1), 15);
    assert_int_equal(at_level(2), 118);
    assert_int_equal(at_level(3), 517);
    /* Codes are paths; parents, levels and names follow from them. */
    assert_int_equal(count("SELECT count(*) FROM taxonomy_categories WHERE code = '城乡建设 / 安全生产 / 事故处理'"
                           " AND parent_code = '城乡建设 / 安全生产' AND level = 3 AND name = '事故处理'"),
                     1);
    assert_int_equal(count("SELECT count(*) FROM taxonomy_categories WHERE level = 1 AND parent_code IS NULL"
                           " AND code = name"),
                     15);
    assert_int_equal(count("SELECT count(*) FROM taxonomy_categories c JOIN taxonomy_categories p"
                           " ON p.code = c.parent_code AND p.level = c.level - 1"
                           " AND c.code = p.code || ' / ' || c.name"),
                     118 + 517);
}

static void test_reload_changes_nothing(void **state)
{
    (void)state;
    if (!have_teddy())
        skip();
    char *before = fingerprint();
    assert_int_equal(ctl("taxonomy load %s", TEDDY), 0);
    char *after = fingerprint();
    assert_string_equal(before, after);
    char line[128]; /* added 0, kept 650, changed 0, removed 0 */
    snprintf(line, sizeof(line), "%-6s %7d %7d %7d %7d\n", "total", 0, 650, 0, 0);
    assert_true(printed("out", line));
    free(before);
    free(after);

    assert_int_equal(ctl("taxonomy show --format json"), 0);
    assert_true(printed("out", "\"count\": 650"));
    assert_int_equal(ctl("taxonomy show"), 0);
    assert_true(printed("out", "level 1: 15 level 2: 118 level 3: 517"));
}

static void test_replace(void **state)
{
    (void)state;
    if (!have_teddy())
        skip();
    /* Two of the 15 top-level branches, one of them shortened, and one new category. */
    const char *small = write_file("small.csv", "一级分类,二级分类,三级分类\n"
                                                "城乡建设,安全生产,事故处理\n"
                                                "城乡建设,安全生产,新的分类\n"
                                                "环境保护,,\n");
    char *before = fingerprint();

    /* Without --replace: added, nothing removed. */
    assert_int_equal(ctl("taxonomy load %s --dry-run", small), 0);
    assert_true(printed("out", "left as they are"));

    /* A classified ticket names a category that --replace would remove: refused. */
    itest_intake s;
    assert_true(itest_intake_start(&s, NULL));
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "%s submit --endpoint %s --channel web --customer C-TAX --subject 噪音 --body 工地夜间施工 "
             ">%s/out.txt 2>%s/err.txt",
             REDRESS_REDRESSCTL_BIN, s.endpoint, dir, dir);
    assert_int_equal(itest_run(cmd), 0);
    itest_intake_stop(&s);
    PGresult *r = PQexec(pg, "INSERT INTO ticket_classifications (ticket_id, business_type, business_type_source,"
                             " business_type_confidence, category, category_source, category_confidence, severity,"
                             " priority, priority_source)"
                             " SELECT id, 'complaint', 'default', 1, '卫生计生', 'test', 1, 'general', 3, 'default'"
                             " FROM tickets LIMIT 1");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_int_equal(count("SELECT count(*) FROM ticket_classifications"), 1);
    assert_int_equal(ctl("taxonomy load %s --replace", small), 1);
    assert_true(printed("err", "卫生计生 (1 tickets)"));
    char *now = fingerprint();
    assert_string_equal(before, now);
    free(now);

    /* Once nothing names them, they go. */
    assert_int_equal(count("UPDATE ticket_classifications SET category = '环境保护' RETURNING 1"), 1);
    assert_int_equal(ctl("taxonomy load %s --replace", small), 0);
    assert_int_equal(at_level(1), 2);
    assert_int_equal(at_level(2), 1);
    assert_int_equal(at_level(3), 2);
    assert_int_equal(count("SELECT count(*) FROM taxonomy_categories WHERE code = '城乡建设 / 安全生产 / 新的分类'"),
                     1);
    /* And again: nothing changes. */
    char *b2 = fingerprint();
    assert_int_equal(ctl("taxonomy load %s --replace", small), 0);
    char *a2 = fingerprint();
    assert_string_equal(b2, a2);
    free(b2);
    free(a2);
    free(before);
}

static void test_bad_files(void **state)
{
    (void)state;
    char *before = fingerprint();

    /* A gap in the middle of a path, named with its line. */
    const char *gap = write_file("gap.csv", "L1,L2,L3\nA,B,C\nA,,D\n");
    assert_int_equal(ctl("taxonomy load %s", gap), 1);
    assert_true(printed("err", "line 3"));
    assert_true(printed("err", "skip a level"));
    /* Invalid UTF-8, named with its line. */
    const char *bad = write_file("bad.csv", "L1,L2\nA,B\nA,\xC3\x28\n");
    assert_int_equal(ctl("taxonomy load %s", bad), 1);
    assert_true(printed("err", "line 3"));
    assert_true(printed("err", "UTF-8"));
    /* More cells than levels; an empty file; a header only; a missing file; a bad option. */
    assert_int_equal(ctl("taxonomy load %s", write_file("wide.csv", "L1\nA,B\n")), 1);
    assert_true(printed("err", "line 2"));
    assert_int_equal(ctl("taxonomy load %s", write_file("empty.csv", "")), 1);
    assert_int_equal(ctl("taxonomy load %s", write_file("header.csv", "L1,L2\n")), 1);
    assert_int_equal(ctl("taxonomy load %s/no-such-file.csv", dir), 2);
    assert_int_equal(ctl("taxonomy show --format xml"), 2);
    assert_int_equal(ctl("taxonomy show --replace"), 2);
    assert_int_equal(ctl("taxonomy load"), 2);

    char *after = fingerprint();
    assert_string_equal(before, after);
    free(before);
    free(after);
}

int main(void)
{
    const char *d = getenv("REDRESS_TEST_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_teddy),
        cmocka_unit_test(test_reload_changes_nothing),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_bad_files),
    };

    snprintf(dir, sizeof(dir), "%s", d != NULL ? d : "/tmp");
    pg = itest_pg();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    PQfinish(pg);
    return rc;
}
