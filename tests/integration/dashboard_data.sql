-- tests/integration/dashboard_data.sql: deterministic synthetic data for the dashboard test
-- (dashboard_browser.sh), loaded in ONE transaction into a freshly migrated database.
--
-- 1,200 tickets received over the last 45 days (so the default 30-day period cuts through them),
-- in five departments (one with HTML metacharacters in its name, one with no tickets at all),
-- twelve agents (one never assigned anything), every business type and a few tickets not yet
-- classified or dispatched; resolutions, closes, return visits (some tickets visited twice: only
-- the latest counts), repeats, accept and resolution SLA clocks met or breached, and escalations.
-- Every "random" choice is a hash of the ticket number, so the same data comes out on every run
-- (relative to now(): the dashboard's default period ends today). Tickets are received 35 minutes
-- past a whole hour before now, so for the next 25 minutes no open ticket is near an age boundary
-- of reporting.backlog (1, 3, 7, 30 days) and a check that runs a little after the page agrees.
--
-- The raw tables only: the reporting service builds facts and rollups from them (the triggers
-- queue every ticket in reporting.queue when this transaction commits).
BEGIN;

INSERT INTO departments (id, parent_id, name) VALUES
    ('hq', NULL, '总部调度中心 Dispatch centre'),
    ('south', 'hq', '华南分公司 South branch (Guangdong)'),
    ('north', 'hq', '华北分公司 North branch (Beijing)'),
    ('rnd', 'hq', '研发 <R&D> "Lab" & Co''s <script>alert(1)</script>'),
    ('west', 'hq', '西部分公司 West branch (no tickets yet)');
INSERT INTO teams (id, department_id, name) VALUES
    ('hq-desk', 'hq', '调度台 Dispatch desk'),
    ('south-gen', 'south', '华南综合组 South general'),
    ('south-rep', 'south', '华南抢修组 South repairs'),
    ('north-gen', 'north', '华北综合组 North general'),
    ('rnd-lab', 'rnd', '实验组 <Lab> & friends'),
    ('west-gen', 'west', '西部综合组 West general');
INSERT INTO agents (id, team_id, name) VALUES
    ('a-hq-1', 'hq-desk', '张伟'),
    ('a-hq-2', 'hq-desk', 'Emily Carter'),
    ('a-s-1', 'south-gen', '王芳'),
    ('a-s-2', 'south-gen', '李娜'),
    ('a-s-3', 'south-rep', '刘强'),
    ('a-s-4', 'south-rep', '陈静'),
    ('a-s-idle', 'south-rep', '赵敏 (no tickets)'),
    ('a-n-1', 'north-gen', '杨洋'),
    ('a-n-2', 'north-gen', '黄磊'),
    ('a-r-1', 'rnd-lab', 'O''Brien <dev>'),
    ('a-r-2', 'rnd-lab', '周杰 & 吴磊'),
    ('a-w-1', 'west-gen', '孙丽');

INSERT INTO taxonomy_categories (code, parent_code, level, name) VALUES
    ('power', NULL, 1, '供电'),
    ('power.outage', 'power', 2, '停电'),
    ('power.voltage', 'power', 2, '电压异常'),
    ('billing', NULL, 1, '电费'),
    ('billing.double', 'billing', 2, '重复扣费'),
    ('billing.meter', 'billing', 2, '电表计量'),
    ('service', NULL, 1, '服务'),
    ('service.attitude', 'service', 2, '服务态度'),
    ('service.delay', 'service', 2, '办理拖延'),
    ('install', NULL, 1, '业扩报装'),
    ('install.new', 'install', 2, '新装'),
    ('install.change', 'install', 2, '增容 <变更> & "过户"'),
    ('safety', NULL, 1, '安全隐患');

INSERT INTO customers (id, customer_ref, name)
SELECT md5('dash-customer-' || i)::uuid, 'DASH-C' || i, '客户' || i FROM generate_series(1, 160) AS i;

-- The plan: one row per ticket, every choice from hashes of its number.
CREATE TEMP TABLE plan ON COMMIT DROP AS
WITH base AS (
    SELECT i, md5('dash-ticket-' || i)::uuid AS id,
           abs(hashtext('c' || i)) AS h1, abs(hashtext('t' || i)) AS h2, abs(hashtext('s' || i)) AS h3,
           abs(hashtext('r' || i)) AS h4, abs(hashtext('v' || i)) AS h5, abs(hashtext('k' || i)) AS h6,
           abs(hashtext('a' || i)) AS h7, abs(hashtext('f' || i)) AS h8
      FROM generate_series(1, 1200) AS i
), agents_arr AS (
    SELECT ARRAY['a-hq-1', 'a-hq-2', 'a-s-1', 'a-s-2', 'a-s-3', 'a-s-4', 'a-n-1', 'a-n-2', 'a-r-1', 'a-r-2',
                 'a-s-1', 'a-s-3', 'a-n-1'] AS a
), p AS (
    SELECT b.*,
           now() - make_interval(secs => 2100 + (b.h1 % (45 * 24)) * 3600) AS created_at,
           md5('dash-customer-' || (1 + b.h2 % 160))::uuid AS customer_id,
           (ARRAY['hotline', 'web', 'app', 'email', 'mayor_hotline'])[1 + b.h3 % 5] AS channel,
           CASE WHEN b.h4 % 40 = 0 THEN NULL
                ELSE (ARRAY['complaint', 'complaint', 'complaint', 'fault_repair', 'fault_repair', 'consultation',
                            'service_application', 'suggestion', 'praise', 'report'])[1 + b.h4 % 10] END AS business_type,
           -- skewed so that the categories have distinct counts
           (ARRAY['power.outage', 'power.outage', 'power.outage', 'power.outage', 'power.outage', 'power.outage',
                  'billing.double', 'billing.double', 'billing.double', 'billing.double', 'billing.double',
                  'service.attitude', 'service.attitude', 'service.attitude', 'service.attitude',
                  'power.voltage', 'power.voltage', 'power.voltage', 'billing.meter', 'billing.meter',
                  'service.delay', 'service.delay', 'install.new', 'install.change', 'safety', 'unknown.code',
                  'power.outage', 'billing.double', 'service.attitude', 'power.voltage'])[1 + b.h5 % 30] AS category,
           CASE WHEN b.h6 % 10 = 0 THEN 'major' ELSE 'general' END AS severity,
           CASE WHEN b.h7 % 25 = 0 THEN NULL ELSE (SELECT a[1 + b.h7 % 13] FROM agents_arr) END AS agent,
           b.h8 % 100 AS fate    -- < 30: still open, < 80: resolved, else closed
      FROM base b
)
SELECT p.*, ag.team_id AS team, t.department_id AS department,
       CASE WHEN p.business_type IS NULL THEN 'new'
            WHEN p.agent IS NULL THEN 'classified'
            WHEN p.fate < 15 THEN 'assigned'
            WHEN p.fate < 30 THEN 'in_progress'
            WHEN p.fate < 80 THEN 'resolved'
            ELSE 'closed' END AS state
  FROM p LEFT JOIN agents ag ON ag.id = p.agent LEFT JOIN teams t ON t.id = ag.team_id;

ALTER TABLE plan ADD COLUMN first_response_at timestamptz, ADD COLUMN resolved_at timestamptz,
    ADD COLUMN closed_at timestamptz;
UPDATE plan SET first_response_at = least(now(), created_at + make_interval(secs => 60 + (h2 % 100) * (h2 % 100) / 4))
 WHERE state IN ('in_progress', 'resolved', 'closed');
UPDATE plan SET resolved_at = least(now(), first_response_at + make_interval(secs => 600 + (h3 % 300) * (h3 % 300)))
 WHERE state IN ('resolved', 'closed');
UPDATE plan SET closed_at = least(now(), resolved_at + interval '2 hours') WHERE state = 'closed';

INSERT INTO tickets (id, gateway_id, event_id, channel, customer_id, region, language, subject, body, state,
                     business_type, category, severity, priority, first_owner_unit, owner_unit, owner_team,
                     owner_agent, occurred_at, created_at, updated_at, first_response_at, resolved_at, closed_at)
SELECT id, 'dash-test', 'dash-' || i, channel, customer_id, 'CN-44', 'zh-CN', '测试工单 ' || i, '', state,
       business_type, CASE WHEN business_type IS NULL THEN NULL ELSE category END,
       CASE WHEN business_type IS NULL THEN NULL ELSE severity END,
       CASE WHEN business_type IS NULL THEN NULL ELSE 3 END,
       department, department, team, agent, created_at, created_at, now(), first_response_at, resolved_at, closed_at
  FROM plan;

-- Classifications; a repeat is a later ticket of a customer who complained before (one in five).
INSERT INTO ticket_classifications (ticket_id, business_type, business_type_source, business_type_confidence,
                                    category, category_source, category_confidence, severity, priority,
                                    priority_source, repeat_of, classified_at)
SELECT id, business_type, 'test', 1, category, 'test', 1, severity, 3, 'test',
       CASE WHEN h6 % 5 = 0 THEN prev END, created_at
  FROM (SELECT p.*, lag(p.id) OVER (PARTITION BY p.customer_id ORDER BY p.created_at, p.i) AS prev FROM plan p) x
 WHERE business_type IS NOT NULL;

INSERT INTO ticket_history (ticket_id, at, kind, from_state, to_state, actor)
SELECT id, created_at, 'created', NULL, 'new', 'dash-test' FROM plan;
INSERT INTO ticket_history (ticket_id, at, kind, from_state, to_state, actor)
SELECT id, resolved_at, 'resolve', 'in_progress', 'resolved', agent FROM plan WHERE resolved_at IS NOT NULL;
-- Return visits (回访) on two thirds of the resolved; every seventh visited twice, the second
-- answer (the one that counts) different from the first.
INSERT INTO ticket_history (ticket_id, at, kind, from_state, to_state, actor, satisfaction)
SELECT id, least(now(), resolved_at + interval '1 hour'), 'return_visit', state, state, 'visitor',
       (ARRAY[5, 5, 4, 4, 4, 3, 2, 1, 5, 4])[1 + h5 % 10]
  FROM plan WHERE resolved_at IS NOT NULL AND h5 % 3 <> 0;
INSERT INTO ticket_history (ticket_id, at, kind, from_state, to_state, actor, satisfaction)
SELECT id, least(now(), resolved_at + interval '1 hour' + interval '1 second'), 'return_visit', state, state,
       'visitor', CASE WHEN (ARRAY[5, 5, 4, 4, 4, 3, 2, 1, 5, 4])[1 + h5 % 10] >= 4 THEN 2 ELSE 5 END
  FROM plan WHERE resolved_at IS NOT NULL AND h5 % 3 <> 0 AND i % 7 = 0;

-- SLA clocks. accept: 30 minutes from receipt to first response (met or breached, decided);
-- resolution: 12 h (major) or 24 h (general) from receipt; breached if it took longer, or if
-- still open past its target (a running clock that breached).
INSERT INTO sla_clocks (ticket_id, clock, cycle, policy_id, target_ms, started_at, running_since, elapsed_ms, state,
                        outcome, due_at, breached_at, stage_code, stage_at, next_stage, armed_at, stopped_at)
SELECT id, 'accept', 1, 'transfer-accept', 1800000, created_at, NULL, 0, 'stopped', 'met', NULL,
       CASE WHEN first_response_at > created_at + interval '30 minutes' THEN created_at + interval '30 minutes' END,
       '{100}', '{1800000}', 1, created_at, first_response_at
  FROM plan WHERE first_response_at IS NOT NULL;
INSERT INTO sla_clocks (ticket_id, clock, cycle, policy_id, target_ms, started_at, running_since, elapsed_ms, state,
                        outcome, due_at, breached_at, stage_code, stage_at, next_stage, armed_at, stopped_at)
SELECT id, 'resolution', 1, CASE severity WHEN 'major' THEN 'major-resolve' ELSE 'general-resolve' END,
       tgt * 1000, created_at,
       CASE WHEN resolved_at IS NULL THEN created_at END, 0,
       CASE WHEN resolved_at IS NULL THEN 'running' ELSE 'stopped' END,
       CASE WHEN resolved_at IS NULL THEN NULL ELSE 'met' END,
       CASE WHEN resolved_at IS NULL THEN created_at + make_interval(secs => tgt) END,
       CASE WHEN coalesce(resolved_at, now()) > created_at + make_interval(secs => tgt)
            THEN created_at + make_interval(secs => tgt) END,
       '{100}', ARRAY[tgt * 1000], 0, created_at, resolved_at
  FROM (SELECT *, CASE severity WHEN 'major' THEN 43200 ELSE 86400 END AS tgt FROM plan
         WHERE state IN ('assigned', 'in_progress', 'resolved', 'closed')) x;
INSERT INTO sla_events (clock_id, ticket_id, clock, kind, level, at)
SELECT c.id, c.ticket_id, c.clock, 'breached', NULL, c.breached_at FROM sla_clocks c WHERE c.breached_at IS NOT NULL;
INSERT INTO sla_events (clock_id, ticket_id, clock, kind, level, at)
SELECT c.id, c.ticket_id, c.clock, 'met', NULL, c.stopped_at FROM sla_clocks c
 WHERE c.outcome = 'met' AND c.breached_at IS NULL;
INSERT INTO sla_escalations (clock_id, ticket_id, clock, level, role, action, at)
SELECT c.id, c.ticket_id, c.clock, 1, 'team_lead', 'notify', c.breached_at
  FROM sla_clocks c WHERE c.breached_at IS NOT NULL AND c.clock = 'resolution';

COMMIT;
