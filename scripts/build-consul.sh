#!/usr/bin/env bash
# Builds the pinned Consul (the version consul/go.mod requires) from source
# into bin/consul. Idempotent: does nothing when bin/consul already is that
# version; safe to run concurrently (see build-go-tool.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The version comes from the tool module, so bumping the pin there is enough.
version=$(awk '($1 == "github.com/hashicorp/consul") { print $2; exit }
               ($1 == "require" && $2 == "github.com/hashicorp/consul") { print $3; exit }' consul/go.mod)
version=${version:-v1.14.11}

exec scripts/build-go-tool.sh consul consul github.com/hashicorp/consul "Consul ${version}" "Consul ${version}" 7-10
