#!/usr/bin/env bash
# The compose platform (docker-compose.yml), for the make targets.
#
#   scripts/compose.sh tools     the Go builds of the above, no engine needed:
#                                compose and buildx plugins, Consul, Mailpit,
#                                Prometheus, cached in bin/ (make test runs it
#                                beside the Go tests)
#   scripts/compose.sh prepare   engine, tools, stand-ins for images no
#                                registry serves, secrets, the six images (what
#                                `up` and make compose-test need)
#   scripts/compose.sh up [ARGS] prepare, then docker compose up --wait ARGS
#                                (e.g. --scale order=3: the same profiles
#                                and variables as the first up)
#   scripts/compose.sh down      docker compose down (volumes kept; -v removes them)
#   scripts/compose.sh logs      docker compose logs --follow
#
# Optional parts run under compose profiles (grafana, jaeger): a profile is enabled
# when its image is present or can be pulled; otherwise it is named on
# screen, with why, and the platform runs without it. COMPOSE_PROFILES, when
# set, decides instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

compose() { docker compose --project-directory . -f docker-compose.yml "$@"; }

# profiles prints the profiles whose images are here (or pullable), and says
# which are left out and why.
profiles() {
	local enabled=() image profile
	while read -r profile image; do
		if docker image inspect "$image" >/dev/null 2>&1 || docker pull -q "$image" >/dev/null 2>&1; then
			enabled+=("$profile")
		else
			why=$(awk -v i="$image" '$1 == i { $1 = $2 = ""; sub(/^ +/, ""); print }' deploy/standins/images.txt)
			echo "!!  not started: $profile ($image): ${why:-cannot be pulled}" >&2
		fi
	done < <(awk '/^  [a-z-]+:$/ { svc = $1 } /profiles:/ { gsub(/[][,]/, " "); print $2, img[svc] } /^    image:/ { img[svc] = $2 }' docker-compose.yml)
	(IFS=,; echo "${enabled[*]}")
}

tools() {
	scripts/build-docker-plugins.sh
	scripts/build-consul.sh
	scripts/build-mailpit.sh
	scripts/build-prometheus.sh
}

prepare() {
	scripts/docker-engine.sh start
	# debootstrap waits on the network, the tool builds on the CPU: side by side.
	scripts/docker-standins.sh --base &
	local base=$!
	tools
	wait "$base" || { echo "compose: making the base image failed" >&2; exit 1; }
	scripts/docker-standins.sh
	echo "==> building bin/mercato-local for the compose secrets"
	go build -o bin/mercato-local ./shared/cmd/mercato-local
	bin/mercato-local -compose-secrets .local/compose
	scripts/build-images.sh
}

case ${1:-} in
tools) tools ;;
prepare) prepare ;;
up)
	shift
	prepare
	COMPOSE_PROFILES=${COMPOSE_PROFILES-$(profiles)}
	export COMPOSE_PROFILES
	if [[ ,$COMPOSE_PROFILES, == *,jaeger,* ]]; then
		export MERCATO_OTLP_ENDPOINT=${MERCATO_OTLP_ENDPOINT:-http://jaeger:4318}
	fi
	echo "==> docker compose up --wait (profiles: ${COMPOSE_PROFILES:-none})"
	compose up --detach --wait --no-build "$@"
	cat <<-EOT
	==> Mercato is up in containers
	    API (gateway)   http://127.0.0.1:${GATEWAY_PORT:-3000}/api/v1
	    Consul UI       http://127.0.0.1:${CONSUL_PORT:-8500}/ui  (token: .local/compose/secrets/consul-management-token)
	    Prometheus      http://127.0.0.1:${PROMETHEUS_PORT:-9090}
	    Alertmanager    http://127.0.0.1:${ALERTMANAGER_PORT:-9093}
	    Mailpit (API)   http://127.0.0.1:${MAILPIT_PORT:-8025}/api/v1/messages
	    VictoriaLogs    http://127.0.0.1:${VLOGS_PORT:-9428}/select/vmui  (every container's lines; query: "<trace id>" | unpack_json)
	EOT
	[[ ,$COMPOSE_PROFILES, == *,jaeger,* ]] && echo "    Jaeger          http://127.0.0.1:${JAEGER_PORT:-16686}  (UI and query API: /api/traces/<trace id>)"
	[[ ,$COMPOSE_PROFILES, == *,grafana,* ]] && echo "    Grafana         http://127.0.0.1:${GRAFANA_PORT:-3030}  (admin / .local/compose/secrets/admin-password)"
	echo "    make compose-logs follows the logs; make compose-down stops it"
	;;
down) shift; COMPOSE_PROFILES=${COMPOSE_PROFILES-grafana,jaeger} compose down "$@" ;;
logs) COMPOSE_PROFILES=${COMPOSE_PROFILES-grafana,jaeger} compose logs --follow ;;
*) echo "usage: $0 tools|prepare|up|down [-v]|logs" >&2; exit 2 ;;
esac
