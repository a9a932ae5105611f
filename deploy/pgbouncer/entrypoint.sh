#!/bin/sh
# PgBouncer in transaction mode in front of POSTGRES_HOST, for the runtime role only: its
# configuration and password file written to /tmp (a tmpfs: in memory, never on a volume).
set -eu
umask 077
cat > /tmp/pgbouncer.ini <<INI
[databases]
govsms = host=${POSTGRES_HOST:-postgres} port=5432 dbname=govsms

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
unix_socket_dir =
auth_type = scram-sha-256
auth_file = /tmp/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = ${PGBOUNCER_POOL_SIZE:-40}
server_reset_query =
ignore_startup_parameters = extra_float_digits
INI
printf '"govsms" "%s"\n' "$GOVSMS_DB_PASSWORD" > /tmp/userlist.txt
exec pgbouncer /tmp/pgbouncer.ini
