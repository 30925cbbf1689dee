#!/usr/bin/env bash
# Builds the pinned Docker Compose v2 and buildx (the versions
# tools/compose/go.mod requires) into bin/docker-compose and
# bin/docker-buildx, and installs both as Docker CLI plugins
# (~/.docker/cli-plugins, links to them): `docker compose` and the BuildKit
# builder that `docker build` needs for the Dockerfile's cache mounts.
# Debian's docker-compose package is Compose v1 and Debian ships no buildx.
# Idempotent; safe to run concurrently.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
mkdir -p "$plugins"

# build NAME MODULE PACKAGE VERSION_VAR LABEL MINUTES
build() {
	local name=$1 module=$2 pkg=$3 var=$4 label=$5 minutes=$6 version
	version=$(awk -v m="$module" '$1 == m { print $2; exit }' tools/compose/go.mod)
	LDFLAGS="-X ${var}=${version}" scripts/build-go-tool.sh "$name" tools/compose "$pkg" \
		"$version" "$label $version" "$minutes"
	if [[ "$(readlink -f "$plugins/$name" 2>/dev/null)" != "$PWD/bin/$name" ]]; then
		ln -sfn "$PWD/bin/$name" "$plugins/$name"
		echo "==> installed bin/$name as the Docker CLI plugin $plugins/$name"
	fi
}

build docker-compose github.com/docker/compose/v2 github.com/docker/compose/v2/cmd \
	github.com/docker/compose/v2/internal.Version "Docker Compose" 2-6
build docker-buildx github.com/docker/buildx github.com/docker/buildx/cmd/buildx \
	github.com/docker/buildx/version.Version "Docker buildx" 1-4
