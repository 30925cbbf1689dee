#!/usr/bin/env bash
# Builds the image of every Mercato program from the root Dockerfile and
# prints their names and sizes (`make images`).
#
#   scripts/build-images.sh [SERVICE...]     default: all six
#
# Images are tagged mercato/<service>:<version> and mercato/<service>:latest;
# VERSION defaults to `git describe`. The base images must exist locally or
# be pullable: scripts/docker-standins.sh makes stand-ins where no registry
# can be reached. The host's Go module proxy settings reach the build as
# build arguments, never written into a file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The programs and the port each listens on (the brief's).
declare -A ports=([gateway]=3000 [user]=3001 [product]=3002 [order]=3003 [payment]=3004 [notification]=3005)
order=(gateway user product order payment notification)
(($# > 0)) && order=("$@")

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
goproxy=$(go env GOPROXY 2>/dev/null || true)
gosumdb=$(go env GOSUMDB 2>/dev/null || true)

for s in "${order[@]}"; do
	if [[ -z ${ports[$s]:-} ]]; then
		echo "build-images: unknown service $s (known: ${!ports[*]})" >&2
		exit 2
	fi
	echo "==> docker build mercato/$s:$version"
	start=$SECONDS
	log=$(mktemp /tmp/mercato-build-$s.XXXXXX.log)
	if ! DOCKER_BUILDKIT=1 docker build --progress=plain \
		--build-arg SERVICE="$s" --build-arg PORT="${ports[$s]}" \
		--build-arg VERSION="$version" --build-arg REVISION="$revision" --build-arg CREATED="$created" \
		--build-arg GOPROXY="$goproxy" --build-arg GOSUMDB="$gosumdb" \
		-t "mercato/$s:$version" -t "mercato/$s:latest" . >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		echo "build-images: building mercato/$s failed; full log in $log" >&2
		exit 1
	fi
	rm -f "$log"
	echo "    built in $((SECONDS - start))s"
done

echo "==> images"
for s in "${order[@]}"; do
	docker image inspect "mercato/$s:$version" --format '{{.Size}}' |
		awk -v n="mercato/$s:$version" '{ printf "  %-44s %6.1f MB\n", n, $1 / 1e6 }'
done
