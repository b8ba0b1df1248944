"""The LV grids of a region as the MV grid sees them (docs/formulation.md §10): each LV grid is a
convex combination of plans proposed for it (columns), the master problem of the region's
Dantzig–Wolfe decomposition (:mod:`flexplan.region`).

Each LV grid g hangs at MV bus j_g.  A column k of g is one complete plan of the LV grid (its
builds, contracts and schedules, solved by flexplan on the LV grid alone), summarised by its
cost C_gk (EUR, present value, probability-weighted: its objective) and its import at the
supply point P_gk(t), Q_gk(t) (MW, Mvar per op).  The block adds

    λ_gk ∈ [0, 1]  (binary when ``integer``),      Σ_k λ_gk = 1                 (convexity)
    I^P_g(t) − Σ_k λ_gk P_gk(t) = 0,   I^Q_g(t) − Σ_k λ_gk Q_gk(t) = 0          (linking)
    withdrawal at (j_g, t): I^P_g(t), I^Q_g(t);      cost  Σ_k λ_gk C_gk  (category ``lv_grids``)

The duals of the linking rows are the MV grid's price of the LV grid's import per op; the
convexity row's dual is what the MV grid would pay for one more plan of g.  The data come from
``inst.sections["lv_grids"]`` (:class:`LVColumns`), which :func:`flexplan.region.plan_region`
sets: the block is not meant for a recipe file.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo

from ..errors import RecipeError
from . import BlockSpec, register_block


@dataclass
class LVColumns:
    """Per LV grid: ``buses`` (its MV bus index), ``costs`` (list of C_gk, EUR), ``p`` / ``q``
    (arrays (columns, ops), MW / Mvar imported at the supply point), ``max_mva`` (bound on the
    import's magnitude in any op, from the LV grid's flow ranges); ``integer``: λ binary (the
    final plan picks one column per grid)."""

    names: list = field(default_factory=list)
    buses: list = field(default_factory=list)
    costs: list = field(default_factory=list)
    p: list = field(default_factory=list)
    q: list = field(default_factory=list)
    max_mva: list = field(default_factory=list)
    integer: bool = False
    prices: tuple | None = None  # (mu_p, mu_q) per grid: the Lagrangian MV problem (no columns, imports priced)


@dataclass
class LVGridsConfig:
    """No options: the columns come from :func:`flexplan.region.plan_region`."""


def add_lv_grids(b, inst, ix, hub, cfg: LVGridsConfig) -> None:
    data = inst.sections.get("lv_grids")
    if not isinstance(data, LVColumns):
        raise RecipeError("block 'lv_grids' stands for the LV grids of a region in the MV master problem and gets "
                          "its columns from flexplan.region.plan_region; it cannot be used in a recipe file")
    T = range(ix.n_ops)
    G = range(len(data.names))
    root = ix.root
    b.imp_p = pyo.Var(G, T, bounds=lambda _, g, t: (-data.max_mva[g], data.max_mva[g]))
    b.imp_q = pyo.Var(G, T, bounds=lambda _, g, t: (-data.max_mva[g], data.max_mva[g]))
    if data.prices is not None:  # the MV grid's part of the Lagrangian bound: imports free, priced at -mu
        mu_p, mu_q = (np.asarray(a, dtype=float) for a in data.prices)
        for g in G:
            bus = int(data.buses[g])
            hub.bound_injection(bus, float(data.max_mva[g]))
            for t in T:
                hub.inject(bus, t, p=-b.imp_p[g, t], q=-b.imp_q[g, t])
        terms = [-float(mu_p[g, t]) * b.imp_p[g, t] for g in G for t in T if mu_p[g, t]]
        terms += [-float(mu_q[g, t]) * b.imp_q[g, t] for g in G for t in T if mu_q[g, t]]
        if terms:
            hub.cost("lv_grids_price", root, pyo.quicksum(terms))
        return
    keys = [(g, k) for g in G for k in range(len(data.costs[g]))]
    b.lam = pyo.Var(keys, within=pyo.Binary if data.integer else pyo.UnitInterval)
    for g in G:
        p, q = np.asarray(data.p[g], dtype=float), np.asarray(data.q[g], dtype=float)
        if p.shape != (len(data.costs[g]), ix.n_ops) or q.shape != p.shape:
            raise RecipeError(f"lv_grids: grid {data.names[g]} has columns of shape {p.shape}, the MV model has "
                              f"{ix.n_ops} operating points (the LV and MV instances must share stages, days and tree)")
        bus = int(data.buses[g])
        hub.bound_injection(bus, float(data.max_mva[g]))
        for t in T:
            hub.inject(bus, t, p=-b.imp_p[g, t], q=-b.imp_q[g, t])
    b.convexity = pyo.Constraint(G, rule=lambda _, g: sum(b.lam[g, k] for k in range(len(data.costs[g]))) == 1)

    def link(which, arr):
        def rule(_, g, t):
            col = np.asarray(arr[g], dtype=float)[:, t]
            return (which[g, t] - sum(float(col[k]) * b.lam[g, k] for k in range(len(col)) if col[k])) == 0
        return rule

    b.link_p = pyo.Constraint(G, T, rule=link(b.imp_p, data.p))
    b.link_q = pyo.Constraint(G, T, rule=link(b.imp_q, data.q))
    hub.cost("lv_grids", root, sum(float(data.costs[g][k]) * b.lam[g, k] for g, k in keys))


def extract_lv_grids(b, inst, ix) -> dict:
    data = inst.sections["lv_grids"]
    if data.prices is not None:
        return {}
    import pandas as pd

    rows = [dict(grid=data.names[g], column=k, weight=float(b.lam[g, k].value or 0.0), cost_eur=float(data.costs[g][k]))
            for g, k in b.lam]
    return {"tables": {"lv_grid_columns": pd.DataFrame(rows)}}


register_block(BlockSpec("lv_grids", add_lv_grids, LVGridsConfig, extract=extract_lv_grids,
                         doc="the LV grids of a region as convex combinations of their plans (region master)"))
