-- The message store: the record of truth for every SMS in and out.

CREATE TABLE inbound (
    id           bigserial PRIMARY KEY,
    source       text        NOT NULL,            -- the bridge link (Kannel smsc id) it came through
    external_id  text        NOT NULL,            -- the bridge's message id
    sender       text        NOT NULL,            -- E.164 when it parses as a phone number
    shortcode    text        NOT NULL,
    text         text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    service      text,                            -- what the parser routed it to
    state        text        NOT NULL DEFAULT 'received'
                 CHECK (state IN ('received', 'dispatched', 'answered', 'dead')),
    UNIQUE (source, external_id)
);

-- The reconciler's look-up: messages with no answer yet.
CREATE INDEX inbound_unfinished ON inbound (received_at) WHERE state IN ('received', 'dispatched');

CREATE TABLE outbound (
    id           bigserial PRIMARY KEY,
    inbound_id   bigint      REFERENCES inbound (id),
    part         integer     NOT NULL DEFAULT 1,
    sender       text        NOT NULL,
    recipient    text        NOT NULL,
    text         text        NOT NULL,
    service      text,
    outcome      text,
    state        text        NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    deadline     timestamptz NOT NULL,
    sent_at      timestamptz,
    transport_id text,
    error        text,
    UNIQUE (inbound_id, part)
);

CREATE INDEX outbound_queued ON outbound (created_at) WHERE state = 'queued';

CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    inbound_id  bigint      REFERENCES inbound (id),
    outbound_id bigint      REFERENCES outbound (id),
    task        text        NOT NULL,
    reason      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz
);

CREATE INDEX dead_letters_open ON dead_letters (created_at) WHERE replayed_at IS NULL;
