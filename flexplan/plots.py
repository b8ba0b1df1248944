"""PNG plots of a plan: voltage profile along the feeder at the worst hour, loading
duration curves, investment timeline, cost breakdown and, with EV fleets, their charging
on the peak day (baseline vs scheduled) and their energy envelope with the trajectory, and,
with the ageing block, the capacity fade per fleet over the horizon (calendar / cycling)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _finish(ax, xlabel: str, ylabel: str, title: str, legend: int = 8) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:  # nothing labelled (a grid without lines): no empty legend
        ax.legend(fontsize=legend)
    ax.grid(alpha=0.3)


def _voltage_band(ax, res) -> None:
    ax.axhline(res.limits.get("v_min_pu", 0.9), color="k", ls="--", lw=0.8)
    ax.axhline(res.limits.get("v_max_pu", 1.1), color="k", ls="--", lw=0.8)


def write_plots(res, folder: Path, instance=None) -> list[Path]:
    out = []
    for fn in (voltage_profile, voltage_envelope, loading_duration, investment_timeline, cost_breakdown, ev_peak_day,
               ev_envelope, flexibility_heatmap, nodal_price_heatmap, capacity_fade, decision_tree, scenario_costs):
        path = fn(res, folder)
        if path is not None:
            out.append(path)
    for hook in getattr(res, "plot_hooks", ()):  # the blocks' own plots (extract's "plots")
        path = hook(res, folder)
        if path is not None:
            out.append(path)
    return out


def voltage_profile(res, folder: Path):
    """Voltage along the feeder (x: line length from the slack bus, km; one segment per
    branch) at the worst hour of a few years, with the band."""
    v = res.voltages
    if v.empty:
        return None
    key = ["node", "year", "day", "hour"]
    tree = res.extra.get("tree")
    years = sorted(v["year"].unique())
    worst_year = int(v.loc[v["v_pu"].idxmin(), "year"])
    shown = sorted(set(years[:: max(1, len(years) // 4)]) | {worst_year, years[-1]})
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, year in enumerate(shown):
        sel = v[v.year == year]
        w = sel.loc[sel["v_pu"].idxmin(), key]
        s = sel[(sel.day == w.day) & (sel.hour == w.hour) & (sel.node == w.node)].set_index("bus")["v_pu"]
        style = dict(lw=2.2, color="C3") if year == worst_year else dict(lw=1, alpha=0.8, color=f"C{i % 3}")
        label = f"{year} ({w.day} {int(w.hour):02d}h)" + (" worst" if year == worst_year else "")
        if tree:
            dist = tree["distance_km"]
            for j, (a, b) in enumerate(tree["edges"]):
                ax.plot([dist[a], dist[b]], [s[a], s[b]], marker=".", label=label if j == 0 else None, **style)
        else:
            ax.plot(range(len(s)), s.to_numpy(), marker=".", label=label, **style)
    _voltage_band(ax, res)
    _finish(ax, "line length from the substation (km)" if tree else "bus", "voltage (pu)",
            f"{res.instance}: voltage along the feeder at the worst hour (LinDistFlow, plan in place)")
    return _save(fig, folder / "voltage_profile.png")


def loading_duration(res, folder: Path, top: int = 6):
    ld = res.line_loading.dropna(subset=["loading_pct"])
    if ld.empty:
        return None
    peak = ld.groupby("line")["loading_pct"].max().sort_values(ascending=False)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for line in peak.index[:top]:
        s = np.sort(ld.loc[ld.line == line, "loading_pct"].to_numpy())[::-1]
        ax.plot(np.linspace(0, 100, len(s)), s, label=line)
    ax.axhline(res.limits.get("max_loading_pct", 100), color="k", ls="--", lw=0.8)
    _finish(ax, "share of modelled hours (%)", "loading (% of rating in place)",
            f"{res.instance}: loading duration, {min(top, len(peak))} most loaded branches", legend=7)
    return _save(fig, folder / "loading_duration.png")


def investment_timeline(res, folder: Path):
    fig, ax = plt.subplots(figsize=(8, 4))
    b = res.builds
    years = list(range(res.extra["horizon"]["base_year"], res.extra["horizon"]["end_year"] + 1))
    if b.empty:
        ax.text(0.5, 0.5, "no reinforcement built", ha="center", va="center", transform=ax.transAxes)
    else:
        by = b.groupby(["year", "kind"])["capex_eur"].sum().unstack(fill_value=0.0)
        bottom = np.zeros(len(by))
        for kind in by.columns:
            ax.bar(by.index, by[kind] / 1e3, bottom=bottom, label=kind)
            bottom += by[kind].to_numpy() / 1e3
        for year, grp in b.groupby("year"):
            ax.annotate("\n".join(grp["asset"].astype(str).tolist()[:6]) + ("\n…" if len(grp) > 6 else ""),
                        (year, grp["capex_eur"].sum() / 1e3), ha="center", va="bottom", fontsize=7)
        ax.legend()
    ax.set_xlim(years[0] - 0.8, years[-1] + 0.8)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.margins(y=0.35)
    ax.set_xlabel("build year")
    ax.set_ylabel("capex (kEUR)")
    ax.set_title(f"{res.instance}: investment timeline")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, folder / "investment_timeline.png")


def cost_breakdown(res, folder: Path):
    cb = {k: v for k, v in res.cost_breakdown_eur.items()}
    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = list(cb)
    vals = [cb[k] / 1e3 for k in names]
    ax.barh(names, vals, color=["C0" if k == "investment" else "C3" for k in names])
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:,.1f}", va="center", fontsize=8)
    ax.set_xlabel("expected present value (kEUR)")
    ax.set_title(f"{res.instance}: cost breakdown")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, folder / "cost_breakdown.png")


def _ev_peak_day(res):
    """The EV table of one day of the last modelled year, summed over buses per fleet and
    hour: the day where the plan departs most from uncontrolled charging (the day with the
    largest uncontrolled load when it never does); None without fleets."""
    ev = res.tables.get("ev_flexibility")
    if ev is None or ev.empty:
        return None
    last = ev[ev["year"] == ev["year"].max()]
    moved = (last["scheduled_mw"] - last["baseline_mw"]).abs().groupby(last["day"], sort=False).sum()
    day = moved.idxmax() if moved.max() > 1e-9 else last.groupby("day", sort=False)["baseline_mw"].max().idxmax()
    cols = ["baseline_mw", "scheduled_mw", "energy_mwh", "energy_min_mwh", "energy_max_mwh"]
    sub = last[last["day"] == day].groupby(["fleet", "hour"], sort=False)[cols].sum().reset_index()
    return sub, day, int(last["year"].iloc[0])


def _closed(g, col):
    """Hours 0..H and values with the last one repeated, so a post-step plot shows every
    step of the day, the last one included."""
    h = g["hour"].to_numpy()
    v = g[col].to_numpy()
    return np.append(h, h[-1] + 1), np.append(v, v[-1])


def ev_peak_day(res, folder: Path):
    """Fleet charging on the peak day of the last year: uncontrolled baseline vs the plan."""
    got = _ev_peak_day(res)
    if got is None:
        return None
    sub, day, year = got
    fleets = list(dict.fromkeys(sub["fleet"]))
    panels = [(f, sub[sub["fleet"] == f]) for f in fleets]
    if len(fleets) > 1:
        panels.insert(0, ("all fleets", sub.groupby("hour")[["baseline_mw", "scheduled_mw"]].sum().reset_index()))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.6), squeeze=False)
    axes = axes[0]
    for ax, (name, g) in zip(axes, panels):
        ax.step(*_closed(g, "baseline_mw"), where="post", color="0.4", ls="--", label="uncontrolled (baseline)")
        ax.step(*_closed(g, "scheduled_mw"), where="post", color="C0", label="scheduled")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(name)
        ax.set_xlabel("hour")
        ax.set_xticks(range(0, 25, 6))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("EV charging (MW, negative: V2G)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{res.instance} ({res.model}): EV charging on day '{day}', {year}")
    return _save(fig, folder / "ev_peak_day.png")


def ev_envelope(res, folder: Path):
    """The fleets' energy envelope (plugged-in EVs' energy between charging as late and as
    early as possible) with the planned trajectory, on the same day."""
    got = _ev_peak_day(res)
    if got is None:
        return None
    sub, day, year = got
    fleets = list(dict.fromkeys(sub["fleet"]))
    fig, axes = plt.subplots(1, len(fleets), figsize=(4.6 * len(fleets), 3.6), squeeze=False)
    for ax, f in zip(axes[0], fleets):
        g = sub[sub["fleet"] == f]
        h, lo = _closed(g, "energy_min_mwh")
        ax.fill_between(h, lo, _closed(g, "energy_max_mwh")[1], step="post", alpha=0.25, color="C2",
                        label="envelope")
        ax.step(*_closed(g, "energy_mwh"), where="post", color="C2", label="planned")
        ax.set_title(f)
        ax.set_xlabel("hour")
        ax.set_xticks(range(0, 25, 6))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("energy in plugged-in EVs (MWh)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{res.instance} ({res.model}): EV energy envelope on day '{day}', {year}")
    return _save(fig, folder / "ev_envelope.png")


def capacity_fade(res, folder: Path):
    """Capacity lost per EV and year (%), calendar and cycling stacked, per fleet and modelled
    year, with the uncontrolled-charging reference as a marker."""
    df = res.tables.get("ageing")
    if df is None or df.empty:
        return None
    fleets = list(dict.fromkeys(df["fleet"]))
    fig, axes = plt.subplots(1, len(fleets), figsize=(4.8 * len(fleets), 3.8), squeeze=False)
    for ax, f in zip(axes[0], fleets):
        g = df[df["fleet"] == f].groupby("year")[["calendar_loss_pct", "cycling_loss_pct", "baseline_loss_pct"]].mean()
        x = np.arange(len(g))
        ax.bar(x, g["calendar_loss_pct"], color="C0", label="calendar (while plugged in)")
        ax.bar(x, g["cycling_loss_pct"], bottom=g["calendar_loss_pct"], color="C1", label="cycling (driving + V2G)")
        ax.plot(x, g["baseline_loss_pct"], "k_", markersize=18, mew=2, label="uncontrolled charging")
        ax.set_xticks(x, [str(y) for y in g.index], rotation=45 if len(x) > 6 else 0)
        ax.set_title(f)
        ax.set_xlabel("modelled year")
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("capacity lost per EV (% per year)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{res.instance} ({res.model}): battery capacity fade")
    return _save(fig, folder / "capacity_fade.png")


def flexibility_heatmap(res, folder: Path):
    """Downward flexibility the plan uses, MWh per year, by hour of the day (x) and modelled
    year (y), all fleets and representative days (weighted by their days per year)."""
    ev = res.tables.get("ev_flexibility")
    if ev is None or ev.empty or not (ev["flex_down_mw"] > 1e-9).any():
        return None
    h = res.extra.get("horizon", {})
    days = h.get("day_weights")
    w = ev["day"].map(days) if days else 365.0 / ev["day"].nunique()
    grid = (ev.assign(mwh=ev["flex_down_mw"] * w).groupby(["year", "hour"])["mwh"].sum().unstack(fill_value=0.0))
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(grid) + 1.8))
    im = ax.imshow(grid.to_numpy(), aspect="auto", cmap="viridis", origin="lower")
    ax.set_yticks(range(len(grid)), [str(y) for y in grid.index])
    ax.set_xticks(range(0, grid.shape[1], 3), [str(c) for c in grid.columns[::3]])
    ax.set_xlabel("hour of the day")
    ax.set_ylabel("modelled year")
    fig.colorbar(im, ax=ax, label="downward flexibility (MWh per year)")
    ax.set_title(f"{res.instance} ({res.model}): EV flexibility used")
    return _save(fig, folder / "flexibility_heatmap.png")


def nodal_price_heatmap(res, folder: Path):
    """Where and when a MW is worth most: the highest nodal price (EUR/MWh) per bus (y) and hour of the day (x) over the modelled years and days, and beside it the
    marginal value of a MW of flexibility per bus (EUR of present value over the horizon)."""
    t = res.tables.get("nodal_prices")
    if t is None or t.empty or not (t["dlmp_p_eur_per_mwh"].abs() > 1e-9).any():
        return None
    order = list(dict.fromkeys(t["bus"]))
    grid = t.groupby(["bus", "hour"])["dlmp_p_eur_per_mwh"].max().unstack(fill_value=0.0).reindex(order)
    value = t.groupby("bus")["marginal_p_eur_per_mw"].sum().reindex(order)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 0.18 * len(order) + 2.5), sharey=True,
                                 gridspec_kw=dict(width_ratios=[3, 1]))
    im = ax.imshow(grid.to_numpy(), aspect="auto", cmap="magma", origin="lower")
    step = max(1, len(order) // 20)
    ax.set_yticks(range(0, len(order), step), [str(b) for b in order[::step]])
    ax.set_xticks(range(0, grid.shape[1], 3), [str(c) for c in grid.columns[::3]])
    ax.set_xlabel("hour of the day")
    ax.set_ylabel("bus")
    fig.colorbar(im, ax=ax, label="highest nodal price (EUR/MWh)")
    ax.set_title(f"{res.instance} ({res.model}): nodal prices")
    unit, div = ("MEUR", 1e6) if value.abs().max() >= 1e6 else ("kEUR", 1e3)
    bx.barh(range(len(order)), value.to_numpy() / div, color="tab:orange")
    bx.set_xlabel(f"value of 1 MW of flexibility ({unit})")
    bx.grid(alpha=0.3)
    return _save(fig, folder / "nodal_prices.png")


def voltage_envelope(res, folder: Path):
    """The range every bus's voltage spans over all operating points (a bar from lowest to
    highest at the bus's line length from the substation; thin lines join the lowest along
    the branches), for a few modelled years."""
    v = res.voltages
    tree = res.extra.get("tree")
    if v.empty or not tree:
        return None
    dist = tree["distance_km"]
    years = sorted(v["year"].unique())
    shown = sorted(set(years[:: max(1, len(years) // 3)]) | {years[-1]})
    fig, ax = plt.subplots(figsize=(8, 4.5))
    span = max(dist.values()) or 1.0
    for i, year in enumerate(shown):
        g = v[v["year"] == year].groupby("bus")["v_pu"].agg(["min", "max"])
        km = np.array([dist.get(b, np.nan) for b in g.index]) + (i - len(shown) / 2) * 0.006 * span
        ax.vlines(km, g["min"], g["max"], color=f"C{i}", lw=2, alpha=0.8, label=f"{year}")
        for a, b in tree["edges"]:  # the lowest voltages joined along each branch
            if a in g.index and b in g.index:
                ax.plot([dist[a], dist[b]], [g.at[a, "min"], g.at[b, "min"]], color=f"C{i}", lw=0.6, alpha=0.6)
    _voltage_band(ax, res)
    _finish(ax, "line length from the substation (km)", "voltage (pu)",
            f"{res.instance}: voltage envelope over all hours (LinDistFlow, plan in place)")
    return _save(fig, folder / "voltage_envelope.png")


def decision_tree(res, folder: Path):
    """The stochastic plan as a tree: one box per node (stage year, branch, probability,
    what is built or contracted there and the node's own cost), leaves spread vertically."""
    dec = res.tables.get("decisions")
    if dec is None or dec.empty:
        return None
    children = {n: list(g["node"]) for n, g in dec.groupby("parent", sort=False)}
    y, leaf = {}, [0]

    def place(n):
        kids = children.get(n, [])
        if not kids:
            y[n] = leaf[0]
            leaf[0] += 1
        else:
            for k in kids:
                place(k)
            y[n] = float(np.mean([y[k] for k in kids]))

    root = dec.loc[dec["parent"] == "", "node"].iloc[0]
    place(root)
    rows = dec.set_index("node")
    n_leaves = leaf[0]
    fig, ax = plt.subplots(figsize=(3.2 * (dec["stage"].max() + 1) + 1, max(3.0, 0.85 * n_leaves + 1)))
    for n, r in rows.iterrows():
        if r["parent"]:
            ax.plot([rows.at[r["parent"], "stage"] + 0.25, r["stage"] - 0.25], [y[r["parent"]], y[n]], color="0.5",
                    lw=0.9, zorder=0)
    for n, r in rows.iterrows():
        built = r.get("assets", r["builds"])
        built = built if isinstance(built, str) and built else ""
        what = []
        if built:
            what.append(("build " + built) if len(built) < 48 else f"build {int(r['n_builds'])} assets")
        if r.get("contracted_mw", 0) > 1e-6:
            what.append(f"contract {r['contracted_mw']:.2f} MW")
        label = (f"{r['year']} {r['branch']}  p={r['prob']:.3g}\n" + ("; ".join(what) or "nothing built")
                 + f"\nnode cost {abs(r['node_cost_pv_eur']) / 1e3 if abs(r['node_cost_pv_eur']) < 0.5 else r['node_cost_pv_eur'] / 1e3:,.0f} kEUR")
        ax.text(r["stage"], y[n], label, ha="center", va="center", fontsize=7,
                bbox=dict(boxstyle="round,pad=0.3", fc="#fde0c5" if what else "white", ec="0.4", lw=0.8))
    ax.set_xlim(-0.6, dec["stage"].max() + 0.6)
    ax.set_ylim(n_leaves - 0.4, -0.6)
    ax.set_xticks(sorted(dec["stage"].unique()))
    ax.set_xticklabels([str(int(rows[rows["stage"] == k]["year"].iloc[0])) for k in sorted(dec["stage"].unique())])
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("investment stage (first year)")
    ax.set_title(f"{res.instance}: decisions per tree node (shaded: something is built or contracted)")
    return _save(fig, folder / "decision_tree.png")


def scenario_costs(res, folder: Path):
    """Per scenario: the stochastic plan's cost beside its wait-and-see cost (perfect
    foresight), the expected-value plan's and the cost without flexibility, where computed."""
    sc = res.tables.get("scenarios")
    if sc is None or sc.empty:
        return None
    cols = [("cost_eur", "stochastic plan"), ("wait_and_see_cost_eur", "perfect foresight (wait-and-see)"),
            ("eev_cost_eur", "expected-value plan (first stage fixed)"),
            ("no_flexibility_cost_eur", "no flexibility (EVs uncontrolled)")]
    cols = [(c, lab) for c, lab in cols if c in sc]
    x = np.arange(len(sc))
    w = 0.8 / len(cols)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(sc) + 2), 4.2))
    for i, (c, lab) in enumerate(cols):
        ax.bar(x + (i - (len(cols) - 1) / 2) * w, sc[c] / 1e3, w, label=lab)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{s}\np={p:.3g}" for s, p in zip(sc["scenario"], sc["probability"])], fontsize=7,
                       rotation=30 if len(sc) > 6 else 0)
    _finish(ax, "scenario (leaf) and its probability", "present cost (kEUR)",
            f"{res.instance}: cost per scenario (expected: {res.objective_eur / 1e3:,.1f} kEUR)")
    return _save(fig, folder / "scenario_costs.png")
