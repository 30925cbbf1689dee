#!/usr/bin/env bash
# `make generate`: everything made from docs/openapi.yaml, the one source of
# the API's contract. Each has a test that fails when it is stale:
#   gateway/reference/openapi.yaml   the copy the gateway embeds    (gateway: TestReferenceDocumentIsCurrent)
#   clients/go/mercato/mercato.gen.go the Go client, oapi-codegen     (clients/go/mercato: TestGeneratedClientIsCurrent)
#   clients/typescript/src/schema.ts the TypeScript types            (scripts/check-typescript-client.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> gateway/reference/openapi.yaml (the document the gateway serves)"
cp docs/openapi.yaml gateway/reference/openapi.yaml

echo "==> clients/go/mercato/mercato.gen.go (oapi-codegen, pinned in tools/oapi-codegen)"
mkdir -p bin
# GOWORK=off: the tool module's go.sum pins the generator's dependencies.
(cd tools/oapi-codegen && GOWORK=off go build -o ../../bin/oapi-codegen github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen)
(cd clients/go/mercato && ../../../bin/oapi-codegen -config oapi-codegen.yaml -o mercato.gen.go ../../../docs/openapi.yaml)

scripts/npm-ci.sh clients/typescript "the TypeScript client's toolchain (openapi-typescript, TypeScript)"
echo "==> clients/typescript/src/schema.ts (openapi-typescript)"
(cd clients/typescript && node_modules/.bin/openapi-typescript ../../docs/openapi.yaml --output src/schema.ts >/dev/null)
