"""build_model(instance, recipe): index -> blocks in order -> network -> objective.

The objective is  min Σ_terms π_n · w · cost,  with w = 1 for costs a block already
discounted (investments) and w = the (node, year) discount weight of the index for
costs paid in a year (docs/formulation.md §1).
"""
from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyomo.environ as pyo

from .blocks import BLOCKS, FORMULATIONS, _load_all, make_config, order_blocks
from .errors import RecipeError
from .hub import Hub
from .index import ModelIndex, deterministic_index
from .instance import Instance, load_instance
from .paths import resolve_instance_path
from .recipe import Recipe, resolve_recipe


@dataclass
class PlanningModel:
    """A built model with everything needed to solve it and read its results."""

    model: pyo.ConcreteModel
    instance: Instance
    index: ModelIndex
    hub: Hub
    recipe: Recipe
    blocks: dict = field(default_factory=dict)  # name -> (spec, pyomo block)
    timings: dict = field(default_factory=dict)

    def to_pyomo(self) -> pyo.ConcreteModel:
        """The whole model as Pyomo components: the row families (:mod:`flexplan.blocks.rows`,
        kept as flat arrays for speed) become the ``pyo.Constraint`` they stand for, in place
        and once, so that any Pyomo solver or writer (``model.write("plan.lp")``,
        ``SolverFactory("appsi_highs")``, Gurobi...) sees every row.  :func:`flexplan.solve`
        keeps working on it (through Pyomo's compiler, more slowly).  Returns ``self.model``."""
        from .blocks.rows import materialize_rows

        materialize_rows(self.model)
        return self.model

    def cost_weight(self, term) -> float:
        node = self.index.nodes[term.node]
        if term.year is None:
            return node.prob
        return node.prob * self.index.year_weight[(term.node, term.year)]


def set_objective(pm, weight=None) -> None:
    """(Re)build ``pm``'s objective: Σ over the hub's cost terms of ``weight(term)`` (default
    1) x the term's probability and discount weight x its expression.  Terms over array
    variables (:class:`flexplan.blocks.arrays.ArrayExpr`) go to HiGHS as a cost vector, not
    through Pyomo (they join the Pyomo objective with ``to_pyomo()``)."""
    from .blocks.arrays import ArrayExpr, as_pyomo, registry

    m = pm.model
    reg = registry(m, create=False)
    materialized = reg is not None and reg.materialized
    w = (lambda term: pm.cost_weight(term)) if weight is None else (lambda term: weight(term) * pm.cost_weight(term))
    pyomo_terms, array_terms = [], []
    for term in pm.hub.costs:
        e = term.expr
        if isinstance(e, (int, float)):
            if e:
                pyomo_terms.append(w(term) * e)
        elif isinstance(e, ArrayExpr) and not materialized:
            array_terms.append((w(term), e))
        else:
            pyomo_terms.append(w(term) * as_pyomo(e))
    if m.component("objective") is not None:
        m.del_component("objective")
    m.objective = pyo.Objective(expr=sum(pyomo_terms), sense=pyo.minimize)
    if reg is not None:
        reg.objective = array_terms


@contextmanager
def cyclic_gc_paused():
    """Pause Python's cyclic garbage collector.  Building a Pyomo model creates millions of
    container objects and no garbage cycles; with the collector on, its repeated scans of
    the growing model took 55-65 % of the build time (benchmarks/README.md)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def release_memory() -> None:
    """Let the cyclic collector reclaim models built earlier in this process.

    :func:`build_model` moves the finished model out of the collector's reach
    (``gc.freeze``), so that later collections do not rescan it; a long-running process that
    builds many models (a sweep) calls this after dropping the ones it no longer needs."""
    gc.unfreeze()
    gc.collect()


def check_recipe(recipe: Recipe) -> list[str]:
    """Refuse a recipe with unknown blocks or impossible channels, naming what is wrong; return
    the build order of its blocks (:func:`flexplan.blocks.order_blocks`)."""
    _load_all()
    unknown = [b for b in recipe.blocks if b not in BLOCKS]
    if unknown:
        raise RecipeError(f"{recipe.source}: unknown block(s) {', '.join(unknown)}; available: {', '.join(sorted(BLOCKS))}")
    if len(set(recipe.blocks)) != len(recipe.blocks):
        raise RecipeError(f"{recipe.source}: a block is listed twice in {recipe.blocks}")
    if recipe.formulation not in FORMULATIONS:
        raise RecipeError(f"{recipe.source}: unknown network formulation '{recipe.formulation}'; available: "
                          f"{', '.join(sorted(FORMULATIONS))}")
    net = FORMULATIONS[recipe.formulation]
    order = order_blocks(list(recipe.blocks), recipe.source, also_read=net.reads())
    missing = [c for c in net.requires if not any(c in BLOCKS[b].writes() for b in recipe.blocks)]
    if missing:
        who = sorted({b for c in missing for b, t in BLOCKS.items() if c in t.writes()})
        raise RecipeError(f"{recipe.source}: the network formulation '{net.name}' requires {', '.join(missing)}, which "
                          f"no block of this recipe provides (blocks: {', '.join(recipe.blocks)}); add "
                          f"{' or '.join(repr(w) for w in who)} to 'blocks'")
    return order


def build_model(instance: Instance | str | Path, recipe: str | Path | Recipe | dict = "reinforce_only",
                index: ModelIndex | None = None, corrections: dict | None = None,
                extra_functionality=None) -> PlanningModel:
    """Assemble the Pyomo model of ``instance`` under ``recipe``.

    The recipe's blocks are built in the order their channels impose (a provider before its
    readers; otherwise the recipe's order), then the network formulation, then
    ``extra_functionality(pm)`` if given: a function of the user's that adds variables and
    constraints to ``pm.model`` (e.g. a limit on total contracted flexibility) and cost terms
    with ``pm.hub.cost(...)`` before the objective is formed, like PyPSA's hook of that name.
    ``corrections`` (from :func:`flexplan.acpf.ac_corrected_plan`): per (bus, op) extra fixed
    withdrawals ``p_mw``, ``q_mvar`` (AC losses) and a raise of the lower voltage limit
    ``v_margin_pu``."""
    timings = {}
    t0 = time.perf_counter()
    if not isinstance(instance, Instance):
        instance = load_instance(resolve_instance_path(instance))
        timings["load"] = time.perf_counter() - t0
    recipe = resolve_recipe(recipe)
    order = check_recipe(recipe)
    if instance.ev_fleets and "ev_fleet" not in recipe.blocks:
        raise RecipeError(f"{recipe.source}: instance '{instance.name}' has EV fleets "
                          f"({', '.join(f.name for f in instance.ev_fleets)}) but the recipe has no 'ev_fleet' block, "
                          "so their charging would be ignored; add \"ev_fleet\" to 'blocks' (mode = \"uncontrolled\" "
                          "for no flexibility)")
    with cyclic_gc_paused():
        t1 = time.perf_counter()
        ix = index if index is not None else deterministic_index(instance)
        hub = Hub(instance.network.n_buses, ix.n_ops)
        net_spec = FORMULATIONS[recipe.formulation]
        hub.read = {c for b in recipe.blocks for c in BLOCKS[b].reads()} | set(net_spec.reads())
        m = pyo.ConcreteModel(name=f"{instance.name}:{recipe.name}")
        pm = PlanningModel(m, instance, ix, hub, recipe, timings=timings)
        configs = {name: make_config(BLOCKS[name], recipe.options.get(name, {}), f"{recipe.source} [{name}]")
                   for name in order}
        for name in order:
            spec = BLOCKS[name]
            blk = pyo.Block(concrete=True)
            m.add_component(name, blk)
            hub.block = spec
            spec.add(blk, instance, ix, hub, configs[name])
            pm.blocks[name] = (spec, blk)
        if corrections is not None:
            if corrections.get("n_ops") != ix.n_ops:
                raise RecipeError(f"AC corrections for {corrections.get('n_ops')} operating points, the model has "
                                  f"{ix.n_ops}")
            hub.p_withdraw += corrections["p_mw"]
            hub.q_withdraw += corrections["q_mvar"]
            hub.v_margin = corrections.get("v_margin_pu")
        cfg = make_config(net_spec, recipe.options.get("network", {}), f"{recipe.source} [network]")
        blk = pyo.Block(concrete=True)
        m.add_component("network", blk)
        hub.block = net_spec
        net_spec.add(blk, instance, ix, hub, cfg)
        pm.blocks["network"] = (net_spec, blk)
        hub.block = None
        if extra_functionality is not None:
            extra_functionality(pm)
        set_objective(pm)
        from .blocks.rows import _pyomo_rows, materialize_rows

        if _pyomo_rows():  # every row and variable a Pyomo component from the start (debugging, tests)
            materialize_rows(m)
    gc.freeze()
    timings["build"] = time.perf_counter() - t1
    return pm
