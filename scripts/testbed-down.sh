#!/usr/bin/env bash
# Stops the test bed started by testbed-up.sh and removes its files.
set -euo pipefail
launcher=$1
dir=${NAUTES_TESTBED_DIR:-$PWD/.testbed}
if [ ! -f "$dir/launcher.pid" ]; then
  echo "no test bed is running in $dir"
  rm -rf "$dir"
  exit 0
fi
"$launcher" down --dir "$dir"
rm -rf "$dir"
echo "test bed stopped"
