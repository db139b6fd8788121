#!/usr/bin/env bash
# `make bench`: kubectl-nautes against the usual tools, on a local test bed
# (real kube-apiservers with kwok). Every figure comes from this one run; the
# result is a markdown table on stdout, with one `target ...: met|missed` line
# per goal. A missed goal, or a measurement that failed, is reported, never an
# error: the exit status is 0 unless the harness itself breaks (the test bed
# does not start, the raw client does not build, a tool is missing).
# The test bed is always torn down. Method: docs/benchmarks.md.
#
# Usage: scripts/bench.sh <testbed bin dir> <launcher>
# Env: NAUTES_BIN (default target/release/kubectl-nautes), BENCH_OUT (also
# write the table to this file), BENCH_KEEP=1 (keep the work directory).
set -uo pipefail
bin=${1:?usage: scripts/bench.sh <testbed bin dir> <launcher>}
launcher=${2:?usage: scripts/bench.sh <testbed bin dir> <launcher>}
root=$(cd "$(dirname "$0")/.." && pwd)
nautes_bin=${NAUTES_BIN:-$root/target/release/kubectl-nautes}
kubectl="$bin/kubectl"
helm="$bin/helm"
unset HTTPS_PROXY HTTP_PROXY https_proxy http_proxy
export NO_COLOR=1

# sizes of the generated sets (section 2); 1000 is also the no-op re-register
SIZES=(100 1000 5000)
MIXED=1000
CONCURRENCY=16 # the plugin's default --concurrency, and raw_apply's
TIMEOUT=180    # seconds: bounds every wait of both sides

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
  log "harness failure: $*"
  exit 1
}

for tool in jq awk setsid mkfifo /usr/bin/time timeout; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
[ -x "$nautes_bin" ] || die "$nautes_bin is missing: run \`cargo build --release\` (make bench does)"
[ -x "$kubectl" ] && [ -x "$helm" ] || die "$bin has no kubectl or helm: run \`make testbed\`"
[ -x "$launcher" ] || die "launcher $launcher is missing: run \`make testbed\`"

work=$(mktemp -d /tmp/nautes-bench.XXXXXX)
bed="$work/bed"
launcher_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$launcher_pid" ]; then
    log "tearing the test bed down"
    "$launcher" down --dir "$bed" >/dev/null 2>&1 || true
    if kill -0 "$launcher_pid" 2>/dev/null; then
      kill -TERM "$launcher_pid" 2>/dev/null || true
      wait "$launcher_pid" 2>/dev/null || true
    fi
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    log "kept $work"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export KUBECACHEDIR="$work/kube-cache" # kubectl starts cold, like the plugin
mkdir -p "$work/kube-cache"

# ---------------------------------------------------------------- helpers

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", ($1) }"; }
# a number, or n/a
num() { [[ ${1:-} =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
ratio() { if num "$1" && num "$2" && [ "$(calc "$2 > 0" 0)" = 1 ]; then calc "$1 / $2"; else echo n/a; fi; }
secs() { if num "$1"; then echo "$(calc "$1") s"; else echo "$1"; fi; }

declare -A M # measurements: name -> value, or a "failed (...)" text

# kubectl-nautes with the management cluster and the charts of the moment
charts="$root/tests/charts"
nautes() {
  env KUBECONFIG="$mgmt_kc" NAUTES_HELM="$helm" NAUTES_CHARTS_DIR="$charts" \
    timeout $((TIMEOUT + 60)) "$nautes_bin" "$@"
}
kc() { timeout $((TIMEOUT + 60)) "$kubectl" "$@"; }

# the reason a command failed, from its stderr file
why() { # file
  local l
  l=$(grep -m 1 -i '^error' "$1" 2>/dev/null)
  [ -n "$l" ] || l=$(grep -v '^{' "$1" 2>/dev/null | grep -v '^ *$' | tail -n 1)
  echo "failed: $(echo "$l" | tr '|' '/' | cut -c1-140)"
}

# times a command; sets $took (seconds) and returns its status
took=""
timed() {
  local t0 rc
  t0=$(now)
  "$@"
  rc=$?
  took=$(since "$t0")
  return "$rc"
}

# a physical cluster spec (JSON) for a test-bed cluster
spec() { # name usage cluster file
  jq -n --arg name "$1" --arg usage "$2" \
    --arg server "$(jq -r ".clusters[\"$3\"].server" "$bed/testbed.json")" \
    --rawfile kc "$(jq -r ".clusters[\"$3\"].kubeconfig" "$bed/testbed.json")" \
    '{name: $name, api_server: $server, cluster_kind: "kubernetes",
      cluster_type: "physical", usage: $usage, kubeconfig: $kc}' >"$4"
}

# helm wrappers given to kubectl-nautes as NAUTES_HELM
cat >"$work/helm-capture" <<EOF
#!/usr/bin/env bash
# records each helm template call's values (stdin) and arguments, then runs helm
dir=\${CAPTURE_DIR:?}
cat >"\$dir/\$2.values.yaml"
printf '%s\n' "\$@" >"\$dir/\$2.args"
exec "$helm" "\$@" <"\$dir/\$2.values.yaml"
EOF
cat >"$work/helm-detached" <<EOF
#!/usr/bin/env bash
# Runs helm in a process this wrapper never waits for: Linux adds the peak
# RSS of every reaped descendant to its parent's "Maximum resident set size",
# so helm run the usual way would be counted as kubectl-nautes' memory.
# helm's own peak is written to \$HELM_RSS_DIR/<release>.kb.
d=\$(mktemp -d "$work/helm-run.XXXXXX")
cat >"\$d/in"
mkfifo "\$d/done"
setsid -f bash -c '/usr/bin/time -f %M -o "\$1/rss" "\$2" "\${@:3}" <"\$1/in" >"\$1/out" 2>"\$1/err"; echo \$? >"\$1/done"' \
  _ "\$d" "$helm" "\$@" </dev/null >/dev/null 2>&1
read -r rc <"\$d/done"
cat "\$d/out"
grep -v '^Command exited with non-zero status' "\$d/err" >&2
[ -n "\${HELM_RSS_DIR:-}" ] && tail -n 1 "\$d/rss" >"\$HELM_RSS_DIR/\$2.kb"
rm -rf "\$d"
exit "\$rc"
EOF
chmod +x "$work/helm-capture" "$work/helm-detached"

# What a user would run instead of kubectl-nautes, built from the same spec:
# for each chart of the plan, `helm template` with the very values file the
# plugin gives helm (captured by helm-capture), plus the plugin's own small
# manifests (credential, vault-auth) as YAML files. Fills DIR with:
# namespaces, components (release chart namespace, plan order),
# values/<release>.values.yaml, extra.json, workloads (kind namespace name).
prepare_baseline() { # spec charts dir
  local sp=$1 ch=$2 d=$3
  mkdir -p "$d/values"
  CAPTURE_DIR="$d/values" env KUBECONFIG=/dev/null "$nautes_bin" render -f "$sp" \
    --charts-dir "$ch" --helm "$work/helm-capture" -o json >"$d/render.json" || return 1
  "$nautes_bin" render -f "$sp" --plan -o json >"$d/plan.json" || return 1
  jq -r '.items[] | select(.kind == "Namespace") | .metadata.name' "$d/render.json" >"$d/namespaces"
  jq -r --arg ch "$ch" '.stages[].components[] | "\(.release) \($ch)/\(.chart.name) \(.namespace)"' \
    "$d/plan.json" >"$d/components"
  # the plugin's own manifests, without the plugin's labels
  local own
  own=$(jq -c '[.stages[].components[].name]' "$d/plan.json")
  jq --argjson own "$own" '{apiVersion: "v1", kind: "List", items: [.items[]
      | select(.kind != "Namespace")
      | select((.metadata.labels["nautes.io/component"] // "") as $c | $own | index($c) | not)
      | del(.metadata.labels["app.kubernetes.io/managed-by", "nautes.io/cluster", "nautes.io/component", "applyset.kubernetes.io/part-of"])]}' \
    "$d/render.json" >"$d/extra.json"
  jq -r '.items[] | select(.kind == "CustomResourceDefinition") | .metadata.name' "$d/render.json" >"$d/crds"
  jq -r '.items[] | select(.kind | IN("Deployment", "StatefulSet", "DaemonSet", "Job"))
      | "\(.kind) \(.metadata.namespace) \(.metadata.name)"' "$d/render.json" >"$d/workloads"
}

# helm template of one component with its captured values (and any
# --set-string the plugin passed), as the user would type it
helm_template() { # dir release chart namespace
  local d=$1 release=$2 chart=$3 ns=$4 extra=() prev=""
  while IFS= read -r a; do
    [ "$prev" = --set-string ] && extra+=(--set-string "$a")
    prev=$a
  done <"$d/values/$release.args"
  "$helm" template "$release" "$chart" --namespace "$ns" --include-crds --skip-tests \
    -f "$d/values/$release.values.yaml" "${extra[@]}"
}

# kubectl apply --server-side, retried as a user would when a custom
# resource comes before its CRD is served
apply_retry() { # kubeconfig file
  local i
  for i in 1 2 3; do
    kc --kubeconfig "$1" apply --server-side -f "$2" >/dev/null && return 0
    sleep 1
  done
  return 1
}

# the baseline install: namespaces, each chart in plan order, the plugin's
# own manifests, then kubectl wait for the same workloads
baseline_install() { # dir kubeconfig wait(yes|no)
  local d=$1 k=$2 ns release chart kind name
  while read -r ns; do
    kc --kubeconfig "$k" create namespace "$ns" >/dev/null || return 1
  done <"$d/namespaces"
  while read -r release chart ns; do
    helm_template "$d" "$release" "$chart" "$ns" >"$d/rendered-$release.yaml" || return 1
    apply_retry "$k" "$d/rendered-$release.yaml" || return 1
  done <"$d/components"
  if [ "$(jq '.items | length' "$d/extra.json")" -gt 0 ]; then
    apply_retry "$k" "$d/extra.json" || return 1
  fi
  [ "$3" = yes ] || return 0
  while read -r kind ns name; do
    case $kind in
      Deployment) kc --kubeconfig "$k" wait -n "$ns" --for=condition=Available --timeout=${TIMEOUT}s "deployment/$name" >/dev/null ;;
      Job) kc --kubeconfig "$k" wait -n "$ns" --for=condition=Complete --timeout=${TIMEOUT}s "job/$name" >/dev/null ;;
      StatefulSet | DaemonSet) kc --kubeconfig "$k" rollout status -n "$ns" --timeout=${TIMEOUT}s "${kind,,}/$name" >/dev/null ;;
    esac || return 1
  done <"$d/workloads"
}

# kubectl delete -f of what baseline_install applied and of the namespaces,
# then kubectl wait until the namespaces (so everything in them) and the CRDs
# (so their custom resources) are gone, as destroy waits. kubectl delete's
# own default --wait is not used: it waits for one object after the other
# under kubectl's client-side rate limit, minutes for 1,000 objects.
baseline_delete() { # dir kubeconfig
  local d=$1 k=$2 args=() f ns=() crds=()
  for f in "$d"/rendered-*.yaml; do args+=(-f "$f"); done
  [ "$(jq '.items | length' "$d/extra.json")" -gt 0 ] && args+=(-f "$d/extra.json")
  kc --kubeconfig "$k" delete --ignore-not-found --wait=false "${args[@]}" >/dev/null || return 1
  mapfile -t ns <"$d/namespaces"
  mapfile -t crds <"$d/crds"
  kc --kubeconfig "$k" delete namespace --ignore-not-found --wait=false "${ns[@]}" >/dev/null || return 1
  kc --kubeconfig "$k" wait --for=delete --timeout=${TIMEOUT}s "${ns[@]/#/namespace/}" \
    ${crds[@]+"${crds[@]/#/customresourcedefinition/}"} >/dev/null
}

# the generated objects, added to a copy of the traefik test chart (the
# chart of the smallest plan, a host's); raw_apply sends the same objects
write_bench_template() { # set count
  local t="$work/charts/traefik/templates/zz-bench.yaml"
  if [ "$1" = cmlist ]; then
    # the same ConfigMaps, 1,000 per kind: List document
    cat >"$t" <<EOF
{{- range \$b := until $((($2 + 999) / 1000)) }}
---
apiVersion: v1
kind: List
items:
{{- range \$j := until 1000 }}
{{- \$i := add (mul \$b 1000) \$j }}
{{- if lt \$i $2 }}
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: bench-cm-{{ \$i }}
    namespace: {{ \$.Release.Namespace }}
    labels: {app.kubernetes.io/part-of: nautes-bench, nautes.io/bench-kind: cm}
  data:
    index: "{{ \$i }}"
    payload: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
{{- end }}
{{- end }}
{{- end }}
EOF
  elif [ "$1" = cm ]; then
    cat >"$t" <<EOF
{{- range \$i := until $2 }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: bench-cm-{{ \$i }}
  namespace: {{ \$.Release.Namespace }}
  labels: {app.kubernetes.io/part-of: nautes-bench, nautes.io/bench-kind: cm}
data:
  index: "{{ \$i }}"
  payload: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
{{- end }}
EOF
  else
    cat >"$t" <<EOF
{{- range \$i := until $2 }}
{{- \$k := mod \$i 6 }}
---
{{- if eq \$k 0 }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: bench-cm-{{ \$i }}
  namespace: {{ \$.Release.Namespace }}
  labels: {app.kubernetes.io/part-of: nautes-bench, nautes.io/bench-kind: cm}
data:
  index: "{{ \$i }}"
  payload: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
{{- else if eq \$k 1 }}
apiVersion: v1
kind: Secret
metadata:
  name: bench-secret-{{ \$i }}
  namespace: {{ \$.Release.Namespace }}
  labels: {app.kubernetes.io/part-of: nautes-bench, nautes.io/bench-kind: secret}
type: Opaque
stringData:
  index: "{{ \$i }}"
  payload: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
{{- else if eq \$k 2 }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: bench-sa-{{ \$i }}
  namespace: {{ \$.Release.Namespace }}
  labels: {app.kubernetes.io/part-of: nautes-bench, nautes.io/bench-kind: sa}
{{- else if eq \$k 3 }}
apiVersion: v1
kind: Service
metadata:
  name: bench-svc-{{ \$i }}
  namespace: {{ \$.Release.Namespace }}
  labels: {app.kubernetes.io/part-of: nautes-bench, nautes.io/bench-kind: svc}
spec:
  clusterIP: None
  ports: [{name: http, port: 80, protocol: TCP}]
{{- else if eq \$k 4 }}
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: bench-role-{{ \$i }}
  namespace: {{ \$.Release.Namespace }}
  labels: {app.kubernetes.io/part-of: nautes-bench, nautes.io/bench-kind: role}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list]}]
{{- else }}
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: bench-rb-{{ \$i }}
  namespace: {{ \$.Release.Namespace }}
  labels: {app.kubernetes.io/part-of: nautes-bench, nautes.io/bench-kind: rb}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: bench-role-{{ sub \$i 1 }}}
subjects: [{kind: ServiceAccount, name: default, namespace: {{ \$.Release.Namespace }}}]
{{- end }}
{{- end }}
EOF
  fi
}

# from a --progress json log: seconds and object count of the namespaced
# apply phase. Current format: a summary "apply host: namespaced objects: N
# created, ..." when the phase ends, the previous event (the summary of the
# phase before) marking its start. Older format: "apply host: N namespaced
# objects" when it starts, the next other step when it ends.
apply_window() { # log -> "seconds count" or nothing
  jq -Rrn '[inputs | fromjson? | select(type == "object")] as $e
    | ($e | to_entries) as $x
    | ([$x[] | select(.value.step == "apply host" and (.value.message | startswith("namespaced objects:")))][0]) as $new
    | ([$x[] | select(.value.step == "apply host" and (.value.message | test("^[0-9]+ namespaced objects$")))][0]) as $old
    | if $new != null and $new.key > 0 then
        "\($new.value.elapsed - $e[$new.key - 1].elapsed) \([$new.value.message | scan("[0-9]+") | tonumber] | add)"
      elif $old != null then
        ([$e[($old.key + 1):][] | select(.step != "apply host")][0]) as $fin
        | if $fin == null then empty else
            "\($fin.elapsed - $old.value.elapsed) \($old.value.message | split(" ")[0])" end
      else empty end' "$1"
}
# when a destroy's components were gone, and its credential namespace
destroy_steps() { # log
  jq -Rrn '[inputs | fromjson? | select(type == "object" and .step == "destroy")] as $e
    | ([$e[] | select(.message | test("objects deleted"))][0].elapsed) as $a
    | ([$e[] | select(.message | test("credential removed"))][0].elapsed) as $b
    | if $a == null then empty else
        "components gone at \($a * 10 | round / 10) s" + (if $b == null then "" else
          ", credential namespace gone at \($b * 10 | round / 10) s" end) end' "$1"
}

# seconds from a step's first event to another's first event
span() { # log from-step from-level to-step to-level
  jq -Rrn --arg fs "$2" --arg fl "$3" --arg ts "$4" --arg tl "$5" '[inputs | fromjson? | select(type == "object")] as $e
    | ([$e[] | select(.step == $fs and .level == $fl)][0]) as $a
    | ([$e[] | select(.step == $ts and .level == $tl)][0]) as $b
    | if $a == null or $b == null then empty else "\($b.elapsed - $a.elapsed)" end' "$1"
}

# ------------------------------------------------------------- the raw client

log "building the raw server-side apply client (benches/raw_apply.rs)"
raw_apply=$(cd "$root" && cargo build --release --bench raw_apply --message-format=json 2>"$work/cargo.err" |
  jq -r 'select(.reason == "compiler-artifact" and .target.name == "raw_apply") | .executable // empty' | tail -n 1)
[ -n "$raw_apply" ] && [ -x "$raw_apply" ] || {
  cat "$work/cargo.err" >&2
  die "benches/raw_apply.rs did not build"
}

# --------------------------------------------------------------- test bed

log "starting the test bed: bench-mgmt, bench-a (kubectl-nautes), bench-b (baseline)"
"$launcher" up --bin "$bin" --dir "$bed" --wait signal --timeout 4m bench-mgmt bench-a bench-b \
  >"$work/launcher.out" 2>"$work/launcher.err" </dev/null &
launcher_pid=$!
for _ in $(seq 1 1200); do
  grep -q '^READY ' "$work/launcher.out" 2>/dev/null && break
  kill -0 "$launcher_pid" 2>/dev/null || {
    tail -n 40 "$work/launcher.err" >&2
    die "the test bed did not start"
  }
  sleep 0.25
done
grep -q '^READY ' "$work/launcher.out" || die "the test bed was not ready in 5 minutes"
mgmt_kc=$(jq -r '.clusters["bench-mgmt"].kubeconfig' "$bed/testbed.json")
a_kc=$(jq -r '.clusters["bench-a"].kubeconfig' "$bed/testbed.json")
b_kc=$(jq -r '.clusters["bench-b"].kubeconfig' "$bed/testbed.json")
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------- 1. register a demo worker vs the baseline

log "1. register the demo physical worker (tests/charts) vs helm template | kubectl apply --server-side + kubectl wait"
spec demo-worker worker bench-a "$work/demo-a.json"
# the same spec on the baseline's cluster: same name, so the same values
spec demo-worker worker bench-b "$work/demo-b.json"
base_ok=yes
prepare_baseline "$work/demo-b.json" "$root/tests/charts" "$work/base-demo" 2>"$work/base-demo-prep.err" || base_ok=no
demo_objects=$(jq '.items | length' "$work/base-demo/render.json" 2>/dev/null || echo "?")

if timed nautes register -f "$work/demo-a.json" -o json --progress none >"$work/reg-demo.json" 2>"$work/reg-demo.err"; then
  M[reg_nautes]=$took
  M[reg_created]=$(jq '.changes.created' "$work/reg-demo.json")
else
  M[reg_nautes]="$(why "$work/reg-demo.err")"
fi
if [ "$base_ok" = no ]; then
  M[reg_base]="$(why "$work/base-demo-prep.err") (kubectl-nautes render, to prepare the baseline)"
elif timed baseline_install "$work/base-demo" "$b_kc" yes 2>"$work/base-demo.err"; then
  M[reg_base]=$took
else
  M[reg_base]="$(why "$work/base-demo.err")"
fi

# ---------------------------------- 4a. destroy the demo worker vs kubectl delete

log "4. destroy the demo worker vs kubectl delete -f (+ wait for the namespaces)"
if timed nautes destroy demo-worker --progress json >/dev/null 2>"$work/destroy-demo.err"; then
  M[del_demo_nautes]=$took
  M[del_demo_steps]=$(destroy_steps "$work/destroy-demo.err")
else
  M[del_demo_nautes]="$(why "$work/destroy-demo.err")"
  nautes destroy demo-worker --force --progress none >/dev/null 2>&1
fi
if [ "$base_ok" = no ]; then
  M[del_demo_base]=n/a
elif timed baseline_delete "$work/base-demo" "$b_kc" 2>"$work/base-demo-del.err"; then
  M[del_demo_base]=$took
else
  M[del_demo_base]="$(why "$work/base-demo-del.err")"
fi

# --------------------------------------------------- 2, 3, 4b, 5: generated sets

mkdir -p "$work/charts"
for c in "$root"/tests/charts/*/; do
  n=$(basename "$c")
  [ "$n" = traefik ] || ln -s "$c" "$work/charts/$n"
done
cp -r "$root/tests/charts/traefik" "$work/charts/traefik"
charts="$work/charts"
spec bench-host host bench-a "$work/host.json"

# raw_apply of the same objects into the plugin's cluster (so that only the
# client differs), each run in a namespace of its own; the floor is the mean
# of a run just before and one just after the plugin's register
raw_run() { # key set count run
  local out="$work/raw-$1-$4"
  log "   raw_apply: $3 $2 objects (run $4)"
  if "$raw_apply" "$a_kc" "$3" "$2" "raw-$1-$4" >"$out.out" 2>"$out.err"; then
    M[${1}_raw$4]=$(sed -n 's/.*objects_per_second=\([0-9.]*\).*/\1/p' "$out.out")
    M[${1}_rawsec$4]=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' "$out.out")
  else
    M[${1}_raw$4]="$(why "$out.err")"
  fi
  if num "${M[${1}_rawsec1]:-}" && num "${M[${1}_rawsec2]:-}"; then
    M[${1}_rawsec]=$(calc "(${M[${1}_rawsec1]} + ${M[${1}_rawsec2]}) / 2" 3)
  elif num "${M[${1}_rawsec1]:-}"; then
    M[${1}_rawsec]=${M[${1}_rawsec1]}
  elif num "${M[${1}_rawsec2]:-}"; then
    M[${1}_rawsec]=${M[${1}_rawsec2]}
  fi
  if num "${M[${1}_rawsec]:-}"; then
    M[${1}_raw]=$(ratio "$3" "${M[${1}_rawsec]}")
  else
    M[${1}_raw]=${M[${1}_raw$4]}
  fi
}

# one register of the host spec with SET x COUNT generated objects; fills
# M[<key>_wall] M[<key>_apply] M[<key>_napply] M[<key>_render]
register_set() { # key set count [wrapper...]
  local key=$1 set=$2 n=$3
  shift 3
  write_bench_template "$set" "$n"
  # the raw client just before and just after the plugin, so that a change
  # of the machine's load during the register does not favour either side
  [ -n "${M[${key}_raw1]:-}" ] || raw_run "$key" "${set%list}" "$n" 1
  log "   kubectl-nautes register: host + $n $set objects"
  if timed "$@" register -f "$work/host.json" -o json --progress json --timeout ${TIMEOUT}s \
    >"$work/reg-$key.json" 2>"$work/reg-$key.log"; then
    M[${key}_wall]=$took
    local w
    w=$(apply_window "$work/reg-$key.log")
    M[${key}_apply]=${w% *}
    M[${key}_napply]=${w#* }
    M[${key}_render]=$(span "$work/reg-$key.log" "install host" info "render host" done)
    M[${key}_wait]=$(span "$work/reg-$key.log" "wait host" info "wait host" done)
    M[${key}_rate]=$(ratio "${M[${key}_napply]}" "${M[${key}_apply]}")
  else
    M[${key}_wall]="$(why "$work/reg-$key.log")"
  fi
  # not after a refused attempt that is about to be run again
  if num "${M[${key}_wall]}" || ! grep -q 'budget breached' "$work/reg-$key.log"; then
    raw_run "$key" "${set%list}" "$n" 2
  fi
}
destroy_host() { # key
  if timed nautes destroy bench-host --progress json --timeout ${TIMEOUT}s >/dev/null 2>"$work/destroy-$1.err"; then
    M[${1}_destroy]=$took
    M[${1}_destroy_steps]=$(destroy_steps "$work/destroy-$1.err")
  else
    M[${1}_destroy]="$(why "$work/destroy-$1.err")"
    nautes destroy bench-host --force --progress none >/dev/null 2>&1
  fi
}

log "2. apply throughput: generated objects vs raw_apply (concurrency $CONCURRENCY)"
for n in "${SIZES[@]}"; do
  key=cm$n
  if [ "$n" = 5000 ]; then
    # 5. peak RSS of kubectl-nautes alone (helm detached, see helm-detached)
    mkdir -p "$work/helm-rss"
    rss_cmd=(env HELM_RSS_DIR="$work/helm-rss" /usr/bin/time -v -o "$work/time-$key.txt"
      env KUBECONFIG="$mgmt_kc" NAUTES_HELM="$work/helm-detached" NAUTES_CHARTS_DIR="$charts"
      timeout $((TIMEOUT + 60)) "$nautes_bin")
    register_set "$key" cm "$n" "${rss_cmd[@]}"
    if ! num "${M[${key}_wall]}" && grep -q 'budget breached' "$work/reg-$key.log"; then
      # the plugin's YAML parser refuses a chart output of more than 1,024
      # documents: measure the same objects as kind: List documents instead
      M[${key}_docs]=${M[${key}_wall]}
      nautes destroy bench-host --force --progress none >/dev/null 2>&1
      log "   $n documents refused by kubectl-nautes; again with the objects in kind: List documents"
      M[${key}_lists]=$(((n + 999) / 1000))
      register_set "$key" cmlist "$n" "${rss_cmd[@]}"
    fi
    kb=$(sed -n 's/.*Maximum resident set size (kbytes): *\([0-9]*\).*/\1/p' "$work/time-$key.txt")
    if num "$kb" && num "${M[${key}_wall]}"; then M[rss]=$(calc "$kb / 1024" 1); else M[rss]="failed"; fi
    M[helm_rss]=$(cat "$work"/helm-rss/*.kb 2>/dev/null | sort -n | tail -n 1)
  else
    register_set "$key" cm "$n" nautes
  fi
  if [ "$n" = 1000 ]; then
    log "3. register again, nothing changed, $n objects"
    if timed nautes register -f "$work/host.json" -o json --progress json >"$work/noop.json" 2>"$work/noop.err"; then
      M[noop]=$took
      w=$(apply_window "$work/noop.err")
      M[noop_apply]=${w% *}
      M[noop_changes]=$(jq -r '.changes | "\(.created) created, \(.configured) configured, \(.unchanged) unchanged"' "$work/noop.json")
    else
      M[noop]="$(why "$work/noop.err")"
    fi
    log "4. destroy vs kubectl delete -f, host + $n ConfigMaps"
    destroy_host "$key"
    # the baseline holds the same objects, applied with kubectl (timed for information)
    if prepare_baseline "$work/host.json" "$charts" "$work/base-$key" 2>"$work/base-$key.err" &&
      timed baseline_install "$work/base-$key" "$b_kc" no 2>>"$work/base-$key.err"; then
      M[${key}_kubectl_apply]=$took
      M[${key}_kubectl_n]=$(jq '.items | length' "$work/base-$key/render.json")
      if timed baseline_delete "$work/base-$key" "$b_kc" 2>>"$work/base-$key.err"; then
        M[${key}_kubectl_delete]=$took
      else
        M[${key}_kubectl_delete]="$(why "$work/base-$key.err")"
      fi
    else
      M[${key}_kubectl_apply]="$(why "$work/base-$key.err")"
      M[${key}_kubectl_delete]="n/a"
    fi
  else
    destroy_host "$key"
  fi
  if [ "$n" = "${SIZES[0]}" ]; then
    key=mixed$MIXED
    register_set "$key" mixed "$MIXED" nautes
    destroy_host "$key"
  fi
done

# ---------------------------------------------------- 5. version, median of 20

log "5. version: median wall time of 20 runs"
vt=()
for _ in $(seq 1 20); do
  t0=$(now)
  "$nautes_bin" version >/dev/null 2>&1
  vt+=("$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", (b - a) * 1000 }')")
done
M[version]=$(printf '%s\n' "${vt[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "%.1f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# -------------------------------------------------------------------- report

rate() { if num "$1"; then printf '%.0f obj/s' "$1"; else echo "${1:-n/a}"; fi; }
per_obj_ms() { if num "$1" && num "$2"; then calc "$1 * 1000 / $2" 2; else echo n/a; fi; }
verdict() { # measured op goal -> met|missed
  if num "$1" && [ "$(calc "$1 $2 $3" 0)" = 1 ]; then echo met; else echo missed; fi
}

set_name() {
  case $1 in
    mixed*) echo "$MIXED mixed objects (6 kinds)" ;;
    *) printf "%'d ConfigMaps" "${1#cm}" ;;
  esac
}

report() {
  local r
  echo "## kubectl-nautes benchmarks"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $load_start at start and $load_end at the end;"
  echo "kubectl-nautes $("$nautes_bin" version 2>/dev/null | sed 's/^kubectl-nautes //'); $("$kubectl" version --client 2>/dev/null | head -n 1); helm $("$helm" version --short 2>/dev/null)."
  echo
  echo "| # | measurement | kubectl-nautes | baseline | ratio nautes/baseline |"
  echo "|---|---|---|---|---|"
  echo "| 1 | register the demo physical worker ($demo_objects objects; ${M[reg_created]:-?} created), wall | $(secs "${M[reg_nautes]:-n/a}") | $(secs "${M[reg_base]:-n/a}") helm template + kubectl apply --server-side + kubectl wait | $(ratio "${M[reg_nautes]:-n/a}" "${M[reg_base]:-n/a}") |"
  if [ -n "${M[cm5000_docs]:-}" ]; then
    echo "| 2 | register host + 5000 ConfigMaps, one YAML document each (the rows below with 5000 use ${M[cm5000_lists]} kind: List documents instead) | ${M[cm5000_docs]} | - | - |"
  fi
  for key in cm100 cm1000 cm5000 mixed$MIXED; do
    echo "| 2 | apply throughput, $(set_name "$key"): apply phase (${M[${key}_napply]:-?} objects in $(secs "${M[${key}_apply]:-n/a}")) vs raw_apply (mean of a run before, ${M[${key}_raw1]:-?} obj/s, and one after, ${M[${key}_raw2]:-?} obj/s) | $(rate "${M[${key}_rate]:-}") | $(rate "${M[${key}_raw]:-}") | $(ratio "${M[${key}_rate]:-}" "${M[${key}_raw]:-}") |"
  done
  for key in cm100 cm1000 cm5000 mixed$MIXED; do
    echo "| 2 | whole register, host + $(set_name "$key"), wall (of which render $(secs "${M[${key}_render]:-n/a}"), wait $(secs "${M[${key}_wait]:-n/a}")) | $(secs "${M[${key}_wall]:-n/a}") | - | - |"
  done
  local p100 p1000 p5000 r100 r5000
  p100=$(per_obj_ms "${M[cm100_apply]:-}" "${M[cm100_napply]:-}")
  p1000=$(per_obj_ms "${M[cm1000_apply]:-}" "${M[cm1000_napply]:-}")
  p5000=$(per_obj_ms "${M[cm5000_apply]:-}" "${M[cm5000_napply]:-}")
  r100=$(per_obj_ms "${M[cm100_rawsec]:-}" 100)
  r5000=$(per_obj_ms "${M[cm5000_rawsec]:-}" 5000)
  echo "| 2 | time per object in the apply phase at 100 / 1,000 / 5,000 (ms) | $p100 / $p1000 / $p5000 | raw_apply $r100 / $(per_obj_ms "${M[cm1000_rawsec]:-}" 1000) / $r5000 | 5,000 vs 100: $(ratio "$p5000" "$p100") |"
  echo "| 3 | register again, nothing changed, host + 1,000 ConfigMaps (${M[noop_changes]:-?}; of which $(secs "${M[noop_apply]:-n/a}") re-applying the namespaced objects) | $(secs "${M[noop]:-n/a}") | - | - |"
  echo "| 4 | destroy the demo worker vs kubectl delete -f + namespaces gone (destroy: ${M[del_demo_steps]:-?}) | $(secs "${M[del_demo_nautes]:-n/a}") | $(secs "${M[del_demo_base]:-n/a}") | $(ratio "${M[del_demo_nautes]:-n/a}" "${M[del_demo_base]:-n/a}") |"
  echo "| 4 | destroy host + 1,000 ConfigMaps vs kubectl delete -f + namespaces gone (destroy: ${M[cm1000_destroy_steps]:-?}) | $(secs "${M[cm1000_destroy]:-n/a}") | $(secs "${M[cm1000_kubectl_delete]:-n/a}") | $(ratio "${M[cm1000_destroy]:-}" "${M[cm1000_kubectl_delete]:-}") |"
  echo "| 4 | destroy host + 100 / mixed $MIXED / 5,000 ConfigMaps (information) | $(secs "${M[cm100_destroy]:-n/a}") / $(secs "${M[mixed${MIXED}_destroy]:-n/a}") / $(secs "${M[cm5000_destroy]:-n/a}") | - | - |"
  echo "| - | for information: kubectl apply --server-side of the same host + 1,000 ConfigMaps (${M[cm1000_kubectl_n]:-?} objects, no wait) | - | $(secs "${M[cm1000_kubectl_apply]:-n/a}") | - |"
  echo "| 5 | peak RSS of kubectl-nautes, register host + 5,000 ConfigMaps (helm, a separate process: ${M[helm_rss]:+$(calc "${M[helm_rss]:-n/a} / 1024" 1) MiB}) | ${M[rss]:-n/a} MiB | - | - |"
  echo "| 5 | \`version\`, median of 20 runs | ${M[version]:-n/a} ms | - | - |"
  echo
  r=$(ratio "${M[reg_nautes]:-n/a}" "${M[reg_base]:-n/a}")
  echo "target register-vs-baseline: $r (goal <= 0.5) $(verdict "$r" '<=' 0.5)"
  local worst="" k t
  for k in cm1000 cm5000 mixed$MIXED; do
    t=$(ratio "${M[${k}_rate]:-}" "${M[${k}_raw]:-}")
    if ! num "$t"; then worst=n/a; break; fi
    if [ -z "$worst" ] || [ "$(calc "$t < $worst" 0)" = 1 ]; then worst=$t; fi
  done
  echo "target apply-throughput (lowest ratio of 1,000 / 5,000 / mixed): $worst (goal >= 0.8) $(verdict "$worst" '>=' 0.8)"
  t=$(ratio "$p5000" "$p100")
  echo "target linear-growth (time per object, 5,000 vs 100): $t (goal <= 1.5) $(verdict "$t" '<=' 1.5)"
  echo "target noop-register-1000: $(secs "${M[noop]:-n/a}") (goal < 2 s) $(verdict "${M[noop]:-n/a}" '<' 2)"
  echo "target peak-rss-5000: ${M[rss]:-n/a} MiB (goal < 64 MiB) $(verdict "${M[rss]:-n/a}" '<' 64)"
  echo "target version-median: ${M[version]:-n/a} ms (goal < 10 ms) $(verdict "${M[version]:-n/a}" '<' 10)"
}

report >"$work/report.md"
cat "$work/report.md"
[ -n "${BENCH_OUT:-}" ] && cp "$work/report.md" "$BENCH_OUT"
exit 0
