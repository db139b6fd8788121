#!/usr/bin/env bash
# Builds the test bed's binaries from Go modules into a cache outside the
# repository, keyed by the versions below and this module's go.sum. Returns at
# once when the cache already holds them. Prints the bin directory on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.8
HELM_VERSION=v4.3.1
KWOK_VERSION=v0.8.0
KREW_VERSION=v0.4.3

key=$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-12)
cache=${NAUTES_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-nautes/testbed}
bin="$cache/k8s-$K8S_VERSION-helm-$HELM_VERSION-kwok-$KWOK_VERSION-$key/bin"
tools=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl helm kwok kubectl-krew validate-krew-manifest)

complete=1
for t in "${tools[@]}"; do [ -x "$bin/$t" ] || complete=0; done
if [ "$complete" = 1 ]; then echo "$bin"; exit 0; fi

mkdir -p "$bin"
log() { printf '[testbed] %s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
start=$(date +%s)
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
kv="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
kv="$kv -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

cd "$here"
for t in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd; do
  [ -x "$bin/$t" ] && continue
  log "building $t"
  go build -trimpath -ldflags "-s -w $kv" -o "$bin/$t.tmp" "./cmd/$t"
  mv "$bin/$t.tmp" "$bin/$t"
done

gobin() { # name package version ldflags
  [ -x "$bin/$1" ] && return 0
  log "building $1 ($2@$3)"
  local tmp; tmp=$(mktemp -d)
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w $4" "$2@$3"
  mv "$tmp/$(basename "$2")" "$bin/$1"
  rm -rf "$tmp"
}
gobin helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION" "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
gobin kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
gobin kubectl-krew sigs.k8s.io/krew/cmd/krew "$KREW_VERSION" "-X sigs.k8s.io/krew/internal/version.gitTag=$KREW_VERSION"
gobin validate-krew-manifest sigs.k8s.io/krew/cmd/validate-krew-manifest "$KREW_VERSION" ""

log "done in $(( $(date +%s) - start ))s"
echo "$bin"
