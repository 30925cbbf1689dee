#!/usr/bin/env bash
# Builds the pinned Jaeger (the version tools/jaeger/go.mod requires; its
# v2 all-in-one binary, OTLP in and the query API out) into bin/jaeger for
# `make run` and the end-to-end trace test. A build from the module proxy
# carries a placeholder page instead of the web UI: the query API is what
# the test and scripts use; compose runs the official image, UI included.
# Idempotent; safe to run concurrently (see build-go-tool.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2; exit }' tools/jaeger/go.mod)

exec scripts/build-go-tool.sh jaeger tools/jaeger github.com/jaegertracing/jaeger/cmd/jaeger \
	"github.com/jaegertracing/jaeger	${version}" "Jaeger ${version}" 8-10
