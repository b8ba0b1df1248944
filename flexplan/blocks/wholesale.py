"""Wholesale block: an aggregator stacks market value on the EV fleets (docs/formulation.md §8.4).

An aggregator runs the fleets of the ``ev_fleet`` block in the wholesale market and sells a
system service on top.  It reads the fleets' battery states from the channel ``ev_storage``
(per fleet, bus and op: charging and discharging in MW on the grid side) and prices them:

* **Energy at day-ahead prices** (cost category ``market_energy``, EUR in each modelled year,
  per tree node):

      market_energy(n, y) = Σ_{states s at (n, y)} π(h_s) · w_d Δt · (charge_s − discharge_s)

  with π(h) the day-ahead price of step h of the day (EUR/MWh, the same every day and year;
  negative prices pay for charging) and w_d Δt the hours per year the state's op stands for.
  V2G export earns the same price.
* **Upward frequency reserve** (cost category ``market_reserve``, a revenue, so negative): in
  the steps of the day listed in ``reserve_hours`` the fleet sells r_s MW of availability,
  what it can stop charging on request:

      0 ≤ r_s ≤ charge_s,     market_reserve(n, y) = − ρ · Σ_s w_d Δt · r_s

  with ρ the availability price (EUR per MW and hour).  Only charging counts: a V2G state's
  headroom to discharge more is not offered (conservative).  The energy of activations is not
  modelled (a fast, rarely called service such as Dynamic Containment moves little energy).
  Upward reserve only ever lowers the load at the bus, so it needs no network constraint:
  the planned charging is the worst case the DSO must carry.
  With ``reserve_eur_per_mw_h = 0`` the block adds no reserve variable.

A charge that is a number (``ev_fleet.mode = "uncontrolled"`` or ``"tariff"``) is still priced;
its reserve variable is then bounded by that number.  A scenario tree may scale both prices
per node with ``[tree] factors = {wholesale_prices = [...]}`` (the block's ``uncertain`` trait).

**No double counting.**  The ``tariffs`` block bills the owners for the same energy in the
category ``ev_energy``.  A recipe prices the fleets' energy either at the owners' retail tariff
(``tariffs``) or at the aggregator's day-ahead prices (``wholesale``), not both; the block does
not check this.

Reported: a ``market`` table (per fleet, bus, node, year, day and step: charge, discharge,
reserve in MW, the day-ahead and reserve prices) and a ``market`` summary section with, per node
and modelled year, the energy cost, the reserve revenue (EUR/yr) and the reserve held (MWh/yr,
MW × hours, weighted by the day weights).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from numbers import Number

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from ..errors import RecipeError
from . import BlockSpec, register_block
from .linear import Affine, affine
from .rows import add_rows

#: EUR/MWh per hour of the day (0:00-1:00 first): an illustrative mean daily shape of the German
#: (DE-LU) day-ahead price in 2023: night trough, morning and evening peaks, a solar dip at midday.
#: Its mean, 95.2 EUR/MWh, is the 2023 German base price (FfE, "German electricity prices on EPEX
#: Spot 2023", from EPEX Spot data); the hourly figures are this block's assumption of the shape,
#: not values read from ENTSO-E or EPEX [check].
DAY_AHEAD_2023_DE = (87.0, 83.0, 81.0, 79.0, 80.0, 85.0, 99.0, 112.0, 113.0, 103.0, 91.0, 82.0,
                     77.0, 75.0, 79.0, 87.0, 100.0, 117.0, 128.0, 126.0, 113.0, 102.0, 97.0, 89.0)
GBP = 1.16  # EUR per GBP, ECB 2021 average reference rate (the project's conversion, as in contracts.py)


def _finite(x) -> bool:
    return isinstance(x, Number) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class WholesaleConfig:
    """Options of the ``wholesale`` block.

    * ``day_ahead_eur_per_mwh``: the day-ahead price per step of the day (EUR/MWh; may be
      negative), the same every day and year; its length must be the instance's steps per day.
      Default (none given, or an empty list): :data:`DAY_AHEAD_2023_DE`, 24 hourly prices
      with the mean of the 2023 German base price, 95.2 EUR/MWh (FfE, from EPEX Spot data),
      in an assumed daily shape [check]; an instance whose day is not 24 steps must give its
      own series.
    * ``reserve_eur_per_mw_h``: availability price of upward frequency reserve (EUR per MW and
      hour, >= 0).  Default 5.8: 5 GBP/MW/h, where UK Dynamic Containment Low (low-frequency:
      a cut in demand) cleared after the market saturated in early 2023 (Modo Energy, "Dynamic
      Containment Low: what's setting post-saturation prices?", 10 Mar 2023), at 1.16 EUR/GBP
      [check]; 0 sells no reserve.
    * ``reserve_hours``: the steps of the day (0..steps−1) in which reserve may be sold
      (default, or an empty list: all; sell none with ``reserve_eur_per_mw_h = 0``).
    """

    day_ahead_eur_per_mwh: list[float] = field(default_factory=list)
    reserve_eur_per_mw_h: float = 5.0 * GBP
    reserve_hours: list[int] = field(default_factory=list)

    def validate(self):
        bad = [p for p in self.day_ahead_eur_per_mwh if not _finite(p)]
        if bad:
            return f"wholesale.day_ahead_eur_per_mwh must be finite numbers (EUR/MWh), got {bad[0]!r}"
        if not _finite(self.reserve_eur_per_mw_h) or self.reserve_eur_per_mw_h < 0:
            return f"wholesale.reserve_eur_per_mw_h must be a number >= 0, got {self.reserve_eur_per_mw_h!r}"
        bad = [h for h in self.reserve_hours if isinstance(h, bool) or not isinstance(h, int) or h < 0]
        if bad:
            return f"wholesale.reserve_hours must be steps of the day (whole numbers >= 0), got {bad[0]!r}"

    def prices(self, steps: int) -> np.ndarray:
        """EUR/MWh per step of the day; ``RecipeError`` if the series does not fit the day."""
        if not self.day_ahead_eur_per_mwh:
            if steps != len(DAY_AHEAD_2023_DE):
                raise RecipeError(f"wholesale.day_ahead_eur_per_mwh: the default series has "
                                  f"{len(DAY_AHEAD_2023_DE)} hourly prices but the instance's day has {steps} steps; "
                                  f"give {steps} prices (EUR/MWh, one per step of the day)")
            return np.asarray(DAY_AHEAD_2023_DE, dtype=float)
        if len(self.day_ahead_eur_per_mwh) != steps:
            raise RecipeError(f"wholesale.day_ahead_eur_per_mwh has {len(self.day_ahead_eur_per_mwh)} prices, the "
                              f"instance's day has {steps} steps (one price per step, EUR/MWh)")
        return np.asarray(self.day_ahead_eur_per_mwh, dtype=float)

    def reserve_steps(self, steps: int) -> set[int]:
        """The steps of the day in which reserve may be sold; ``RecipeError`` outside 0..steps−1."""
        if not self.reserve_hours:
            return set(range(steps))
        bad = [h for h in self.reserve_hours if not 0 <= h < steps]
        if bad:
            raise RecipeError(f"wholesale.reserve_hours: {bad[0]} is not a step of the instance's day "
                              f"(0..{steps - 1})")
        return set(self.reserve_hours)


def add_wholesale(b, inst, ix, hub, cfg: WholesaleConfig) -> None:
    price = cfg.prices(ix.hours)
    allowed = cfg.reserve_steps(ix.hours)
    states = hub.get("ev_storage").states
    hours = ix.op_hours()  # hours per year each op stands for (w_d Δt)
    factor = ix.op_factor("wholesale_prices")  # a scenario tree's price multiplier per node (1 otherwise)
    rho = float(cfg.reserve_eur_per_mw_h)

    def node_year(op):
        return ix.node_names[ix.op_node[op]], int(ix.op_year[op])

    # energy: Σ π(h) · hours · (charge − discharge) per (node, year), as one flat expression
    energy = defaultdict(Affine)
    for s in states:
        w = float(price[ix.op_hour[s.op]] * hours[s.op] * factor[s.op])
        out = energy[node_year(s.op)]
        affine(s.charge, w, out)
        affine(s.discharge, -w, out)
    # reserve: one variable per state in an allowed step that can charge
    res = []  # (state index, upper bound or None)
    if rho > 0:
        for k, s in enumerate(states):
            if int(ix.op_hour[s.op]) not in allowed:
                continue
            if isinstance(s.charge, Number):
                if s.charge > 0:
                    res.append((k, float(s.charge)))
            else:
                res.append((k, None))
    b._market = dict(states=states, price=price, factor=factor, rho=rho, reserve=[k for k, _ in res])
    R = range(len(res))
    if res:
        b.reserve = pyo.Var(R, bounds=lambda _, i: (0.0, res[i][1]))
        var = [i for i in R if res[i][1] is None]

        def cap(i):  # r − charge ≤ 0, the charge's constant moved to the right-hand side
            a = affine(states[res[i][0]].charge)
            return [1.0] + [-c for c in a.coefs], [b.reserve[i], *a.vars], None, a.const

        add_rows(b, "reserve_cap", var, cap)
    revenue = defaultdict(Affine)
    for i, (k, _) in enumerate(res):
        op = states[k].op
        revenue[node_year(op)].term(-rho * float(hours[op] * factor[op]), b.reserve[i])
    for (node, year), a in energy.items():
        hub.cost("market_energy", node, a.expr() if a.vars else a.const, year=year)
    for (node, year), a in revenue.items():
        hub.cost("market_reserve", node, a.expr(), year=year)


def _value(x) -> float:
    return float(x) if isinstance(x, Number) else float(pyo.value(x))


def extract_wholesale(b, inst, ix) -> dict:
    """The ``market`` table (per state) and the ``market`` summary section (per node and year)."""
    info = b._market
    states, price, factor, rho = info["states"], info["price"], info["factor"], info["rho"]
    reserve = np.zeros(len(states))
    for i, k in enumerate(info["reserve"]):
        reserve[k] = pyo.value(b.reserve[i])
    hours = ix.op_hours()
    names = inst.network.buses["name"].astype(str).tolist()
    rows = []
    for k, s in enumerate(states):
        o = s.op
        rows.append(dict(fleet=s.fleet, bus=names[s.bus], node=ix.node_names[ix.op_node[o]], year=int(ix.op_year[o]),
                         day=ix.days[ix.op_day[o]], hour=int(ix.op_hour[o]), charge_mw=_value(s.charge),
                         discharge_mw=_value(s.discharge), reserve_mw=float(reserve[k]),
                         price_eur_per_mwh=float(price[ix.op_hour[o]] * factor[o]),
                         reserve_eur_per_mw_h=float(rho * factor[o]), _h=float(hours[o])))
    cols = ["fleet", "bus", "node", "year", "day", "hour", "charge_mw", "discharge_mw", "reserve_mw",
            "price_eur_per_mwh", "reserve_eur_per_mw_h"]
    df = pd.DataFrame(rows, columns=cols + ["_h"])
    years = []
    for (node, year), g in df.groupby(["node", "year"], sort=False):
        h = g["_h"]
        charged = float((g["charge_mw"] * h).sum())
        energy_cost = float((g["price_eur_per_mwh"] * (g["charge_mw"] - g["discharge_mw"]) * h).sum())
        years.append(dict(node=node, year=int(year), energy_cost_eur_per_year=energy_cost,
                          reserve_revenue_eur_per_year=float((g["reserve_eur_per_mw_h"] * g["reserve_mw"] * h).sum()),
                          reserve_mwh_per_year=float((g["reserve_mw"] * h).sum()),
                          charged_mwh_per_year=charged, discharged_mwh_per_year=float((g["discharge_mw"] * h).sum())))
    summary = dict(reserve_eur_per_mw_h=rho, day_ahead_mean_eur_per_mwh=float(np.mean(price)), years=years)
    return {"market": df[cols], "summary": {"market": summary}}


register_block(BlockSpec("wholesale", add_wholesale, WholesaleConfig, requires=("ev_storage",),
                         extract=extract_wholesale, doc=__doc__, uncertain=("wholesale_prices",)))
