"""Who pays and who gains: the EV owners' accounts per fleet and bus (docs/formulation.md §9).

:func:`owner_accounts` splits a solved plan's money by owner group (the EVs of one fleet at one
bus), in EUR of expected present value like the cost breakdown:

* ``energy_bill_eur``: Σ_ops price(bus, step) × hours(op) × (charge − discharge) × weight, the
  tariff's price (its stagger groups' mean, plus a nodal adder at the bus) as ``ev_energy``
  bills it, recomputed here from the fleets' schedules (``ev_flexibility`` table);
  ``network_volume_eur``: the part of it that is network tariff (the volumetric network tariff
  and the nodal adder);
* ``network_capacity_eur``: the capacity tariff (EUR/kW-year) on the group's peak charging in
  each modelled year (``ev_network_capacity``);
* ``flexibility_income_eur``: what the DSO pays the group: ``flex_price`` × its downward
  flexibility (``ev_flexibility``, at the node's price factor), plus the contracts' payments
  (availability pro rata to the contracted MW, utilisation to the activated MWh, penalties to
  the undelivered MWh, per fleet, bus and node) and the connection discount (per EV);
* ``ageing_eur``: the battery ageing cost (``battery_ageing``), the fleet's share by EVs;
* ``energy_mwh``: charged per year (the mean over the modelled years);
* ``net_cost_eur`` = bill + capacity + ageing − income; ``per_ev_year_eur``: that per EV and
  year (the net cost over Σ weight × EVs, with the same discounting: a levelised bill);
* comfort: ``soc_deficit_kwh_h_per_ev_day``, the kWh·h per EV and day that the batteries sit
  below where uncontrolled charging would have them (0 when uncontrolled), and
  ``shortfall_mwh``, energy charged less than the uncontrolled baseline (per year, ≥ 0).

The weight of an op is the probability of its tree node times the discount weight of its
(node, year), as in the objective.  The sums over groups equal the model's cost categories;
``tests/test_stakeholders.py`` checks it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

OWNER_COLUMNS = ["fleet", "bus", "evs", "energy_mwh", "energy_bill_eur", "network_volume_eur", "network_capacity_eur",
                 "flexibility_income_eur", "ageing_eur", "net_cost_eur", "per_ev_year_eur",
                 "soc_deficit_kwh_h_per_ev_day", "shortfall_mwh"]


def _op_weights(ix) -> pd.DataFrame:
    """Per op: its (node, year, day, hour), hours, the node's flexibility price factor and the
    objective's weight (probability × the year's discount weight)."""
    f = ix.op_frame()
    prob = np.array([ix.nodes[n].prob for n in ix.node_names])[ix.op_node]
    yw = np.array([ix.year_weight[(ix.node_names[k], int(y))] for k, y in zip(ix.op_node, ix.op_year)])
    return f.assign(op=np.arange(ix.n_ops), hours=ix.op_hours(), price_factor=ix.op_price_factor(), w=prob * yw)


def _share(keys: pd.DataFrame, by: list[str], amount: pd.Series, weight: str) -> pd.Series:
    """``amount`` (indexed by ``by``) spread over ``keys``' rows pro rata to ``weight`` within each group."""
    tot = keys.groupby(by)[weight].transform("sum")
    base = keys.set_index(by).index.map(lambda k: amount.get(k, 0.0))
    return pd.Series(np.where(tot > 0, keys[weight] / tot.where(tot > 0, 1.0), 0.0) * np.asarray(base, dtype=float),
                     index=keys.index)


def owner_accounts(pm, res) -> pd.DataFrame:
    """Per (fleet, bus): the owners' money and comfort under the plan (module docstring)."""
    if "ev_fleet" not in pm.blocks or "ev_flexibility" not in res.tables or res.tables["ev_flexibility"].empty:
        return pd.DataFrame(columns=OWNER_COLUMNS)
    ix, inst = pm.index, pm.instance
    ev = res.tables["ev_flexibility"]
    ops = _op_weights(ix)
    ev = ev.merge(ops, on=["node", "year", "day", "hour"], how="left", validate="many_to_one")
    if ev["op"].isna().any():
        raise ValueError("owner_accounts: the ev_flexibility table has rows that are not operating points of the model")
    names = list(inst.network.buses["name"].astype(str))
    bus_ix = ev["bus"].astype(str).map({n: i for i, n in enumerate(names)}).to_numpy()
    step = ev["hour"].to_numpy(dtype=int)
    net_mw = (ev["charge_mw"] - ev["discharge_mw"]).to_numpy()
    tariff = pm.blocks["tariffs"][1]._tariff if "tariffs" in pm.blocks else None
    out = ev.assign(energy_bill_eur=0.0, network_volume_eur=0.0)
    if tariff is not None:
        price = np.array([tariff.at_bus(int(b))[1][s] for b, s in zip(bus_ix, step)])
        out["energy_bill_eur"] = price * ev["hours"] * net_mw * ev["w"]
        adder = np.array([tariff.bus_adder[int(b)][s] if int(b) in tariff.bus_adder else 0.0
                          for b, s in zip(bus_ix, step)])
        out["network_volume_eur"] = (tariff.network_eur_per_mwh + adder) * ev["hours"] * net_mw * ev["w"]
    spec, blk = pm.blocks["ev_fleet"]
    cfg = blk._flex["cfg"]  # a fixed schedule (uncontrolled, tariff-driven) is not paid for
    flex_price = cfg.flex_price_eur_per_mwh if cfg.mode not in ("uncontrolled", "tariff") else 0.0
    out["flex_income_eur"] = flex_price * ev["flex_down_mw"] * ev["hours"] * ev["price_factor"] * ev["w"]
    out["mwh"] = ev["charge_mw"] * ev["hours"]  # MWh in the op's year
    # MWh·h below the uncontrolled state of charge (energy_max is the uncontrolled trajectory)
    deficit = (ev["energy_max_mwh"] - ev["energy_mwh"]).clip(lower=0.0) * float(ix.dt_h)
    out["deficit_mwh_h"] = deficit
    out["ev_days"] = ev["n_evs"] / ix.hours  # each of the day's steps carries the unit's EVs once
    out["short_mwh"] = (ev["baseline_mw"] - ev["charge_mw"]) * ev["hours"]
    g = out.groupby(["fleet", "bus"], sort=False)
    acc = pd.DataFrame({"energy_bill_eur": g["energy_bill_eur"].sum(), "network_volume_eur": g["network_volume_eur"].sum(),
                        "flexibility_income_eur": g["flex_income_eur"].sum()})
    # EVs: the mean over the modelled (node, year) of the group's count; EV-years weighted as costs
    units = out.groupby(["fleet", "bus", "node", "year"], sort=False).agg(n=("n_evs", "first"), w=("w", "first"))
    acc["evs"] = units.groupby(["fleet", "bus"], sort=False)["n"].mean()
    ev_years = (units["n"] * units["w"]).groupby(["fleet", "bus"], sort=False).sum()
    # the capacity tariff: EUR/kW-year on the group's peak charging per (node, year)
    if tariff is not None and tariff.network_eur_per_kw_year > 0:
        peak = out.groupby(["fleet", "bus", "node", "year"], sort=False).agg(p=("charge_mw", "max"), w=("w", "first"))
        acc["network_capacity_eur"] = (tariff.network_eur_per_kw_year * 1000.0 * peak["p"] * peak["w"]) \
            .groupby(["fleet", "bus"], sort=False).sum()
    else:
        acc["network_capacity_eur"] = 0.0
    acc = acc.reset_index()
    # the contracts' payments, spread over the groups by what each contracted, delivered or missed
    acc["flexibility_income_eur"] += _contract_income(res, acc)
    acc["flexibility_income_eur"] += _spread_by_evs(res, acc, units, "connection_discount")
    acc["ageing_eur"] = _spread_by_evs(res, acc, units, "battery_ageing")
    per_year = out.groupby(["fleet", "bus", "node", "year"], sort=False)["mwh"].sum()
    acc["energy_mwh"] = per_year.groupby(["fleet", "bus"], sort=False).mean().to_numpy()  # per modelled year
    acc["net_cost_eur"] = acc["energy_bill_eur"] + acc["network_capacity_eur"] + acc["ageing_eur"] \
        - acc["flexibility_income_eur"]
    evy = ev_years.reindex(pd.MultiIndex.from_frame(acc[["fleet", "bus"]])).to_numpy()
    acc["per_ev_year_eur"] = np.where(evy > 0, acc["net_cost_eur"] / np.where(evy > 0, evy, 1.0), np.nan)
    days = (out["ev_days"] * out["hours"] / float(ix.dt_h)).groupby([out["fleet"], out["bus"]], sort=False).sum()
    dmwh = (out["deficit_mwh_h"] * out["hours"] / float(ix.dt_h)).groupby([out["fleet"], out["bus"]], sort=False).sum()
    acc["soc_deficit_kwh_h_per_ev_day"] = (1000.0 * dmwh / days.where(days > 0)).to_numpy()
    short = out.groupby(["fleet", "bus", "node", "year"], sort=False)["short_mwh"].sum().clip(lower=0.0)
    acc["shortfall_mwh"] = short.groupby(["fleet", "bus"], sort=False).mean().to_numpy()
    return acc.reindex(columns=OWNER_COLUMNS)


def _category_by_node(res, category: str) -> pd.Series:
    c = res.costs[res.costs["category"] == category]
    return c.groupby("node")["pv_eur"].sum() if len(c) else pd.Series(dtype=float)


def _spread_by_evs(res, acc: pd.DataFrame, units: pd.DataFrame, category: str) -> np.ndarray:
    """A category's expected PV per tree node spread over the groups by their EVs there."""
    amount = _category_by_node(res, category)
    if amount.empty:
        return np.zeros(len(acc))
    u = units.reset_index().groupby(["fleet", "bus", "node"], sort=False)["n"].mean().reset_index()
    u["eur"] = _share(u, ["node"], amount, "n")
    got = u.groupby(["fleet", "bus"], sort=False)["eur"].sum()
    return got.reindex(pd.MultiIndex.from_frame(acc[["fleet", "bus"]]), fill_value=0.0).to_numpy()


def _contract_income(res, acc: pd.DataFrame) -> np.ndarray:
    """Contract payments (availability, utilisation, penalty: a negative income) per group."""
    t = res.tables.get("contracts")
    if t is None or t.empty:
        return np.zeros(len(acc))
    t = t.groupby(["fleet", "bus", "node"], sort=False).agg(contracted_mw=("contracted_mw", "first"),
                                                             activated_mwh=("activated_mwh", "sum"),
                                                             undelivered_mwh=("undelivered_mwh", "sum")).reset_index()
    eur = np.zeros(len(t))
    for cat, weight, sign in (("contract_availability", "contracted_mw", 1.0), ("contract_utilisation",
                                                                                 "activated_mwh", 1.0),
                              ("contract_penalty", "undelivered_mwh", -1.0)):
        amount = _category_by_node(res, cat)
        if not amount.empty:
            eur += sign * _share(t, ["node"], amount, weight).to_numpy()
    got = pd.Series(eur).groupby([t["fleet"], t["bus"].astype(str)], sort=False).sum()
    keys = pd.MultiIndex.from_arrays([acc["fleet"], acc["bus"].astype(str)])
    return got.reindex(keys, fill_value=0.0).to_numpy()


def distribution(acc: pd.DataFrame, column: str = "per_ev_year_eur") -> dict:
    """Weighted by EVs: mean, 10th percentile, median, 90th percentile, min and max of
    ``column`` over the owner groups."""
    a = acc.dropna(subset=[column])
    if a.empty:
        return {}
    v, w = a[column].to_numpy(dtype=float), a["evs"].to_numpy(dtype=float)
    p10, median, p90 = weighted_quantiles(v, w)
    return dict(mean=float((v * w).sum() / w.sum()), p10=p10, median=median, p90=p90, min=float(v.min()),
                max=float(v.max()))


MARKET = ("market_energy", "market_reserve")


def market_cost(res) -> float:
    """The aggregator's net market cost (EUR, expected present value): day-ahead energy less
    reserve revenue."""
    cb = res.cost_breakdown_eur
    return float(sum(cb.get(c, 0.0) for c in MARKET))


def market_value(instance, recipe="aggregator_stacking", progress=None, connection: dict | None = None,
                 **solve_kw) -> pd.DataFrame:
    """What the DSO's needs cost the aggregator (docs/formulation.md §9.3).  ``recipe`` must
    have the ``wholesale`` block.  Four solves of it on ``instance``:

    * ``uncontrolled``: the EVs charge on arrival (no aggregator), priced at the same prices;
    * ``no_dso_need``: the copper plate (no line or voltage limit; only a substation import
      limit if the instance has one): the aggregator's standalone optimum, stacked;
    * ``dso_need``: the feeder as it is; the plan minimises the total cost, so the aggregator's
      schedule gives way where that is cheaper than reinforcing;
    * ``connection_agreement``: the same with the connection block's charging caps
      (``connection`` options, default those of ``framework_connection_agreement``).

    Per case: the aggregator's market cost, its value against ``uncontrolled``, the DSO's
    investment and the total cost; ``lost_vs_no_dso_need_eur``: the market value the case gives up
    against the standalone optimum (for ``dso_need``: what DSO flexibility costs in lost market
    value; for ``connection_agreement``: what the agreement precludes)."""
    import copy

    import flexplan as fp

    from .recipe import resolve_recipe

    inst = instance if isinstance(instance, fp.Instance) else fp.load_instance(instance)
    base = resolve_recipe(recipe)
    if "wholesale" not in base.blocks:
        raise fp.RecipeError(f"market_value: recipe '{base.name}' has no 'wholesale' block (nothing is priced at "
                             "market prices); use 'aggregator_stacking' or add the block")
    cases = {}
    r = copy.deepcopy(base)
    r.options["ev_fleet"] = {**r.options.get("ev_fleet", {}), "mode": "uncontrolled"}
    cases["uncontrolled"] = r
    r = copy.deepcopy(base)
    r.formulation = "copperplate"
    cases["no_dso_need"] = r
    cases["dso_need"] = copy.deepcopy(base)
    r = copy.deepcopy(base)
    if "connection" not in r.blocks:
        r.blocks.insert(r.blocks.index("ev_fleet"), "connection")
    r.options["connection"] = dict(connection if connection is not None
                                   else resolve_recipe("framework_connection_agreement").options["connection"])
    cases["connection_agreement"] = r
    rows = []
    for name, rec in cases.items():
        rec.name = f"{base.name}[{name}]"
        res = fp.solve(fp.build_model(inst, rec), **solve_kw)
        if progress:
            progress(f"market value, {name}: {res.status}" + (f", market cost {market_cost(res):,.0f} EUR"
                                                               if res.has_solution else ""))
        cb = res.cost_breakdown_eur if res.has_solution else {}
        rows.append(dict(case=name, status=res.status, market_cost_eur=market_cost(res) if res.has_solution else None,
                         dso_investment_eur=cb.get("investment", 0.0) + cb.get("storage_investment", 0.0)
                         if res.has_solution else None,
                         penalties_eur=sum(v for k, v in cb.items() if k.startswith("penalty_"))
                         if res.has_solution else None,
                         total_cost_eur=res.objective_eur if res.has_solution else None))
    df = pd.DataFrame(rows)
    cost = df.set_index("case")["market_cost_eur"].astype(float)
    df["value_vs_uncontrolled_eur"] = (cost["uncontrolled"] - cost).to_numpy()
    df["lost_vs_no_dso_need_eur"] = (cost - cost["no_dso_need"]).to_numpy()
    return df


def cohort_prices(pm, res) -> pd.DataFrame:
    """Per fleet and cohort (a group of charging sessions with one arrival and departure
    window, §4.3): the sessions per year, the energy charged (MWh per year) and what the owners
    pay for it, per MWh and per session (EUR, the tariff's price at their buses), over the
    modelled (node, year) with the objective's weights and the day weights.  The spread between
    cohorts is who pays more under a tariff: sessions that cannot move out of the dear hours."""
    t = res.tables.get("ev_cohorts")
    cols = ["fleet", "cohort", "arrival_step", "window_steps", "sessions_per_year", "charge_mwh_per_year", "bill_eur",
            "eur_per_mwh", "eur_per_session"]
    if t is None or t.empty:
        return pd.DataFrame(columns=cols)
    ix = pm.index
    dw = dict(zip(ix.days, ix.day_weight))
    prob = {n: ix.nodes[n].prob for n in ix.node_names}
    t = t.assign(d=t["day"].map(dw), w=[prob[n] * ix.year_weight[(n, int(y))] for n, y in zip(t["node"], t["year"])])
    t = t.assign(bill=t["bill_eur"] * t["d"] * t["w"], wmwh=t["charge_mwh"] * t["d"] * t["w"],
                 wses=t["sessions"] * t["d"] * t["w"], mwh_year=t["charge_mwh"] * t["d"], ses_year=t["sessions"] * t["d"])
    years = t.groupby(["node", "year"]).ngroups
    g = t.groupby(["fleet", "cohort"], sort=True)
    out = pd.DataFrame({"arrival_step": g["arrival_step"].first(), "window_steps": g["window_steps"].first(),
                        "sessions_per_year": g["ses_year"].sum() / years, "charge_mwh_per_year": g["mwh_year"].sum() / years,
                        "bill_eur": g["bill"].sum()})
    wm, ws = g["wmwh"].sum(), g["wses"].sum()
    out["eur_per_mwh"] = out["bill_eur"] / wm.where(wm > 0)
    out["eur_per_session"] = out["bill_eur"] / ws.where(ws > 0)
    return out.reset_index().reindex(columns=cols)


def weighted_quantiles(values, weights, qs=(0.1, 0.5, 0.9)) -> list[float]:
    """Quantiles of ``values`` with ``weights`` (the smallest value whose cumulative weight
    reaches q)."""
    v, w = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    keep = np.isfinite(v) & (w > 0)
    v, w = v[keep], w[keep]
    if not len(v):
        return [float("nan")] * len(qs)
    order = np.argsort(v)
    v, w = v[order], w[order]
    cum = np.cumsum(w) / w.sum()
    return [float(v[min(np.searchsorted(cum, q - 1e-12), len(v) - 1)]) for q in qs]
