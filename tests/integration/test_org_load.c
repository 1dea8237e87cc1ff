/*
 * test_org_load -- redressctl org load / agent presence against a real PostgreSQL and Redis
 * (tests/lib/with-stack.sh, with Redis).
 *
 * The tests run in order and build on each other: the demo organisation is loaded first, then
 * loaded again (nothing may change), then a modified copy (an agent and a rule removed), then
 * the bad files (each refused with nothing changed), then presence.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "itest.h"
#include "rd_redis.h"

#define DEMO REDRESS_SOURCE_DIR "/deploy/config/org.demo.json"

static PGconn *pg;
static char dir[512];

/* every table of every migration (organisation, presence and calendars included) */
static char *fingerprint(void)
{
    return itest_db_fingerprint(pg);
}

/* redressctl with args, output kept in dir (itest_ctl) */
#define ctl(...)               itest_ctl(dir, __VA_ARGS__)
#define printed(which, needle) itest_ctl_printed(dir, which, needle)

static int64_t count(const char *sql)
{
    return itest_count(pg, sql);
}

static json_t *demo(void)
{
    json_error_t e;
    json_t *doc = json_load_file(DEMO, 0, &e);

    if (doc == NULL)
        fail_msg("%s: %s", DEMO, e.text);
    return doc;
}

static const char *write_doc(json_t *doc, const char *name)
{
    static char path[600];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(json_dump_file(doc, path, JSON_INDENT(1)), 0);
    json_decref(doc);
    return path;
}

/* The array element of arr whose key equals value. */
static json_t *find(json_t *doc, const char *arr, const char *key, const char *value)
{
    size_t i;
    json_t *e;

    json_array_foreach (json_object_get(doc, arr), i, e) {
        if (strcmp(json_string_value(json_object_get(e, key)), value) == 0)
            return e;
    }
    fail_msg("%s: no %s '%s'", arr, key, value);
    return NULL;
}

static void drop(json_t *doc, const char *arr, const char *key, const char *value)
{
    json_t *a = json_object_get(doc, arr), *e;
    size_t i;

    json_array_foreach (a, i, e) {
        if (strcmp(json_string_value(json_object_get(e, key)), value) == 0) {
            json_array_remove(a, i);
            return;
        }
    }
    fail_msg("%s: no %s '%s'", arr, key, value);
}

static redisContext *redis(void)
{
    const char *url = getenv("REDRESS_REDIS_URL");
    rd_redis_addr a;
    char err[256];
    redisContext *c;

    if (url == NULL)
        fail_msg("REDRESS_REDIS_URL is not set: run under tests/lib/with-stack.sh without --no-redis");
    assert_true(rd_redis_parse_url(url, &a, err, sizeof(err)));
    c = rd_redis_connect(&a, 2000, err, sizeof(err));
    if (c == NULL)
        fail_msg("Redis: %s", err);
    return c;
}

/* ---- tests ------------------------------------------------------------------------------------ */

static void test_load_demo(void **state)
{
    assert_int_equal(ctl("org check %s", DEMO), 0);
    assert_int_equal(ctl("org load %s --dry-run", DEMO), 0);
    assert_int_equal(count("SELECT count(*) FROM teams"), 0);
    assert_int_equal(count("SELECT count(*) FROM departments"), 0);

    assert_int_equal(ctl("org load %s", DEMO), 0);
    assert_true(printed("out", "30 changes"));
    assert_int_equal(count("SELECT count(*) FROM departments"), 3);
    assert_int_equal(count("SELECT count(*) FROM departments WHERE dispatch_centre AND id = 'hq'"
                           " AND default_team = 'hq-dispatch' AND parent_id IS NULL"),
                     1);
    assert_int_equal(count("SELECT count(*) FROM departments WHERE parent_id = 'hq'"), 2);
    assert_int_equal(count("SELECT count(*) FROM teams"), 6);
    assert_int_equal(count("SELECT count(*) FROM teams WHERE id = 'south-general' AND overflow_team = 'hq-dispatch'"
                           " AND overflow_after_s = 120 AND strategy = 'least_loaded' AND major_weight = 1"),
                     1);
    assert_int_equal(count("SELECT count(*) FROM teams WHERE id = 'south-repair' AND strategy = 'round_robin'"
                           " AND overflow_team IS NULL AND overflow_after_s = 300"),
                     1);
    assert_int_equal(count("SELECT count(*) FROM agents WHERE active"), 14);
    assert_int_equal(count("SELECT count(*) FROM agents WHERE capacity NOT BETWEEN 3 AND 8"), 0);
    assert_int_equal(count("SELECT count(*) FROM agents WHERE id = 'a-001' AND name = '张伟'"
                           " AND languages = '{zh,en}' AND business_types = '{}' AND capacity = 8"),
                     1);
    assert_int_equal(count("SELECT count(*) FROM agents WHERE id = 'a-011'"
                           " AND categories = ARRAY['Credit reporting', 'Debt collection']"),
                     1);
    assert_int_equal(count("SELECT count(*) FROM routing_rules"), 7);
    assert_int_equal(count("SELECT ord FROM routing_rules WHERE name = 'repairs-beijing'"), 3);
    assert_int_equal(count("SELECT count(*) FROM routing_rules WHERE name = 'credit-reporting'"
                           " AND category_prefix = 'Credit reporting' AND business_type = 'complaint'"
                           " AND region_prefix IS NULL AND severity IS NULL AND channel IS NULL"),
                     1);
    assert_int_equal(count("SELECT count(*) FROM routing_rules WHERE channel = 'regulator' AND team_id = 'senior'"), 1);
    assert_int_equal(count("SELECT count(*) FROM accept_limits"), 2);
    assert_int_equal(count("SELECT seconds FROM accept_limits WHERE business_type = 'fault_repair'"), 300);

    assert_int_equal(ctl("org show"), 0);
    assert_true(printed("out", "总部调度中心"));
    assert_int_equal(ctl("org show --format json"), 0);
    assert_true(printed("out", "\"south-repair\""));
}

static void test_reload_changes_nothing(void **state)
{
    char *before = fingerprint();

    assert_int_equal(ctl("org load %s", DEMO), 0);
    assert_true(printed("out", "0 changes"));
    char *after = fingerprint();
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_modified_copy(void **state)
{
    json_t *doc = demo();

    drop(doc, "agents", "id", "a-014");
    drop(doc, "routing", "name", "beijing");
    json_object_set_new(find(doc, "agents", "id", "a-013"), "capacity", json_integer(2));
    const char *path = write_doc(doc, "modified.json");

    assert_int_equal(ctl("org load %s", path), 0);
    assert_true(printed("out", "1 deactivated"));
    assert_int_equal(count("SELECT count(*) FROM agents"), 14);
    assert_int_equal(count("SELECT count(*) FROM agents WHERE NOT active"), 1);
    assert_int_equal(count("SELECT count(*) FROM agents WHERE id = 'a-014' AND NOT active"), 1);
    assert_int_equal(count("SELECT capacity FROM agents WHERE id = 'a-013'"), 2);
    assert_int_equal(count("SELECT count(*) FROM routing_rules"), 6);
    assert_int_equal(count("SELECT count(*) FROM routing_rules WHERE name = 'beijing'"), 0);

    /* the agent comes back with the original file */
    assert_int_equal(ctl("org load %s", DEMO), 0);
    assert_int_equal(count("SELECT count(*) FROM agents WHERE active"), 14);
    assert_int_equal(count("SELECT count(*) FROM routing_rules"), 7);
}

/* Calendars: loaded and checked by redressctl calendar, named by agents in the org file. */
static void test_calendars(void **state)
{
    static const char *const example = REDRESS_SOURCE_DIR "/deploy/config/calendars.example.json";
    assert_int_equal(ctl("calendar load %s", example), 0);
    int64_t n = count("SELECT count(*) FROM business_calendars");
    assert_true(n >= 2);
    /* loading it again changes nothing */
    assert_int_equal(ctl("calendar load %s", example), 0);
    assert_true(printed("out", "0 added, 0 changed"));
    const char *id = "cn-mainland"; /* one of the example's */

    json_t *doc = demo(); /* write_doc() releases it */
    json_object_set_new(find(doc, "agents", "id", "a-013"), "calendar", json_string(id));
    assert_int_equal(ctl("org load %s", write_doc(doc, "calendar.json")), 0);
    char q[256];
    snprintf(q, sizeof(q), "SELECT count(*) FROM agents WHERE id = 'a-013' AND calendar_id = '%s'", id);
    assert_int_equal(count(q), 1);

    /* an unknown calendar is refused and changes nothing */
    char *before = fingerprint();
    doc = demo();
    json_object_set_new(find(doc, "agents", "id", "a-012"), "calendar", json_string("no-such-calendar"));
    assert_int_equal(ctl("org load %s", write_doc(doc, "bad-calendar.json")), 1);
    assert_true(printed("err", "agents[11].calendar: unknown calendar 'no-such-calendar'"));
    char *after = fingerprint();
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* a bad calendar file is refused whole */
    const char *bad = REDRESS_SOURCE_DIR "/tests/fuzz/corpus/calendar/bad_interval.json";
    assert_int_equal(ctl("calendar load %s", bad), 1);
    assert_int_equal(count("SELECT count(*) FROM business_calendars"), n);

    /* back to the demo file: a-013 follows no calendar again */
    assert_int_equal(ctl("org load %s", DEMO), 0);
    assert_int_equal(count("SELECT count(*) FROM agents WHERE calendar_id IS NOT NULL"), 0);
}

typedef struct {
    const char *name;  /* the case */
    const char *error; /* what stderr must say */
    void (*edit)(json_t *doc);
} bad_case;

static void bad_team_ref(json_t *d)
{
    json_object_set_new(find(d, "agents", "id", "a-004"), "team", json_string("x"));
}

static void bad_two_centres(json_t *d)
{
    json_object_set_new(find(d, "departments", "id", "north"), "dispatch_centre", json_true());
}

static void bad_cycle(json_t *d)
{
    json_object_set_new(find(d, "departments", "id", "hq"), "parent", json_string("south"));
}

static void bad_strategy(json_t *d)
{
    json_object_set_new(find(d, "teams", "id", "senior"), "strategy", json_string("random"));
}

static void bad_capacity(json_t *d)
{
    json_object_set_new(find(d, "agents", "id", "a-002"), "capacity", json_integer(-1));
}

static void bad_capacity_high(json_t *d)
{
    json_object_set_new(find(d, "agents", "id", "a-002"), "capacity", json_integer(100001));
}

static void bad_key(json_t *d)
{
    json_object_set_new(find(d, "teams", "id", "senior"), "colour", json_string("red"));
}

static void bad_channel(json_t *d)
{
    json_object_set_new(find(d, "routing", "name", "regulator-to-senior"), "channel", json_string("pigeon"));
}

static void bad_severity(json_t *d)
{
    json_object_set_new(find(d, "routing", "name", "major-to-senior"), "severity", json_string("critical"));
}

static void bad_id(json_t *d)
{
    json_object_set_new(find(d, "agents", "id", "a-005"), "id", json_string("a 005"));
}

static void bad_duplicate(json_t *d)
{
    json_object_set_new(find(d, "agents", "id", "a-005"), "id", json_string("a-006"));
}

static void bad_rule_team(json_t *d)
{
    json_object_set_new(find(d, "routing", "name", "beijing"), "team", json_string("nowhere"));
}

static void bad_no_default_limit(json_t *d)
{
    json_object_del(json_object_get(d, "accept_limits"), "*");
}

static void bad_business_type(json_t *d)
{
    json_object_set_new(find(d, "routing", "name", "repairs-beijing"), "business_type", json_string("plumbing"));
}

/* Removes a team (and its agents from the file): the agents, deactivated, still name it. */
static void bad_team_in_use(json_t *d)
{
    drop(d, "teams", "id", "north-repair");
    drop(d, "agents", "id", "a-013");
    drop(d, "agents", "id", "a-014");
    drop(d, "routing", "name", "repairs-beijing");
}

static const bad_case bad_cases[] = {
    {"unknown team", "agents[3].team: unknown team 'x'", bad_team_ref},
    {"two dispatch centres", "departments[2].dispatch_centre: a second dispatch centre", bad_two_centres},
    {"cycle", "the parents make a cycle: hq -> south -> hq", bad_cycle},
    {"bad strategy", "teams[1].strategy: unknown strategy 'random'", bad_strategy},
    {"negative capacity", "agents[1].capacity: -1 is out of range", bad_capacity},
    {"capacity too high", "agents[1].capacity: 100001 is out of range", bad_capacity_high},
    {"unknown key", "teams[1].colour: unknown key", bad_key},
    {"bad channel", "routing[1].channel: unknown channel 'pigeon'", bad_channel},
    {"bad severity", "routing[0].severity: unknown severity 'critical'", bad_severity},
    {"bad id", "agents[4].id: 'a 005' is not an id", bad_id},
    {"duplicate id", "duplicate id 'a-006'", bad_duplicate},
    {"unknown rule team", "routing[6].team: unknown team 'nowhere'", bad_rule_team},
    {"no default limit", "accept_limits: wants a \"*\" entry", bad_no_default_limit},
    {"unknown business type", "routing[3].business_type: unknown business type 'plumbing'", bad_business_type},
    {"team still in use", "team 'north-repair': 2 agents", bad_team_in_use},
};

static void test_bad_files(void **state)
{
    char *before = fingerprint();

    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        json_t *doc = demo();
        bad_cases[i].edit(doc);
        const char *path = write_doc(doc, "bad.json");
        int rc = ctl("org load %s", path);
        if (rc != 1 || !printed("err", bad_cases[i].error))
            fail_msg("case '%s': exit %d (want 1), stderr must say: %s", bad_cases[i].name, rc, bad_cases[i].error);
        char *after = fingerprint();
        if (strcmp(before, after) != 0)
            fail_msg("case '%s' changed the database", bad_cases[i].name);
        free(after);
    }

    /* malformed UTF-8 (a Latin-1 byte in a name) and a file that is not JSON */
    char path[600], line[1400];
    snprintf(path, sizeof(path), "%s/latin1.json", dir);
    snprintf(line, sizeof(line), "sed 's/Emily Carter/Emil\\xe9 Carter/' %s >%s", DEMO, path);
    assert_int_equal(itest_run(line), 0);
    assert_int_equal(ctl("org load %s", path), 1);
    assert_true(printed("err", "UTF-8"));
    snprintf(line, sizeof(line), "printf '{\"departments\": [' >%s/truncated.json", dir);
    assert_int_equal(itest_run(line), 0);
    assert_int_equal(ctl("org load %s/truncated.json", dir), 1);
    /* unreadable file: a usage error */
    assert_int_equal(ctl("org load %s/does-not-exist.json", dir), 2);
    /* a dry run of a good file changes nothing either */
    json_t *doc = demo();
    drop(doc, "agents", "id", "a-001");
    assert_int_equal(ctl("org load %s --dry-run", write_doc(doc, "dry.json")), 0);

    char *after = fingerprint();
    assert_string_equal(before, after);
    free(after);
    free(before);
}

static void test_presence(void **state)
{
    redisContext *rc = redis();
    redisReply *r;

    assert_int_equal(ctl("agent online a-003 --ttl 120"), 0);
    assert_int_equal(count("SELECT count(*) FROM agent_presence WHERE agent_id = 'a-003' AND status = 'online'"
                           " AND expires_at > now() + interval '100 seconds'"),
                     1);
    r = redisCommand(rc, "TIME");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    long long now_ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    r = redisCommand(rc, "HGET {rd}:pres a-003");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    long long until = atoll(r->str);
    freeReplyObject(r);
    assert_true(until > now_ms + 100000);
    assert_true(until <= now_ms + 121000);

    /* a heartbeat moves the expiry; list shows the agent online */
    assert_int_equal(ctl("agent online a-003"), 0);
    assert_int_equal(ctl("agent list --team senior"), 0);
    assert_true(printed("out", "online"));
    assert_int_equal(ctl("agent list --format json"), 0);
    assert_true(printed("out", "\"a-014\""));

    assert_int_equal(ctl("agent away a-003"), 0);
    r = redisCommand(rc, "HGET {rd}:pres a-003");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "0");
    freeReplyObject(r);

    assert_int_equal(ctl("agent offline a-003"), 0);
    assert_int_equal(count("SELECT count(*) FROM agent_presence WHERE agent_id = 'a-003' AND status = 'offline'"
                           " AND expires_at <= now()"),
                     1);
    r = redisCommand(rc, "HEXISTS {rd}:pres a-003");
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);

    /* unknown agent: exit 1, nothing stored anywhere */
    assert_int_equal(ctl("agent online nobody"), 1);
    assert_true(printed("err", "unknown agent 'nobody'"));
    assert_int_equal(count("SELECT count(*) FROM agent_presence WHERE agent_id = 'nobody'"), 0);
    r = redisCommand(rc, "HEXISTS {rd}:pres nobody");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    assert_int_equal(ctl("agent list --team nowhere"), 1);

    /* Redis unreachable: stored in PostgreSQL, exit 3 */
    assert_int_equal(ctl("agent online a-004 --redis redis://127.0.0.1:%d", itest_free_port()), 3);
    assert_true(printed("err", "stored in PostgreSQL"));
    assert_int_equal(count("SELECT count(*) FROM agent_presence WHERE agent_id = 'a-004' AND status = 'online'"), 1);

    /* usage errors */
    assert_int_equal(ctl("agent away a-004 --ttl 5"), 2);
    assert_int_equal(ctl("agent online a-004 --ttl 0"), 2);
    assert_int_equal(ctl("agent online 'not an id'"), 2);
    redisFree(rc);
}

int main(void)
{
    const char *d = getenv("REDRESS_TEST_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_demo),     cmocka_unit_test(test_reload_changes_nothing),
        cmocka_unit_test(test_modified_copy), cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_presence),      cmocka_unit_test(test_calendars),
    };

    snprintf(dir, sizeof(dir), "%s", d != NULL ? d : "/tmp");
    pg = itest_pg();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    PQfinish(pg);
    return rc;
}
