#!/usr/bin/env bash
# `make test`'s check of the TypeScript client (clients/typescript): its types
# are what openapi-typescript makes of docs/openapi.yaml today (else: run
# make generate), and its code, the typed fetch example included,
# type-checks (tsc --noEmit).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/npm-ci.sh clients/typescript "the TypeScript client's toolchain (openapi-typescript, TypeScript)"
cd clients/typescript
tmp=$(mktemp "${TMPDIR:-/tmp}/mercato-schema.XXXXXX.ts")
trap 'rm -f "$tmp"' EXIT
echo "==> clients/typescript: openapi-typescript, then tsc --noEmit"
node_modules/.bin/openapi-typescript ../../docs/openapi.yaml --output "$tmp" >/dev/null
if ! cmp -s "$tmp" src/schema.ts; then
	diff -u src/schema.ts "$tmp" | head -n 40 >&2 || true
	echo "check-typescript-client: clients/typescript/src/schema.ts is stale: run make generate" >&2
	exit 1
fi
node_modules/.bin/tsc --noEmit
