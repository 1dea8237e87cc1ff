-- 0006: reporting -- per-ticket facts, rollups by hour, day and month, and the stable views BI
-- tools read (docs/bi.md).
--
-- Invariants:
--  * reporting.ticket_facts holds, for every ticket the reporting service has seen, exactly what
--    reporting.fact_source() computes from the raw tables (tickets, ticket_history,
--    ticket_classifications, sla_clocks, sla_escalations) as of the last refresh of that ticket.
--  * every rollup row equals the sum of reporting.contrib() over the facts whose contributions
--    fall in its bucket and dimensions: reporting.refresh() subtracts a ticket's old contributions
--    and adds its new ones in the same transaction that replaces its fact row. Refreshing a
--    ticket twice changes nothing, so a duplicated event cannot skew a number; a missed one is
--    found by the sweep (facts.last_seq / last_sla_seq behind the raw tables) and refreshed.
--  * reporting.queue is filled in the writer's own transaction by statement triggers on
--    ticket_history and sla_events (8 partitions by ticket); each partition is consumed by one
--    process at a time under advisory lock 7427000 + part, and a queue row is deleted in the
--    transaction that applies it.
--  * buckets are local time in reporting.settings.time_zone; business time is measured in
--    reporting.settings.calendar_id, whose working intervals the reporting service materialises
--    in reporting.work_intervals from the calendar in business_calendars.
--  * the dimensions of every contribution are the ticket's CURRENT ones (business type, channel,
--    category, owning department/team/agent, region): a reclassified or transferred ticket moves
--    all its numbers to its new owner.

CREATE SCHEMA reporting;

CREATE TABLE reporting.settings (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    time_zone    text NOT NULL DEFAULT 'Asia/Shanghai',
    calendar_id  text,                         -- NULL: business time = calendar time (24/7)
    calendar_version text NOT NULL DEFAULT '', -- what work_intervals were built from
    updated_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO reporting.settings DEFAULT VALUES;

-- Working intervals of the reporting calendar; cum_s = working seconds before starts_at, counted
-- from the first interval. Written only by the reporting service (from rd_calendar).
CREATE TABLE reporting.work_intervals (
    calendar_id  text NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL CHECK (ends_at > starts_at),
    cum_s        numeric NOT NULL,            -- exact: business times are floored to whole seconds
    PRIMARY KEY (calendar_id, starts_at)
);

-- Working seconds of calendar cal from its first materialised interval up to t.
CREATE FUNCTION reporting.work_s(cal text, t timestamptz) RETURNS numeric
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE((SELECT w.cum_s + extract(epoch FROM least(t, w.ends_at) - w.starts_at)
                       FROM reporting.work_intervals w
                      WHERE w.calendar_id = cal AND w.starts_at <= t
                      ORDER BY w.starts_at DESC LIMIT 1), 0)
$$;

-- Whole seconds from a to b: in calendar time, or in working time of cal.
CREATE FUNCTION reporting.span_s(a timestamptz, b timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT floor(extract(epoch FROM b - a))::bigint
$$;
CREATE FUNCTION reporting.business_s(cal text, a timestamptz, b timestamptz) RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a IS NULL OR b IS NULL THEN NULL
                WHEN cal IS NULL THEN reporting.span_s(a, b)
                ELSE greatest(floor(reporting.work_s(cal, b) - reporting.work_s(cal, a)), 0)::bigint END
$$;

-- Duration histogram buckets (seconds): 0: < 5 min, 1: < 15 min, 2: < 30 min, 3: < 1 h, 4: < 4 h,
-- 5: < 12 h, 6: < 24 h, 7: < 72 h, 8: >= 72 h.
CREATE FUNCTION reporting.hbucket(s bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT width_bucket(s, ARRAY[300, 900, 1800, 3600, 14400, 43200, 86400, 259200]::bigint[])
$$;

CREATE TABLE reporting.ticket_facts (
    ticket_id          uuid PRIMARY KEY,
    last_seq           bigint NOT NULL,           -- max ticket_history.seq of the ticket when computed
    last_sla_seq       bigint NOT NULL,           -- max sla_events.seq of the ticket when computed
    business_type      text NOT NULL,             -- '' = not yet classified
    channel            text NOT NULL,
    category           text NOT NULL,
    department         text NOT NULL,             -- owning department ('' = none yet)
    team               text NOT NULL,
    agent              text NOT NULL,
    region             text NOT NULL,
    severity           text NOT NULL,
    state              text NOT NULL,
    created_at         timestamptz NOT NULL,      -- received
    first_response_at  timestamptz,
    resolved_at        timestamptz,               -- the latest resolution (a reopen clears it)
    closed_at          timestamptz,
    frt_s              bigint,                    -- first response time, calendar seconds
    frt_bs             bigint,                    -- ... in working seconds of the calendar
    res_s              bigint,                    -- resolution time from receipt, calendar seconds
    res_bs             bigint,
    reopens            integer NOT NULL,
    is_repeat          boolean NOT NULL,
    is_duplicate       boolean NOT NULL,
    visit_at           timestamptz,               -- the latest return visit (回访)
    satisfaction       smallint,                  -- its answer, 1..5; satisfied = 4 or 5
    clk                text[] NOT NULL,           -- decided SLA clocks: 'accept:met', 'resolution:breached'
    clk_at             timestamptz[] NOT NULL,    -- when each was decided (met: stopped, breached: breach)
    esc_level          smallint[] NOT NULL,       -- escalations (sla_escalations.level) ...
    esc_at             timestamptz[] NOT NULL,    -- ... and when
    refreshed_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ticket_facts_open_idx ON reporting.ticket_facts (created_at)
    WHERE state NOT IN ('resolved', 'closed');
CREATE INDEX ticket_facts_created_idx ON reporting.ticket_facts (created_at);

CREATE INDEX sla_escalations_ticket_idx ON sla_escalations (ticket_id);

-- The fact row of each ticket in ids, from the raw tables.
CREATE FUNCTION reporting.fact_source(ids uuid[]) RETURNS SETOF reporting.ticket_facts
    LANGUAGE sql STABLE AS $$
    SELECT t.id,
           COALESCE((SELECT max(h.seq) FROM ticket_history h WHERE h.ticket_id = t.id), 0),
           COALESCE((SELECT max(e.seq) FROM sla_clocks c JOIN sla_events e ON e.clock_id = c.id
                      WHERE c.ticket_id = t.id), 0),
           COALESCE(t.business_type, ''), t.channel, COALESCE(t.category, ''), COALESCE(t.owner_unit, ''),
           COALESCE(t.owner_team, ''), COALESCE(t.owner_agent, ''), t.region, COALESCE(t.severity, ''),
           t.state, t.created_at, t.first_response_at, t.resolved_at, t.closed_at,
           reporting.span_s(t.created_at, t.first_response_at),
           reporting.business_s(s.calendar_id, t.created_at, t.first_response_at),
           reporting.span_s(t.created_at, t.resolved_at),
           reporting.business_s(s.calendar_id, t.created_at, t.resolved_at),
           t.reopen_count, cl.repeat_of IS NOT NULL, cl.duplicate_of IS NOT NULL,
           v.at, CASE WHEN v.at IS NOT NULL THEN v.satisfaction END,
           COALESCE(k.clk, '{}'), COALESCE(k.clk_at, '{}'), COALESCE(x.lv, '{}'), COALESCE(x.at, '{}'),
           now()
      FROM tickets t
      CROSS JOIN reporting.settings s
      LEFT JOIN ticket_classifications cl ON cl.ticket_id = t.id
      LEFT JOIN LATERAL (SELECT h.at, h.satisfaction FROM ticket_history h
                          WHERE h.ticket_id = t.id AND h.kind = 'return_visit'
                          ORDER BY h.seq DESC LIMIT 1) v ON true
      LEFT JOIN LATERAL (SELECT array_agg(c.clock || CASE WHEN c.breached_at IS NOT NULL THEN ':breached'
                                                          ELSE ':met' END ORDER BY c.id) AS clk,
                                array_agg(COALESCE(c.breached_at, c.stopped_at) ORDER BY c.id) AS clk_at
                           FROM sla_clocks c
                          WHERE c.ticket_id = t.id AND (c.breached_at IS NOT NULL OR c.outcome = 'met')) k ON true
      LEFT JOIN LATERAL (SELECT array_agg(e.level ORDER BY e.id) AS lv, array_agg(e.at ORDER BY e.id) AS at
                           FROM sla_escalations e WHERE e.ticket_id = t.id) x ON true
     WHERE t.id = ANY (ids)
$$;

-- What one fact row adds to the rollups: (instant, column, value) triples. The column names are
-- exactly the metric columns of the rollup tables (reporting.metric_columns()).
CREATE FUNCTION reporting.contrib(f reporting.ticket_facts) RETURNS TABLE (t timestamptz, col text, v bigint)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT f.created_at, x.c, x.v
      FROM (VALUES ('received', 1::bigint), ('repeats', f.is_repeat::int), ('duplicates', f.is_duplicate::int),
                   ('reopened', (f.reopens > 0)::int), ('reopens', f.reopens), ('major', (f.severity = 'major')::int))
           AS x(c, v) WHERE x.v <> 0
    UNION ALL
    SELECT f.first_response_at, x.c, x.v
      FROM (VALUES ('responded', 1::bigint), ('frt_s', f.frt_s), ('frt_bs', f.frt_bs),
                   ('frt_h' || reporting.hbucket(f.frt_s), 1), ('frt_bh' || reporting.hbucket(f.frt_bs), 1))
           AS x(c, v) WHERE f.first_response_at IS NOT NULL AND x.v <> 0
    UNION ALL
    SELECT f.resolved_at, x.c, x.v
      FROM (VALUES ('resolved', 1::bigint), ('res_s', f.res_s), ('res_bs', f.res_bs),
                   ('res_h' || reporting.hbucket(f.res_s), 1), ('res_bh' || reporting.hbucket(f.res_bs), 1))
           AS x(c, v) WHERE f.resolved_at IS NOT NULL AND x.v <> 0
    UNION ALL
    SELECT f.closed_at, 'closed', 1 WHERE f.closed_at IS NOT NULL
    UNION ALL
    SELECT f.visit_at, x.c, x.v
      FROM (VALUES ('visits', 1::bigint), ('satisfied', (f.satisfaction >= 4)::int)) AS x(c, v)
     WHERE f.visit_at IS NOT NULL AND x.v <> 0
    UNION ALL
    SELECT u.at, replace(u.c, ':', '_'), 1 FROM unnest(f.clk, f.clk_at) AS u(c, at) WHERE u.at IS NOT NULL
    UNION ALL
    SELECT u.at, 'esc_l' || u.l, 1 FROM unnest(f.esc_level, f.esc_at) AS u(l, at) WHERE u.at IS NOT NULL
$$;

-- The rollups. Key: the bucket (local time) and the seven dimensions ('' = none). Metric columns:
-- counts at the instant they describe (docs/bi.md has every formula):
--   at receipt:          received, repeats, duplicates, reopened (tickets reopened at least once),
--                        reopens (reopen events), major
--   at first response:   responded, frt_s, frt_bs (sums of seconds), frt_h0..8, frt_bh0..8 (histograms)
--   at resolution:       resolved, res_s, res_bs, res_h0..8, res_bh0..8
--   at closing:          closed
--   at the return visit: visits, satisfied
--   at an SLA decision:  <clock>_met, <clock>_breached for accept, first_response, chase_update, resolution
--   at an escalation:    esc_l1 .. esc_l4
CREATE TABLE reporting.rollup_hour (
    bucket         timestamp NOT NULL,
    business_type  text NOT NULL, channel text NOT NULL, category text NOT NULL, department text NOT NULL,
    team           text NOT NULL, agent text NOT NULL, region text NOT NULL,
    received bigint NOT NULL DEFAULT 0, repeats bigint NOT NULL DEFAULT 0, duplicates bigint NOT NULL DEFAULT 0,
    reopened bigint NOT NULL DEFAULT 0, reopens bigint NOT NULL DEFAULT 0, major bigint NOT NULL DEFAULT 0,
    responded bigint NOT NULL DEFAULT 0, frt_s bigint NOT NULL DEFAULT 0, frt_bs bigint NOT NULL DEFAULT 0,
    frt_h0 bigint NOT NULL DEFAULT 0, frt_h1 bigint NOT NULL DEFAULT 0, frt_h2 bigint NOT NULL DEFAULT 0,
    frt_h3 bigint NOT NULL DEFAULT 0, frt_h4 bigint NOT NULL DEFAULT 0, frt_h5 bigint NOT NULL DEFAULT 0,
    frt_h6 bigint NOT NULL DEFAULT 0, frt_h7 bigint NOT NULL DEFAULT 0, frt_h8 bigint NOT NULL DEFAULT 0,
    frt_bh0 bigint NOT NULL DEFAULT 0, frt_bh1 bigint NOT NULL DEFAULT 0, frt_bh2 bigint NOT NULL DEFAULT 0,
    frt_bh3 bigint NOT NULL DEFAULT 0, frt_bh4 bigint NOT NULL DEFAULT 0, frt_bh5 bigint NOT NULL DEFAULT 0,
    frt_bh6 bigint NOT NULL DEFAULT 0, frt_bh7 bigint NOT NULL DEFAULT 0, frt_bh8 bigint NOT NULL DEFAULT 0,
    resolved bigint NOT NULL DEFAULT 0, res_s bigint NOT NULL DEFAULT 0, res_bs bigint NOT NULL DEFAULT 0,
    res_h0 bigint NOT NULL DEFAULT 0, res_h1 bigint NOT NULL DEFAULT 0, res_h2 bigint NOT NULL DEFAULT 0,
    res_h3 bigint NOT NULL DEFAULT 0, res_h4 bigint NOT NULL DEFAULT 0, res_h5 bigint NOT NULL DEFAULT 0,
    res_h6 bigint NOT NULL DEFAULT 0, res_h7 bigint NOT NULL DEFAULT 0, res_h8 bigint NOT NULL DEFAULT 0,
    res_bh0 bigint NOT NULL DEFAULT 0, res_bh1 bigint NOT NULL DEFAULT 0, res_bh2 bigint NOT NULL DEFAULT 0,
    res_bh3 bigint NOT NULL DEFAULT 0, res_bh4 bigint NOT NULL DEFAULT 0, res_bh5 bigint NOT NULL DEFAULT 0,
    res_bh6 bigint NOT NULL DEFAULT 0, res_bh7 bigint NOT NULL DEFAULT 0, res_bh8 bigint NOT NULL DEFAULT 0,
    closed bigint NOT NULL DEFAULT 0, visits bigint NOT NULL DEFAULT 0, satisfied bigint NOT NULL DEFAULT 0,
    accept_met bigint NOT NULL DEFAULT 0, accept_breached bigint NOT NULL DEFAULT 0,
    first_response_met bigint NOT NULL DEFAULT 0, first_response_breached bigint NOT NULL DEFAULT 0,
    chase_update_met bigint NOT NULL DEFAULT 0, chase_update_breached bigint NOT NULL DEFAULT 0,
    resolution_met bigint NOT NULL DEFAULT 0, resolution_breached bigint NOT NULL DEFAULT 0,
    esc_l1 bigint NOT NULL DEFAULT 0, esc_l2 bigint NOT NULL DEFAULT 0, esc_l3 bigint NOT NULL DEFAULT 0,
    esc_l4 bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, business_type, channel, category, department, team, agent, region)
) WITH (fillfactor = 90);
CREATE TABLE reporting.rollup_day (LIKE reporting.rollup_hour INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE reporting.rollup_day ALTER COLUMN bucket TYPE date,
    ADD PRIMARY KEY (bucket, business_type, channel, category, department, team, agent, region);
CREATE TABLE reporting.rollup_month (LIKE reporting.rollup_hour INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE reporting.rollup_month ALTER COLUMN bucket TYPE date,
    ADD PRIMARY KEY (bucket, business_type, channel, category, department, team, agent, region);
ALTER TABLE reporting.rollup_day SET (fillfactor = 90);
ALTER TABLE reporting.rollup_month SET (fillfactor = 90);
CREATE INDEX rollup_day_dept_idx ON reporting.rollup_day (department, bucket);
CREATE INDEX rollup_month_dept_idx ON reporting.rollup_month (department, bucket);

-- The metric columns, in table order.
CREATE FUNCTION reporting.metric_columns() RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
     WHERE attrelid = 'reporting.rollup_hour'::regclass AND attnum > 8 AND NOT attisdropped
$$;

-- Replaces the fact rows of the tickets in ids with fresh ones from the raw tables and applies the
-- difference to the three rollups. Returns how many rollup rows changed. Callers serialise
-- refreshes of one ticket (the queue's partition lock); rollup rows are upserted in key order, so
-- concurrent refreshes of different tickets cannot deadlock.
-- jit off: the planner's row estimates for the data-modifying CTEs are far too high, and compiling
-- the 190 aggregates of the three upserts took seconds per call where executing them takes
-- milliseconds.
CREATE FUNCTION reporting.refresh(ids uuid[]) RETURNS bigint LANGUAGE plpgsql SET jit = off AS $fn$
DECLARE
    cols  text[] := reporting.metric_columns();
    tz    text;
    names text;
    sums  text;
    sets  text;
    ins   text := '';
    n     bigint;
BEGIN
    SELECT time_zone INTO tz FROM reporting.settings;
    SELECT string_agg(format('%I', c), ', '),
           string_agg(format('COALESCE(sum(d.v) FILTER (WHERE d.col = %L), 0)', c), ', '),
           string_agg(format('%I = r.%I + excluded.%I', c, c, c), ', ')
      INTO names, sums, sets FROM unnest(cols) AS c;
    -- One upsert per grain; each first sums the delta per (bucket, dimensions, column) and drops
    -- what cancels out, so a refresh that changes nothing writes nothing.
    SELECT string_agg(format(
        ', %1$s AS (INSERT INTO reporting.rollup_%1$s AS r (bucket, business_type, channel, category,'
        ' department, team, agent, region, %2$s)'
        ' SELECT d.b, d.business_type, d.channel, d.category, d.department, d.team, d.agent, d.region, %3$s'
        '   FROM (SELECT date_trunc(%1$L, x.t)::%4$s AS b, x.business_type, x.channel, x.category, x.department,'
        '                x.team, x.agent, x.region, x.col, sum(x.s * x.v) AS v'
        '           FROM delta x GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9 HAVING sum(x.s * x.v) <> 0) d'
        '  GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8'
        ' ON CONFLICT (bucket, business_type, channel, category, department, team, agent, region)'
        ' DO UPDATE SET %5$s RETURNING 1)',
        g, names, sums, CASE g WHEN 'hour' THEN 'timestamp' ELSE 'date' END, sets), '')
      INTO ins FROM unnest(ARRAY['hour', 'day', 'month']) AS g;
    EXECUTE
        'WITH old AS (DELETE FROM reporting.ticket_facts f WHERE f.ticket_id = ANY ($1) RETURNING f.*),'
        '     new AS (INSERT INTO reporting.ticket_facts SELECT * FROM reporting.fact_source($1) RETURNING *),'
        '     delta AS MATERIALIZED ('
        '       SELECT -1 AS s, o.business_type, o.channel, o.category, o.department, o.team, o.agent, o.region,'
        '              c.t AT TIME ZONE $2 AS t, c.col, c.v'
        '         FROM old o, LATERAL reporting.contrib(o::reporting.ticket_facts) c'
        '       UNION ALL'
        '       SELECT 1, w.business_type, w.channel, w.category, w.department, w.team, w.agent, w.region,'
        '              c.t AT TIME ZONE $2, c.col, c.v'
        '         FROM new w, LATERAL reporting.contrib(w::reporting.ticket_facts) c)'
        || ins ||
        ' SELECT (SELECT count(*) FROM hour) + (SELECT count(*) FROM day) + (SELECT count(*) FROM month)'
        INTO n USING ids, tz;
    RETURN n;
END
$fn$;

-- The queue of tickets to refresh, filled by triggers in the writers' transactions.
CREATE TABLE reporting.queue (
    part       smallint NOT NULL CHECK (part BETWEEN 0 AND 7),
    id         bigint GENERATED ALWAYS AS IDENTITY,
    ticket_id  uuid NOT NULL,
    PRIMARY KEY (part, id)
);
CREATE FUNCTION reporting.queue_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO reporting.queue (part, ticket_id) SELECT hashtext(ticket_id::text) & 7, ticket_id FROM new_rows;
    RETURN NULL;
END $$;
CREATE TRIGGER ticket_history_reporting AFTER INSERT ON ticket_history
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION reporting.queue_history();
CREATE TRIGGER sla_events_reporting AFTER INSERT ON sla_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION reporting.queue_history();

-- Applies up to max_events queued events of one partition: deletes them and refreshes their
-- tickets in the caller's transaction. Returns (events, tickets, rollup rows changed); (0, 0, 0)
-- when another process holds the partition (advisory lock 7427000 + part, released at commit).
CREATE FUNCTION reporting.apply_queue(p integer, max_events integer,
                                      OUT events bigint, OUT tickets bigint, OUT rollup_rows bigint)
    LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
BEGIN
    events := 0; tickets := 0; rollup_rows := 0;
    IF NOT pg_try_advisory_xact_lock(7427000 + p) THEN
        RETURN;
    END IF;
    WITH q AS (DELETE FROM reporting.queue
                WHERE part = p AND id IN (SELECT id FROM reporting.queue WHERE part = p ORDER BY id LIMIT max_events)
               RETURNING ticket_id)
    SELECT count(*), array_agg(DISTINCT ticket_id) INTO events, ids FROM q;
    IF events > 0 THEN
        tickets := cardinality(ids);
        rollup_rows := reporting.refresh(ids);
    END IF;
END
$$;

-- Where the sweep for missed events has got to (it re-checks each window twice, one interval apart).
CREATE TABLE reporting.sweep_marks (
    source    text PRIMARY KEY CHECK (source IN ('history', 'sla')),
    prev_seq  bigint NOT NULL DEFAULT 0,
    cur_seq   bigint NOT NULL DEFAULT 0,
    swept_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO reporting.sweep_marks (source) VALUES ('history'), ('sla');

-- Tickets whose facts are behind the raw tables since seq > since: returns how many were queued.
CREATE FUNCTION reporting.sweep(since_history bigint, since_sla bigint) RETURNS bigint LANGUAGE sql AS $$
    WITH h AS (SELECT ticket_id, max(seq) AS m FROM ticket_history WHERE seq > since_history GROUP BY ticket_id),
         e AS (SELECT ticket_id, max(seq) AS m FROM sla_events WHERE seq > since_sla GROUP BY ticket_id),
         stale AS (SELECT h.ticket_id FROM h LEFT JOIN reporting.ticket_facts f USING (ticket_id)
                    WHERE f.ticket_id IS NULL OR f.last_seq < h.m
                   UNION
                   SELECT e.ticket_id FROM e LEFT JOIN reporting.ticket_facts f USING (ticket_id)
                    WHERE f.ticket_id IS NULL OR f.last_sla_seq < e.m),
         q AS (INSERT INTO reporting.queue (part, ticket_id)
               SELECT hashtext(ticket_id::text) & 7, ticket_id FROM stale RETURNING 1)
    SELECT count(*) FROM q
$$;

-- Monthly reports persisted by the reporting service after each month ends (and on demand).
CREATE TABLE reporting.monthly_reports (
    month         date NOT NULL CHECK (extract(day FROM month) = 1),
    department    text NOT NULL,               -- '' = the whole organisation
    body          jsonb NOT NULL,              -- the department's reporting.department_scorecard row
                                               -- (department '': the organisation's totals)
    generated_at  timestamptz NOT NULL DEFAULT now(),
    generated_by  text NOT NULL DEFAULT '',
    PRIMARY KEY (month, department)
);

-- ---------------------------------------------------------------------------------------------
-- The stable interface for BI tools (docs/bi.md). Counts are sums of rollup columns; a rate is
-- given beside its numerator and denominator so that BI tools can re-aggregate correctly
-- (sum the parts, then divide -- never average rates).

-- The upper bound (seconds) of the histogram bucket holding quantile q (0 < q <= 1) of the counts
-- h0..h8 (reporting.hbucket); NULL when there are no counts, 'infinity'-like -1 for bucket 8.
CREATE FUNCTION reporting.hist_quantile(h bigint[], q double precision) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN b.i = 9 THEN -1 ELSE (ARRAY[300, 900, 1800, 3600, 14400, 43200, 86400, 259200])[b.i] END
      FROM (SELECT min(x.i) AS i
              FROM (SELECT i, sum(h[i]) OVER (ORDER BY i) AS cum, sum(h[i]) OVER () AS tot
                      FROM generate_series(1, 9) AS i) x
             WHERE x.tot > 0 AND x.cum >= q * x.tot) b
     WHERE b.i IS NOT NULL
$$;

CREATE FUNCTION reporting.rate(num numeric, den numeric) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN den > 0 THEN round(num / den, 4) END
$$;

CREATE VIEW reporting.kpi_daily AS
SELECT r.bucket AS day, r.business_type, r.channel, r.department,
       sum(r.received) AS received, sum(r.resolved) AS resolved, sum(r.closed) AS closed,
       sum(r.reopened) AS reopened, sum(r.repeats) AS repeats, sum(r.duplicates) AS duplicates,
       sum(r.major) AS major,
       sum(r.responded) AS responded, sum(r.frt_s) AS frt_s_sum, sum(r.frt_bs) AS frt_bs_sum,
       sum(r.res_s) AS res_s_sum, sum(r.res_bs) AS res_bs_sum,
       sum(r.accept_met + r.first_response_met + r.chase_update_met + r.resolution_met) AS sla_met,
       sum(r.accept_breached + r.first_response_breached + r.chase_update_breached + r.resolution_breached)
           AS sla_breached,
       sum(r.esc_l1) AS esc_l1, sum(r.esc_l2) AS esc_l2, sum(r.esc_l3) AS esc_l3, sum(r.esc_l4) AS esc_l4,
       sum(r.visits) AS visits, sum(r.satisfied) AS satisfied,
       reporting.rate(sum(r.accept_met + r.first_response_met + r.chase_update_met + r.resolution_met),
                      sum(r.accept_met + r.first_response_met + r.chase_update_met + r.resolution_met
                          + r.accept_breached + r.first_response_breached + r.chase_update_breached
                          + r.resolution_breached)) AS on_time_rate,
       reporting.rate(sum(r.satisfied), sum(r.visits)) AS satisfaction_rate,
       reporting.rate(sum(r.repeats), sum(r.received)) AS repeat_rate,
       round(sum(r.frt_bs)::numeric / NULLIF(sum(r.responded), 0) / 3600, 2) AS avg_frt_business_h,
       round(sum(r.res_bs)::numeric / NULLIF(sum(r.resolved), 0) / 3600, 2) AS avg_res_business_h,
       round(sum(r.res_s)::numeric / NULLIF(sum(r.resolved), 0) / 3600, 2) AS avg_res_h,
       sum(r.reopens) AS reopens,
       ARRAY[sum(r.frt_h0), sum(r.frt_h1), sum(r.frt_h2), sum(r.frt_h3), sum(r.frt_h4), sum(r.frt_h5), sum(r.frt_h6),
             sum(r.frt_h7), sum(r.frt_h8)]::bigint[] AS frt_hist,
       ARRAY[sum(r.frt_bh0), sum(r.frt_bh1), sum(r.frt_bh2), sum(r.frt_bh3), sum(r.frt_bh4), sum(r.frt_bh5),
             sum(r.frt_bh6), sum(r.frt_bh7), sum(r.frt_bh8)]::bigint[] AS frt_business_hist,
       ARRAY[sum(r.res_h0), sum(r.res_h1), sum(r.res_h2), sum(r.res_h3), sum(r.res_h4), sum(r.res_h5), sum(r.res_h6),
             sum(r.res_h7), sum(r.res_h8)]::bigint[] AS res_hist,
       ARRAY[sum(r.res_bh0), sum(r.res_bh1), sum(r.res_bh2), sum(r.res_bh3), sum(r.res_bh4), sum(r.res_bh5),
             sum(r.res_bh6), sum(r.res_bh7), sum(r.res_bh8)]::bigint[] AS res_business_hist
  FROM reporting.rollup_day r
 GROUP BY 1, 2, 3, 4;

CREATE VIEW reporting.kpi_monthly AS
SELECT r.bucket AS month, r.business_type, r.channel, r.department,
       sum(r.received) AS received, sum(r.resolved) AS resolved, sum(r.closed) AS closed,
       sum(r.reopened) AS reopened, sum(r.repeats) AS repeats, sum(r.duplicates) AS duplicates,
       sum(r.major) AS major,
       sum(r.responded) AS responded, sum(r.frt_s) AS frt_s_sum, sum(r.frt_bs) AS frt_bs_sum,
       sum(r.res_s) AS res_s_sum, sum(r.res_bs) AS res_bs_sum,
       sum(r.accept_met + r.first_response_met + r.chase_update_met + r.resolution_met) AS sla_met,
       sum(r.accept_breached + r.first_response_breached + r.chase_update_breached + r.resolution_breached)
           AS sla_breached,
       sum(r.esc_l1) AS esc_l1, sum(r.esc_l2) AS esc_l2, sum(r.esc_l3) AS esc_l3, sum(r.esc_l4) AS esc_l4,
       sum(r.visits) AS visits, sum(r.satisfied) AS satisfied,
       reporting.rate(sum(r.accept_met + r.first_response_met + r.chase_update_met + r.resolution_met),
                      sum(r.accept_met + r.first_response_met + r.chase_update_met + r.resolution_met
                          + r.accept_breached + r.first_response_breached + r.chase_update_breached
                          + r.resolution_breached)) AS on_time_rate,
       reporting.rate(sum(r.satisfied), sum(r.visits)) AS satisfaction_rate,
       reporting.rate(sum(r.repeats), sum(r.received)) AS repeat_rate,
       round(sum(r.frt_bs)::numeric / NULLIF(sum(r.responded), 0) / 3600, 2) AS avg_frt_business_h,
       round(sum(r.res_bs)::numeric / NULLIF(sum(r.resolved), 0) / 3600, 2) AS avg_res_business_h,
       round(sum(r.res_s)::numeric / NULLIF(sum(r.resolved), 0) / 3600, 2) AS avg_res_h,
       sum(r.reopens) AS reopens,
       ARRAY[sum(r.frt_h0), sum(r.frt_h1), sum(r.frt_h2), sum(r.frt_h3), sum(r.frt_h4), sum(r.frt_h5), sum(r.frt_h6),
             sum(r.frt_h7), sum(r.frt_h8)]::bigint[] AS frt_hist,
       ARRAY[sum(r.frt_bh0), sum(r.frt_bh1), sum(r.frt_bh2), sum(r.frt_bh3), sum(r.frt_bh4), sum(r.frt_bh5),
             sum(r.frt_bh6), sum(r.frt_bh7), sum(r.frt_bh8)]::bigint[] AS frt_business_hist,
       ARRAY[sum(r.res_h0), sum(r.res_h1), sum(r.res_h2), sum(r.res_h3), sum(r.res_h4), sum(r.res_h5), sum(r.res_h6),
             sum(r.res_h7), sum(r.res_h8)]::bigint[] AS res_hist,
       ARRAY[sum(r.res_bh0), sum(r.res_bh1), sum(r.res_bh2), sum(r.res_bh3), sum(r.res_bh4), sum(r.res_bh5),
             sum(r.res_bh6), sum(r.res_bh7), sum(r.res_bh8)]::bigint[] AS res_business_hist
  FROM reporting.rollup_month r
 GROUP BY 1, 2, 3, 4;

-- SLA compliance (及时率) per clock: met / (met + breached), by the day or month of the decision.
CREATE VIEW reporting.sla_compliance_daily AS
SELECT r.bucket AS day, r.department, c.clock, sum(c.met) AS met, sum(c.breached) AS breached,
       reporting.rate(sum(c.met), sum(c.met + c.breached)) AS on_time_rate
  FROM reporting.rollup_day r,
       LATERAL (VALUES ('accept', r.accept_met, r.accept_breached),
                       ('first_response', r.first_response_met, r.first_response_breached),
                       ('chase_update', r.chase_update_met, r.chase_update_breached),
                       ('resolution', r.resolution_met, r.resolution_breached)) AS c(clock, met, breached)
 GROUP BY 1, 2, 3;

CREATE VIEW reporting.sla_compliance_monthly AS
SELECT r.bucket AS month, r.department, c.clock, sum(c.met) AS met, sum(c.breached) AS breached,
       reporting.rate(sum(c.met), sum(c.met + c.breached)) AS on_time_rate
  FROM reporting.rollup_month r,
       LATERAL (VALUES ('accept', r.accept_met, r.accept_breached),
                       ('first_response', r.first_response_met, r.first_response_breached),
                       ('chase_update', r.chase_update_met, r.chase_update_breached),
                       ('resolution', r.resolution_met, r.resolution_breached)) AS c(clock, met, breached)
 GROUP BY 1, 2, 3;

-- Monthly scorecards. Percentiles come from the business-time histograms (bucket upper bounds).
CREATE VIEW reporting.agent_scorecard AS
SELECT r.bucket AS month, r.department, r.team, r.agent,
       sum(r.received) AS received, sum(r.resolved) AS resolved, sum(r.closed) AS closed,
       sum(r.reopened) AS reopened, sum(r.repeats) AS repeats,
       sum(r.accept_met + r.first_response_met + r.chase_update_met + r.resolution_met) AS sla_met,
       sum(r.accept_breached + r.first_response_breached + r.chase_update_breached + r.resolution_breached)
           AS sla_breached,
       reporting.rate(sum(r.accept_met + r.first_response_met + r.chase_update_met + r.resolution_met),
                      sum(r.accept_met + r.first_response_met + r.chase_update_met + r.resolution_met
                          + r.accept_breached + r.first_response_breached + r.chase_update_breached
                          + r.resolution_breached)) AS on_time_rate,
       sum(r.esc_l1 + r.esc_l2 + r.esc_l3 + r.esc_l4) AS escalations,
       sum(r.visits) AS visits, sum(r.satisfied) AS satisfied,
       reporting.rate(sum(r.satisfied), sum(r.visits)) AS satisfaction_rate,
       round(sum(r.frt_bs)::numeric / NULLIF(sum(r.responded), 0) / 3600, 2) AS avg_frt_business_h,
       round(sum(r.res_bs)::numeric / NULLIF(sum(r.resolved), 0) / 3600, 2) AS avg_res_business_h,
       reporting.hist_quantile(ARRAY[sum(r.res_bh0), sum(r.res_bh1), sum(r.res_bh2), sum(r.res_bh3), sum(r.res_bh4),
                                     sum(r.res_bh5), sum(r.res_bh6), sum(r.res_bh7), sum(r.res_bh8)]::bigint[],
                               0.9) AS p90_res_business_s
  FROM reporting.rollup_month r
 GROUP BY 1, 2, 3, 4;

CREATE VIEW reporting.department_scorecard AS
SELECT month, department, sum(received) AS received, sum(resolved) AS resolved, sum(closed) AS closed,
       sum(reopened) AS reopened, sum(repeats) AS repeats,
       reporting.rate(sum(repeats), sum(received)) AS repeat_rate,
       sum(sla_met) AS sla_met, sum(sla_breached) AS sla_breached,
       reporting.rate(sum(sla_met), sum(sla_met + sla_breached)) AS on_time_rate,
       sum(escalations) AS escalations, sum(visits) AS visits, sum(satisfied) AS satisfied,
       reporting.rate(sum(satisfied), sum(visits)) AS satisfaction_rate,
       count(DISTINCT agent) FILTER (WHERE agent <> '') AS agents
  FROM reporting.agent_scorecard
 GROUP BY 1, 2;

-- The secret that makes customer_key a pseudonym nobody can reverse by hashing candidate customer
-- refs (customer ids are UUIDv5 of the ref, so an unsalted hash could be brute-forced from phone
-- numbers). Made once here; BI users cannot read it.
CREATE TABLE reporting.pseudonym_key (
    id    boolean PRIMARY KEY DEFAULT true CHECK (id),
    salt  text NOT NULL
);
INSERT INTO reporting.pseudonym_key (salt)
    SELECT string_agg(md5(random()::text || clock_timestamp()::text || i::text), '') FROM generate_series(1, 4) AS i;

-- One row per ticket, personal data masked: no name, phone, e-mail, subject or text; the customer
-- is a stable pseudonym (md5 of a secret salt and the internal id) so repeat behaviour can still be analysed.
CREATE VIEW reporting.ticket_fact AS
SELECT f.ticket_id, md5(k.salt || t.customer_id::text) AS customer_key, f.business_type, f.channel, f.category,
       f.department, f.team, f.agent, f.region, f.severity, f.state, t.priority, t.vip,
       f.created_at, f.first_response_at, f.resolved_at, f.closed_at,
       f.frt_s, f.frt_bs, f.res_s, f.res_bs, f.reopens, f.is_repeat, f.is_duplicate, t.chase_count,
       f.visit_at, f.satisfaction, f.clk AS sla_outcomes, f.esc_level AS escalation_levels
  FROM reporting.ticket_facts f JOIN tickets t ON t.id = f.ticket_id CROSS JOIN reporting.pseudonym_key k;

-- Open tickets (not resolved or closed) by age now.
CREATE VIEW reporting.backlog AS
SELECT f.business_type, f.department, f.team, f.agent,
       CASE WHEN now() - f.created_at < interval '1 day' THEN '0-1d'
            WHEN now() - f.created_at < interval '3 days' THEN '1-3d'
            WHEN now() - f.created_at < interval '7 days' THEN '3-7d'
            WHEN now() - f.created_at < interval '30 days' THEN '7-30d'
            ELSE '30d+' END AS age,
       count(*) AS tickets, min(f.created_at) AS oldest
  FROM reporting.ticket_facts f
 WHERE f.state NOT IN ('resolved', 'closed')
 GROUP BY 1, 2, 3, 4, 5;

-- The BI role: read the views above, nothing else (no raw tables, no personal data, no writes).
-- Operators give a login role membership: CREATE ROLE alice LOGIN PASSWORD '...' IN ROLE redress_bi.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'redress_bi') THEN
        CREATE ROLE redress_bi NOLOGIN;
    END IF;
END $$;
REVOKE ALL ON SCHEMA reporting FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA reporting FROM PUBLIC;
GRANT USAGE ON SCHEMA reporting TO redress_bi;
GRANT SELECT ON reporting.kpi_daily, reporting.kpi_monthly, reporting.sla_compliance_daily,
    reporting.sla_compliance_monthly, reporting.agent_scorecard, reporting.department_scorecard,
    reporting.ticket_fact, reporting.backlog, reporting.monthly_reports TO redress_bi;
GRANT EXECUTE ON FUNCTION reporting.hist_quantile(bigint[], double precision), reporting.rate(numeric, numeric)
    TO redress_bi;
