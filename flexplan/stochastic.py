"""Multi-stage stochastic planning on a scenario tree (docs/formulation.md §1).

:func:`solve_stochastic` solves the **extensive form** (the recourse problem, RP): one model
over all tree nodes, whose investments and contracts are indexed by node, so that a
decision taken at a node is the same for every scenario through it (non-anticipativity by
construction), and whose objective is the expected cost Σ_n π_n · cost_n.  Around it, on
request (``metrics``):

* ``vss`` — the value of the stochastic solution: solve the expected-value problem (EV: one
  chain whose multipliers are the probability-weighted means of each stage's nodes), fix its
  first-stage decisions (the root's investments and contracts) in the tree model and
  re-solve (EEV); VSS = EEV − RP.
* ``evpi`` — the expected value of perfect information: solve each scenario's path alone
  (wait-and-see, WS_s); EVPI = RP − Σ_s p_s WS_s.
* ``option`` — the option value of flexibility: the same tree with every EV fleet
  uncontrolled (the recipe's reference, :func:`flexplan.value.reference_recipe`);
  option value = E[cost | flexibility forbidden] − E[cost | flexibility allowed].

All three are ≥ 0 at optimality; with a MIP gap each solve is only known within its gap,
so the summary gives every objective with its dual bound and the gap used.

Outputs (added to the RP's :class:`~flexplan.results.Results`): the table ``decisions``
(per node: stage, probability, multipliers, what is built and contracted there, the node's
own cost), the table ``scenarios`` (per scenario: probability, path, cost of the
stochastic plan in that scenario, its wait-and-see cost) and the ``stochastic`` section of
``summary.json``; the plot ``decision_tree.png``.
"""
from __future__ import annotations

import time
import numpy as np
import pandas as pd
import pyomo.environ as pyo

from .assemble import build_model, cyclic_gc_paused, release_memory
from .index import tree_index
from .instance import Instance, load_instance
from .instance.tree import ScenarioTree, TreeNode
from .paths import resolve_instance_path
from .recipe import resolve_recipe
from .results import Results, collect
from .solve import SolveOptions, solve_model
from .value import reference_recipe

METRICS = ("vss", "evpi", "option")


def _solve(pm, opts: SolveOptions, progress) -> Results:
    with cyclic_gc_paused():
        return collect(pm, solve_model(pm.model, opts, progress=progress))


def expected_value_tree(tree: ScenarioTree, fleets=()) -> ScenarioTree:
    """One chain whose node at stage k carries the probability-weighted mean of the
    multipliers of the tree's stage-k nodes (the root keeps its name, the others are
    ``<root>_ev<k>``)."""
    by_stage: dict[int, list[TreeNode]] = {}
    for n in tree.nodes:
        by_stage.setdefault(n.stage, []).append(n)
    names = sorted({k for n in tree.nodes for k in n.ev_factor} | set(fleets) | {"*"})
    out, parent = [], None
    for k in sorted(by_stage):
        nodes = by_stage[k]
        p = np.array([tree.prob(n.name) for n in nodes])
        p = p / p.sum()
        ev = {f: float(sum(pi * n.ev(f) for pi, n in zip(p, nodes))) for f in names}
        name = tree.root.name if k == 0 else f"{tree.root.name}_ev{k}"
        out.append(TreeNode(name, parent, k, 1.0, ev, float(sum(pi * n.demand_factor for pi, n in zip(p, nodes))),
                            float(sum(pi * n.price_factor for pi, n in zip(p, nodes))), branch="expected"))
        parent = name
    return ScenarioTree(tuple(out), branching=tuple(1 for _ in out[1:]))


def scenario_costs(res: Results, tree: ScenarioTree) -> pd.Series:
    """Cost (EUR, present value) of the solved plan in each scenario: the sum of the costs of
    the nodes on its path, each without its probability."""
    prob = {n.name: tree.prob(n.name) for n in tree.nodes}
    per_node = res.costs.groupby("node")["pv_eur"].sum()
    own = {n: float(per_node.get(n, 0.0)) / prob[n] for n in prob}
    return pd.Series({leaf.name: sum(own[n.name] for n in tree.path(leaf.name)) for leaf in tree.leaves})


def _decision_values(pm) -> dict[str, list[tuple[object, float]]]:
    return {n: [(v, float(pyo.value(v))) for v in vs] for n, vs in pm.hub.decisions.items()}


def _other_decisions(pm, node: str) -> str:
    """What the other blocks decided at ``node`` (their variables declared with ``hub.decide``,
    nonzero ones: a battery's kWh, say), as ``name=value``: the table needs no block's names."""
    own = {"reinforcement", "contracts"}  # builds and contracted MW have their own columns
    out = []
    for v in pm.hub.decisions.get(node, ()):
        blk = v.parent_block()
        while blk is not None and blk.parent_block() is not None and blk.parent_block() is not pm.model:
            blk = blk.parent_block()
        if blk is not None and blk.local_name in own:
            continue
        if v.value is not None and abs(v.value) > 1e-9:
            out.append(f"{v.name}={v.value:.6g}")
    return "; ".join(out)


def decisions_table(res: Results, pm, tree: ScenarioTree) -> pd.DataFrame:
    """Per node: what is decided there (builds, contracted MW) and the node's own cost."""
    per_node = res.costs.groupby("node")["pv_eur"].sum()
    inv_cats = {"investment"}
    rows = []
    contracts = res.tables.get("contracts")
    for n in tree.nodes:
        prob = tree.prob(n.name)
        b = res.builds[res.builds["node"] == n.name] if len(res.builds) else res.builds
        inv = res.costs[(res.costs["node"] == n.name) & res.costs["category"].isin(inv_cats)]["pv_eur"].sum()
        contracted = 0.0
        if contracts is not None and len(contracts):
            c = contracts[contracts["node"] == n.name]
            contracted = float(c.groupby(["fleet", "bus"])["contracted_mw"].first().sum()) if len(c) else 0.0
        rows.append(dict(node=n.name, parent=n.parent or "", stage=n.stage, year=pm.instance.economics.stages[n.stage],
                         branch=n.branch, cond_prob=n.cond_prob, prob=prob,
                         ev_factor=";".join(f"{k}={v:g}" for k, v in sorted(n.ev_factor.items())) or "1",
                         demand_factor=n.demand_factor, price_factor=n.price_factor,
                         builds="; ".join(f"{r.asset} ({r.type}" + (f", in service {r.year})" if r.year != r.decided_year
                                                                      else ")") for r in b.itertuples()) if len(b) else "",
                         assets=", ".join(f"{r.asset}" + (f" (in service {r.year})" if r.year != r.decided_year else "")
                                          for r in b.itertuples()) if len(b) else "",
                         n_builds=int(len(b)), capex_eur=float(b["capex_eur"].sum()) if len(b) else 0.0,
                         contracted_mw=contracted,
                         other_decisions=_other_decisions(pm, n.name),
                         investment_pv_eur=float(inv) / prob,
                         node_cost_pv_eur=float(per_node.get(n.name, 0.0)) / prob))
    return pd.DataFrame(rows)


def _stage_decisions_fixed(pm, values: dict[str, float], names: list[str]):
    """Fix the decision variables of ``names`` (nodes of ``pm``) to ``values`` (by variable
    name); integers rounded.  Returns the fixed variables (to unfix)."""
    fixed = []
    for n in names:
        for v in pm.hub.decisions.get(n, []):
            x = values[v.name]
            if v.is_integer() or v.is_binary():
                x = round(x)
            lo, hi = v.lb, v.ub
            if lo is not None:
                x = max(x, lo)
            if hi is not None:
                x = min(x, hi)
            v.fix(x)
            fixed.append(v)
    return fixed


def solve_stochastic(instance: Instance | str, recipe="flex_vs_reinforce", tree: ScenarioTree | None = None,
                     metrics=METRICS, time_limit: float | None = None, mip_gap: float = 1e-4, threads: int = 0,
                     verbose: bool = False, progress=None, **highs_options) -> Results:
    """Solve the extensive form of ``instance``'s scenario tree (or ``tree``) and, for each
    of ``metrics`` (``vss``, ``evpi``, ``option``), the problems that measure it.  Returns
    the extensive form's :class:`~flexplan.results.Results` with the tables ``decisions``
    and ``scenarios`` and ``extra["stochastic"]``.  ``time_limit`` holds for each solve."""
    log = progress or (lambda _m: None)
    if not isinstance(instance, Instance):
        instance = load_instance(resolve_instance_path(instance))
    tree = tree if tree is not None else instance.tree
    if tree is None:
        raise ValueError(f"instance '{instance.name}' has no scenario tree: add [tree] to its instance.toml "
                         "(see flexplan/instance/tree.py) or pass tree=")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    recipe = resolve_recipe(recipe)
    opts = SolveOptions(time_limit=time_limit, mip_gap=mip_gap, threads=threads, verbose=verbose, extra=highs_options)
    scen = tree.scenarios()
    n_solves = 1 + (2 if "vss" in metrics else 0) + (len(scen) if "evpi" in metrics else 0)
    ref_recipe = reference_recipe(recipe) if "option" in metrics and instance.ev_fleets else None
    n_solves += 1 if ref_recipe is not None else 0
    step = [0]
    t_start = time.perf_counter()

    def announce(what: str) -> None:
        step[0] += 1
        log(f"[{step[0]}/{n_solves}] {what} ({time.perf_counter() - t_start:.0f} s so far)")

    def done(r: Results) -> None:
        gap = "" if r.mip_gap is None else f", gap {100 * r.mip_gap:.2f} %"
        obj = "no solution" if not r.has_solution else f"{r.objective_eur:,.0f} EUR"
        log(f"    {r.status}: {obj}{gap}")

    def summary_of(r: Results) -> dict:
        return dict(status=r.status, objective_eur=r.objective_eur, mip_gap=r.mip_gap,
                    dual_bound_eur=r.extra.get("dual_bound_eur"))

    # 1. the recourse problem (extensive form)
    announce(f"extensive form: {len(tree.nodes)} nodes, {len(scen)} scenarios")
    ix = tree_index(instance, tree)
    pm = build_model(instance, recipe, index=ix)
    log(f"    built in {pm.timings['build']:.1f} s")
    rp = _solve(pm, opts, log)
    done(rp)
    out = dict(nodes=len(tree.nodes), scenarios=len(scen), stages=tree.n_stages,
               branching=list(tree.branching) if tree.branching else None, mip_gap_requested=mip_gap,
               recourse=summary_of(rp), expected_cost_eur=rp.objective_eur)
    if not rp.has_solution:
        rp.extra["stochastic"] = out
        return rp
    costs = scenario_costs(rp, tree)
    scen_df = pd.DataFrame(dict(scenario=[s for s, _ in scen], probability=[p for _, p in scen],
                                path=[" > ".join(n.name for n in tree.path(s)) for s, _ in scen],
                                cost_eur=[costs[s] for s, _ in scen]))
    dec = decisions_table(rp, pm, tree)

    # 2. value of the stochastic solution
    if "vss" in metrics:
        announce("expected-value problem (mean multipliers per stage)")
        ev_tree = expected_value_tree(tree, [f.name for f in instance.ev_fleets])
        ev_pm = build_model(instance, recipe, index=tree_index(instance, ev_tree))
        ev = _solve(ev_pm, opts, log)
        done(ev)
        out["expected_value_problem"] = summary_of(ev)
        if ev.has_solution:
            ev_root = {v.name: x for v, x in _decision_values(ev_pm).get(tree.root.name, [])}
            ev_builds = ev.builds[ev.builds["node"] == tree.root.name] if len(ev.builds) else ev.builds
            out["expected_value_first_stage_builds"] = [f"{r.asset} ({r.type})" for r in ev_builds.itertuples()]
            del ev_pm
            announce("expected result of the expected-value plan (EEV: its first stage fixed in the tree)")
            fixed = _stage_decisions_fixed(pm, ev_root, [tree.root.name])
            eev = _solve(pm, opts, log)
            for v in fixed:
                v.unfix()
            done(eev)
            out["eev"] = summary_of(eev)
            if eev.has_solution:
                out["vss_eur"] = eev.objective_eur - rp.objective_eur
                eev_costs = scenario_costs(eev, tree)
                scen_df["eev_cost_eur"] = [eev_costs[s] for s, _ in scen]
        release_memory()

    # 3. expected value of perfect information
    if "evpi" in metrics:
        ws = []
        for s, p in scen:
            announce(f"wait-and-see: scenario {s} (p = {p:.4g})")
            spm = build_model(instance, recipe, index=tree_index(instance, tree, nodes=tree.path(s),
                                                                 unit_probability=True))
            r = _solve(spm, opts, log)
            done(r)
            ws.append(r.objective_eur if r.has_solution else np.nan)
            del spm
            release_memory()
        scen_df["wait_and_see_cost_eur"] = ws
        if np.all(np.isfinite(ws)):
            ews = float(np.dot([p for _, p in scen], ws))
            out["wait_and_see_eur"] = ews
            out["evpi_eur"] = rp.objective_eur - ews

    # 4. option value of flexibility
    if ref_recipe is not None:
        announce("the same tree with every EV fleet uncontrolled (flexibility forbidden)")
        rpm = build_model(instance, ref_recipe, index=tree_index(instance, tree))
        ref = _solve(rpm, opts, log)
        done(ref)
        out["no_flexibility"] = summary_of(ref)
        if ref.has_solution:
            out["option_value_of_flexibility_eur"] = ref.objective_eur - rp.objective_eur
            ref_costs = scenario_costs(ref, tree)
            scen_df["no_flexibility_cost_eur"] = [ref_costs[s] for s, _ in scen]
            out["no_flexibility_first_stage_builds"] = [
                f"{r.asset} ({r.type})" for r in ref.builds[ref.builds["node"] == tree.root.name].itertuples()] \
                if len(ref.builds) else []
        del rpm
        release_memory()

    out["first_stage_builds"] = [f"{r.asset} ({r.type})" for r in
                                 rp.builds[rp.builds["node"] == tree.root.name].itertuples()] if len(rp.builds) else []
    out["scenario_cost_eur"] = {r.scenario: r.cost_eur for r in scen_df.itertuples()}
    out["wall_s"] = time.perf_counter() - t_start
    rp.tables["decisions"] = dec
    rp.tables["scenarios"] = scen_df
    rp.extra["stochastic"] = out
    rp.model = f"{rp.model} (stochastic)"
    return rp
