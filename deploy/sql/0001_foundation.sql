-- 0001: tickets, their history, customers and the inbound-event ledger.
--
-- Invariants:
--  * inbound_events has one row per accepted (gateway_id, event_id); it is written in the same
--    transaction as the ticket change it caused, so "in the ledger" == "durably applied".
--  * ticket_history is append-only; seq is the global order consumers resume from.
--  * personal data (name, phone, e-mail) lives only in customers; tickets reference it by id.
--  * tickets.state is always a state the common/rd_lifecycle module knows.

CREATE TABLE customers (
    id            uuid PRIMARY KEY,              -- UUIDv5 of customer_ref, so no lookup is needed
    customer_ref  text NOT NULL UNIQUE,
    name          text,
    phone         text,
    email         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    erased_at     timestamptz
);

CREATE TABLE tickets (
    id                uuid PRIMARY KEY,
    gateway_id        text NOT NULL,
    event_id          text NOT NULL,            -- the event that created it
    channel           text NOT NULL CHECK (channel IN ('hotline','web','email','app','walk_in','regulator',
                                         'mayor_hotline','social_media','postal','fax','referral')),
    customer_id       uuid NOT NULL REFERENCES customers(id),
    region            text NOT NULL DEFAULT '',
    language          text NOT NULL DEFAULT '',
    subject           text NOT NULL DEFAULT '',
    body              text NOT NULL DEFAULT '',
    organisation      text NOT NULL DEFAULT '',
    product           text NOT NULL DEFAULT '',
    vip               boolean NOT NULL DEFAULT false,
    external_case_no  text NOT NULL DEFAULT '',
    state             text NOT NULL DEFAULT 'new' CHECK (state IN ('new','classified','assigned','accepted',
                                         'in_progress','waiting_customer','resolved','closed','returned')),
    -- decided later by the classifier and dispatcher
    business_type     text,
    category          text,
    severity          text CHECK (severity IN ('major','general')),
    priority          smallint CHECK (priority BETWEEN 1 AND 4),
    first_owner_unit  text,                      -- 首问负责: the first unit that received it
    owner_unit        text,
    owner_agent       text,
    chase_count       integer NOT NULL DEFAULT 0,
    reopen_count      integer NOT NULL DEFAULT 0,
    satisfaction      smallint CHECK (satisfaction BETWEEN 1 AND 5),
    occurred_at       timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    first_response_at timestamptz,
    resolved_at       timestamptz,
    closed_at         timestamptz,
    version           integer NOT NULL DEFAULT 1  -- bumped by every change
);
CREATE INDEX tickets_state_idx ON tickets (state) WHERE state NOT IN ('closed');
CREATE INDEX tickets_customer_idx ON tickets (customer_id, created_at);
CREATE INDEX tickets_created_idx ON tickets (created_at);
CREATE INDEX tickets_owner_idx ON tickets (owner_agent) WHERE owner_agent IS NOT NULL;

CREATE TABLE ticket_attachments (
    ticket_id   uuid NOT NULL REFERENCES tickets(id),
    ord         smallint NOT NULL,
    uri         text NOT NULL,
    sha256      bytea NOT NULL CHECK (length(sha256) = 32),
    size_bytes  bigint NOT NULL CHECK (size_bytes >= 0),
    media_type  text NOT NULL DEFAULT '',
    PRIMARY KEY (ticket_id, ord)
);

CREATE TABLE ticket_history (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id   uuid NOT NULL REFERENCES tickets(id),
    at          timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL,                   -- 'created' or an rd_lifecycle event name
    from_state  text,
    to_state    text NOT NULL,
    actor       text NOT NULL DEFAULT '',
    gateway_id  text NOT NULL DEFAULT '',
    event_id    text NOT NULL DEFAULT '',
    reason      text NOT NULL DEFAULT '',
    target_unit text NOT NULL DEFAULT '',
    note        text NOT NULL DEFAULT '',
    satisfaction smallint CHECK (satisfaction BETWEEN 1 AND 5)
);
CREATE INDEX ticket_history_ticket_idx ON ticket_history (ticket_id, seq);

-- The idempotency ledger: a replay of (gateway_id, event_id) answers from here.
CREATE TABLE inbound_events (
    gateway_id     text NOT NULL,
    event_id       text NOT NULL,
    payload_sha256 bytea NOT NULL,               -- of the canonical re-encoding of the envelope
    ticket_id      uuid NOT NULL,
    kind           text NOT NULL,                -- 'new_ticket' or the action name
    state_after    text NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, event_id)
);

-- Where each downstream consumer has got to in ticket_history (re-drive from the database).
CREATE TABLE consumer_offsets (
    consumer    text PRIMARY KEY,
    last_seq    bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
