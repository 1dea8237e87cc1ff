/*
 * The dispatcher's pure routing code (services/dispatcher/route.c): which team a ticket goes to
 * (the unit a transfer or return names, routing rules in order, the dispatch centre), which agents
 * may take it (skills, capacity, exclusions, the overflow team), its weight and its acceptance
 * limit. The organisation is built by hand, as org.c would build it from PostgreSQL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dispatcher.h"

/* ---- the organisation ---------------------------------------------------------------------- */

/* Departments (indexes): the dispatch centre, two departments with teams, one without. */
enum { D_CENTRE, D_GRID, D_BILL, D_EMPTY, D_BADDEF, NDEPTS };
/* Teams (indexes). */
enum { T_BILL_A, T_BILL_B, T_CENTRE, T_GRID_A, T_GRID_B, T_SELF, T_BAD_A, NTEAMS };
/* Agents (indexes). */
enum {
    A_BILL1,   /* T_BILL_A: complaint, 电费, zh */
    A_BILL2,   /* T_BILL_A: capacity 0 */
    A_BILL3,   /* T_BILL_A: inactive */
    A_BILL4,   /* T_BILL_A: no skills at all (NULL arrays) */
    A_BILLB1,  /* T_BILL_B */
    A_CENTRE1, /* T_CENTRE */
    A_GRID1,   /* T_GRID_A: regions CN-31 */
    A_GRID2,   /* T_GRID_A: languages en */
    A_GRID3,   /* T_GRID_A: any */
    A_GRIDB1,  /* T_GRID_B (overflow of T_GRID_A): any */
    A_GRIDB2,  /* T_GRID_B: regions CN-32 */
    A_SELF1,   /* T_SELF (its own overflow team) */
    A_BAD1,    /* T_BAD_A */
    NAGENTS
};

static char *none[] = {NULL};
static char *complaint[] = {"complaint", NULL};
static char *dianfei[] = {"电费", "电价", NULL};
static char *zh[] = {"zh", NULL};
static char *en[] = {"en", NULL};
static char *cn31[] = {"CN-31", NULL};
static char *cn32[] = {"CN-32", NULL};

static int billA[] = {A_BILL1, A_BILL2, A_BILL3, A_BILL4};
static int billB[] = {A_BILLB1};
static int centre[] = {A_CENTRE1};
static int gridA[] = {A_GRID1, A_GRID2, A_GRID3};
static int gridB[] = {A_GRIDB1, A_GRIDB2};
static int self[] = {A_SELF1};
static int badA[] = {A_BAD1};

static dp_department depts[NDEPTS];
static dp_team teams[NTEAMS];
static dp_agent agents[NAGENTS];
static dp_org org;

static void dept(int i, const char *id, const char *def, bool centreDept)
{
    depts[i] = (dp_department){
        .id = (char *)id, .name = (char *)id, .default_team = (char *)def, .dispatch_centre = centreDept};
}

static void team(int i, const char *id, int d, int *members, int n, int overflow, int after, int major)
{
    teams[i] = (dp_team){.id = (char *)id,
                         .department_id = depts[d].id,
                         .name = (char *)id,
                         .overflow_team = overflow >= 0 ? teams[overflow].id : NULL,
                         .strategy = DP_LEAST_LOADED,
                         .overflow_after_s = after,
                         .major_weight = major,
                         .agents = members,
                         .nagents = n,
                         .dept = d,
                         .overflow = overflow};
}

static void agent(int i, const char *id, int t, int capacity, bool active, char **bt, char **cat, char **lang,
                  char **reg)
{
    agents[i] = (dp_agent){.id = (char *)id,
                           .team_id = teams[t].id,
                           .name = (char *)id,
                           .capacity = capacity,
                           .business_types = bt,
                           .categories = cat,
                           .languages = lang,
                           .regions = reg,
                           .active = active,
                           .team = t};
}

/* Rules in order; each tests one condition, except r-both (two) and r-dead (team -1). */
static dp_rule rules[] = {
    {.name = "r-dead", .team = -1}, /* no conditions: would match everything, but its team is gone */
    {.name = "r-both", .business_type = "consultation", .region_prefix = "CN-44", .team = T_CENTRE},
    {.name = "r-bt", .business_type = "consultation", .team = T_BILL_B},
    {.name = "r-cat", .category_prefix = "电费", .team = T_BILL_A},
    {.name = "r-region", .region_prefix = "CN-31", .team = T_GRID_A},
    {.name = "r-sev", .severity = "major", .team = T_GRID_B},
    {.name = "r-chan", .channel = "regulator", .team = T_CENTRE},
};

static dp_limit limits[] = {
    {.business_type = "fault_repair", .seconds = 300, .transferred_s = 900},
    {.business_type = "*", .seconds = 1200, .transferred_s = 3600},
    {.business_type = "consultation", .seconds = 600, .transferred_s = 700},
};

static int setup(void **state)
{
    dept(D_CENTRE, "centre", "T-centre", true);
    dept(D_GRID, "D-grid", "T-grid-b", false);
    dept(D_BILL, "D-bill", NULL, false);      /* no default team: its first team */
    dept(D_EMPTY, "D-empty", NULL, false);    /* no teams at all */
    dept(D_BADDEF, "D-bad", "T-gone", false); /* a default team that does not exist */
    /* T_GRID_B first: T_GRID_A names it as overflow team */
    team(T_GRID_B, "T-grid-b", D_GRID, gridB, 2, -1, 300, 1);
    team(T_BILL_A, "T-bill-a", D_BILL, billA, 4, -1, 300, 1);
    team(T_BILL_B, "T-bill-b", D_BILL, billB, 1, -1, 300, 1);
    team(T_CENTRE, "T-centre", D_CENTRE, centre, 1, -1, 300, 1);
    team(T_GRID_A, "T-grid-a", D_GRID, gridA, 3, T_GRID_B, 300, 3);
    team(T_SELF, "T-self", D_CENTRE, self, 1, T_SELF, 0, 1);
    team(T_BAD_A, "T-bad-a", D_BADDEF, badA, 1, -1, 300, 1);
    agent(A_BILL1, "a-bill-1", T_BILL_A, 5, true, complaint, dianfei, zh, none);
    agent(A_BILL2, "a-bill-2", T_BILL_A, 0, true, none, none, none, none);
    agent(A_BILL3, "a-bill-3", T_BILL_A, 5, false, none, none, none, none);
    agent(A_BILL4, "a-bill-4", T_BILL_A, 5, true, NULL, NULL, NULL, NULL);
    agent(A_BILLB1, "a-billb-1", T_BILL_B, 5, true, none, none, none, none);
    agent(A_CENTRE1, "a-centre-1", T_CENTRE, 5, true, none, none, none, none);
    agent(A_GRID1, "a-grid-1", T_GRID_A, 5, true, none, none, none, cn31);
    agent(A_GRID2, "a-grid-2", T_GRID_A, 5, true, none, none, en, none);
    agent(A_GRID3, "a-grid-3", T_GRID_A, 5, true, none, none, none, none);
    agent(A_GRIDB1, "a-gridb-1", T_GRID_B, 5, true, none, none, none, none);
    agent(A_GRIDB2, "a-gridb-2", T_GRID_B, 5, true, none, none, none, cn32);
    agent(A_SELF1, "a-self-1", T_SELF, 5, true, none, none, none, none);
    agent(A_BAD1, "a-bad-1", T_BAD_A, 5, true, none, none, none, none);
    org = (dp_org){.depts = depts,
                   .ndepts = NDEPTS,
                   .teams = teams,
                   .nteams = NTEAMS,
                   .agents = agents,
                   .nagents = NAGENTS,
                   .rules = rules,
                   .nrules = (int)(sizeof(rules) / sizeof(rules[0])),
                   .limits = limits,
                   .nlimits = (int)(sizeof(limits) / sizeof(limits[0])),
                   .centre_team = T_CENTRE};
    return 0;
}

/* A ticket with every field unset ("" as store.c gives them), general, from the web. */
static dp_ticket mk(void)
{
    dp_ticket t;
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "%s", "00000000-0000-7000-8000-000000000001");
    t.business_type = "";
    t.category = "";
    t.severity = "general";
    t.channel = "web";
    t.region = "";
    t.language = "";
    t.state = "classified";
    t.owner_agent = "";
    t.route_to_unit = "";
    t.priority = 4;
    return t;
}

/* dp_route, returning the team and checking *why. */
static int route(const dp_ticket *t, const char *wantWhy)
{
    const char *why = NULL;
    int team = dp_route(&org, t, &why);
    assert_non_null(why);
    assert_string_equal(why, wantWhy);
    return team;
}

/* ---- dp_route: units ----------------------------------------------------------------------- */

static void test_route_unit(void **state)
{
    dp_ticket t = mk();
    /* a team named by id */
    t.route_to_unit = "T-grid-a";
    assert_int_equal(route(&t, "unit:T-grid-a"), T_GRID_A);
    /* a department: its default team */
    t.route_to_unit = "D-grid";
    assert_int_equal(route(&t, "unit:D-grid"), T_GRID_B);
    t.route_to_unit = "centre";
    assert_int_equal(route(&t, "unit:centre"), T_CENTRE);
    /* a department without a default team: its first team */
    t.route_to_unit = "D-bill";
    assert_int_equal(route(&t, "unit:D-bill"), T_BILL_A);
    /* a department whose default team does not exist: its first team */
    t.route_to_unit = "D-bad";
    assert_int_equal(route(&t, "unit:D-bad"), T_BAD_A);
    /* unknown units, and a department without teams, go to the centre */
    t.route_to_unit = "nowhere";
    assert_int_equal(route(&t, "unknown unit -> centre"), T_CENTRE);
    t.route_to_unit = "D-empty";
    assert_int_equal(route(&t, "unknown unit -> centre"), T_CENTRE);
    /* ids are exact: neither a prefix nor a case variant names a unit */
    t.route_to_unit = "T-grid";
    assert_int_equal(route(&t, "unknown unit -> centre"), T_CENTRE);
    t.route_to_unit = "t-grid-a";
    assert_int_equal(route(&t, "unknown unit -> centre"), T_CENTRE);
}

static void test_route_unit_beats_rules(void **state)
{
    dp_ticket t = mk();
    t.category = "电费/多收"; /* r-cat would send it to T_BILL_A */
    assert_int_equal(route(&t, "rule:r-cat"), T_BILL_A);
    t.route_to_unit = "T-grid-b";
    assert_int_equal(route(&t, "unit:T-grid-b"), T_GRID_B);
    /* an unknown unit does not fall back to the rules: the centre sorts it out */
    t.route_to_unit = "nowhere";
    assert_int_equal(route(&t, "unknown unit -> centre"), T_CENTRE);
    /* "" names no unit */
    t.route_to_unit = "";
    assert_int_equal(route(&t, "rule:r-cat"), T_BILL_A);
}

/* ---- dp_route: rules ----------------------------------------------------------------------- */

static void test_route_each_condition(void **state)
{
    dp_ticket t = mk();
    /* nothing matches: the centre; r-dead (team -1, no conditions) is skipped */
    assert_int_equal(route(&t, "centre"), T_CENTRE);

    /* business type: exact */
    t = mk();
    t.business_type = "consultation";
    assert_int_equal(route(&t, "rule:r-bt"), T_BILL_B);
    t.business_type = "consultation2";
    assert_int_equal(route(&t, "centre"), T_CENTRE);
    t.business_type = "consult";
    assert_int_equal(route(&t, "centre"), T_CENTRE);
    t.business_type = "Consultation";
    assert_int_equal(route(&t, "centre"), T_CENTRE);

    /* category: prefix, Chinese included */
    t = mk();
    t.category = "电费";
    assert_int_equal(route(&t, "rule:r-cat"), T_BILL_A);
    t.category = "电费争议/重复收费";
    assert_int_equal(route(&t, "rule:r-cat"), T_BILL_A);
    t.category = "电"; /* shorter than the prefix */
    assert_int_equal(route(&t, "centre"), T_CENTRE);
    t.category = "停电/电费"; /* contains it, does not start with it */
    assert_int_equal(route(&t, "centre"), T_CENTRE);

    /* region: prefix */
    t = mk();
    t.region = "CN-31";
    assert_int_equal(route(&t, "rule:r-region"), T_GRID_A);
    t.region = "CN-3101";
    assert_int_equal(route(&t, "rule:r-region"), T_GRID_A);
    t.region = "CN-3";
    assert_int_equal(route(&t, "centre"), T_CENTRE);
    t.region = "CN-32";
    assert_int_equal(route(&t, "centre"), T_CENTRE);

    /* severity: exact */
    t = mk();
    t.severity = "major";
    assert_int_equal(route(&t, "rule:r-sev"), T_GRID_B);
    t.severity = "majority";
    assert_int_equal(route(&t, "centre"), T_CENTRE);

    /* channel: exact */
    t = mk();
    t.channel = "regulator";
    assert_int_equal(route(&t, "rule:r-chan"), T_CENTRE);
    t.channel = "regulator-x";
    assert_int_equal(route(&t, "centre"), T_CENTRE);
}

static void test_route_order(void **state)
{
    dp_ticket t = mk();
    /* every condition of a rule must hold: r-both needs consultation AND region CN-44 */
    t.business_type = "consultation";
    t.region = "CN-4401";
    assert_int_equal(route(&t, "rule:r-both"), T_CENTRE);
    t.region = "CN-45";
    assert_int_equal(route(&t, "rule:r-bt"), T_BILL_B);

    /* several rules match: the first in order wins */
    t = mk();
    t.category = "电费";
    t.region = "CN-31";
    t.severity = "major";
    t.channel = "regulator";
    assert_int_equal(route(&t, "rule:r-cat"), T_BILL_A);
    t.category = "";
    assert_int_equal(route(&t, "rule:r-region"), T_GRID_A);
    t.region = "";
    assert_int_equal(route(&t, "rule:r-sev"), T_GRID_B);
    t.severity = "general";
    assert_int_equal(route(&t, "rule:r-chan"), T_CENTRE);

    /* the same rules in another order decide otherwise */
    dp_rule reversed[] = {rules[6], rules[5], rules[4], rules[3]};
    org.rules = reversed;
    org.nrules = 4;
    t = mk();
    t.category = "电费";
    t.region = "CN-31";
    t.severity = "major";
    t.channel = "regulator";
    assert_int_equal(route(&t, "rule:r-chan"), T_CENTRE);
    t.channel = "web";
    assert_int_equal(route(&t, "rule:r-sev"), T_GRID_B);
}

static void test_route_unset_conditions(void **state)
{
    /* NULL and "" conditions match anything, including a ticket whose fields are all unset */
    dp_rule catchAll[] = {
        {.name = "r-empty",
         .business_type = "",
         .category_prefix = "",
         .region_prefix = "",
         .severity = "",
         .channel = "",
         .team = T_GRID_A},
    };
    dp_rule catchNull[] = {{.name = "r-null", .team = T_BILL_B}};
    dp_ticket t = mk();
    org.rules = catchAll;
    org.nrules = 1;
    assert_int_equal(route(&t, "rule:r-empty"), T_GRID_A);
    t.business_type = "complaint";
    t.category = "电费";
    t.region = "CN-31";
    t.severity = "major";
    t.channel = "hotline";
    assert_int_equal(route(&t, "rule:r-empty"), T_GRID_A);
    org.rules = catchNull;
    assert_int_equal(route(&t, "rule:r-null"), T_BILL_B);
    t = mk();
    assert_int_equal(route(&t, "rule:r-null"), T_BILL_B);

    /* a set condition never matches an unset ticket field */
    dp_rule needs[] = {
        {.name = "r-needs-bt", .business_type = "complaint", .team = T_BILL_A},
        {.name = "r-needs-cat", .category_prefix = "电", .team = T_BILL_A},
        {.name = "r-needs-region", .region_prefix = "CN", .team = T_BILL_A},
    };
    org.rules = needs;
    org.nrules = 3;
    t = mk();
    assert_int_equal(route(&t, "centre"), T_CENTRE);
}

static void test_route_dead_rules_and_no_centre(void **state)
{
    /* only rules whose team is gone: skipped, the centre gets the ticket */
    dp_rule dead[] = {{.name = "r-dead1", .team = -1}, {.name = "r-dead2", .channel = "web", .team = -1}};
    org.rules = dead;
    org.nrules = 2;
    dp_ticket t = mk();
    assert_int_equal(route(&t, "centre"), T_CENTRE);

    /* no rules at all */
    org.nrules = 0;
    assert_int_equal(route(&t, "centre"), T_CENTRE);

    /* an organisation without teams: -1, also for a named unit */
    dp_org empty = {.centre_team = -1};
    const char *why = NULL;
    assert_int_equal(dp_route(&empty, &t, &why), -1);
    assert_string_equal(why, "centre");
    t.route_to_unit = "T-grid-a";
    assert_int_equal(dp_route(&empty, &t, &why), -1);
    assert_string_equal(why, "unknown unit -> centre");
}

static void test_route_long_rule_name(void **state)
{
    /* *why is bounded; a very long rule name is cut, never overflows */
    char name[400];
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    dp_rule longName[] = {{.name = name, .team = T_BILL_A}};
    org.rules = longName;
    org.nrules = 1;
    dp_ticket t = mk();
    const char *why = NULL;
    assert_int_equal(dp_route(&org, &t, &why), T_BILL_A);
    assert_true(strncmp(why, "rule:xxxx", 9) == 0);
    assert_true(strlen(why) < 192);
}

/* ---- dp_agent_skilled ---------------------------------------------------------------------- */

static void test_skilled_any(void **state)
{
    dp_ticket t = mk();
    t.business_type = "complaint";
    t.category = "停电/计划停电";
    t.language = "en-GB";
    t.region = "CN-44";
    /* empty arrays and NULL arrays: any */
    assert_true(dp_agent_skilled(&agents[A_GRID3], &t));
    assert_true(dp_agent_skilled(&agents[A_BILL4], &t));
    /* a ticket that asks for nothing: every agent, whatever their skills */
    t = mk();
    for (int i = 0; i < NAGENTS; i++)
        assert_true(dp_agent_skilled(&agents[i], &t));
}

static void test_skilled_business_type(void **state)
{
    const dp_agent *a = &agents[A_BILL1]; /* complaint, 电费|电价, zh */
    dp_ticket t = mk();
    t.business_type = "complaint";
    assert_true(dp_agent_skilled(a, &t));
    t.business_type = "complaint_major"; /* exact, not prefix */
    assert_false(dp_agent_skilled(a, &t));
    t.business_type = "compl";
    assert_false(dp_agent_skilled(a, &t));
    t.business_type = "consultation";
    assert_false(dp_agent_skilled(a, &t));
    t.business_type = "";
    assert_true(dp_agent_skilled(a, &t));
}

static void test_skilled_category(void **state)
{
    const dp_agent *a = &agents[A_BILL1];
    dp_ticket t = mk();
    t.category = "电费";
    assert_true(dp_agent_skilled(a, &t));
    t.category = "电费/多收";
    assert_true(dp_agent_skilled(a, &t));
    t.category = "电价调整"; /* the second prefix */
    assert_true(dp_agent_skilled(a, &t));
    t.category = "电"; /* shorter than both prefixes */
    assert_false(dp_agent_skilled(a, &t));
    t.category = "停电";
    assert_false(dp_agent_skilled(a, &t));
    t.category = "billing";
    assert_false(dp_agent_skilled(a, &t));
    t.category = "";
    assert_true(dp_agent_skilled(a, &t));
}

static void test_skilled_language_region(void **state)
{
    const dp_agent *a = &agents[A_BILL1]; /* languages zh */
    dp_ticket t = mk();
    t.language = "zh-CN";
    assert_true(dp_agent_skilled(a, &t));
    t.language = "zh";
    assert_true(dp_agent_skilled(a, &t));
    t.language = "zh-Hant-TW";
    assert_true(dp_agent_skilled(a, &t));
    t.language = "en-US";
    assert_false(dp_agent_skilled(a, &t));
    t.language = "z";
    assert_false(dp_agent_skilled(a, &t));

    /* the prefix is the agent's: an agent who speaks zh-CN does not match a ticket in "zh" */
    char *zhCN[] = {"zh-CN", NULL};
    dp_agent b = agents[A_GRID3];
    b.languages = zhCN;
    t.language = "zh";
    assert_false(dp_agent_skilled(&b, &t));
    t.language = "zh-CN";
    assert_true(dp_agent_skilled(&b, &t));

    const dp_agent *g = &agents[A_GRID1]; /* regions CN-31 */
    t = mk();
    t.region = "CN-3101";
    assert_true(dp_agent_skilled(g, &t));
    t.region = "CN-32";
    assert_false(dp_agent_skilled(g, &t));
    t.region = "";
    assert_true(dp_agent_skilled(g, &t));
}

static void test_skilled_all_required(void **state)
{
    const dp_agent *a = &agents[A_BILL1]; /* complaint, 电费|电价, zh, any region */
    dp_ticket t = mk();
    t.business_type = "complaint";
    t.category = "电费/多收";
    t.language = "zh-CN";
    t.region = "CN-99";
    assert_true(dp_agent_skilled(a, &t));
    t.language = "en";
    assert_false(dp_agent_skilled(a, &t)); /* one missing skill is enough to rule the agent out */
    t.language = "zh-CN";
    t.business_type = "consultation";
    assert_false(dp_agent_skilled(a, &t));
    t.business_type = "complaint";
    t.category = "停电";
    assert_false(dp_agent_skilled(a, &t));
}

/* ---- dp_candidates ------------------------------------------------------------------------- */

static void test_candidates_filters(void **state)
{
    int out[16];
    dp_ticket t = mk();
    /* T_BILL_A: a-bill-2 has capacity 0, a-bill-3 is inactive */
    int n = dp_candidates(&org, T_BILL_A, &t, out, 16);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], A_BILL1);
    assert_int_equal(out[1], A_BILL4);

    /* skills: a ticket in English leaves a-bill-1 (zh) out */
    t.language = "en";
    n = dp_candidates(&org, T_BILL_A, &t, out, 16);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], A_BILL4);

    /* excluded agents (they missed accepting it) */
    t = mk();
    char *ex[] = {"a-bill-4", "a-grid-9", NULL};
    t.excluded = ex;
    n = dp_candidates(&org, T_BILL_A, &t, out, 16);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], A_BILL1);
    char *exAll[] = {"a-bill-1", "a-bill-4", NULL};
    t.excluded = exAll;
    assert_int_equal(dp_candidates(&org, T_BILL_A, &t, out, 16), 0);
    char *exNone[] = {NULL};
    t.excluded = exNone;
    assert_int_equal(dp_candidates(&org, T_BILL_A, &t, out, 16), 2);

    /* no such team */
    t = mk();
    assert_int_equal(dp_candidates(&org, -1, &t, out, 16), 0);
    assert_int_equal(dp_candidates(&org, NTEAMS, &t, out, 16), 0);
}

/* Agents with a calendar are candidates only in its working hours (when the ticket says when). */
static void test_candidates_calendar(void **state)
{
    static const char day[] = "[\"09:00-12:00\", \"13:00-17:00\"]";
    char json[1024], err[256];
    snprintf(json, sizeof(json),
             "{\"id\": \"office\", \"time_zone\": \"Asia/Shanghai\", \"week\": {\"mon\": %s, \"tue\": %s, "
             "\"wed\": %s, \"thu\": %s, \"fri\": %s, \"sat\": [], \"sun\": []}, \"holidays\": [\"2026-10-01\"]}",
             day, day, day, day, day);
    rd_calendar *cal = rd_calendar_parse(json, strlen(json), err, sizeof(err));
    if (cal == NULL)
        fail_msg("calendar: %s", err);
    agents[A_BILL1].calendar = cal; /* a-bill-4 keeps no calendar: whenever online */
    int out[16];
    dp_ticket t = mk();
    /* Monday 2026-11-23 10:00 in Shanghai (02:00 UTC): working */
    t.now_ms = rd_calendar_from_local(cal, 2026, 11, 23, 10, 0, 0);
    assert_int_equal(dp_candidates(&org, T_BILL_A, &t, out, 16), 2);
    /* 12:30, the lunch break; 20:00; Saturday; a holiday: a-bill-1 is not a candidate */
    const int64_t off[] = {
        rd_calendar_from_local(cal, 2026, 11, 23, 12, 30, 0), rd_calendar_from_local(cal, 2026, 11, 23, 20, 0, 0),
        rd_calendar_from_local(cal, 2026, 11, 28, 10, 0, 0), rd_calendar_from_local(cal, 2026, 10, 1, 10, 0, 0)};
    for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
        t.now_ms = off[i];
        assert_int_equal(dp_candidates(&org, T_BILL_A, &t, out, 16), 1);
        assert_int_equal(out[0], A_BILL4);
    }
    /* no time given: calendars are not consulted */
    t.now_ms = 0;
    assert_int_equal(dp_candidates(&org, T_BILL_A, &t, out, 16), 2);
    agents[A_BILL1].calendar = NULL;
    rd_calendar_free(cal);
}

static void test_candidates_overflow(void **state)
{
    int out[16];
    dp_ticket t = mk();
    /* T_GRID_A overflows to T_GRID_B after 300 s */
    t.waiting_s = 299;
    int n = dp_candidates(&org, T_GRID_A, &t, out, 16);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], A_GRID1);
    assert_int_equal(out[1], A_GRID2);
    assert_int_equal(out[2], A_GRID3);

    t.waiting_s = 300;
    n = dp_candidates(&org, T_GRID_A, &t, out, 16);
    assert_int_equal(n, 5); /* team order, then the overflow team */
    assert_int_equal(out[0], A_GRID1);
    assert_int_equal(out[1], A_GRID2);
    assert_int_equal(out[2], A_GRID3);
    assert_int_equal(out[3], A_GRIDB1);
    assert_int_equal(out[4], A_GRIDB2);

    /* the overflow team's agents are filtered too */
    t.waiting_s = 100000;
    t.region = "CN-31"; /* a-gridb-2 covers CN-32 only */
    char *ex[] = {"a-grid-3", NULL};
    t.excluded = ex;
    n = dp_candidates(&org, T_GRID_A, &t, out, 16);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], A_GRID1);
    assert_int_equal(out[1], A_GRID2);
    assert_int_equal(out[2], A_GRIDB1);

    /* the overflow relation is one way: T_GRID_B has none */
    t = mk();
    t.waiting_s = 100000;
    assert_int_equal(dp_candidates(&org, T_GRID_B, &t, out, 16), 2);

    /* a team that names itself as overflow team is not listed twice, even at overflow_after_s 0 */
    n = dp_candidates(&org, T_SELF, &t, out, 16);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], A_SELF1);
}

static void test_candidates_max(void **state)
{
    int out[16];
    for (int i = 0; i < 16; i++)
        out[i] = -7;
    dp_ticket t = mk();
    t.waiting_s = 300;
    assert_int_equal(dp_candidates(&org, T_GRID_A, &t, out, 0), 0);
    assert_int_equal(out[0], -7);
    assert_int_equal(dp_candidates(&org, T_GRID_A, &t, out, 1), 1);
    assert_int_equal(out[0], A_GRID1);
    assert_int_equal(out[1], -7);
    /* max cuts into the overflow team */
    assert_int_equal(dp_candidates(&org, T_GRID_A, &t, out, 4), 4);
    assert_int_equal(out[3], A_GRIDB1);
    assert_int_equal(out[4], -7);
    /* max reached inside the team: no overflow agent at all */
    for (int i = 0; i < 16; i++)
        out[i] = -7;
    assert_int_equal(dp_candidates(&org, T_GRID_A, &t, out, 3), 3);
    assert_int_equal(out[2], A_GRID3);
    assert_int_equal(out[3], -7);
}

/* ---- dp_weight, dp_accept_limit ------------------------------------------------------------ */

static void test_weight(void **state)
{
    dp_ticket t = mk();
    assert_int_equal(dp_weight(&org, T_GRID_A, &t), 1); /* general */
    t.severity = "major";
    assert_int_equal(dp_weight(&org, T_GRID_A, &t), 3); /* major × major_weight 3 */
    assert_int_equal(dp_weight(&org, T_BILL_A, &t), 1); /* major_weight 1 */
    assert_int_equal(dp_weight(&org, -1, &t), 1);
    assert_int_equal(dp_weight(&org, NTEAMS, &t), 1);
    teams[T_BILL_A].major_weight = 100;
    assert_int_equal(dp_weight(&org, T_BILL_A, &t), 100);
    t.severity = "";
    assert_int_equal(dp_weight(&org, T_BILL_A, &t), 1);
    t.severity = "Major";
    assert_int_equal(dp_weight(&org, T_BILL_A, &t), 1);
}

static void test_accept_limit(void **state)
{
    dp_ticket t = mk();
    /* its own business type beats '*', wherever either stands in the list */
    t.business_type = "fault_repair";
    assert_int_equal(dp_accept_limit(&org, &t), 300);
    t.transferred = true;
    assert_int_equal(dp_accept_limit(&org, &t), 900);
    t.business_type = "consultation"; /* listed after '*' */
    assert_int_equal(dp_accept_limit(&org, &t), 700);
    t.transferred = false;
    assert_int_equal(dp_accept_limit(&org, &t), 600);
    /* other types, and unset: '*' */
    t.business_type = "complaint";
    assert_int_equal(dp_accept_limit(&org, &t), 1200);
    t.transferred = true;
    assert_int_equal(dp_accept_limit(&org, &t), 3600);
    t.business_type = "";
    assert_int_equal(dp_accept_limit(&org, &t), 3600);
    t.transferred = false;
    assert_int_equal(dp_accept_limit(&org, &t), 1200);
    t.business_type = "fault"; /* exact match, not prefix */
    assert_int_equal(dp_accept_limit(&org, &t), 1200);

    /* no '*' and no own limit: 1800, transferred or not */
    org.limits = limits;
    org.nlimits = 1; /* fault_repair only */
    t.business_type = "complaint";
    assert_int_equal(dp_accept_limit(&org, &t), 1800);
    t.transferred = true;
    assert_int_equal(dp_accept_limit(&org, &t), 1800);
    t.business_type = "fault_repair";
    assert_int_equal(dp_accept_limit(&org, &t), 900);

    /* no limits at all */
    org.nlimits = 0;
    assert_int_equal(dp_accept_limit(&org, &t), 1800);
    t.transferred = false;
    assert_int_equal(dp_accept_limit(&org, &t), 1800);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_route_unit, setup),
        cmocka_unit_test_setup(test_route_unit_beats_rules, setup),
        cmocka_unit_test_setup(test_route_each_condition, setup),
        cmocka_unit_test_setup(test_route_order, setup),
        cmocka_unit_test_setup(test_route_unset_conditions, setup),
        cmocka_unit_test_setup(test_route_dead_rules_and_no_centre, setup),
        cmocka_unit_test_setup(test_route_long_rule_name, setup),
        cmocka_unit_test_setup(test_skilled_any, setup),
        cmocka_unit_test_setup(test_skilled_business_type, setup),
        cmocka_unit_test_setup(test_skilled_category, setup),
        cmocka_unit_test_setup(test_skilled_language_region, setup),
        cmocka_unit_test_setup(test_skilled_all_required, setup),
        cmocka_unit_test_setup(test_candidates_filters, setup),
        cmocka_unit_test_setup(test_candidates_calendar, setup),
        cmocka_unit_test_setup(test_candidates_overflow, setup),
        cmocka_unit_test_setup(test_candidates_max, setup),
        cmocka_unit_test_setup(test_weight, setup),
        cmocka_unit_test_setup(test_accept_limit, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
