"""Day screening: solve the planning MIP on the days that matter, prove it on all of them.

Which assets to build is decided by the few days on which the grid is stressed; the other
representative days only add rows that never bind.  :func:`solve_screened` exploits that
without giving up optimality:

1. **Restricted problem.** Solve the recipe on a subset D of the days (first: the day with
   the highest feeder load at the horizon's end, :func:`peak_day`), each day keeping its own
   weight.  Every day's operating cost is non-negative (penalties, flexibility bought, EV
   bills), so leaving days out can only lower the cost of any plan: the restricted MIP's dual
   bound is a **lower bound** LB on the full problem's optimum.
2. **Evaluation.** Fix the decisions of the restricted plan (every variable a block declared
   with ``Hub.decide``: builds, contracted capacity) in the model of *all* days and solve it
   (an LP when the decisions were the only integers).  Its cost is an **upper bound** UB: a
   feasible plan of the full problem.
3. **Stop or add days.** If (UB − LB) / UB ≤ the MIP gap, the evaluated plan is optimal to
   that gap on all days and is returned (with all days' tables).  Otherwise the days on
   which the evaluated plan pays penalties (overload, voltage, unserved load) are added to
   D and the loop repeats; at worst D becomes all days.

This is row generation over days, as in transmission expansion planning with "critical
hours"; the certificate (UB − LB) is computed, not assumed.  Recipes whose blocks can earn
money on a day (a negative operating cost: the V2G market framework, grid tariffs that pay
EV owners) break the lower bound and are refused (:func:`screenable_blocks`: the blocks with the trait ``day_separable``).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from .assemble import build_model
from .errors import RecipeError
from .recipe import resolve_recipe
from .reduce import class_peak_mw
from .results import violation_table
from .solve import SolveOptions, solve_model

def screenable_blocks() -> frozenset:
    """Blocks whose cost on every day is non-negative (so that dropping a day never raises the
    cost): the blocks registered with the trait ``day_separable``."""
    from .blocks import BLOCKS, _load_all

    _load_all()
    return frozenset(n for n, s in BLOCKS.items() if s.day_separable)


def peak_day(inst) -> str:
    """The day whose highest hourly feeder load (MW of every load class at the horizon's
    end, :func:`flexplan.reduce.class_peak_mw`, times its profile) is largest."""
    mw = class_peak_mw(inst)
    prof = inst.profiles
    total = np.zeros((len(prof.days), prof.hours))
    for c, f in prof.factors.items():
        total += mw.get(c, 0.0) * np.asarray(f, dtype=float)
    return prof.days[int(np.argmax(total.max(axis=1)))]


def with_days(inst, days) -> object:
    """``inst`` with only ``days`` (names, in the instance's order), each keeping its weight."""
    prof = inst.profiles
    keep = [i for i, d in enumerate(prof.days) if d in set(days)]
    sub = dataclasses.replace(prof, days=tuple(prof.days[i] for i in keep), weights=np.asarray(prof.weights)[keep],
                              factors={c: np.asarray(f)[keep] for c, f in prof.factors.items()})
    return dataclasses.replace(inst, profiles=sub)


def check_screenable(recipe) -> None:
    ok = screenable_blocks()
    other = [b for b in recipe.blocks if b not in ok]
    if other:
        raise RecipeError(f"{recipe.source}: day screening needs every day's cost to be non-negative; block(s) "
                          f"{', '.join(other)} may earn money on a day, so leaving days out would not give a lower "
                          f"bound. Solve without screening.")


def _fix_decisions(src_pm, dst_pm) -> list:
    """Fix in ``dst_pm`` every decision variable of ``src_pm`` at its (rounded if integer)
    value; returns the variables of ``dst_pm`` it fixed."""
    fixed = []
    for vars_ in src_pm.hub.decisions.values():
        for v in vars_:
            w = dst_pm.model.find_component(v.name)
            if w is None:
                raise RecipeError(f"day screening: decision {v.name} has no counterpart in the full model")
            val = v.value if v.value is not None else 0.0
            w.fix(round(val) if w.is_integer() else val)
            fixed.append(w)
    return fixed


def solve_screened(inst, recipe="reinforce_only", *, mip_gap: float = 0.01, time_limit: float | None = None,
                   threads: int = 0, seed: int = 0, initial_days=None, max_rounds: int = 10, progress=None):
    """Solve ``inst`` under ``recipe`` by day screening (module docstring).  Returns the
    :class:`~flexplan.results.Results` of the evaluated plan on all days, with
    ``extra["screening"]``: per round the days solved, LB, UB, gap and times.
    ``time_limit`` (s) applies to each solve (restricted MIP and evaluation)."""
    from .results import collect

    say = progress or (lambda _msg: None)
    recipe = resolve_recipe(recipe)
    check_screenable(recipe)
    all_days = list(inst.profiles.days)
    days = list(initial_days) if initial_days else [peak_day(inst)]
    unknown = [d for d in days if d not in all_days]
    if unknown:
        raise RecipeError(f"day screening: unknown day(s) {unknown}; the instance has {all_days}")
    rounds = []
    t_start = time.perf_counter()
    opts = SolveOptions(time_limit=time_limit, mip_gap=mip_gap, threads=threads, seed=seed)
    full_pm, fixed = None, []
    for r in range(1, max_rounds + 1):
        days = [d for d in all_days if d in set(days)]
        say(f"screening round {r}: solving {len(days)} of {len(all_days)} days ({', '.join(days)})")
        t0 = time.perf_counter()
        pm = build_model(with_days(inst, days), recipe)
        out = solve_model(pm.model, opts, progress=progress)
        restricted_s = time.perf_counter() - t0
        if not out.has_solution:
            say(f"  restricted problem: {out.status} (HiGHS: {out.highs_status}); no plan to evaluate")
            res = collect(pm, out)
            res.extra["screening"] = dict(rounds=rounds, days=days, converged=False)
            return res
        lb = out.dual_bound if out.dual_bound is not None else out.objective
        say(f"  restricted: {out.objective:,.0f} EUR, bound {lb:,.0f} EUR ({restricted_s:.1f} s)")
        t1 = time.perf_counter()
        if full_pm is None:
            full_pm = build_model(inst, recipe)
        for v in fixed:  # the previous round's plan
            v.unfix()
        fixed = _fix_decisions(pm, full_pm)
        full_out = solve_model(full_pm.model, opts, progress=None)
        eval_s = time.perf_counter() - t1
        if not full_out.has_solution:
            raise RecipeError(f"day screening: the plan of round {r} has no feasible operation on all days "
                              f"({full_out.status}); solve without screening")
        ub = full_out.objective
        gap = (ub - lb) / max(abs(ub), 1e-9) if ub > 0 else 0.0
        vt = violation_table(full_pm)
        per_day = vt.groupby("day")["penalty_weight_eur"].sum() if len(vt) else None
        missing = [d for d in all_days if d not in days and per_day is not None and per_day.get(d, 0.0) > 0]
        rounds.append(dict(round=r, days=list(days), lower_bound_eur=float(lb), upper_bound_eur=float(ub),
                           gap=float(gap), restricted_s=round(restricted_s, 3), evaluation_s=round(eval_s, 3),
                           restricted_status=out.status, days_with_penalties_left_out=missing))
        say(f"  all {len(all_days)} days with that plan: {ub:,.0f} EUR; gap {100 * gap:.2f} % "
            f"({eval_s:.1f} s); left-out days with penalties: {missing or 'none'}")
        if gap <= mip_gap or len(days) == len(all_days):
            break
        if not missing:
            # no left-out day pays a penalty, yet the bounds differ: either the left-out days
            # carry costs of their own (flexibility bought every day) — add the next day — or
            # the restricted MIP stopped above the gap (time limit), which more days cannot mend
            if out.mip_gap is not None and out.mip_gap > mip_gap:
                break
            missing = [d for d in all_days if d not in days][:1]
        days = days + missing
    res = collect(full_pm, full_out)
    res.mip_gap = float(gap)
    converged = gap <= mip_gap
    if not converged and res.status == "optimal":
        res.status = "gap_not_closed"
    res.timings_s = dict(res.timings_s, screening_total=time.perf_counter() - t_start)
    res.extra["screening"] = dict(rounds=rounds, days=days, converged=converged, lower_bound_eur=float(lb),
                                  upper_bound_eur=float(ub), gap=float(gap))
    return res
