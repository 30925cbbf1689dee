#!/usr/bin/env bash
# Builds the pinned actionlint (the version tools/actionlint/go.mod
# requires) into bin/actionlint for `make lint`, and makes sure shellcheck
# is installed (Debian's package), which actionlint runs on every `run:`
# step when it is on PATH: without it the scripts in the workflows would go
# unchecked, so its absence is an error, not a skip. Idempotent; safe to
# run concurrently (see build-go-tool.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v shellcheck >/dev/null 2>&1; then
	echo "==> installing shellcheck from Debian packages (first time only; actionlint checks the workflows' scripts with it)"
	scripts/apt-install.sh build-actionlint shellcheck
fi

version=$(awk '$1 == "github.com/rhysd/actionlint" { print $2; exit }' tools/actionlint/go.mod)

exec scripts/build-go-tool.sh actionlint tools/actionlint github.com/rhysd/actionlint/cmd/actionlint \
	"github.com/rhysd/actionlint	${version}" "actionlint ${version}" 1-2
