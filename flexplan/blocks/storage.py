"""Stationary battery block: DSO-owned storage as an alternative to reinforcement.

Candidate sites come from the instance's ``[storage]`` table (:func:`parse_storage_section`)
or, when the instance has none, from the recipe option ``sites``.  For every site s and
tree node n the block decides the energy and power built there,

    E^b[s, n] ≥ 0 (MWh),  P^b[s, n] ≥ 0 (MW)                          (``hub.decide``)

and the installed capacity at n is what was built at n and its ancestors and is still within
its life for all of n's years (first year of m + lifetime > last year of n; a battery that
retires within a stage is not counted there, and may be rebuilt),
``E[s, n] = Σ_{m ∈ anc(n) ∪ {n}, alive at n} E^b[s, m] ≤ Ē_s``, likewise ``P[s, n] ≤ P̄_s``.
Per op t (of node n, step length Δt h), with η_c = η_d = √η_rt (the round-trip
efficiency split evenly between charging and discharging):

    0 ≤ ch[s, t] ≤ P[s, n],  0 ≤ dis[s, t] ≤ P[s, n]                    (MW, grid side)
    soc_min · E[s, n] ≤ e[s, t] ≤ E[s, n]                               (MWh, start of step t)
    e[s, t⁺] = e[s, t] + η_c Δt ch[s, t] − Δt / η_d · dis[s, t]

where t⁺ is the next step of the same representative day and the last step of a day wraps
to its first (daily cycle: the state of charge at the end of each day equals the start).
The bus sees ``hub.inject(p = dis − ch)``; ``hub.bound_injection`` gets the site's P̄.

Cost (category ``storage_investment``): ``(c_E E^b[s, n] + c_P P^b[s, n]) · PV(n)`` with
``PV(n)`` the present value per EUR of capex of the annuities from the node's first year to
the horizon end (or the lump sum with salvage), the same factor the reinforcement block
uses (:data:`flexplan.economics.INVESTMENT_COST_METHODS`), over the battery's lifetime.

Optional ageing (``ageing = true``, cost category ``storage_ageing``), with the
:class:`flexplan.blocks.ageing.AgeingModel` of the EV batteries: calendar fade as the
convex envelope of the loss rate over SOC in perspective form, z[s, t] ≥ a_m e[s, t] +
b_m E[s, n] for every line m, costing z · hours · value; cycling by throughput, each MWh
discharged (cell side, dis · Δt / η_d) costing the life share one cycle of
``reference_dod`` uses per unit of depth (Miner's rule, Wöhler curve of the chemistry) times
the replacement cost.  ``value`` is ``replacement_eur_per_kwh / (1 − end_of_life_capacity)``
per kWh of capacity lost, as in the ageing block.

Every day's operation is independent given the installed capacity and its costs are
non-negative, so the block is ``day_separable``.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from ..economics import INVESTMENT_COST_METHODS
from ..errors import InstanceError, Problem, RecipeError
from . import BlockSpec, register_block
from .ageing import AgeingConfig, AgeingModel
from .linear import lin


@dataclass
class StorageConfig:
    """Options of the ``storage`` block.

    * ``sites``: candidate bus names when the instance has no ``[storage]`` table (default
      none: then the block needs that table).
    * ``max_kw`` / ``max_kwh``: largest power (kW) and energy (kWh) per site where the site
      does not say (default 1000 kW and 4000 kWh: one containerised MV battery of 1 MW and
      4 h, an assumption of scale; the bound also sizes the network's flow ranges).
    * ``capex_eur_per_kwh`` (default 250 EUR/kWh) and ``capex_eur_per_kw`` (default 250
      EUR/kW): the energy and power parts of the installed cost, rounded from the 2022
      values of NREL's "Cost Projections for Utility-Scale Battery Storage: 2023 Update"
      (Cole & Ramasamy, NREL/TP-6A40-85332), about 300 USD/kWh and 260 USD/kW, at 0.95
      EUR/USD [check].
    * ``lifetime_years``: economic life of the battery (default 15 years, the same report's
      assumption [check]).
    * ``round_trip_efficiency``: AC-AC, fraction (default 0.85, the same report [check]).
    * ``soc_min``: lowest state of charge, fraction of the installed energy (default 0.0:
      the rated kWh are the usable kWh).
    * ``ageing``: price calendar and cycling fade (default false, since the lifetime already
      stands for the battery's wear); ``chemistry`` (default ``lfp``, the usual chemistry of
      stationary batteries), ``replacement_eur_per_kwh`` (default 150 EUR/kWh, the ageing
      block's default), ``end_of_life_capacity`` (default 0.8, fraction), ``temperature_c``
      (default 25 °C, the fits' reference), ``battery_age_years`` (default 4 years: where
      the calendar law is linearised, the ageing block's default), ``reference_dod``
      (default 0.8, fraction: the depth of the throughput cost, the ageing block's default),
      ``c_rate`` (default 0.25 1/h: a 4-hour battery at full power).
    """

    sites: list[str] = field(default_factory=list)
    max_kw: float = 1000.0
    max_kwh: float = 4000.0
    capex_eur_per_kwh: float = 250.0
    capex_eur_per_kw: float = 250.0
    lifetime_years: int = 15
    round_trip_efficiency: float = 0.85
    soc_min: float = 0.0
    ageing: bool = False
    chemistry: str = "lfp"
    replacement_eur_per_kwh: float = 150.0
    end_of_life_capacity: float = 0.8
    temperature_c: float = 25.0
    battery_age_years: float = 4.0
    reference_dod: float = 0.8
    c_rate: float = 0.25

    def validate(self):
        if not all(isinstance(s, str) and s for s in self.sites):
            return "storage.sites must be a list of bus names"
        for name in ("max_kw", "max_kwh"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                return f"storage.{name} must be a finite number > 0 (the network's flow ranges need it), got {v}"
        if self.capex_eur_per_kwh < 0 or self.capex_eur_per_kw < 0:
            return "storage.capex_eur_per_kwh and capex_eur_per_kw must be >= 0 (EUR per kWh / kW)"
        if self.lifetime_years < 1:
            return f"storage.lifetime_years must be >= 1, got {self.lifetime_years}"
        if not 0 < self.round_trip_efficiency <= 1:
            return f"storage.round_trip_efficiency must be in (0, 1], got {self.round_trip_efficiency}"
        if not 0 <= self.soc_min < 1:
            return f"storage.soc_min must be in [0, 1), got {self.soc_min}"
        if self.c_rate <= 0:
            return f"storage.c_rate must be > 0 (1/h), got {self.c_rate}"
        if self.ageing:
            problem = self.ageing_config().validate()
            if problem:
                return problem.replace("ageing.", "storage.")

    def ageing_config(self) -> AgeingConfig:
        """The ageing block's configuration for a stationary battery: calendar fade and a
        throughput cycling cost from Miner's rule (``cycle_linearisation = lifetime``: the
        battery's own cycling history is what the plan decides, so no age is assumed)."""
        return AgeingConfig(chemistry=self.chemistry, replacement_eur_per_kwh=self.replacement_eur_per_kwh,
                            end_of_life_capacity=self.end_of_life_capacity, temperature_c=self.temperature_c,
                            battery_age_years=self.battery_age_years, calendar=True, cycling="throughput",
                            reference_dod=self.reference_dod, cycle_linearisation="lifetime")


@dataclass(frozen=True)
class StorageSite:
    """A candidate site: ``bus`` (index), ``name`` (bus name), optional limits ``max_mw`` /
    ``max_mwh`` (None: the block's ``max_kw`` / ``max_kwh``)."""

    bus: int
    name: str
    max_mw: float | None = None
    max_mwh: float | None = None


SITE_KEYS = {"bus": str, "max_kw": (int, float), "max_kwh": (int, float)}


def parse_storage_section(table, ctx) -> list[StorageSite]:
    """``[storage]`` of instance.toml: ``sites = ["b1", {bus = "b2", max_kw = 500, max_kwh = 2000}]``,
    or ``[[storage]]`` tables with ``bus``, ``max_kw``, ``max_kwh`` (kW, kWh)."""
    shown = ctx.shown
    if isinstance(table, dict):
        unknown = [k for k in table if k != "sites"]
        if unknown:
            raise InstanceError(Problem(shown, f"unknown key; allowed: sites", field=f"storage.{unknown[0]}"))
        entries, where = table.get("sites", []), "storage.sites"
        if not isinstance(entries, list):
            raise InstanceError(Problem(shown, "must be a list of bus names or tables", field=where))
    else:
        entries, where = table, "storage"
    names = {n: i for i, n in enumerate(ctx.network.buses["name"])}
    problems, sites = [], []
    for i, e in enumerate(entries):
        at = f"{where}[{i}]"
        if isinstance(e, str):
            e = {"bus": e}
        if not isinstance(e, dict):
            problems.append(Problem(shown, f"{e!r} must be a bus name or a table with bus, max_kw, max_kwh", field=at))
            continue
        bad = [k for k in e if k not in SITE_KEYS]
        if bad:
            problems.append(Problem(shown, f"unknown key; allowed: {', '.join(SITE_KEYS)}", field=f"{at}.{bad[0]}"))
            continue
        if "bus" not in e:
            problems.append(Problem(shown, "missing key", field=f"{at}.bus"))
            continue
        for k, kind in SITE_KEYS.items():
            v = e.get(k)
            if v is not None and (not isinstance(v, kind) or isinstance(v, bool)):
                problems.append(Problem(shown, f"{v!r} must be a {'bus name' if k == 'bus' else 'number'}",
                                        field=f"{at}.{k}"))
            elif k != "bus" and v is not None and not (v > 0 and math.isfinite(v)):
                problems.append(Problem(shown, f"{v} must be a finite number > 0 ({k[4:]})", field=f"{at}.{k}"))
        if problems:
            continue
        if e["bus"] not in names:
            problems.append(Problem(shown, f"unknown bus '{e['bus']}'", field=f"{at}.bus"))
            continue
        if any(s.bus == names[e["bus"]] for s in sites):
            problems.append(Problem(shown, f"bus '{e['bus']}' is listed twice", field=f"{at}.bus"))
            continue
        sites.append(StorageSite(names[e["bus"]], e["bus"],
                                 e["max_kw"] / 1000.0 if "max_kw" in e else None,
                                 e["max_kwh"] / 1000.0 if "max_kwh" in e else None))
    if problems:
        raise InstanceError(problems)
    return sites


def _sites(inst, cfg: StorageConfig) -> list[StorageSite]:
    """The instance's ``[storage]`` sites, else the recipe's ``sites`` (none: the block models
    nothing, like the EV fleet on an instance without fleets)."""
    if "storage" in inst.sections:
        if cfg.sites:
            raise RecipeError("storage.sites is given in the recipe but the instance has a [storage] table; "
                              "keep one of them")
        return inst.sections["storage"]
    names = {n: i for i, n in enumerate(inst.network.buses["name"])}
    unknown = [s for s in cfg.sites if s not in names]
    if unknown:
        raise RecipeError(f"storage.sites: unknown bus(es) {', '.join(unknown)} in instance '{inst.name}'")
    return [StorageSite(names[s], s) for s in dict.fromkeys(cfg.sites)]


def add_storage(b, inst, ix, hub, cfg: StorageConfig) -> None:
    sites = _sites(inst, cfg)
    econ = inst.economics
    S = range(len(sites))
    N = ix.node_names
    T = range(ix.n_ops)
    H, dt = ix.hours, float(ix.dt_h)
    eta = math.sqrt(cfg.round_trip_efficiency)
    e_max = [s.max_mwh if s.max_mwh is not None else cfg.max_kwh / 1000.0 for s in sites]
    p_max = [s.max_mw if s.max_mw is not None else cfg.max_kw / 1000.0 for s in sites]

    b.e_build = pyo.Var(S, N, within=pyo.NonNegativeReals)
    b.p_build = pyo.Var(S, N, within=pyo.NonNegativeReals)
    for n in N:
        hub.decide(n, [b.e_build[s, n] for s in S] + [b.p_build[s, n] for s in S])
    alive = {n: [m for m in ix.ancestors_incl[n]
                 if ix.nodes[m].first_year + cfg.lifetime_years > max(ix.nodes[n].years)] for n in N}
    e_cap = {(s, n): lin([1.0] * len(alive[n]), [b.e_build[s, m] for m in alive[n]]) for s in S for n in N}
    p_cap = {(s, n): lin([1.0] * len(alive[n]), [b.p_build[s, m] for m in alive[n]]) for s in S for n in N}
    b.e_limit = pyo.Constraint(S, N, rule=lambda _, s, n: e_cap[s, n] <= e_max[s])
    b.p_limit = pyo.Constraint(S, N, rule=lambda _, s, n: p_cap[s, n] <= p_max[s])

    opnode = [N[k] for k in ix.op_node]
    b.ch = pyo.Var(S, T, within=pyo.NonNegativeReals, bounds=lambda _, s, t: (0.0, p_max[s]))
    b.dis = pyo.Var(S, T, within=pyo.NonNegativeReals, bounds=lambda _, s, t: (0.0, p_max[s]))
    b.e = pyo.Var(S, T, within=pyo.NonNegativeReals, bounds=lambda _, s, t: (0.0, e_max[s]))
    b.ch_cap = pyo.Constraint(S, T, rule=lambda _, s, t: b.ch[s, t] <= p_cap[s, opnode[t]])
    b.dis_cap = pyo.Constraint(S, T, rule=lambda _, s, t: b.dis[s, t] <= p_cap[s, opnode[t]])
    b.e_cap = pyo.Constraint(S, T, rule=lambda _, s, t: b.e[s, t] <= e_cap[s, opnode[t]])
    if cfg.soc_min > 0:
        b.e_min = pyo.Constraint(S, T, rule=lambda _, s, t: b.e[s, t] >= cfg.soc_min * e_cap[s, opnode[t]])
    hour = ix.op_hour

    def nxt(t):  # next step of the same day; the last step of a day wraps to its first
        return t + 1 if hour[t] < H - 1 else t - (H - 1)

    b.soc = pyo.Constraint(S, T, rule=lambda _, s, t: b.e[s, nxt(t)] == b.e[s, t] + eta * dt * b.ch[s, t]
                           - dt / eta * b.dis[s, t])
    for s, site in enumerate(sites):
        hub.bound_injection(site.bus, p_max[s])
        for t in T:
            hub.inject(site.bus, t, p=lin([1.0, -1.0], [b.dis[s, t], b.ch[s, t]]))

    pv_factor = INVESTMENT_COST_METHODS[econ.investment_cost]
    for n in N if sites else ():
        f = pv_factor(ix.nodes[n].first_year, econ.end_year, econ.base_year, econ.discount_rate, cfg.lifetime_years)
        ce, cp = cfg.capex_eur_per_kwh * 1000.0 * f, cfg.capex_eur_per_kw * 1000.0 * f
        hub.cost("storage_investment", n, lin([ce] * len(S) + [cp] * len(S),
                                              [b.e_build[s, n] for s in S] + [b.p_build[s, n] for s in S]))
    b._storage = dict(sites=sites, cfg=cfg, eta=eta, e_cap=e_cap, p_cap=p_cap, model=None)
    if cfg.ageing and sites:
        _add_ageing(b, ix, hub, cfg, S, T, opnode, e_cap, eta)


def _add_ageing(b, ix, hub, cfg, S, T, opnode, e_cap, eta) -> None:
    model = AgeingModel(cfg.ageing_config(), c_rate=cfg.c_rate)
    b._storage["model"] = model
    hours = ix.op_hours()
    value = model.eur_per_mwh_lost  # EUR per MWh of capacity lost
    lines = [(float(a), float(c)) for a, c in model.lines]
    b.cal = pyo.Var(S, T, within=pyo.NonNegativeReals)  # capacity lost per hour (MWh/h)
    b.cal_env = pyo.Constraint(S, T, range(len(lines)), rule=lambda _, s, t, m: b.cal[s, t]
                               >= lines[m][0] * b.e[s, t] + lines[m][1] * e_cap[s, opnode[t]])
    # throughput: life share per unit of depth at reference_dod, times the battery's worth:
    # EUR per MWh discharged (cell side) = replacement EUR/MWh x life share per full depth
    per_mwh = cfg.replacement_eur_per_kwh * 1000.0 * float(model.segment_costs(0.0)[0])
    b._storage["cycle_eur_per_mwh"] = per_mwh
    per_ny = defaultdict(list)
    for t in T:
        key = (opnode[t], int(ix.op_year[t]))
        for s in S:
            per_ny[key].append(float(value * hours[t]) * b.cal[s, t])
            per_ny[key].append(float(per_mwh * hours[t] / eta) * b.dis[s, t])
    for (n, y), terms in per_ny.items():
        hub.cost("storage_ageing", n, sum(terms), year=y)


def extract_storage(b, inst, ix) -> dict:
    """``storage_builds`` (site, node, year, kW and kWh built there and installed),
    ``storage_operation`` (node, year, day, hour, bus, charge_mw, discharge_mw, energy_mwh,
    soc) and the ``storage`` summary section."""
    info = b._storage
    sites, cfg = info["sites"], info["cfg"]
    rows = []
    for s, site in enumerate(sites):
        for n in ix.node_names:
            rows.append(dict(bus=site.name, node=n, year=ix.nodes[n].first_year,
                             kw_built=1000.0 * (b.p_build[s, n].value or 0.0),
                             kwh_built=1000.0 * (b.e_build[s, n].value or 0.0),
                             kw_installed=1000.0 * float(pyo.value(info["p_cap"][s, n])),
                             kwh_installed=1000.0 * float(pyo.value(info["e_cap"][s, n]))))
    builds = pd.DataFrame(rows, columns=["bus", "node", "year", "kw_built", "kwh_built", "kw_installed",
                                         "kwh_installed"])
    frame = ix.op_frame()
    ops = []
    opnode = [ix.node_names[k] for k in ix.op_node]
    for s, site in enumerate(sites):
        ch = np.array([b.ch[s, t].value or 0.0 for t in range(ix.n_ops)])
        dis = np.array([b.dis[s, t].value or 0.0 for t in range(ix.n_ops)])
        e = np.array([b.e[s, t].value or 0.0 for t in range(ix.n_ops)])
        cap = np.array([float(pyo.value(info["e_cap"][s, n])) for n in opnode])
        ops.append(frame.assign(bus=site.name, charge_mw=ch, discharge_mw=dis, energy_mwh=e,
                                soc=np.divide(e, cap, out=np.zeros_like(e), where=cap > 1e-12)))
    cols = ["node", "year", "day", "hour", "bus", "charge_mw", "discharge_mw", "energy_mwh", "soc"]
    op = pd.concat(ops, ignore_index=True) if ops else pd.DataFrame(columns=cols)
    hours = ix.op_hours()
    per_year = defaultdict(float)  # (node, year) -> MWh discharged per year (grid side)
    for t in range(ix.n_ops):
        for s in range(len(sites)):
            per_year[f"{opnode[t]}:{int(ix.op_year[t])}"] += (b.dis[s, t].value or 0.0) * float(hours[t])
    last = builds.groupby("bus").tail(1) if len(builds) else builds
    summary = dict(sites=[s.name for s in sites], round_trip_efficiency=cfg.round_trip_efficiency,
                   capex_eur_per_kwh=cfg.capex_eur_per_kwh, capex_eur_per_kw=cfg.capex_eur_per_kw,
                   lifetime_years=cfg.lifetime_years, ageing=cfg.ageing,
                   kw_installed_last_node=float(last["kw_installed"].sum()) if len(last) else 0.0,
                   kwh_installed_last_node=float(last["kwh_installed"].sum()) if len(last) else 0.0,
                   discharged_mwh_per_year=dict(per_year))
    return {"storage_builds": builds, "storage_operation": op, "summary": {"storage": summary}}


register_block(BlockSpec("storage", add_storage, StorageConfig, extract=extract_storage, doc=__doc__,
                         day_separable=True, section=parse_storage_section))
