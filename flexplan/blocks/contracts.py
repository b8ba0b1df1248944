"""Market-based flexibility contracts, on the ENA Open Networks products (docs/formulation.md §6).

The DSO contracts capacity C (MW of downward flexibility: less charging, or V2G) from each
fleet at each bus, per tree node, for a daily window, and activates A ≤ C in the window's
hours; the fleet must deliver every activation within its envelope, and the DSO gets no
turn-down it has not bought:

    0 ≤ A(t) ≤ min(C, N · F_q(t)),  A(t) = baseline(t) − (charge(t) − discharge(t))  in the window
    charge(t) − discharge(t) ≥ baseline(t)                            outside it (the energy
                                                                      moved out of the window
                                                                      comes back after it)
    F_q(t) = the q-quantile over the sample's days of the fleet's uncontrolled charging per
             EV in that hour: what it can turn down with confidence 1 − q (default q = 0.1)

Products (payments go to the Hub as DSO costs):

* ``secure``: availability fee per MW and window hour (``contract_availability``) + utilisation
  fee per MWh activated (``contract_utilisation``);
* ``sustain``: scheduled — the whole C is delivered in every window hour, paid per kW-year
  (``contract_availability``); a shortfall S ≥ 0 with A + S = C is allowed, free up to
  ``tolerance`` x C and penalised beyond (``contract_penalty``: each 1 % short costs
  ``penalty_factor`` % of the payment, i.e. penalty_factor x the payment per MWh for every MWh
  beyond the tolerance), and reported;
* ``dynamic`` / ``restore``: utilisation only.

Set the fleet's own ``flex_price_eur_per_mwh`` to 0 with contracts (else flexibility is paid
twice).  Prices default to UKPN's 2021 tenders (docs/formulation.md §6) at 1.16 EUR/GBP.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from . import BlockSpec, register_block

GBP = 1.16  # EUR per GBP, ECB 2021 average reference rate (assumption for the conversion)
PRODUCTS = ("secure", "sustain", "dynamic", "restore")


@dataclass
class ContractConfig:
    """Options of the ``contracts`` block.

    * ``product``: ``secure`` (default), ``sustain``, ``dynamic``, ``restore``.
    * ``window_start_h`` (default 16) and ``window_hours`` (default 4): the daily window
      (UKPN's Secure windows are weekday evenings).
    * ``availability_eur_per_mw_h``: default 72.5 (UKPN Secure, Feb 2021, accepted median
      62.5 GBP/MW/h).
    * ``utilisation_eur_per_mwh``: default by product: secure 418 (360 GBP/MWh), dynamic 632
      (545 GBP/MWh), restore 696 (600 GBP/MWh); sustain 0.
    * ``sustain_eur_per_kw_year``: default 55.2 (UKPN LV Sustain 2021, 47.58 GBP/kW/yr).
    * ``reliability_quantile``: q of the offered capacity (default 0.1, docs/formulation.md §6).
    * ``tolerance`` (default 0.05) and ``penalty_factor`` (default 3): WPD's under-delivery rule.
    * ``contracted_mw``: a contract already signed, MW per fleet and bus (default: none, the
      model chooses); it may exceed what the fleet can deliver: the shortfall is reported.
    """

    product: str = "secure"
    window_start_h: int = 16
    window_hours: int = 4
    availability_eur_per_mw_h: float = 62.5 * GBP
    utilisation_eur_per_mwh: float = -1.0  # < 0: the product's default
    sustain_eur_per_kw_year: float = 47.58 * GBP
    reliability_quantile: float = 0.1
    tolerance: float = 0.05
    penalty_factor: float = 3.0
    contracted_mw: float = -1.0  # >= 0: a contract already signed, per fleet and bus (MW)

    def validate(self):
        if self.product not in PRODUCTS:
            return f"contracts.product must be one of {', '.join(PRODUCTS)}, got '{self.product}'"
        if not 0 <= self.window_start_h < 24 or not 1 <= self.window_hours <= 24:
            return "contracts.window_start_h must be 0..23 and window_hours 1..24"
        if not 0 <= self.reliability_quantile <= 1:
            return "contracts.reliability_quantile must be in [0, 1]"
        if self.availability_eur_per_mw_h < 0 or self.sustain_eur_per_kw_year < 0 or self.penalty_factor < 0:
            return "contracts: fees and penalty_factor must be >= 0"

    @property
    def utilisation(self) -> float:
        if self.utilisation_eur_per_mwh >= 0:
            return self.utilisation_eur_per_mwh
        return {"secure": 360.0, "dynamic": 545.0, "restore": 600.0, "sustain": 0.0}[self.product] * GBP


def reliable_turn_down(fleet, hours: int, dt_h: float, q: float) -> np.ndarray:
    """MW per EV the fleet can turn down in each step of the day with confidence 1 − q: the
    q-quantile over the sample's days of its uncontrolled charging per EV in that step
    (sessions without a ``day`` column are one day)."""
    from ..ev.envelopes import build_envelopes

    s = fleet.sessions
    days = s["day"].to_numpy() if "day" in s else np.zeros(len(s), dtype=int)
    n_days = len(np.unique(days)) if len(s) else 1
    n_evs = fleet.ev_days / n_days
    per_day = []
    for d in np.unique(days):
        env = build_envelopes(s[days == d], n_evs, hours, dt_h, eta_charge=fleet.eta_charge, soc_max=fleet.soc_max,
                              split_by_charger=False, max_cohorts=4)
        per_day.append(env.baseline_profile_mw())
    return np.quantile(np.array(per_day), q, axis=0) if per_day else np.zeros(hours)


def add_contracts(b, inst, ix, hub, cfg: ContractConfig) -> None:
    storage = hub.get("ev_storage")
    units = storage.units
    H, dt = ix.hours, float(ix.dt_h)
    step_hour = (np.arange(H) * dt).astype(int)
    in_window = ((step_hour - cfg.window_start_h) % 24) < cfg.window_hours
    reliable = {f.name: reliable_turn_down(f, H, dt, cfg.reliability_quantile) for f in inst.ev_fleets}
    b._contracts = dict(cfg=cfg, reliable=reliable)
    states = [s for s in storage.states if in_window[int(ix.op_hour[s.op])]]
    if not states:
        return
    # contracted capacity per (fleet, bus, node); activations per op within what the fleet
    # can turn down with confidence in that hour
    groups = {}
    limit = []
    for s in states:
        u = units[s.unit]
        key = (u["fleet"], u["bus"], u["node"])
        limit.append(float(reliable[u["fleet"]][int(ix.op_hour[s.op])] * u["n_evs"]))
        groups[key] = max(groups.get(key, 0.0), limit[-1])
    keys = sorted(groups)
    kid = {k: i for i, k in enumerate(keys)}
    if cfg.contracted_mw >= 0:
        b.contracted = pyo.Var(range(len(keys)), bounds=(cfg.contracted_mw, cfg.contracted_mw))
    else:
        b.contracted = pyo.Var(range(len(keys)), within=pyo.NonNegativeReals)
    for k in keys:
        hub.decide(k[2], [b.contracted[kid[k]]])
    S = range(len(states))
    b.activated = pyo.Var(S, bounds=lambda _, i: (0.0, limit[i]))
    gid = [kid[(units[s.unit]["fleet"], units[s.unit]["bus"], units[s.unit]["node"])] for s in states]
    b.within_contract = pyo.Constraint(S, rule=lambda _, i: b.activated[i] <= b.contracted[gid[i]])
    # an activation is exactly the fleet's turn-down below its uncontrolled charging ...
    b.delivered = pyo.Constraint(S, rule=lambda _, i: b.activated[i] == states[i].baseline_charge_mw
                                 - (states[i].charge - states[i].discharge))
    # ... and outside the window the DSO has bought nothing: no turn-down there
    outside = [s for s in storage.states if not in_window[int(ix.op_hour[s.op])]
               and not isinstance(s.charge, (int, float))]
    b.uncontracted = pyo.Constraint(range(len(outside)), rule=lambda _, i: outside[i].charge - outside[i].discharge
                                    >= outside[i].baseline_charge_mw)
    hours = ix.op_hours() * ix.op_price_factor()  # fees scale with the tree's price multiplier
    per_ny = defaultdict(lambda: defaultdict(list))
    if cfg.product == "sustain" or cfg.contracted_mw >= 0:
        b.shortfall = pyo.Var(S, within=pyo.NonNegativeReals)
        b.scheduled = pyo.Constraint(S, rule=lambda _, i: b.activated[i] + b.shortfall[i] == b.contracted[gid[i]])
        # within the tolerance a shortfall is free; beyond it each MWh short is penalised
        b.excess_shortfall = pyo.Var(S, within=pyo.NonNegativeReals)
        b.tolerated = pyo.Constraint(S, rule=lambda _, i: b.excess_shortfall[i] >= b.shortfall[i]
                                     - cfg.tolerance * b.contracted[gid[i]])
        pay_per_mwh = (cfg.sustain_eur_per_kw_year * 1000.0 / (cfg.window_hours * 365.0) if cfg.product == "sustain"
                       else cfg.availability_eur_per_mw_h + cfg.utilisation)  # EUR per MWh due
        for i, s in enumerate(states):
            node, year = ix.node_names[ix.op_node[s.op]], int(ix.op_year[s.op])
            per_ny[(node, year)]["contract_penalty"].append(
                float(cfg.penalty_factor * pay_per_mwh * hours[s.op]) * b.excess_shortfall[i])
    # availability: per contracted MW, the window's hours on every day of the year
    window_h_per_year = float(in_window.sum() * dt * ix.day_weight.sum())
    fee = (cfg.sustain_eur_per_kw_year * 1000.0 if cfg.product == "sustain"
           else cfg.availability_eur_per_mw_h * window_h_per_year if cfg.product == "secure" else 0.0)
    if fee:
        for node in ix.node_names:
            for year in ix.nodes[node].modelled_years:
                terms = [fee * ix.nodes[node].price_factor * b.contracted[kid[k]] for k in keys if k[2] == node]
                if terms:
                    per_ny[(node, year)]["contract_availability"].append(sum(terms))
    if cfg.utilisation:
        for i, s in enumerate(states):
            node, year = ix.node_names[ix.op_node[s.op]], int(ix.op_year[s.op])
            per_ny[(node, year)]["contract_utilisation"].append(float(cfg.utilisation * hours[s.op]) * b.activated[i])
    for (node, year), cats in per_ny.items():
        for cat, terms in cats.items():
            hub.cost(cat, node, sum(terms), year=year)
    b._contracts.update(states=states, keys=keys, gid=gid, window_h_per_year=window_h_per_year, limits=groups)


def extract_contracts(b, inst, ix) -> dict:
    """``contracts`` table per (fleet, bus, node): contracted MW, the reliable limit, activated
    and (sustain) undelivered MWh per year of the node's last modelled year."""
    info = b._contracts
    if "states" not in info:
        return {"summary": {"contracts": dict(product=info["cfg"].product, contracted_mw=0.0)}}
    states, keys, gid = info["states"], info["keys"], info["gid"]
    hours = ix.op_hours()
    act = defaultdict(float)
    short = defaultdict(float)
    for i, s in enumerate(states):
        year = int(ix.op_year[s.op])
        act[(gid[i], year)] += pyo.value(b.activated[i]) * hours[s.op]
        if hasattr(b, "shortfall"):
            short[(gid[i], year)] += pyo.value(b.shortfall[i]) * hours[s.op]
    rows = []
    for (g, year), mwh in sorted(act.items()):
        fleet, bus, node = keys[g]
        rows.append(dict(fleet=fleet, bus=inst.network.buses["name"].iloc[bus], node=node, year=year,
                         contracted_mw=float(pyo.value(b.contracted[g])),
                         reliable_limit_mw=info["limits"][keys[g]],
                         activated_mwh=mwh, undelivered_mwh=short[(g, year)]))
    df = pd.DataFrame(rows, columns=["fleet", "bus", "node", "year", "contracted_mw", "reliable_limit_mw",
                                     "activated_mwh", "undelivered_mwh"])
    firm = df.groupby(["fleet", "bus", "node"])["contracted_mw"].first() if len(rows) else pd.Series(dtype=float)
    summary = dict(product=info["cfg"].product, contracted_mw=float(firm.groupby(level="node").sum().max())
                   if len(firm) else 0.0, undelivered_mwh=float(df["undelivered_mwh"].sum()),
                   reliable_mw_per_ev_by_step={k: [round(float(x), 7) for x in v] for k, v in info["reliable"].items()})
    return {"contracts": df, "summary": {"contracts": summary}}


register_block(BlockSpec("contracts", add_contracts, ContractConfig, requires=("ev_storage",),
                         extract=extract_contracts, doc=__doc__))
