-- 0005: SLA clocks and escalation (services/escalation; docs/escalation.md).
--
-- Invariants:
--  * sla_queue holds, for every committed ticket_history row, its seq until the escalation service
--    has applied it: the trigger below writes it in the writer's own transaction, and the service
--    deletes it in the transaction that applies it. So every history row is applied exactly once,
--    whatever order concurrent writers commit in.
--  * sla_clocks is the truth about every clock; Redis only caches "clock id -> next instant to look
--    at" and is rebuilt from here. A clock's stages (warnings, breach, escalation levels) are
--    snapshotted from its policy when it is armed, as business-time offsets from its start: a policy
--    change applies to clocks armed after it.
--  * sla_events is append-only. A warning, a breach and an escalation level are recorded at most once
--    per clock (unique index), so a timer that fires twice changes nothing the second time.
--  * Times the service computes (due instants, event instants) come from its clock, never from
--    now(), so tests can run days of SLA time in milliseconds.

CREATE TABLE sla_policies (
    id             text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    description    text NOT NULL DEFAULT '',
    clock          text NOT NULL CHECK (clock IN ('accept', 'first_response', 'chase_update', 'resolution')),
    business_type  text NOT NULL DEFAULT '*',          -- '*' = any
    severity       text CHECK (severity IN ('major', 'general')),        -- NULL = any
    channel        text,                                -- NULL = any
    customer_tier  text CHECK (customer_tier IN ('vip', 'standard')),    -- NULL = any
    transferred    boolean,             -- accept clocks: true = after a transfer, false = not, NULL = both
    target         integer NOT NULL CHECK (target > 0),
    unit           text NOT NULL CHECK (unit IN ('minutes', 'business_minutes', 'working_days')),
    calendar_id    text REFERENCES business_calendars(id),  -- business units; NULL = escalation.calendar
    warn_pct       smallint[] NOT NULL DEFAULT '{50,80}'
                   CHECK (0 < ALL (warn_pct) AND 100 > ALL (warn_pct) AND cardinality(warn_pct) <= 4),
    active         boolean NOT NULL DEFAULT true,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Level k fires when `after` (the policy's unit) has elapsed since the clock started; level 1 is
-- usually at the target (the breach). role says who is told; action what else happens:
-- raise_priority lowers tickets.priority by one (1 = most urgent); reroute (accept clocks) takes the
-- ticket from the agent who has not accepted it and lets the dispatcher give it to the next one.
CREATE TABLE sla_escalation_levels (
    policy_id  text NOT NULL REFERENCES sla_policies(id) ON DELETE CASCADE,
    level      smallint NOT NULL CHECK (level BETWEEN 1 AND 4),
    after      integer NOT NULL CHECK (after >= 0),
    role       text NOT NULL CHECK (role IN ('team_lead', 'department_head', 'leadership')),
    action     text NOT NULL DEFAULT 'notify' CHECK (action IN ('notify', 'raise_priority', 'reroute')),
    PRIMARY KEY (policy_id, level)
);

-- Defaults from the policies we serve (95598 and 12345 service rules).
INSERT INTO sla_policies (id, description, clock, business_type, severity, transferred, target, unit, warn_pct) VALUES
    ('repair-accept',      '故障报修工单5分钟内接单 / accept a fault-repair order in 5 minutes',
                           'accept', 'fault_repair', NULL, false, 5, 'minutes', '{80}'),
    ('transfer-accept',    '转派工单30分钟内接单 / accept a transferred task in 30 minutes',
                           'accept', '*', NULL, true, 30, 'minutes', '{50,80}'),
    ('service-contact',    '业务申请3个工作日内联系客户 / contact a service applicant within 3 working days',
                           'first_response', 'service_application', NULL, NULL, 3, 'working_days', '{50,80}'),
    ('consultation-reply', '咨询3个工作日内答复 / answer a consultation within 3 working days',
                           'first_response', 'consultation', NULL, NULL, 3, 'working_days', '{50,80}'),
    ('suggestion-reply',   '意见建议3个工作日内答复 / answer a suggestion within 3 working days',
                           'first_response', 'suggestion', NULL, NULL, 3, 'working_days', '{50,80}'),
    ('major-resolve',      '重大诉求12小时内处理完毕（自受理起） / resolve major issues in 12 hours from receipt',
                           'resolution', '*', 'major', NULL, 12 * 60, 'minutes', '{50,80}'),
    ('general-resolve',    '一般诉求24小时内处理完毕（自受理起） / resolve general issues in 24 hours from receipt',
                           'resolution', '*', 'general', NULL, 24 * 60, 'minutes', '{50,80}'),
    ('chase-update',       '催办后24小时内回复，3天未回复升级督办 / answer a chase in 24 hours; leadership supervision after 3 days',
                           'chase_update', '*', NULL, NULL, 24 * 60, 'minutes', '{50}');
INSERT INTO sla_escalation_levels (policy_id, level, after, role, action) VALUES
    ('repair-accept', 1, 5, 'team_lead', 'reroute'),
    ('repair-accept', 2, 15, 'department_head', 'notify'),
    ('transfer-accept', 1, 30, 'team_lead', 'notify'),
    ('transfer-accept', 2, 60, 'department_head', 'notify'),
    ('service-contact', 1, 3, 'team_lead', 'notify'),
    ('service-contact', 2, 4, 'department_head', 'notify'),
    ('consultation-reply', 1, 3, 'team_lead', 'notify'),
    ('consultation-reply', 2, 4, 'department_head', 'notify'),
    ('suggestion-reply', 1, 3, 'team_lead', 'notify'),
    ('major-resolve', 1, 12 * 60, 'team_lead', 'raise_priority'),
    ('major-resolve', 2, 18 * 60, 'department_head', 'notify'),
    ('major-resolve', 3, 24 * 60, 'leadership', 'notify'),
    ('general-resolve', 1, 24 * 60, 'team_lead', 'raise_priority'),
    ('general-resolve', 2, 48 * 60, 'department_head', 'notify'),
    ('chase-update', 1, 24 * 60, 'team_lead', 'raise_priority'),
    ('chase-update', 2, 48 * 60, 'department_head', 'notify'),
    ('chase-update', 3, 72 * 60, 'leadership', 'notify');

-- One clock of one ticket. cycle counts how often this clock was armed for the ticket (a reopen,
-- a new chase, a new assignment arm it again). While running, the business time elapsed is
-- elapsed_ms + (business time from running_since to now); paused and stopped clocks have
-- running_since NULL. stage_code/stage_at are the stages in order: 1..99 = warning at that
-- percentage, 100 = breach, 100+k = escalation level k; stage_at = business ms from the start.
-- next_stage indexes the first stage not yet fired (0-based); next_fire_at is its instant while
-- running (NULL when paused, stopped or nothing is left to fire).
CREATE TABLE sla_clocks (
    id            bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    ticket_id     uuid NOT NULL REFERENCES tickets(id),
    clock         text NOT NULL CHECK (clock IN ('accept', 'first_response', 'chase_update', 'resolution')),
    cycle         integer NOT NULL CHECK (cycle >= 1),
    policy_id     text NOT NULL,    -- no foreign key: a clock keeps its snapshot if the policy is deleted
    calendar_id   text,                                  -- NULL = calendar time (24/7)
    target_ms     bigint NOT NULL CHECK (target_ms >= 0),
    started_at    timestamptz NOT NULL,
    running_since timestamptz,
    elapsed_ms    bigint NOT NULL DEFAULT 0 CHECK (elapsed_ms >= 0),
    state         text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'paused', 'stopped')),
    outcome       text CHECK (outcome IN ('met', 'cancelled')),   -- set when stopped
    due_at        timestamptz,                           -- breach instant while running
    breached_at   timestamptz,
    stage_code    smallint[] NOT NULL,
    stage_at      bigint[] NOT NULL,
    next_stage    smallint NOT NULL DEFAULT 0,
    next_fire_at  timestamptz,
    by_transfer   boolean NOT NULL DEFAULT false,        -- accept clocks armed by a transfer
    armed_at      timestamptz NOT NULL,
    stopped_at    timestamptz,
    UNIQUE (ticket_id, clock, cycle),
    CHECK (cardinality(stage_code) = cardinality(stage_at))
) WITH (fillfactor = 80);   -- room on the page: firing updates unindexed columns in place (HOT)
-- the rebuild of Redis reads the clocks not stopped (stopped ones pile up over the years); firing
-- does not change state, so its updates stay in place
CREATE INDEX sla_clocks_open_idx ON sla_clocks (id) WHERE state <> 'stopped';



CREATE TABLE sla_events (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clock_id     bigint NOT NULL,   -- sla_clocks.id, written in the clock's own transaction (no foreign
                                    -- key: its check would cost a third of the arming time)
    ticket_id    uuid NOT NULL,
    clock        text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('warned', 'breached', 'met', 'paused', 'resumed', 'escalated',
                                               'cancelled')),   -- 'armed': see sla_timeline
    level        smallint,           -- warned: the percentage; escalated: the level
    at           timestamptz NOT NULL,   -- when it happened in SLA terms (a warning: its exact instant)
    recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    detail       text NOT NULL DEFAULT ''
);
CREATE INDEX sla_events_clock_idx ON sla_events (clock_id);   -- a ticket's events: via sla_clocks
CREATE UNIQUE INDEX sla_events_once ON sla_events (clock_id, kind, level) WHERE kind IN ('warned', 'escalated');
CREATE UNIQUE INDEX sla_events_breach_once ON sla_events (clock_id) WHERE kind = 'breached';

-- What supervisors (and leadership: 督办) are asked to act on. Written with the 'escalated' event.
CREATE TABLE sla_escalations (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clock_id         bigint NOT NULL REFERENCES sla_clocks(id),
    ticket_id        uuid NOT NULL REFERENCES tickets(id),
    clock            text NOT NULL,
    level            smallint NOT NULL,
    role             text NOT NULL,
    target_unit      text NOT NULL DEFAULT '',   -- the team (team_lead) or department the role belongs to
    action           text NOT NULL,
    at               timestamptz NOT NULL,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    acknowledged_note text NOT NULL DEFAULT '',     -- redressctl sla ack --note
    UNIQUE (clock_id, level)
);
CREATE INDEX sla_escalations_open_idx ON sla_escalations (role, at) WHERE acknowledged_at IS NULL;

-- The escalation service's inbox: one row per committed history row, in the writer's transaction.
-- part spreads tickets over 8 partitions (a ticket always in the same one), so several processes
-- apply the queue at once while each ticket's rows stay in order.
CREATE TABLE sla_queue (
    part  smallint NOT NULL CHECK (part BETWEEN 0 AND 7),
    seq   bigint NOT NULL,
    PRIMARY KEY (part, seq)
);
CREATE FUNCTION sla_queue_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sla_queue (part, seq) SELECT hashtext(ticket_id::text) & 7, seq FROM new_rows;
    RETURN NULL;
END $$;
CREATE TRIGGER ticket_history_sla AFTER INSERT ON ticket_history
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sla_queue_history();

-- Every SLA event of a clock, arming included: a clock's row is its 'armed' record (written once,
-- in the transaction that armed it), so it is not repeated in sla_events.
CREATE VIEW sla_timeline AS
    SELECT c.id AS clock_id, c.ticket_id, c.clock, c.cycle, 'armed'::text AS kind, NULL::smallint AS level,
           c.armed_at AS at, c.armed_at AS recorded_at, c.policy_id AS detail
      FROM sla_clocks c
    UNION ALL
    SELECT e.clock_id, e.ticket_id, e.clock, c.cycle, e.kind, e.level, e.at, e.recorded_at, e.detail
      FROM sla_events e JOIN sla_clocks c ON c.id = e.clock_id;
