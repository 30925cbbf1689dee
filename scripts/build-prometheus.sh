#!/usr/bin/env bash
# Builds the pinned Prometheus 3 (tools/prometheus/go.mod; module v0.3NN.x
# is Prometheus v3.NN.x) into bin/prometheus, for the prom/prometheus
# stand-in image (scripts/docker-standins.sh). Debian's Prometheus 2.42 is
# built without Consul service discovery, which docker-compose.yml's
# Prometheus uses. The build carries no web UI assets (they are built with
# npm); the HTTP API, which the tests use, is complete. Only the Consul
# discovery is built in (the build tags Prometheus has for that), which
# keeps the build to a fraction of all of them (AWS, Azure, GCE,
# Kubernetes...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

module=$(awk '$1 == "github.com/prometheus/prometheus" { print $2; exit }' tools/prometheus/go.mod)
minor=${module#v0.3}
version="3.${minor%%.*}.${module##*.}"
TAGS="remove_all_sd,enable_consul_sd" VERSION_ARGS="--version" \
	LDFLAGS="-X github.com/prometheus/common/version.Version=${version}" \
	exec scripts/build-go-tool.sh prometheus tools/prometheus github.com/prometheus/prometheus/cmd/prometheus \
	"version ${version}" "Prometheus ${version}" 2-4
