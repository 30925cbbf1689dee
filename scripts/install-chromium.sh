#!/usr/bin/env bash
# Installs Chromium from Debian's packages when it is missing, for the
# browser test of the gateway's API reference (e2e/docs_browser_test.go,
# which runs this script itself). Idempotent: does nothing when
# /usr/bin/chromium (or $MERCATO_CHROMIUM) is there. Prints the path of
# the browser on its last line.
set -euo pipefail

chromium=${MERCATO_CHROMIUM:-/usr/bin/chromium}
if [[ -x $chromium ]]; then
	echo "$chromium"
	exit 0
fi
if [[ -n ${MERCATO_CHROMIUM:-} ]]; then
	echo "install-chromium: MERCATO_CHROMIUM=$chromium is not an executable" >&2
	exit 1
fi

echo "==> installing Chromium from Debian packages (for the API reference's browser test; first time only, about a minute)" >&2
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-chromium: apt-get not found; install Chromium and point MERCATO_CHROMIUM at it" >&2
	exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null 2>&1 || {
		echo "install-chromium: installing Chromium needs root; as root run: apt-get install chromium" >&2
		exit 1
	}
	sudo=(sudo)
fi
start=$SECONDS
log=$(mktemp "${TMPDIR:-/tmp}/mercato-apt.XXXXXX.log")
# Another apt-get may hold the dpkg lock for a while: wait for it.
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q)
if ! { "${apt[@]}" update && "${apt[@]}" install -y --no-install-recommends chromium; } >"$log" 2>&1; then
	tail -n 30 "$log" >&2
	echo "install-chromium: apt-get failed; full log in $log" >&2
	exit 1
fi
rm -f "$log"
if [[ ! -x $chromium ]]; then
	echo "install-chromium: the chromium package is installed but $chromium is missing" >&2
	exit 1
fi
echo "==> installed $("$chromium" --version 2>/dev/null || echo Chromium) in $((SECONDS - start))s" >&2
echo "$chromium"
