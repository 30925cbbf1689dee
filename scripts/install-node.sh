#!/usr/bin/env bash
# Makes sure Node.js (18 or newer) and npm are on PATH, installing them from
# Debian's packages when missing. Used by the scripts that install the
# project's npm tools: the SMTP sink, the OpenAPI linter and the TypeScript
# client's toolchain. Quiet when both are there.
#
#   scripts/install-node.sh WHAT     WHAT: what needs them, for the progress line
set -euo pipefail

what=${1:-the npm tools}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "==> installing Node.js and npm from Debian packages (for ${what}; first time only)"
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "install-node: Node.js/npm are missing and apt-get is not available; install Node.js 18 or newer with npm" >&2
		exit 1
	fi
	sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 || {
			echo "install-node: installing Node.js needs root; as root run: apt-get install nodejs npm" >&2
			exit 1
		}
		sudo=(sudo)
	fi
	log=$(mktemp "${TMPDIR:-/tmp}/mercato-apt.XXXXXX.log")
	pkgs=(npm)
	command -v node >/dev/null 2>&1 || pkgs=(nodejs npm)
	apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q)
	if ! { "${apt[@]}" update && "${apt[@]}" install -y --no-install-recommends "${pkgs[@]}"; } >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		echo "install-node: apt-get failed; full log in $log" >&2
		exit 1
	fi
	rm -f "$log"
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if ((major < 18)); then
	echo "install-node: ${what} needs Node.js 18 or newer; this machine has $(node --version)" >&2
	exit 1
fi
