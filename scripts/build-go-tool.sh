#!/usr/bin/env bash
# Builds a pinned Go tool from its tool module (a folder whose go.mod has a
# `tool` line and a go.sum pinning every dependency) into bin/<name>.
#
#   scripts/build-go-tool.sh NAME MODULE_DIR PACKAGE VERSION LABEL MINUTES
#
# Idempotent: does nothing when `bin/NAME version` already prints VERSION,
# or, for a tool whose version command prints none when built this way
# (Jaeger, VictoriaLogs), when `go version -m bin/NAME` lists VERSION (give
# it as "MODULE<tab>vX.Y.Z").
# LDFLAGS, when set, is passed to go build (to stamp a tool's version);
# VERSION_ARGS, when set, replaces `version` as the arguments that make the
# tool print its version; TAGS, when set, are the build tags.
# Safe to run concurrently (`make run` and `make test` at once): a lock makes
# the second caller wait for the first build instead of repeating it. Prints a
# heartbeat every 30 s so CI logs show the build is alive.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if (($# != 6)); then
	echo "usage: $0 NAME MODULE_DIR PACKAGE VERSION LABEL MINUTES" >&2
	exit 2
fi
name=$1 dir=$2 pkg=$3 version=$4 label=$5 minutes=$6
out=bin/$name

is_built() {
	[[ -x $out ]] || return 1
	# Each output is read whole before it is searched: with pipefail, a
	# reader that stops early (head, grep -q) can kill the writer with
	# SIGPIPE and fail the pipeline, which looked like "not built" and
	# rebuilt the tool for nothing.
	local said
	# shellcheck disable=SC2086 # VERSION_ARGS is a list of arguments
	said=$("$out" ${VERSION_ARGS:-version} 2>&1 || true)
	grep -qF -- "$version" <<<"$said" && return 0
	said=$(go version -m "$out" 2>/dev/null || true)
	grep -qF -- "$version" <<<"$said"
}

if ! command -v go >/dev/null 2>&1; then
	echo "build-go-tool: the Go toolchain (go) is not on PATH; it is needed to build ${label}" >&2
	exit 1
fi

mkdir -p bin
if command -v flock >/dev/null 2>&1; then
	exec 9>"bin/.${name}-build.lock"
	if ! flock -n 9; then
		echo "==> another ${label} build is running; waiting for it"
		flock 9
	fi
fi
if is_built; then
	exit 0
fi

echo "==> building ${label} from source into ${out} (first time only; about ${minutes} minutes on 2 cores)"
start=$SECONDS
tmp="${out}.tmp.$$"
(
	while sleep 30; do
		echo "... still building ${label} ($((SECONDS - start))s)"
	done
) &
heartbeat=$!
trap 'kill "$heartbeat" 2>/dev/null || true; rm -f "$tmp"' EXIT

# GOWORK=off: inside the workspace the other modules' requirements would
# change the tool's dependency versions; the tool module's go.sum pins them.
(cd "$dir" && GOWORK=off go build -tags "${TAGS:-}" -ldflags "${LDFLAGS:-}" -o "$OLDPWD/$tmp" "$pkg") 2>&1 || {
	echo "build-go-tool: building ${label} failed" >&2
	exit 1
}
# Rename last, so the binary never exists half-written.
mv -f "$tmp" "$out"
echo "==> built ${label} into ${out} in $((SECONDS - start))s"
