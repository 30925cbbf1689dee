#!/usr/bin/env bash
# Builds the pinned Mailpit (tools/mailpit/go.mod) into bin/mailpit, for the
# axllent/mailpit stand-in image (scripts/docker-standins.sh). Its SMTP
# server and REST API work; its web UI comes out blank, since the UI is
# built with npm from packages the registry here lacks (DESIGN §10).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=$(awk '$1 == "github.com/axllent/mailpit" { print $2; exit }' tools/mailpit/go.mod)
LDFLAGS="-X github.com/axllent/mailpit/config.Version=${version}" VERSION_ARGS="version --no-release-check" \
	exec scripts/build-go-tool.sh mailpit tools/mailpit github.com/axllent/mailpit \
	"${version}" "Mailpit ${version}" 1-2
