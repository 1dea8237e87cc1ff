/*
 * rd_config.c -- the configuration file parser and the environment overrides.
 *
 * Grammar, one construct per line:
 *
 *   # comment                      whole-line comment
 *   [section]                      later keys become "section.key"
 *   key = value                    value trimmed; " #..." after whitespace is a comment
 *   key = "quoted # value"         \" \\ \n \t escapes; a comment may follow the closing quote
 *
 * A '#' that is not preceded by whitespace belongs to the value (so "pass=ab#c" keeps it), and
 * only the first '=' separates key from value (so "dsn = host=x port=5432" works). A key set twice
 * is an error rather than last-one-wins: in a file maintained by hand a repeated key is almost
 * always a mistake that would otherwise silently change behaviour.
 *
 * Environment overrides are read once, when the configuration is loaded: every REDRESS_* variable
 * is copied into the rd_config. Getters then compute the variable name from the key and look it
 * up in that copy. Taking a snapshot keeps the returned strings valid for the life of the config
 * (getenv's are not, once someone calls setenv) and lets threads read the config without locks.
 */
#include "rd_config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ENV_PREFIX "REDRESS_"

extern char **environ;

typedef struct {
    char *key;
    char *value;
    int line; /* where a file entry was set (0 for the environment) */
} entry;

/* A growable array of entries; linear search is fine for a few dozen keys read at start-up. */
typedef struct {
    entry *v;
    int n, cap;
} entries;

struct rd_config {
    entries file; /* keys as written, "section.key" */
    entries env;  /* names as in the environment, "REDRESS_SECTION_KEY" */
};

static void set_err(char *err, int errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, int errlen, const char *fmt, ...)
{
    if (err == NULL || errlen <= 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, (size_t)errlen, fmt, ap);
    va_end(ap);
}

/* ---- entries ------------------------------------------------------------------------------- */

static const entry *entries_find(const entries *es, const char *key)
{
    for (int i = 0; i < es->n; i++)
        if (strcmp(es->v[i].key, key) == 0)
            return &es->v[i];
    return NULL;
}

/* Takes ownership of key and value (frees them on failure). */
static bool entries_add(entries *es, char *key, char *value, int line)
{
    if (key == NULL || value == NULL)
        goto fail;
    if (es->n == es->cap) {
        int cap = es->cap ? es->cap * 2 : 16;
        entry *v = realloc(es->v, (size_t)cap * sizeof(*v));
        if (v == NULL)
            goto fail;
        es->v = v;
        es->cap = cap;
    }
    es->v[es->n].key = key;
    es->v[es->n].value = value;
    es->v[es->n].line = line;
    es->n++;
    return true;
fail:
    free(key);
    free(value);
    return false;
}

static void entries_free(entries *es)
{
    for (int i = 0; i < es->n; i++) {
        free(es->v[i].key);
        free(es->v[i].value);
    }
    free(es->v);
    es->v = NULL;
    es->n = es->cap = 0;
}

/* ---- the environment ----------------------------------------------------------------------- */

/* "pg.dsn" -> "REDRESS_PG_DSN". Anything that is not a letter or digit becomes '_' so that keys
 * such as "log.max-size" still map to a name a shell can set. */
static void env_name(const char *key, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "%s", ENV_PREFIX);
    for (const char *p = key; *p && n + 1 < outlen; p++, n++)
        out[n] = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    out[n] = '\0';
}

static bool snapshot_env(entries *env)
{
    size_t plen = strlen(ENV_PREFIX);
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL || strncmp(*e, ENV_PREFIX, plen) != 0)
            continue;
        if (!entries_add(env, strndup(*e, (size_t)(eq - *e)), strdup(eq + 1), 0))
            return false;
    }
    return true;
}

/* ---- the file ------------------------------------------------------------------------------ */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* Cuts s at a '#' that starts the line or follows whitespace. */
static void strip_comment(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            return;
        }
}

static bool valid_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
            return false;
    return true;
}

/* Parses a double-quoted value in place; s points at the opening quote. On success the unescaped
 * value starts at s+1 and *rest points after the closing quote. */
static bool unquote(char *s, char **rest, const char **why)
{
    char *out = s + 1;
    char *in = s + 1;
    for (; *in && *in != '"'; in++) {
        if (*in != '\\') {
            *out++ = *in;
            continue;
        }
        switch (*++in) {
        case '"':
            *out++ = '"';
            break;
        case '\\':
            *out++ = '\\';
            break;
        case 'n':
            *out++ = '\n';
            break;
        case 't':
            *out++ = '\t';
            break;
        default:
            *why = "unknown escape in quoted value (use \\\" \\\\ \\n \\t)";
            return false;
        }
    }
    if (*in != '"') {
        *why = "unterminated quoted value";
        return false;
    }
    *out = '\0';
    *rest = in + 1;
    return true;
}

/* The value part of "key = value", after the '='. Returns it (pointing into line) or NULL with
 * *why set. */
static char *parse_value(char *v, const char **why)
{
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v != '"') {
        strip_comment(v);
        return trim(v);
    }
    char *rest;
    if (!unquote(v, &rest, why))
        return NULL;
    strip_comment(rest);
    if (*trim(rest) != '\0') {
        *why = "unexpected text after closing quote";
        return NULL;
    }
    return v + 1;
}

typedef struct {
    const char *path;
    int line;
    char section[128];
    rd_config *cfg;
} parser;

static bool parse_section(parser *ps, char *s, char *err, int errlen)
{
    strip_comment(s);
    s = trim(s);
    size_t n = strlen(s);
    if (n < 2 || s[n - 1] != ']') {
        set_err(err, errlen, "%s:%d: section header must be '[name]'", ps->path, ps->line);
        return false;
    }
    s[n - 1] = '\0';
    char *name = trim(s + 1);
    if (!valid_name(name) || strlen(name) >= sizeof(ps->section)) {
        set_err(err, errlen, "%s:%d: invalid section name '%s' (letters, digits, '_', '.', '-')", ps->path, ps->line,
                name);
        return false;
    }
    snprintf(ps->section, sizeof(ps->section), "%s", name);
    return true;
}

static bool parse_pair(parser *ps, char *s, char *err, int errlen)
{
    char *eq = strchr(s, '=');
    if (eq == NULL) {
        set_err(err, errlen, "%s:%d: expected 'key = value', '[section]' or a '#' comment", ps->path, ps->line);
        return false;
    }
    *eq = '\0';
    char *key = trim(s);
    if (!valid_name(key)) {
        set_err(err, errlen, "%s:%d: invalid key '%s' (letters, digits, '_', '.', '-')", ps->path, ps->line, key);
        return false;
    }
    const char *why = NULL;
    const char *value = parse_value(eq + 1, &why);
    if (value == NULL) {
        set_err(err, errlen, "%s:%d: %s", ps->path, ps->line, why);
        return false;
    }
    char *full;
    if (asprintf(&full, "%s%s%s", ps->section, ps->section[0] ? "." : "", key) < 0) {
        set_err(err, errlen, "out of memory");
        return false;
    }
    const entry *prev = entries_find(&ps->cfg->file, full);
    if (prev != NULL) {
        set_err(err, errlen, "%s:%d: duplicate key '%s' (first set on line %d)", ps->path, ps->line, full, prev->line);
        free(full);
        return false;
    }
    if (!entries_add(&ps->cfg->file, full, strdup(value), ps->line)) {
        set_err(err, errlen, "out of memory");
        return false;
    }
    return true;
}

static bool parse_line(parser *ps, char *line, size_t len, char *err, int errlen)
{
    if (strlen(line) != len) {
        set_err(err, errlen, "%s:%d: NUL byte in line", ps->path, ps->line);
        return false;
    }
    if (ps->line == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
        line += 3; /* UTF-8 byte order mark left by some editors */
    char *s = trim(line);
    if (*s == '\0' || *s == '#')
        return true;
    if (*s == '[')
        return parse_section(ps, s, err, errlen);
    return parse_pair(ps, s, err, errlen);
}

static bool parse_file(rd_config *cfg, const char *path, char *err, int errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        set_err(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return false;
    }
    parser ps = {.path = path, .cfg = cfg};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    bool ok = true;
    while (ok && (len = getline(&line, &cap, f)) >= 0) {
        ps.line++;
        ok = parse_line(&ps, line, (size_t)len, err, errlen);
    }
    if (ok && ferror(f)) {
        set_err(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
        ok = false;
    }
    free(line);
    fclose(f);
    return ok;
}

/* ---- public API ---------------------------------------------------------------------------- */

rd_config *rd_config_load(const char *path, char *err, int errlen)
{
    set_err(err, errlen, "%s", "");
    rd_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    if (!snapshot_env(&cfg->env)) {
        set_err(err, errlen, "out of memory");
        rd_config_destroy(&cfg);
        return NULL;
    }
    if (path != NULL && !parse_file(cfg, path, err, errlen)) {
        rd_config_destroy(&cfg);
        return NULL;
    }
    return cfg;
}

void rd_config_destroy(rd_config **cfg)
{
    if (cfg == NULL || *cfg == NULL)
        return;
    entries_free(&(*cfg)->file);
    entries_free(&(*cfg)->env);
    free(*cfg);
    *cfg = NULL;
}

/* Finds key's value; *from names where it came from, for error messages. */
static const char *lookup(const rd_config *cfg, const char *key, char *from, size_t fromlen)
{
    if (cfg == NULL || key == NULL)
        return NULL;
    char name[256];
    env_name(key, name, sizeof(name));
    const entry *e = entries_find(&cfg->env, name);
    if (e != NULL) {
        snprintf(from, fromlen, "environment variable %s", name);
        return e->value;
    }
    e = entries_find(&cfg->file, key);
    if (e != NULL) {
        snprintf(from, fromlen, "line %d", e->line);
        return e->value;
    }
    return NULL;
}

const char *rd_config_str(const rd_config *cfg, const char *key, const char *def)
{
    char from[300];
    const char *v = lookup(cfg, key, from, sizeof(from));
    return v ? v : def;
}

bool rd_config_int(const rd_config *cfg, const char *key, int64_t def, int64_t min, int64_t max, int64_t *out,
                   char *err, int errlen)
{
    char from[300];
    const char *v = lookup(cfg, key, from, sizeof(from));
    if (v == NULL) {
        *out = def;
        return true;
    }
    /* strtoll alone would accept leading blanks and, with an empty string, return 0. */
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (*v == '\0' || isspace((unsigned char)*v) || *end != '\0') {
        set_err(err, errlen, "%s = \"%s\" (%s): not a whole number", key, v, from);
        return false;
    }
    if (errno == ERANGE || n < min || n > max) {
        set_err(err, errlen, "%s = %s (%s): out of range [%" PRId64 ", %" PRId64 "]", key, v, from, min, max);
        return false;
    }
    *out = (int64_t)n;
    return true;
}

bool rd_config_bool(const rd_config *cfg, const char *key, bool def, bool *out, char *err, int errlen)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    char from[300];
    const char *v = lookup(cfg, key, from, sizeof(from));
    if (v == NULL) {
        *out = def;
        return true;
    }
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    set_err(err, errlen, "%s = \"%s\" (%s): not a boolean (true/false, yes/no, on/off, 1/0)", key, v, from);
    return false;
}
