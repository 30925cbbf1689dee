#!/usr/bin/env bash
# make compose-test: proves docker-compose.yml runs the platform. Starts a
# Docker engine when none answers (installing docker.io when missing) and
# stops the one it started; builds the compose and buildx plugins, the
# stand-ins for images no registry serves, the secrets and the six images
# (scripts/compose.sh prepare); then e2e/compose's test brings the stack up
# with Jaeger, checks out through 127.0.0.1:3000, finds the checkout's trace
# in Jaeger and its lines in VictoriaLogs, checks out with VictoriaLogs
# stopped, kills a replica of each backend and checks out again, and takes
# it down with its volumes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

start=$SECONDS
busy=()
# The host ports the compose file publishes; GATEWAY_PORT and the others
# move them (docker-compose.yml), e.g. to run beside a make run.
for port in "${GATEWAY_PORT:-3000}" "${CONSUL_PORT:-8500}" "${PROMETHEUS_PORT:-9090}" \
	"${ALERTMANAGER_PORT:-9093}" "${MAILPIT_PORT:-8025}" "${JAEGER_PORT:-16686}" "${VLOGS_PORT:-9428}"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		busy+=("$port")
	fi
done
if ((${#busy[@]} > 0)); then
	echo "compose-test: 127.0.0.1 port(s) ${busy[*]} in use (a make run, or a compose platform already up?);" \
		"the compose platform publishes them: stop what holds them, or move them (GATEWAY_PORT=13000 CONSUL_PORT=18500 ...; docs/deployment.md)" >&2
	exit 1
fi

trap 'scripts/docker-engine.sh stop' EXIT
scripts/compose.sh prepare
echo "==> docker compose config --quiet"
docker compose --project-directory . -f docker-compose.yml --profile grafana --profile jaeger config --quiet
echo "==> go test -tags compose ./e2e/compose/ (compose up --wait, checkout, trace and logs, checkout without VictoriaLogs, kill a replica of each backend, checkout, down -v)"
# The test runs the profile jaeger (the stand-in is made above); Grafana
# (profile grafana) has no stand-in here, and the test runs without it.
${GO:-go} test -tags compose -count=1 -timeout 20m -v -run TestComposePlatform ./e2e/compose/
echo "==> compose-test passed in $((SECONDS - start))s"
