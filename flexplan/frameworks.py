"""The four ways of procuring EV flexibility, side by side on one feeder (seed paper, Table 2).

``compare_frameworks`` solves reinforce-only (EVs uncontrolled) and one recipe per framework
(``models/framework_*.toml``: rule-based grid code, network tariff, connection agreement,
market contracts, and a nodal tariff: the flat price plus the feeder's nodal prices at each
bus, :func:`dlmp_adders`) on the same instance and tabulates, per framework: the DSO's investment and
flexibility payments, the EV owners' energy bill and battery ageing, the total system cost
(the objective: expected present value), the feeder's peak import, the lowest voltage and the
unserved energy (``penalties_eur``: what the soft limits cost where the plan violates them).

Who pays and who gains (:mod:`flexplan.stakeholders`, :mod:`flexplan.regulation`): the DSO's
regulated profit from each framework's plan under a CAPEX and a TOTEX regime (default
:class:`~flexplan.regulation.Regulation` parameters), the EV owners' net cost per EV and year
(EV-weighted mean, 10th and 90th percentiles over the owner groups, fleet × bus), their
flexibility income and state-of-charge deficit, and, with ``regulation=``, the plan that
regime's DSO would pick instead and its gap to the social optimum ("fit and forget": EUR and
MVA).  ``flexplan frameworks INSTANCE`` writes ``frameworks.csv``, ``frameworks.png``,
``stakeholders.png``, ``owners.csv`` (per fleet and bus), ``cohorts.csv`` (what each cohort of
sessions pays per MWh and per session) and each run's own result folder.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

FRAMEWORKS = [
    ("reinforce_only", "framework_reinforce_only"),
    ("rule_based", "framework_rule_based"),
    ("network_tariff", "framework_network_tariff"),
    ("connection_agreement", "framework_connection_agreement"),
    ("market", "framework_market"),
    ("dlmp_tariff", "framework_dlmp_tariff"),
]
COLUMNS = ["framework", "status", "mip_gap", "dso_investment_eur", "dso_flexibility_payments_eur",
           "ev_owner_energy_cost_eur", "ev_owner_ageing_eur", "penalties_eur", "total_system_cost_eur", "peak_mw",
           "min_voltage_pu",
           "unserved_mwh", "builds", "dso_profit_capex_eur", "dso_profit_totex_eur", "owner_net_eur_per_ev_year",
           "owner_net_p10_eur_per_ev_year", "owner_net_p90_eur_per_ev_year", "owner_price_p10_eur_per_mwh",
           "owner_price_p90_eur_per_mwh", "owner_flexibility_income_eur",
           "owner_soc_deficit_kwh_h_per_ev_day", "regulated_regime", "regulated_builds", "regulated_total_cost_eur", "regulated_dso_profit_eur",
           "fit_and_forget_eur", "fit_and_forget_mva", "solve_s"]
DSO_FLEX = ("ev_flexibility", "contract_availability", "contract_utilisation", "contract_penalty",
            "connection_discount", "pv_curtailment", "heat_pump_flexibility")


def peak_import_mw(res, net) -> float:
    """Largest flow into the feeder: the sum, per op, of the flows on branches leaving a slack
    bus (the substation branch when the instance has an import limit)."""
    ll = res.line_loading
    if ll.empty:
        return float("nan")
    names = net.branches["name"].tolist()
    slack = set(int(b) for b in net.slack["bus"])
    top = [names[k] for k in range(net.n_branches) if int(net.branches["from_bus"].iloc[k]) in slack]
    flows = ll[ll["line"].isin(top)].groupby(["node", "year", "day", "hour"])["p_mw"].sum()
    return float(flows.max()) if len(flows) else float("nan")


def stakeholder_columns(pm, res) -> tuple[dict, "pd.DataFrame", "pd.DataFrame"]:
    """The DSO's regulated profit from the plan (CAPEX and TOTEX regimes, default parameters)
    and the owners' net cost per EV-year (EV-weighted mean, p10, p90), the price they pay per
    MWh (10th and 90th percentiles over the cohorts, weighted by energy), income and comfort;
    also the owners' table (per fleet and bus) and the cohorts' (per fleet and cohort)."""
    from .regulation import Regulation, regulated_profit
    from .stakeholders import cohort_prices, distribution, owner_accounts, weighted_quantiles

    rate = pm.instance.economics.discount_rate
    acc = owner_accounts(pm, res)
    d = distribution(acc)
    w = acc["evs"].to_numpy(dtype=float) if len(acc) else None
    deficit = float((acc["soc_deficit_kwh_h_per_ev_day"] * w).sum() / w.sum()) if w is not None and w.sum() else None
    cols = dict(dso_profit_capex_eur=regulated_profit(res, Regulation(regime="capex"), rate)["profit_eur"],
                dso_profit_totex_eur=regulated_profit(res, Regulation(regime="totex"), rate)["profit_eur"],
                owner_net_eur_per_ev_year=d.get("mean"), owner_net_p10_eur_per_ev_year=d.get("p10"),
                owner_net_p90_eur_per_ev_year=d.get("p90"),
                owner_flexibility_income_eur=float(acc["flexibility_income_eur"].sum()) if len(acc) else 0.0,
                owner_soc_deficit_kwh_h_per_ev_day=deficit)
    cp = cohort_prices(pm, res)
    if len(cp) and cp["bill_eur"].abs().sum() > 0:
        p10, _, p90 = weighted_quantiles(cp["eur_per_mwh"], cp["charge_mwh_per_year"])
        cols.update(owner_price_p10_eur_per_mwh=p10, owner_price_p90_eur_per_mwh=p90)
    return cols, acc, cp


def row(name: str, res, net) -> dict:
    cb = res.cost_breakdown_eur
    return dict(framework=name, status=res.status, mip_gap=res.mip_gap,
                dso_investment_eur=cb.get("investment", 0.0) + cb.get("storage_investment", 0.0)
                + cb.get("storage_ageing", 0.0),
                dso_flexibility_payments_eur=sum(cb.get(k, 0.0) for k in DSO_FLEX),
                ev_owner_energy_cost_eur=cb.get("ev_energy", 0.0) + cb.get("ev_network_capacity", 0.0),
                ev_owner_ageing_eur=cb.get("battery_ageing", 0.0),
                penalties_eur=sum(v for k, v in cb.items() if k.startswith("penalty_")),
                total_system_cost_eur=res.objective_eur, peak_mw=peak_import_mw(res, net),
                min_voltage_pu=float(res.voltages["v_pu"].min()) if len(res.voltages) else float("nan"),
                unserved_mwh=res.violations["unserved_mwh"],
                builds="; ".join(f"{b.year} {b.asset}" for b in res.builds.itertuples()),
                solve_s=res.timings_s.get("solve", 0.0))


def dlmp_adders(inst, progress=None, **solve_kw) -> dict[str, list[float]]:
    """The nodal network tariff of the DLMP framework: per bus, EUR/MWh per step of the day,
    the nodal price (:mod:`flexplan.prices`) of the existing feeder (nothing built) with the EVs
    charging uncontrolled, averaged over the modelled years and days with the objective's
    weights; buses whose price is zero throughout are left out."""
    import numpy as np

    import flexplan as fp

    from .prices import op_weights

    rec = {"name": "dlmp_reference", "blocks": ["demand", "ev_fleet"], "ev_fleet": {"mode": "uncontrolled"}}
    pm = fp.build_model(inst, rec)
    res = fp.solve(pm, prices=True, **{k: v for k, v in solve_kw.items() if k in ("time_limit", "threads")})
    if "nodal_prices" not in res.tables:
        raise fp.SolverError(f"DLMP tariff: the reference run (existing feeder, EVs uncontrolled) has no prices "
                             f"(status {res.status})")
    t = res.tables["nodal_prices"]
    w = np.tile(op_weights(pm), inst.network.n_buses)
    t = t.assign(w=w, wp=w * t["dlmp_p_eur_per_mwh"].fillna(0.0))
    g = t.groupby(["bus", "hour"])[["wp", "w"]].sum()
    mean = (g["wp"] / g["w"].where(g["w"] > 0)).fillna(0.0).unstack(fill_value=0.0)
    out = {str(b): [round(float(v), 6) for v in row] for b, row in mean.iterrows() if np.abs(row).max() > 1e-9}
    if progress:
        top = max(out.items(), key=lambda kv: max(kv[1]))[0] if out else None
        progress(f"DLMP tariff: nodal prices at {len(out)} buses" + (f", highest at bus {top}" if top else ""))
    return out


def with_instance_blocks(recipe, inst):
    """The recipe with the instance's own devices added where it lacks them: its PV ([pv],
    curtailable as the ``pv`` block defaults) and its heat pumps ([heat_pumps], following
    their heat demand: no flexibility), so that every framework plans the same feeder."""
    import copy

    from .recipe import resolve_recipe

    r = copy.deepcopy(resolve_recipe(recipe))
    for block, options in (("pv", {}), ("heat_pumps", {"mode": "fixed"})):
        if inst.sections.get(block) and block not in r.blocks:
            r.blocks.append(block)
            r.options[block] = dict(options)
    return r


def extra_frameworks(inst) -> list:
    """Frameworks the instance's data add: ``dso_storage`` (reinforce-only with the DSO's own
    batteries at the instance's [storage] sites) when it has them."""
    from .recipe import resolve_recipe

    out = []
    if inst.sections.get("storage"):
        r = resolve_recipe("framework_reinforce_only")
        r.name, r.blocks = "framework_dso_storage", r.blocks + ["storage"]
        r.options["storage"] = dict(resolve_recipe("storage_vs_reinforce").options.get("storage", {}))
        out.append(("dso_storage", r))
    return out


def with_ageing(recipe, options: dict | None = None):
    """The recipe with the ``ageing`` block added after ``ev_fleet`` (if it has none)."""
    import copy

    from .recipe import resolve_recipe

    r = copy.deepcopy(resolve_recipe(recipe))
    if "ageing" not in r.blocks:
        r.blocks.insert(r.blocks.index("ev_fleet") + 1, "ageing")
        r.options["ageing"] = dict(options or {})
    return r


#: HiGHS options of the framework solves started from the reinforce-only plan.  HiGHS's root
#: reduced-cost heuristic (a sub-MIP over the columns of small reduced cost) spent 120 of the
#: market MIP's 152 s at the root node of ieee33_ev without improving the incumbent, and RINS
#: and RENS, with a good start already in hand, another 30 s: without the three that MIP reaches
#: 1 % in 35.7 s (174.5 s with HiGHS's defaults, 64.9 s without the first alone), 0.19 % above
#: the optimum (``benchmarks/market_mip.py``).  Cold solves keep them: without RINS and RENS the
#: cold market MIP took 114.5 s instead of 99.4 s.
FRAMEWORK_HIGHS = {"mip_heuristic_run_root_reduced_cost": False, "mip_heuristic_run_rins": False,
                   "mip_heuristic_run_rens": False}


def compare_frameworks(instance, out: str | Path | None = None, frameworks=FRAMEWORKS, progress=None,
                       ageing: bool = False, extras: bool = True, regulation=None, stacking: bool = False,
                       **solve_kw) -> pd.DataFrame:
    """Solve every framework on ``instance`` (an Instance or a path); with ``out``, write
    ``frameworks.csv``, ``frameworks.png`` and ``<framework>/`` result folders there.
    ``ageing``: add the battery ageing block (default options) to every recipe, so that the
    owners' battery wear is costed and weighed.  ``extras``: also the frameworks the instance's
    data add (:func:`extra_frameworks`: DSO storage where it has [storage] sites); the
    instance's PV and heat pumps are in every framework (:func:`with_instance_blocks`).
    ``regulation``: a :class:`~flexplan.regulation.Regulation` (or its regime's name): also solve
    each framework for that DSO's regulated profit (a second solve per framework) and report its
    plan and its gap to the social optimum.  ``stacking``: also the aggregator's view
    (:func:`flexplan.stakeholders.market_value`: the fleets at day-ahead prices with reserve, and
    what the DSO's needs and a connection agreement cost it in market value), written as
    ``stacking.csv`` and drawn beside the stakeholders' gains; ``df.attrs["stacking"]``."""
    import flexplan as fp

    from .regulation import Regulation, build_megawatts, regulated_profit, social_cost, solve_regulated

    inst = instance if isinstance(instance, fp.Instance) else fp.load_instance(instance)
    if isinstance(regulation, str):
        regulation = Regulation(regime=regulation)
    rows, start, owners, cohorts = [], None, [], []
    for name, recipe in list(frameworks) + (extra_frameworks(inst) if extras else []):
        t0 = time.perf_counter()
        if progress:
            progress(f"framework {name}: building {recipe}")
        rec = with_instance_blocks(with_ageing(recipe) if ageing else recipe, inst)
        if name == "dlmp_tariff":
            import copy

            rec = copy.deepcopy(rec)
            rec.options.setdefault("tariffs", {})["bus_hourly_eur_per_mwh"] = dlmp_adders(inst, progress, **solve_kw)
        pm = fp.build_model(inst, rec)
        # every framework starts from the first one's plan (reinforcement alone): a feasible
        # incumbent from the first node (on ieee33_ev the market MIP had none better for 130 s)
        started = bool(rows) and start is not None
        res = fp.solve(pm, progress=progress, start=start if started else None,
                       **({**FRAMEWORK_HIGHS, **solve_kw} if started else solve_kw))
        if not rows and res.has_solution:
            start = fp.decision_values(pm)
        r = row(name, res, inst.network) if res.has_solution else dict(framework=name, status=res.status)
        if res.has_solution:
            cols, acc, cp = stakeholder_columns(pm, res)
            r.update(cols)
            owners.append(acc.assign(framework=name))
            cohorts.append(cp.assign(framework=name))
        if regulation is not None and res.has_solution:
            if progress:
                progress(f"framework {name}: the plan a DSO under the {regulation.regime} regime would choose")
            mine = fp.decision_values(pm)
            del pm
            fp.release_memory()
            reg = solve_regulated(inst, rec, regulation, res, mine, **{**FRAMEWORK_HIGHS, **solve_kw})
            pm = None
            r.update(regulated_regime=regulation.regime, regulated_builds=reg.status if not reg.has_solution else
                     "; ".join(f"{b.year} {b.asset}" for b in reg.builds.itertuples()))
            if reg.has_solution:
                r.update(regulated_total_cost_eur=social_cost(reg),
                         regulated_dso_profit_eur=regulated_profit(reg, regulation, inst.economics.discount_rate)[
                             "profit_eur"],
                         fit_and_forget_eur=social_cost(reg) - social_cost(res),
                         fit_and_forget_mva=build_megawatts(reg) - build_megawatts(res))
        rows.append(r)
        if progress:
            cost = f"{res.objective_eur:,.0f} EUR" if res.has_solution else "no solution"
            progress(f"framework {name}: {res.status}, {cost} ({time.perf_counter() - t0:.0f} s)")
        if out is not None:
            res.write(Path(out) / name)
        del pm
        fp.release_memory()
    df = pd.DataFrame(rows).reindex(columns=COLUMNS)
    stack = None
    if stacking:
        from .stakeholders import market_value

        stack = market_value(inst, progress=progress, **solve_kw)
        df.attrs["stacking"] = stack
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".frameworks.csv.tmp"
        df.to_csv(tmp, index=False)
        tmp.replace(out / "frameworks.csv")
        if owners:
            tmp = out / ".owners.csv.tmp"
            pd.concat(owners, ignore_index=True).to_csv(tmp, index=False)
            tmp.replace(out / "owners.csv")
            tmp = out / ".cohorts.csv.tmp"
            pd.concat(cohorts, ignore_index=True).to_csv(tmp, index=False)
            tmp.replace(out / "cohorts.csv")
        plot_frameworks(df, out / "frameworks.png", inst.name)
        if stack is not None:
            tmp = out / ".stacking.csv.tmp"
            stack.to_csv(tmp, index=False)
            tmp.replace(out / "stacking.csv")
        plot_stakeholders(df, out / "stakeholders.png", inst.name, stacking=stack)
    return df


def plot_frameworks(df: pd.DataFrame, path: Path, title: str) -> Path:
    """DSO costs (stacked), the EV owners' costs against the first row (reinforcement alone),
    the peak import and the lowest voltage, per framework."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2))
    x = np.arange(len(df))
    names = df["framework"].tolist()
    bottom = np.zeros(len(df))
    for col, label in (("dso_investment_eur", "investment"), ("dso_flexibility_payments_eur", "flexibility payments"),
                       ("penalties_eur", "limits violated (VOLL, overload, voltage)")):
        v = df[col].fillna(0).to_numpy() / 1e3
        axes[0].bar(x, v, bottom=bottom, label=label)
        bottom += v
    axes[0].set_title("DSO costs (present value)")
    axes[0].set_ylabel("kEUR")
    axes[0].legend(fontsize=8)
    owners = (df["ev_owner_energy_cost_eur"].fillna(0) + df["ev_owner_ageing_eur"].fillna(0)).to_numpy() / 1e3
    delta = owners - owners[0]
    axes[1].bar(x, delta, color=["C2" if d <= 0 else "C3" for d in delta])
    axes[1].axhline(0, color="k", lw=0.6)
    axes[1].set_title(f"EV owners' energy + ageing vs {names[0]}")
    axes[1].set_ylabel("kEUR (negative: owners save)")
    axes[2].bar(x, df["peak_mw"], color="C4")
    axes[2].set_title("peak import")
    axes[2].set_ylabel("MW")
    v = df["min_voltage_pu"].to_numpy(dtype=float)
    axes[3].bar(x, v, color="C0")
    lo = float(np.nanmin(v)) if np.isfinite(v).any() else 0.9
    axes[3].set_ylim(max(0.0, lo - 0.02), 1.005)
    axes[3].set_title("lowest voltage")
    axes[3].set_ylabel("pu")
    for a in axes:
        a.set_xticks(x, names, rotation=25, ha="right")
        a.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{title}: four ways of procuring EV flexibility, and reinforcement alone")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def stakeholder_changes(df: pd.DataFrame) -> pd.DataFrame:
    """Per framework, each party's gain (EUR, expected present value; positive: better off)
    against the first row (reinforcement alone): society (its total cost), the DSO (its
    regulated profit, CAPEX and TOTEX regimes) and the EV owners (their net cost: bill,
    capacity tariff and ageing less flexibility income, over all owners)."""
    def col(c):
        return df[c].astype(float) if c in df else pd.Series(float("nan"), index=df.index)

    owners = col("ev_owner_energy_cost_eur") + col("ev_owner_ageing_eur") - col("owner_flexibility_income_eur")
    parts = {"society": -col("total_system_cost_eur"), "DSO (CAPEX regime)": col("dso_profit_capex_eur"),
             "DSO (TOTEX regime)": col("dso_profit_totex_eur"), "EV owners": -owners}
    out = pd.DataFrame({k: v - v.iloc[0] for k, v in parts.items()})
    out.insert(0, "framework", df["framework"].to_numpy())
    return out


def plot_stakeholders(df: pd.DataFrame, path: Path, title: str, stacking: pd.DataFrame | None = None) -> Path:
    """Each party's gain or loss by framework against reinforcement alone (grouped bars); with
    ``stacking`` (:func:`flexplan.stakeholders.market_value`), a second panel: the aggregator's
    market value against uncontrolled charging, per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ch = stakeholder_changes(df)
    parties = [c for c in ch.columns if c != "framework"]
    wide = max(8.0, 1.6 * len(ch))
    if stacking is not None:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(wide + 5.0, 4.6), gridspec_kw={"width_ratios": [wide, 5.0]})
        v = stacking["value_vs_uncontrolled_eur"].astype(float).fillna(0).to_numpy() / 1e3
        ax2.bar(np.arange(len(stacking)), v, color="C5")
        ax2.set_xticks(np.arange(len(stacking)), stacking["case"], rotation=25, ha="right")
        ax2.axhline(0, color="k", lw=0.6)
        ax2.set_ylabel("kEUR (present value)")
        ax2.set_title("aggregator: market value vs uncontrolled charging")
        ax2.grid(alpha=0.3, axis="y")
    else:
        fig, ax = plt.subplots(figsize=(wide, 4.6))
    x = np.arange(len(ch))
    width = 0.8 / len(parties)
    for i, p in enumerate(parties):
        ax.bar(x + (i - (len(parties) - 1) / 2) * width, ch[p].fillna(0).to_numpy() / 1e3, width, label=p)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x, ch["framework"], rotation=25, ha="right")
    ax.set_ylabel(f"gain vs {ch['framework'].iloc[0]}, kEUR (present value)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax.set_title(f"{title}: who gains and who pays, by framework")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
