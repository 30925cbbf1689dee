#!/usr/bin/env bash
# Installs the SMTP sink `make run` starts so a person sees the emails the
# platform sends: MailDev (an SMTP server that keeps every message, with a
# web UI) from the npm registry, into .local/maildev. Idempotent: does
# nothing when that version is already there. Node.js and npm come from
# Debian's packages when missing (MailDev 2.2 runs on Node 18, Debian 12's).
#
# Why MailDev and not Mailpit: Mailpit builds from the Go module proxy, but
# its web UI is built with npm from packages the registry here lacks, so
# its page loads blank (/dist/app.js answers 404). MailDev ships its UI.
#
# Run it as:   .local/maildev/node_modules/.bin/maildev --ip 127.0.0.1 --smtp 1025 \
#                  --web 1080 --web-ip 127.0.0.1 --mail-directory .local/maildev/mail
# SMTP on 127.0.0.1:1025 (the notification service's default -smtp-addr),
# web UI and REST API (GET /email) on http://127.0.0.1:1080.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=2.2.1
prefix=.local/maildev

installed_version() {
	[[ -f $prefix/node_modules/maildev/package.json ]] &&
		sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$prefix/node_modules/maildev/package.json" | head -n1
}

if [[ $(installed_version || true) == "$version" && -x $prefix/node_modules/.bin/maildev ]]; then
	exit 0
fi

scripts/install-node.sh "the MailDev SMTP sink"

# --- MailDev -------------------------------------------------------------------

mkdir -p "$prefix"
if command -v flock >/dev/null 2>&1; then
	exec 9>"$prefix/.install.lock"
	if ! flock -n 9; then
		echo "==> another MailDev install is running; waiting for it"
		flock 9
	fi
	if [[ $(installed_version || true) == "$version" ]]; then
		exit 0
	fi
fi

echo "==> installing the MailDev ${version} SMTP sink into ${prefix} (first time only; about 15 seconds)"
start=$SECONDS
log=$(mktemp "${TMPDIR:-/tmp}/mercato-npm.XXXXXX.log")
if ! npm install --prefix "$prefix" --no-audit --no-fund --no-update-notifier --loglevel=error "maildev@${version}" >"$log" 2>&1; then
	tail -n 30 "$log" >&2
	echo "install-smtp-sink: npm install failed; full log in $log" >&2
	exit 1
fi
rm -f "$log"
echo "==> installed MailDev $(installed_version) in $((SECONDS - start))s"
