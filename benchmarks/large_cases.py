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

Results go to ``--out`` (JSON, and CSV beside it), one row per (case, scale), labelled with
``--label`` (e.g. ``before``/``after`` a change, run with ``PYTHONPATH`` at each version).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
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


def _worker(case: str, scale: float, k: int, time_limit: float) -> dict:
    import flexplan as fp

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
        res = fp.solve(pm, time_limit=time_limit, mip_gap=0.01)
        t = res.timings_s
        row.update({f"{k}_s": t.get(k) for k in ("build", "handoff", "solve", "extract")})
        row.update(res.size, status=res.status, objective_eur=res.objective_eur, gap=res.mip_gap,
                   builds=len(res.builds), total_s=sum(t.get(k, 0.0) for k in ("build", "handoff", "solve", "extract")))
        row["ratio"] = (t["build"] + t["handoff"] + t["extract"]) / t["solve"]
    row["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", default="1.0,2.5")
    ap.add_argument("--days", type=int, default=12)
    ap.add_argument("--cases", default="lp,mip,screened")
    ap.add_argument("--time-limit", type=float, default=900.0)
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "large.json"))
    ap.add_argument("--_worker", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._worker:
        case, scale, k, tl = a._worker
        print(json.dumps(_worker(case, float(scale), int(k), float(tl))))
        return 0
    rows = []
    for scale in [float(s) for s in a.scales.split(",")]:
        for case in a.cases.split(","):
            print(f"[large] {case} x{scale} ...", file=sys.stderr, flush=True)
            p = subprocess.run([sys.executable, __file__, "--_worker", case, str(scale), str(a.days),
                                str(a.time_limit)], capture_output=True, text=True)
            if p.returncode:
                print(p.stderr[-3000:], file=sys.stderr)
                rows.append(dict(case=case, scale=scale, status="failed"))
                continue
            row = json.loads(p.stdout.strip().splitlines()[-1])
            row["label"] = a.label
            rows.append(row)
            print(f"[large]   {json.dumps(row)}", file=sys.stderr, flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(out.read_text()) if out.exists() else []
    old = [r for r in old if r.get("label") != a.label]
    out.write_text(json.dumps(old + rows, indent=1))
    import pandas as pd

    pd.DataFrame(old + rows).to_csv(out.with_suffix(".csv"), index=False)
    print(pd.DataFrame(rows).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
