#!/usr/bin/env bash
# sources-db, first start only, after the simulators' schema (10-schema.sql): the login Debezium
# uses. REPLICATION lets it stream the WAL through the pgoutput plugin; it owns nothing and gets
# SELECT on exactly the captured tables (for the initial snapshot) in 30-publication.sql, which
# also creates the publication, so the connector runs with publication.autocreate.mode=disabled
# and never needs to own the business system's tables. On a real business system the DBA runs
# the same statements (README.md, "Sources").
set -euo pipefail

psql --no-psqlrc --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     --set password="${CANBAO_SOURCES_DB_PASSWORD:?CANBAO_SOURCES_DB_PASSWORD is not set (deploy/.env)}" <<'SQL'
CREATE ROLE debezium LOGIN REPLICATION PASSWORD :'password';
GRANT CONNECT ON DATABASE sources TO debezium;
SQL
echo "sources-db: role 'debezium' created"
