#!/usr/bin/env bash
# make test, after deps and lint: the TypeScript client's check, every Go
# module's tests with -race (the HCL checks of deploy/terraform/check among
# them), the benchmarks once each, then tofu fmt -check of deploy/terraform,
# make compose-test and make k8s-test. The tools those need (Compose and buildx plugins, Consul,
# Mailpit, Prometheus; OpenTofu; Kubernetes, etcd and CoreDNS: Go builds of
# several minutes each on a fresh machine) build one after another beside
# the Go tests, which leave a core idle much of the time, so the checks
# after them find them cached in bin/.
#
#   GO=go PKGS="./shared/... ./user/..." scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO=${GO:-go}

scripts/check-typescript-client.sh

mkdir -p .local/logs
tools_log=.local/logs/tools.log
echo "==> building the compose, OpenTofu and Kubernetes tools (Compose, buildx, Consul, Mailpit, Prometheus; tofu; Kubernetes, etcd, CoreDNS) beside the Go tests; log in $tools_log"
# A session of its own, so a failed go test stops the whole build (its
# process group), not only the script that runs it.
setsid bash -c 'scripts/compose.sh tools && scripts/build-tofu.sh && scripts/build-k8s.sh && echo "==> compose, OpenTofu and Kubernetes tools ready in bin/ (${SECONDS}s, beside the Go tests)"' >"$tools_log" 2>&1 &
tools=$!
trap 'kill -- -"$tools" 2>/dev/null || true' EXIT

echo "==> go test -race $PKGS"
# shellcheck disable=SC2086 # PKGS is a list of package patterns
"$GO" test -race -count=1 -timeout 20m $PKGS

# The benchmarks run once each (-benchtime 1x), so they cannot rot: each
# fails on an error, none on a figure. make bench and make bench-checkout
# run them long enough to mean something.
echo "==> the listing and checkout benchmarks, once each (figures printed, not judged)"
"$GO" test -run '^$' -bench 'BenchmarkProductListing|BenchmarkCheckout' -benchtime 1x -count=1 -timeout 15m ./e2e/

if ! wait "$tools"; then
	cat "$tools_log" >&2
	echo "test: building the compose, OpenTofu and Kubernetes tools failed (log above)" >&2
	exit 1
fi
trap - EXIT
tail -n 1 "$tools_log"
scripts/check-terraform.sh
make --no-print-directory compose-test
make --no-print-directory k8s-test
