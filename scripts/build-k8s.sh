#!/usr/bin/env bash
# Builds the single-node test cluster's programs (e2e/k8s/cluster) into
# bin/k8s/: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kube-proxy, kubectl (Kubernetes), etcd, coredns and pause, and installs the
# Debian packages the node runs on when they are missing (containerd, runc,
# containernetworking-plugins, iptables).
#
# The versions are pinned in one place, tools/k8s/go.mod (k8s.io/kubernetes,
# go.etcd.io/etcd/server/v3, github.com/coredns/coredns; go.sum pins the rest).
# A binary is rebuilt only when that go.mod or go.sum changes (a stamp beside
# each binary records their hash), so a second run prints one line.
# Prints a progress line per binary and the total seconds; about 7 minutes
# on 2 cores from a cold Go build cache.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mod=tools/k8s
out=bin/k8s

if ! command -v go >/dev/null 2>&1; then
	echo "build-k8s: the Go toolchain (go) is not on PATH" >&2
	exit 1
fi

# --- Debian packages the node needs ------------------------------------------
packages=()
[[ -x /usr/bin/containerd && -x /usr/bin/containerd-shim-runc-v2 ]] || packages+=(containerd)
command -v runc >/dev/null 2>&1 || packages+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/firewall ]] ||
	packages+=(containernetworking-plugins)
command -v iptables-save >/dev/null 2>&1 || packages+=(iptables)
if ((${#packages[@]} > 0)); then
	echo "==> installing ${packages[*]} (Debian packages; first time only)"
	scripts/apt-install.sh build-k8s "${packages[@]}"
fi

# --- versions (tools/k8s/go.mod) ---------------------------------------------
version_of() { awk -v m="$1" '$1 == "require" { $1 = ""; $0 = $0 } $1 == m && $2 ~ /^v/ { print $2; exit }' "$mod/go.mod"; }
kube=$(version_of k8s.io/kubernetes)
etcd=$(version_of go.etcd.io/etcd/server/v3)
coredns=$(version_of github.com/coredns/coredns)
if [[ -z $kube || -z $etcd || -z $coredns ]]; then
	echo "build-k8s: $mod/go.mod must require k8s.io/kubernetes, go.etcd.io/etcd/server/v3 and github.com/coredns/coredns" >&2
	exit 1
fi
# Kubernetes vX.Y.Z publishes its staging modules (k8s.io/api, ...) as
# v0.Y.Z; a replace left at another version builds a mismatched Kubernetes.
staging=v0.${kube#v1.}
if stale=$(grep -E '^\s*k8s\.io/\S+ => k8s\.io/\S+ v' "$mod/go.mod" | grep -vF " $staging" | grep .); then
	echo "build-k8s: these replaces in $mod/go.mod are not at $staging (Kubernetes $kube):" >&2
	echo "$stale" >&2
	exit 1
fi

# A binary carries the stamp of the go.mod and go.sum it was built from.
stamp=$(cat "$mod/go.mod" "$mod/go.sum" "$mod/pause/main.go" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)

# Kubernetes reads its version from these variables; unset, every component
# reports v0.0.0 and kubectl warns of a version skew.
minor=${kube#v1.}
minor=${minor%%.*}
ldk="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldk+=" -X $pkg.gitVersion=$kube -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
	ldk+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# name package ldflags
targets=(
	"kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver k8s"
	"kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager k8s"
	"kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler k8s"
	"kubelet k8s.io/kubernetes/cmd/kubelet k8s"
	"kube-proxy k8s.io/kubernetes/cmd/kube-proxy k8s"
	"kubectl k8s.io/kubernetes/cmd/kubectl k8s"
	"etcd go.etcd.io/etcd/server/v3 plain"
	"coredns github.com/coredns/coredns plain"
	"pause ./pause plain"
)

mkdir -p "$out"
if command -v flock >/dev/null 2>&1; then
	exec 9>"$out/.build.lock"
	if ! flock -n 9; then
		echo "==> another build-k8s is running; waiting for it"
		flock 9
	fi
fi

todo=()
for t in "${targets[@]}"; do
	read -r name _ _ <<<"$t"
	if [[ ! -x $out/$name || $(cat "$out/.$name.stamp" 2>/dev/null) != "$stamp" ]]; then
		todo+=("$t")
	fi
done
if ((${#todo[@]} == 0)); then
	echo "==> bin/k8s is up to date (Kubernetes $kube, etcd $etcd, CoreDNS $coredns)"
	exit 0
fi

echo "==> building ${#todo[@]} programs into $out (Kubernetes $kube, etcd $etcd, CoreDNS $coredns; about 7 minutes on 2 cores the first time)"
start=$SECONDS
(
	while sleep 30; do
		echo "... still building ($((SECONDS - start))s)"
	done
) &
heartbeat=$!
tmp=""
trap 'kill "$heartbeat" 2>/dev/null || true; [[ -z $tmp ]] || rm -f "$tmp"' EXIT

i=0
for t in "${todo[@]}"; do
	read -r name pkg flags <<<"$t"
	i=$((i + 1))
	began=$SECONDS
	ldflags="-s -w"
	[[ $flags == k8s ]] && ldflags=$ldk
	tmp="$out/.$name.tmp.$$"
	# Static binaries (CGO_ENABLED=0): coredns and pause run in images FROM
	# scratch. GOWORK=off: the workspace's modules must not move the pins.
	if ! (cd "$mod" && CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags "$ldflags" -o "$OLDPWD/$tmp" "$pkg") 2>&1; then
		echo "build-k8s: building $name ($pkg) failed" >&2
		exit 1
	fi
	mv -f "$tmp" "$out/$name"
	tmp=""
	echo "$stamp" >"$out/.$name.stamp"
	echo "==> [$i/${#todo[@]}] $name built in $((SECONDS - began))s"
done
echo "==> built ${#todo[@]} programs into $out in $((SECONDS - start))s"
