-- Spend, agent profiles and per-mission directives for the gateway.
--
-- Spend is counted in millionths of a US dollar from the prices in the gateway configuration.
-- profile_calls and active_minutes count the calls, and the one-minute windows with at least one
-- call, since profiles began (this migration): an agent's usual rate is profile calls per active
-- minute, what the drift directive compares a burst against, and its profile is learned from the
-- first learn_calls of them. Calls before this migration recorded no models or tools, so they do
-- not count as learned.
ALTER TABLE gateway_usage
    ADD COLUMN spend_usd_micros bigint NOT NULL DEFAULT 0 CHECK (spend_usd_micros >= 0);
ALTER TABLE gateway_usage
    ADD COLUMN profile_calls bigint NOT NULL DEFAULT 0 CHECK (profile_calls >= 0);
ALTER TABLE gateway_usage
    ADD COLUMN active_minutes bigint NOT NULL DEFAULT 0 CHECK (active_minutes >= 0);

-- The models and tools each subject (an agent, or the token subject of other callers) has used
-- in completed calls: what "first seen" is measured against.
CREATE TABLE gateway_profiles (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    subject    text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('model', 'tool')),
    name       text NOT NULL,
    first_seen timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, subject, kind, name)
);
ALTER TABLE gateway_profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_profiles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON gateway_profiles
    USING (tenant_id = (SELECT rampart_current_tenant()))
    WITH CHECK (tenant_id = (SELECT rampart_current_tenant()));

-- A mission's own directives, checked after the tenant's on each of its calls.
ALTER TABLE missions ADD COLUMN directives jsonb NOT NULL DEFAULT '[]';
