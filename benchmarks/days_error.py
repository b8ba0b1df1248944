#!/usr/bin/env python
"""What representative days cost in planning terms: k tsam days against the full year.

    PYTHONPATH=. python benchmarks/days_error.py [--instance sb_lv_rural] [--scale 4.0]
        [--ks 2,4,8,16,32] [--stages 2025,2035] [--mip-gap 0.0005] [--time-limit 900]
        [--out benchmarks/results/days_error.json]

The instance's full year of hourly profiles (``profiles_year.csv``, 365 days) is the
reference.  Every load is multiplied by ``--scale`` (P and Q) so that the feeder needs
reinforcement (at SimBench's own load it needs none and every reduction is trivially
right); ``--stages`` replaces the investment stages (each stage models its last year,
``years_per_stage = "last"``) to keep the full-year model small enough to solve.

1. **Full year.** The plan on all 365 days, by day screening
   (:func:`flexplan.screening.solve_screened`): the MIP on the days that matter, proven on
   all 365 to ``--mip-gap``.  Its cost C* (and lower bound) is the reference.
2. **k days.** For each k: :func:`flexplan.reduce.reduce_instance` (tsam, hierarchical,
   peak day kept as its own period), and the same with ``extreme_peak=False`` (the peak may
   be averaged away).  Per reduction: profile RMSE, peak and energy error (``info`` of the
   reduction), the MIP on the k days (``--mip-gap``) — its cost is what a planner using k
   days would *predict* — and the builds.
3. **That plan on the full year.** The k-day plan's decisions are fixed in the full-year
   model and its operation re-solved (an LP): its *true* cost.  ``regret`` = (true − C*) / C*
   is what choosing k days loses; ``predicted error`` = (predicted − true) / true is how
   wrong the k-day model's cost estimate is.

Everything goes to ``--out`` (JSON with the settings, CSV beside it) and a figure
``.png`` (errors against k, log scale).  Progress on stderr.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(f"[days {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def year_instance(name: str, scale: float, stages):
    """The shipped instance ``name`` with its full year, loads x ``scale`` and ``stages``."""
    import flexplan as fp

    sys.path.insert(0, str(ROOT / "instances" / "tools"))
    from reduce_profiles import read_profiles_csv

    folder = ROOT / "instances" / name
    year_csv = folder / "profiles_year.csv"
    if not year_csv.exists():
        raise SystemExit(f"{year_csv}: no full-year profiles for instance '{name}' (the SimBench instances have one)")
    inst = fp.load_instance(folder)
    inst = dataclasses.replace(inst, profiles=read_profiles_csv(year_csv))
    net = inst.network
    loads = net.loads.assign(p_mw=net.loads["p_mw"] * scale, q_mvar=net.loads["q_mvar"] * scale)
    inst = dataclasses.replace(inst, network=dataclasses.replace(net, loads=loads))
    if stages:
        eco = inst.economics
        bad = [s for s in stages if not eco.base_year <= s <= eco.end_year]
        if stages[0] != eco.base_year or bad or list(stages) != sorted(set(stages)):
            raise SystemExit(f"--stages must start at the base year {eco.base_year}, rise, and stay within "
                             f"{eco.base_year}-{eco.end_year}; got {stages}")
        inst = dataclasses.replace(inst, economics=dataclasses.replace(eco, stages=tuple(stages)))
    return inst


def plan_of(res) -> list[tuple]:
    b = res.builds
    return sorted((str(r.asset), str(r.type), int(r.year)) for r in b.itertuples()) if len(b) else []


def evaluate(full_pm, pm, opts):
    """Cost of ``pm``'s plan on the full year: its decisions fixed in ``full_pm``, re-solved."""
    from flexplan.screening import _fix_decisions
    from flexplan.solve import solve_model

    fixed = _fix_decisions(pm, full_pm)
    try:
        t = time.perf_counter()
        out = solve_model(full_pm.model, opts)
        if not out.has_solution:
            raise RuntimeError(f"the plan has no feasible operation on the full year: {out.status} "
                               f"(HiGHS: {out.highs_status})")
        return out.objective, time.perf_counter() - t
    finally:
        for v in fixed:
            v.unfix()


def run(a) -> dict:
    import flexplan as fp
    from flexplan.reduce import reduce_instance
    from flexplan.screening import solve_screened
    from flexplan.solve import SolveOptions, solve_model

    stages = [int(s) for s in a.stages.split(",")] if a.stages else None
    inst = year_instance(a.instance, a.scale, stages)
    opts = SolveOptions(time_limit=a.time_limit, mip_gap=a.mip_gap)
    n_days = len(inst.profiles.days)
    log(f"{a.instance} x{a.scale}: {inst.network.n_buses} buses, stages {list(inst.economics.stages)}, "
        f"{n_days} days x {inst.profiles.hours} h; full year by day screening to {100 * a.mip_gap:g} % ...")
    t = time.perf_counter()
    full = solve_screened(inst, a.recipe, mip_gap=a.mip_gap, time_limit=a.time_limit,
                          progress=lambda m: log("  " + m))
    full_s = time.perf_counter() - t
    sc = full.extra["screening"]
    if not sc.get("converged"):
        raise SystemExit(f"the full-year reference did not converge: {full.status}, gap {sc.get('gap')}")
    c_star = full.objective_eur
    full_plan = plan_of(full)
    log(f"full year: {c_star:,.2f} EUR (bound {sc['lower_bound_eur']:,.2f}), {len(full_plan)} builds, "
        f"{full_s:.0f} s, {len(sc['days'])} of {n_days} days solved as MIP")
    reference = dict(objective_eur=c_star, lower_bound_eur=sc["lower_bound_eur"], gap=sc["gap"], builds=full_plan,
                     seconds=round(full_s, 1), rounds=len(sc["rounds"]), days_solved=sc["days"],
                     size=full.size, cost_breakdown_eur=full.cost_breakdown_eur)
    log("building the full-year model once for the evaluations ...")
    full_pm = fp.build_model(inst, a.recipe)
    rows = []
    for k in [int(x) for x in a.ks.split(",")]:
        for peak in (True, False):
            t0 = time.perf_counter()
            red, info = reduce_instance(inst, k, extreme_peak=peak)
            red_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            pm = fp.build_model(red, a.recipe)
            out = solve_model(pm.model, opts)
            solve_s = time.perf_counter() - t1
            if not out.has_solution:
                raise RuntimeError(f"k = {k}: no plan ({out.status}, HiGHS: {out.highs_status})")
            res = fp.collect(pm, out)
            true_cost, eval_s = evaluate(full_pm, pm, opts)
            plan = plan_of(res)
            row = dict(k=k, peak_kept=peak, rmse=info["rmse_overall"], rmse_total_mw=info["rmse_total"],
                       peak_error=info["peak_error"],
                       energy_error=max(info["energy_error"].values(), key=abs) if info["energy_error"] else 0.0,
                       predicted_eur=out.objective, mip_gap=out.mip_gap, true_eur=true_cost,
                       predicted_error=(out.objective - true_cost) / true_cost if true_cost else 0.0,
                       regret=(true_cost - c_star) / c_star if c_star else 0.0,
                       same_plan=plan == full_plan, builds=len(plan), plan=plan,
                       variables=out.size["variables"], reduce_s=round(red_s, 2), solve_s=round(solve_s, 2),
                       evaluate_s=round(eval_s, 2))
            rows.append(row)
            log(f"k = {k:3d} {'peak kept' if peak else 'no peak  '}: RMSE {row['rmse']:.4f}, peak error "
                f"{100 * row['peak_error']:+.1f} %, predicts {row['predicted_eur']:,.0f} EUR, its plan costs "
                f"{true_cost:,.0f} EUR on the year (regret {100 * row['regret']:+.2f} %, prediction "
                f"{100 * row['predicted_error']:+.2f} %), {'the full-year plan' if row['same_plan'] else 'another plan'}"
                f" ({len(plan)} builds), {solve_s:.1f} s")
    return dict(command=" ".join([Path(sys.executable).name] + sys.argv), created=time.strftime("%Y-%m-%d %H:%M:%S"),
                instance=a.instance, scale=a.scale, stages=list(inst.economics.stages), recipe=a.recipe,
                mip_gap=a.mip_gap, days=n_days, hours=inst.profiles.hours, reference=reference, rows=rows)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2))
    for peak, style in ((True, "o-"), (False, "s--")):
        rs = [r for r in result["rows"] if r["peak_kept"] == peak]
        ks = [r["k"] for r in rs]
        tag = "peak day kept" if peak else "peak not kept"
        axes[0].plot(ks, [100 * r["regret"] for r in rs], style, label=f"regret of the k-day plan ({tag})")
        axes[0].plot(ks, [100 * r["predicted_error"] for r in rs], style, alpha=0.55,
                     label=f"error of the k-day cost estimate ({tag})")
        axes[1].plot(ks, [100 * r["peak_error"] for r in rs], style, label=f"peak error ({tag})")
        axes[1].plot(ks, [100 * r["rmse"] for r in rs], style, alpha=0.55, label=f"profile RMSE x 100 ({tag})")
    ref = result["reference"]
    axes[0].axhline(0, color="k", lw=0.8)
    nb = len(ref["builds"])
    axes[0].set_title(f"{result['instance']} x{result['scale']:g}: planning cost vs the full year\n"
                      f"(full year {ref['objective_eur']:,.0f} EUR, {nb} build{'' if nb == 1 else 's'})", fontsize=10)
    axes[0].set_ylabel("% of the full-year cost")
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set_title("profile error of the reduction", fontsize=10)
    axes[1].set_ylabel("%")
    ks = sorted({r["k"] for r in result["rows"]})
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(ks)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("representative days k")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    from flexplan.results import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instance", default="sb_lv_rural", help="a shipped instance with profiles_year.csv")
    ap.add_argument("--scale", type=float, default=4.0, help="factor on every load (P and Q); default 4, where "
                    "the peak day decides the transformer")
    ap.add_argument("--ks", default="2,4,8,16,32", help="numbers of representative days")
    ap.add_argument("--stages", default="2025,2035", help="investment stages (first = base year); '' keeps the "
                    "instance's")
    ap.add_argument("--recipe", default="reinforce_only", help="recipe name or file (models/); the full-year "
                    "reference is found by day screening, which takes only recipes of day-separable "
                    "blocks (flexplan.screening.screenable_blocks())")
    ap.add_argument("--mip-gap", type=float, default=0.0005, help="relative MIP gap of every solve; default 0.05 %%")
    ap.add_argument("--time-limit", type=float, default=900.0, help="HiGHS time limit per solve (s)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "days_error.json"))
    a = ap.parse_args(argv)
    result = run(a)
    import pandas as pd

    from flexplan.results import write_text_atomic

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(result, indent=1, default=float) + "\n")
    df = pd.DataFrame([{k: v for k, v in r.items() if k != "plan"} for r in result["rows"]])
    write_text_atomic(out.with_suffix(".csv"), df.to_csv(index=False))
    plot(result, out.with_suffix(".png"))
    print(df.drop(columns=["rmse_total_mw"]).to_string(index=False))
    print(f"\nfull year: {result['reference']['objective_eur']:,.2f} EUR, wrote {out}, {out.with_suffix('.csv')}, "
          f"{out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
