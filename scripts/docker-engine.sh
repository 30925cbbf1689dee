#!/usr/bin/env bash
# Makes sure a Docker engine answers, for make images / compose-up /
# compose-test.
#
#   scripts/docker-engine.sh start   install docker.io when dockerd is missing,
#                                    start dockerd when none answers (its pid in
#                                    .local/docker/dockerd.pid, log beside it)
#   scripts/docker-engine.sh stop    stop the dockerd that `start` started, if any
#
# An engine that already answers (a system service, another user's) is used
# and never stopped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir=.local/docker
pidfile=$dir/dockerd.pid

answers() { docker info >/dev/null 2>&1; }

start() {
	if ! command -v docker >/dev/null || ! command -v dockerd >/dev/null; then
		echo "==> installing docker.io (Debian package: the engine, containerd, runc)"
		if [[ $(id -u) -ne 0 ]]; then
			echo "docker-engine: installing docker.io needs root: apt-get install docker.io" >&2
			exit 1
		fi
		log=$(mktemp /tmp/mercato-apt-docker.XXXXXX.log)
		if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io; } >"$log" 2>&1; then
			tail -n 20 "$log" >&2
			echo "docker-engine: apt-get install docker.io failed; log in $log" >&2
			exit 1
		fi
		rm -f "$log"
	fi
	if answers; then
		echo "==> Docker engine answering ($(docker version --format '{{.Server.Version}}'))"
		return
	fi
	echo "==> starting dockerd (log in $dir/dockerd.log)"
	mkdir -p "$dir"
	dockerd >"$dir/dockerd.log" 2>&1 &
	echo $! >"$pidfile"
	for _ in $(seq 1 60); do
		if answers; then
			echo "==> dockerd $(cat "$pidfile") answering ($(docker version --format '{{.Server.Version}}'))"
			return
		fi
		if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
			break
		fi
		sleep 1
	done
	tail -n 20 "$dir/dockerd.log" >&2
	echo "docker-engine: the Docker engine did not start (dockerd's log above, in $dir/dockerd.log);" \
		"it needs root, overlay2 or vfs storage and cgroups" >&2
	stop
	exit 1
}

stop() {
	[[ -f $pidfile ]] || return 0
	pid=$(cat "$pidfile")
	rm -f "$pidfile"
	if kill -0 "$pid" 2>/dev/null; then
		echo "==> stopping dockerd $pid (started by this script)"
		kill -TERM "$pid"
		for _ in $(seq 1 30); do
			kill -0 "$pid" 2>/dev/null || return 0
			sleep 1
		done
		echo "docker-engine: dockerd $pid still running after 30 s" >&2
	fi
}

case ${1:-} in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
