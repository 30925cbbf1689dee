#!/usr/bin/env bash
# Installs Debian packages with apt-get, as root or through sudo, waiting for
# another apt-get's lock; its chatter goes to a log shown only on failure.
#
#   scripts/apt-install.sh WHAT PACKAGE...    WHAT names the caller, for errors
set -euo pipefail

what=$1
shift
if ! command -v apt-get >/dev/null 2>&1; then
	echo "${what}: apt-get not found; install $* with this system's package manager" >&2
	exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null 2>&1 || {
		echo "${what}: installing packages needs root; as root run: apt-get install $*" >&2
		exit 1
	}
	sudo=(sudo)
fi
log=$(mktemp "${TMPDIR:-/tmp}/mercato-apt.XXXXXX.log")
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q)
if ! { "${apt[@]}" update && "${apt[@]}" install -y --no-install-recommends "$@"; } >"$log" 2>&1; then
	tail -n 30 "$log" >&2
	echo "${what}: apt-get failed; full log in $log" >&2
	exit 1
fi
rm -f "$log"
