-- 0004: business calendars (common/rd_calendar: working hours with split shifts, a time zone,
-- holidays and make-up working days), loaded by `redressctl calendar load`.
--
-- Invariants:
--  * body is the calendar's JSON document exactly as rd_calendar_parse accepted it;
--  * an agent with a calendar is offered tickets only while that calendar says "working" (and the
--    agent is online); an agent without one only needs to be online. SLA clocks (escalation) will
--    count business time in these calendars too.

CREATE TABLE business_calendars (
    id         text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    name       text NOT NULL DEFAULT '',
    time_zone  text NOT NULL,
    body       jsonb NOT NULL,
    loaded_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE agents ADD COLUMN calendar_id text REFERENCES business_calendars(id) DEFERRABLE INITIALLY DEFERRED;
