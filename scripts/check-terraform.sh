#!/usr/bin/env bash
# The OpenTofu checks that need the tofu binary: every file under
# deploy/terraform parses and is formatted as `tofu fmt` would write it.
# Then it proves the check can fail: a misformatted file must be refused.
# The meaning (references, module inputs, what is public, encryption) is
# checked by the Go tests of deploy/terraform/check, part of go test.
# Provider-level validation and a plan need the providers and an AWS
# account, which this machine cannot reach (docs/deployment.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/build-tofu.sh
# No CLI configuration: the checks use no provider mirrors or credentials
# (and a TF_CLI_CONFIG_FILE naming a missing file only adds warnings).
export TF_CLI_CONFIG_FILE=/dev/null

echo "==> tofu fmt -check -recursive deploy/terraform"
if ! bin/tofu fmt -check -recursive -diff deploy/terraform; then
	echo "check-terraform: files above are not formatted (or do not parse); run: bin/tofu fmt -recursive deploy/terraform" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'variable "x" {\ntype = string\n}\n' >"$tmp/misformatted.tf"
if bin/tofu fmt -check "$tmp" >/dev/null 2>&1; then
	echo "check-terraform: tofu fmt -check accepted a misformatted file; the check above proves nothing" >&2
	exit 1
fi
printf 'variable "x" {\n' >"$tmp/misformatted.tf"
if bin/tofu fmt -check "$tmp" >/dev/null 2>&1; then
	echo "check-terraform: tofu fmt -check accepted a file that does not parse; the check above proves nothing" >&2
	exit 1
fi
echo "==> deploy/terraform formatted and parsed ($(find deploy/terraform -name '*.tf' | wc -l) files)"
