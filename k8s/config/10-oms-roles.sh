#!/bin/bash
# One role per service: LOGIN with the password of its DSN, owner of its
# schema. CREATE on the database is granted because the services run
# CREATE SCHEMA IF NOT EXISTS at start (PostgreSQL checks the privilege
# even when the schema exists); nothing on other schemas or public.
set -euo pipefail
psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB")
"${psql[@]}" -c "REVOKE ALL ON SCHEMA public FROM PUBLIC"
"${psql[@]}" -c "REVOKE ALL ON DATABASE \"$POSTGRES_DB\" FROM PUBLIC"
for name in ingest inventory payment notify refund analytics; do
    var=DSN_${name^^}
    dsn=${!var}
    rest=${dsn#*://}
    userinfo=${rest%%@*}
    password=${userinfo#*:}
    "${psql[@]}" -v role="$name" -v password="$password" -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE SCHEMA :"role" AUTHORIZATION :"role";
GRANT CONNECT, TEMPORARY, CREATE ON DATABASE :"db" TO :"role";
ALTER ROLE :"role" SET search_path = :"role";
SQL
done
# The metrics exporter's role (postgres-exporter sidecar): pg_monitor reads
# the statistics views and nothing of the services' data. Its password is
# that of Secret postgres-exporter; without one the role is not created.
if [[ -n ${EXPORTER_PASSWORD:-} ]]; then
    "${psql[@]}" -v password="$EXPORTER_PASSWORD" -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE exporter LOGIN PASSWORD :'password' IN ROLE pg_monitor;
GRANT CONNECT ON DATABASE :"db" TO exporter;
SQL
fi
