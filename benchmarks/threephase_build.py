"""The three-phase build against the balanced one on the shipped IEEE European LV feeder.

    PYTHONPATH=. python benchmarks/threephase_build.py [--days 2,5] [--out benchmarks/results/threephase.json]
    PYTHONPATH=. python benchmarks/threephase_build.py --instance sb_lv_semiurb_3ph --days 1,5 --solve \
        --out benchmarks/results/threephase_semiurb.json

``european_lv`` (205 buses after the series merge, 55 single-phase houses, three phase-assigned
home fleets, 3 stages), its first ``--days`` representative days (weights scaled to the year), built with the recipe
``lv_three_phase`` (lindist3flow, smart charging, phase balancing) and the same recipe on
``lindistflow``; each case in a fresh process.  Records per case the model size, build and
hand-off time (the HiGHS solve is not run: ``lv_three_phase`` is a MIP that takes HiGHS minutes
to hours, see README), peak memory, and per formulation the build time per column.
``--instance``: another shipped three-phase instance; ``--solve``: run HiGHS too and record its
time and the ratio (build + hand-off) / solve (measured in one process).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _worker(formulation: str, days: int, instance: str = "european_lv", solve: bool = False) -> dict:
    import dataclasses

    import flexplan as fp
    from flexplan.recipe import resolve_recipe, with_formulation
    from flexplan.solve import HighsSession, SolveOptions

    from flexplan.paths import resolve_instance_path

    inst = fp.load_instance(resolve_instance_path(instance))
    if days < len(inst.profiles.days):  # the first days, their weights scaled to the year
        pr = inst.profiles
        w = pr.weights[:days] * pr.weights.sum() / pr.weights[:days].sum()
        inst = dataclasses.replace(inst, profiles=dataclasses.replace(
            pr, days=pr.days[:days], weights=w, factors={c: f[:days] for c, f in pr.factors.items()}))
    rec = resolve_recipe("lv_three_phase")
    if formulation != rec.formulation:
        rec = with_formulation(rec, formulation)
    rec = dataclasses.replace(rec, name=f"lv_three_phase[{formulation}]")
    t0 = time.perf_counter()
    pm = fp.build_model(inst, rec)
    build = time.perf_counter() - t0
    session = HighsSession(pm.model, SolveOptions())
    handoff = session.timings["handoff"]
    row = dict(instance=instance, formulation=formulation, days=days, build_s=build,
               handoff_s=handoff, **session.size,
               build_us_per_column=1e6 * build / max(session.size["variables"], 1))
    if solve:
        out = session.run()
        row.update(status=out.status, objective_eur=out.objective, solve_s=out.timings["solve"],
                   overhead_ratio=(build + handoff) / max(out.timings["solve"], 1e-9))
    row["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", default="2,5")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "threephase.json"))
    ap.add_argument("--instance", default="european_lv", help="a shipped three-phase instance")
    ap.add_argument("--solve", action="store_true", help="run HiGHS too (minutes to hours)")
    ap.add_argument("--_worker", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._worker:
        print(json.dumps(_worker(a._worker[0], int(a._worker[1]), a._worker[2], a._worker[3] == "1")))
        return 0
    rows = []
    for days in [int(d) for d in a.days.split(",")]:
        for formulation in ("lindistflow", "lindist3flow"):
            p = subprocess.run([sys.executable, __file__, "--_worker", formulation, str(days), a.instance,
                                "1" if a.solve else "0"], capture_output=True, text=True)
            if p.returncode:
                print(p.stderr[-3000:], file=sys.stderr)
                return 1
            row = json.loads(p.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"[threephase] {json.dumps(row)}", file=sys.stderr, flush=True)
    import pandas as pd

    df = pd.DataFrame(rows)
    print(df.to_string(index=False))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    df.to_csv(out.with_suffix(".csv"), index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
