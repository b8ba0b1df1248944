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

from .blocks import BLOCKS, FORMULATIONS, _load_all, make_config
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

    def cost_weight(self, term) -> float:
        node = self.index.nodes[term.node]
        if term.year is None:
            return node.prob
        return node.prob * self.index.year_weight[(term.node, term.year)]


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


def check_recipe(recipe: Recipe) -> None:
    """Refuse a recipe with unknown blocks or unmet requirements, naming what is missing."""
    _load_all()
    unknown = [b for b in recipe.blocks if b not in BLOCKS]
    if unknown:
        raise RecipeError(f"{recipe.source}: unknown block(s) {', '.join(unknown)}; available: {', '.join(sorted(BLOCKS))}")
    if len(set(recipe.blocks)) != len(recipe.blocks):
        raise RecipeError(f"{recipe.source}: a block is listed twice in {recipe.blocks}")
    if recipe.formulation not in FORMULATIONS:
        raise RecipeError(f"{recipe.source}: unknown network formulation '{recipe.formulation}'; available: "
                          f"{', '.join(sorted(FORMULATIONS))}")
    specs = [BLOCKS[b] for b in recipe.blocks] + [FORMULATIONS[recipe.formulation]]
    provided = {p for s in specs for p in s.provides}
    for i, s in enumerate(specs):
        missing = [r for r in s.requires if r not in provided]
        if missing:
            raise RecipeError(f"{recipe.source}: block '{s.name}' requires {', '.join(missing)}, which no block of "
                              f"this recipe provides (blocks: {', '.join(recipe.blocks)}); add a block that "
                              f"provides it or remove '{s.name}'")
        before = {p for t in specs[:i] for p in t.provides}
        late = [r for r in s.requires if r not in before]
        if late:
            who = next(t.name for t in specs if late[0] in t.provides)
            raise RecipeError(f"{recipe.source}: block '{s.name}' needs '{who}' (for {late[0]}) to be built before it; "
                              f"list '{who}' earlier in 'blocks' {recipe.blocks}")


def build_model(instance: Instance | str | Path, recipe: str | Path | Recipe | dict = "reinforce_only",
                index: ModelIndex | None = None, corrections: dict | None = None) -> PlanningModel:
    """Assemble the Pyomo model of ``instance`` under ``recipe``.  ``corrections`` (from
    :func:`flexplan.acpf.ac_corrected_plan`): per (bus, op) extra fixed withdrawals ``p_mw``,
    ``q_mvar`` (AC losses) and a raise of the lower voltage limit ``v_margin_pu``."""
    timings = {}
    t0 = time.perf_counter()
    if not isinstance(instance, Instance):
        instance = load_instance(resolve_instance_path(instance))
        timings["load"] = time.perf_counter() - t0
    recipe = resolve_recipe(recipe)
    check_recipe(recipe)
    if instance.ev_fleets and "ev_fleet" not in recipe.blocks:
        raise RecipeError(f"{recipe.source}: instance '{instance.name}' has EV fleets "
                          f"({', '.join(f.name for f in instance.ev_fleets)}) but the recipe has no 'ev_fleet' block, "
                          "so their charging would be ignored; add \"ev_fleet\" to 'blocks' (mode = \"uncontrolled\" "
                          "for no flexibility)")
    with cyclic_gc_paused():
        t1 = time.perf_counter()
        ix = index if index is not None else deterministic_index(instance)
        hub = Hub(instance.network.n_buses, ix.n_ops)
        hub.required = {r for b in recipe.blocks for r in BLOCKS[b].requires}
        m = pyo.ConcreteModel(name=f"{instance.name}:{recipe.name}")
        pm = PlanningModel(m, instance, ix, hub, recipe, timings=timings)
        for name in recipe.blocks:
            spec = BLOCKS[name]
            cfg = make_config(spec, recipe.options.get(name, {}), f"{recipe.source} [{name}]")
            blk = pyo.Block(concrete=True)
            m.add_component(name, blk)
            spec.add(blk, instance, ix, hub, cfg)
            pm.blocks[name] = (spec, blk)
        if corrections is not None:
            if corrections.get("n_ops") != ix.n_ops:
                raise RecipeError(f"AC corrections for {corrections.get('n_ops')} operating points, the model has "
                                  f"{ix.n_ops}")
            hub.p_withdraw += corrections["p_mw"]
            hub.q_withdraw += corrections["q_mvar"]
            hub.v_margin = corrections["v_margin_pu"]
        spec = FORMULATIONS[recipe.formulation]
        cfg = make_config(spec, recipe.options.get("network", {}), f"{recipe.source} [network]")
        blk = pyo.Block(concrete=True)
        m.add_component("network", blk)
        spec.add(blk, instance, ix, hub, cfg)
        pm.blocks["network"] = (spec, blk)
        m.objective = pyo.Objective(expr=sum(pm.cost_weight(term) * term.expr for term in hub.costs
                                             if not isinstance(term.expr, (int, float)) or term.expr),
                                    sense=pyo.minimize)
    gc.freeze()
    timings["build"] = time.perf_counter() - t1
    return pm
