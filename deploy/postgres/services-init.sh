#!/usr/bin/env bash
# services-db, first start only (the postgres image runs /docker-entrypoint-initdb.d/* on an empty
# data directory): one database and two login roles per service, no other role allowed to connect
# to it. Every service owns its data (shared/architecture.md): a service cannot read another's
# tables even by mistake, because it cannot even connect.
#   <service>      owns the database, its tables, triggers and functions: runs the migrations.
#   <service>_app  what the service logs in as: may connect, and is granted rows only by each
#                  migration (canbao_platform.db.grant_application_role), never DDL, so it cannot
#                  drop the triggers that keep the gateway's audit log append-only.
# Passwords come from the environment (deploy/.env through compose.yaml), never from this file.
set -euo pipefail

for service in identity matching survey reporting gateway; do
  owner_variable="${service^^}_DB_PASSWORD"
  app_variable="${service^^}_APP_DB_PASSWORD"
  owner_password="${!owner_variable:?${owner_variable} is not set (deploy/.env)}"
  app_password="${!app_variable:?${app_variable} is not set (deploy/.env)}"
  psql --no-psqlrc --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
       --set role="$service" --set password="$owner_password" \
       --set app_role="${service}_app" --set app_password="$app_password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE ROLE :"app_role" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"role" TO :"app_role";
SQL
  echo "services-db: database '${service}', roles '${service}' (owner) and '${service}_app' created"
done
