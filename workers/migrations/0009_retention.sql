-- Retention: past GOVSMS_RETENTION_DAYS a message keeps its times, short code, service,
-- outcome, states, parts and tariff (fees, metrics and SLA figures over old periods do not
-- change), and loses its text and its phone number: the number is replaced by its masked
-- form and a keyed digest (counts per sender still work), `purged_at` says when.
ALTER TABLE inbound ADD COLUMN sender_digest text, ADD COLUMN purged_at timestamptz;
ALTER TABLE outbound ADD COLUMN recipient_digest text, ADD COLUMN purged_at timestamptz;

-- What the purge walks, oldest first; a purged row leaves the index.
CREATE INDEX inbound_unpurged ON inbound (received_at) WHERE purged_at IS NULL;
CREATE INDEX outbound_unpurged ON outbound (created_at) WHERE purged_at IS NULL;
