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
start=$SECONDS
"$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" install-chromium chromium >&2
if [[ ! -x $chromium ]]; then
	echo "install-chromium: the chromium package is installed but $chromium is missing" >&2
	exit 1
fi
echo "==> installed $("$chromium" --version 2>/dev/null || echo Chromium) in $((SECONDS - start))s" >&2
echo "$chromium"
