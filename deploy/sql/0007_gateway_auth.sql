-- 0007: gateway authentication -- which gateways may talk to intake, with which CURVE keys, and
-- what each may send (docs/security.md).
--
-- Invariants:
--  * a gateway is known by its gateway_id, the same text gateways put in Envelope.gateway_id
--    (letters, digits, '.', '_', '-'; at most 64 bytes). With intake.auth = curve the ZAP handler
--    admits a connection only when its CURVE public key is a VALID key (below) of an ENABLED
--    gateway, and every frame on that connection is taken to come from that gateway.
--  * a key is valid while revoked_at IS NULL and (not_after IS NULL OR not_after > now()). A
--    gateway may hold several valid keys at once: that is how keys rotate without downtime
--    (register the new key, switch the gateway over, revoke the old one).
--  * permissions: allowed_events holds 'new_ticket' and action names (accept, reply, ...) or '*'
--    for all; allowed_channels holds channel names as stored in tickets.channel or '*' (channels
--    restrict new tickets only: an action carries no channel); act_on_any_ticket lets a gateway
--    act on tickets other gateways created (an agent desktop needs it, a CTI gateway does not).
--  * every change to either table NOTIFYs redress_gateways (statement trigger), so intake reloads
--    its in-memory allowlist at once; intake also reloads every intake.auth_reload_ms in case a
--    notification was missed (connection lost) or a key passed its not_after.
--  * keys are public keys only. Secret keys never enter the database.

CREATE TABLE gateways (
    gateway_id         text PRIMARY KEY CHECK (gateway_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    description        text NOT NULL DEFAULT '',
    allowed_events     text[] NOT NULL DEFAULT '{*}'
                       CHECK (allowed_events <@ ARRAY['*', 'new_ticket', 'accept', 'reply', 'transfer', 'return',
                                                      'resolve', 'close', 'reopen', 'wait_customer', 'resume',
                                                      'chase', 'return_visit']::text[]),
    allowed_channels   text[] NOT NULL DEFAULT '{*}'
                       CHECK (allowed_channels <@ ARRAY['*', 'hotline', 'web', 'email', 'app', 'walk_in',
                                                        'regulator', 'mayor_hotline', 'social_media', 'postal',
                                                        'fax', 'referral']::text[]),
    act_on_any_ticket  boolean NOT NULL DEFAULT false,
    enabled            boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE gateways IS 'Gateways allowed to reach intake and what each may send (docs/security.md)';
COMMENT ON COLUMN gateways.allowed_events IS '''new_ticket'' and action names, or ''*'' for every event kind';
COMMENT ON COLUMN gateways.allowed_channels IS 'channels a new ticket may come in on, or ''*''; actions are not restricted by channel';
COMMENT ON COLUMN gateways.act_on_any_ticket IS 'may act on tickets created by other gateways';
COMMENT ON COLUMN gateways.enabled IS 'false: every key of the gateway is refused (connections and frames)';

CREATE TABLE gateway_keys (
    -- a CURVE public key in Z85 (40 characters of the Z85 alphabet)
    public_key   text PRIMARY KEY
                 CHECK (length(public_key) = 40 AND
                        translate(public_key, '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#', '') = ''),
    gateway_id   text NOT NULL REFERENCES gateways(gateway_id) ON DELETE CASCADE,
    note         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    not_after    timestamptz,           -- NULL: no expiry
    revoked_at   timestamptz,           -- set by `redressctl keys revoke`; never cleared
    CHECK (revoked_at IS NULL OR revoked_at >= created_at)
);
CREATE INDEX gateway_keys_gateway ON gateway_keys (gateway_id);
COMMENT ON TABLE gateway_keys IS 'CURVE public keys of gateways; several may be valid at once during a rotation';

CREATE FUNCTION gateways_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('redress_gateways', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE TRIGGER gateways_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON gateways
    FOR EACH STATEMENT EXECUTE FUNCTION gateways_notify();
CREATE TRIGGER gateway_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON gateway_keys
    FOR EACH STATEMENT EXECUTE FUNCTION gateways_notify();
