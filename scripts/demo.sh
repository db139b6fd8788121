#!/usr/bin/env bash
# `make demo`: starts a local test bed (a management cluster and a worker
# cluster, real kube-apiservers with kwok nodes), registers the demo physical
# worker with the project's demo charts, shows list and status, destroys it,
# and tears everything down. Usage: scripts/demo.sh <testbed bin dir> <launcher>
set -euo pipefail
bin=$1 launcher=$2
root=$(cd "$(dirname "$0")/.." && pwd)
nautes="$root/target/release/kubectl-nautes"
work=$(mktemp -d /tmp/nautes-demo.XXXXXX)
unset HTTPS_PROXY HTTP_PROXY https_proxy http_proxy

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
  step "tearing the test bed down"
  "$launcher" down --dir "$work/bed" >/dev/null 2>&1 || true
  rm -rf "$work"
  echo "done: nothing is left running"
}
trap cleanup EXIT

step "starting a local test bed: management and worker clusters"
"$launcher" up --bin "$bin" --dir "$work/bed" --wait signal management worker >"$work/launcher.log" 2>&1 </dev/null &
for _ in $(seq 1 240); do
  grep -q '^READY ' "$work/launcher.log" 2>/dev/null && break
  kill -0 $! 2>/dev/null || { cat "$work/launcher.log" >&2; exit 1; }
  sleep 0.25
done
grep -q '^READY ' "$work/launcher.log" || { echo "test bed not ready" >&2; exit 1; }
server=$(grep -o '"server": *"[^"]*"' "$work/bed/testbed.json" | sed -n 2p | sed 's/.*"\(https[^"]*\)"/\1/')
grep -q '"worker"' "$work/bed/testbed.json"
worker_server=$(KUBECONFIG="$work/bed/worker.kubeconfig" "$bin/kubectl" config view --minify -o jsonpath='{.clusters[0].cluster.server}')
echo "management: $(KUBECONFIG="$work/bed/management.kubeconfig" "$bin/kubectl" config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
echo "worker:     $worker_server"
: "$server"

# kubectl and helm from the test bed; the plugin is found by kubectl as kubectl-nautes on PATH
mkdir -p "$work/path"
ln -s "$bin/kubectl" "$work/path/kubectl"
ln -s "$bin/helm" "$work/path/helm"
ln -s "$nautes" "$work/path/kubectl-nautes"
export PATH="$work/path:$PATH"
export KUBECONFIG="$work/bed/management.kubeconfig"
export NAUTES_CHARTS_DIR="$root/tests/charts"

step "the demo spec: examples/cluster-physical-worker.yaml, pointed at the local worker"
{
  sed -n '/^kubeconfig:/q;p' "$root/examples/cluster-physical-worker.yaml" \
    | sed "s#^api_server:.*#api_server: $worker_server#"
  echo "kubeconfig: |"
  sed 's/^/  /' "$work/bed/worker.kubeconfig"
} >"$work/cluster.yaml"
sed '/^kubeconfig:/,$d' "$work/cluster.yaml" | grep -v '^ *#' | grep -v '^$' | sed 's/^/    /'
echo "    kubeconfig: |   (the worker's admin kubeconfig)"
run kubectl nautes validate -f "$work/cluster.yaml"

step "register: validate, preflight, render, apply in phases, wait, register"
run kubectl nautes register -f "$work/cluster.yaml" --progress plain

step "register again: converges, nothing changes"
run kubectl nautes register -f "$work/cluster.yaml" --progress none

step "list and status"
run kubectl nautes list
run kubectl nautes status cluster-physical-demo

step "what the management cluster now holds"
run kubectl get secret -n argocd -l argocd.argoproj.io/secret-type=cluster -L cluster.nautes.io/usage
run kubectl get configmap -n nautes -l app.kubernetes.io/managed-by=kubectl-nautes

step "destroy: the reverse, then nothing is left"
run kubectl nautes destroy cluster-physical-demo --progress plain
run kubectl nautes list
echo "objects labelled nautes.io/cluster=cluster-physical-demo in the worker:"
KUBECONFIG="$work/bed/worker.kubeconfig" kubectl get all,ns,crd,clusterrole,clusterrolebinding -A -l nautes.io/cluster=cluster-physical-demo 2>&1 | sed 's/^/    /'
