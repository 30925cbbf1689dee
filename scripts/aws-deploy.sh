#!/usr/bin/env bash
# Deploys release TAG (the six images sha-<commit> or v<semver> in ECR) to
# ENVIRONMENT on AWS, and rolls it back when it fails:
#
#   scripts/aws-deploy.sh ENVIRONMENT TAG      (make aws-deploy ENVIRONMENT=... IMAGE_TAG=...)
#
#  1. reads the environment's deploy configuration from SSM (written by
#     deploy/terraform/aws; DEPLOY_PARAMETER overrides its name) and
#     connects kubectl to its EKS cluster;
#  2. checks that all six images of TAG are in ECR;
#  3. renders deploy/k8s/overlays/aws for the environment and TAG
#     (deploy/terraform/cmd/aws-render), with the RDS CA bundle;
#  4. converges the platform: the gp3 StorageClass, the AWS Load Balancer
#     Controller, the External Secrets Operator and Consul (Helm, pinned
#     chart versions);
#  5. applies the Secrets (ExternalSecrets) and waits until they synced,
#     then runs the database bootstrap job to completion;
#  6. notes each Deployment's revision, applies everything, waits for every
#     rollout, and runs the smoke check through the load balancer
#     (deploy/terraform/cmd/aws-smoke: register, log in, list products);
#  7. on a failure in 6 it rolls back automatically: `kubectl rollout undo`
#     of every Deployment whose revision the apply changed (its previous
#     ReplicaSet still names the previous ConfigMaps, whose names carry
#     their content's hash and which the apply left in place), waits for
#     those rollouts, checks the smoke test again and exits 1.
#
# Needs aws, kubectl, helm, curl and go on PATH, and AWS credentials
# (in CI: the environment's deploy role through OIDC). Run from a checkout
# of the release being deployed: the manifests are the checkout's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if (($# != 2)); then
	echo "usage: $0 ENVIRONMENT TAG" >&2
	exit 2
fi
env=$1 tag=$2
param=${DEPLOY_PARAMETER:-/mercato/${env}/deploy}
ns=mercato
services=(gateway user product order payment notification)

# Chart versions, bumped deliberately (and tried on staging first).
lb_controller_chart=${LB_CONTROLLER_CHART_VERSION:-1.13.0}
external_secrets_chart=${EXTERNAL_SECRETS_CHART_VERSION:-0.18.0}
consul_chart=${CONSUL_CHART_VERSION:-1.0.2} # ships Consul 1.14, as consul-values.yaml pins

step() { echo "==> $*"; }
die() {
	echo "aws-deploy: $*" >&2
	exit 1
}

for cmd in aws kubectl helm curl go; do
	command -v "$cmd" >/dev/null 2>&1 || die "$cmd is not on PATH"
done

# AWS_RELEASE_DIR and AWS_OVERLAY move the work folder and the overlay
# (the test of this script, deploy/terraform/release).
work=${AWS_RELEASE_DIR:-.local/aws-release}
overlay=${AWS_OVERLAY:-deploy/k8s/overlays/aws}
mkdir -p "$work/bin"
config=$work/$env.json
export KUBECONFIG=$work/$env.kubeconfig

# The renderer and the smoke check (deploy/terraform/cmd), built once.
bindir=$(cd "$work/bin" && pwd)
(cd deploy/terraform && GOWORK=off go build -o "$bindir/" ./cmd/aws-render ./cmd/aws-smoke) ||
	die "building deploy/terraform/cmd failed"
smoke() { "$work/bin/aws-smoke" -url "$public_url" -attempts "${SMOKE_ATTEMPTS:-10}" -pause "${SMOKE_PAUSE:-15s}"; }

step "reading the deploy configuration of $env ($param)"
aws ssm get-parameter --name "$param" --with-decryption --query Parameter.Value --output text >"$config" ||
	die "cannot read SSM parameter $param (is the stack applied, and is this the $env deploy role?)"
cfg() { "$work/bin/aws-render" -config "$config" -print "$1" || die "the deploy configuration of $env is incomplete"; }
region=$(cfg region)
cluster=$(cfg cluster_name)
registry=$(cfg image_registry)
prefix=$(cfg image_repository_prefix)
public_url=$(cfg public_url)

step "connecting to EKS cluster $cluster ($region)"
aws eks update-kubeconfig --name "$cluster" --region "$region" --kubeconfig "$KUBECONFIG" >/dev/null

step "checking the images of $tag in $registry"
for s in "${services[@]}"; do
	aws ecr describe-images --region "$region" --repository-name "$prefix/$s" --image-ids "imageTag=$tag" >/dev/null 2>&1 ||
		die "image $prefix/$s:$tag is not in ECR; release.yml pushes it"
done

step "rendering deploy/k8s/overlays/aws for $env, images $tag"
curl -fsSL --retry 3 --max-time 60 -o "$work/rds-ca-bundle.pem" \
	https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem ||
	die "cannot download the RDS CA bundle"
rendered=$work/$env/rendered.yaml
"$work/bin/aws-render" -overlay "$overlay" -config "$config" -tag "$tag" \
	-ca-bundle "$work/rds-ca-bundle.pem" -dir "$work/$env" -out "$work/$env.rendered.yaml"
mv "$work/$env.rendered.yaml" "$rendered"

step "converging the platform (StorageClass, load balancer controller, External Secrets, Consul)"
kubectl apply -f "$rendered" -l mercato.dev/deploy-phase=platform
helm repo add eks https://aws.github.io/eks-charts --force-update >/dev/null
helm repo add external-secrets https://charts.external-secrets.io --force-update >/dev/null
helm repo add hashicorp https://helm.releases.hashicorp.com --force-update >/dev/null
helm upgrade --install aws-load-balancer-controller eks/aws-load-balancer-controller \
	--version "$lb_controller_chart" --namespace kube-system --wait --timeout 10m \
	--set clusterName="$cluster" --set region="$region" --set vpcId="$(cfg vpc_id)" \
	--set serviceAccount.name=aws-load-balancer-controller \
	--set "serviceAccount.annotations.eks\.amazonaws\.com/role-arn=$(cfg load_balancer_controller_role_arn)"
helm upgrade --install external-secrets external-secrets/external-secrets \
	--version "$external_secrets_chart" --namespace external-secrets --create-namespace --wait --timeout 10m \
	--set installCRDs=true --set serviceAccount.name=external-secrets \
	--set "serviceAccount.annotations.eks\.amazonaws\.com/role-arn=$(cfg external_secrets_role_arn)"
helm upgrade --install consul hashicorp/consul \
	--version "$consul_chart" --namespace consul --create-namespace --wait --timeout 15m \
	-f "$overlay/consul-values.yaml"

step "syncing the secrets from Secrets Manager"
kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
kubectl apply -f "$rendered" -l mercato.dev/deploy-phase=secrets
kubectl -n "$ns" wait --for=condition=Ready externalsecret --all --timeout=5m ||
	die "the ExternalSecrets did not sync (kubectl -n $ns describe externalsecret)"

step "making the roles and databases (job database-bootstrap)"
kubectl -n "$ns" delete job database-bootstrap --ignore-not-found --wait
kubectl apply -f "$rendered" -l mercato.dev/deploy-phase=bootstrap
if ! kubectl -n "$ns" wait --for=condition=complete job/database-bootstrap --timeout=10m; then
	kubectl -n "$ns" logs job/database-bootstrap --tail=50 >&2 || true
	die "the database bootstrap job did not complete"
fi

# From here on a failure rolls back.
declare -A before
for s in "${services[@]}"; do
	before[$s]=$(kubectl -n "$ns" get deployment "$s" -o jsonpath='{.metadata.annotations.deployment\.kubernetes\.io/revision}' 2>/dev/null || true)
done

rollback() {
	echo "aws-deploy: $1; rolling back" >&2
	local undone=()
	for s in "${services[@]}"; do
		local now
		now=$(kubectl -n "$ns" get deployment "$s" -o jsonpath='{.metadata.annotations.deployment\.kubernetes\.io/revision}' 2>/dev/null || true)
		if [[ -n ${before[$s]} && $now != "${before[$s]}" ]]; then
			kubectl -n "$ns" rollout undo "deployment/$s" --to-revision="${before[$s]}"
			undone+=("$s")
		fi
	done
	if ((${#undone[@]} == 0)); then
		echo "aws-deploy: no Deployment had a previous revision to return to (a first deploy)" >&2
		exit 1
	fi
	for s in "${undone[@]}"; do
		kubectl -n "$ns" rollout status "deployment/$s" --timeout=10m || echo "aws-deploy: $s did not come back" >&2
	done
	if smoke; then
		echo "aws-deploy: rolled back ${undone[*]}; the previous release answers again" >&2
	else
		echo "aws-deploy: rolled back ${undone[*]}, and the smoke check still fails" >&2
	fi
	exit 1
}

step "applying release $tag"
kubectl apply -f "$rendered" || rollback "kubectl apply failed"

step "waiting for every rollout"
for s in "${services[@]}"; do
	kubectl -n "$ns" rollout status "deployment/$s" --timeout=10m || rollback "deployment/$s did not roll out"
done

step "smoke check through the load balancer ($public_url)"
smoke || rollback "the smoke check failed"

kubectl -n "$ns" create configmap mercato-release --from-literal=tag="$tag" \
	--from-literal=commit="${GITHUB_SHA:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}" \
	--from-literal=deployed-at="$(date -u +%Y-%m-%dT%H:%M:%SZ)" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
if [[ -n ${GITHUB_OUTPUT:-} ]]; then
	echo "url=$public_url" >>"$GITHUB_OUTPUT"
fi
step "deployed $tag to $env"
