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
	pkgs=(npm)
	command -v node >/dev/null 2>&1 || pkgs=(nodejs npm)
	"$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" install-node "${pkgs[@]}"
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if ((major < 18)); then
	echo "install-node: ${what} needs Node.js 18 or newer; this machine has $(node --version)" >&2
	exit 1
fi
