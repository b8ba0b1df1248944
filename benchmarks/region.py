"""A SimBench region planned by ``flexplan.region``: LV grids per hour on 1 and 2 workers (the
same LV solves, one run each, measured in one process one after the other) and, with
``--full``, the whole region end to end on 2 workers.

    PYTHONPATH=. python benchmarks/region.py [--code 1-MVLV-rural-all-2-sw] [--grids 8] [--full]
        [--out benchmarks/results/region.json]

The sample of ``--grids`` LV grids is spread over the grid sizes (every k-th grid in order of
bus count), so that 1 and 2 workers solve the same mix, each grid's full planning MIP (without
the shortcut for grids that need nothing, :func:`flexplan.region.baseline_column`); the speed-up is
(time on 1 worker) / (time on 2 workers).  ``--full`` plans the whole region as ``flexplan region``
does (shortcut on).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import flexplan as fp
from flexplan.region import _Runner, plan_region, simbench_instance, split_region

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", default="1-MVLV-rural-all-2-sw")
    ap.add_argument("--model", default="flex_vs_reinforce")
    ap.add_argument("--grids", type=int, default=8)
    ap.add_argument("--mip-gap", type=float, default=0.001)
    ap.add_argument("--full", action="store_true", help="also plan the whole region on 2 workers")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "region.json"))
    args = ap.parse_args(argv)

    inst = fp.load_instance(simbench_instance(args.code, progress=print))
    t0 = time.perf_counter()
    split = split_region(inst)
    split_s = time.perf_counter() - t0
    by_size = sorted(split.lv, key=lambda g: g.instance.network.n_buses)
    step = max(1, len(by_size) // args.grids)
    sample = by_size[::step][: args.grids]
    jobs = [(g.name, g.instance, None, None, None) for g in sample]
    kw = dict(mip_gap=args.mip_gap)
    out = dict(code=args.code, model=args.model, buses=inst.network.n_buses, lv_grids=len(split.lv),
               mv_buses=split.mv.network.n_buses, split_s=round(split_s, 2),
               sample=[dict(grid=g.name, buses=g.instance.network.n_buses - 1) for g in sample],
               ops=int(len(inst.profiles.days) * inst.profiles.hours * len(inst.economics.stages)))
    for workers in (1, 2):
        runner = _Runner(workers=workers, shortcut=False)  # full solves: what parallelises
        t0 = time.perf_counter()
        cols = runner.run(jobs, args.model, kw)
        dt = time.perf_counter() - t0
        runner.close()
        out[f"workers_{workers}"] = dict(seconds=round(dt, 1), grids_per_hour=round(3600 * len(jobs) / dt, 1),
                                         solve_s=[round(c["seconds"], 1) for c in cols])
        print(f"{workers} worker(s): {len(jobs)} LV grids in {dt:.1f} s ({3600 * len(jobs) / dt:.0f} grids/h)")
    out["speedup_2_over_1"] = round(out["workers_1"]["seconds"] / out["workers_2"]["seconds"], 2)
    print(f"speed-up on 2 workers: {out['speedup_2_over_1']}")
    if args.full:
        t0 = time.perf_counter()
        res = plan_region(inst, args.model, workers=2, mip_gap=args.mip_gap, progress=print)
        out["full"] = dict(seconds=round(time.perf_counter() - t0, 1), objective_eur=res.objective_eur,
                           bound_eur=res.bound_eur, iterations=len(res.iterations), pricing=res.pricing,
                           lv_grids_reinforced=int(res.grids["reinforced"].sum()),
                           voltage_moved_pu=res.voltage_moved_pu)
        print(f"whole region: {out['full']['seconds']:.0f} s, {res.objective_eur:,.0f} EUR")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
