#!/bin/sh
# The runtime role of Compose's PostgreSQL (compose.yaml mounts this file into
# /docker-entrypoint-initdb.d: it runs once, on the first start of an empty volume).
#
# The migration connects as POSTGRES_USER (govsms_owner), which owns every schema and
# table it creates; the processes connect as govsms, which may read and write rows but
# neither alter nor drop anything. The default privileges below give govsms its rights
# on what later migrations create, with no grant in the migrations themselves.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v owner="$POSTGRES_USER" -v app_password="$GOVSMS_DB_PASSWORD" <<'SQL'
CREATE ROLE govsms LOGIN PASSWORD :'app_password';
GRANT CONNECT ON DATABASE govsms TO govsms;
-- CREATE on public: the ingest's /readyz runs CREATE TABLE IF NOT EXISTS
-- schema_migrations, which PostgreSQL checks against the schema even when it exists.
GRANT USAGE, CREATE ON SCHEMA public TO govsms;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" GRANT USAGE ON SCHEMAS TO govsms;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO govsms;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" GRANT USAGE, SELECT ON SEQUENCES TO govsms;
-- The statement timeout on the role: through PgBouncer in transaction mode
-- (compose.ha.yaml) no connection can carry its own (docs/deploy.md).
ALTER ROLE govsms SET statement_timeout = '5s';
SQL
