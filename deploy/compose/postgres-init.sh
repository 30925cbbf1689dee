#!/bin/bash
# Runs once, on the first start of the compose platform's PostgreSQL (an
# empty volume), from /docker-entrypoint-initdb.d: one role and one database
# per service (DESIGN §5), each role owning its database, with the password
# of its compose secret. A password changed later is not applied here: the
# services' roles keep theirs until `make compose-down` removes the volume
# (docker compose down -v).
set -euo pipefail

for db in user_db product_db order_db payment_db notification_db; do
	password=$(tr -d '\r\n' <"/run/secrets/postgres-${db}-password")
	psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
		--set db="$db" --set password="$password" <<-'SQL'
		CREATE ROLE :"db" LOGIN PASSWORD :'password';
		CREATE DATABASE :"db" OWNER :"db";
		REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
	SQL
done
echo "postgres-init: roles and databases of the five services created"
