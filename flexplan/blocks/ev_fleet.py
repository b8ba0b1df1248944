"""EV fleet block: aggregate smart charging (V1G) and vehicle-to-grid (docs/formulation.md §4).

For every fleet f of the instance, every bus b of the fleet and every modelled (node,
year, representative day), the fleet's cohorts (:mod:`flexplan.ev.envelopes`) are scaled
by the number of EVs N_f(b, y) and become, per cohort c and window step τ,

    p_ch[c, τ] ∈ [0, N p̄_c(τ)],  p_dis[c, τ] ∈ [0, N p̄^dis_c(τ)]          (MW)
    e[c, τ]    ∈ [N E^min_c(τ), N E^max_c(τ)]                            (MWh)
    dep[c, τ]  ∈ [N Dep^min_c(τ), N Dep^max_c(τ)]                        (MWh, where EVs leave)
    e[c, τ+1] = e[c, τ] + η_c Δt p_ch[c, τ] − Δt/η_d p_dis[c, τ] + N Arr_c(τ+1) − dep[c, τ+1]

(e[c, W] = 0: every EV of the window has left).  A window longer than the rest of the day
wraps onto the same periodic day, so each day is a steady state.  The bus sees
P = Σ_{c, τ at this hour} (p_dis − p_ch); with ``reactive = true`` the chargers also give
Q within their kVA rating, (P, Q) inside a polygon of radius ``charger_kva_per_kw`` × the
plugged-in charger power.

Modes: ``uncontrolled`` (every EV charges at full power from arrival until full; a fixed
load with no variables), ``smart`` (V1G: when to charge is free within the envelope),
``v2g`` (EVs whose session is flagged ``v2g`` may also discharge, down to SOC_min) and
``tariff`` (the owners charge at least cost under the ``tariffs`` block's prices, solved
before the DSO plans, :mod:`flexplan.ev.response`; a fixed load for the DSO).  With a tariff
in the Hub the owners' bill is the cost category ``ev_energy``.

Flexibility: the fleet's baseline is its uncontrolled charging; per (bus, op)
``flex_down = max(0, baseline − scheduled)`` (less charging, or discharging) and
``flex_up = max(0, scheduled − baseline)``.  With ``flex_price_eur_per_mwh`` > 0 the DSO pays
that price for every MWh of ``flex_down`` (cost category ``ev_flexibility``): a stand-in
for the contract terms of the contracts block.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from ..channels import EVStorage
from ..hub import StorageState
from . import BlockSpec, register_block
from .linear import lin
from .network.common import polygon
from .rows import add_rows

MODES = ("uncontrolled", "smart", "v2g", "tariff")


@dataclass
class EVFleetConfig:
    """Options of the ``ev_fleet`` block.

    * ``mode``: ``uncontrolled`` | ``smart`` | ``v2g`` | ``tariff`` (default ``smart``;
      ``tariff``: the owners minimise their bill under the ``tariffs`` block's prices).
    * ``max_cohorts``: merge each fleet's arrival/departure windows into at most this many
      cohorts (0, the default: one cohort per distinct window, the tightest aggregate).
    * ``split_by_charger``: separate cohorts by charger power (default true: tighter).
    * ``per_session``: one cohort per sample session, the exact but large model (default
      false; for validation).
    * ``flex_price_eur_per_mwh``: price the DSO pays per MWh of downward flexibility
      (EUR/MWh).  Default 418: the median accepted utilisation price of UK Power Networks'
      Secure tender, Feb 2021, 360 GBP/MWh (docs/formulation.md §6), at 1.16 EUR/GBP (ECB 2021
      average reference rate).  A stand-in until contracts are modelled.
    * ``reactive``: chargers may give reactive power (default false);
      ``charger_kva_per_kw``: charger apparent-power rating per kW of active rating
      (default 1.0: at full active power no Q is left); ``polygon_sides``: polygon for the
      kVA limit (default 12).
    """

    mode: str = "smart"
    max_cohorts: int = 16
    split_by_charger: bool = True
    per_session: bool = False
    flex_price_eur_per_mwh: float = 418.0
    reactive: bool = False
    charger_kva_per_kw: float = 1.0
    polygon_sides: int = 12

    def validate(self):
        if self.mode not in MODES:
            return f"ev_fleet.mode must be one of {', '.join(MODES)}, got '{self.mode}'"
        if self.max_cohorts < 0:
            return f"ev_fleet.max_cohorts must be >= 0 (0: one cohort per window), got {self.max_cohorts}"
        if self.flex_price_eur_per_mwh < 0:
            return f"ev_fleet.flex_price_eur_per_mwh must be >= 0, got {self.flex_price_eur_per_mwh}"
        if self.charger_kva_per_kw < 1:
            return f"ev_fleet.charger_kva_per_kw must be >= 1, got {self.charger_kva_per_kw}"
        if self.polygon_sides < 4 or self.polygon_sides % 4:
            return f"ev_fleet.polygon_sides must be a multiple of 4 and >= 4, got {self.polygon_sides}"


@dataclass
class _Unit:
    """One fleet at one bus on one (node, year, day): ``first_op`` is the op of hour 0."""

    fleet: int
    bus: int
    first_op: int
    n_evs: float


def fleet_envelopes(fleet, ix, cfg: EVFleetConfig):
    return fleet.envelopes(ix.hours, ix.dt_h, v2g=cfg.mode == "v2g", max_cohorts=cfg.max_cohorts or None,
                           split_by_charger=cfg.split_by_charger, per_session=cfg.per_session)


def _units(fleets, ix) -> list[_Unit]:
    """(fleet, bus, node-year-day) with at least one EV."""
    H = ix.hours
    day_starts = np.flatnonzero(ix.op_hour == 0)
    units = []
    for f, fleet in enumerate(fleets):
        factor = [ix.ev_factor(node, fleet.name) for node in ix.node_names]  # per node position
        for op0 in day_starts.tolist():
            n = float(fleet.evs.get(int(ix.op_year[op0]), 0.0)) * factor[ix.op_node[op0]]
            if n <= 0:
                continue
            assert ix.op_hour[op0 + H - 1] == H - 1
            for bus in fleet.buses:
                units.append(_Unit(f, bus, op0, n))
    return units


def add_ev_fleet(b, inst, ix, hub, cfg: EVFleetConfig) -> None:
    fleets = inst.ev_fleets
    H, dt = ix.hours, float(ix.dt_h)
    envs = [fleet_envelopes(fl, ix, cfg) for fl in fleets]
    units = _units(fleets, ix)
    b._flex = dict(fleets=fleets, envs=envs, units=units, cfg=cfg, tariff=hub.get("tariff"))  # for extract
    cap = hub.get("charging_cap")  # connection agreement: MW per plugged-in EV and step of the day
    cap_mw = cap.mw_per_ev if cap is not None else None
    q_rule = hub.get("charger_q")  # grid code: Mvar injected per MW charged
    q_per_p = q_rule.q_per_p if q_rule is not None else None
    tariff = hub.get("tariff")
    storage = EVStorage()  # the batteries' states, for blocks that price their use (channel ev_storage)
    # a bound on each bus's fleet power, for the network's flow ranges (a fixed schedule,
    # uncontrolled or tariff-driven, is a withdrawal of known size instead: no bound)
    for f, fleet in enumerate(fleets if cfg.mode not in ("uncontrolled", "tariff") else ()):
        env = envs[f]
        peak = float(np.max(env.p_max_profile_mw() + env.per_clock_step(lambda c: c.p_dis_max_mw)))
        kva = cfg.charger_kva_per_kw if cfg.reactive else 1.0
        if q_per_p:  # grid code: Q = tan φ · P on top of P
            kva = max(kva, float(np.hypot(1.0, q_per_p)))
        for bus in fleet.buses:
            hub.bound_injection(bus, kva * peak * float(fleet.evs.max()) * ix.max_ev_factor(fleet.name))

    _publish_units(storage, fleets, envs, units, ix)
    if cfg.mode in ("uncontrolled", "tariff"):
        fixed = _fixed_profiles(fleets, envs, cap_mw, tariff, cfg)
        b._flex["fixed"] = fixed
        for ui, u in enumerate(units):
            env = envs[u.fleet]
            charge, energy = fixed[(u.fleet, u.bus)][:2]
            base = env.baseline_profile_mw() * u.n_evs
            p = np.zeros(ix.n_ops)
            p[u.first_op:u.first_op + H] = charge * u.n_evs
            hub.withdraw(u.bus, p, -(q_per_p or 0.0) * p, sheddable=False,  # grid code: Q while charging
                         phase=fleets[u.fleet].phase)
            if cfg.mode == "uncontrolled":  # cohort traces are known only for the baseline
                for c in env.cohorts:
                    storage.cohorts.append(dict(
                        unit=ui, energy=(c.e_max_mwh * u.n_evs).tolist(), charge=(c.baseline_mw * u.n_evs).tolist(),
                        discharge=[0.0] * c.width, capacity=c.capacity_mwh * u.n_evs,
                        baseline_energy=c.e_max_mwh * u.n_evs, baseline_charge=c.baseline_mw * u.n_evs))
            cap = env.per_clock_step(lambda c: c.capacity_mwh) * u.n_evs
            e_base = env.per_clock_step(lambda c: c.e_max_mwh) * u.n_evs
            for h in np.flatnonzero(cap > 0).tolist():
                storage.states.append(StorageState(fleets[u.fleet].name, u.bus, u.first_op + h, ui,
                                                float(energy[h] * u.n_evs), float(charge[h] * u.n_evs), 0.0,
                                                float(cap[h]), float(e_base[h]), float(base[h])))
        _bill_owners(hub, ix, storage, tariff, b)
        if hub.wants("ev_storage"):
            hub.put("ev_storage", storage)
        return

    if cap_mw is not None:  # every EV must still get its energy under the caps
        from ..ev.response import tariff_response

        for fleet, env in zip(fleets, envs):
            tariff_response(env, None, cap_mw, fleet.name)

    # ---- flat index of (unit, cohort, window step) -------------------------------------
    op, lo_e, hi_e, hi_p, hi_d, nxt, arr_next = [], [], [], [], [], [], []
    dep_of = []  # per step: index into dep arrays of the departure at boundary τ+1, or -1
    dep_lo, dep_hi = [], []
    for u in units:
        env, n = envs[u.fleet], u.n_evs
        for c in env.cohorts:
            W = c.width
            base = len(op)
            op.extend((u.first_op + c.clock_steps(H)).tolist())
            lo_e.extend((n * c.e_min_mwh).tolist())
            hi_e.extend((n * c.e_max_mwh).tolist())
            p_hi = n * c.p_max_mw
            if cap_mw is not None:  # connection agreement: a cap per plugged-in EV
                p_hi = np.minimum(p_hi, cap_mw[c.clock_steps(H)] * n * c.plugged)
            hi_p.extend(p_hi.tolist())
            hi_d.extend((n * c.p_dis_max_mw).tolist())
            nxt.extend(list(range(base + 1, base + W)) + [-1])
            arr_next.extend((n * c.arrivals_mwh[1:]).tolist())
            for tau in range(W):
                lo, hi = n * c.dep_min_mwh[tau + 1], n * c.dep_max_mwh[tau + 1]
                if hi > 0:
                    dep_of.append(len(dep_lo))
                    dep_lo.append(float(lo))
                    dep_hi.append(float(hi))
                else:
                    dep_of.append(-1)
    J = range(len(op))
    b.p_ch = pyo.Var(J, bounds=lambda _, j: (0.0, hi_p[j]))
    dis_keys = [j for j in J if hi_d[j] > 0]
    b.p_dis = pyo.Var(dis_keys, bounds=lambda _, j: (0.0, hi_d[j]))
    b.e = pyo.Var(J, bounds=lambda _, j: (lo_e[j], hi_e[j]))
    b.dep = pyo.Var(range(len(dep_lo)), bounds=lambda _, k: (dep_lo[k], dep_hi[k]))
    has_dis = set(dis_keys)
    # plain lists/dicts of the variables for the rows: far cheaper than Pyomo's __getitem__
    e_, p_ch_, dep_, p_dis_ = list(b.e.values()), list(b.p_ch.values()), list(b.dep.values()), dict(b.p_dis.items())
    # per step j the fleet's efficiencies (times the step length)
    eta_ch_j, eta_dis_j = [], []
    for u in units:
        env = envs[u.fleet]
        w = env.n_variables_per_day
        eta_ch_j.extend([float(env.eta_charge) * dt] * w)
        eta_dis_j.extend([dt / float(env.eta_discharge)] * w)

    def energy(j):  # one flat row (blocks/rows.py)
        coefs, vs = [-1.0, -eta_ch_j[j]], [e_[j], p_ch_[j]]
        if nxt[j] >= 0:
            coefs.append(1.0)
            vs.append(e_[nxt[j]])
        if j in has_dis:
            coefs.append(eta_dis_j[j])
            vs.append(p_dis_[j])
        if dep_of[j] >= 0:
            coefs.append(1.0)
            vs.append(dep_[dep_of[j]])
        return coefs, vs, arr_next[j], arr_next[j]

    add_rows(b, "energy", J, energy)

    # ---- per (unit, op): net power, flexibility, reactive power -------------------------
    at = defaultdict(list)  # (unit, op) -> steps
    j = 0
    for ui, u in enumerate(units):
        w = envs[u.fleet].n_variables_per_day
        for jj in range(j, j + w):
            at[(ui, op[jj])].append(jj)
        j += w
    keys = sorted(at)
    b._keys = keys
    b._at = at
    base = {}
    for ui, u in enumerate(units):
        prof = envs[u.fleet].baseline_profile_mw() * u.n_evs
        for h in range(H):
            base[(ui, u.first_op + h)] = float(prof[h])

    if q_per_p is not None and cfg.reactive:
        from ..errors import RecipeError

        raise RecipeError("ev_fleet.reactive (Q as a decision) and the grid_code block (Q fixed by rule) exclude "
                          "each other")
    # per key, built once: charging (MW drawn), discharging and the net injection
    charge = [lin([1.0] * len(at[k]), [p_ch_[jj] for jj in at[k]]) for k in keys]
    dis_at = [[p_dis_[jj] for jj in at[k] if jj in has_dis] for k in keys]
    discharge = [lin([1.0] * len(d), d) if d else 0.0 for d in dis_at]
    net = [lin([1.0] * len(d) + [-1.0] * len(at[k]), d + [p_ch_[jj] for jj in at[k]]) for k, d in zip(keys, dis_at)]

    K = range(len(keys))
    if cfg.flex_price_eur_per_mwh > 0:
        b.flex_down = pyo.Var(K, within=pyo.NonNegativeReals)
        add_rows(b, "flex_down_def", K, lambda k: ([1.0] + [-c for c in net[k].linear_coefs],
                                                   [b.flex_down[k], *net[k].linear_vars], base[keys[k]], None))
        hours = ix.op_hours() * ix.op_price_factor()  # the tree's price multiplier per node
        per_ny = defaultdict(list)
        for k, (ui, o) in enumerate(keys):
            per_ny[(ix.node_names[ix.op_node[o]], int(ix.op_year[o]))].append(
                float(cfg.flex_price_eur_per_mwh * hours[o]) * b.flex_down[k])
        for (node, year), terms in per_ny.items():
            hub.cost("ev_flexibility", node, sum(terms), year=year)
    if cfg.reactive:
        edges = polygon(cfg.polygon_sides)
        s_max = [cfg.charger_kva_per_kw * sum(hi_p[jj] + (hi_d[jj] if jj in has_dis else 0.0) for jj in at[k])
                 for k in keys]
        b.q = pyo.Var(K, bounds=lambda _, k: (-s_max[k], s_max[k]))
        add_rows(b, "kva", product(K, range(len(edges))), lambda k, m: (
            [edges[m][0] * c for c in net[k].linear_coefs] + [edges[m][1]], [*net[k].linear_vars, b.q[k]],
            None, edges[m][2] * s_max[k]))
    for k, (ui, o) in enumerate(keys):
        if q_per_p:
            q = float(q_per_p) * charge[k]
        else:
            q = b.q[k] if cfg.reactive else None
        hub.inject(units[ui].bus, o, p=net[k], q=q, phase=fleets[units[ui].fleet].phase)
    if not (hub.wants("ev_storage") or tariff is not None):
        return  # no block prices the batteries' use: skip building their expressions
    # battery states for blocks that price their use (ageing): per cohort window ...
    j = 0
    for ui, u in enumerate(units):
        for c in envs[u.fleet].cohorts:
            steps = range(j, j + c.width)
            storage.cohorts.append(dict(
                unit=ui, energy=[b.e[jj] for jj in steps], charge=[b.p_ch[jj] for jj in steps],
                discharge=[b.p_dis[jj] if jj in has_dis else 0.0 for jj in steps], capacity=c.capacity_mwh * u.n_evs,
                baseline_energy=c.e_max_mwh * u.n_evs, baseline_charge=c.baseline_mw * u.n_evs))
            j += c.width
    # ... and per (fleet, bus, op)
    profiles = {}
    for ui, u in enumerate(units):
        if u.fleet not in profiles:
            env = envs[u.fleet]
            profiles[u.fleet] = (env.per_clock_step(lambda c: c.capacity_mwh), env.per_clock_step(lambda c: c.e_max_mwh),
                                 env.baseline_profile_mw())
    for k, (ui, o) in enumerate(keys):
        u = units[ui]
        cap, e_base, p_base = profiles[u.fleet]
        h = o - u.first_op
        storage.states.append(StorageState(fleets[u.fleet].name, u.bus, o, ui, sum(b.e[jj] for jj in at[(ui, o)]),
                                        charge[k], discharge[k], float(cap[h] * u.n_evs), float(e_base[h] * u.n_evs),
                                        float(p_base[h] * u.n_evs)))
    _bill_owners(hub, ix, storage, tariff, b)
    if hub.wants("ev_storage"):
        hub.put("ev_storage", storage)


def _cohort_baselines(env) -> np.ndarray:
    """Each cohort's uncontrolled charging per clock step, per EV of the fleet (cohorts × steps)."""
    out = np.zeros((len(env.cohorts), env.hours))
    for k, c in enumerate(env.cohorts):
        np.add.at(out[k], c.clock_steps(env.hours), c.baseline_mw)
    return out


def _fixed_profiles(fleets, envs, cap, tariff, cfg) -> dict:
    """Per (fleet, bus), per EV: charging (MW per clock step), plugged-in energy (MWh) and each
    cohort's charging (cohorts × steps) when the EVs charge on arrival (uncontrolled) or minimise
    their bill (tariff: at the prices of their bus, which differ with a nodal tariff)."""
    from ..errors import RecipeError
    from ..ev.response import staggered_response, tariff_response

    out, shared = {}, {}
    for f, (fleet, env) in enumerate(zip(fleets, envs)):
        for bus in fleet.buses:
            if cfg.mode == "uncontrolled":
                key = (f, None)
                if key not in shared:
                    shared[key] = ((env.baseline_profile_mw(), env.per_clock_step(lambda c: c.e_max_mwh),
                                    _cohort_baselines(env)) if cap is None
                                   else tariff_response(env, None, cap, fleet.name, per_cohort=True))  # as early as the caps let them
            else:
                if tariff is None:
                    raise RecipeError("ev_fleet.mode = \"tariff\" needs the 'tariffs' block in the recipe "
                                      "(the owners respond to its prices)")
                key = (f, bus if bus in tariff.bus_adder else None)
                if key not in shared:
                    shared[key] = staggered_response(env, tariff.at_bus(bus)[0], cap, fleet.name, per_cohort=True)
            out[(f, bus)] = shared[key]
    return out


def _bill_owners(hub, ix, storage, tariff, b=None) -> None:
    """With a tariff in the Hub: the owners' bill for charging (V2G export credited at the same
    price), cost category ``ev_energy``; with a capacity tariff, EUR per kW-year of each
    fleet's peak charging at each bus in each modelled year (``ev_network_capacity``; the
    fleet's peak, so the diversity between its EVs lowers it)."""
    if tariff is None:
        return
    fee = tariff.network_eur_per_kw_year
    if fee > 0:
        peaks = defaultdict(list)  # (fleet, bus, node, year) -> charging per op
        for s in storage.states:
            peaks[(s.fleet, s.bus, ix.node_names[ix.op_node[s.op]], int(ix.op_year[s.op]))].append(s.charge)
        keys = sorted(peaks, key=str)
        fixed = {k: max(v) for k, v in peaks.items() if all(isinstance(x, (int, float)) for x in v)}
        var = [k for k in keys if k not in fixed]
        if var and b is not None:
            b.peak_charge = pyo.Var(range(len(var)), within=pyo.NonNegativeReals)
            rows = [(i, x) for i, k in enumerate(var) for x in peaks[k]]
            b.peak_def = pyo.Constraint(range(len(rows)), rule=lambda _, r: b.peak_charge[rows[r][0]] >= rows[r][1])
        for k in keys:
            amount = fixed[k] if k in fixed else b.peak_charge[var.index(k)]
            hub.cost("ev_network_capacity", k[2], float(fee * 1000.0) * amount, year=k[3])
    price = {bus: tariff.at_bus(bus)[1] for bus in tariff.bus_adder}
    hours = ix.op_hours()
    per_ny = defaultdict(list)
    for s in storage.states:
        h = int(ix.op_hour[s.op])
        w = float(price.get(s.bus, tariff.price)[h] * hours[s.op])
        term = s.charge if isinstance(s.discharge, (int, float)) and s.discharge == 0 else s.charge - s.discharge
        per_ny[(ix.node_names[ix.op_node[s.op]], int(ix.op_year[s.op]))].append(w * term)
    for (node, year), terms in per_ny.items():
        hub.cost("ev_energy", node, sum(terms), year=year)


def _publish_units(storage, fleets, envs, units, ix) -> None:
    """Per unit (fleet, bus, node, year, day): what blocks that price battery use need."""
    depths = {}
    for u in units:
        fleet, env = fleets[u.fleet], envs[u.fleet]
        s = fleet.sessions
        if u.fleet not in depths:  # one array per fleet, shared by its units
            depths[u.fleet] = ((s["energy_required_kwh"] - s["energy_arrival_kwh"]) / s["battery_kwh"]).to_numpy()
        v2g_b = float(s.loc[s["v2g"], "battery_kwh"].sum()) if "v2g" in s else 0.0
        storage.units.append(dict(
            fleet=fleet.name, bus=u.bus, node=ix.node_names[ix.op_node[u.first_op]], year=int(ix.op_year[u.first_op]),
            day=int(ix.op_day[u.first_op]), first_op=u.first_op, n_evs=u.n_evs,
            battery_kwh_mean=float(s["battery_kwh"].mean()),
            sessions_per_ev_day=env.n_sessions / env.ev_days,
            charged_mwh_per_ev_day=env.energy_required_mwh,
            # V2G-capable battery capacity plugged in per EV and day (MWh): the depth reference
            v2g_capacity_mwh=u.n_evs * v2g_b * 1e-3 / env.ev_days,
            depths=depths[u.fleet],
            # the driving cycles' full equivalents per EV and day
            fec_per_day=float(depths[u.fleet].sum() / env.ev_days),
            eta_charge=env.eta_charge, eta_discharge=env.eta_discharge))


def extract_ev_fleet(b, inst, ix) -> dict:
    """``ev_flexibility`` (tidy, per fleet, bus and op), ``ev_cohorts`` (per fleet, bus, node,
    year, day and cohort: the cohort's sessions that day, the energy it charged and discharged
    (MWh, grid side) and, with a tariff, its bill (EUR, the tariff's price at the bus as
    ``ev_energy`` bills it)) and the ``ev`` summary section."""
    data = b._flex
    fleets, envs, units, cfg = data["fleets"], data["envs"], data["units"], data["cfg"]
    H = ix.hours
    dt = float(ix.dt_h)
    tariff = data.get("tariff")
    rows, crows = [], []
    if cfg.mode not in ("uncontrolled", "tariff"):
        p_ch = np.array([pyo.value(b.p_ch[j]) for j in range(len(b.p_ch))])
        e = np.array([pyo.value(b.e[j]) for j in range(len(b.e))])
        p_dis = np.zeros(len(p_ch))
        for j in b.p_dis:
            p_dis[j] = pyo.value(b.p_dis[j])
    j = 0
    frame = ix.op_frame()
    for u in units:
        env, n = envs[u.fleet], u.n_evs
        ops = np.arange(u.first_op, u.first_op + H)
        base = env.baseline_profile_mw() * n
        e_lo = env.per_clock_step(lambda c: c.e_min_mwh) * n
        e_hi = env.per_clock_step(lambda c: c.e_max_mwh) * n
        if cfg.mode in ("uncontrolled", "tariff"):
            charge, energy, by_cohort = (x * n for x in data["fixed"][(u.fleet, u.bus)])
            sched, discharge = charge.copy(), np.zeros(H)
            dis_cohort = np.zeros_like(by_cohort)
        else:
            w = env.n_variables_per_day
            sl = slice(j, j + w)
            steps = np.concatenate([c.clock_steps(H) for c in env.cohorts])
            charge = np.bincount(steps, weights=p_ch[sl], minlength=H)
            discharge = np.bincount(steps, weights=p_dis[sl], minlength=H)
            energy = np.bincount(steps, weights=e[sl], minlength=H)
            sched = charge - discharge
            by_cohort, dis_cohort = np.zeros((len(env.cohorts), H)), np.zeros((len(env.cohorts), H))
            k0 = j
            for k, c in enumerate(env.cohorts):
                cs = c.clock_steps(H)
                np.add.at(by_cohort[k], cs, p_ch[k0:k0 + c.width])
                np.add.at(dis_cohort[k], cs, p_dis[k0:k0 + c.width])
                k0 += c.width
            j += w
        price = tariff.at_bus(u.bus)[1] if tariff is not None else None
        for k, c in enumerate(env.cohorts):
            crows.append((fleets[u.fleet].name, inst.network.buses["name"].iloc[u.bus], ix.node_names[ix.op_node[u.first_op]],
                          int(ix.op_year[u.first_op]), ix.days[ix.op_day[u.first_op]], k, int(c.start), int(c.width),
                          c.sessions / env.ev_days * n, float(by_cohort[k].sum() * dt), float(dis_cohort[k].sum() * dt),
                          float((price * (by_cohort[k] - dis_cohort[k])).sum() * dt) if price is not None else 0.0))
        f = frame.iloc[ops]
        rows.append(pd.DataFrame({
            "node": f["node"].to_numpy(), "year": f["year"].to_numpy(), "day": f["day"].to_numpy(),
            "hour": f["hour"].to_numpy(), "fleet": fleets[u.fleet].name,
            "bus": inst.network.buses["name"].iloc[u.bus], "n_evs": n, "baseline_mw": base,
            "scheduled_mw": sched, "charge_mw": charge, "discharge_mw": discharge,
            "flex_down_mw": np.maximum(base - sched, 0.0), "flex_up_mw": np.maximum(sched - base, 0.0),
            "energy_mwh": energy, "energy_min_mwh": e_lo, "energy_max_mwh": e_hi}))
    cols = ["node", "year", "day", "hour", "fleet", "bus", "n_evs", "baseline_mw", "scheduled_mw", "charge_mw",
            "discharge_mw", "flex_down_mw", "flex_up_mw", "energy_mwh", "energy_min_mwh", "energy_max_mwh"]
    df = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=cols)
    cohorts = pd.DataFrame(crows, columns=["fleet", "bus", "node", "year", "day", "cohort", "arrival_step",
                                           "window_steps", "sessions", "charge_mwh", "discharge_mwh", "bill_eur"])
    ev = ev_summary(df, fleets, envs, ix, cfg)
    return {"ev_flexibility": df, "ev_cohorts": cohorts, "summary": {"ev": ev}, "report": ev_report(ev)}


def ev_report(ev: dict) -> str:
    """The fleets' section of report.md: per fleet and year, EVs, energy, peaks, flexibility."""
    if not ev.get("fleets"):
        return ""
    lines = [f"## EV fleets (mode: {ev['mode']})", "",
             "| fleet | year | EVs | energy MWh/yr | peak uncontrolled MW | peak planned MW | flex down MWh/yr |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for f in ev["fleets"]:
        for y in f["years"]:
            lines.append(f"| {f['name']} | {y['year']} | {y['evs']:,.0f} | {y['energy_mwh_per_year']:,.1f} | "
                         f"{y['peak_baseline_mw']:.3f} | {y['peak_scheduled_mw']:.3f} | "
                         f"{y['flex_down_mwh_per_year']:,.1f} |")
    return "\n".join(lines)


def ev_summary(df: pd.DataFrame, fleets, envs, ix, cfg) -> dict:
    """EV counts, energy, peaks (baseline vs scheduled) and flexibility used, per fleet and
    modelled year; volumes are per year (MWh/yr, weighted by the day weights)."""
    out = {"mode": cfg.mode, "fleets": []}
    if df.empty:
        return out
    w = dict(zip(ix.days, ix.day_weight))
    df = df.assign(_h=[w[d] * ix.dt_h for d in df["day"]])
    for f, fleet in enumerate(fleets):
        sub = df[df["fleet"] == fleet.name]
        years = []
        for (node, year), g in sub.groupby(["node", "year"], sort=False):
            tot = g.groupby(["day", "hour"])[["baseline_mw", "scheduled_mw"]].sum()
            years.append(dict(
                node=node, year=int(year), evs=float(g.groupby("bus")["n_evs"].first().sum()),
                energy_mwh_per_year=float((g["charge_mw"] * g["_h"]).sum()),
                baseline_energy_mwh_per_year=float((g["baseline_mw"] * g["_h"]).sum()),
                discharge_mwh_per_year=float((g["discharge_mw"] * g["_h"]).sum()),
                flex_down_mwh_per_year=float((g["flex_down_mw"] * g["_h"]).sum()),
                flex_up_mwh_per_year=float((g["flex_up_mw"] * g["_h"]).sum()),
                peak_baseline_mw=float(tot["baseline_mw"].max()), peak_scheduled_mw=float(tot["scheduled_mw"].max())))
        env = envs[f]
        out["fleets"].append(dict(name=fleet.name, behaviour=fleet.behaviour, buses=list(fleet.bus_names),
                                  source=fleet.source, cohorts=env.n_cohorts, sample_sessions=env.n_sessions,
                                  sample_ev_days=env.ev_days, v2g_share=fleet.v2g_share,
                                  clipped_sessions=fleet.clipped,
                                  sessions_per_ev_day=env.n_sessions / env.ev_days, years=years))
    return out


def _reference(options: dict) -> dict | None:
    """The options without flexibility (EVs charge on arrival), or None when already so."""
    if options.get("mode", EVFleetConfig.mode) == "uncontrolled":
        return None
    return {**options, "mode": "uncontrolled"}


register_block(BlockSpec("ev_fleet", add_ev_fleet, EVFleetConfig, offers=("ev_storage",),
                         uses=("charging_cap", "charger_q", "tariff"), extract=extract_ev_fleet, doc=__doc__,
                         day_separable=True, reference=_reference))
