#!/usr/bin/env bash
# Builds the pinned Consul (the version consul/go.mod requires) from source
# into bin/consul. Idempotent: does nothing when bin/consul already is that
# version. Safe to run concurrently (`make run` and `make test` at once): a
# lock makes the second caller wait for the first build instead of repeating it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The version comes from the tool module, so bumping the pin there is enough.
version=$(awk '($1 == "github.com/hashicorp/consul") { print $2; exit }
               ($1 == "require" && $2 == "github.com/hashicorp/consul") { print $3; exit }' consul/go.mod)
version=${version:-v1.14.11}

is_built() {
	[[ -x bin/consul ]] && bin/consul version 2>/dev/null | head -n1 | grep -qF "Consul ${version}"
}

if ! command -v go >/dev/null 2>&1; then
	echo "build-consul: the Go toolchain (go) is not on PATH; it is needed to build Consul ${version}" >&2
	exit 1
fi

mkdir -p bin
if command -v flock >/dev/null 2>&1; then
	exec 9>bin/.consul-build.lock
	if ! flock -n 9; then
		echo "==> another Consul build is running; waiting for it"
		flock 9
	fi
fi
if is_built; then
	exit 0
fi

echo "==> building Consul ${version} from source into bin/consul (first time only; about 7-10 minutes on 2 cores)"
start=$SECONDS
tmp="bin/consul.tmp.$$"
# A heartbeat so CI logs show the build is alive rather than hung.
(
	while sleep 30; do
		echo "... still building Consul ($((SECONDS - start))s)"
	done
) &
heartbeat=$!
trap 'kill "$heartbeat" 2>/dev/null || true; rm -f "$tmp"' EXIT

# GOWORK=off: inside the workspace the other modules' requirements would
# change Consul's dependency versions; the tool module's go.sum pins them.
(cd consul && GOWORK=off go build -o "../$tmp" github.com/hashicorp/consul)
# Rename last, so bin/consul never exists half-written.
mv -f "$tmp" bin/consul
echo "==> built $(bin/consul version | head -n1) into bin/consul in $((SECONDS - start))s"
