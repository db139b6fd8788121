#!/usr/bin/env bash
# Builds the vcluster syncer (`vcluster start`, the binary the chart's Pod
# runs) from Go modules, plus vcluster-config (this module's helper that gives
# a chart config the upstream chart's defaults), into a cache outside the
# repository keyed by the version and this module's go.mod and go.sum. Returns
# at once when the cache already holds them. Prints the path of the vcluster
# binary on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

VCLUSTER_VERSION=v0.36.1

grep -Eq "github.com/loft-sh/vcluster $VCLUSTER_VERSION( |\$)" "$here/go.mod" \
  || { echo "testbed/vcluster/go.mod does not require github.com/loft-sh/vcluster $VCLUSTER_VERSION" >&2; exit 1; }
key=$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" "$here"/cmd/vcluster-config/*.go | sha256sum | cut -c1-12)
cache=${NAUTES_VCLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-nautes/vcluster}
out="$cache/$VCLUSTER_VERSION-$key"
if [ -x "$out/vcluster" ] && [ -x "$out/vcluster-config" ]; then echo "$out/vcluster"; exit 0; fi

mkdir -p "$out"
log() { printf '[vcluster] %s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
start=$(date +%s)
# The loft-sh modules vcluster requires are not all in the checksum database;
# go.sum of this module pins them.
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GONOSUMDB='github.com/loft-sh/*'
cd "$here"
if [ ! -x "$out/vcluster" ]; then
  log "building vcluster $VCLUSTER_VERSION (about 20 min cold on 2 cores)"
  go build -trimpath -ldflags "-s -w" -o "$out/vcluster.tmp" github.com/loft-sh/vcluster/cmd/vcluster
  mv "$out/vcluster.tmp" "$out/vcluster"
fi
log "building vcluster-config"
go build -trimpath -ldflags "-s -w" -o "$out/vcluster-config.tmp" ./cmd/vcluster-config
mv "$out/vcluster-config.tmp" "$out/vcluster-config"
log "done in $(( $(date +%s) - start ))s"
echo "$out/vcluster"
