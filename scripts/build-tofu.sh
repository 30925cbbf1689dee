#!/usr/bin/env bash
# Builds the pinned OpenTofu (the version tools/tofu/go.mod requires) into
# bin/tofu, for the HCL checks of deploy/terraform (make terraform-check,
# and make test, which builds it beside the Go tests: scripts/test.sh).
# tools/tofu/go.mod carries OpenTofu's own replace of hashicorp/hcl/v2 by
# its fork, without which it does not build. Idempotent; safe to run
# concurrently (see build-go-tool.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=$(awk '$1 == "github.com/opentofu/opentofu" { print $2; exit }' tools/tofu/go.mod)

# A release build, as OpenTofu's own: without this it calls itself
# "v1.10.10-dev".
export LDFLAGS="-X github.com/opentofu/opentofu/version.dev=no"
exec scripts/build-go-tool.sh tofu tools/tofu github.com/opentofu/opentofu/cmd/tofu \
	"github.com/opentofu/opentofu	${version}" "OpenTofu ${version}" 6-12
