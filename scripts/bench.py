#!/usr/bin/env python3
"""`make bench`: kubectl-nautes against what a user who knows the tools would
run, on a local test bed (real kube-apiservers with kwok). Method and latest
table: docs/benchmarks.md.

Every comparison runs both sides on the same cluster, alternating which goes
first, with the state reset between samples (each install is followed by its
own teardown), BENCH_SAMPLES times (default 5); the table gives the median and
the spread (min to max) of each side and the ratio of the medians. A missed
goal or a failed measurement is reported, never an error: the exit status is 0
unless the harness itself breaks. The test bed is always torn down.

Usage: scripts/bench.py <testbed bin dir> <launcher>
Env: NAUTES_BIN (default target/release/kubectl-nautes), BENCH_SAMPLES,
BENCH_OUT (also write the table there), BENCH_KEEP=1 (keep the work dir),
BENCH_ONLY (a comma list of demo,cm1000,cm5000,shape,api,version: only those).
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "5"))
TIMEOUT = 240  # seconds: bounds every wait of both sides
CONCURRENCY = 16  # the plugin's default --concurrency, and raw_apply's
PAYLOAD = "0123456789abcdef" * 4


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Harness(Exception):
    pass


class Failed(Exception):
    """A measurement that failed: reported in the table."""


def run(cmd, *, env=None, stdin=None, check=True, timeout=TIMEOUT + 60, cwd=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(
        [str(c) for c in cmd],
        env=e,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    if check and p.returncode != 0:
        first = next((l for l in p.stderr.splitlines() if l.lower().startswith("error")), None)
        first = first or (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
        raise Failed(f"{Path(str(cmd[0])).name}: {first[:160]}")
    return p


def timed(fn, *a, **k):
    t0 = time.perf_counter()
    out = fn(*a, **k)
    return time.perf_counter() - t0, out


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(xs, unit="s", digits=2):
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return f"{xs[0]:.{digits}f} {unit}"
    return f"{med(xs):.{digits}f} {unit} ({min(xs):.{digits}f} to {max(xs):.{digits}f})"


def ratio(a, b):
    if not a or not b or med(b) == 0:
        return None
    return med(a) / med(b)


class Bench:
    def __init__(self, bindir, launcher):
        self.bin = Path(bindir)
        self.launcher = Path(launcher)
        self.kubectl = self.bin / "kubectl"
        self.helm = self.bin / "helm"
        self.nautes_bin = Path(os.environ.get("NAUTES_BIN", ROOT / "target/release/kubectl-nautes"))
        self.work = Path(tempfile.mkdtemp(prefix="nautes-bench."))
        self.bed = self.work / "bed"
        self.launcher_proc = None
        self.M = {}  # name -> list of samples, or a "failed: ..." text
        self.notes = {}
        for k in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            os.environ.pop(k, None)
        os.environ["NO_COLOR"] = "1"
        os.environ["KUBECACHEDIR"] = str(self.work / "kube-cache")  # kubectl starts cold, like the plugin

    # ------------------------------------------------------------ plumbing

    def add(self, key, value):
        cur = self.M.setdefault(key, [])
        if isinstance(cur, list):
            cur.append(value)

    def fail(self, key, err):
        log(f"   {key}: {err}")
        self.M[key] = f"failed: {err}"

    def samples(self, key):
        v = self.M.get(key)
        return v if isinstance(v, list) else []

    def cell(self, key, unit="s", digits=2):
        v = self.M.get(key)
        if isinstance(v, str):
            return v.replace("|", "/")
        return fmt(v or [], unit, digits)

    def nautes(self, *args, charts=None, helm=None, env=None, wrap=(), check=True):
        e = {
            "KUBECONFIG": str(self.mgmt_kc),
            "NAUTES_HELM": str(helm or self.helm),
            "NAUTES_CHARTS_DIR": str(charts or ROOT / "tests/charts"),
        }
        e.update(env or {})
        return run([*wrap, self.nautes_bin, *args], env=e, check=check)

    def kc(self, kubeconfig, *args, check=True):
        return run([self.kubectl, "--kubeconfig", kubeconfig, *args], check=check)

    def start_bed(self):
        log("starting the test bed: bench-mgmt (management), bench-a (both sides, in turn)")
        self.launcher_out = open(self.work / "launcher.out", "w")
        self.launcher_err = open(self.work / "launcher.err", "w")
        self.launcher_proc = subprocess.Popen(
            [self.launcher, "up", "--bin", self.bin, "--dir", self.bed, "--wait", "signal",
             "--timeout", "4m", "bench-mgmt", "bench-a"],
            stdout=self.launcher_out, stderr=self.launcher_err, stdin=subprocess.DEVNULL,
        )
        for _ in range(1200):
            if "READY " in (self.work / "launcher.out").read_text():
                break
            if self.launcher_proc.poll() is not None:
                sys.stderr.write((self.work / "launcher.err").read_text()[-3000:])
                raise Harness("the test bed did not start")
            time.sleep(0.25)
        else:
            raise Harness("the test bed was not ready in 5 minutes")
        tb = json.loads((self.bed / "testbed.json").read_text())
        self.clusters = tb["clusters"]
        self.mgmt_kc = self.clusters["bench-mgmt"]["kubeconfig"]
        self.a_kc = self.clusters["bench-a"]["kubeconfig"]

    def stop_bed(self):
        if self.launcher_proc is None:
            return
        log("tearing the test bed down")
        subprocess.run([self.launcher, "down", "--dir", self.bed], capture_output=True)
        if self.launcher_proc.poll() is None:
            self.launcher_proc.terminate()
            try:
                self.launcher_proc.wait(30)
            except subprocess.TimeoutExpired:
                self.launcher_proc.kill()

    def spec(self, name, usage, path):
        c = self.clusters["bench-a"]
        path.write_text(json.dumps({
            "name": name, "api_server": c["server"], "cluster_kind": "kubernetes",
            "cluster_type": "physical", "usage": usage,
            "kubeconfig": Path(c["kubeconfig"]).read_text(),
        }))
        path.chmod(0o600)
        return path

    def build_tools(self):
        log("building the bench clients (benches/raw_apply.rs, benches/http_load.rs)")
        p = run(["cargo", "build", "--release", "--bench", "raw_apply", "--bench", "http_load",
                 "--message-format=json"], cwd=ROOT, check=False, timeout=3600)
        exes = {}
        for line in p.stdout.splitlines():
            try:
                m = json.loads(line)
            except ValueError:
                continue
            if m.get("reason") == "compiler-artifact" and m.get("executable"):
                exes[m["target"]["name"]] = m["executable"]
        if p.returncode != 0 or "raw_apply" not in exes or "http_load" not in exes:
            sys.stderr.write(p.stderr[-3000:])
            raise Harness("the bench clients did not build")
        self.raw_apply = exes["raw_apply"]
        self.http_load = exes["http_load"]

    # ------------------------------------------------------- the baseline

    def write_wrappers(self):
        capture = self.work / "helm-capture"
        capture.write_text(f"""#!/usr/bin/env bash
# records each helm template call's values (stdin) and arguments, then runs helm
dir=${{CAPTURE_DIR:?}}
cat >"$dir/$2.values.yaml"
printf '%s\\n' "$@" >"$dir/$2.args"
exec "{self.helm}" "$@" <"$dir/$2.values.yaml"
""")
        detached = self.work / "helm-detached"
        # Linux adds the peak RSS of every reaped descendant to its parent's
        # "Maximum resident set size": helm run in a process the plugin never
        # reaps keeps helm's memory out of the plugin's figure.
        detached.write_text(f"""#!/usr/bin/env bash
d=$(mktemp -d "{self.work}/helm-run.XXXXXX")
cat >"$d/in"
mkfifo "$d/done"
setsid -f bash -c '/usr/bin/time -f %M -o "$1/rss" "$2" "${{@:3}}" <"$1/in" >"$1/out" 2>"$1/err"; echo $? >"$1/done"' \\
  _ "$d" "{self.helm}" "$@" </dev/null >/dev/null 2>&1
read -r rc <"$d/done"
cat "$d/out"
grep -v '^Command exited with non-zero status' "$d/err" >&2
[ -n "${{HELM_RSS_DIR:-}}" ] && tail -n 1 "$d/rss" >"$HELM_RSS_DIR/$2.kb"
rm -rf "$d"
exit "$rc"
""")
        for f in (capture, detached):
            f.chmod(0o755)
        self.capture = capture
        self.detached = detached

    def prepare_baseline(self, spec, charts, d):
        """What a user would run instead, built from the same spec: for each
        chart of the plan, `helm template` with the very values the plugin
        gives helm (captured by helm-capture), the Namespaces, and the
        plugin's own small manifests (credential, vault-auth)."""
        d.mkdir(parents=True, exist_ok=True)
        (d / "values").mkdir(exist_ok=True)
        render = json.loads(run([self.nautes_bin, "render", "-f", spec, "--charts-dir", charts,
                                 "--helm", self.capture, "-o", "json"],
                                env={"CAPTURE_DIR": str(d / "values"), "KUBECONFIG": "/dev/null"}).stdout)
        plan = json.loads(run([self.nautes_bin, "render", "-f", spec, "--plan", "-o", "json"],
                              env={"KUBECONFIG": "/dev/null"}).stdout)
        items = render["items"]
        comps = [c for s in plan["stages"] for c in s["components"]]
        own = {c["name"] for c in comps}
        b = {"dir": d, "components": [], "objects": len(items)}
        for c in comps:
            args = (d / "values" / f"{c['release']}.args").read_text().splitlines()
            sets = []
            for prev, a in zip(args, args[1:]):
                if prev == "--set-string":
                    sets += ["--set-string", a]
            b["components"].append((c["release"], Path(charts) / c["chart"]["name"], c["namespace"], sets))
        strip = ("app.kubernetes.io/managed-by", "nautes.io/cluster", "nautes.io/component",
                 "applyset.kubernetes.io/part-of")
        extra = []
        for o in items:
            if o["kind"] == "Namespace":
                continue
            if o.get("metadata", {}).get("labels", {}).get("nautes.io/component", "") in own:
                continue
            o = json.loads(json.dumps(o))
            for k in strip:
                o["metadata"].get("labels", {}).pop(k, None)
            extra.append(o)
        namespaces = [o["metadata"]["name"] for o in items if o["kind"] == "Namespace"]
        (d / "namespaces.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in namespaces]}))
        (d / "extra.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": extra}))
        b["has_extra"] = bool(extra)
        b["namespaces"] = namespaces
        b["crds"] = [o["metadata"]["name"] for o in items if o["kind"] == "CustomResourceDefinition"]

        def ref(o):
            g = o["apiVersion"].split("/")[0] if "/" in o["apiVersion"] else ""
            return (o["kind"].lower() + ("." + g if g else "")) + "/" + o["metadata"]["name"]
        # cluster-scoped objects other than Namespaces and CRDs (the render
        # gives every namespaced object its namespace)
        b["cluster_scoped"] = [ref(o) for o in items if not o["metadata"].get("namespace")
                               and o["kind"] not in ("Namespace", "CustomResourceDefinition")]
        wl = {}
        for o in items:
            if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
                wl.setdefault(o["metadata"]["namespace"], []).append((o["kind"], o["metadata"]["name"]))
        b["workloads"] = wl
        return b

    def fair_install(self, b, kubeconfig):
        """Renders every chart in parallel, applies Namespaces and CRDs in one
        `kubectl apply --server-side`, waits for the CRDs to be Established
        (kubectl cannot map a custom resource before), applies everything else
        in one `kubectl apply --server-side`, then waits once per namespace,
        the namespaces' waits in parallel. Returns the CRD part's seconds."""
        d = b["dir"]
        procs = []
        for release, chart, ns, sets in b["components"]:
            out = open(d / f"rendered-{release}.yaml", "w")
            procs.append((out, subprocess.Popen(
                [self.helm, "template", release, chart, "--namespace", ns, "--include-crds",
                 "--skip-tests", "-f", d / "values" / f"{release}.values.yaml", *sets],
                stdout=out, stderr=subprocess.PIPE, text=True)))
        for out, p in procs:
            _, err = p.communicate(timeout=TIMEOUT)
            out.close()
            if p.returncode != 0:
                raise Failed(f"helm template: {err.strip()[-160:]}")
        # CRDs into a file of their own (as helm's crds/ directory keeps them)
        crds, rest = [], []
        for release, *_ in b["components"]:
            text = (d / f"rendered-{release}.yaml").read_text()
            for doc in re.split(r"(?m)^---\s*$", text):
                if not doc.strip() or not re.search(r"(?m)^kind:", doc):
                    continue
                (crds if re.search(r"(?m)^kind:\s*CustomResourceDefinition\s*$", doc) else rest).append(doc)
        (d / "crds.yaml").write_text("\n---\n".join(crds))
        (d / "objects.yaml").write_text("\n---\n".join(rest))
        t0 = time.perf_counter()
        first = ["-f", d / "namespaces.json"] + (["-f", d / "crds.yaml"] if crds else [])
        self.kc(kubeconfig, "apply", "--server-side", *first)
        if b["crds"]:
            self.kc(kubeconfig, "wait", "--for=condition=Established", f"--timeout={TIMEOUT}s",
                    *[f"customresourcedefinition/{n}" for n in b["crds"]])
        crd_secs = time.perf_counter() - t0
        files = ["-f", d / "objects.yaml"] + (["-f", d / "extra.json"] if b["has_extra"] else [])
        self.kc(kubeconfig, "apply", "--server-side", *files)
        waits = []
        for ns, wls in b["workloads"].items():
            kinds = {k for k, _ in wls}
            if "Deployment" in kinds:
                waits.append(["wait", "-n", ns, "--for=condition=Available", "deployment", "--all"])
            if "Job" in kinds:
                waits.append(["wait", "-n", ns, "--for=condition=Complete", "job", "--all"])
            for k, n in wls:
                if k in ("StatefulSet", "DaemonSet"):
                    waits.append(["rollout", "status", "-n", ns, f"{k.lower()}/{n}"])
        ps = [subprocess.Popen([self.kubectl, "--kubeconfig", kubeconfig, *w, f"--timeout={TIMEOUT}s"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for w in waits]
        for p in ps:
            _, err = p.communicate(timeout=TIMEOUT + 30)
            if p.returncode != 0:
                raise Failed(f"kubectl wait: {err.strip()[-160:]}")
        return crd_secs

    def fair_delete(self, b, kubeconfig):
        """`kubectl delete --wait=false` of everything applied, Namespaces and
        CRDs included, in one call; then one `kubectl wait --for=delete` of
        exactly what destroy waits for: every Namespace (so every namespaced
        object), every CRD (so their custom resources) and every other
        cluster-scoped object."""
        d = b["dir"]
        files = ["-f", d / "objects.yaml", "-f", d / "namespaces.json"]
        if (d / "crds.yaml").read_text().strip():
            files += ["-f", d / "crds.yaml"]
        if b["has_extra"]:
            files += ["-f", d / "extra.json"]
        self.kc(kubeconfig, "delete", "--ignore-not-found", "--wait=false", *files)
        refs = ([f"namespace/{n}" for n in b["namespaces"]]
                + [f"customresourcedefinition/{n}" for n in b["crds"]] + b["cluster_scoped"])
        self.kc(kubeconfig, "wait", "--for=delete", f"--timeout={TIMEOUT}s", *refs)

    # ---------------------------------------------------- progress parsing

    @staticmethod
    def events(text):
        out = []
        for line in text.splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if isinstance(e, dict) and "elapsed" in e:
                out.append(e)
        return out

    @staticmethod
    def apply_window(evs):
        """(seconds, objects) of the namespaced apply phase: from the event
        before the `apply host: namespaced objects: ...` summary to it."""
        for i, e in enumerate(evs):
            if e.get("step") == "apply host" and str(e.get("message", "")).startswith("namespaced objects:") and i > 0:
                n = sum(int(x) for x in re.findall(r"(\d+) (?:created|configured|unchanged)", e["message"]))
                return e["elapsed"] - evs[i - 1]["elapsed"], n
        return None

    @staticmethod
    def crd_window(evs):
        """Seconds of the CRD phase (apply, wait until Established, refresh
        discovery): between the two debug events the plugin emits with -v
        around it; None when there is none."""
        start = end = None
        for e in evs:
            m = str(e.get("message", ""))
            if m.endswith("CustomResourceDefinitions to apply"):
                start = e["elapsed"]
            elif "CustomResourceDefinitions Established" in m and start is not None:
                end = e["elapsed"]
        return None if start is None or end is None else end - start

    # --------------------------------------------------------- 1. demo worker

    def demo(self):
        log(f"1. register and destroy the demo physical worker vs the fair baseline, {SAMPLES} samples alternating")
        sp = self.spec("demo-worker", "worker", self.work / "demo.json")
        try:
            b = self.prepare_baseline(sp, ROOT / "tests/charts", self.work / "base-demo")
        except Failed as e:
            self.fail("reg_base", f"{e} (kubectl-nautes render, to prepare the baseline)")
            b = None
        self.notes["demo_objects"] = b["objects"] if b else "?"
        for i in range(SAMPLES):
            sides = ["nautes", "base"] if i % 2 == 0 else ["base", "nautes"]
            for side in sides:
                if side == "nautes":
                    self.plugin_cycle("demo-worker", sp, None, "reg_nautes", "del_nautes", i)
                elif b is not None:
                    self.base_cycle(b, "reg_base", "del_base", i)

    def plugin_cycle(self, name, spec, charts, reg_key, del_key, i, noop_key=None, wrap=(), helm=None, env=None,
                     verbose=False):
        log(f"   sample {i + 1}: kubectl-nautes register + destroy {name}")
        try:
            secs, p = timed(self.nautes, "register", "-f", spec, "-o", "json", "--progress", "json",
                            "--timeout", f"{TIMEOUT}s", *(["-v"] if verbose else []), charts=charts, wrap=wrap,
                            helm=helm, env=env)
            self.add(reg_key, secs)
            evs = self.events(p.stderr)
            if i == 0:
                (self.work / f"{reg_key}.progress").write_text(p.stderr)
            if name == "demo-worker" and i == 0:
                self.record = run([self.kubectl, "--kubeconfig", self.mgmt_kc, "get", "configmap", "-n", "nautes",
                                   f"cluster-{name}", "-o", "json"]).stdout
            out = (reg_key, evs)
            if noop_key:
                secs, q = timed(self.nautes, "register", "-f", spec, "-o", "json", "--progress", "none",
                                charts=charts)
                self.add(noop_key, secs)
                if i == 0:
                    # once more, untimed, for the profile (-v: one event per object)
                    r = self.nautes("register", "-f", spec, "-o", "json", "--progress", "json", "-v",
                                    charts=charts)
                    (self.work / f"{noop_key}.progress").write_text(r.stderr)
                self.notes[noop_key] = json.loads(q.stdout).get("changes")
        except Failed as e:
            self.fail(reg_key, str(e))
            out = None
        try:
            secs, p = timed(self.nautes, "destroy", name, "--progress", "json", "--timeout", f"{TIMEOUT}s",
                            "-v", charts=charts)
            self.add(del_key, secs)
            if i == 0:
                (self.work / f"{del_key}.progress").write_text(p.stderr)
        except Failed as e:
            self.fail(del_key, str(e))
            self.nautes("destroy", name, "--force", "--progress", "none", check=False)
        return out

    def base_cycle(self, b, reg_key, del_key, i, crd_key=None):
        log(f"   sample {i + 1}: baseline install + delete")
        try:
            secs, crd = timed(self.fair_install, b, self.a_kc)
            self.add(reg_key, secs)
            if crd_key:
                self.add(crd_key, crd)
        except Failed as e:
            self.fail(reg_key, str(e))
        try:
            secs, _ = timed(self.fair_delete, b, self.a_kc)
            self.add(del_key, secs)
        except Failed as e:
            self.fail(del_key, str(e))

    # ------------------------------------------------- 2. apply throughput

    def bench_charts(self, name, template):
        d = self.work / f"charts-{name}"
        d.mkdir()
        for c in (ROOT / "tests/charts").iterdir():
            if c.is_dir() and c.name != "traefik":
                (d / c.name).symlink_to(c)
        shutil.copytree(ROOT / "tests/charts/traefik", d / "traefik")
        (d / "traefik/templates/zz-bench.yaml").write_text(template)
        return d

    @staticmethod
    def cm_template(n):
        return f"""{{{{- range $i := until {n} }}}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: bench-cm-{{{{ $i }}}}
  namespace: {{{{ $.Release.Namespace }}}}
  labels: {{app.kubernetes.io/part-of: nautes-bench, nautes.io/bench-kind: cm}}
data:
  index: "{{{{ $i }}}}"
  payload: "{PAYLOAD}"
{{{{- end }}}}
"""

    def throughput(self, n):
        key = f"cm{n}"
        log(f"2. apply throughput, {n} ConfigMaps vs raw_apply (concurrency {CONCURRENCY}), {SAMPLES} samples alternating")
        charts = self.bench_charts(key, self.cm_template(n))
        sp = self.spec("bench-host", "host", self.work / "host.json")
        rss_dir = self.work / f"helm-rss-{key}"
        rss_dir.mkdir()
        for i in range(SAMPLES):
            for side in (["nautes", "raw"] if i % 2 == 0 else ["raw", "nautes"]):
                if side == "raw":
                    self.raw_cycle(key, n, i)
                    continue
                wrap, helm, env = (), None, None
                if n >= 5000:
                    tfile = self.work / f"time-{key}-{i}.txt"
                    wrap = ("/usr/bin/time", "-v", "-o", tfile)
                    helm, env = self.detached, {"HELM_RSS_DIR": str(rss_dir)}
                out = self.plugin_cycle("bench-host", sp, charts, f"{key}_wall", f"{key}_destroy", i,
                                        noop_key=f"noop{n}" if n == 1000 else None, wrap=wrap, helm=helm, env=env)
                if out:
                    w = self.apply_window(out[1])
                    if w and w[0] > 0:
                        self.add(f"{key}_rate", w[1] / w[0])
                        self.notes[f"{key}_napply"] = w[1]
                    if wrap:
                        m = re.search(r"Maximum resident set size \(kbytes\): *(\d+)", tfile.read_text())
                        if m:
                            self.add("rss", int(m.group(1)) / 1024)
        kbs = [int(f.read_text().strip() or 0) for f in rss_dir.glob("*.kb")]
        if kbs:
            self.notes["helm_rss"] = max(kbs) / 1024

    def raw_cycle(self, key, n, i):
        ns = f"raw-{key}"
        log(f"   sample {i + 1}: raw_apply {n} ConfigMaps")
        try:
            p = run([self.raw_apply, self.a_kc, n, "cm", ns])
            secs = float(re.search(r"seconds=([0-9.]+)", p.stdout).group(1))
            self.add(f"{key}_raw", n / secs)
        except (Failed, AttributeError) as e:
            self.fail(f"{key}_raw", str(e))
        # reset: the namespace and its objects gone before the next sample
        self.kc(self.a_kc, "delete", "namespace", ns, "--ignore-not-found", f"--timeout={TIMEOUT}s", check=False)

    # ---------------------------------------- 3. the real component set's shape

    @staticmethod
    def shape_template(crds=62, others=119):
        """62 CRDs (each with a schema of some size, as the upstream charts'
        are) and 119 other objects in the proportions of the upstream physical
        worker: ServiceAccounts, ConfigMaps, Secrets, Services, RBAC, a few
        Deployments."""
        t = []
        for i in range(crds):
            props = "\n".join(
                f"""                    field{j}:
                      type: string
                      description: "generated field {j} of kind {i}" """ for j in range(12))
            t.append(f"""---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: shapes{i}.bench.nautes.io
spec:
  group: bench.nautes.io
  scope: Namespaced
  names: {{plural: shapes{i}, singular: shape{i}, kind: Shape{i}, listKind: Shape{i}List}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                items:
                  type: object
                  properties:
{props}
""")
        kinds = ["sa", "cm", "secret", "svc", "role", "rb", "crole", "crb", "deploy"]
        for i in range(others):
            k = kinds[i % len(kinds)]
            meta = f"""metadata:
  name: shape-{k}-{i}
  labels: {{app.kubernetes.io/part-of: nautes-bench}}"""
            nsmeta = meta + "\n  namespace: {{ $.Release.Namespace }}"
            if k == "sa":
                t.append(f"---\napiVersion: v1\nkind: ServiceAccount\n{nsmeta}\n")
            elif k == "cm":
                t.append(f"---\napiVersion: v1\nkind: ConfigMap\n{nsmeta}\ndata: {{payload: \"{PAYLOAD}\"}}\n")
            elif k == "secret":
                t.append(f"---\napiVersion: v1\nkind: Secret\n{nsmeta}\nstringData: {{payload: \"{PAYLOAD}\"}}\n")
            elif k == "svc":
                t.append(f"---\napiVersion: v1\nkind: Service\n{nsmeta}\nspec:\n  selector: {{app: shape-{i}}}\n"
                         "  ports: [{name: http, port: 80, protocol: TCP}]\n")
            elif k == "role":
                t.append(f"---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n{nsmeta}\n"
                         "rules: [{apiGroups: [\"\"], resources: [configmaps], verbs: [get]}]\n")
            elif k == "rb":
                t.append(f"---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n{nsmeta}\n"
                         f"roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: shape-role-{i - 1}}}\n"
                         "subjects: [{kind: ServiceAccount, name: default, namespace: \"{{ $.Release.Namespace }}\"}]\n")
            elif k == "crole":
                t.append(f"---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n{meta}\n"
                         "rules: [{apiGroups: [bench.nautes.io], resources: [\"*\"], verbs: [get, list, watch]}]\n")
            elif k == "crb":
                t.append(f"---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n{meta}\n"
                         f"roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: shape-crole-{i - 1}}}\n"
                         "subjects: [{kind: ServiceAccount, name: default, namespace: \"{{ $.Release.Namespace }}\"}]\n")
            else:
                t.append(f"---\napiVersion: apps/v1\nkind: Deployment\n{nsmeta}\nspec:\n  replicas: 1\n"
                         f"  selector: {{matchLabels: {{app: shape-{i}}}}}\n  template:\n"
                         f"    metadata: {{labels: {{app: shape-{i}}}}}\n"
                         "    spec: {containers: [{name: main, image: registry.example/shape:1}]}\n")
        return "".join(t)

    def shape(self):
        log(f"3. the real component set's shape (62 CRDs + 119 objects) vs the fair baseline, {SAMPLES} samples alternating")
        charts = self.bench_charts("shape", self.shape_template())
        sp = self.spec("bench-host", "host", self.work / "shape.json")
        try:
            b = self.prepare_baseline(sp, charts, self.work / "base-shape")
            self.notes["shape_objects"] = b["objects"]
            self.notes["shape_crds"] = len(b["crds"])
        except Failed as e:
            self.fail("shape_base", str(e))
            return
        for i in range(SAMPLES):
            for side in (["nautes", "base"] if i % 2 == 0 else ["base", "nautes"]):
                if side == "base":
                    self.base_cycle(b, "shape_base", "shape_del_base", i, crd_key="shape_crd_base")
                    continue
                out = self.plugin_cycle("bench-host", sp, charts, "shape_nautes", "shape_del_nautes", i, verbose=True)
                if out:
                    c = self.crd_window(out[1])
                    if c is not None:
                        self.add("shape_crd_nautes", c)

    # -------------------------------------------------------- 4. the API

    def api(self):
        log("4. the API: GET of the list with 1,000 registered clusters, a rejected POST")
        if not getattr(self, "record", None):
            self.fail("api_list", "no record of the demo worker to copy")
            return
        rec = self.record
        obj = json.loads(rec)
        for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
            obj["metadata"].pop(k, None)
        text = json.dumps(obj)
        items = [json.loads(text.replace("demo-worker", f"bench-{i:04d}")) for i in range(1000)]
        f = self.work / "records.json"
        f.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        self.kc(self.mgmt_kc, "apply", "--server-side", "--field-manager=kubectl-nautes", "-f", f)
        # a client with the RBAC the API asks for
        k = ("--kubeconfig", self.mgmt_kc)
        run([self.kubectl, *k, "create", "serviceaccount", "bench-client", "-n", "nautes"], check=False)
        # (a Role of a resource no API serves: `kubectl create role` would
        # refuse it, so it is applied as an object)
        rbac = self.work / "bench-client-rbac.json"
        rbac.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "bench-client", "namespace": "nautes"},
             "rules": [{"apiGroups": ["nautes.io"], "resources": ["clusters"],
                        "verbs": ["get", "list", "create", "update", "delete"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "bench-client", "namespace": "nautes"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "bench-client"},
             "subjects": [{"kind": "ServiceAccount", "name": "bench-client", "namespace": "nautes"}]}]}))
        self.kc(self.mgmt_kc, "apply", "--server-side", "-f", rbac)
        token = run([self.kubectl, *k, "create", "token", "bench-client", "-n", "nautes"]).stdout.strip()
        tf = self.work / "token"
        tf.write_text(token)
        tf.chmod(0o600)
        port = 18000 + os.getpid() % 1000
        srv_log = open(self.work / "serve.log", "w")
        srv = subprocess.Popen([self.nautes_bin, "serve", "--listen", f"127.0.0.1:{port}", "--insecure-plain-http"],
                               env={**os.environ, "KUBECONFIG": str(self.mgmt_kc), "NAUTES_HELM": str(self.helm)},
                               stdout=srv_log, stderr=srv_log)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                p = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/readyz"], check=False)
                if p.stdout == "200":
                    break
                time.sleep(0.1)
            else:
                raise Failed("serve did not become ready")
            n = len(json.loads(run(["curl", "-s", "-H", f"Authorization: Bearer {token}",
                                    f"{base}/api/v1/clusters"]).stdout).get("items", []))
            self.notes["api_items"] = n
            run([self.http_load, f"{base}/api/v1/clusters", tf, 50, 2])  # warm up
            for i in range(SAMPLES):
                r = json.loads(run([self.http_load, f"{base}/api/v1/clusters", tf, 200, 4]).stdout)
                self.add("api_list_p50", r["p50_ms"])
                self.add("api_list_p99", r["p99_ms"])
                self.add("api_list_rps", r["requests_per_second"])
                self.notes["api_list_codes"] = r["codes"]
            body = self.work / "bad.json"
            body.write_text(json.dumps({"api_server": "https://127.0.0.1:6443", "cluster_kind": "kubernetes",
                                        "cluster_type": "physical", "usage": "worker", "no_such_key": 1}))
            for i in range(SAMPLES):
                r = json.loads(run([self.http_load, f"{base}/api/v1/clusters/bench-rejected", tf, 200, 4,
                                    "POST", body]).stdout)
                self.add("api_post_p99", r["p99_ms"])
                self.notes["api_post_codes"] = r["codes"]
        except Failed as e:
            self.fail("api_list_p50", str(e))
        finally:
            srv.terminate()
            srv.wait(30)

    # ------------------------------------------------------ 5. start-up

    def version(self):
        """Measured before the test bed starts: its idle kube-apiservers and
        etcds keep 2 cores busy enough to add scheduling delay to a 3 ms
        process. /bin/true, spawned the same way, gives the cost of the spawn."""
        log("5. version: median wall time of 20 runs (before the test bed starts)")
        for key, cmd in (("version", [self.nautes_bin, "version"]), ("spawn", ["/bin/true"])):
            ts = []
            for _ in range(20):
                t0 = time.perf_counter()
                subprocess.run(cmd, capture_output=True)
                ts.append((time.perf_counter() - t0) * 1000)
            self.M[key] = [statistics.median(ts)]

    # ------------------------------------------------------------ report

    def report(self):
        L = []
        ver = run([self.nautes_bin, "version"], check=False).stdout.strip().replace("kubectl-nautes ", "")
        kv = run([self.kubectl, "version", "--client"], check=False).stdout.splitlines()[:1]
        hv = run([self.helm, "version", "--short"], check=False).stdout.strip()
        L.append("### kubectl-nautes benchmarks\n")
        L.append(f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}, {os.cpu_count()} cores, load average "
                 f"{self.load_start} at start and {self.load_end} at the end; {SAMPLES} samples per side, "
                 "alternating, median (min to max);")
        L.append(f"kubectl-nautes {ver}; {kv[0] if kv else ''}; helm {hv}.\n")
        L.append("| # | measurement | kubectl-nautes | baseline | ratio of medians |")
        L.append("|---|---|---|---|---|")

        def row(num, what, a, b, r=None):
            rr = ratio(self.samples(a), self.samples(b)) if b else None
            L.append(f"| {num} | {what} | {self.cell(a)} | {self.cell(b) if b else '-'} | "
                     f"{f'{rr:.2f}' if rr is not None else (r or '-')} |")
        row(1, f"register the demo physical worker ({self.notes.get('demo_objects', '?')} objects) vs helm template "
               "in parallel + 2 kubectl apply --server-side + kubectl wait per namespace", "reg_nautes", "reg_base")
        row(1, "destroy the demo worker vs kubectl delete --wait=false + kubectl wait --for=delete of every namespace, "
               "CRD and cluster-scoped object", "del_nautes", "del_base")
        for n in (1000, 5000):
            k = f"cm{n}"
            L.append(f"| 2 | apply throughput, {n:,} ConfigMaps: the plugin's namespaced apply phase "
                     f"({self.notes.get(k + '_napply', '?')} objects) vs raw_apply, both {CONCURRENCY} in flight | "
                     f"{self.cell(k + '_rate', 'obj/s', 0)} | {self.cell(k + '_raw', 'obj/s', 0)} | "
                     f"{self.ratio_txt(k + '_rate', k + '_raw')} |")
            row(2, f"whole register, host + {n:,} ConfigMaps, wall (information)", f"{k}_wall", None)
            row(2, f"destroy, host + {n:,} ConfigMaps (information)", f"{k}_destroy", None)
        row(2, f"register again, nothing changed, host + 1,000 ConfigMaps ({self.notes.get('noop1000', '?')})",
            "noop1000", None)
        L.append(f"| 2 | peak RSS of kubectl-nautes, register host + 5,000 ConfigMaps (helm, a separate process: "
                 f"{self.notes.get('helm_rss', 0):.1f} MiB) | {self.cell('rss', 'MiB', 1)} | - | - |")
        row(3, f"register, the real component set's shape: host + {self.notes.get('shape_crds', '?')} CRDs, "
               f"{self.notes.get('shape_objects', '?')} objects in all", "shape_nautes", "shape_base")
        row(3, "of which CRDs applied and Established (plugin: its CRD phase; baseline: kubectl apply of Namespaces "
               "and CRDs + kubectl wait --for=condition=Established)", "shape_crd_nautes", "shape_crd_base")
        row(3, "destroy, the same", "shape_del_nautes", "shape_del_base")
        L.append(f"| 4 | API: GET /api/v1/clusters with {self.notes.get('api_items', '?')} clusters, 4 connections, "
                 f"200 requests per sample ({self.notes.get('api_list_codes', '?')}): p50 / p99 / requests per second | "
                 f"{self.cell('api_list_p50', 'ms', 1)} / {self.cell('api_list_p99', 'ms', 1)} / "
                 f"{self.cell('api_list_rps', 'req/s', 0)} | - | - |")
        L.append(f"| 4 | API: a rejected POST (unknown key, 400 after authentication; {self.notes.get('api_post_codes', '?')}): "
                 f"p99 | {self.cell('api_post_p99', 'ms', 1)} | - | - |")
        L.append(f"| 5 | `version`, median of 20 runs, before the test bed starts, vs /bin/true spawned the same way "
                 f"| {self.cell('version', 'ms', 1)} | {self.cell('spawn', 'ms', 1)} | - |")
        L.append("")

        def target(name, value, op, goal, unit=""):
            ok = value is not None and {"<=": value <= goal, ">=": value >= goal, "<": value < goal}[op]
            v = "n/a" if value is None else f"{value:.2f}{unit}"
            L.append(f"target {name}: {v} (goal {op} {goal}{unit}) {'met' if ok else 'missed'}")
        target("register-vs-fair-baseline", ratio(self.samples("reg_nautes"), self.samples("reg_base")), "<=", 0.5)
        target("apply-throughput-1000", ratio(self.samples("cm1000_rate"), self.samples("cm1000_raw")), ">=", 0.9)
        target("apply-throughput-5000", ratio(self.samples("cm5000_rate"), self.samples("cm5000_raw")), ">=", 0.9)
        target("destroy-vs-fair-baseline", ratio(self.samples("del_nautes"), self.samples("del_base")), "<=", 1.2)
        target("noop-register-1000", med(self.samples("noop1000")), "<", 1, " s")
        rss = self.samples("rss")
        target("peak-rss-5000", max(rss) if rss else None, "<", 48, " MiB")
        target("version-median", med(self.samples("version")), "<", 10, " ms")
        return "\n".join(L) + "\n"

    def ratio_txt(self, a, b):
        r = ratio(self.samples(a), self.samples(b))
        return f"{r:.2f}" if r is not None else "-"

    def main(self):
        for tool in ("/usr/bin/time", "setsid", "mkfifo", "curl"):
            if not shutil.which(tool):
                raise Harness(f"{tool} is required")
        if not os.access(self.nautes_bin, os.X_OK):
            raise Harness(f"{self.nautes_bin} is missing: run `cargo build --release` (make bench does)")
        self.build_tools()
        self.write_wrappers()
        only = [x for x in os.environ.get("BENCH_ONLY", "").split(",") if x]
        if not only or "version" in only:
            self.version()
        self.start_bed()
        self.load_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        steps = [("demo", self.demo), ("cm1000", lambda: self.throughput(1000)),
                 ("cm5000", lambda: self.throughput(5000)), ("shape", self.shape), ("api", self.api)]
        for name, step in steps:
            if only and name not in only:
                continue
            try:
                step()
            except (Failed, subprocess.TimeoutExpired) as e:
                log(f"   a measurement failed: {e}")
        self.load_end = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        rep = self.report()
        print(rep)
        (self.work / "report.md").write_text(rep)
        if os.environ.get("BENCH_OUT"):
            Path(os.environ["BENCH_OUT"]).write_text(rep)


def main():
    if len(sys.argv) != 3:
        print("usage: scripts/bench.py <testbed bin dir> <launcher>", file=sys.stderr)
        return 2
    b = Bench(sys.argv[1], sys.argv[2])
    try:
        b.main()
        return 0
    except Harness as e:
        log(f"harness failure: {e}")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        b.stop_bed()
        if os.environ.get("BENCH_KEEP") == "1":
            log(f"kept {b.work}")
        else:
            shutil.rmtree(b.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
