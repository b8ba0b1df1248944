"""An LV grid's supply voltage as the MV grid above it gives it (docs/formulation.md §10): the
pricing side of a region's decomposition (:mod:`flexplan.region`).

The LV grid's slack bus is the MV bus its transformer hangs from.  Its squared voltage is
v₀ + δ(t) per op (v₀ = vm_pu² of the instance's slack, δ(t) from the MV plan), which the
``lindistflow`` formulation adds to every voltage drop from the slack
(:attr:`flexplan.hub.Hub.supply_dv`).  ``dv`` None: δ = 0, the LV grid supplied at v₀.  The data
come from ``inst.sections["lv_supply"]`` (:class:`LVSupply`), set by
:func:`flexplan.region.price_grid`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo

from ..errors import RecipeError
from . import BlockSpec, register_block


@dataclass
class LVSupply:
    """``dv``: per op, the supply's squared voltage less the slack's (pu²), or None (0)."""

    dv: np.ndarray | None = None


@dataclass
class LVSupplyConfig:
    """No options: :func:`flexplan.region.price_grid` sets the data."""


def add_lv_supply(b, inst, ix, hub, cfg: LVSupplyConfig) -> None:
    data = inst.sections.get("lv_supply")
    if not isinstance(data, LVSupply):
        raise RecipeError("block 'lv_supply' is the supply voltage of a region's LV grid, set by "
                          "flexplan.region.price_grid; it cannot be used in a recipe file")
    net = inst.network
    if len(net.slack) != 1:
        raise RecipeError("lv_supply: an LV grid has one supply point (one slack bus)")
    bus = int(net.slack["bus"].iloc[0])
    T = range(ix.n_ops)
    dv = np.zeros(ix.n_ops) if data.dv is None else np.asarray(data.dv, dtype=float)
    if dv.shape != (ix.n_ops,):
        raise RecipeError(f"lv_supply: {dv.shape} supply voltages for {ix.n_ops} operating points")
    b.dv = pyo.Var(T, initialize=lambda _, t: float(dv[t]))
    for t in T:
        b.dv[t].fix(float(dv[t]))
    hub.supply_dv[bus] = [b.dv[t] for t in T]


register_block(BlockSpec("lv_supply", add_lv_supply, LVSupplyConfig,
                         doc="an LV grid's supply voltage decided with the MV grid (region pricing)"))
