/*
 * rd_config.h -- configuration: a file plus environment overrides.
 *
 * File format: "key = value" lines, '#' comments, optional [section] headers that prefix the keys
 * that follow ("[pg]" then "dsn = ..." is key "pg.dsn"). Every key can be overridden by an
 * environment variable REDRESS_<KEY> with dots turned into underscores and letters upper-cased
 * (pg.dsn -> REDRESS_PG_DSN). The environment wins over the file, which wins over the defaults the
 * caller passes to the getters.
 */
#ifndef RD_CONFIG_H
#define RD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct rd_config rd_config;

/* Loads path (may be NULL: environment and defaults only). On error returns NULL and writes a
 * human-readable reason into err. */
rd_config *rd_config_load(const char *path, char *err, int errlen);
void rd_config_destroy(rd_config **cfg);

/* The value for key, or def when unset. The returned string lives as long as cfg. */
const char *rd_config_str(const rd_config *cfg, const char *key, const char *def);
/* Integer getters fail (return false, message in err) on values that are not whole numbers in
 * [min, max]; *out is set to def when the key is unset. */
bool rd_config_int(const rd_config *cfg, const char *key, int64_t def, int64_t min, int64_t max, int64_t *out,
                   char *err, int errlen);
bool rd_config_bool(const rd_config *cfg, const char *key, bool def, bool *out, char *err, int errlen);

#endif
