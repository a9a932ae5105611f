-- The operators' console: who is signed in, and what each operator asked.

-- A session is the SHA-256 of the token its cookie carries: a copy of this table signs
-- nobody in. Expired rows are deleted at each sign-in.
CREATE TABLE operator_sessions (
    token_digest bytea       PRIMARY KEY,
    operator     text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX operator_sessions_expires ON operator_sessions (expires_at);

-- Every search, every message or dead letter looked at, every replay and every sign-in,
-- console or CLI. A phone number is kept masked and as its keyed digest (the one the
-- retention purge keeps), never in clear: "who looked up this number?" is a digest away.
CREATE TABLE audit (
    id           bigserial   PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    operator     text        NOT NULL,
    action       text        NOT NULL CHECK (action IN (
                     'sign_in', 'sign_in_refused', 'sign_out', 'search', 'view',
                     'replay', 'replay_all', 'audit_search')),
    asked        text        NOT NULL,
    phone_masked text,
    phone_digest text
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_phone ON audit (phone_digest, at) WHERE phone_digest IS NOT NULL;
CREATE INDEX audit_refused ON audit (operator, at) WHERE action = 'sign_in_refused';
