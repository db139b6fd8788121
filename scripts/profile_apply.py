#!/usr/bin/env python3
"""Where the client time of a large apply goes: CPU seconds (user + system,
from /usr/bin/time -v) of kubectl-nautes registering a host with N
ConfigMaps, of helm rendering the same chart, and of raw_apply sending the
same objects, on one test-bed cluster. One sample each: a profile to explain
a figure of `make bench`, not a benchmark (docs/benchmarks.md).

Usage: scripts/profile_apply.py <testbed bin dir> <launcher> [N]
(needs target/release/kubectl-nautes and the bench clients: run make bench once)
"""

import importlib.util
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("bench", HERE / "bench.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def cpu(path):
    t = Path(path).read_text()
    user = float(re.search(r"User time \(seconds\): *([0-9.]+)", t).group(1))
    sys_ = float(re.search(r"System time \(seconds\): *([0-9.]+)", t).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): *([0-9:.]+)", t).group(1)
    parts = [float(x) for x in wall.split(":")]
    secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return user + sys_, secs


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    n = int(sys.argv[3]) if len(sys.argv) == 4 else 5000
    b = bench.Bench(sys.argv[1], sys.argv[2])
    try:
        b.build_tools()
        b.write_wrappers()
        b.start_bed()
        key = f"cm{n}"
        charts = b.bench_charts(key, b.cm_template(n))
        sp = b.spec("bench-host", "host", b.work / "host.json")
        w = b.work
        # helm alone, rendering what the plugin renders
        rendered = w / "rendered.yaml"
        b.nautes("render", "-f", sp, "--charts-dir", charts, "-o", "json", charts=charts,
                 wrap=("/usr/bin/time", "-v", "-o", w / "time-render.txt"))
        bench.run(["/usr/bin/time", "-v", "-o", w / "time-helm.txt", b.helm, "template", "traefik",
                   charts / "traefik", "--namespace", "traefik"], check=True)
        # the plugin, helm in a process it never reaps (its CPU stays out)
        p = b.nautes("register", "-f", sp, "-o", "json", "--progress", "json", "--timeout", "240s",
                     charts=charts, helm=b.detached, wrap=("/usr/bin/time", "-v", "-o", w / "time-register.txt"))
        win = b.apply_window(b.events(p.stderr))
        b.nautes("destroy", "bench-host", "--progress", "none", "--timeout", "240s", charts=charts)
        # raw_apply, the same objects
        q = bench.run(["/usr/bin/time", "-v", "-o", w / "time-raw.txt", b.raw_apply, b.a_kc, n, "cm", "raw-prof"])
        raw_secs = float(re.search(r"seconds=([0-9.]+)", q.stdout).group(1))
        b.kc(b.a_kc, "delete", "namespace", "raw-prof", "--timeout=240s", check=False)
        rows = []
        for label, f in (("kubectl-nautes render -o json (helm included)", "time-render.txt"),
                         ("helm template alone", "time-helm.txt"),
                         ("kubectl-nautes register (helm excluded)", "time-register.txt"),
                         ("raw_apply", "time-raw.txt")):
            c, s = cpu(w / f)
            rows.append(f"| {label} | {c:.2f} s | {s:.2f} s | {c / n * 1000:.2f} ms |")  # ms per object
        rendered.unlink(missing_ok=True)
        print(f"### client CPU for {n} ConfigMaps (one sample)\n")
        print("| process | CPU (user + system) | wall | CPU per object |")
        print("|---|---|---|---|")
        print("\n".join(rows))
        if win:
            print(f"\nplugin's namespaced apply phase: {win[1]} objects in {win[0]:.2f} s "
                  f"({win[1] / win[0]:.0f} obj/s); raw_apply: {n} in {raw_secs:.2f} s ({n / raw_secs:.0f} obj/s)")
        return 0
    except bench.Failed as e:
        print(f"profile: {e}", file=sys.stderr)
        return 1
    finally:
        b.stop_bed()
        import shutil
        shutil.rmtree(b.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
