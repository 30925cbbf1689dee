#!/usr/bin/env bash
# Builds the pinned VictoriaLogs (the version tools/victorialogs/go.mod
# requires, web UI included) into bin/victoria-logs, the log store of
# `make run` and of the end-to-end log-search test. Idempotent; safe to run
# concurrently (see build-go-tool.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=$(awk '$1 == "github.com/VictoriaMetrics/VictoriaLogs" { print $2; exit }' tools/victorialogs/go.mod)

exec scripts/build-go-tool.sh victoria-logs tools/victorialogs github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs \
	"github.com/VictoriaMetrics/VictoriaLogs	${version}" "VictoriaLogs ${version}" 2-3
