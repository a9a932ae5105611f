-- 8188 e-citizen accounts, one-time codes, and SMS that answer no inbound message.

-- What an MO cost the citizen (charged by the operator; recorded for reporting).
ALTER TABLE inbound ADD COLUMN tariff_amount integer, ADD COLUMN tariff_currency text;
CREATE INDEX inbound_tariffed ON inbound (shortcode, received_at) WHERE tariff_amount IS NOT NULL;

-- Outbound SMS of their own (one-time codes, password reminders, API clients) are
-- kept unique by a key of their kind, as replies are by (inbound_id, part).
ALTER TABLE outbound
    ADD COLUMN dedupe_key text,
    ADD COLUMN client     text,
    -- The text is encrypted at rest (it carries a password or a code).
    ADD COLUMN sealed     boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT outbound_dedupe UNIQUE (dedupe_key, part),
    ADD CONSTRAINT outbound_has_a_key CHECK (inbound_id IS NOT NULL OR dedupe_key IS NOT NULL);

CREATE SCHEMA accounts;
CREATE TABLE accounts.citizens (
    id                  bigserial   PRIMARY KEY,
    username            text        NOT NULL,
    phone               text        NOT NULL,           -- E.164
    id_number           text        NOT NULL,           -- CMND (9 digits) or citizen ID (12)
    full_name           text        NOT NULL,
    birth_date          date        NOT NULL,
    password_hash       text,                           -- argon2id; NULL once the citizen set their own
    password_issued_at  timestamptz NOT NULL,
    password_changed_at timestamptz,
    rotations           integer     NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT citizens_username UNIQUE (username),
    CONSTRAINT citizens_phone UNIQUE (phone),
    CONSTRAINT citizens_id_number UNIQUE (id_number)
);
-- The rotation's look-up: issued passwords nobody changed yet.
CREATE INDEX citizens_unchanged ON accounts.citizens (password_issued_at)
    WHERE password_changed_at IS NULL;

CREATE SCHEMA otp;
CREATE TABLE otp.codes (
    id          bigserial   PRIMARY KEY,
    client      text        NOT NULL,
    phone       text        NOT NULL,
    purpose     text        NOT NULL CHECK (purpose IN ('link_number', 'document_access')),
    iin         char(12),
    code_hash   text        NOT NULL,                   -- HMAC-SHA256 under the server's key
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    attempts    integer     NOT NULL DEFAULT 0,
    state       text        NOT NULL DEFAULT 'active'
                CHECK (state IN ('active', 'used', 'expired', 'superseded', 'locked')),
    CHECK (purpose <> 'link_number' OR iin IS NOT NULL)
);
-- At most one live code per phone: a resend supersedes the previous one.
CREATE UNIQUE INDEX codes_one_active ON otp.codes (phone) WHERE state = 'active';
