#!/usr/bin/env bash
# Fetches the Swagger UI files the gateway embeds for its API reference at
# /docs into gateway/reference/swagger-ui/, from the npm registry's
# swagger-ui-dist at the version gateway/reference/swagger-ui/PIN names, and
# checks the package against the integrity hash PIN holds. They are
# committed, so that `go build` needs no network; the gateway's test
# (TestReferenceMatchesPin) checks them against SHA256SUMS, which this script
# writes from the checked package.
#
#   scripts/fetch-swagger-ui.sh            fetch the pinned version again
#   scripts/fetch-swagger-ui.sh --check    fetch it and fail if what is committed differs
#   scripts/fetch-swagger-ui.sh 5.36.0     move the pin to another version (then review and commit)
#
# Files over the 1 MiB that scripts/check-tracked-files.sh allows in git (the
# bundle) are committed gzipped (gzip -n: no name or time, so the bytes are
# the same every time); so is the stylesheet. The gateway serves them
# compressed as they are, or expanded to a client that takes no gzip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dest=gateway/reference/swagger-ui
pkg=swagger-ui-dist
# What the gateway needs of the package: the bundle (Swagger UI with React
# and its other dependencies), its stylesheet, and the licences.
plain=(LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt package.json)
gzipped=(swagger-ui-bundle.js swagger-ui.css)

check=false
read -r _ version integrity <"$dest/PIN"
case ${1:-} in
--check) check=true ;;
"") ;;
*)
	version=$1
	scripts/install-node.sh "fetching Swagger UI"
	integrity=$(npm view "${pkg}@${version}" dist.integrity)
	;;
esac

scripts/install-node.sh "fetching Swagger UI"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mercato-swagger-ui.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "==> fetching ${pkg}@${version} from the npm registry"
tarball=$(cd "$tmp" && npm pack --silent --loglevel=error "${pkg}@${version}")
got="sha512-$(openssl dgst -sha512 -binary "$tmp/$tarball" | base64 -w0)"
if [[ $got != "$integrity" ]]; then
	echo "fetch-swagger-ui: ${tarball} has integrity ${got}, the pin says ${integrity}" >&2
	exit 1
fi
tar -xzf "$tmp/$tarball" -C "$tmp"

out=$tmp/out
mkdir -p "$out"
for f in "${plain[@]}"; do cp "$tmp/package/$f" "$out/$f"; done
for f in "${gzipped[@]}"; do gzip -n -9 -c "$tmp/package/$f" >"$out/$f.gz"; done
(cd "$tmp/package" && sha256sum "${plain[@]}" "${gzipped[@]}") >"$out/SHA256SUMS"
echo "$pkg $version $integrity" >"$out/PIN"

if $check; then
	if ! diff -r "$out" "$dest" >/dev/null; then
		diff -rq "$out" "$dest" >&2 || true
		echo "fetch-swagger-ui: ${dest} differs from ${pkg}@${version}; run scripts/fetch-swagger-ui.sh" >&2
		exit 1
	fi
	echo "==> ${dest} is ${pkg}@${version}, byte for byte"
	exit 0
fi
rm -rf "$dest"
mkdir -p "$dest"
cp "$out"/* "$dest"/
echo "==> ${dest} now holds ${pkg}@${version}"
