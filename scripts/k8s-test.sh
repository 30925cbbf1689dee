#!/usr/bin/env bash
# make k8s-test: proves deploy/k8s runs the platform on a real Kubernetes.
# Builds the pinned Kubernetes, etcd and CoreDNS into bin/k8s once
# (scripts/build-k8s.sh), starts a Docker engine when none answers (and
# stops the one it started), makes the stand-ins for images no registry
# serves and the six images tagged "local", writes the local overlay's
# secrets (scripts/k8s-secrets.sh); then e2e/k8s's test starts a
# single-node cluster on this machine (e2e/k8s/cluster), imports the images,
# applies deploy/k8s/overlays/local, checks out through the gateway's
# NodePort, deletes a pod of every backend under a stream of reads, dry-runs
# overlays/aws on the API server, tears the cluster down and checks the
# host is as it was. Needs root (the kubelet, containerd, iptables).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

start=$SECONDS
if [[ $(id -u) -ne 0 ]]; then
	echo "k8s-test: needs root: the cluster's kubelet, containerd and kube-proxy change mounts, cgroups and iptables (all restored at the end)" >&2
	exit 1
fi

scripts/build-k8s.sh
trap 'scripts/docker-engine.sh stop' EXIT
scripts/docker-engine.sh start
scripts/compose.sh tools
scripts/build-jaeger.sh
scripts/build-victorialogs.sh
scripts/build-vlagent.sh
scripts/docker-standins.sh
VERSION=local scripts/build-images.sh
scripts/k8s-secrets.sh
# The node's containerd keeps a copy of every image: a run short of disk
# fails in the import, whose error says what was left.
echo "==> disk: $(df -h --output=avail . | tail -1 | tr -d ' ') free where the cluster keeps its images (.local/k8s)"
echo "==> go test -tags k8s ./e2e/k8s/ (cluster up, import images, apply -k overlays/local, checkout, delete a pod of each backend under reads, aws dry run, teardown)"
${GO:-go} test -tags k8s -count=1 -timeout 30m -v -run TestKubernetesPlatform ./e2e/k8s/
echo "==> k8s-test passed in $((SECONDS - start))s"
