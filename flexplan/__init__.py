"""flexplan: multi-year planning of distribution grids with EV flexibility.

Public API::

    import flexplan as fp
    inst = fp.load_instance("instances/ieee33")
    pm = fp.build_model(inst, "reinforce_only")
    res = fp.solve(pm, time_limit=120, mip_gap=0.01)
    res.builds, res.voltages, res.cost_breakdown_eur
    res.write("out/ieee33")
"""
from __future__ import annotations

from .assemble import PlanningModel, build_model, cyclic_gc_paused, release_memory
from .errors import FlexplanError, InstanceError, RecipeError, SolverError
from .instance import Instance, load_instance
from .recipe import Recipe, resolve_recipe
from .results import Results, collect
from .solve import SolveOptions, solve_model

__version__ = "0.1.0"


def solve(pm: PlanningModel, time_limit: float | None = None, mip_gap: float = 1e-4, threads: int = 0,
          verbose: bool = False, progress=None, prices: bool = False, start: dict | None = None,
          ac: str | None = None, ac_max_iter: int = 5, **highs_options) -> Results:
    """Solve a built model with HiGHS and return its :class:`Results` (whatever the status:
    check ``res.status`` and ``res.has_solution``).

    ``prices``: add nodal prices (DLMPs), line shadow prices and the marginal value of
    flexibility per bus (:mod:`flexplan.prices`) as ``res.tables["nodal_prices"]``,
    ``res.tables["line_prices"]`` and ``res.extra["prices"]``: one more LP solve (with the
    integer decisions fixed and the network's implied flow bounds freed).  Off by default in
    the API; ``flexplan solve`` computes them unless ``--no-prices``.

    ``start``: a MIP start, variable (or variable name) -> value, e.g. another plan's decisions
    (:func:`decision_values`); HiGHS completes the rest.  A good start lets branch and bound
    prune from the first node (the framework comparison starts each framework from the
    reinforce-only plan).

    The ``branchflow`` formulation's cones are refined by cuts after the solve
    (:func:`flexplan.acfeasible.refine_cones`; ``res.extra["cones"]``).  ``ac``: ``"check"``
    replays the plan in pandapower's AC power flow, ``"ensure"`` also corrects and re-solves until
    the plan holds in AC and its cost has settled (a lossless model gets the AC losses of its
    plan as loads; both get margins where AC still breaks a limit:
    :func:`flexplan.acfeasible.make_ac_feasible`);
    the outcome is in ``res.extra["ac_check"]`` (and ``ac_check.json`` / ``.csv`` when written),
    with the plan's gap to the lower bound on any AC-feasible plan.  ``flexplan solve`` uses
    ``"ensure"``."""
    if ac not in (None, "check", "ensure"):
        raise ValueError(f"ac must be None, 'check' or 'ensure', got {ac!r}")
    opts = SolveOptions(time_limit=time_limit, mip_gap=mip_gap, threads=threads, verbose=verbose, extra=highs_options)
    with cyclic_gc_paused():
        from .acfeasible import make_ac_feasible, network_block, refine_cones, set_hard_limits, solve_branchflow
        from .solve import NO_PLAN_STATUSES

        def first_solve():
            if network_block(pm) is not None:  # branch-flow: the LP relaxation's planes before the MIP
                return solve_branchflow(pm, opts, progress=progress, start=start)
            return solve_model(pm.model, opts, progress=progress, start=start)

        # a plan that holds in AC is asked for: no violation bought at a penalty (the slacks' own
        # bounds are given back to the caller's model at the end)
        user_pm = pm
        hard = ac == "ensure" and pm.recipe.formulation != "lindist3flow" and set_hard_limits(pm, True) > 0
        outcome = first_solve()
        hard_note = None
        if hard and outcome.status in NO_PLAN_STATUSES:
            relax = getattr(network_block(pm), "_lp_relaxation", None)
            hard_note = (f"HiGHS finds no plan with the limits hard ({outcome.status})" +
                         (f", although their LP relaxation solved ({relax:,.2f} EUR): branch and bound may have "
                          "failed numerically" if relax is not None else "") +
                         "; solved again with the soft limits (their penalties show where; the AC loop checks "
                         "the plan)")
            if progress:
                progress(f"  {hard_note}")
            set_hard_limits(pm, False)
            hard = False
            outcome = first_solve()
        cones = res = report = table = None
        if pm.recipe.formulation == "lindist3flow":  # the AC check in three phases (no correction loop yet)
            res = collect(pm, outcome)
            if ac is not None and outcome.has_solution:
                from .threephase import check_ac_3ph

                table, report = check_ac_3ph(pm, res, progress=progress)
                if ac == "ensure":
                    report["note"] = ("three-phase plans are checked in runpp_3ph, not corrected: the correction "
                                      "loop is balanced only")
        elif outcome.has_solution and outcome.status != "interrupted":
            outcome, cones = refine_cones(pm, outcome, progress=progress, mip_gap=mip_gap)
            if ac is not None and outcome.has_solution and outcome.status != "interrupted":
                outcome, res, report, table = make_ac_feasible(pm, outcome, ensure=ac == "ensure",
                                                               max_iter=ac_max_iter, progress=progress,
                                                               mip_gap=mip_gap, hard=hard)
                report["hard_limits"] = hard
                if hard_note:
                    report["hard_limits_note"] = hard_note
        if res is None or not outcome.has_solution:
            res = collect(pm, outcome)
        if cones is not None:
            res.extra["cones"] = cones
        if hard:
            set_hard_limits(user_pm, False)
        if report is not None:
            pm = report.pop("model", pm)  # a lossless model is built again at each correction
            res.extra["ac_check"] = report
            res.tables["ac_check"] = table
        session = outcome.session
        if prices and session is not None and outcome.has_solution and (session.n_int or outcome.status == "optimal"):
            import time

            from .prices import nodal_prices

            t0 = time.perf_counter()
            if progress and session.n_int:
                progress("prices: re-solving the LP with the integer decisions fixed")
            try:
                out = nodal_prices(pm, session, outcome.objective)
            except SolverError as e:  # the plan stands; only its prices are missing, and why
                out = {"summary": {"error": str(e)}}
                if progress:
                    progress(f"prices: not computed: {e}")
            for k in ("nodal_prices", "line_prices"):
                if k in out:
                    res.tables[k] = out[k]
            if "summary" in out:
                res.extra["prices"] = out["summary"]
            res.timings_s["prices"] = time.perf_counter() - t0
        return res


def decision_values(pm: PlanningModel) -> dict:
    """The values of the decisions of a solved model (what ``hub.decide`` declared: builds,
    contracted MW...), by variable name: a MIP start for another model of the same instance."""
    return {v.name: v.value for vs in pm.hub.decisions.values() for v in vs if v.value is not None}


__all__ = ["decision_values", "load_instance", "build_model", "solve", "Results", "Instance", "PlanningModel", "Recipe",
           "resolve_recipe", "SolveOptions", "solve_model", "collect", "FlexplanError", "InstanceError",
           "RecipeError", "SolverError", "release_memory", "__version__"]
