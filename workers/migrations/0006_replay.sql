-- Batch replay of message logs (`govsms replay`, workers/replay.py, docs/replay.md).
-- A run and its items are the checkpoint: `--resume RUN` continues a stopped run
-- and never redoes an item whose state is 'done'.

CREATE SCHEMA replay;

CREATE TABLE replay.runs (
    id          bigserial   PRIMARY KEY,
    mode        text        NOT NULL CHECK (mode IN ('dry-run', 'compare', 'send')),
    state       text        NOT NULL DEFAULT 'running'
                CHECK (state IN ('running', 'stopped', 'finished')),
    rate        real,                               -- messages/s; NULL: as fast as the worker goes
    inputs      jsonb       NOT NULL,               -- per file: name, format, counts
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

CREATE TABLE replay.items (
    id              bigserial   PRIMARY KEY,
    run_id          bigint      NOT NULL REFERENCES replay.runs (id) ON DELETE CASCADE,
    seq             integer     NOT NULL,           -- order in the input
    file            text        NOT NULL,
    line            integer     NOT NULL,
    key             text        NOT NULL,           -- the message's id in the log; its external id when sent
    received_at     timestamptz,                    -- as the log has it (dry-run and compare answer as of then)
    sender          text        NOT NULL,           -- E.164 when it parses as a phone number
    shortcode       text        NOT NULL,
    text            text        NOT NULL,
    recorded        text,                           -- the reply the log recorded, if any
    recorded_sealed boolean     NOT NULL DEFAULT false,
    state           text        NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'done', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    service         text,
    outcome         text,
    reply           text,                           -- the new reply; a password or code masked
    sealed          boolean,
    inbound_id      bigint      REFERENCES inbound (id) ON DELETE SET NULL,  -- --send: the new message
    error           text,
    done_at         timestamptz,
    UNIQUE (run_id, key)
);

-- What a run (or its resumption) still has to do.
CREATE INDEX items_open ON replay.items (run_id, seq) WHERE state <> 'done';

-- Every key any --send run has sent, once: a repeated or overlapping send skips it.
-- Deleting a row here is the deliberate way to send a message again.
CREATE TABLE replay.sent (
    key        text        PRIMARY KEY,
    run_id     bigint      NOT NULL REFERENCES replay.runs (id),
    inbound_id bigint      REFERENCES inbound (id) ON DELETE SET NULL,
    sent_at    timestamptz NOT NULL DEFAULT now()
);
