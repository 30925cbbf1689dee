#!/usr/bin/env bash
# Makes sure the programs `make run` and `make test` start are present:
# PostgreSQL, Redis, Prometheus (with promtool), Alertmanager (with
# amtool), nginx and wrk (make bench-gateway), iptables (e2e/k8s/cluster) from Debian packages (installed only when missing), Consul (on PATH, $MERCATO_CONSUL_BIN, or the pinned build in
# bin/consul, built by scripts/build-consul.sh when missing), and the
# pinned Jaeger and VictoriaLogs builds in bin/ (scripts/build-jaeger.sh,
# scripts/build-victorialogs.sh). Idempotent and quiet when everything is
# there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

did_something=false

# --- PostgreSQL, Redis, Prometheus, Alertmanager ------------------------------

have_postgres() {
	# Debian keeps the server binaries off PATH, in /usr/lib/postgresql/<version>/bin.
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1
}
have_redis() {
	command -v redis-server >/dev/null 2>&1 || [[ -x /usr/bin/redis-server ]]
}
have_prometheus() {
	command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1
}
have_alertmanager() {
	# localinfra.FindAlertmanager looks for Debian's binary first.
	[[ -x /usr/bin/prometheus-alertmanager ]] && command -v amtool >/dev/null 2>&1
}

packages=()
names=()
have_postgres || { packages+=(postgresql); names+=(PostgreSQL); }
have_redis || { packages+=(redis-server); names+=(Redis); }
have_prometheus || { packages+=(prometheus); names+=(Prometheus); }
have_alertmanager || { packages+=(prometheus-alertmanager); names+=(Alertmanager); }
# make bench-gateway's comparison (and its short mode in make test).
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || { packages+=(nginx-light); names+=(nginx); }
command -v wrk >/dev/null 2>&1 || { packages+=(wrk); names+=(wrk); }
# e2e/k8s/cluster's host snapshot (a Go test, and make k8s-test) reads
# iptables-save. scripts/build-k8s.sh installs it too, but it runs beside the
# Go tests and may come after that test.
command -v iptables-save >/dev/null 2>&1 || { packages+=(iptables); names+=(iptables); }

if ((${#packages[@]} > 0)); then
	did_something=true
	list=$(printf '%s, ' "${names[@]}")
	echo "==> installing ${list%, } from Debian packages (first time only)"
	scripts/apt-install.sh install-deps "${packages[@]}"
	have_postgres && have_redis && have_prometheus && have_alertmanager || {
		echo "install-deps: packages installed but a binary is still missing (postgres initdb, redis-server, prometheus, promtool, prometheus-alertmanager or amtool)" >&2
		exit 1
	}
fi

# --- Consul -------------------------------------------------------------------

# The same order as localinfra.FindConsul: $MERCATO_CONSUL_BIN, PATH, bin/consul.
if [[ -n ${MERCATO_CONSUL_BIN:-} && -x ${MERCATO_CONSUL_BIN} ]]; then
	:
elif command -v consul >/dev/null 2>&1; then
	:
else
	before=$(stat -c %Y bin/consul 2>/dev/null || echo none)
	# Does nothing when bin/consul already is the pinned version.
	scripts/build-consul.sh
	after=$(stat -c %Y bin/consul 2>/dev/null || echo none)
	[[ $before == "$after" ]] || did_something=true
fi

# --- Jaeger and VictoriaLogs (traces and logs) ----------------------------------

for tool in jaeger:build-jaeger victoria-logs:build-victorialogs; do
	before=$(stat -c %Y "bin/${tool%%:*}" 2>/dev/null || echo none)
	# Each does nothing when its binary already is the pinned version.
	"scripts/${tool#*:}.sh"
	after=$(stat -c %Y "bin/${tool%%:*}" 2>/dev/null || echo none)
	[[ $before == "$after" ]] || did_something=true
done

if ! $did_something; then
	echo "==> dependencies present"
fi
