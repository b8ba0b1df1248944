#!/usr/bin/env python
"""Benchmark the flexplan pipeline: load -> build -> hand-off -> HiGHS solve -> extract.

Every run of every case happens in a fresh Python subprocess, so that one case's Pyomo
objects and memory never leak into the next and the child's peak resident memory
(``getrusage(RUSAGE_SELF).ru_maxrss``, read by the child just before it exits) belongs
to that case alone.  Per case the script reports the median over ``--repeat`` runs of

* ``load``    ``flexplan.load_instance`` (CSV / TOML / pandapower conversion; imports of
              flexplan and pandapower are done before and reported apart as ``import``);
* ``build``   ``PlanningModel.timings['build']`` of ``flexplan.build_model``;
* ``handoff`` Pyomo ``LinearStandardFormCompiler`` + ``highspy.passModel``
              (``Results.timings_s['handoff']``);
* ``solve``   ``Highs.run()`` (``Results.timings_s['solve']``);
* ``extract`` ``flexplan.collect`` (``Results.timings_s['extract']``);
* ``other``   the rest of the ``flexplan.solve`` call (writing the solution back into the
              Pyomo variables, HiGHS set-up): wall time of ``flexplan.solve`` minus
              handoff, solve and extract;
* ``peak_mb`` the child's peak RSS (MB), ``base_mb`` its RSS after the imports;
* ``ratio``   (build + handoff + extract) / solve, from the medians.

Cases: the shipped instances ``ieee33`` and ``cigre_mv`` under ``reinforce_only`` (MIP,
gap 1 %, ``--time-limit``), and synthetic radial feeders in the CSV format that grow the
number of buses, of representative days and of investment stages separately from a
small base case, solved as LP relaxations (``reinforcement.binary = false``).

    PYTHONPATH=. python benchmarks/run_benchmarks.py --quick
    PYTHONPATH=. python benchmarks/run_benchmarks.py            # full run (~15 min on 2 cores)
    PYTHONPATH=. python benchmarks/run_benchmarks.py --only syn --gc pause-freeze --out benchmarks/results/gc_pause_freeze.json

Results: ``--out`` (JSON, default benchmarks/results/latest.json), a CSV and a log-log
PNG beside it.  Progress goes to stderr, the final table to stdout.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

LP_RECIPE = {"name": "reinforce_lp", "blocks": ["demand", "reinforcement"],
             "network": {"formulation": "lindistflow", "polygon_sides": 12},
             "reinforcement": {"binary": False}}

# synthetic base case and the three sweeps (each grows one dimension of the base)
BASE = dict(buses=25, days=1, stages=2)
FULL_SWEEPS = {"buses": [25, 50, 100, 200, 400], "days": [1, 2, 4, 8, 16], "stages": [1, 2, 4, 8]}
QUICK_SWEEPS = {"buses": [25, 50], "days": [1, 2], "stages": [1, 2]}
# a case whose first run has at least this many variables is not repeated
LARGE_VARS = 100_000


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# synthetic instances
# ---------------------------------------------------------------------------------------
def write_synthetic(folder: Path, buses: int, days: int, stages: int, seed: int = 1) -> Path:
    """Write a radial 20 kV feeder with ``buses`` buses (bus b0 is the slack), ``days``
    representative days of 24 h and ``stages`` five-year investment stages (only the last
    year of each stage is modelled) in the CSV instance format; return the folder.

    Topology: bus i hangs below bus i-1 with probability 0.6, otherwise below a random
    earlier bus (a trunk with laterals).  Loads 0.1-0.4 MW at pf 0.95 on every bus but the
    slack, scaled so that the feeder's base-year peak is 8 MW; line ratings are the next
    standard size above 1.05 x the downstream base-year peak, so the 3 %/yr growth overloads
    some of them within the horizon.  Two cable types give a replacement candidate (where
    stronger) and a parallel candidate for every line."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n = buses
    parent = [-1] + [i - 1 if (i == 1 or rng.random() < 0.6) else int(rng.integers(0, i - 1)) for i in range(1, n)]
    p = np.zeros(n)
    p[1:] = rng.uniform(0.1, 0.4, n - 1)
    p *= 8.0 / p.sum()
    q = p * math.tan(math.acos(0.95))
    down = p.copy()
    for i in range(n - 1, 0, -1):
        down[parent[i]] += down[i]
    sizes = [2.0, 4.0, 6.0, 8.0, 10.0]  # MVA
    length = rng.uniform(0.2, 0.8, n)
    with open(folder / "buses.csv", "w") as f:
        f.write("name,vn_kv\n")
        f.writelines(f"b{i},20.0\n" for i in range(n))
    with open(folder / "lines.csv", "w") as f:
        f.write("name,from_bus,to_bus,r_ohm,x_ohm,rating_mva,length_km\n")
        for i in range(1, n):
            need = 1.05 * down[i] * math.hypot(1, math.tan(math.acos(0.95)))
            rating = next((s for s in sizes if s >= need), sizes[-1])
            L = length[i]
            f.write(f"l{i},b{parent[i]},b{i},{0.32 * L:.5f},{0.12 * L:.5f},{rating},{L:.4f}\n")
    with open(folder / "loads.csv", "w") as f:
        f.write("bus,p_mw,q_mvar\n")
        f.writelines(f"b{i},{p[i]:.5f},{q[i]:.5f}\n" for i in range(1, n))
    h = np.arange(24)
    with open(folder / "profiles.csv", "w") as f:
        f.write("day,hour,weight,residential\n")
        w = 365.0 / days
        for d in range(days):
            scale = 1.0 - 0.35 * d / max(days - 1, 1)  # day 0 is the peak day
            shape = 0.35 + 0.25 * np.exp(-0.5 * ((h - 8) / 1.5) ** 2) + 0.65 * np.exp(-0.5 * ((h - 19) / 2.0) ** 2)
            shape = scale * shape / shape.max()
            f.writelines(f"d{d},{t},{w:.6f},{shape[t]:.4f}\n" for t in h)
    y0 = 2025
    stage_years = [y0 + 5 * k for k in range(stages)]
    (folder / "instance.toml").write_text(f'''name = "synthetic_b{buses}_d{days}_s{stages}"
description = "benchmarks/run_benchmarks.py synthetic radial feeder (seed {seed})"

[network]
source = "csv"
buses = "buses.csv"
lines = "lines.csv"
loads = "loads.csv"
slack_bus = "b0"
default_class = "residential"

[profiles]
file = "profiles.csv"

[growth]
annual_rate = 0.03

[economics]
base_year = {y0}
end_year = {y0 + 5 * stages - 1}
stages = {stage_years}
discount_rate = 0.035
investment_cost = "annuity"

[operation]
years_per_stage = "last"

[limits]
v_min_pu = 0.90
v_max_pu = 1.10
max_loading_pct = 100.0

[reinforcement]
generate = ["replace", "parallel"]

[[reinforcement.line_types]]
name = "NA2XS2Y 1x150"
r_ohm_per_km = 0.206
x_ohm_per_km = 0.116
max_i_ka = 0.319
capex_eur_per_km = 80000
lifetime_years = 40

[[reinforcement.line_types]]
name = "NA2XS2Y 1x240"
r_ohm_per_km = 0.122
x_ohm_per_km = 0.112
max_i_ka = 0.421
capex_eur_per_km = 90000
lifetime_years = 40
''')
    return folder


def case_list(quick: bool, time_limit: float, repeat: int, skip_cigre: bool) -> list[dict]:
    """The cases to run.  ``repeat`` is the most runs per case: a case whose first run
    has >= LARGE_VARS variables runs once (see main)."""
    cases = []
    mip = dict(recipe="reinforce_only", mip_gap=0.01, time_limit=time_limit, kind="mip")
    if quick:
        cases.append(dict(name="ieee33", instance=str(REPO / "instances" / "ieee33"), repeat=1,
                          **{**mip, "time_limit": min(time_limit, 20.0)}))
    else:
        cases.append(dict(name="ieee33", instance=str(REPO / "instances" / "ieee33"), repeat=repeat, **mip))
        if not skip_cigre:
            cases.append(dict(name="cigre_mv", instance=str(REPO / "instances" / "cigre_mv"), repeat=repeat, **mip))
    sweeps = QUICK_SWEEPS if quick else FULL_SWEEPS
    seen = set()
    for dim, values in sweeps.items():
        for val in values:
            size = {**BASE, dim: val}
            key = (size["buses"], size["days"], size["stages"])
            name = f"syn_b{key[0]}_d{key[1]}_s{key[2]}"
            if key in seen:  # the base case sits in every sweep: run it once, tag it with all
                next(c for c in cases if c["name"] == name)["sweep"].append(dim)
                continue
            seen.add(key)
            cases.append(dict(name=name, synthetic=size, sweep=[dim], recipe=LP_RECIPE, mip_gap=0.01,
                              time_limit=time_limit, kind="lp", repeat=1 if quick else repeat))
    return cases


# ---------------------------------------------------------------------------------------
# one run, in a child process
# ---------------------------------------------------------------------------------------
def worker(spec_path: str, out_path: str) -> None:
    import resource

    spec = json.loads(Path(spec_path).read_text())
    t0 = time.perf_counter()
    import flexplan as fp
    import pandapower.networks  # noqa: F401  (pandapower's import is not load time)
    t_import = time.perf_counter() - t0
    base_mb = _rss_mb()

    t = time.perf_counter()
    inst = fp.load_instance(spec["instance"])
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    gc_mode = spec.get("gc_mode", "on")
    if gc_mode == "on":
        pm = fp.build_model(inst, spec["recipe"])
    else:  # experiment: Python's cyclic GC paused while the model is built (flexplan does not do this)
        import gc

        from pyomo.common.gc_manager import PauseGC

        with PauseGC():
            pm = fp.build_model(inst, spec["recipe"])
            if gc_mode == "pause-freeze":  # the model's objects go to the permanent generation
                gc.freeze()
    t_build_call = time.perf_counter() - t
    t = time.perf_counter()
    res = fp.solve(pm, time_limit=spec["time_limit"], mip_gap=spec["mip_gap"], threads=spec.get("threads", 0))
    t_solve_call = time.perf_counter() - t
    ts = res.timings_s
    out = dict(import_s=t_import, load_s=t_load, build_s=pm.timings["build"], build_call_s=t_build_call,
               handoff_s=ts["handoff"], solve_s=ts["solve"], extract_s=ts["extract"],
               other_s=t_solve_call - ts["handoff"] - ts["solve"] - ts["extract"],
               peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, base_mb=base_mb,
               status=res.status, objective_eur=res.objective_eur, mip_gap=res.mip_gap, size=res.size,
               ops=int(pm.index.n_ops), buses=int(inst.network.n_buses), branches=int(inst.network.n_branches),
               candidates=int(len(inst.candidates)), days=len(inst.profiles.days),
               nodes=len(pm.index.node_names))
    Path(out_path).write_text(json.dumps(out))


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def run_once(case: dict, instance: str, threads: int, wall_limit: float, gc_mode: str = "on") -> dict:
    spec = {"instance": instance, "recipe": case["recipe"], "time_limit": case["time_limit"],
            "mip_gap": case["mip_gap"], "threads": threads, "gc_mode": gc_mode}
    with tempfile.TemporaryDirectory(prefix="flexplan-bench-") as tmp:
        sp, op = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        sp.write_text(json.dumps(spec))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_worker", str(sp), str(op)],
                              env=env, capture_output=True, text=True, timeout=wall_limit)
        wall = time.perf_counter() - t
        if proc.returncode != 0 or not op.exists():
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"{case['name']}: worker failed (exit {proc.returncode}):\n{tail}")
        out = json.loads(op.read_text())
    out["wall_s"] = wall
    return out


# ---------------------------------------------------------------------------------------
# aggregation, output
# ---------------------------------------------------------------------------------------
TIME_KEYS = ["import_s", "load_s", "build_s", "handoff_s", "solve_s", "extract_s", "other_s", "wall_s"]


def summarise(case: dict, runs: list[dict]) -> dict:
    med = {k: statistics.median(r[k] for r in runs) for k in TIME_KEYS + ["peak_mb", "base_mb"]}
    first = runs[0]
    solve = med["solve_s"]
    ratio = (med["build_s"] + med["handoff_s"] + med["extract_s"]) / solve if solve > 0 else float("nan")
    row = dict(case=case["name"], kind=case["kind"], sweep="+".join(case.get("sweep", [])) or "-",
               runs=len(runs), buses=first["buses"], branches=first["branches"], candidates=first["candidates"],
               days=first["days"], nodes=first["nodes"], ops=first["ops"], **first["size"],
               **{k: round(v, 4) for k, v in med.items()}, ratio=round(ratio, 4),
               status=",".join(sorted({r["status"] for r in runs})),
               mip_gap=first["mip_gap"], objective_eur=first["objective_eur"],
               time_limit_s=case["time_limit"])
    row["min_solve_s"] = round(min(r["solve_s"] for r in runs), 4)
    row["max_solve_s"] = round(max(r["solve_s"] for r in runs), 4)
    return row


COLS = [("case", "case", "{}"), ("variables", "vars", "{:,}"), ("constraints", "cons", "{:,}"),
        ("binaries", "bin", "{}"), ("nonzeros", "nnz", "{:,}"), ("load_s", "load", "{:.2f}"),
        ("build_s", "build", "{:.2f}"), ("handoff_s", "handoff", "{:.2f}"), ("solve_s", "solve", "{:.2f}"),
        ("extract_s", "extract", "{:.2f}"), ("peak_mb", "peak MB", "{:.0f}"), ("ratio", "ratio", "{:.2f}"),
        ("runs", "n", "{}"), ("status", "status", "{}")]


def table(rows: list[dict], markdown: bool = False) -> str:
    cells = [[fmt.format(r[k]) if r.get(k) is not None else "-" for k, _, fmt in COLS] for r in rows]
    heads = [h for _, h, _ in COLS]
    if markdown:
        out = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" if i == 0 or h == "status" else "---:"
                                                            for i, h in enumerate(heads)) + "|"]
        out += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(out)
    w = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]
    line = lambda c: "  ".join(s.ljust(w[i]) if i in (0, len(w) - 1) else s.rjust(w[i]) for i, s in enumerate(c))
    return "\n".join([line(heads), line(["-" * x for x in w])] + [line(c) for c in cells])


def fit_exponent(xs, ys):
    """Least-squares slope and intercept of log y = a + b log x (None with < 2 points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len(pts) < 2:
        return None, None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None, None
    b = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx
    return b, my - b * mx


def fits(rows: list[dict]) -> dict:
    lp = [r for r in rows if r["kind"] == "lp"]
    out = {}
    for key in ("build_s", "handoff_s", "solve_s", "extract_s"):
        b, a = fit_exponent([r["variables"] for r in lp], [r[key] for r in lp])
        out[key] = dict(exponent=None if b is None else round(b, 3), log_intercept=None if a is None else round(a, 4),
                        points=len(lp))
        for dim in ("buses", "days", "stages"):
            sub = [r for r in lp if dim in r["sweep"].split("+")]
            b, _ = fit_exponent([r["variables"] for r in sub], [r[key] for r in sub])
            out[key][f"exponent_{dim}_sweep"] = None if b is None else round(b, 3)
    return out


def plot(rows: list[dict], fit: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    lp = [r for r in rows if r["kind"] == "lp"]
    mip = [r for r in rows if r["kind"] == "mip"]
    styles = {"build_s": ("build", "tab:blue", "o"), "solve_s": ("solve (HiGHS)", "tab:red", "s"),
              "handoff_s": ("hand-off", "tab:green", "^")}
    for key, (label, color, marker) in styles.items():
        xs = [r["variables"] for r in lp]
        ys = [r[key] for r in lp]
        b, a = fit.get(key, {}).get("exponent"), fit.get(key, {}).get("log_intercept")
        lab = f"{label}, LP sweeps" + (f": t ~ n^{b:.2f}" if b is not None else "")
        ax.scatter(xs, ys, color=color, marker=marker, label=lab, zorder=3)
        if b is not None and xs:
            lo, hi = min(xs), max(xs)
            grid = [lo * (hi / lo) ** (i / 40) for i in range(41)]
            ax.plot(grid, [math.exp(a) * g ** b for g in grid], color=color, lw=1, alpha=0.7)
        if mip:
            ax.scatter([r["variables"] for r in mip], [r[key] for r in mip], facecolors="none", edgecolors=color,
                       marker=marker, s=90, lw=1.5, zorder=3, label=f"{label}, MIP instances (not fitted)")
    for r in mip:
        ax.annotate(r["case"] + (" (time limit)" if "time_limit" in r["status"] else ""),
                    (r["variables"], r["solve_s"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("variables")
    ax.set_ylabel("time (s), median")
    ax.set_title("flexplan: build and HiGHS solve time vs model size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def write_csv(rows: list[dict], path: Path) -> None:
    import csv

    keys = list(rows[0])
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def machine() -> dict:
    import highspy
    import pyomo.version

    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return dict(python=platform.python_version(), pyomo=pyomo.version.version, highs=highspy.Highs().version(),
                cpu=cpu, cores=os.cpu_count(), platform=platform.platform())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small subset (about a minute), for a smoke check")
    ap.add_argument("--repeat", type=int, default=3, help="runs per small case (large cases run once); default 3")
    ap.add_argument("--time-limit", type=float, default=300.0, help="HiGHS time limit per solve (s); default 300")
    ap.add_argument("--threads", type=int, default=0, help="HiGHS threads (default 0: HiGHS decides)")
    ap.add_argument("--gc", choices=["on", "pause", "pause-freeze"], default="on",
                    help="experiment: 'pause' suspends Python's cyclic garbage collector during build_model, "
                         "'pause-freeze' also moves the built model into the permanent generation (gc.freeze); "
                         "default 'on' (flexplan as it is)")
    ap.add_argument("--only", default=None, help="run only cases whose name contains this text")
    ap.add_argument("--skip-cigre", action="store_true", help="leave out cigre_mv (the longest case)")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.json"),
                    help="JSON results file; a .csv and a .png are written beside it")
    ap.add_argument("--_worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._worker:
        worker(*args._worker)
        return 0

    cases = case_list(args.quick, args.time_limit, max(1, args.repeat), args.skip_cigre)
    if args.only:
        cases = [c for c in cases if args.only in c["name"]]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    rows, failures = [], []
    with tempfile.TemporaryDirectory(prefix="flexplan-bench-instances-") as tmp:
        for i, case in enumerate(cases, 1):
            if "synthetic" in case:
                s = case["synthetic"]
                instance = str(write_synthetic(Path(tmp) / case["name"], s["buses"], s["days"], s["stages"]))
            else:
                instance = case["instance"]
            runs = []
            for k in range(case["repeat"]):
                log(f"case {i}/{len(cases)} {case['name']} run {k + 1}/{case['repeat']} ...")
                try:
                    r = run_once(case, instance, args.threads, wall_limit=3 * case["time_limit"] + 600,
                                 gc_mode=args.gc)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    log(f"  FAILED: {e}")
                    failures.append(dict(case=case["name"], error=str(e)))
                    break
                runs.append(r)
                last = k + 1 == case["repeat"] or r["size"]["variables"] >= LARGE_VARS
                log(f"  {r['size']['variables']:,} vars, {r['size']['constraints']:,} cons: load {r['load_s']:.2f} "
                    f"build {r['build_s']:.2f} handoff {r['handoff_s']:.2f} solve {r['solve_s']:.2f} "
                    f"extract {r['extract_s']:.2f} other {r['other_s']:.2f} s, peak {r['peak_mb']:.0f} MB, "
                    f"{r['status']}" + (f" gap {r['mip_gap']:.4f}" if r["mip_gap"] else ""))
                if last:  # large cases (>= LARGE_VARS variables) run once
                    break
            if runs:
                rows.append(summarise(case, runs))
    fit = fits(rows)
    result = dict(command=" ".join([Path(sys.executable).name] + sys.argv), quick=args.quick, gc_mode=args.gc,
                  created=time.strftime("%Y-%m-%d %H:%M:%S"), total_wall_s=round(time.perf_counter() - t_all, 1),
                  machine=machine(), lp_recipe=LP_RECIPE, base=BASE, sweeps=QUICK_SWEEPS if args.quick else FULL_SWEEPS,
                  fits=fit, cases=rows, failures=failures)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if rows:
        write_csv(rows, out.with_suffix(".csv"))
        plot(rows, fit, out.with_suffix(".png"))
    print(table(rows))
    print()
    for key in ("build_s", "handoff_s", "solve_s", "extract_s"):
        f = fit[key]
        print(f"fitted exponent t ~ variables^b over the LP sweeps, {key[:-2]}: b = {f['exponent']} "
              f"(buses {f['exponent_buses_sweep']}, days {f['exponent_days_sweep']}, "
              f"stages {f['exponent_stages_sweep']}; {f['points']} points)")
    print(f"\nwrote {out}, {out.with_suffix('.csv')}, {out.with_suffix('.png')} in {result['total_wall_s']} s")
    if failures:
        print(f"{len(failures)} case(s) failed: " + ", ".join(f["case"] for f in failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
