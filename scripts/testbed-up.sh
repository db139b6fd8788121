#!/usr/bin/env bash
# Starts four local clusters (management, worker, host, virtual) in the
# background and writes their kubeconfigs to .testbed/<name>.kubeconfig.
# Every vcluster release that appears in one of them runs for real (the
# launcher's --vcluster).
# Usage: scripts/testbed-up.sh <testbed bin dir> <launcher> [<vcluster binary>]
set -euo pipefail
bin=$1 launcher=$2 vcluster=${3:-off}
dir=${NAUTES_TESTBED_DIR:-$PWD/.testbed}
if [ -f "$dir/launcher.pid" ] && kill -0 "$(cat "$dir/launcher.pid")" 2>/dev/null; then
  echo "test bed already running (pid $(cat "$dir/launcher.pid")); kubeconfigs in $dir"
  exit 0
fi
mkdir -p "$dir"
unset HTTPS_PROXY HTTP_PROXY https_proxy http_proxy
nohup "$launcher" up --bin "$bin" --dir "$dir" --wait signal --vcluster "$vcluster" management worker host virtual \
  >"$dir/launcher.log" 2>&1 </dev/null &
for _ in $(seq 1 240); do
  if grep -q '^READY ' "$dir/launcher.log" 2>/dev/null; then
    echo "test bed ready: kubeconfigs in $dir:"
    ls "$dir"/*.kubeconfig | grep -v restricted | sed 's/^/  /'
    echo "stop it with: make testbed-down"
    exit 0
  fi
  if ! kill -0 $! 2>/dev/null; then
    echo "the test bed failed to start:" >&2
    cat "$dir/launcher.log" >&2
    exit 1
  fi
  sleep 0.25
done
echo "the test bed did not become ready in 60s; see $dir/launcher.log" >&2
exit 1
