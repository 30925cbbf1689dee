#!/usr/bin/env bash
# Makes a local stand-in for every image that deploy/standins/images.txt
# lists, tagged with the exact name the Dockerfile, docker-compose.yml and
# deploy/k8s use, when that name is missing locally, or is a stand-in made
# from an older deploy/standins/<dir> (its label dev.mercato.standin.hash). No image registry can be reached
# from the machines Mercato is developed and tested on, so nothing can be
# pulled; where Docker Hub is reachable none of this is needed (the real
# images are used, and a name that exists is never rebuilt).
#
#   scripts/docker-standins.sh          make the missing stand-ins
#   scripts/docker-standins.sh --list   say, for each image, what is there
#   scripts/docker-standins.sh --base   only the debootstrap base (slow on the
#                                       network, so it can run beside builds)
#
# The base is Debian bookworm made by debootstrap (--variant=minbase) from
# the Debian mirror the host's apt uses, imported as debian:bookworm-slim;
# the others are built on it from Debian's packages (deploy/standins/<dir>),
# with the host's CA certificates where they talk TLS, bin/consul,
# bin/mailpit, bin/prometheus, bin/jaeger, bin/victoria-logs and bin/vlagent
# (built from the Go module proxy). Images with no stand-in possible here are only
# listed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

list=false base_only=false
case ${1:-} in
--list) list=true ;;
--base) base_only=true ;;
"") ;;
*) echo "usage: $0 [--list|--base]" >&2; exit 2 ;;
esac

# standin_hash identifies the content of deploy/standins/<dir>.
standin_hash() {
	(cd "deploy/standins/$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}

# have: image $1 is present, and is not a stand-in of an older
# deploy/standins/$2 (an image of the publisher's has no such label).
have() {
	local made dir hash
	made=$(docker image inspect --format '{{index .Config.Labels "dev.mercato.standin"}} {{index .Config.Labels "dev.mercato.standin.hash"}}' "$1" 2>/dev/null) || return 1
	read -r dir hash <<<"$made"
	[[ -z ${dir:-} || $dir == debootstrap || $2 == - || ${hash:-} == "$(standin_hash "$2")" ]]
}

# mirror is the Debian mirror the host's apt uses (deb822 or one-line form).
mirror() {
	local uri
	uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	if [[ -z $uri ]]; then
		uri=$(awk '$1 == "deb" && $0 !~ /security/ { print ($2 ~ /^\[/ ? $3 : $2); exit }' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
	fi
	if [[ -z $uri ]]; then
		echo "docker-standins: no Debian mirror found in /etc/apt/sources.list*; debootstrap needs one" >&2
		exit 1
	fi
	echo "$uri"
}

make_base() { # name
	if ! command -v debootstrap >/dev/null; then
		echo "==> installing debootstrap (Debian package) for the base image"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
	fi
	local root
	root=$(mktemp -d /tmp/mercato-rootfs.XXXXXX)
	trap 'rm -rf "$root"' RETURN
	echo "==> debootstrap --variant=minbase bookworm (about 1-2 minutes)"
	debootstrap --variant=minbase bookworm "$root" "$(mirror)" >"$root.log" 2>&1 || {
		tail -n 20 "$root.log" >&2
		echo "docker-standins: debootstrap failed (log above)" >&2
		exit 1
	}
	rm -f "$root.log"
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
	tar -C "$root" -c . | docker import \
		--change 'CMD ["bash"]' \
		--change 'LABEL dev.mercato.standin=debootstrap' \
		- "$1" >/dev/null
}

build_standin() { # name dir
	local name=$1 dir=deploy/standins/$2 ctx
	ctx=$(mktemp -d /tmp/mercato-standin.XXXXXX)
	trap 'rm -rf "$ctx"' RETURN
	cp -a "$dir"/. "$ctx"/
	grep -q 'ca-certificates.crt' "$dir/Dockerfile" && cp /etc/ssl/certs/ca-certificates.crt "$ctx"/
	case $2 in
	golang) cp -a "$(go env GOROOT)" "$ctx/go" ;;
	consul) scripts/build-consul.sh && cp bin/consul "$ctx/consul" ;;
	mailpit) scripts/build-mailpit.sh && cp bin/mailpit "$ctx/mailpit" ;;
	prometheus) scripts/build-prometheus.sh && cp bin/prometheus "$ctx/prometheus" ;;
	jaeger) scripts/build-jaeger.sh && cp bin/jaeger "$ctx/jaeger" ;;
	victoria-logs) scripts/build-victorialogs.sh && cp bin/victoria-logs "$ctx/victoria-logs" ;;
	vlagent) scripts/build-vlagent.sh && cp bin/vlagent "$ctx/vlagent" ;;
	esac
	if ! docker build --progress=plain --label dev.mercato.standin="$2" --label dev.mercato.standin.hash="$(standin_hash "$2")" \
		-t "$name" "$ctx" >"$ctx.log" 2>&1; then
		tail -n 30 "$ctx.log" >&2
		echo "docker-standins: building the stand-in for $name failed (log above)" >&2
		exit 1
	fi
	rm -f "$ctx.log"
}

missing=()
while read -r image standin from; do
	[[ -z $image || $image == \#* ]] && continue
	$base_only && [[ $standin != debootstrap ]] && continue
	if have "$image" "$standin"; then
		$list && printf '  %-44s present\n' "$image"
		continue
	fi
	if [[ $standin == - ]]; then
		printf '  %-44s not available: %s (compose and the local cluster run without it)\n' "$image" "${from#none*: }"
		missing+=("$image")
		continue
	fi
	if $list; then
		printf '  %-44s missing; stand-in: %s\n' "$image" "$from"
		continue
	fi
	echo "==> making a stand-in for $image ($from)"
	start=$SECONDS
	if [[ $standin == debootstrap ]]; then
		make_base "$image"
	else
		build_standin "$image" "$standin"
	fi
	echo "==> $image ready in $((SECONDS - start))s"
done <deploy/standins/images.txt
