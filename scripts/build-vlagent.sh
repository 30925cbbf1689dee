#!/usr/bin/env bash
# Builds the pinned vlagent, VictoriaLogs' log collector (the version of
# the VictoriaLogs module tools/victorialogs/go.mod requires, the same as
# the store's), into bin/vlagent: the stand-in image for the Kubernetes
# collector (deploy/k8s/components/logs) is made from it. Idempotent; safe
# to run concurrently (see build-go-tool.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=$(awk '$1 == "github.com/VictoriaMetrics/VictoriaLogs" { print $2; exit }' tools/victorialogs/go.mod)

exec scripts/build-go-tool.sh vlagent tools/victorialogs github.com/VictoriaMetrics/VictoriaLogs/app/vlagent \
	"github.com/VictoriaMetrics/VictoriaLogs	${version}" "vlagent ${version}" 1-2
