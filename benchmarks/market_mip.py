"""The market framework's MIP on ieee33_ev (``flexplan frameworks``' slowest solve): time to a
1 % gap from a cold start and from the reinforce-only plan as a MIP start, with HiGHS's
default options, without the root reduced-cost heuristic, and with the options ``flexplan
frameworks`` uses for a started MIP (``FRAMEWORK_HIGHS``).

    PYTHONPATH=. python benchmarks/market_mip.py [--time-limit 600] [--out benchmarks/results/market_mip.json]

Prints and writes, per run: status, objective, gap, bound, HiGHS seconds, the time of the
first incumbent and its value (from HiGHS's improving-solution callback), and the builds.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import flexplan as fp
from flexplan.frameworks import FRAMEWORK_HIGHS

ROOT = Path(__file__).resolve().parent.parent


def run(inst, start, time_limit: float, highs: dict) -> dict:
    pm = fp.build_model(inst, "framework_market")
    t0 = time.perf_counter()
    seen = []

    def progress(msg: str) -> None:
        if "new incumbent" in msg:
            seen.append((round(time.perf_counter() - t0, 1), msg.strip()))

    res = fp.solve(pm, mip_gap=0.01, time_limit=time_limit, start=start, progress=progress, **highs)
    return dict(start="reinforce_only plan" if start else "none", highs_options=highs, status=res.status, objective_eur=res.objective_eur,
                mip_gap=res.mip_gap, bound_eur=res.extra.get("dual_bound_eur"), highs_s=round(res.timings_s["solve"], 1),
                first_incumbent=seen[0] if seen else None, incumbents=len(seen),
                builds=sorted(res.builds["asset"]) if len(res.builds) else [])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=600.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "market_mip.json"))
    ap.add_argument("--frameworks-only", action="store_true",
                    help="only the options flexplan frameworks uses for a started MIP (~3 min)")
    a = ap.parse_args(argv)
    inst = fp.load_instance(ROOT / "instances" / "ieee33_ev")
    ref_pm = fp.build_model(inst, "framework_reinforce_only")
    t0 = time.perf_counter()
    ref = fp.solve(ref_pm, mip_gap=0.01, time_limit=a.time_limit)
    out = dict(reinforce_only=dict(status=ref.status, objective_eur=ref.objective_eur,
                                   highs_s=round(time.perf_counter() - t0, 1)), runs=[])
    print(json.dumps(out["reinforce_only"]), flush=True)
    # HiGHS's defaults, the root reduced-cost heuristic off, and the options `flexplan
    # frameworks` solves a started MIP with (FRAMEWORK_HIGHS)
    rrc = {"mip_heuristic_run_root_reduced_cost": False}
    for highs in ({}, rrc, FRAMEWORK_HIGHS) if not a.frameworks_only else (FRAMEWORK_HIGHS,):
        for start in (None, fp.decision_values(ref_pm)):
            row = run(inst, start, a.time_limit, highs)
            print(json.dumps(row, default=str), flush=True)
            out["runs"].append(row)
    Path(a.out).write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
