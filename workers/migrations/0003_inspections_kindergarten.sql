-- The two other 1414 registries, each in its own schema like the rest.

CREATE SCHEMA vehicles;
CREATE TABLE vehicles.inspections (
    plate      text PRIMARY KEY CHECK (plate ~ '^([0-9]{3}[A-Z]{3}[0-9]{2}|[A-Z][0-9]{3}[A-Z]{3})$'),
    valid_from date NOT NULL,
    valid_to   date NOT NULL CHECK (valid_to >= valid_from),
    vehicle    text NOT NULL
);

CREATE SCHEMA kindergarten;
CREATE TABLE kindergarten.queue (
    child_iin    char(12) PRIMARY KEY,
    position     integer  NOT NULL CHECK (position > 0),
    kindergarten text     NOT NULL,
    applied_on   date     NOT NULL
);
