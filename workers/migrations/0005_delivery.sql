-- Delivery the operator can trust: one row per SMS part, a claim before the submit,
-- flagged possible duplicates, and delivery receipts that may come before the submit answer.

ALTER TABLE outbound DROP CONSTRAINT outbound_state_check;
ALTER TABLE outbound
    ADD CONSTRAINT outbound_state_check CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
    ADD COLUMN parts              integer NOT NULL DEFAULT 1,
    ADD COLUMN reference          integer CHECK (reference BETWEEN 0 AND 255),
    ADD COLUMN coding             text CHECK (coding IN ('gsm7', 'ucs2')),
    -- When a sender claimed the row; a claim older than the task time limit was a crash.
    ADD COLUMN claimed_at         timestamptz,
    -- Claimed again after such a crash: the SMSC may have taken the first submit.
    ADD COLUMN possible_duplicate boolean NOT NULL DEFAULT false,
    ADD COLUMN delivery           text
        CHECK (delivery IN ('enroute', 'delivered', 'expired', 'deleted', 'undeliverable',
                            'accepted', 'unknown', 'rejected', 'skipped')),
    ADD COLUMN delivery_at        timestamptz;

DROP INDEX outbound_queued;
CREATE INDEX outbound_unsent ON outbound (created_at) WHERE state IN ('queued', 'sending');
CREATE INDEX outbound_transport_id ON outbound (transport_id) WHERE transport_id IS NOT NULL;

-- Receipts by the operator's message id, kept even when they come before we stored that id.
CREATE TABLE receipts (
    transport_id text        PRIMARY KEY,
    state        text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
