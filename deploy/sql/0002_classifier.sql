-- 0002: what the classifier needs: taxonomies, operator rules, and its decisions.
--
-- Invariants:
--  * a ticket has at most one classification (ticket_classifications.ticket_id is the key), written
--    in the same transaction that moves the ticket from 'new' to 'classified';
--  * at most one ruleset is active; classifiers LISTEN on channel redress_rules and reload it;
--  * duplicate_of / repeat_of always point at an EARLIER ticket of the same customer.

CREATE TABLE taxonomy_business_types (
    code     text PRIMARY KEY CHECK (code ~ '^[a-z0-9_]+$'),
    name_zh  text NOT NULL,
    name_en  text NOT NULL,
    ord      smallint NOT NULL DEFAULT 0
);
INSERT INTO taxonomy_business_types (code, name_zh, name_en, ord) VALUES
    ('consultation',        '咨询',     'Consultation',        1),
    ('complaint',           '投诉',     'Complaint',           2),
    ('fault_repair',        '故障报修', 'Fault repair',        3),
    ('service_application', '业务申请', 'Service application', 4),
    ('suggestion',          '意见建议', 'Suggestion',          5),
    ('praise',              '表扬',     'Praise',              6),
    ('report',              '举报',     'Report',              7);

-- A hierarchical category tree (e.g. CFPB product -> issue, or a 3-level government taxonomy).
CREATE TABLE taxonomy_categories (
    code         text PRIMARY KEY,
    parent_code  text REFERENCES taxonomy_categories(code),
    level        smallint NOT NULL CHECK (level BETWEEN 1 AND 8),
    name         text NOT NULL
);
CREATE INDEX taxonomy_categories_parent_idx ON taxonomy_categories (parent_code);

CREATE TABLE classifier_rulesets (
    version    text PRIMARY KEY,
    body       jsonb NOT NULL,
    loaded_at  timestamptz NOT NULL DEFAULT now(),
    loaded_by  text NOT NULL DEFAULT '',
    active     boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX classifier_rulesets_one_active ON classifier_rulesets ((true)) WHERE active;

CREATE TABLE ticket_classifications (
    ticket_id                 uuid PRIMARY KEY REFERENCES tickets(id),
    business_type             text NOT NULL,
    business_type_source      text NOT NULL,   -- 'rule:<name>', 'model:<version>' or 'default'
    business_type_confidence  real NOT NULL,
    category                  text,
    category_source           text NOT NULL,
    category_confidence       real NOT NULL,
    severity                  text NOT NULL CHECK (severity IN ('major', 'general')),
    severity_reasons          text[] NOT NULL DEFAULT '{}',
    priority                  smallint NOT NULL CHECK (priority BETWEEN 1 AND 4),
    priority_source           text NOT NULL,
    repeat_of                 uuid REFERENCES tickets(id),
    duplicate_of              uuid REFERENCES tickets(id),
    rules_version             text NOT NULL DEFAULT '',
    classified_at             timestamptz NOT NULL DEFAULT now(),
    classifier                text NOT NULL DEFAULT ''  -- which process (host:pid)
);
CREATE INDEX ticket_classifications_repeat_idx ON ticket_classifications (repeat_of) WHERE repeat_of IS NOT NULL;
CREATE INDEX ticket_classifications_dup_idx ON ticket_classifications (duplicate_of) WHERE duplicate_of IS NOT NULL;

-- Re-drive finds unclassified tickets by this.
CREATE INDEX tickets_new_idx ON tickets (created_at) WHERE state = 'new';
