/*
 * ctl_taxonomy.c -- redressctl taxonomy load|show: the category tree (taxonomy_categories,
 * deploy/sql/0002_classifier.sql) that the classifier's categories come from.
 *
 * taxonomy load reads a CSV whose columns are the levels from the top down (a header row names
 * them, e.g. 一级分类,二级分类,三级分类, or Product,Issue). Every row is a path; a row may stop
 * early (trailing empty cells), but not skip a level. Each category's code is its path joined
 * with " / " ("城乡建设 / 安全生产 / 事故处理"), so codes are unique, readable and say where the
 * category sits; its parent_code is the parent's path, its level the depth, its name the last
 * element. A level-1 code is the bare name, which is what a model trained on the first level
 * predicts.
 *
 * The whole file is checked before the database is touched. Then, in one transaction, the table
 * is made to hold every category of the file: new ones inserted, equal ones left alone (loading
 * the same file twice changes nothing), rows with the same code but another parent, level or
 * name corrected. With --replace, categories the file does not have are deleted -- refused, with
 * nothing changed, while ticket_classifications.category still names one of them (a plain text
 * column without a foreign key, so the check is ours). --dry-run does all of it and rolls back.
 */
#include <csv.h>
#include <getopt.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_envelope.h"
#include "rd_pg.h"
#include "redressctl.h"

#define TAX_MAX_LEVELS 8   /* taxonomy_categories.level is 1..8 */
#define TAX_MAX_NAME   256 /* bytes of one category name */
#define TAX_SEP        " / "

enum { OPT_TAX_DRY_RUN = OPT_LOCAL, OPT_TAX_REPLACE, OPT_TAX_FORMAT };

/* clang-format off */
const char help_taxonomy[] =
    "usage: redressctl taxonomy load FILE [--dry-run] [--replace]\n"
    "       redressctl taxonomy show [--format table|json]\n"
    "\n"
    "The category tree the classifier's categories come from (table taxonomy_categories).\n"
    "\n"
    "  load FILE     read a CSV whose columns are the levels from the top down, with a header row\n"
    "                (e.g. 一级分类,二级分类,三级分类 or Product,Issue; at most 8 levels); FILE may\n"
    "                be '-' (standard input). Each row is a path; trailing cells may be empty, a\n"
    "                gap in the middle is an error. A category's code is its path joined with\n"
    "                ' / ' ('城乡建设 / 安全生产 / 事故处理'), its parent the parent's path, its\n"
    "                level the depth. The file is checked completely (UTF-8, gaps, names), then\n"
    "                stored in one transaction: new categories added, equal ones kept (loading a\n"
    "                file twice changes nothing). Prints added / kept / changed / removed per level.\n"
    "    --replace   also delete the categories the file does not have; refused (nothing changes)\n"
    "                while a ticket's classification still names one of them\n"
    "    --dry-run   do all of it, then roll back\n"
    "  show          the tree, depth first, with the number of children of each category\n"
    "    --format table|json   [table]\n"
    "\n"
    "Exit status: 0 done, 1 refused (a bad file, categories in use), 2 usage or unreadable file,\n"
    "3 database unreachable.\n"
    "\n"
    "Examples:\n"
    "  redressctl taxonomy load ../shared/datasets/teddy2020/taxonomy.csv --dry-run\n"
    "  redressctl taxonomy load taxonomy.csv --replace\n"
    "  redressctl taxonomy show --format json\n";
/* clang-format on */

/* ------------------------------------------------------------------------------------------------
 * The file
 * --------------------------------------------------------------------------------------------- */

typedef struct {
    char *code, *parent; /* parent NULL at level 1 */
    int level;
    const char *name; /* points into code */
} category;

typedef struct {
    int nlevels;
    char *level_names[TAX_MAX_LEVELS];
    category *cats;
    size_t n, cap;
} taxonomy;

/* The CSV parser's state: the current record's cells and where we are in the file. */
typedef struct {
    taxonomy *t;
    const char *path;
    long line;    /* the line being parsed (1-based) */
    size_t ncell; /* cells of the current record so far */
    char *cell[TAX_MAX_LEVELS];
    bool extra;   /* a non-empty cell beyond the header's columns */
    long records; /* header included */
    bool failed, oom;
} tax_reader;

static void tax_error(tax_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tax_error(tax_reader *r, const char *fmt, ...)
{
    va_list ap;

    if (r->failed)
        return;
    r->failed = true;
    fprintf(stderr, "error: %s: line %ld: ", r->path, r->line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* A cell without surrounding blanks (and, in the header's first cell, without a BOM). */
static char *cell_dup(const char *s, size_t n, bool bom)
{
    if (bom && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3, n -= 3;
    while (n > 0 && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void on_cell(void *s, size_t n, void *arg)
{
    tax_reader *r = arg;
    size_t col = r->ncell++;

    if (r->failed)
        return;
    if (!rd_utf8_valid(s, n)) {
        tax_error(r, "column %zu is not valid UTF-8", col + 1);
        return;
    }
    if (col >= TAX_MAX_LEVELS || (r->records > 0 && col >= (size_t)r->t->nlevels)) {
        for (size_t i = 0; i < n; i++)
            if (((const char *)s)[i] != ' ' && ((const char *)s)[i] != '\t' && ((const char *)s)[i] != '\r')
                r->extra = true;
        return;
    }
    if ((r->cell[col] = cell_dup(s, n, r->records == 0 && col == 0)) == NULL)
        r->oom = r->failed = true;
}

static bool tax_push(taxonomy *t, char *code, char *parent, int level)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        category *c = realloc(t->cats, cap * sizeof(*c));
        if (c == NULL)
            return false;
        t->cats = c;
        t->cap = cap;
    }
    category *c = &t->cats[t->n++];
    c->code = code;
    c->parent = parent;
    c->level = level;
    c->name = level == 1 ? code : code + strlen(parent) + strlen(TAX_SEP);
    return true;
}

/* The header: names the levels. */
static void tax_header(tax_reader *r)
{
    taxonomy *t = r->t;

    if (r->extra || r->ncell > TAX_MAX_LEVELS) {
        tax_error(r, "the header has more than %d columns (levels)", TAX_MAX_LEVELS);
        return;
    }
    for (size_t c = 0; c < r->ncell; c++) {
        if (r->cell[c] == NULL || r->cell[c][0] == '\0') {
            tax_error(r, "header column %zu is empty: name every level", c + 1);
            return;
        }
        t->level_names[c] = r->cell[c];
        r->cell[c] = NULL;
    }
    t->nlevels = (int)r->ncell;
}

/* One row: the categories of its path, from level 1 down (duplicates are removed later). */
static void tax_row(tax_reader *r)
{
    taxonomy *t = r->t;
    int depth = 0;

    if (r->extra) {
        tax_error(r, "more cells than the header's %d columns", t->nlevels);
        return;
    }
    for (int c = 0; c < t->nlevels; c++) {
        const char *v = r->cell[c];
        bool empty = v == NULL || v[0] == '\0';
        if (!empty && depth < c) {
            tax_error(r, "column %d (%s) is empty but column %d (%s) is not: a path may not skip a level", depth + 1,
                      t->level_names[depth], c + 1, t->level_names[c]);
            return;
        }
        if (empty)
            continue;
        if (!rd_text_valid(v, strlen(v), false) || strlen(v) > TAX_MAX_NAME || strstr(v, TAX_SEP) != NULL) {
            tax_error(r, "column %d (%s): a name is one line of at most %d bytes without control characters or '%s'",
                      c + 1, t->level_names[c], TAX_MAX_NAME, TAX_SEP);
            return;
        }
        depth = c + 1;
    }
    char *parent = NULL;
    for (int d = 1; d <= depth; d++) {
        size_t len = (parent != NULL ? strlen(parent) + strlen(TAX_SEP) : 0) + strlen(r->cell[d - 1]);
        char *code = malloc(len + 1);
        if (code == NULL) {
            r->oom = r->failed = true;
            return;
        }
        snprintf(code, len + 1, "%s%s%s", parent != NULL ? parent : "", parent != NULL ? TAX_SEP : "", r->cell[d - 1]);
        char *pcopy = parent != NULL ? strdup(parent) : NULL;
        if ((parent != NULL && pcopy == NULL) || !tax_push(t, code, pcopy, d)) {
            free(code);
            free(pcopy);
            r->oom = r->failed = true;
            return;
        }
        parent = code;
    }
}

static void on_record(int term, void *arg)
{
    tax_reader *r = arg;
    bool blank = true;

    (void)term;
    for (size_t c = 0; c < TAX_MAX_LEVELS; c++)
        if (r->cell[c] != NULL && r->cell[c][0] != '\0')
            blank = false;
    if (!r->failed && r->records == 0)
        tax_header(r);
    else if (!r->failed && (!blank || r->extra))
        tax_row(r);
    for (size_t c = 0; c < TAX_MAX_LEVELS; c++) {
        free(r->cell[c]);
        r->cell[c] = NULL;
    }
    r->ncell = 0;
    r->extra = false;
    r->records++;
}

static int cat_cmp(const void *a, const void *b)
{
    return strcmp(((const category *)a)->code, ((const category *)b)->code);
}

static void tax_free(taxonomy *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->cats[i].code);
        free(t->cats[i].parent);
    }
    for (int l = 0; l < TAX_MAX_LEVELS; l++)
        free(t->level_names[l]);
    free(t->cats);
    memset(t, 0, sizeof(*t));
}

/* Sorts by code and drops repeats (every row repeats its ancestors). */
static void tax_dedupe(taxonomy *t)
{
    size_t k = 0;

    qsort(t->cats, t->n, sizeof(*t->cats), cat_cmp);
    for (size_t i = 0; i < t->n; i++) {
        if (k > 0 && strcmp(t->cats[k - 1].code, t->cats[i].code) == 0) {
            free(t->cats[i].code);
            free(t->cats[i].parent);
            continue;
        }
        t->cats[k++] = t->cats[i];
    }
    t->n = k;
}

/* Reads and checks FILE; on failure prints why and sets *rc (2 unreadable, 1 invalid). */
static bool tax_read(const char *path, taxonomy *t, int *rc)
{
    char err[600];
    size_t len;
    char *text = read_all(path, &len, err, sizeof(err));
    struct csv_parser p;
    tax_reader r;

    memset(t, 0, sizeof(*t));
    if (text == NULL) {
        fprintf(stderr, "error: %s\n", err);
        *rc = EXIT_USAGE;
        return false;
    }
    memset(&r, 0, sizeof(r));
    r.t = t;
    r.path = path;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0) {
        free(text);
        fprintf(stderr, "error: out of memory\n");
        *rc = EXIT_NACK;
        return false;
    }
    /* Line by line, so that an error can name its line. */
    for (size_t at = 0; at < len && !r.failed;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t n = nl != NULL ? (size_t)(nl - (text + at)) + 1 : len - at;
        r.line++;
        if (csv_parse(&p, text + at, n, on_cell, on_record, &r) != n)
            tax_error(&r, "CSV: %s", csv_strerror(csv_error(&p)));
        at += n;
    }
    if (!r.failed && csv_fini(&p, on_cell, on_record, &r) != 0)
        tax_error(&r, "CSV: %s", csv_strerror(csv_error(&p)));
    csv_free(&p);
    for (size_t c = 0; c < TAX_MAX_LEVELS; c++)
        free(r.cell[c]);
    free(text);
    if (r.oom)
        fprintf(stderr, "error: out of memory\n");
    else if (!r.failed && r.records == 0)
        fprintf(stderr, "error: %s: the file is empty (a header row naming the levels is required)\n", path);
    else if (!r.failed && t->n == 0)
        fprintf(stderr, "error: %s: no categories below the header\n", path);
    if (r.failed || r.records == 0 || t->n == 0) {
        tax_free(t);
        *rc = EXIT_NACK;
        return false;
    }
    tax_dedupe(t);
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * The database
 * --------------------------------------------------------------------------------------------- */

static PGresult *tax_exec(PGconn *conn, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    fprintf(stderr, "error: %s", PQresultErrorMessage(res));
    PQclear(res);
    return NULL;
}

static bool tax_exec_ok(PGconn *conn, const char *sql, int n, const char *const *params)
{
    PGresult *res = tax_exec(conn, sql, n, params);

    PQclear(res);
    return res != NULL;
}

typedef struct {
    int added, kept, changed, removed;
} level_counts;

typedef struct {
    level_counts level[TAX_MAX_LEVELS + 1]; /* [0]: levels beyond the file's (removed ones) */
    int outside;                            /* in the table, not in the file, not removed */
} tax_changes;

/* Level of a stored row, clamped for counting. */
static int row_level(const PGresult *res, int i)
{
    int l = atoi(PQgetvalue(res, i, 2));
    return l >= 1 && l <= TAX_MAX_LEVELS ? l : 0;
}

/* Finds code among the stored rows (sorted by code, byte order); -1 when absent. */
static int stored_find(const PGresult *res, const char *code)
{
    int lo = 0, hi = PQntuples(res) - 1;

    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(PQgetvalue(res, mid, 0), code);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static bool stored_same(const PGresult *res, int i, const category *c)
{
    const char *parent = PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1);

    return atoi(PQgetvalue(res, i, 2)) == c->level && strcmp(PQgetvalue(res, i, 3), c->name) == 0 &&
           ((parent == NULL && c->parent == NULL) ||
            (parent != NULL && c->parent != NULL && strcmp(parent, c->parent) == 0));
}

/* Is code one of the file's categories (sorted by code)? */
static bool tax_has(const taxonomy *t, const char *code)
{
    category key = {.code = (char *)code};

    return bsearch(&key, t->cats, t->n, sizeof(*t->cats), cat_cmp) != NULL;
}

/* Refuses (false) when a ticket's classification names a category about to be removed. */
static bool removable(PGconn *conn, const char *codes, bool *in_use)
{
    const char *params[1] = {codes};
    PGresult *res = tax_exec(conn,
                             "SELECT category, count(*) FROM ticket_classifications WHERE category = ANY($1::text[])"
                             " GROUP BY category ORDER BY count(*) DESC, category LIMIT 10",
                             1, params);

    if (res == NULL)
        return false;
    *in_use = PQntuples(res) > 0;
    if (*in_use) {
        fprintf(stderr, "error: --replace would remove categories that classified tickets still name:\n");
        for (int i = 0; i < PQntuples(res); i++)
            fprintf(stderr, "  %s (%s tickets)\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
        fprintf(stderr, "nothing was changed; keep them in the file, or reclassify those tickets first\n");
    }
    PQclear(res);
    return true;
}

/* Stores t in the open transaction; counts what changed. False after printing why. */
static bool tax_store(PGconn *conn, const taxonomy *t, bool replace, tax_changes *ch, bool *refused)
{
    PGresult *cur = tax_exec(conn,
                             "SELECT code, parent_code, level, name FROM taxonomy_categories"
                             " ORDER BY code COLLATE \"C\"",
                             0, NULL);
    rd_pgarr codes, parents, levels, names, gone;
    bool ok = cur != NULL;

    memset(ch, 0, sizeof(*ch));
    *refused = false;
    if (!ok)
        return false;
    rd_pgarr_init(&codes);
    rd_pgarr_init(&parents);
    rd_pgarr_init(&levels);
    rd_pgarr_init(&names);
    rd_pgarr_init(&gone);
    for (size_t i = 0; i < t->n; i++) {
        const category *c = &t->cats[i];
        int at = stored_find(cur, c->code);
        if (at >= 0 && stored_same(cur, at, c)) {
            ch->level[c->level].kept++;
            continue;
        }
        if (at >= 0)
            ch->level[c->level].changed++;
        else
            ch->level[c->level].added++;
        rd_pgarr_str(&codes, c->code);
        rd_pgarr_str(&parents, c->parent != NULL ? c->parent : "");
        rd_pgarr_int(&levels, c->level);
        rd_pgarr_str(&names, c->name);
    }
    for (int i = 0; i < PQntuples(cur); i++) {
        if (tax_has(t, PQgetvalue(cur, i, 0)))
            continue;
        if (!replace) {
            ch->outside++;
            continue;
        }
        ch->level[row_level(cur, i)].removed++;
        rd_pgarr_str(&gone, PQgetvalue(cur, i, 0));
    }
    if (codes.n > 0) {
        const char *params[4] = {rd_pgarr_finish(&codes), rd_pgarr_finish(&parents), rd_pgarr_finish(&levels),
                                 rd_pgarr_finish(&names)};
        ok = tax_exec_ok(
            conn,
            "INSERT INTO taxonomy_categories (code, parent_code, level, name)"
            " SELECT code, NULLIF(parent, ''), level, name"
            "   FROM unnest($1::text[], $2::text[], $3::smallint[], $4::text[]) AS f(code, parent, level, name)"
            "  ORDER BY level"
            " ON CONFLICT (code) DO UPDATE SET parent_code = EXCLUDED.parent_code,"
            "   level = EXCLUDED.level, name = EXCLUDED.name",
            4, params);
    }
    if (ok && gone.n > 0) {
        const char *params[1] = {rd_pgarr_finish(&gone)};
        bool in_use = false;
        ok = removable(conn, params[0], &in_use);
        if (ok && in_use) {
            ok = false;
            *refused = true;
        }
        /* Children first is not needed: the foreign key is checked at the end of the statement. */
        ok = ok && tax_exec_ok(conn, "DELETE FROM taxonomy_categories WHERE code = ANY($1::text[])", 1, params);
    }
    rd_pgarr_free(&codes);
    rd_pgarr_free(&parents);
    rd_pgarr_free(&levels);
    rd_pgarr_free(&names);
    rd_pgarr_free(&gone);
    PQclear(cur);
    return ok;
}

static void tax_print_summary(const char *path, const taxonomy *t, const tax_changes *ch, bool replace, bool dry_run)
{
    level_counts sum = {0};
    int per_level[TAX_MAX_LEVELS + 1] = {0};

    for (size_t i = 0; i < t->n; i++)
        per_level[t->cats[i].level]++;
    printf("%s: %d level%s, %zu categories (", path, t->nlevels, t->nlevels == 1 ? "" : "s", t->n);
    for (int l = 1; l <= t->nlevels; l++)
        printf("%s%s %d", l > 1 ? ", " : "", t->level_names[l - 1], per_level[l]);
    printf(")\n%-6s %7s %7s %7s %7s  %s\n", "level", "added", "kept", "changed", "removed", "column");
    for (int l = 0; l <= TAX_MAX_LEVELS; l++) {
        const level_counts *c = &ch->level[l];
        if (l > t->nlevels && c->removed == 0)
            continue;
        if (l == 0 && c->removed == 0)
            continue;
        char lv[8];
        snprintf(lv, sizeof(lv), l == 0 ? "?" : "%d", l);
        printf("%-6s %7d %7d %7d %7d  %s\n", lv, c->added, c->kept, c->changed, c->removed,
               l >= 1 && l <= t->nlevels ? t->level_names[l - 1] : "-");
        sum.added += c->added;
        sum.kept += c->kept;
        sum.changed += c->changed;
        sum.removed += c->removed;
    }
    printf("%-6s %7d %7d %7d %7d\n", "total", sum.added, sum.kept, sum.changed, sum.removed);
    if (!replace && ch->outside > 0)
        printf("%d categor%s in the table but not in the file left as they are (--replace removes them)\n", ch->outside,
               ch->outside == 1 ? "y" : "ies");
    if (dry_run)
        printf("dry run: rolled back, nothing changed\n");
}

static int tax_load(const globals *g, const char *path, bool dry_run, bool replace)
{
    taxonomy t;
    tax_changes ch;
    bool refused = false;
    int rc = EXIT_ACK;

    if (!tax_read(path, &t, &rc))
        return rc;
    PGconn *conn = db_connect(g);
    if (conn == NULL) {
        rc = EXIT_UNREACHABLE;
    } else if (!tax_exec_ok(conn, "BEGIN", 0, NULL) ||
               !tax_exec_ok(conn, "LOCK TABLE taxonomy_categories IN SHARE ROW EXCLUSIVE MODE", 0, NULL)) {
        rc = PQstatus(conn) == CONNECTION_OK ? EXIT_NACK : EXIT_UNREACHABLE;
    } else {
        bool ok =
            tax_store(conn, &t, replace, &ch, &refused) &&
            ctl_audit_record(conn, g, "taxonomy.load", "taxonomy", path, replace ? "{\"replace\": true}" : NULL) &&
            tax_exec_ok(conn, dry_run ? "ROLLBACK" : "COMMIT", 0, NULL);
        if (ok)
            tax_print_summary(path, &t, &ch, replace, dry_run);
        else
            tax_exec_ok(conn, "ROLLBACK", 0, NULL);
        rc = ok ? EXIT_ACK : refused || PQstatus(conn) == CONNECTION_OK ? EXIT_NACK : EXIT_UNREACHABLE;
    }
    PQfinish(conn);
    tax_free(&t);
    return rc;
}

/* ------------------------------------------------------------------------------------------------
 * show
 * --------------------------------------------------------------------------------------------- */

static int tax_show(const globals *g, bool as_json)
{
    PGconn *conn = db_connect(g);
    int rc = EXIT_ACK;

    if (conn == NULL)
        return EXIT_UNREACHABLE;
    /* Depth first: by the path's elements, so a sibling whose name sorts before ' / ' cannot
     * come between a category and its children. */
    PGresult *res = tax_exec(conn,
                             "SELECT c.code, c.parent_code, c.level, c.name,"
                             "       (SELECT count(*) FROM taxonomy_categories k WHERE k.parent_code = c.code)"
                             "  FROM taxonomy_categories c"
                             " ORDER BY string_to_array(c.code, ' / ') COLLATE \"C\"",
                             0, NULL);
    if (res == NULL) {
        rc = PQstatus(conn) == CONNECTION_OK ? EXIT_NACK : EXIT_UNREACHABLE;
        PQfinish(conn);
        return rc;
    }
    int n = PQntuples(res), per_level[TAX_MAX_LEVELS + 1] = {0};
    for (int i = 0; i < n; i++)
        per_level[row_level(res, i)]++;
    if (as_json) {
        json_t *doc = json_object(), *arr = json_array(), *levels = json_object();
        for (int i = 0; i < n; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "code", json_string(PQgetvalue(res, i, 0)));
            json_object_set_new(o, "parent_code",
                                PQgetisnull(res, i, 1) ? json_null() : json_string(PQgetvalue(res, i, 1)));
            json_object_set_new(o, "level", json_integer(atoi(PQgetvalue(res, i, 2))));
            json_object_set_new(o, "name", json_string(PQgetvalue(res, i, 3)));
            json_object_set_new(o, "children", json_integer(atoll(PQgetvalue(res, i, 4))));
            json_array_append_new(arr, o);
        }
        for (int l = 1; l <= TAX_MAX_LEVELS; l++) {
            char k[4];
            snprintf(k, sizeof(k), "%d", l);
            if (per_level[l] > 0)
                json_object_set_new(levels, k, json_integer(per_level[l]));
        }
        json_object_set_new(doc, "count", json_integer(n));
        json_object_set_new(doc, "levels", levels);
        json_object_set_new(doc, "categories", arr);
        char *s = json_dumps(doc, JSON_INDENT(2));
        if (s == NULL) {
            fprintf(stderr, "error: out of memory\n");
            rc = EXIT_NACK;
        } else {
            printf("%s\n", s);
            free(s);
        }
        json_decref(doc);
    } else if (n == 0) {
        printf("no categories (load some with 'redressctl taxonomy load FILE')\n");
    } else {
        printf("%d categories:", n);
        for (int l = 1; l <= TAX_MAX_LEVELS; l++)
            if (per_level[l] > 0)
                printf(" level %d: %d", l, per_level[l]);
        printf("\n%-5s %8s  %s\n", "level", "children", "category (indented by level)");
        for (int i = 0; i < n; i++) {
            int l = atoi(PQgetvalue(res, i, 2));
            printf("%-5d %8s  %*s%s\n", l, PQgetvalue(res, i, 4), 2 * (l > 1 ? l - 1 : 0), "", PQgetvalue(res, i, 3));
        }
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

/* ------------------------------------------------------------------------------------------------
 * taxonomy command
 * --------------------------------------------------------------------------------------------- */

static const struct option taxonomy_opts[] = {
    {"dry-run", no_argument, NULL, OPT_TAX_DRY_RUN},
    {"replace", no_argument, NULL, OPT_TAX_REPLACE},
    {"format", required_argument, NULL, OPT_TAX_FORMAT},
    GLOBAL_OPTIONS,
};

int cmd_taxonomy(globals *g, int argc, char **argv)
{
    cli p;
    bool dry_run = false, replace = false, as_json = false, format = false;
    int c, rc = EXIT_ACK;

    cli_init(&p, "taxonomy", help_taxonomy, taxonomy_opts, argc, argv, g);
    while ((c = cli_next(&p, &rc)) >= 0) {
        if (c == OPT_TAX_DRY_RUN) {
            dry_run = true;
        } else if (c == OPT_TAX_REPLACE) {
            replace = true;
        } else if (strcmp(optarg, "table") == 0 || strcmp(optarg, "json") == 0) {
            format = true;
            as_json = optarg[0] == 'j';
        } else {
            return usage_error("taxonomy", "--format wants table or json, not '%s'", optarg);
        }
    }
    if (c == CLI_EXIT)
        return rc;
    if (optind >= argc)
        return usage_error("taxonomy", "wants a subcommand: load FILE, or show");
    const char *sub = argv[optind];
    int nargs = argc - optind - 1;
    if (strcmp(sub, "load") != 0 && strcmp(sub, "show") != 0)
        return usage_error("taxonomy", "unknown subcommand '%s' (there are: load, show)", sub);
    if ((dry_run || replace) && strcmp(sub, "load") != 0)
        return usage_error("taxonomy", "%s is for 'taxonomy load'", dry_run ? "--dry-run" : "--replace");
    if (format && strcmp(sub, "show") != 0)
        return usage_error("taxonomy", "--format is for 'taxonomy show'");
    if (strcmp(sub, "show") == 0)
        return nargs == 0 ? tax_show(g, as_json) : usage_error("taxonomy", "show takes no arguments");
    if (nargs != 1)
        return usage_error("taxonomy", "load wants exactly one FILE");
    return tax_load(g, argv[optind + 1], dry_run, replace);
}
