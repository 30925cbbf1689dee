#!/bin/bash
# The official postgres image's entrypoint, cut to what Mercato uses: on an
# empty PGDATA, initdb with the superuser's password from POSTGRES_PASSWORD
# or POSTGRES_PASSWORD_FILE (scram-sha-256 for every TCP client), then run
# /docker-entrypoint-initdb.d/*.sh and *.sql on a socket-only server; then
# run postgres as the postgres user, listening on every interface.
set -euo pipefail

if [[ ${1:-} != postgres ]]; then
	exec "$@"
fi
if [[ $(id -u) == 0 ]]; then
	mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 0700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [[ ! -s $PGDATA/PG_VERSION ]]; then
	password=${POSTGRES_PASSWORD:-}
	if [[ -n ${POSTGRES_PASSWORD_FILE:-} ]]; then
		password=$(<"$POSTGRES_PASSWORD_FILE")
	fi
	if [[ -z $password ]]; then
		echo "postgres stand-in: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE" >&2
		exit 1
	fi
	initdb --username="${POSTGRES_USER:-postgres}" --pwfile=<(printf '%s\n' "$password") \
		--auth-local=trust --auth-host=scram-sha-256 >/dev/null
	printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
	pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
	for f in /docker-entrypoint-initdb.d/*; do
		case $f in
		*.sh) echo "postgres stand-in: running $f"; bash "$f" ;;
		*.sql) echo "postgres stand-in: running $f"; psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" -f "$f" ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	echo "postgres stand-in: database cluster initialised"
fi
exec "$@" -c listen_addresses='*'
