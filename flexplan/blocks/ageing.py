"""Battery ageing block: what the use of EV batteries costs their owners (docs/formulation.md §5).

Reads the EV batteries the ``ev_fleet`` block publishes in the Hub (energy of the plugged-in
EVs, their capacity, charging and discharging, and the same under uncontrolled charging)
and prices their ageing in the cost category ``battery_ageing``; a loss of capacity is worth
``replacement_eur_per_kwh / (1 − end_of_life_capacity)`` per kWh (losing 20 % of the capacity
uses the whole battery up).

* **Calendar** (per fleet, bus and op with EVs plugged in): the loss rate of a battery of age
  ``battery_age_years`` at state of charge SOC, linearised in time around that age
  (:meth:`~flexplan.ev.chemistry.Chemistry.calendar_rate`), as the convex piecewise-linear
  envelope max_m (a_m SOC + b_m) over SOC.  With E the plugged-in energy and B the plugged-in
  capacity, z ≥ a_m E + b_m B for every line m (the perspective form, linear in E), and
  z × hours is the capacity lost (MWh).  Lower SOC costs less, so delaying charging pays.
  The fleet's average SOC stands for its EVs' (for a convex rate this underestimates).
* **Cycling** (per fleet, bus and representative day), ``cycling``:
  ``segments`` (default): the segment model of Xu et al. 2018 applied to the day's V2G
  cycle, of depth D = discharged energy / plugged-in V2G capacity: D = Σ_j s_j with
  s_j ∈ [0, 1/J] and marginal costs c_j increasing in j (convex), so the LP fills the
  segments in order without binaries; deeper than one cycle costs c_J per unit.
  ``throughput``: a flat cost per MWh discharged, from the cycles to end of life at
  ``reference_dod``.  The EVs' own driving cycles do not depend on the plan: they are
  counted (Miner's rule on the sessions' depths) as a constant.
* With ``replacement_eur_per_kwh = 0`` the block adds nothing to the model (and reports zero).

Reported: ``ageing`` table per (node, year, fleet): calendar and cycling loss (% of
capacity per EV and year), cost (EUR/yr), and the same under uncontrolled charging.
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from ..ev.ageing_eval import evaluate
from ..ev.chemistry import CHEMISTRIES
from . import BlockSpec, register_block

HOURS_PER_YEAR = 8760.0


@dataclass
class AgeingConfig:
    """Options of the ``ageing`` block.

    * ``chemistry``: ``lfp`` (default) or ``nmc`` (:mod:`flexplan.ev.chemistry`).
    * ``replacement_eur_per_kwh``: battery replacement cost (EUR/kWh); default 150
      (docs/formulation.md §5's worked figure; BNEF's 2023 average pack price was 139 USD/kWh).
    * ``end_of_life_capacity``: remaining capacity at end of life (fraction); default 0.8,
      the usual EV warranty threshold (docs/formulation.md §5).
    * ``temperature_c``: cell temperature (°C); default 25, the reference temperature of
      both chemistries' fits.
    * ``battery_age_years``: age at which the calendar law is linearised in time (years);
      default 4, half of the common 8-year EV battery warranty (assumption).
    * ``calendar``: price calendar ageing (default true); ``calendar_pieces``: lines of the
      piecewise-linear SOC envelope (default 6: within −6 %..+2 % of the LFP rate over SOC
      0.2-1, tests/test_ageing.py).
    * ``cycling``: ``segments`` (default), ``throughput`` or ``none``; ``segments``: J
      (default 8, a modelling choice: more segments follow the depth curve more closely);
      ``reference_dod``: depth for the throughput cost (default 0.8, docs/formulation.md §5's
      worked example);
      ``cycle_linearisation``: ``age`` (default: the √FEC law's marginal loss for a battery of
      ``battery_age_years`` that has cycled as its fleet drives, like the calendar law's
      linearisation in time) or ``lifetime`` (Miner's rule with cycles to end of life, the
      Xu et al. form: cheaper for young batteries).
    """

    chemistry: str = "lfp"
    replacement_eur_per_kwh: float = 150.0
    end_of_life_capacity: float = 0.8
    temperature_c: float = 25.0
    battery_age_years: float = 4.0
    calendar: bool = True
    calendar_pieces: int = 6
    cycling: str = "segments"
    segments: int = 8
    reference_dod: float = 0.8
    cycle_linearisation: str = "age"

    def validate(self):
        if self.chemistry not in CHEMISTRIES:
            return f"ageing.chemistry must be one of {', '.join(CHEMISTRIES)}, got '{self.chemistry}'"
        if self.replacement_eur_per_kwh < 0:
            return f"ageing.replacement_eur_per_kwh must be >= 0, got {self.replacement_eur_per_kwh}"
        if not 0 < self.end_of_life_capacity < 1:
            return f"ageing.end_of_life_capacity must be in (0, 1), got {self.end_of_life_capacity}"
        if self.cycling not in ("segments", "throughput", "none"):
            return f"ageing.cycling must be segments, throughput or none, got '{self.cycling}'"
        if self.segments < 1 or self.calendar_pieces < 1:
            return "ageing.segments and ageing.calendar_pieces must be >= 1"
        if self.cycle_linearisation not in ("age", "lifetime"):
            return f"ageing.cycle_linearisation must be age or lifetime, got '{self.cycle_linearisation}'"
        if not 0 < self.reference_dod <= 1:
            return f"ageing.reference_dod must be in (0, 1], got {self.reference_dod}"
        if self.battery_age_years <= 0:
            return f"ageing.battery_age_years must be > 0, got {self.battery_age_years}"


class AgeingModel:
    """The numbers of one configuration: chemistry, cost per MWh of capacity lost, calendar
    lines and cycle costs.  Shared by the block and the evaluation outside the LP."""

    def __init__(self, cfg: AgeingConfig, c_rate: float = 0.5):
        self.cfg = cfg
        self.chem = CHEMISTRIES[cfg.chemistry]
        self.eol_loss = 1.0 - cfg.end_of_life_capacity
        self.age_h = cfg.battery_age_years * HOURS_PER_YEAR
        # EUR per MWh of capacity lost: the battery's value is used up at eol_loss
        self.eur_per_mwh_lost = cfg.replacement_eur_per_kwh * 1000.0 / self.eol_loss
        self.lines = self.chem.calendar_pwl(cfg.temperature_c, self.age_h, cfg.calendar_pieces)
        self.c_rate = c_rate
        self._costs = {}
        chem = self.chem
        if not chem.t_min_c <= cfg.temperature_c <= chem.t_max_c:
            warnings.warn(f"ageing: {cfg.temperature_c} °C is outside the {chem.name} fit's range "
                          f"{chem.t_min_c}-{chem.t_max_c} °C ({chem.source})", stacklevel=3)

    def calendar_rate(self, energy_mwh, capacity_mwh):
        """Capacity lost per hour (MWh/h) by the LP's convex envelope, for numbers."""
        return max(a * energy_mwh + b * capacity_mwh for a, b in self.lines)

    def fec_age(self, fec_per_day: float) -> float | None:
        """Full equivalent cycles a battery of the configured age has done at this rate (None
        with ``cycle_linearisation = "lifetime"``)."""
        if self.cfg.cycle_linearisation == "lifetime":
            return None
        return self.cfg.battery_age_years * 365.0 * fec_per_day

    def segment_costs(self, fec_per_day: float) -> np.ndarray:
        """Life share per unit of cycle depth, per segment (non-decreasing); for
        ``throughput`` a single flat segment at ``reference_dod``."""
        key = round(fec_per_day, 6)
        if key not in self._costs:
            age = self.fec_age(fec_per_day)
            if self.cfg.cycling == "throughput":
                d = self.cfg.reference_dod
                self._costs[key] = np.array([float(self.chem.life_used(d, self.c_rate, self.eol_loss, age)) / d])
            else:
                self._costs[key] = self.chem.depth_cost_pwl(self.cfg.segments, self.c_rate, self.eol_loss, age)
        return self._costs[key]

    def driving_life_per_ev_day(self, unit: dict) -> float:
        """Life share the EVs' own cycles use per EV and day (Miner's rule over the sample's
        sessions, one cycle of depth charged energy / battery each)."""
        key = (id(unit["depths"]), round(unit["fec_per_day"], 9))
        if key not in self._costs:
            used = [self.cycle_life_used(d, unit["fec_per_day"]) for d in unit["depths"]]
            self._costs[key] = unit["sessions_per_ev_day"] * float(np.mean(used)) if used else 0.0
        return self._costs[key]

    def cycle_life_used(self, depth: float, fec_per_day: float) -> float:
        """Life share of one cycle of ``depth`` (0.., beyond 1 at the deepest marginal cost)
        as the LP counts it, for a fleet cycling ``fec_per_day`` full cycles a day."""
        if self.cfg.cycling == "none" or depth <= 0:
            return 0.0
        c = self.segment_costs(fec_per_day)
        J = len(c)
        full = min(depth, 1.0)
        k = int(full * J)
        used = float(c[:k].sum()) / J + (full * J - k) / J * (float(c[k]) if k < J else 0.0)
        return used + max(depth - 1.0, 0.0) * float(c[-1])


def add_ageing(b, inst, ix, hub, cfg: AgeingConfig) -> None:
    storage = hub.get("ev_storage")
    units = storage.units
    c_rates = [float((f.sessions["charger_kw"] / f.sessions["battery_kwh"]).mean()) for f in inst.ev_fleets]
    model = AgeingModel(cfg, c_rate=float(np.mean(c_rates)) if c_rates else 0.5)
    b._ageing = dict(model=model, cfg=cfg, states=storage.states, units=units, cohorts=storage.cohorts)
    if cfg.replacement_eur_per_kwh == 0 or not units:
        return
    hours = ix.op_hours()
    value = model.eur_per_mwh_lost
    per_ny = defaultdict(list)  # (node, year) -> cost expressions (EUR in that year)

    def node_year(op):
        return ix.node_names[ix.op_node[op]], int(ix.op_year[op])

    # calendar: z ≥ a E + b B per (fleet, bus, op) with EVs plugged in
    if cfg.calendar:
        variable = [s for s in storage.states if not isinstance(s.energy, (int, float))]
        fixed = [s for s in storage.states if isinstance(s.energy, (int, float))]
        K = range(len(variable))
        b.cal = pyo.Var(K, within=pyo.NonNegativeReals)
        lines = [(float(a), float(c)) for a, c in model.lines]
        b.cal_env = pyo.Constraint(K, range(len(lines)), rule=lambda _, k, m: b.cal[k] >= lines[m][0]
                                   * variable[k].energy + lines[m][1] * variable[k].capacity_mwh)
        for k, s in enumerate(variable):
            per_ny[node_year(s.op)].append(float(value * hours[s.op]) * b.cal[k])
        for s in fixed:
            per_ny[node_year(s.op)].append(float(value * hours[s.op]) * model.calendar_rate(s.energy, s.capacity_mwh))
        b._cal_states = variable
    # cycling of V2G: the day's depth over its plugged-in V2G capacity
    if cfg.cycling != "none":
        dis = defaultdict(list)
        for s in storage.states:
            if not isinstance(s.discharge, (int, float)):
                dis[s.unit].append(s.discharge)
        keys = [u for u in sorted(dis) if units[u]["v2g_capacity_mwh"] > 0]
        b._cyc_units = keys
        if keys:
            U = range(len(keys))
            dt = float(ix.dt_h)
            J = cfg.segments if cfg.cycling == "segments" else 1
            b.depth = pyo.Var(U, range(J), bounds=(0.0, 1.0 / J))
            b.deep = pyo.Var(U, within=pyo.NonNegativeReals)  # beyond one full cycle a day
            b.depth_def = pyo.Constraint(U, rule=lambda _, i: sum(b.depth[i, j] for j in range(J)) + b.deep[i]
                                         == sum(dis[keys[i]]) * (dt / units[keys[i]]["eta_discharge"]
                                                                 / units[keys[i]]["v2g_capacity_mwh"]))
            for i, u in enumerate(keys):
                info = units[u]
                cost = [float(c) for c in model.segment_costs(info["fec_per_day"])]
                # EUR per unit of life of the V2G batteries plugged in that day, times days/yr
                worth = cfg.replacement_eur_per_kwh * 1000.0 * info["v2g_capacity_mwh"] * float(ix.day_weight[info["day"]])
                life = sum(cost[j] * b.depth[i, j] for j in range(J)) + cost[-1] * b.deep[i]
                per_ny[(info["node"], info["year"])].append(float(worth) * life)
    # the EVs' driving cycles: a constant (the plan does not change them), so that the
    # cost category holds the whole ageing cost of the table
    if cfg.cycling != "none":
        for u in units:
            life = model.driving_life_per_ev_day(u)
            worth = cfg.replacement_eur_per_kwh * u["n_evs"] * u["battery_kwh_mean"] * float(ix.day_weight[u["day"]])
            per_ny[(u["node"], u["year"])].append(life * worth)
    for (node, year), terms in per_ny.items():
        hub.cost("battery_ageing", node, sum(terms), year=year)


def _value(x) -> float:
    return float(x) if isinstance(x, (int, float)) else float(pyo.value(x))


def extract_ageing(b, inst, ix) -> dict:
    """The ``ageing`` table and summary section (see :func:`ageing_table`)."""
    return ageing_table(b, inst, ix)


def ageing_table(b, inst, ix) -> dict:
    info = b._ageing
    model, cfg = info["model"], info["cfg"]
    units, states = info["units"], info["states"]
    hours = ix.op_hours()
    rows = defaultdict(lambda: defaultdict(float))
    for s in states:
        u = units[s.unit]
        key = (u["node"], u["year"], u["fleet"])
        if cfg.calendar:
            e = _value(s.energy)
            rows[key]["cal_mwh"] += model.calendar_rate(e, s.capacity_mwh) * hours[s.op]
            rows[key]["cal_base_mwh"] += model.calendar_rate(s.baseline_energy_mwh, s.capacity_mwh) * hours[s.op]
        rows[key]["discharged_mwh"] += _value(s.discharge) * ix.dt_h / u["eta_discharge"] * ix.day_weight[u["day"]]
    fleet_buses = defaultdict(dict)  # (node, year, fleet) -> bus -> (EVs, MWh of batteries)
    for u in units:
        key = (u["node"], u["year"], u["fleet"])
        r = rows[key]
        w = float(ix.day_weight[u["day"]])
        # the EVs' own cycles: one per session, depth = charged energy / battery (Miner's rule)
        per_ev_day = model.driving_life_per_ev_day(u)
        r["drive_lost_mwh"] += per_ev_day * u["n_evs"] * w * model.eol_loss * u["battery_kwh_mean"] / 1000.0
        fleet_buses[key][u["bus"]] = (u["n_evs"], u["n_evs"] * u["battery_kwh_mean"] / 1000.0)
    # V2G cycling by unit (what the LP counted)
    v2g_life = defaultdict(float)
    for i, ui in enumerate(getattr(b, "_cyc_units", [])):
        u = units[ui]
        depth = _value(sum(b.depth[i, j] for j in range(len(model.segment_costs(u["fec_per_day"])))) + b.deep[i])
        v2g_life[(u["node"], u["year"], u["fleet"])] += model.cycle_life_used(depth, u["fec_per_day"]) \
            * u["v2g_capacity_mwh"] * float(ix.day_weight[u["day"]])
    out = []
    for (node, year, fleet), r in sorted(rows.items()):
        evs = sum(n for n, _ in fleet_buses[(node, year, fleet)].values())
        cap = sum(c for _, c in fleet_buses[(node, year, fleet)].values()) or 1.0  # MWh of the fleet's batteries
        drive_lost = r["drive_lost_mwh"]  # MWh of capacity lost per year
        v2g_lost = v2g_life[(node, year, fleet)] * model.eol_loss  # MWh
        cal_cost = r["cal_mwh"] * model.eur_per_mwh_lost
        cyc_cost = (drive_lost + v2g_lost) * model.eur_per_mwh_lost
        base_cost = (r["cal_base_mwh"] + drive_lost) * model.eur_per_mwh_lost
        out.append(dict(node=node, year=int(year), fleet=fleet, evs=evs,
                        calendar_loss_pct=100 * r["cal_mwh"] / cap, cycling_loss_pct=100 * (drive_lost + v2g_lost) / cap,
                        v2g_cycling_loss_pct=100 * v2g_lost / cap, cost_eur=cal_cost + cyc_cost,
                        baseline_loss_pct=100 * (r["cal_base_mwh"] + drive_lost) / cap,
                        calendar_cost_eur=cal_cost, cycling_cost_eur=cyc_cost, baseline_cost_eur=base_cost,
                        incremental_vs_baseline_eur=cal_cost + cyc_cost - base_cost,
                        v2g_discharged_mwh=r["discharged_mwh"]))
    cols = ["node", "year", "fleet", "evs", "calendar_loss_pct", "cycling_loss_pct", "v2g_cycling_loss_pct",
            "baseline_loss_pct", "cost_eur",
            "calendar_cost_eur", "cycling_cost_eur", "baseline_cost_eur", "incremental_vs_baseline_eur",
            "v2g_discharged_mwh"]
    df = pd.DataFrame(out, columns=cols)
    # the same schedule through the full nonlinear laws (rainflow cycles, exact SOC and time)
    ev = evaluate(model, info["cohorts"], units, ix.day_weight, float(ix.dt_h), _value)
    if len(df) and len(ev):
        df = df.merge(ev[["node", "year", "fleet", "calendar_exact_mwh", "cycling_exact_mwh",
                          "calendar_exact_baseline_mwh", "cycling_exact_baseline_mwh"]], on=["node", "year", "fleet"],
                      how="left")
        cap = np.array([sum(c for _, c in fleet_buses[(r.node, r.year, r.fleet)].values()) or 1.0
                        for r in df.itertuples()])
        df["calendar_loss_exact_pct"] = 100 * df.pop("calendar_exact_mwh") / cap
        df["cycling_loss_exact_pct"] = 100 * df.pop("cycling_exact_mwh") / cap
        df["baseline_loss_exact_pct"] = 100 * (df.pop("calendar_exact_baseline_mwh")
                                               + df.pop("cycling_exact_baseline_mwh")) / cap
    evaluation = {}
    if len(df) and "calendar_loss_exact_pct" in df:
        evaluation = dict(
            calendar_block_pct=float(df["calendar_loss_pct"].mean()),
            calendar_exact_pct=float(df["calendar_loss_exact_pct"].mean()),
            cycling_block_pct=float(df["cycling_loss_pct"].mean()),
            cycling_exact_pct=float(df["cycling_loss_exact_pct"].mean()),
            note="capacity lost per EV and year, mean over fleets and years: the block's linear estimate "
                 "and the same schedule through the nonlinear laws (rainflow cycles, exact SOC and time)")
    summary = dict(chemistry=cfg.chemistry, replacement_eur_per_kwh=cfg.replacement_eur_per_kwh,
                   evaluation=evaluation,
                   end_of_life_capacity=cfg.end_of_life_capacity, cycling=cfg.cycling,
                   battery_age_years=cfg.battery_age_years, temperature_c=cfg.temperature_c,
                   cost_eur_per_year=df.groupby("year")["cost_eur"].sum().to_dict() if len(df) else {},
                   incremental_eur_per_year=df.groupby("year")["incremental_vs_baseline_eur"].sum().to_dict()
                   if len(df) else {})
    return {"ageing": df, "summary": {"ageing": summary}}


register_block(BlockSpec("ageing", add_ageing, AgeingConfig, requires=("ev_storage",),
                         extract=extract_ageing, doc=__doc__))
