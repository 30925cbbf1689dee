#!/usr/bin/env bash
# Installs the npm packages a folder of ours pins (its package.json and
# package-lock.json; the lock file's integrity hashes are checked) into its
# node_modules/, ignored by git. Idempotent: does nothing while node_modules
# matches the lock file. Safe to run concurrently. Node.js and npm come from
# Debian's packages when missing (scripts/install-node.sh).
#
#   scripts/npm-ci.sh DIR LABEL
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if (($# != 2)); then
	echo "usage: $0 DIR LABEL" >&2
	exit 2
fi
dir=$1 label=$2
stamp=$dir/node_modules/.mercato-lock.sha256

current() { [[ -f $stamp ]] && [[ $(cat "$stamp") == $(sha256sum <"$dir/package-lock.json") ]]; }
current && exit 0

scripts/install-node.sh "$label"
mkdir -p "$dir/node_modules"
if command -v flock >/dev/null 2>&1; then
	exec 9>"$dir/node_modules/.install.lock"
	if ! flock -n 9; then
		echo "==> another install of ${label} is running; waiting for it"
		flock 9
	fi
	current && exit 0
fi

echo "==> installing ${label} with npm ci into ${dir}/node_modules (first time only; seconds)"
start=$SECONDS
log=$(mktemp "${TMPDIR:-/tmp}/mercato-npm.XXXXXX.log")
if ! (cd "$dir" && npm ci --no-audit --no-fund --no-update-notifier --loglevel=error) >"$log" 2>&1; then
	tail -n 30 "$log" >&2
	echo "npm-ci: npm ci in ${dir} failed; full log in $log" >&2
	exit 1
fi
rm -f "$log"
sha256sum <"$dir/package-lock.json" >"$stamp"
echo "==> installed ${label} in $((SECONDS - start))s"
