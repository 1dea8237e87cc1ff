/*
 * dashboard.h -- the reporting dashboard: server-side rendered HTML and SVG on the service's HTTP
 * side door (rd_http), read from the rollups and views of deploy/sql/0006_reporting.sql.
 *
 *   GET /                               overview of a period (KPIs, charts, departments)
 *   GET /department?id=D                one department (KPIs, charts, its agents)
 *   GET /dashboard.svg?chart=C          one chart alone (image/svg+xml), C = volume | sla |
 *                                       backlog | categories | repeat
 *
 * Every page takes from=YYYY-MM-DD and to=YYYY-MM-DD (local days in reporting.settings.time_zone,
 * inclusive; default the last 30 days up to today, at most 366 days); "/" and /dashboard.svg also
 * take department=D. Bad parameters get 400 with the reason, an unknown department 404, an
 * unreachable database 503. See docs/dashboard.md.
 *
 * No JavaScript, no external resources: every page works offline. Every number shown is also in
 * a data-* attribute (data-kpi, data-value, data-num/data-den for rates) for machines.
 *
 * The dashboard owns one PostgreSQL connection, opened at the first request and reopened (with
 * backoff) after a failure; requests take it under a mutex. Each page is read in one READ ONLY
 * REPEATABLE READ transaction, so its numbers are consistent with each other.
 */
#ifndef RP_DASHBOARD_H
#define RP_DASHBOARD_H

#include "rd_http.h"

typedef struct rp_dashboard rp_dashboard;

/* Mounts "/" (and so every path no longer route claims; /healthz and /metrics stay rd_http's) on
 * http. dsn: the libpq connection string. NULL + err when the route cannot be added. */
rp_dashboard *rp_dashboard_start(rd_http *http, const char *dsn, char *err, int errlen);

/* Closes the connection and frees d. rd_http cannot unmount a route: stop the HTTP server
 * (rd_http_stop) before this, so no request can arrive for a freed dashboard. */
void rp_dashboard_stop(rp_dashboard **d);

#endif
