-- Backing stores of the 1414 services. In production each is a separate
-- registry, so each gets its own schema here.

CREATE SCHEMA mbg;
CREATE TABLE mbg.subscribers (
    phone text PRIMARY KEY,                       -- E.164
    iin   char(12) NOT NULL
);
CREATE INDEX subscribers_iin ON mbg.subscribers (iin);

CREATE SCHEMA persons;
CREATE TABLE persons.individuals (
    iin        char(12) PRIMARY KEY,
    full_name  text     NOT NULL,
    birth_date date     NOT NULL,
    status     text     NOT NULL CHECK (status IN ('valid', 'invalid'))
);

CREATE SCHEMA housing;
CREATE TABLE housing.queue (
    iin           char(12) PRIMARY KEY,
    position      integer  NOT NULL CHECK (position > 0),
    category      text     NOT NULL,
    registered_on date     NOT NULL,
    authority     text     NOT NULL
);
