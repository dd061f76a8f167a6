#!/usr/bin/env bash
# services-db, first start only (the postgres image runs /docker-entrypoint-initdb.d/* on an empty
# data directory): one login role and one database per service, the role owning its database and
# no other role allowed to connect to it. Every service owns its data (shared/architecture.md):
# a service cannot read another's tables even by mistake, because it cannot even connect.
# Passwords come from the environment (deploy/.env through compose.yaml), never from this file.
set -euo pipefail

for service in identity matching survey reporting gateway; do
  variable="${service^^}_DB_PASSWORD"
  password="${!variable:?${variable} is not set (deploy/.env)}"
  psql --no-psqlrc --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
       --set role="$service" --set password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
SQL
  echo "services-db: database and role '${service}' created"
done
