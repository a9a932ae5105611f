-- Guards of the client API: daily quotas, idempotency keys bound to their body, the
-- audit of MBG links, failed code checks per phone, and codes suppressed unsent.

CREATE SCHEMA api;

-- What each client had sent on a day (UTC): the row is the lock that orders a client's sends.
CREATE TABLE api.usage (
    client   text    NOT NULL,
    day      date    NOT NULL,
    messages integer NOT NULL DEFAULT 0,
    parts    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (client, day)
);

-- An Idempotency-Key is bound to the body it first came with (a keyed digest of it).
CREATE TABLE api.idempotency (
    client      text        NOT NULL,
    key         text        NOT NULL,
    body_digest text        NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (client, key)
);

-- Every link and unlink of a number in MBG, with no number or IIN in clear: masked for
-- the reader, and an HMAC under the server's key to follow one number through the rows.
CREATE TABLE mbg.changes (
    id               bigserial   PRIMARY KEY,
    at               timestamptz NOT NULL,
    client           text        NOT NULL,
    action           text        NOT NULL CHECK (action IN ('link', 'unlink')),
    iin_masked       text        NOT NULL,
    iin_digest       text        NOT NULL,
    old_phone_masked text,
    old_phone_digest text,
    new_phone_masked text,
    new_phone_digest text
);
CREATE INDEX changes_iin ON mbg.changes (iin_digest, at);

-- Failed code checks, counted per phone over 24 hours for the lockout.
CREATE TABLE otp.failures (
    phone text        NOT NULL,
    at    timestamptz NOT NULL
);
CREATE INDEX failures_phone ON otp.failures (phone, at);

-- A document_access code for a number outside MBG is recorded but never sent.
ALTER TABLE otp.codes ADD COLUMN suppressed boolean NOT NULL DEFAULT false;
