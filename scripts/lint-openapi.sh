#!/usr/bin/env bash
# Lints docs/openapi.yaml with Redocly CLI (pinned in tools/redocly/) and the
# committed ruleset docs/redocly.yaml, for `make lint`. Prints the linter's
# report only when it finds something.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/npm-ci.sh tools/redocly "the OpenAPI linter (Redocly CLI)"
echo "==> redocly lint docs/openapi.yaml (ruleset docs/redocly.yaml)"
log=$(mktemp "${TMPDIR:-/tmp}/mercato-redocly.XXXXXX.log")
trap 'rm -f "$log"' EXIT
# No telemetry and no update check: neither server is reachable from here,
# and a linter has no business calling out.
if ! REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
	tools/redocly/node_modules/.bin/redocly lint docs/openapi.yaml --config docs/redocly.yaml --format stylish >"$log" 2>&1; then
	# Redocly's banner about Node.js versions is noise here.
	grep -v '[║╔╚]' "$log" >&2
	echo "lint-openapi: docs/openapi.yaml breaks the ruleset docs/redocly.yaml (see above)" >&2
	exit 1
fi
