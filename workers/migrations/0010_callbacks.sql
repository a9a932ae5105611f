-- Signed callbacks to API clients: one event per final state of each of their SMS parts
-- (sent, failed; and the receipt's delivered, undeliverable, expired, rejected, deleted),
-- recorded by the same transaction that sets the state, whichever path sets it (the
-- outbound worker, the reconciler's give-up, Kannel's dlr-url, SMPP receipts), so none is
-- lost; sent later by workers/callbacks.py from a queue of its own, each at least once.
CREATE TABLE callbacks (
    id          bigserial   PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    client      text        NOT NULL,
    outbound_id bigint      NOT NULL REFERENCES outbound (id),
    event       text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    attempts    integer     NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz,
    outcome     text CHECK (outcome IN ('delivered', 'gave_up', 'no_callback')),
    last_error  text,
    UNIQUE (outbound_id, event)
);
CREATE INDEX callbacks_due ON callbacks (next_at) WHERE done_at IS NULL;

CREATE FUNCTION callbacks_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IN ('sent', 'failed') AND NEW.state IS DISTINCT FROM OLD.state THEN
        INSERT INTO callbacks (client, outbound_id, event) VALUES (NEW.client, NEW.id, NEW.state)
        ON CONFLICT DO NOTHING;
    END IF;
    IF NEW.delivery IN ('delivered', 'undeliverable', 'expired', 'rejected', 'deleted')
       AND NEW.delivery IS DISTINCT FROM OLD.delivery THEN
        INSERT INTO callbacks (client, outbound_id, event)
        VALUES (NEW.client, NEW.id, NEW.delivery) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NEW;
END $$;

-- Only a client's SMS: a citizen's reply never fires it.
CREATE TRIGGER outbound_callbacks AFTER UPDATE OF state, delivery ON outbound
FOR EACH ROW WHEN (NEW.client IS NOT NULL) EXECUTE FUNCTION callbacks_record();
