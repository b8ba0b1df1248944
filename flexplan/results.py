"""Solution -> tidy DataFrames, KPIs, summary.json, CSV files and plots.

``Results.write(folder)`` writes into a temporary folder beside the target and renames it
into place at the end, so a killed run never leaves a half-written result that looks
complete; an existing folder is swapped with the new one in one step (Linux
``renameat2(RENAME_EXCHANGE)``; elsewhere two renames, the old folder put back if the
second fails).  :func:`atomic_path` does the same for single files (CSV, JSON, PNG, HTML).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from .blocks.network.common import VIOLATION_COLUMNS, VIOLATION_TOL  # noqa: F401 (re-exported)
from .solve import SolveOutcome


@dataclass
class Results:
    instance: str
    model: str
    status: str
    highs_status: str
    has_solution: bool
    objective_eur: float | None
    mip_gap: float | None
    costs: pd.DataFrame  # category, node, year, cost_eur (undiscounted, in that year or PV), pv_eur (expected PV)
    builds: pd.DataFrame
    voltages: pd.DataFrame
    line_loading: pd.DataFrame
    violations: dict
    timings_s: dict
    size: dict
    limits: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)  # name -> DataFrame, written as <name>.csv (e.g. ev_flexibility)
    extra: dict = field(default_factory=dict)
    # the blocks' own plots: callables (res, folder) -> Path | None, drawn by Results.write
    plot_hooks: list = field(default_factory=list, repr=False)

    @property
    def cost_breakdown_eur(self) -> dict:
        if self.costs.empty:
            return {}
        return {k: float(v) for k, v in self.costs.groupby("category", sort=False)["pv_eur"].sum().items()}

    def summary(self) -> dict:
        builds = [dict(asset=r.asset, kind=r.kind, type=r.type, node=r.node, year=int(r.year),
                       capex_eur=float(r.capex_eur)) for r in self.builds.itertuples()]
        extra = {k: v for k, v in self.extra.items() if k != "tree"}
        return dict(instance=self.instance, model=self.model, status=self.status, highs_status=self.highs_status,
                    objective_eur=self.objective_eur, mip_gap=self.mip_gap, cost_breakdown_eur=self.cost_breakdown_eur,
                    builds=builds, violations=self.violations,
                    timings_s={k: round(v, 4) for k, v in self.timings_s.items()}, size=self.size, limits=self.limits,
                    **extra)

    def write(self, folder: str | Path, plots: bool = True, force: bool = False) -> Path:
        """Write summary.json, voltages.csv, line_loading.csv, builds.csv, costs.csv and PNG
        plots to ``folder`` atomically (an existing folder is replaced if it is empty or a
        flexplan result, anything else only with ``force``: :mod:`flexplan.outdir`)."""
        with atomic_folder(folder, force=force) as (tmp, folder):
            t0 = time.perf_counter()
            self.voltages.to_csv(tmp / "voltages.csv", index=False, float_format="%.6f")
            self.line_loading.to_csv(tmp / "line_loading.csv", index=False, float_format="%.6f")
            self.builds.to_csv(tmp / "builds.csv", index=False)
            self.costs.to_csv(tmp / "costs.csv", index=False)
            for name, table in self.tables.items():
                table.to_csv(tmp / f"{name}.csv", index=False, float_format="%.6f")
            if (self.extra.get("ac_check") or {}).get("replay"):  # as `flexplan check-ac` writes it
                (tmp / "ac_check.json").write_text(json.dumps(_clean(self.extra["ac_check"]["replay"]), indent=2) + "\n")
            if plots and self.has_solution:
                from .plots import write_plots

                write_plots(self, tmp)
            self.timings_s["write"] = time.perf_counter() - t0
            (tmp / "summary.json").write_text(json.dumps(_clean(self.summary()), indent=2) + "\n")
            (tmp / "report.md").write_text(report_markdown(self))
            from .report import write_html_report

            write_html_report(tmp)
        return folder


@contextmanager
def atomic_folder(folder: str | Path, force: bool = False):
    """Yield ``(tmp, folder)``: a temporary folder beside ``folder`` to write a whole result to, and
    the checked target (:func:`flexplan.outdir.check_output_folder`: an existing folder is replaced
    only if it is empty or a flexplan result, or with ``force``).  On success the temporary folder
    is marked a result and replaces the target (:func:`replace_folder`); on any exception it is
    removed and the target is left as it was."""
    from .outdir import check_output_folder, clean_stale, mark_result, temp_prefix

    folder = check_output_folder(folder, force=force)
    folder.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(folder)  # what a killed earlier write left
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(folder.name), dir=folder.parent))
    try:
        yield tmp, folder
        mark_result(tmp)
        replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path`` (same suffix, hidden name) to write a file to;
    on success it replaces ``path`` in one ``os.replace``, on any exception it is removed
    and ``path`` is left as it was."""
    from .outdir import clean_stale, temp_prefix

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.with_name(path.stem))  # what a killed earlier write left
    fd, name = tempfile.mkstemp(prefix=temp_prefix(path.stem), suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False
    where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0


def replace_folder(tmp: Path, folder: Path) -> None:
    """Move the complete folder ``tmp`` to ``folder``, replacing an existing one: the target
    holds either the old or the new folder at every moment where the OS allows it."""
    if not folder.exists():
        tmp.rename(folder)
        return
    if _exchange(tmp, folder):
        shutil.rmtree(tmp, ignore_errors=True)  # now the old folder
        return
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    folder.rename(old)
    try:
        tmp.rename(folder)
    except BaseException:
        old.rename(folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def collect(pm, outcome: SolveOutcome) -> Results:
    """Read the solved model into a :class:`Results`."""
    from .blocks.arrays import value as cost_value

    t0 = time.perf_counter()
    inst, ix = pm.instance, pm.index
    extracted, sections, report, hooks = {}, {}, {}, []
    if outcome.has_solution:
        for name, (spec, blk) in pm.blocks.items():
            if spec.extract is not None:
                out = dict(spec.extract(blk, inst, ix))
                sections.update(out.pop("summary", {}))
                if out.get("report"):  # a markdown fragment for report.md
                    report[name] = out.pop("report")
                hooks.extend(out.pop("plots", ()))  # the block's plots: (res, folder) -> Path
                extracted.update(out)
    if report:
        sections["report_sections"] = report
    known = {"builds", "voltages", "line_loading", "unserved_mwh_modelled"}
    tables = {k: v for k, v in extracted.items() if k not in known and isinstance(v, pd.DataFrame)}
    rows = []
    if outcome.has_solution:
        for term in pm.hub.costs:
            val = cost_value(term.expr)
            rows.append(dict(category=term.category, node=term.node, year=term.year if term.year is not None else "",
                             cost_eur=val, pv_eur=val * pm.cost_weight(term)))
    costs = pd.DataFrame(rows, columns=["category", "node", "year", "cost_eur", "pv_eur"])
    builds = extracted.get("builds", pd.DataFrame(columns=["asset", "kind", "type", "candidate", "node", "year",
                                                           "share", "capex_eur", "rating_mva"]))
    volt = extracted.get("voltages", pd.DataFrame(columns=["node", "year", "day", "hour", "bus", "v_pu"]))
    load = extracted.get("line_loading", pd.DataFrame(columns=["node", "year", "day", "hour", "line", "p_mw", "q_mvar",
                                                               "rating_mva", "loading_pct"]))
    lim = inst.limits
    if len(volt):
        dev = np.maximum(lim.v_min_pu - volt["v_pu"], volt["v_pu"] - lim.v_max_pu).clip(lower=0)
        max_dev = float(dev.max())
    else:
        max_dev = 0.0
    over = (load["loading_pct"] - lim.max_loading_pct).clip(lower=0) if len(load) else pd.Series([0.0])
    violations = dict(max_voltage_deviation_pu=round(max_dev, 6),
                      max_overload_pct=round(float(over.max()) if over.notna().any() else 0.0, 4),
                      unserved_mwh=round(float(extracted.get("unserved_mwh_modelled", 0.0)), 6))
    where = {}
    if outcome.has_solution:
        tables["injections"] = withdrawal_table(pm)
        vt = violation_table(pm)
        tables["violations"] = vt
        where = dict(violation_locations=violation_summary(vt))
    timings = dict(pm.timings)
    timings.update(outcome.timings)
    timings["extract"] = time.perf_counter() - t0
    return Results(instance=inst.name, model=pm.recipe.name, status=outcome.status, highs_status=outcome.highs_status,
                   has_solution=outcome.has_solution, objective_eur=outcome.objective, mip_gap=outcome.mip_gap,
                   costs=costs, builds=builds, voltages=volt, line_loading=load, violations=violations,
                   timings_s=timings, size=outcome.size,
                   limits=dict(v_min_pu=lim.v_min_pu, v_max_pu=lim.v_max_pu, max_loading_pct=lim.max_loading_pct),
                   tables=tables, plot_hooks=hooks,
                   extra=dict(dual_bound_eur=outcome.dual_bound, tree=_tree(inst.network),
                              instance_path=str(inst.path) if inst.path is not None else None,
                              recipe_source=pm.recipe.source, **where, **sections,
                              horizon=dict(base_year=inst.economics.base_year, end_year=inst.economics.end_year,
                                           stages=list(inst.economics.stages),
                                           discount_rate=inst.economics.discount_rate,
                                           years_per_stage=inst.years_per_stage,
                                           representative_days=len(inst.profiles.days),
                                           day_weights={d: float(w) for d, w in zip(inst.profiles.days,
                                                                                     inst.profiles.weights)},
                                           steps_per_day=inst.profiles.hours)))


def withdrawal_table(pm) -> pd.DataFrame:
    """What every block put at every bus, evaluated at the solution: per (node, year, day,
    hour, bus) the net withdrawal ``p_mw``, ``q_mvar`` (fixed loads plus what the blocks' variable
    injections take; generation negative), before any load the network shed.  This is what the AC
    replay (:func:`flexplan.acpf.check_ac`) puts into pandapower, whatever blocks made it.
    Buses with nothing on them are left out."""
    hub, ix, net = pm.hub, pm.index, pm.instance.network
    P = hub.p_withdraw.astype(float).copy()
    Q = hub.q_withdraw.astype(float).copy()
    for terms, M in ((hub.p_terms, P), (hub.q_terms, Q)):
        for (j, t), exprs in terms.items():
            for e in exprs:
                M[j, t] -= float(pyo.value(e, exception=False) or 0.0) if not isinstance(e, (int, float)) else e
    used = np.flatnonzero(np.any(P != 0, axis=1) | np.any(Q != 0, axis=1))
    if not len(used):
        return pd.DataFrame(columns=["node", "year", "day", "hour", "bus", "p_mw", "q_mvar"])
    return per_bus_frame(ix, net.buses["name"].to_numpy()[used], p_mw=P[used], q_mvar=Q[used])


def per_bus_frame(ix, names, **columns) -> pd.DataFrame:
    """A tidy table per (bus, op): the op's node, year, day and hour, ``bus`` from ``names``
    (one per row of each array) and each column from an array of shape (len(names), n_ops);
    built with numpy (one concat per bus cost 0.3 s on the large benchmark)."""
    n, T = len(names), ix.n_ops
    ops = ix.op_frame()
    data = {c: np.tile(ops[c].to_numpy(), n) for c in ops.columns}
    data["bus"] = np.repeat(np.asarray(names), T)
    for k, v in columns.items():
        data[k] = np.asarray(v, dtype=float).reshape(n * T) if np.ndim(v) else np.full(n * T, float(v))
    return pd.DataFrame(data)


def violation_table(pm) -> pd.DataFrame:
    """Every soft limit the plan violates, one row per slack above tolerance: what the network
    formulation reports through its ``violations`` trait (:func:`flexplan.blocks.network.common.slack_violations`
    has the columns: which constraint, where, when, how much, at what penalty)."""
    if "network" not in pm.blocks:
        return pd.DataFrame(columns=VIOLATION_COLUMNS)
    spec, blk = pm.blocks["network"]
    if spec.violations is None:
        return pd.DataFrame(columns=VIOLATION_COLUMNS)
    return spec.violations(blk, pm).reindex(columns=VIOLATION_COLUMNS)


def violation_summary(table: pd.DataFrame, top: int = 5) -> dict:
    """Counts per kind and the ``top`` worst violations (by penalty) for summary.json."""
    counts = {k: int(n) for k, n in table["kind"].value_counts().sort_index().items()} if len(table) else {}
    worst = [dict(kind=r.kind, constraint=r.constraint, element=r.element, node=r.node, year=int(r.year),
                  day=r.day, hour=int(r.hour), amount=round(float(r.amount), 6), unit=r.unit)
             for r in table.head(top).itertuples()]
    return dict(count=int(len(table)), count_by_kind=counts, worst=worst)


def _tree(net) -> dict:
    """Bus names, branch end points (by name) and distances from the slack bus, for plots."""
    names = net.buses["name"].tolist()
    dist = net.distance_km()
    edges = [(names[f], names[t]) for f, t, vt in zip(net.branches["from_bus"], net.branches["to_bus"],
                                                      net.branches["virtual"]) if not vt]
    return {"edges": edges, "distance_km": {n: float(d) for n, d in zip(names, dist)}}


def report_markdown(res: Results) -> str:
    """A short human-readable report beside the machine-readable files."""
    lines = [f"# flexplan plan: {res.instance} under {res.model}", ""]
    obj = "n/a" if res.objective_eur is None else f"{res.objective_eur:,.0f} EUR"
    gap = "" if res.mip_gap is None else f", MIP gap {100 * res.mip_gap:.3f} %"
    lines += [f"Status: **{res.status}** (HiGHS: {res.highs_status}); expected present cost {obj}{gap}.", ""]
    lines += ["## Cost breakdown (present value, EUR)", "", "| category | EUR |", "|---|---:|"]
    lines += [f"| {k} | {v:,.0f} |" for k, v in res.cost_breakdown_eur.items()]
    lines += ["", "## Builds", ""]
    if len(res.builds):
        lines += ["| year | node | asset | kind | type | capex EUR |", "|---|---|---|---|---|---:|"]
        lines += [f"| {r.year} | {r.node} | {r.asset} | {r.kind} | {r.type} | {r.capex_eur:,.0f} |"
                  for r in res.builds.itertuples()]
    else:
        lines.append("Nothing is built.")
    for fragment in (res.extra.get("report_sections") or {}).values():  # each block's own section
        lines += ["", *fragment.rstrip("\n").split("\n")]
    prices = res.extra.get("prices")
    if prices and prices.get("max_dlmp_at"):
        at = prices["max_dlmp_at"]
        top = ", ".join(f"{b} ({v / 1e3:,.0f} kEUR)" for b, v in (prices.get("flex_value_eur_per_mw") or {}).items())
        lines += ["", "## Nodal prices", "",
                  f"Highest nodal price **{prices['max_dlmp_p_eur_per_mwh']:,.0f} EUR/MWh** at bus {at['bus']} "
                  f"({at['node']}, {at['year']}, {at['day']}, hour {at['hour']}); a MW of flexibility is worth most at "
                  f"{top or '-'} (present value; nodal_prices.csv, line_prices.csv)."]
    vof = res.extra.get("value_of_flexibility")
    if vof and vof.get("value_eur") is not None:
        lines += ["", "## Value of flexibility", "",
                  f"Against {vof['reference_model']} ({vof['reference_objective_eur']:,.0f} EUR, builds: "
                  + (", ".join(f"{b['year']} {b['asset']}" for b in vof["reference_builds"]) or "none")
                  + f"): **{vof['value_eur']:,.0f} EUR** (between {vof['value_lower_eur']:,.0f} and "
                  f"{vof['value_upper_eur']:,.0f} EUR given the MIP gaps)."]
    st = res.extra.get("stochastic")
    if st and st.get("expected_cost_eur") is not None:
        lines += ["", "## Stochastic plan", "",
                  f"Scenario tree: {st['nodes']} nodes, {st['scenarios']} scenarios, {st['stages']} stages. "
                  f"Expected cost **{st['expected_cost_eur']:,.0f} EUR**; first stage: "
                  f"{', '.join(st.get('first_stage_builds', [])) or 'nothing built'}.", ""]
        for key, label in (("vss_eur", "Value of the stochastic solution (EEV − RP)"),
                           ("evpi_eur", "Expected value of perfect information (RP − E[WS])"),
                           ("option_value_of_flexibility_eur", "Option value of flexibility "
                                                               "(E[cost, no flexibility] − E[cost])")):
            if st.get(key) is not None:
                lines.append(f"- {label}: **{st[key]:,.0f} EUR**")
        dec = res.tables.get("decisions")
        if dec is not None and len(dec):
            lines += ["", "| node | year | p | builds | contracted MW | node cost EUR |", "|---|---:|---:|---|---:|---:|"]
            lines += [f"| {r.node} | {r.year} | {r.prob:.4g} | {r.builds or '-'} | {r.contracted_mw:.3f} | "
                      f"{r.node_cost_pv_eur:,.0f} |" for r in dec.itertuples()]
        sc = res.tables.get("scenarios")
        if sc is not None and len(sc):
            cols = [c for c in ("cost_eur", "wait_and_see_cost_eur", "eev_cost_eur", "no_flexibility_cost_eur") if c in sc]
            lines += ["", "| scenario | p | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
            lines += [f"| {r['scenario']} | {r['probability']:.4g} | " + " | ".join(f"{r[c]:,.0f}" for c in cols) + " |"
                      for _, r in sc.iterrows()]
    v = res.violations
    lines += ["", "## Limits", "",
              f"- largest voltage deviation outside the band: {v['max_voltage_deviation_pu']:.4f} pu",
              f"- largest overload above the thermal limit: {v['max_overload_pct']:.2f} %",
              f"- unserved energy over the horizon: {v['unserved_mwh']:.3f} MWh"]
    loc = res.extra.get("violation_locations") or {}
    if loc.get("worst"):
        lines += [f"- {loc['count']} soft-limit violation(s) (all in violations.csv); the worst:"]
        lines += [f"  - {w['kind']} ({w['constraint']}) at {w['element']}, {w['node']} {w['year']} day {w['day']} "
                  f"hour {w['hour']}: {w['amount']:.4g} {w['unit']}" for w in loc["worst"]]
    lines += ["",
              "## Time (s)", "", ", ".join(f"{k} {t:.2f}" for k, t in res.timings_s.items()), "",
              "Plots: voltage_profile.png, loading_duration.png, investment_timeline.png, cost_breakdown.png"
              + (", ev_peak_day.png, ev_envelope.png" if "ev_flexibility" in res.tables else ""), ""]
    return "\n".join(lines)
