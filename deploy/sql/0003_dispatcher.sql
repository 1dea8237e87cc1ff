-- 0003: the organisation the dispatcher routes to, and what it decided.
--
-- Invariants:
--  * the organisation (departments, teams, agents, routing rules, acceptance limits) is loaded by
--    `redressctl org load` in one transaction, which NOTIFYs redress_org; it may also be edited
--    by SQL (then NOTIFY redress_org, or wait for the dispatchers' periodic reload);
--  * an agent's open load is the sum of ticket_assignments.weight over its rows with ended_at IS
--    NULL; that is the truth the Redis counters are reconciled to;
--  * a ticket has at most one open assignment (ended_at IS NULL), enforced by a unique index;
--  * every assignment, re-dispatch, transfer and return is also a ticket_history row.

CREATE TABLE departments (
    id               text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    parent_id        text REFERENCES departments(id) DEFERRABLE INITIALLY DEFERRED,
    name             text NOT NULL,
    dispatch_centre  boolean NOT NULL DEFAULT false,   -- where returns (退单) come back to
    default_team     text                              -- a unit named by a transfer/return lands here
);

CREATE TABLE teams (
    id                text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    department_id     text NOT NULL REFERENCES departments(id) DEFERRABLE INITIALLY DEFERRED,
    name              text NOT NULL,
    strategy          text NOT NULL DEFAULT 'least_loaded' CHECK (strategy IN ('least_loaded', 'round_robin')),
    overflow_team     text REFERENCES teams(id) DEFERRABLE INITIALLY DEFERRED,
    overflow_after_s  integer NOT NULL DEFAULT 300 CHECK (overflow_after_s >= 0),
    major_weight      integer NOT NULL DEFAULT 1 CHECK (major_weight BETWEEN 1 AND 100)  -- load units of a major ticket
);
ALTER TABLE departments ADD FOREIGN KEY (default_team) REFERENCES teams(id) DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE agents (
    id              text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.:@-]{1,64}$'),
    team_id         text NOT NULL REFERENCES teams(id) DEFERRABLE INITIALLY DEFERRED,
    name            text NOT NULL DEFAULT '',
    capacity        integer NOT NULL DEFAULT 5 CHECK (capacity BETWEEN 0 AND 100000),  -- load units
    -- skills; an empty array means "any"
    business_types  text[] NOT NULL DEFAULT '{}',
    categories      text[] NOT NULL DEFAULT '{}',      -- prefixes of tickets.category
    languages       text[] NOT NULL DEFAULT '{}',      -- prefixes of tickets.language ('zh' matches 'zh-CN')
    regions         text[] NOT NULL DEFAULT '{}',      -- prefixes of tickets.region
    active          boolean NOT NULL DEFAULT true      -- false: kept for history, never routed to
);
CREATE INDEX agents_team_idx ON agents (team_id);

-- Presence as last set by an agent's desk (redressctl agent online|away|offline); the dispatcher
-- copies it into Redis after a flush. Online presence expires without heartbeats.
CREATE TABLE agent_presence (
    agent_id    text PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
    status      text NOT NULL CHECK (status IN ('online', 'away', 'offline')),
    expires_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- First match in ord order wins; NULL matches anything. Prefix matches for category and region.
CREATE TABLE routing_rules (
    name             text PRIMARY KEY,
    ord              integer NOT NULL,
    business_type    text,
    category_prefix  text,
    region_prefix    text,
    severity         text CHECK (severity IN ('major', 'general')),
    channel          text,
    team_id          text NOT NULL REFERENCES teams(id) DEFERRABLE INITIALLY DEFERRED
);

-- How long an agent has to accept an assigned ticket before it goes to the next agent.
-- business_type '*' is the default; transferred = the limit for a transferred ticket.
CREATE TABLE accept_limits (
    business_type  text PRIMARY KEY,
    seconds        integer NOT NULL CHECK (seconds > 0),
    transferred_s  integer NOT NULL CHECK (transferred_s > 0)
);
INSERT INTO accept_limits (business_type, seconds, transferred_s) VALUES
    ('*', 1800, 1800),
    ('fault_repair', 300, 1800);

-- Who holds (and held) each ticket. kind: assign (first), redispatch (after a missed acceptance
-- or a freed queue), transfer, return. outcome when ended: accepted is not an end -- the row stays
-- open while the agent works the ticket; ended by missed, transferred, returned, resolved, closed.
CREATE TABLE ticket_assignments (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id      uuid NOT NULL REFERENCES tickets(id),
    agent_id       text NOT NULL,
    team_id        text NOT NULL,
    department_id  text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('assign', 'redispatch', 'transfer', 'return', 'reopen')),
    weight         integer NOT NULL CHECK (weight > 0),
    assigned_at    timestamptz NOT NULL DEFAULT now(),
    accept_due_at  timestamptz NOT NULL,
    accepted_at    timestamptz,
    ended_at       timestamptz,
    outcome        text CHECK (outcome IN ('missed', 'transferred', 'returned', 'resolved', 'closed', 'released')),
    dispatcher     text NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX ticket_assignments_one_open ON ticket_assignments (ticket_id) WHERE ended_at IS NULL;
CREATE INDEX ticket_assignments_agent_open ON ticket_assignments (agent_id) WHERE ended_at IS NULL;
CREATE INDEX ticket_assignments_ticket ON ticket_assignments (ticket_id, id);
CREATE INDEX ticket_assignments_due ON ticket_assignments (accept_due_at)
    WHERE ended_at IS NULL AND accepted_at IS NULL;

-- Tickets nobody can take yet, handed out in (priority, enqueued_at) order when capacity appears.
CREATE TABLE dispatch_queue (
    ticket_id    uuid PRIMARY KEY REFERENCES tickets(id),
    team_id      text NOT NULL,
    priority     smallint NOT NULL,
    kind         text NOT NULL,
    enqueued_at  timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 1,
    reason       text NOT NULL DEFAULT ''
);
CREATE INDEX dispatch_queue_order ON dispatch_queue (priority, enqueued_at);
CREATE INDEX dispatch_queue_team ON dispatch_queue (team_id, priority, enqueued_at);

ALTER TABLE tickets
    ADD COLUMN accountable_unit text,     -- 首问负责: first_owner_unit until a hand-over is accepted
    ADD COLUMN owner_team       text,
    ADD COLUMN route_to_unit    text,     -- the unit a transfer or return named, until routed
    ADD COLUMN missed_accepts   integer NOT NULL DEFAULT 0;

-- Tickets waiting for the dispatcher: classified, returned, or transferred to a unit (no agent).
CREATE INDEX tickets_dispatch_idx ON tickets (updated_at)
    WHERE state IN ('classified', 'returned') OR (state = 'assigned' AND owner_agent IS NULL);
