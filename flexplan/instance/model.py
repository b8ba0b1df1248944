"""Typed, validated instance data (what a study is about, not how it is modelled).

Units: power in MW / Mvar / MVA, energy in MWh, voltage in kV or pu, money in EUR,
impedances in pu on the instance's ``s_base_mva`` and each bus's nominal voltage.
An :class:`Instance` is built by :func:`flexplan.instance.load_instance` and treated as
immutable afterwards (its DataFrames are not to be modified by blocks).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Network:
    """A radial network (a forest: one tree per slack bus).

    ``buses``: index 0..nb-1; columns ``name`` (str), ``vn_kv``.
    ``branches``: index 0..nbr-1, oriented parent -> child; columns ``name``, ``kind``
    (``line`` | ``transformer`` | ``substation``), ``from_bus``, ``to_bus`` (bus indices),
    ``r_pu``, ``x_pu``, ``rating_mva``, ``length_km``, ``vn_kv`` (of the child side),
    ``virtual`` (True for an import limit that is no pandapower element), ``source``
    (the pandapower element or CSV row it came from).
    ``loads``: columns ``bus`` (index), ``p_mw``, ``q_mvar``, ``load_class``, ``name`` and, where
    known, ``phase`` (``a``, ``b``, ``c`` or ``abc``: balanced, the default).
    ``branches`` may also have ``r0_pu``, ``x0_pu`` (zero sequence, for the three-phase model).
    ``slack``: columns ``bus`` (index), ``vm_pu``.
    """

    buses: pd.DataFrame
    branches: pd.DataFrame
    loads: pd.DataFrame
    slack: pd.DataFrame
    s_base_mva: float = 1.0
    source: str = ""

    @property
    def n_buses(self) -> int:
        return len(self.buses)

    @property
    def n_branches(self) -> int:
        return len(self.branches)

    def parent_branch(self) -> np.ndarray:
        """For each bus the index of the branch feeding it, -1 for slack buses."""
        out = np.full(self.n_buses, -1, dtype=int)
        out[self.branches["to_bus"].to_numpy(dtype=int)] = np.arange(self.n_branches)
        return out

    def downstream_buses(self) -> list[np.ndarray]:
        """For each branch, the buses it feeds (its child and everything below)."""
        children: list[list[int]] = [[] for _ in range(self.n_buses)]
        for f, t in zip(self.branches["from_bus"], self.branches["to_bus"]):
            children[f].append(t)
        below: dict[int, list[int]] = {}
        order = self.topological_order()
        for bus in reversed(order):
            acc = [bus]
            for c in children[bus]:
                acc.extend(below[c])
            below[bus] = acc
        return [np.array(below[t], dtype=int) for t in self.branches["to_bus"]]

    def topological_order(self) -> list[int]:
        """Buses ordered so that every bus comes after its parent (slack buses first)."""
        children: list[list[int]] = [[] for _ in range(self.n_buses)]
        for f, t in zip(self.branches["from_bus"], self.branches["to_bus"]):
            children[f].append(t)
        order: list[int] = []
        stack = list(self.slack["bus"])
        while stack:
            b = stack.pop()
            order.append(b)
            stack.extend(reversed(children[b]))
        return order

    def distance_km(self) -> np.ndarray:
        """Line length (km) from each bus's slack bus along the tree (transformers 0 km)."""
        dist = np.zeros(self.n_buses)
        par = self.parent_branch()
        length = self.branches["length_km"].fillna(0.0).to_numpy()
        frm = self.branches["from_bus"].to_numpy()
        for b in self.topological_order():
            k = par[b]
            if k >= 0:
                dist[b] = dist[frm[k]] + length[k]
        return dist


@dataclass(frozen=True)
class Profiles:
    """Representative days of normalised load profiles.

    ``days``: day names in order; ``weights``: days per year each stands for (sum ~365);
    ``hours``: steps per day; ``dt_h``: step length (h); ``factors``: load class ->
    array (n_days, hours) of multipliers of the base-year peak load (dimensionless).
    """

    days: tuple[str, ...]
    weights: np.ndarray
    hours: int
    dt_h: float
    factors: dict[str, np.ndarray]


@dataclass(frozen=True)
class Economics:
    """Horizon, stages and money.

    ``base_year`` y0 (discounting reference), ``end_year`` H (last year counted),
    ``stages``: first year of each investment stage (the first equals ``base_year``),
    ``discount_rate`` r (1/yr; default 0.035 = HM Treasury Green Book social rate),
    ``investment_cost``: ``annuity`` | ``lump_sum`` (see :mod:`flexplan.economics`).
    """

    base_year: int
    end_year: int
    stages: tuple[int, ...]
    discount_rate: float = 0.035
    investment_cost: str = "annuity"

    @property
    def years(self) -> list[int]:
        return list(range(self.base_year, self.end_year + 1))

    def stage_years(self, k: int) -> list[int]:
        last = self.stages[k + 1] - 1 if k + 1 < len(self.stages) else self.end_year
        return list(range(self.stages[k], last + 1))


@dataclass(frozen=True)
class Limits:
    """Operating limits.

    ``v_min_pu`` / ``v_max_pu``: voltage band (default 0.9 / 1.1 pu, EN 50160 +-10 %);
    ``max_loading_pct``: thermal limit as % of rating (default 100 %).
    """

    v_min_pu: float = 0.9
    v_max_pu: float = 1.1
    max_loading_pct: float = 100.0


@dataclass(frozen=True)
class Penalties:
    """Prices of the soft limits' slacks, so that every instance solves and each violation
    is reported instead of "infeasible".

    ``voll_eur_per_mwh``: value of lost load, default 10 000 EUR/MWh (docs/formulation.md §2;
    the order of magnitude of European VOLL estimates, e.g. ACER 2022 VOLL study);
    ``overload_eur_per_mvah``: thermal overload, default 10 000 EUR/MVAh (set equal to
    VOLL: an overload is as bad as the load it would shed);
    ``voltage_eur_per_pu2h``: voltage outside the band, per pu^2 of squared-voltage
    violation and hour, default 1e6 EUR/(pu^2 h) (a 1 % voltage violation, about 0.02 pu^2,
    costs 20 000 EUR/h: far above any reinforcement annuity). Planning penalties, not prices.
    """

    voll_eur_per_mwh: float = 10_000.0
    overload_eur_per_mvah: float = 10_000.0
    voltage_eur_per_pu2h: float = 1.0e6


@dataclass(frozen=True)
class Instance:
    """Everything a study needs, validated.

    ``growth``: DataFrame indexed by year (every year of the horizon), one column per
    load class: multiplier of the base-year load (dimensionless).
    ``candidates``: reinforcement candidates, one row each: ``id``, ``asset`` (branch
    name), ``branch`` (index), ``kind`` (``replace`` | ``parallel``), ``type``,
    ``r_pu``, ``x_pu``, ``rating_mva``, ``capex_eur``, ``lifetime_years``.
    ``years_per_stage``: ``all`` (every year is modelled) or ``last`` (the last year of a
    stage stands for all its years: faster, exact for feasibility when demand grows).
    ``ev_fleets``: EV fleets (``[[ev_fleets]]``), each with its sessions and EV counts.
    ``tree``: the scenario tree (``[tree]``) for stochastic studies, or None.
    ``sections``: per block that owns a table of instance.toml (``BlockSpec.section``), what
    its parser made of it.
    """

    name: str
    path: Path | None
    network: Network
    profiles: Profiles
    growth: pd.DataFrame
    economics: Economics
    limits: Limits
    penalties: Penalties
    candidates: pd.DataFrame
    years_per_stage: str = "all"
    description: str = ""
    ev_fleets: tuple = ()  # flexplan.ev.fleet.EVFleet, docs/formulation.md §4
    tree: object = None  # flexplan.instance.tree.ScenarioTree ([tree]), docs/formulation.md §1
    extra: dict = field(default_factory=dict)
    sections: dict = field(default_factory=dict)  # block name -> what its ``section`` parser made of its table


@dataclass(frozen=True)
class SectionContext:
    """What a block's instance-section parser (``BlockSpec.section``) gets besides its table:
    the instance ``folder`` (relative file names resolve against it), ``shown`` (the
    instance.toml path to name in errors), and the parsed ``network``, ``profiles`` and
    ``economics``.  The parser raises :class:`flexplan.errors.InstanceError` naming file,
    row and field."""

    folder: Path
    shown: str
    network: Network
    profiles: Profiles
    economics: Economics
