# Mercato's front door. `make help` lists the targets.

SHELL := /bin/bash
GO    ?= go
# Go modules of ours whose packages are built, vetted and tested.
MODULES := shared user product order payment notification gateway e2e clients/go deploy deploy/terraform
PKGS    := $(addsuffix /...,$(addprefix ./,$(MODULES)))
SERVICES := user product order payment notification gateway

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## install PostgreSQL, Redis, Prometheus, Alertmanager (Debian packages) and build Consul, Jaeger and VictoriaLogs when missing
	@scripts/install-deps.sh

.PHONY: build
build: ## build every service and the local runner into bin/
	@echo "==> building $(SERVICES) and mercato-local into bin/"
	@$(GO) build -o bin/ $(foreach s,$(SERVICES),./$(s)/cmd/$(s)) ./shared/cmd/mercato-local

.PHONY: run
run: deps smtp-sink build ## run the whole platform locally (no Docker); Ctrl-C stops it
	@bin/mercato-local

.PHONY: smtp-sink
smtp-sink: ## install MailDev, the SMTP sink with a web UI that make run starts
	@scripts/install-smtp-sink.sh

.PHONY: test
test: deps lint ## run every test, integration, end-to-end, the compose platform and the Kubernetes one included, with -race
	@GO=$(GO) PKGS="$(PKGS)" scripts/test.sh

.PHONY: images
images: ## build the six Docker images (root Dockerfile) and print their names and sizes
	@scripts/docker-engine.sh start
	@scripts/build-docker-plugins.sh
	@scripts/docker-standins.sh
	@scripts/build-images.sh

.PHONY: compose-up
compose-up: deps ## run the whole platform in Docker (docker-compose.yml): stand-ins, secrets, images, up --wait (ARGS go to docker compose up, e.g. ARGS='--scale order=3')
	@scripts/compose.sh up $(ARGS)

.PHONY: compose-down
compose-down: ## stop the compose platform (volumes kept; make compose-down ARGS=-v removes them)
	@scripts/compose.sh down $(ARGS)

.PHONY: compose-logs
compose-logs: ## follow the compose platform's logs
	@scripts/compose.sh logs

.PHONY: compose-test
compose-test: deps ## prove docker-compose.yml runs: up, checkout, Consul, Prometheus, kill a replica of each backend, checkout, down
	@scripts/compose-test.sh

.PHONY: k8s-test
k8s-test: deps ## (root) prove deploy/k8s on a real single-node Kubernetes: apply overlays/local, checkout, pod deletions under reads, aws dry run, host restored
	@GO=$(GO) scripts/k8s-test.sh

.PHONY: k8s-cluster-test
k8s-cluster-test: ## (root) build bin/k8s once, start the single-node test Kubernetes, run a Service on it, stop it, check the host is as before
	@scripts/build-k8s.sh
	@cd e2e && $(GO) test -race -tags k8s -count=1 -v -run TestClusterServesAndRestoresTheHost ./k8s/cluster/

# FUZZTIME bounds each fuzz target of make fuzz.
FUZZTIME ?= 10s

.PHONY: fuzz
fuzz: deps ## fuzz every request decoder and webhook parser, FUZZTIME (10s) per target; findings land in testdata/fuzz
	@FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh ./shared/... ./user/... ./product/... ./order/... ./payment/... ./notification/... ./gateway/...

.PHONY: bench
bench: deps ## print product-listing throughput (gateway vs direct, cache warm vs cold) on 100,000 products
	@$(GO) test -run '^$$' -bench BenchmarkProductListing -benchtime 1x -timeout 10m ./e2e/

.PHONY: bench-checkout
bench-checkout: deps ## print checkouts/s end to end (1, 8, 32 clients), CPU per checkout, and PostgreSQL's ceiling for all of a checkout's database work
	@$(GO) test -run '^$$' -bench BenchmarkCheckout -benchtime 400x -count=1 -timeout 30m ./e2e/

.PHONY: bench-gateway
bench-gateway: deps ## print GET /api/v1/categories direct, through nginx (1 worker, auto) and the gateway (bearer, anonymous): req/s, p50/p99, ratios
	@$(GO) test -run '^$$' -bench BenchmarkGateway -benchtime 1x -count=1 -timeout 10m ./e2e/

# LOAD_FLAGS go to make load: -rate 50, -duration 30s, -users 20, -mix checkout,
# -json FILE, -target URL; make load LOAD_FLAGS=-h says them all.
LOAD_FLAGS ?=

.PHONY: load
load: ## send the shopper mix to make run's gateway at a fixed rate: progress, a table per route, a latency PNG, the invariants
	@$(GO) run ./e2e/cmd/load $(LOAD_FLAGS)

# CHAOS_FLAGS go to make chaos: -rate 25, -short, -json FILE, -png FILE;
# make chaos CHAOS_FLAGS=-h says them all.
CHAOS_FLAGS ?=

.PHONY: chaos
chaos: deps ## kill, pause and restart every process and server under the shopper mix, then check nothing was lost (about 8 min)
	@$(GO) run ./e2e/cmd/chaos $(CHAOS_FLAGS)

.PHONY: monitoring-config
monitoring-config: ## write the Grafana dashboards (deploy/grafana/dashboards) and their queries (queries.json) from deploy/dashboards
	@$(GO) run ./deploy/cmd/dashboards

# SNAPSHOT_FLAGS go to dashboards-snapshot: -prometheus URL, -range 15m, -out docs/monitoring, -service order.
SNAPSHOT_FLAGS ?=

.PHONY: dashboards-snapshot
dashboards-snapshot: ## draw every dashboard panel from the running platform's Prometheus into PNGs under docs/monitoring
	@$(GO) run ./deploy/cmd/dashboards-snapshot $(SNAPSHOT_FLAGS)

.PHONY: generate
generate: ## regenerate what docs/openapi.yaml makes: the gateway's copy, the Go and TypeScript clients
	@scripts/generate.sh

.PHONY: lint
lint: ## gofmt, go vet, golangci-lint (.golangci.yml) across every module, the OpenAPI linter, actionlint and the workflows' make targets; no build output tracked
	@scripts/check-tracked-files.sh
	@scripts/lint-openapi.sh
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@$(GO) vet $(PKGS)
	@scripts/build-golangci-lint.sh
	@echo "==> golangci-lint run $(PKGS)"
	@bin/golangci-lint run --allow-parallel-runners $(PKGS)
	@scripts/build-actionlint.sh
	@echo "==> actionlint .github/workflows (shellcheck on every run: step)"
	@bin/actionlint
	@echo "==> every make target the workflows call exists"
	@$(GO) test -count=1 -run '^TestWorkflow' ./deploy/terraform/check

.PHONY: terraform-check
terraform-check: ## the OpenTofu checks of deploy/terraform: tofu fmt -check (every file parses), references, module inputs, exposure, encryption (part of make test)
	@scripts/check-terraform.sh
	@$(GO) test -count=1 ./deploy/terraform/...

# ENVIRONMENT and IMAGE_TAG of make aws-deploy; URL of make aws-smoke.
ENVIRONMENT ?=
IMAGE_TAG   ?=
URL         ?=

.PHONY: aws-deploy
aws-deploy: ## deploy IMAGE_TAG (sha-<commit> or v<semver>) to ENVIRONMENT on AWS, smoke-check it, roll back on failure (needs AWS credentials)
	@scripts/aws-deploy.sh "$(ENVIRONMENT)" "$(IMAGE_TAG)"

.PHONY: aws-smoke
aws-smoke: ## the deploy's smoke check through URL: register, log in, list products
	@cd deploy/terraform && GOWORK=off $(GO) run ./cmd/aws-smoke -url "$(URL)"

.PHONY: clean
clean: ## remove built binaries and local run data (keeps the cached Consul, golangci-lint, Jaeger, VictoriaLogs, OpenTofu and actionlint)
	@find bin -type f ! -name consul ! -name golangci-lint ! -name jaeger ! -name victoria-logs ! -name tofu ! -name actionlint -delete 2>/dev/null || true
	@rm -rf .local
