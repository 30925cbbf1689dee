#!/usr/bin/env bash
# Writes the secrets of the local Kubernetes overlay (deploy/k8s/overlays/local)
# into its git-ignored folder generated/, where its secretGenerator and
# configMapGenerator read them: the same secrets compose has, made the same
# way (bin/mercato-local -compose-secrets: JWT, webhook and idempotency
# keys, the admin password, PostgreSQL, Redis and Consul credentials, and
# what derives from them: database URLs, Redis's ACL file, Consul's ACL
# settings and policies, Alertmanager's configuration). Generated once;
# a second run keeps them (delete the folder to start over).
#
#   scripts/k8s-secrets.sh [DIR]     default: deploy/k8s/overlays/local/generated
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir=${1:-deploy/k8s/overlays/local/generated}
echo "==> building bin/mercato-local for the cluster's secrets"
go build -o bin/mercato-local ./shared/cmd/mercato-local
bin/mercato-local -compose-secrets "$dir"
