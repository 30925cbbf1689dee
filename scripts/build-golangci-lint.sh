#!/usr/bin/env bash
# Builds the pinned golangci-lint (the version tools/golangci-lint/go.mod
# requires) into bin/golangci-lint for `make lint`. Idempotent; safe to run
# concurrently (see build-go-tool.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=$(awk '$1 == "github.com/golangci/golangci-lint/v2" { print $2; exit }' tools/golangci-lint/go.mod)
version=${version#v}

exec scripts/build-go-tool.sh golangci-lint tools/golangci-lint \
	github.com/golangci/golangci-lint/v2/cmd/golangci-lint "version ${version}" "golangci-lint v${version}" 2-4
