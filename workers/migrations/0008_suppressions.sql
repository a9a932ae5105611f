-- MOs recorded but never answered: the sender is not a person (an alphanumeric sender id,
-- a short code, one of our own codes, a malformed address), or the phone went past its
-- flood limit, or it repeated a text just answered. One row each, with its reason; the
-- inbound row's state says `suppressed`, so the reconciler leaves it alone.
ALTER TABLE inbound DROP CONSTRAINT inbound_state_check;
-- NOT VALID, then validated apart: the check does not hold the table's lock while it reads.
ALTER TABLE inbound ADD CONSTRAINT inbound_state_check
    CHECK (state IN ('received', 'dispatched', 'answered', 'dead', 'suppressed')) NOT VALID;
ALTER TABLE inbound VALIDATE CONSTRAINT inbound_state_check;

CREATE TABLE suppressions (
    inbound_id bigint      PRIMARY KEY REFERENCES inbound (id),
    reason     text        NOT NULL CHECK (reason IN (
                   'sender_alphanumeric', 'sender_short_code', 'sender_own_code',
                   'sender_malformed', 'flood', 'repeat')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX suppressions_created ON suppressions (created_at);
