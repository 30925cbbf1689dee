#!/usr/bin/env bash
# make test, after deps and lint: the TypeScript client's check, every Go
# module's tests with -race (the HCL checks of deploy/terraform/check among
# them), tofu fmt -check of deploy/terraform, then make compose-test. The
# compose tools (Compose and buildx plugins, Mailpit, Prometheus: Go builds
# of several minutes on a fresh machine) and OpenTofu build beside the Go
# tests, which
# leave a core idle much of the time, so compose-test and the HCL check
# find them cached in bin/.
#
#   GO=go PKGS="./shared/... ./user/..." scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO=${GO:-go}

scripts/check-typescript-client.sh

mkdir -p .local/logs
tools_log=.local/logs/compose-tools.log
echo "==> building the compose tools (Compose, buildx, Consul, Mailpit, Prometheus) beside the Go tests; log in $tools_log"
# A session of its own, so a failed go test stops the whole build (its
# process group), not only the script that runs it.
setsid bash -c 'scripts/compose.sh tools && echo "==> compose tools ready in bin/ (${SECONDS}s, beside the Go tests)"' >"$tools_log" 2>&1 &
tools=$!
# OpenTofu too (about 15 minutes cold), for the HCL checks after the tests.
tofu_log=.local/logs/tofu-build.log
setsid bash -c 'scripts/build-tofu.sh && echo "==> OpenTofu ready in bin/ (${SECONDS}s, beside the Go tests)"' >"$tofu_log" 2>&1 &
tofu=$!
trap 'kill -- -"$tools" 2>/dev/null || true; kill -- -"$tofu" 2>/dev/null || true' EXIT

echo "==> go test -race $PKGS"
# shellcheck disable=SC2086 # PKGS is a list of package patterns
"$GO" test -race -count=1 -timeout 20m $PKGS

if ! wait "$tofu"; then
	cat "$tofu_log" >&2
	echo "test: building OpenTofu failed (log above)" >&2
	exit 1
fi
tail -n 1 "$tofu_log"
scripts/check-terraform.sh

if ! wait "$tools"; then
	cat "$tools_log" >&2
	echo "test: building the compose tools failed (log above)" >&2
	exit 1
fi
trap - EXIT
tail -n 1 "$tools_log"
make --no-print-directory compose-test
