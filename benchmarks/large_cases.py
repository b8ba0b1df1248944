"""The large benchmark: SimBench MV rural x 4 stages x 12 representative days x 24 h.

    PYTHONPATH=. python benchmarks/large_cases.py [--scales 1.0,2.5] [--time-limit 900]
                                                  [--cases lp,mip,screened] [--label after]
                                                  [--out benchmarks/results/large.json]

The instance is ``instances/sb_mv_rural`` with its full year (``profiles_year.csv``) reduced
to 12 representative days by tsam (``flexplan.reduce.reduce_instance``, peak day kept) —
776 832 variables, 1 456 198 rows, 384 binaries.  As shipped (SimBench scenario 2) the
feeder needs no reinforcement; ``--scales`` multiplies every load (P and Q) so that it does
(x2.5: heat pumps and EVs beyond SimBench's 2034, voltage-limited rural laterals).

Cases, each in a fresh process (peak memory is that run's):

* ``lp``: the LP relaxation (``reinforce_lp``): load, build, hand-off, HiGHS solve, extract
  and the overhead ratio (build + hand-off + extract) / HiGHS solve;
* ``mip``: ``reinforce_only`` (binary), MIP gap 1 %, ``--time-limit``;
* ``screened``: the same by day screening (``flexplan.screening.solve_screened``).

For ``lp`` and ``mip`` the arrays of the very ``Highs`` object flexplan solved are saved
(bit for bit) and solved again by HiGHS alone in a fresh process that imports only highspy
and numpy, with the same options (``run_benchmarks.py``'s HiGHS-alone worker; ``same_path``:
the same simplex iterations and branch-and-bound nodes): ``highs_alone_s``, and
``overhead_vs_alone`` = (build + hand-off + extract) / ``highs_alone_s``; ``--no-alone``
skips it.

Results go to ``--out`` (JSON, and CSV beside it), one row per (case, scale), labelled with
``--label`` (e.g. ``before``/``after`` a change, run with ``PYTHONPATH`` at each version); a
rerun replaces the rows of its own label, case and scale and keeps the others.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LP_RECIPE = {"name": "reinforce_lp", "blocks": ["demand", "reinforcement"],
             "network": {"formulation": "lindistflow", "polygon_sides": 12}, "reinforcement": {"binary": False}}


def _instance(scale: float, k: int):
    import flexplan as fp
    from flexplan.reduce import reduce_instance

    sys.path.insert(0, str(ROOT / "instances" / "tools"))
    from reduce_profiles import read_profiles_csv

    folder = ROOT / "instances" / "sb_mv_rural"
    inst = fp.load_instance(folder)
    year = read_profiles_csv(folder / "profiles_year.csv")
    inst, _ = reduce_instance(dataclasses.replace(inst, profiles=year), k)
    net = inst.network
    loads = net.loads.assign(p_mw=net.loads["p_mw"] * scale, q_mvar=net.loads["q_mvar"] * scale)
    return dataclasses.replace(inst, network=dataclasses.replace(net, loads=loads))


def _worker(case: str, scale: float, k: int, time_limit: float, model_file: str = "") -> dict:
    import flexplan as fp
    from run_benchmarks import CaptureHighs, write_model

    t0 = time.perf_counter()
    inst = _instance(scale, k)
    row = dict(case=case, scale=scale, days=k, stages=len(inst.economics.stages), buses=inst.network.n_buses,
               load_s=time.perf_counter() - t0)
    if case == "screened":
        from flexplan.screening import solve_screened

        t1 = time.perf_counter()
        res = solve_screened(inst, "reinforce_only", mip_gap=0.01, time_limit=time_limit,
                             progress=lambda m: print(m, file=sys.stderr, flush=True))
        sc = res.extra["screening"]
        row.update(total_s=time.perf_counter() - t1, status=res.status, objective_eur=res.objective_eur,
                   gap=res.mip_gap, lower_bound_eur=sc["lower_bound_eur"], rounds=len(sc["rounds"]),
                   days_solved=len(sc["days"]), builds=len(res.builds))
    else:
        recipe = LP_RECIPE if case == "lp" else "reinforce_only"
        pm = fp.build_model(inst, recipe)
        with CaptureHighs() as cap:
            res = fp.solve(pm, time_limit=time_limit, mip_gap=0.01)
        t = res.timings_s
        row.update({f"{k}_s": t.get(k) for k in ("build", "handoff", "solve", "extract")})
        row.update(res.size, status=res.status, objective_eur=res.objective_eur, gap=res.mip_gap,
                   builds=len(res.builds), total_s=sum(t.get(k, 0.0) for k in ("build", "handoff", "solve", "extract")))
        row["ratio"] = (t["build"] + t["handoff"] + t["extract"]) / t["solve"]
    row["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if model_file and case != "screened":  # after the peak memory is read, as in run_benchmarks.py
        info = cap.last.getInfo()
        row.update(simplex_iterations=int(info.simplex_iteration_count), mip_nodes=int(info.mip_node_count))
        t1 = time.perf_counter()
        row.update(write_model(cap.last, pm, res.size, model_file))
        row["model_write_s"] = time.perf_counter() - t1
    return row


def _highs_alone(row: dict, model_file: str, time_limit: float, tmp: Path) -> dict:
    """HiGHS alone on the MPS file the worker wrote (run_benchmarks.py's worker, a fresh
    process with only highspy imported, flexplan's options)."""
    spec, out = tmp / "alone_spec.json", tmp / "alone.json"
    spec.write_text(json.dumps({"model_file": model_file, "time_limit": time_limit, "mip_gap": 0.01, "threads": 0}))
    p = subprocess.run([sys.executable, str(Path(__file__).with_name("run_benchmarks.py")), "--_highs_alone",
                        str(spec), str(out)], capture_output=True, text=True)
    if p.returncode or not out.exists():
        raise RuntimeError(f"HiGHS alone failed (exit {p.returncode}): {p.stderr[-2000:]}")
    a = json.loads(out.read_text())
    keep = {k: a[k] for k in ("highs_alone_s", "highs_alone_read_s", "highs_alone_status",
                              "highs_alone_objective_eur", "highs_alone_mip_gap", "highs_alone_peak_mb",
                              "highs_alone_simplex_iterations", "highs_alone_mip_nodes")}
    keep["same_path"] = (row["simplex_iterations"], row["mip_nodes"]) == (a["highs_alone_simplex_iterations"],
                                                                         a["highs_alone_mip_nodes"])
    if (a["highs_alone_vars"], a["highs_alone_cons"]) != (row["variables"], row["constraints"]):
        raise RuntimeError(f"the saved model has {a['highs_alone_vars']} columns and {a['highs_alone_cons']} rows, "
                           f"flexplan's model {row['variables']} and {row['constraints']}")
    keep["overhead_vs_alone"] = (row["build_s"] + row["handoff_s"] + row["extract_s"]) / a["highs_alone_s"]
    f, h = row.get("objective_eur"), a["highs_alone_objective_eur"]
    keep["objective_rel_diff"] = None if f is None or h is None else abs(f - h) / max(abs(f), 1e-9)
    return keep


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", default="1.0,2.5")
    ap.add_argument("--days", type=int, default=12)
    ap.add_argument("--cases", default="lp,mip,screened")
    ap.add_argument("--time-limit", type=float, default=900.0)
    ap.add_argument("--label", default="")
    ap.add_argument("--no-alone", action="store_true", help="skip HiGHS alone on the MPS file of the lp/mip cases")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "large.json"))
    ap.add_argument("--_worker", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._worker:
        case, scale, k, tl, model_file = a._worker
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        print(json.dumps(_worker(case, float(scale), int(k), float(tl), model_file if model_file != "-" else "")))
        return 0
    rows, failed = [], 0
    for scale in [float(s) for s in a.scales.split(",")]:
        for case in a.cases.split(","):
            print(f"[large] {case} x{scale} ...", file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory(prefix="flexplan-large-") as tmp:
                model_file = str(Path(tmp) / "model.npz") if case != "screened" and not a.no_alone else "-"
                p = subprocess.run([sys.executable, __file__, "--_worker", case, str(scale), str(a.days),
                                    str(a.time_limit), model_file], capture_output=True, text=True)
                if p.returncode:
                    print(p.stderr[-3000:], file=sys.stderr)
                    rows.append(dict(case=case, scale=scale, status="failed", label=a.label))
                    failed += 1
                    continue
                row = json.loads(p.stdout.strip().splitlines()[-1])
                if model_file != "-":
                    try:
                        row.update(_highs_alone(row, model_file, a.time_limit, Path(tmp)))
                    except RuntimeError as e:
                        print(f"[large]   {case} x{scale}: {e}", file=sys.stderr, flush=True)
                        failed += 1
            row["label"] = a.label
            rows.append(row)
            print(f"[large]   {json.dumps(row)}", file=sys.stderr, flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(out.read_text()) if out.exists() else []
    done = {(r.get("case"), r.get("scale")) for r in rows}  # a rerun replaces its own (case, scale) of the label
    old = [r for r in old if r.get("label") != a.label or (r.get("case"), r.get("scale")) not in done]
    out.write_text(json.dumps(old + rows, indent=1))
    import pandas as pd

    pd.DataFrame(old + rows).to_csv(out.with_suffix(".csv"), index=False)
    print(pd.DataFrame(rows).to_string())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
