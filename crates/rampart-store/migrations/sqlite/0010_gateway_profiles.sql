-- Spend, agent profiles and per-mission directives for the gateway (see the Postgres
-- migration).
ALTER TABLE gateway_usage
    ADD COLUMN spend_usd_micros INTEGER NOT NULL DEFAULT 0 CHECK (spend_usd_micros >= 0);
ALTER TABLE gateway_usage
    ADD COLUMN profile_calls INTEGER NOT NULL DEFAULT 0 CHECK (profile_calls >= 0);
ALTER TABLE gateway_usage
    ADD COLUMN active_minutes INTEGER NOT NULL DEFAULT 0 CHECK (active_minutes >= 0);

CREATE TABLE gateway_profiles (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    subject    TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('model', 'tool')),
    name       TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, subject, kind, name)
) STRICT;

ALTER TABLE missions ADD COLUMN directives TEXT NOT NULL DEFAULT '[]';
