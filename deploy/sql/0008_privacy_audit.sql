-- 0008: personal data, erasure, retention, the append-only audit log and the database roles
-- (docs/privacy.md).
--
-- Invariants:
--  * redress_app is what the services and redressctl's ordinary commands run as: it may read and
--    write what they need, but may not UPDATE, DELETE or TRUNCATE audit_log or ticket_history
--    (both append-only), nor call the erasure and retention functions.
--  * redress_admin (a member of redress_app) may also call privacy_erase_customer and
--    privacy_apply_retention. These are SECURITY DEFINER functions owned by the migration owner;
--    they are the only way rows of audit_log and ticket_history are changed or removed.
--  * the guard trigger on audit_log and ticket_history refuses UPDATE and DELETE (and TRUNCATE)
--    unless the statement runs as the table's owner AND the transaction-local setting
--    redress.audit_unlock is 'on'. The functions set it around their own statements; redress_app
--    can set the setting too, but it is never the owner, so the setting alone unlocks nothing.
--    (A superuser may still TRUNCATE ticket_history -- test resets -- and can disable triggers
--    anyway; the guarantee is for every non-superuser role.) The trigger fires only on UPDATE,
--    DELETE and TRUNCATE: the insert path (intake, ~24k history rows/s) is untouched.
--  * erasure replaces a customer's id (UUIDv5 of the customer_ref, i.e. a pseudonym of the phone
--    number) by a random one in every table with a customer_id column, so per-customer statistics
--    (repeats, complaints) stay intact; reports never depend on personal data, so they do not move.
--  * a purged ticket keeps its reporting.ticket_facts row: the rollups are aggregates and keep
--    counting it; a purge only takes tickets whose facts are up to date and removes their queued
--    refreshes, and no later sweep or rebuild looks at a ticket that no longer exists.

-- ---- roles ------------------------------------------------------------------------------------
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'redress_app') THEN
        CREATE ROLE redress_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'redress_admin') THEN
        CREATE ROLE redress_admin NOLOGIN;
    END IF;
END $$;
GRANT redress_app TO redress_admin;

-- ---- the audit log ----------------------------------------------------------------------------
-- One row per operator action (redressctl) and per privileged database action (erasure,
-- retention). State changes of tickets are in ticket_history; audit_trail shows both.
-- No personal data goes in here: objects are named by ids, never by names, phones or refs.
CREATE TABLE audit_log (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,                 -- operator login (redressctl: $USER or --actor), agent id
    action       text NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)*$'),   -- 'customer.erase', 'org.load'
    object_type  text NOT NULL DEFAULT '',      -- 'customer', 'ticket', 'ruleset', 'org', ...
    object_id    text NOT NULL DEFAULT '',
    gateway_id   text NOT NULL DEFAULT '',      -- the tool or gateway it came through
    details      jsonb NOT NULL DEFAULT '{}',
    db_user      text NOT NULL DEFAULT session_user   -- the database login, set by the trigger below
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_object_idx ON audit_log (object_type, object_id);

-- The database login and the time are the server's, whatever the client sent.
CREATE FUNCTION audit_log_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.db_user := session_user;
    NEW.at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER audit_log_stamp BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_stamp();

-- The guard of the append-only tables (see the invariants above).
CREATE FUNCTION audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('redress.audit_unlock', true) = 'on'
       AND current_user = (SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = TG_RELID) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'TRUNCATE' AND TG_TABLE_NAME = 'ticket_history'
       AND (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN NULL;   -- test and benchmark resets (TRUNCATE ... CASCADE) by a superuser
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'rows change only through privacy_erase_customer() and privacy_apply_retention()'
                     ' (redressctl customer erase, redressctl retention run); see docs/privacy.md';
END $$;
CREATE TRIGGER audit_log_guard BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_guard();
CREATE TRIGGER audit_log_guard_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_guard();
CREATE TRIGGER ticket_history_guard BEFORE UPDATE OR DELETE ON ticket_history
    FOR EACH ROW EXECUTE FUNCTION audit_guard();
CREATE TRIGGER ticket_history_guard_truncate BEFORE TRUNCATE ON ticket_history
    FOR EACH STATEMENT EXECUTE FUNCTION audit_guard();

-- Who did what, when, through which gateway: operator actions and every ticket state change.
-- Free text (notes, reasons) is left out; ticket show has it.
CREATE VIEW audit_trail AS
SELECT a.at, a.actor, a.action, a.object_type, a.object_id, a.gateway_id, a.details, 'audit_log'::text AS source,
       a.seq
  FROM audit_log a
UNION ALL
SELECT h.at, h.actor, 'ticket.' || h.kind, 'ticket', h.ticket_id::text, h.gateway_id,
       jsonb_strip_nulls(jsonb_build_object('from_state', h.from_state, 'to_state', h.to_state,
                                            'event_id', NULLIF(h.event_id, ''),
                                            'target_unit', NULLIF(h.target_unit, ''))),
       'ticket_history', h.seq
  FROM ticket_history h;

-- ---- personal data ----------------------------------------------------------------------------
ALTER TABLE tickets ADD COLUMN redacted_at timestamptz;   -- free text replaced (erasure, retention)

-- What erasure and retention write instead of free text.
CREATE FUNCTION privacy_marker() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT '[erased]'::text $$;

-- Retention: closed tickets older than older_than_days are anonymised (free text redacted; the
-- customer erased once none of its tickets is younger or open) or purged (deleted with every
-- dependent row; reporting keeps their numbers). Nothing is active until an operator says so.
CREATE TABLE retention_policy (
    id               text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    action           text NOT NULL CHECK (action IN ('anonymise', 'purge')),
    older_than_days  integer NOT NULL CHECK (older_than_days >= 0),   -- since closed_at; 0 = every closed ticket
    active           boolean NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO retention_policy (id, action, older_than_days, active) VALUES
    ('anonymise-closed', 'anonymise', 3 * 365, false),
    ('purge-closed', 'purge', 10 * 365, false);
CREATE INDEX tickets_retention_idx ON tickets (closed_at) WHERE state = 'closed';

-- Replaces the free text of the tickets in ids (subject, body, attachment URIs, history notes and
-- reasons, escalation notes, and history actors equal to one of the refs) by the marker. Internal:
-- called by the two SECURITY DEFINER functions, not executable by anyone else.
CREATE FUNCTION privacy_redact_tickets(ids uuid[], refs text[]) RETURNS bigint
    LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    m text := privacy_marker();
    n bigint;
BEGIN
    UPDATE tickets SET subject = CASE WHEN subject <> '' THEN m ELSE '' END,
                       body = CASE WHEN body <> '' THEN m ELSE '' END,
                       redacted_at = now()
     WHERE id = ANY (ids) AND (redacted_at IS NULL OR subject NOT IN ('', m) OR body NOT IN ('', m));
    UPDATE ticket_attachments SET uri = m || ':' || ord WHERE ticket_id = ANY (ids) AND uri <> m || ':' || ord;
    PERFORM set_config('redress.audit_unlock', 'on', true);
    UPDATE ticket_history SET note = CASE WHEN note <> '' THEN m ELSE '' END,
                              reason = CASE WHEN reason <> '' THEN m ELSE '' END,
                              actor = CASE WHEN actor = ANY (refs) THEN m ELSE actor END
     WHERE ticket_id = ANY (ids) AND (note NOT IN ('', m) OR reason NOT IN ('', m) OR actor = ANY (refs));
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM set_config('redress.audit_unlock', 'off', true);
    UPDATE sla_escalations SET acknowledged_note = m
     WHERE ticket_id = ANY (ids) AND acknowledged_note NOT IN ('', m);
    RETURN n;
END $$;

-- Erases one customer: by ref (cref) or by id (cid); actor and gateway are recorded in audit_log.
-- Returns the new (random) customer id, how many tickets and history rows were redacted; NULL
-- new_id and 0s when the customer was erased before. Raises no_data_found when there is no such
-- customer.
CREATE FUNCTION privacy_erase_customer(cref text, cid uuid, actor text, gateway text DEFAULT '',
                                       OUT new_id uuid, OUT tickets bigint, OUT history_rows bigint,
                                       OUT already_erased boolean)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    c   customers%ROWTYPE;
    ids uuid[];
    t   record;
BEGIN
    tickets := 0; history_rows := 0; already_erased := false;
    IF (cref IS NULL) = (cid IS NULL) THEN
        RAISE EXCEPTION 'privacy_erase_customer wants either a customer ref or a customer id'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO c FROM customers x WHERE (cref IS NOT NULL AND x.customer_ref = cref) OR x.id = cid FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no customer %', COALESCE(cref, cid::text) USING ERRCODE = 'no_data_found';
    END IF;
    IF c.erased_at IS NOT NULL THEN
        already_erased := true;
        new_id := c.id;
        RETURN;
    END IF;
    new_id := gen_random_uuid();
    INSERT INTO customers (id, customer_ref, name, phone, email, created_at, updated_at, erased_at)
        VALUES (new_id, 'erased:' || replace(gen_random_uuid()::text, '-', ''), NULL, NULL, NULL, c.created_at,
                now(), now());
    -- every table holding a customer id follows (tickets, and whatever later migrations add)
    FOR t IN SELECT k.table_schema, k.table_name FROM information_schema.columns k
              JOIN information_schema.tables b USING (table_schema, table_name)
             WHERE k.column_name = 'customer_id' AND k.data_type = 'uuid' AND b.table_type = 'BASE TABLE'
               AND k.table_schema NOT IN ('pg_catalog', 'information_schema') LOOP
        EXECUTE format('UPDATE %I.%I SET customer_id = $1 WHERE customer_id = $2', t.table_schema, t.table_name)
            USING new_id, c.id;
    END LOOP;
    SELECT array_agg(x.id) INTO ids FROM tickets x WHERE x.customer_id = new_id;
    tickets := COALESCE(cardinality(ids), 0);
    IF tickets > 0 THEN
        history_rows := privacy_redact_tickets(ids, ARRAY[c.customer_ref, c.id::text]);
    END IF;
    DELETE FROM customers WHERE id = c.id;
    PERFORM set_config('redress.audit_unlock', 'on', true);
    UPDATE audit_log SET object_id = new_id::text WHERE object_type = 'customer' AND object_id = c.id::text;
    PERFORM set_config('redress.audit_unlock', 'off', true);
    INSERT INTO audit_log (actor, action, object_type, object_id, gateway_id, details)
        VALUES (COALESCE(actor, ''), 'customer.erase', 'customer', new_id::text, COALESCE(gateway, ''),
                jsonb_build_object('tickets', tickets, 'history_rows', history_rows));
END $$;

-- Applies every active retention policy to at most batch tickets each (call again until it
-- returns 0 tickets). dry_run: counts what would be done, changes nothing. One row per policy.
CREATE FUNCTION privacy_apply_retention(batch integer, dry_run boolean, actor text, gateway text DEFAULT '')
    RETURNS TABLE (policy text, action text, tickets bigint, customers bigint, skipped bigint)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    p      retention_policy%ROWTYPE;
    cutoff timestamptz;
    ids    uuid[];
    cids   uuid[];
    refs   text[];
    n      bigint;
    cu     uuid;
BEGIN
    IF batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'batch must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR p IN SELECT * FROM retention_policy WHERE active ORDER BY id LOOP
        cutoff := now() - make_interval(days => p.older_than_days);
        policy := p.id; action := p.action; tickets := 0; customers := 0; skipped := 0;
        IF p.action = 'anonymise' THEN
            SELECT array_agg(x.id) INTO ids
              FROM (SELECT t.id FROM tickets t
                     WHERE t.state = 'closed' AND t.closed_at < cutoff AND t.redacted_at IS NULL
                     ORDER BY t.closed_at LIMIT batch FOR UPDATE SKIP LOCKED) x;
            tickets := COALESCE(cardinality(ids), 0);
            -- customers none of whose tickets is open or younger than the cutoff
            SELECT array_agg(DISTINCT t.customer_id) INTO cids FROM tickets t
             WHERE t.id = ANY (ids)
               AND NOT EXISTS (SELECT 1 FROM tickets y WHERE y.customer_id = t.customer_id
                                  AND (y.state <> 'closed' OR y.closed_at >= cutoff))
               AND EXISTS (SELECT 1 FROM customers c WHERE c.id = t.customer_id AND c.erased_at IS NULL);
            customers := COALESCE(cardinality(cids), 0);
            IF NOT dry_run AND tickets > 0 THEN
                SELECT array_agg(c.customer_ref) INTO refs FROM customers c
                 WHERE c.id IN (SELECT t.customer_id FROM tickets t WHERE t.id = ANY (ids));
                PERFORM privacy_redact_tickets(ids, COALESCE(refs, '{}'));
                FOREACH cu IN ARRAY COALESCE(cids, '{}') LOOP
                    PERFORM privacy_erase_customer(NULL, cu, actor, gateway);
                END LOOP;
            END IF;
        ELSE
            -- Purge: closed, past the cutoff, facts up to date (so the rollups already hold
            -- exactly this ticket's numbers), no clock still running.
            CREATE TEMP TABLE IF NOT EXISTS pg_temp.purge_ids (id uuid PRIMARY KEY) ON COMMIT DROP;
            TRUNCATE pg_temp.purge_ids;
            INSERT INTO pg_temp.purge_ids
            SELECT t.id FROM tickets t
              JOIN reporting.ticket_facts f ON f.ticket_id = t.id
             WHERE t.state = 'closed' AND t.closed_at < cutoff
               AND f.last_seq = COALESCE((SELECT max(h.seq) FROM ticket_history h WHERE h.ticket_id = t.id), 0)
               AND f.last_sla_seq = COALESCE((SELECT max(e.seq) FROM sla_clocks k JOIN sla_events e ON e.clock_id = k.id
                                               WHERE k.ticket_id = t.id), 0)
               AND NOT EXISTS (SELECT 1 FROM sla_clocks k WHERE k.ticket_id = t.id AND k.state <> 'stopped')
             ORDER BY t.closed_at LIMIT batch;
            GET DIAGNOSTICS n = ROW_COUNT;
            -- keep tickets a remaining ticket still points at (repeat_of, duplicate_of)
            LOOP
                DELETE FROM pg_temp.purge_ids i
                 WHERE EXISTS (SELECT 1 FROM ticket_classifications k
                                WHERE (k.repeat_of = i.id OR k.duplicate_of = i.id)
                                  AND k.ticket_id NOT IN (SELECT id FROM pg_temp.purge_ids));
                EXIT WHEN NOT FOUND;
            END LOOP;
            SELECT array_agg(id) INTO ids FROM pg_temp.purge_ids;
            tickets := COALESCE(cardinality(ids), 0);
            skipped := n - tickets;
            SELECT count(DISTINCT t.customer_id) INTO customers FROM tickets t
             WHERE t.id = ANY (ids)
               AND NOT EXISTS (SELECT 1 FROM tickets y WHERE y.customer_id = t.customer_id AND y.id <> ALL (ids));
            IF NOT dry_run AND tickets > 0 THEN
                PERFORM 1 FROM tickets WHERE id = ANY (ids) FOR UPDATE;
                SELECT array_agg(DISTINCT customer_id) INTO cids FROM tickets WHERE id = ANY (ids);
                -- a queued refresh of a ticket that no longer exists would retract its numbers
                DELETE FROM reporting.queue WHERE ticket_id = ANY (ids);
                DELETE FROM sla_queue q USING ticket_history h WHERE h.ticket_id = ANY (ids) AND q.seq = h.seq;
                DELETE FROM sla_escalations WHERE ticket_id = ANY (ids);
                DELETE FROM sla_events WHERE clock_id IN (SELECT id FROM sla_clocks WHERE ticket_id = ANY (ids));
                DELETE FROM sla_clocks WHERE ticket_id = ANY (ids);
                DELETE FROM dispatch_queue WHERE ticket_id = ANY (ids);
                DELETE FROM ticket_assignments WHERE ticket_id = ANY (ids);
                DELETE FROM ticket_classifications WHERE ticket_id = ANY (ids);
                DELETE FROM ticket_attachments WHERE ticket_id = ANY (ids);
                PERFORM set_config('redress.audit_unlock', 'on', true);
                DELETE FROM ticket_history WHERE ticket_id = ANY (ids);
                PERFORM set_config('redress.audit_unlock', 'off', true);
                DELETE FROM tickets WHERE id = ANY (ids);
                -- customers left without tickets go too; the idempotency ledger (inbound_events:
                -- ids and a hash) stays, so a very late replay is answered as a replay
                DELETE FROM customers c WHERE c.id = ANY (cids)
                   AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.customer_id = c.id);
            END IF;
        END IF;
        IF NOT dry_run AND tickets > 0 THEN
            INSERT INTO audit_log (actor, action, object_type, object_id, gateway_id, details)
                VALUES (COALESCE(actor, ''), 'retention.' || p.action, 'retention_policy', p.id, COALESCE(gateway, ''),
                        jsonb_build_object('tickets', tickets, 'customers', customers, 'skipped', skipped,
                                           'older_than_days', p.older_than_days));
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;

-- ---- privileges -------------------------------------------------------------------------------
-- redress_app: everything the services and redressctl's ordinary commands do (reads, COPY and
-- INSERT ... ON CONFLICT, UPDATE, DELETE of queues, LOCK TABLE, the reporting reset's TRUNCATE,
-- nextval of sla_clocks' sequence, LISTEN/NOTIFY and advisory locks need no grant) ...
GRANT USAGE ON SCHEMA public, reporting TO redress_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public, reporting TO redress_app;
GRANT TRUNCATE ON reporting.ticket_facts, reporting.rollup_hour, reporting.rollup_day, reporting.rollup_month
    TO redress_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public, reporting TO redress_app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public, reporting TO redress_app;
-- ... but the history and the audit log are append-only, migrations and retention are the owner's
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, ticket_history FROM redress_app;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations, retention_policy FROM redress_app;
-- records nothing in the application deletes (only retention does, as the owner); the SLA event
-- log and the idempotency ledger are never updated either
REVOKE DELETE ON customers, tickets, ticket_attachments, ticket_classifications, inbound_events, ticket_assignments,
    sla_clocks, sla_events, sla_escalations, reporting.monthly_reports FROM redress_app;
REVOKE UPDATE ON sla_events, inbound_events, ticket_attachments FROM redress_app;
-- the privileged functions: redress_admin only (functions are executable by PUBLIC by default)
REVOKE ALL ON FUNCTION privacy_erase_customer(text, uuid, text, text),
    privacy_apply_retention(integer, boolean, text, text), privacy_redact_tickets(uuid[], text[])
    FROM PUBLIC, redress_app;
GRANT EXECUTE ON FUNCTION privacy_erase_customer(text, uuid, text, text),
    privacy_apply_retention(integer, boolean, text, text) TO redress_admin;
GRANT UPDATE ON retention_policy TO redress_admin;
-- later migrations' tables, sequences and functions (created by the same owner) are covered too;
-- a later migration that adds another append-only table or privileged function revokes as above
ALTER DEFAULT PRIVILEGES IN SCHEMA public, reporting
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO redress_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public, reporting GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO redress_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public, reporting GRANT EXECUTE ON FUNCTIONS TO redress_app;

-- Gateway keys and permissions (0007) are the operators' (redressctl keys register|revoke as a
-- login in redress_admin); the services only read them.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON gateways, gateway_keys FROM redress_app;
GRANT INSERT, UPDATE, DELETE ON gateways, gateway_keys TO redress_admin;
