"""The four ways of procuring EV flexibility, side by side on one feeder (seed paper, Table 2).

``compare_frameworks`` solves reinforce-only (EVs uncontrolled) and one recipe per framework
(``models/framework_*.toml``: rule-based grid code, network tariff, connection agreement,
market contracts) on the same instance and tabulates, per framework: the DSO's investment and
flexibility payments, the EV owners' energy bill and battery ageing, the total system cost
(the objective: expected present value), the feeder's peak import, the lowest voltage and the
unserved energy (``penalties_eur``: what the soft limits cost where the plan violates them).  ``flexplan frameworks INSTANCE`` writes ``frameworks.csv``, ``frameworks.png``
and each run's own result folder.
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
]
COLUMNS = ["framework", "status", "mip_gap", "dso_investment_eur", "dso_flexibility_payments_eur",
           "ev_owner_energy_cost_eur", "ev_owner_ageing_eur", "penalties_eur", "total_system_cost_eur", "peak_mw",
           "min_voltage_pu",
           "unserved_mwh", "builds", "solve_s"]
DSO_FLEX = ("ev_flexibility", "contract_availability", "contract_utilisation", "contract_penalty",
            "connection_discount")


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


def row(name: str, res, net) -> dict:
    cb = res.cost_breakdown_eur
    return dict(framework=name, status=res.status, mip_gap=res.mip_gap,
                dso_investment_eur=cb.get("investment", 0.0),
                dso_flexibility_payments_eur=sum(cb.get(k, 0.0) for k in DSO_FLEX),
                ev_owner_energy_cost_eur=cb.get("ev_energy", 0.0) + cb.get("ev_network_capacity", 0.0),
                ev_owner_ageing_eur=cb.get("battery_ageing", 0.0),
                penalties_eur=sum(v for k, v in cb.items() if k.startswith("penalty_")),
                total_system_cost_eur=res.objective_eur, peak_mw=peak_import_mw(res, net),
                min_voltage_pu=float(res.voltages["v_pu"].min()) if len(res.voltages) else float("nan"),
                unserved_mwh=res.violations["unserved_mwh"],
                builds="; ".join(f"{b.year} {b.asset}" for b in res.builds.itertuples()),
                solve_s=res.timings_s.get("solve", 0.0))


def with_ageing(recipe, options: dict | None = None):
    """The recipe with the ``ageing`` block added after ``ev_fleet`` (if it has none)."""
    import copy

    from .recipe import resolve_recipe

    r = copy.deepcopy(resolve_recipe(recipe))
    if "ageing" not in r.blocks:
        r.blocks.insert(r.blocks.index("ev_fleet") + 1, "ageing")
        r.options["ageing"] = dict(options or {})
    return r


def compare_frameworks(instance, out: str | Path | None = None, frameworks=FRAMEWORKS, progress=None,
                       ageing: bool = False, **solve_kw) -> pd.DataFrame:
    """Solve every framework on ``instance`` (an Instance or a path); with ``out``, write
    ``frameworks.csv``, ``frameworks.png`` and ``<framework>/`` result folders there.
    ``ageing``: add the battery ageing block (default options) to every recipe, so that the
    owners' battery wear is costed and weighed."""
    import flexplan as fp

    inst = instance if isinstance(instance, fp.Instance) else fp.load_instance(instance)
    rows = []
    for name, recipe in frameworks:
        t0 = time.perf_counter()
        if progress:
            progress(f"framework {name}: building {recipe}")
        pm = fp.build_model(inst, with_ageing(recipe) if ageing else recipe)
        res = fp.solve(pm, progress=progress, **solve_kw)
        rows.append(row(name, res, inst.network) if res.has_solution else dict(framework=name, status=res.status))
        if progress:
            cost = f"{res.objective_eur:,.0f} EUR" if res.has_solution else "no solution"
            progress(f"framework {name}: {res.status}, {cost} ({time.perf_counter() - t0:.0f} s)")
        if out is not None:
            res.write(Path(out) / name)
        del pm
        fp.release_memory()
    df = pd.DataFrame(rows).reindex(columns=COLUMNS)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".frameworks.csv.tmp"
        df.to_csv(tmp, index=False)
        tmp.replace(out / "frameworks.csv")
        plot_frameworks(df, out / "frameworks.png", inst.name)
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
