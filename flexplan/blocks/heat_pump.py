"""Heat-pump block (``heat_pumps``, owning the instance table of that name): fleets of heat
pumps whose consumption the DSO may shift within a thermal-comfort band.

The fleets come from the instance's ``[heat_pumps]`` table or ``[[heat_pumps]]`` tables
(:func:`parse_heat_pump_section`): per group its buses, the number of heat pumps per bus per
year N(y), their electrical power limit p̄ (kW), daily heat demand Q_d (kWh_th per heat pump
and representative day d: given, or from the day's outdoor temperature T_d as
``heat_loss_kw_per_k · max(0, T_base − T_d) · 24 h``), the coefficient of performance COP_d
(given, or from T_d by Staffell et al.'s air-source regression
``COP = 6.81 − 0.121 ΔT + 0.000630 ΔT²``, ΔT = T_sink − T_d) and the hourly shape s_h of the
heat demand (Σ s_h = 1, default flat).

Per (group, bus, node, year, day), with Δt the step length, N the heat pumps at the bus:

    0 ≤ p[h] ≤ N p̄                                                       (MW electrical)
    D(h) = N Q_d Σ_{τ ≤ h} s_τ                                            (MWh_th demanded by the end of h)
    X(h) = Σ_{τ ≤ h} COP_d Δt p[τ]                                        (MWh_th delivered)
    max(0, D(h) − B) ≤ X(h) ≤ min(D(H−1), D(h) + B)   for h < H − 1,   X(H−1) = D(H−1)

an energy envelope like the EV cohorts': the heat delivered may run ahead of or behind the
demand by the comfort band B = N · C · w / 2 (C the house's effective heat capacity, kWh/K,
w the width of the room-temperature band, K), and each day delivers exactly its demand, so
the electrical energy per day is N Q_d / COP_d.  The bus sees ``hub.inject(p = −p)``.

Baseline: the heat pumps following the demand, p_base[h] = N Q_d s_h / (COP_d Δt); mode
``fixed`` (the reference without flexibility) holds them there (B = 0).  The DSO pays
``flex_price_eur_per_mwh`` for each MWh of ``flex_down = max(0, p_base − p)`` (cost category
``heat_pump_flexibility``), like the EV fleet's downward flexibility.

Days are independent and every cost is non-negative: ``day_separable``.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from ..errors import InstanceError, Problem, RecipeError
from . import BlockSpec, register_block
from .linear import lin
from .rows import add_rows

MODES = ("flexible", "fixed")


def staffell_cop_ashp(delta_t_k):
    """COP of an air-source heat pump at a temperature lift ΔT = T_sink − T_source (K):
    6.81 − 0.121 ΔT + 0.000630 ΔT² (Staffell, Green, Brett, Brandon, Hawkes, "A review of
    domestic heat pumps", Energy Environ. Sci. 5 (2012) 9291, the regression on field and
    manufacturers' data [check])."""
    d = np.asarray(delta_t_k, dtype=float)
    return 6.81 - 0.121 * d + 0.000630 * d ** 2


@dataclass
class HeatPumpConfig:
    """Options of the ``heat_pumps`` block; the physical values are defaults for groups of the
    ``[heat_pumps]`` table that do not give their own.

    * ``mode``: ``flexible`` (default: shift within the comfort band) or ``fixed`` (follow
      the heat demand: the reference without flexibility).
    * ``p_kw``: electrical power limit per heat pump (default 3 kW: a 9 kW-thermal air-source
      unit at COP 3, the usual size for a single-family house, an assumption [check]).
    * ``cop``: where a group gives neither ``cop`` nor ``temperature_c`` (default 3.0, about
      the seasonal performance factor of air-source heat pumps in existing German houses in
      Fraunhofer ISE's field test "WPsmart im Bestand", 2020: 3.1 [check]).
    * ``sink_temperature_c``: flow temperature for the COP from outdoor temperature (default
      40 °C: floor heating / low-temperature radiators, an assumption).
    * ``heat_loss_kw_per_k``: heat-loss coefficient per house for the demand from outdoor
      temperature (default 0.15 kW/K: a reasonably insulated single-family house, an
      assumption [check]); ``base_temperature_c``: heating degree-day base (default 15.5 °C,
      the UK base, CIBSE TM41 [check]).
    * ``thermal_capacity_kwh_per_k``: effective heat capacity of a house (default 5 kWh/K,
      the order of grey-box RC models of single-family houses [check]);
      ``comfort_band_k``: width of the allowed room-temperature band (default 1.0 K, i.e.
      ±0.5 K around the set point, an assumption).
    * ``flex_price_eur_per_mwh``: price per MWh of downward flexibility (default 418 EUR/MWh,
      the same stand-in as the EV fleet's: UKPN Secure 2021 median, 360 GBP at 1.16 EUR/GBP).
    """

    mode: str = "flexible"
    p_kw: float = 3.0
    cop: float = 3.0
    sink_temperature_c: float = 40.0
    heat_loss_kw_per_k: float = 0.15
    base_temperature_c: float = 15.5
    thermal_capacity_kwh_per_k: float = 5.0
    comfort_band_k: float = 1.0
    flex_price_eur_per_mwh: float = 418.0

    def validate(self):
        if self.mode not in MODES:
            return f"heat_pumps.mode must be one of {', '.join(MODES)}, got '{self.mode}'"
        for name in ("p_kw", "cop", "heat_loss_kw_per_k"):
            if not getattr(self, name) > 0:
                return f"heat_pumps.{name} must be > 0, got {getattr(self, name)}"
        for name in ("thermal_capacity_kwh_per_k", "comfort_band_k", "flex_price_eur_per_mwh"):
            if getattr(self, name) < 0:
                return f"heat_pumps.{name} must be >= 0, got {getattr(self, name)}"
        if staffell_cop_ashp(max(self.sink_temperature_c - self.base_temperature_c, 0.0)) <= 1:
            return "heat_pumps.sink_temperature_c is so high that the COP falls to 1 or below"


@dataclass(frozen=True)
class HeatPumpGroup:
    """One group of the section: ``buses`` (indices) and ``bus_names``; ``units`` (year ->
    heat pumps per bus, interpolated); ``heat_kwh`` (per heat pump and day), ``cop`` and
    ``temperature_c``: a number for every day, a dict day name -> number, or None (from the
    config; kept by day name so that day screening, which drops days, carries them along); ``p_kw``,
    ``thermal_capacity_kwh_per_k``, ``comfort_band_k`` or None; ``shape`` (per step, sums to 1)."""

    name: str
    buses: tuple
    bus_names: tuple
    units: dict
    heat_kwh: float | dict | None
    cop: float | dict | None
    temperature_c: float | dict | None
    p_kw: float | None
    thermal_capacity_kwh_per_k: float | None
    comfort_band_k: float | None
    shape: tuple

    def units_in(self, year: int) -> float:
        ys = sorted(self.units)
        return float(np.interp(year, ys, [self.units[y] for y in ys]))


GROUP_KEYS = ("name", "bus", "buses", "units", "p_kw", "heat_kwh_per_day", "temperature_c", "cop",
              "thermal_capacity_kwh_per_k", "comfort_band_k", "heat_profile")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_heat_pump_section(table, ctx) -> list[HeatPumpGroup]:
    """``[heat_pumps]`` (one group) or ``[[heat_pumps]]`` (several), each with
    ``bus`` or ``buses``, ``units`` (heat pumps per bus: a number or ``{2025 = 10, 2030 = 40}``,
    linear between the years, held beyond), and optionally ``p_kw`` (kW electrical),
    ``heat_kwh_per_day`` (kWh_th per heat pump: a number or a table by day name),
    ``temperature_c`` (°C: a number or a table by day name), ``cop`` (a number or a table by
    day name), ``thermal_capacity_kwh_per_k``, ``comfort_band_k`` and ``heat_profile`` (one
    weight per step of the day, normalised).  Without ``heat_kwh_per_day`` the demand comes
    from ``temperature_c``; one of them is required."""
    shown = ctx.shown
    entries = [table] if isinstance(table, dict) else list(table)
    days, H = ctx.profiles.days, ctx.profiles.hours
    names = {n: i for i, n in enumerate(ctx.network.buses["name"])}
    groups, problems = [], []
    for i, e in enumerate(entries):
        at = "heat_pumps" if isinstance(table, dict) else f"heat_pumps[{i}]"

        def bad(key, msg):
            problems.append(Problem(shown, msg, field=f"{at}.{key}"))

        if not isinstance(e, dict):
            problems.append(Problem(shown, "must be a table", field=at))
            continue
        unknown = [k for k in e if k not in GROUP_KEYS]
        if unknown:
            bad(unknown[0], f"unknown key; allowed: {', '.join(GROUP_KEYS)}")
            continue
        before = len(problems)
        bus_list = e.get("buses", [e["bus"]] if "bus" in e else None)
        if bus_list is None or ("bus" in e and "buses" in e):
            bad("bus", "give bus (one bus name) or buses (a list), not both nor neither")
            bus_list = []
        elif not isinstance(bus_list, list) or not all(isinstance(b, str) for b in bus_list):
            bad("buses", "must be a list of bus names")
            bus_list = []
        for bname in bus_list:
            if bname not in names:
                bad("bus" if "bus" in e else "buses", f"unknown bus '{bname}'")
        units = e.get("units")
        if _number(units) and units >= 0:
            units = {ctx.economics.base_year: float(units)}
        elif isinstance(units, dict) and units and all(str(k).isdigit() and _number(v) and v >= 0
                                                       for k, v in units.items()):
            units = {int(k): float(v) for k, v in units.items()}
        else:
            bad("units", f"{units!r} must be a number >= 0 or a table {{year = number}} (heat pumps per bus)")
        per_day = {}
        for key in ("heat_kwh_per_day", "temperature_c", "cop"):
            v = e.get(key)
            if v is None:
                per_day[key] = None
            elif _number(v):
                per_day[key] = float(v)
            elif isinstance(v, dict):
                miss = [d for d in days if d not in v]
                extra = [d for d in v if d not in days]
                if miss or extra or not all(_number(x) for x in v.values()):
                    msg = f"a table by day must give a number for each representative day ({', '.join(days)})"
                    msg += f"; missing {', '.join(miss)}" if miss else ""
                    msg += f"; unknown {', '.join(extra)}" if extra else ""
                    bad(key, msg)
                else:
                    per_day[key] = {d: float(v[d]) for d in days}
            else:
                bad(key, f"{v!r} must be a number or a table by day name")
        if per_day.get("heat_kwh_per_day") is None and per_day.get("temperature_c") is None and \
                "heat_kwh_per_day" not in e and "temperature_c" not in e:
            bad("heat_kwh_per_day", "give heat_kwh_per_day or temperature_c (the daily heat demand)")
        values = {k: ([] if v is None else list(v.values()) if isinstance(v, dict) else [v])
                  for k, v in per_day.items()}
        if any(x < 0 for x in values.get("heat_kwh_per_day", [])):
            bad("heat_kwh_per_day", "must be >= 0 (kWh of heat per heat pump and day)")
        if any(x <= 0 for x in values.get("cop", [])):
            bad("cop", "must be > 0")
        if not all(-60 <= t <= 60 for t in values.get("temperature_c", [])):
            bad("temperature_c", "outdoor temperatures must be in -60..60 °C")
        scalars = {}
        for key in ("p_kw", "thermal_capacity_kwh_per_k", "comfort_band_k"):
            v = e.get(key)
            if v is not None and not (_number(v) and (v > 0 if key == "p_kw" else v >= 0)):
                bad(key, f"{v!r} must be a number {'> 0' if key == 'p_kw' else '>= 0'}")
            scalars[key] = float(v) if v is not None and _number(v) else None
        shape = np.full(H, 1.0 / H)
        if "heat_profile" in e:
            hp = e["heat_profile"]
            if not isinstance(hp, list) or len(hp) != H or not all(_number(x) and x >= 0 for x in hp) or sum(hp) <= 0:
                bad("heat_profile", f"must be {H} weights >= 0 (one per step of the day), not all zero")
            else:
                shape = np.asarray(hp, dtype=float) / float(sum(hp))
        if len(problems) > before:
            continue
        groups.append(HeatPumpGroup(
            name=str(e.get("name", f"hp{i}")), buses=tuple(names[b] for b in bus_list), bus_names=tuple(bus_list),
            units=units, heat_kwh=per_day["heat_kwh_per_day"], cop=per_day["cop"],
            temperature_c=per_day["temperature_c"], shape=tuple(shape.tolist()), **scalars))
    if len({g.name for g in groups}) != len(groups):
        problems.append(Problem(shown, "two groups have the same name", field="heat_pumps.name"))
    if problems:
        raise InstanceError(problems)
    return groups


@dataclass
class _Group:
    """A group's numbers under a config: per day heat per pump (MWh_th), COP; p̄ (MW), band (MWh_th per pump)."""

    group: HeatPumpGroup
    heat_mwh: np.ndarray
    cop: np.ndarray
    p_mw: float
    band_mwh: float
    shape: np.ndarray


def _by_day(value, days, group: str, key: str) -> np.ndarray | None:
    """A group's number or {day: number} as an array over the model's ``days``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return np.full(len(days), float(value))
    missing = [d for d in days if d not in value]
    if missing:
        raise RecipeError(f"heat pump group '{group}': {key} is given for the days {', '.join(value)}, but the model "
                          f"has the day(s) {', '.join(missing)} (were the instance's profiles reduced?)")
    return np.array([value[d] for d in days], dtype=float)


def resolve(group: HeatPumpGroup, cfg: HeatPumpConfig, days) -> _Group:
    """Heat demand and COP per model day from the group's data, else the config (see the
    module docstring)."""
    t = _by_day(group.temperature_c, days, group.name, "temperature_c")
    heat = _by_day(group.heat_kwh, days, group.name, "heat_kwh_per_day")
    if heat is None:
        heat = cfg.heat_loss_kw_per_k * np.maximum(cfg.base_temperature_c - t, 0.0) * 24.0
    cop = _by_day(group.cop, days, group.name, "cop")
    if cop is not None:
        pass
    elif t is not None:
        cop = staffell_cop_ashp(np.maximum(cfg.sink_temperature_c - t, 0.0))
    else:
        cop = np.full(len(days), cfg.cop)
    p_kw = group.p_kw if group.p_kw is not None else cfg.p_kw
    c = group.thermal_capacity_kwh_per_k if group.thermal_capacity_kwh_per_k is not None \
        else cfg.thermal_capacity_kwh_per_k
    w = group.comfort_band_k if group.comfort_band_k is not None else cfg.comfort_band_k
    band = 0.0 if cfg.mode == "fixed" else c * w / 2.0
    return _Group(group, heat / 1000.0, cop, p_kw / 1000.0, band / 1000.0, np.asarray(group.shape))


def add_heat_pump(b, inst, ix, hub, cfg: HeatPumpConfig) -> None:
    groups = inst.sections.get("heat_pumps", [])  # no [heat_pumps] table: nothing to model (like EVs without fleets)
    H, dt = ix.hours, float(ix.dt_h)
    res = [resolve(g, cfg, ix.days) for g in groups]
    for r in res:
        if np.any(r.cop <= 1.0):
            raise RecipeError(f"heat pump group '{r.group.name}': a COP of {r.cop.min():.3g} (<= 1) on day "
                              f"'{ix.days[int(np.argmin(r.cop))]}'; check temperature_c and sink_temperature_c")
        base = r.heat_mwh[:, None] * r.shape[None, :] / (r.cop[:, None] * dt)  # MW per pump, (day, step)
        if np.any(base > r.p_mw * (1 + 1e-9)):
            d, h = np.unravel_index(int(np.argmax(base - r.p_mw)), base.shape)
            raise RecipeError(f"heat pump group '{r.group.name}': following the heat demand needs "
                              f"{1000 * base[d, h]:.3g} kW per heat pump at step {h} of day '{ix.days[d]}', above "
                              f"p_kw = {1000 * r.p_mw:g}; raise p_kw or lower the heat demand")
    day_starts = np.flatnonzero(ix.op_hour == 0).tolist()
    tree = ix.op_factor("heat_pumps")  # a scenario tree's multiplier of the heat-pump count per node
    units = []  # (group, bus, first op, N)
    for gi, r in enumerate(res):
        for op0 in day_starts:
            n = r.group.units_in(int(ix.op_year[op0])) * float(tree[op0])
            if n <= 0:
                continue
            for bus in r.group.buses:
                units.append((gi, bus, op0, n))
    for gi, r in enumerate(res):
        n_max = max(r.group.units_in(int(ix.op_year[o])) * float(tree[o]) for o in day_starts) if day_starts else 0.0
        for bus in r.group.buses:
            hub.bound_injection(bus, n_max * r.p_mw)
    U = range(len(units))
    b.p = pyo.Var(U, range(H), bounds=lambda _, u, h: (0.0, units[u][3] * res[units[u][0]].p_mw))
    p_ = dict(b.p.items())
    env_lo, env_hi, base = {}, {}, {}
    for u, (gi, bus, op0, n) in enumerate(units):
        r = res[gi]
        d = int(ix.op_day[op0])
        demand = n * r.heat_mwh[d] * np.cumsum(r.shape)  # MWh_th by the end of each step
        total = float(demand[-1])
        band = n * r.band_mwh
        for h in range(H):
            lo, hi = (max(0.0, demand[h] - band), min(total, demand[h] + band)) if h < H - 1 else (total, total)
            env_lo[u, h], env_hi[u, h] = float(lo), float(hi)
            base[u, h] = float(n * r.heat_mwh[d] * r.shape[h] / (r.cop[d] * dt))

    def envelope(u, h):
        c = float(res[units[u][0]].cop[int(ix.op_day[units[u][2]])] * dt)
        return [c] * (h + 1), [p_[u, k] for k in range(h + 1)], env_lo[u, h], env_hi[u, h]

    add_rows(b, "envelope", [(u, h) for u in U for h in range(H)], envelope)
    for u, (gi, bus, op0, n) in enumerate(units):
        for h in range(H):
            hub.inject(bus, op0 + h, p=lin([-1.0], [p_[u, h]]))
    keys = [(u, h) for u in U for h in range(H) if base[u, h] > 0]
    b._hp = dict(res=res, units=units, base=base, env_lo=env_lo, env_hi=env_hi, cfg=cfg)
    if cfg.mode == "flexible" and cfg.flex_price_eur_per_mwh > 0 and keys:
        b.flex_down = pyo.Var(keys, within=pyo.NonNegativeReals)
        add_rows(b, "flex_down_def", keys, lambda u, h: ([1.0, 1.0], [b.flex_down[u, h], p_[u, h]], base[u, h], None))
        hours = ix.op_hours() * ix.op_price_factor()
        per_ny = defaultdict(list)
        for u, h in keys:
            o = units[u][2] + h
            per_ny[(ix.node_names[ix.op_node[o]], int(ix.op_year[o]))].append(
                float(cfg.flex_price_eur_per_mwh * hours[o]) * b.flex_down[u, h])
        for (n, y), terms in per_ny.items():
            hub.cost("heat_pump_flexibility", n, sum(terms), year=y)


def extract_heat_pump(b, inst, ix) -> dict:
    """``heat_pumps`` table (node, year, day, hour, group, bus, n_units, baseline_mw, power_mw,
    cop, heat_mwh, delivered_mwh, envelope_min_mwh, envelope_max_mwh: cumulative heat of the
    day) and the ``heat_pumps`` summary section."""
    info = b._hp
    res, units = info["res"], info["units"]
    H, dt = ix.hours, float(ix.dt_h)
    frame = ix.op_frame()
    names = inst.network.buses["name"].to_numpy()
    parts = []
    for u, (gi, bus, op0, n) in enumerate(units):
        r = res[gi]
        d = int(ix.op_day[op0])
        p = np.array([b.p[u, h].value or 0.0 for h in range(H)])
        heat = r.cop[d] * dt * p
        f = frame.iloc[op0:op0 + H]
        parts.append(pd.DataFrame({
            "node": f["node"].to_numpy(), "year": f["year"].to_numpy(), "day": f["day"].to_numpy(),
            "hour": f["hour"].to_numpy(), "group": r.group.name, "bus": names[bus], "n_units": n,
            "baseline_mw": [info["base"][u, h] for h in range(H)], "power_mw": p, "cop": r.cop[d],
            "heat_mwh": heat, "delivered_mwh": np.cumsum(heat),
            "envelope_min_mwh": [info["env_lo"][u, h] for h in range(H)],
            "envelope_max_mwh": [info["env_hi"][u, h] for h in range(H)]}))
    cols = ["node", "year", "day", "hour", "group", "bus", "n_units", "baseline_mw", "power_mw", "cop", "heat_mwh",
            "delivered_mwh", "envelope_min_mwh", "envelope_max_mwh"]
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    years = []
    if len(df):
        w = dict(zip(ix.days, ix.day_weight))
        hrs = np.array([w[d] for d in df["day"]]) * dt
        g = df.assign(e=df["power_mw"] * hrs, down=np.maximum(df["baseline_mw"] - df["power_mw"], 0.0) * hrs,
                      q=df["heat_mwh"] * np.array([w[d] for d in df["day"]]))
        for (node, year), grp in g.groupby(["node", "year"], sort=False):
            tot = grp.groupby(["day", "hour"])[["baseline_mw", "power_mw"]].sum()
            years.append(dict(node=node, year=int(year), electricity_mwh_per_year=float(grp["e"].sum()),
                              heat_mwh_per_year=float(grp["q"].sum()), flex_down_mwh_per_year=float(grp["down"].sum()),
                              peak_baseline_mw=float(tot["baseline_mw"].max()), peak_mw=float(tot["power_mw"].max())))
    groups = [dict(name=r.group.name, buses=list(r.group.bus_names), cop_by_day=dict(zip(ix.days, r.cop.tolist())),
                   heat_kwh_per_unit_day=dict(zip(ix.days, (1000 * r.heat_mwh).tolist())), p_kw=1000 * r.p_mw,
                   band_kwh_per_unit=1000 * r.band_mwh) for r in res]
    summary = dict(mode=info["cfg"].mode, groups=groups, years=years)
    return {"heat_pumps": df, "summary": {"heat_pumps": summary}}


def _reference(options: dict) -> dict | None:
    """The options without flexibility (follow the heat demand), or None when already so."""
    if options.get("mode", HeatPumpConfig.mode) == "fixed":
        return None
    return {**options, "mode": "fixed"}


register_block(BlockSpec("heat_pumps", add_heat_pump, HeatPumpConfig, extract=extract_heat_pump, doc=__doc__,
                         day_separable=True, reference=_reference, section=parse_heat_pump_section,
                         uncertain=("heat_pumps",)))
