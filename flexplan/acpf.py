"""Replay a solved plan through pandapower's AC power flow, hour by hour.

For every operating point (node, year, day, hour) of a result folder the feeder is rebuilt in
pandapower from the instance's network data, with the branches the plan has built by then
(a replacement changes the branch's impedance and rating; a parallel candidate is a branch of
its own) and, as loads, the net withdrawal at every bus that the plan evaluated
(``injections.csv``: fixed loads, EV charging with its reactive power, storage, PV, whatever
blocks the recipe had), and solved with
``pandapower.runpp``.  Reported per op: convergence, the lowest AC voltage and where, the
largest branch loading, the losses, and the difference between LinDistFlow's voltages and
AC's (LinDistFlow is lossless, so it is optimistic: the difference is mostly positive);
and the AC violations of the plan's limits over the whole horizon.

Branches are modelled as series impedances (``pandapower`` ``impedance`` elements, per unit on
the instance's base power), the same data the planning model used; line charging is not
represented, as in LinDistFlow.  Load shedding the plan chose is not replayed (the full load
is), so a plan that sheds shows its full violation here.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import FlexplanError


def build_pandapower(network, options: list | None = None):
    """A pandapower net of the instance's network (buses, slack, branches as impedances);
    ``options``: candidate rows (``kind``, ``branch``, ``r_pu``, ``x_pu``) that are built."""
    import pandapower as pp

    net = pp.create_empty_network(sn_mva=float(network.s_base_mva))
    for i, vn in enumerate(network.buses["vn_kv"].to_numpy(float)):
        pp.create_bus(net, vn_kv=vn, index=i, name=str(network.buses["name"].iloc[i]))
    for r in network.slack.itertuples():
        pp.create_ext_grid(net, bus=int(r.bus), vm_pu=float(r.vm_pu))
    br = network.branches
    r_pu = br["r_pu"].to_numpy(float).copy()
    x_pu = br["x_pu"].to_numpy(float).copy()
    rating = br["rating_mva"].to_numpy(float).copy()
    parallels = []
    for o in options or []:
        if o["kind"] == "replace":
            r_pu[o["branch"]], x_pu[o["branch"]], rating[o["branch"]] = o["r_pu"], o["x_pu"], o["rating_mva"]
        else:
            parallels.append(o)
    sb = float(network.s_base_mva)
    for k in range(len(br)):
        r, x = _series(r_pu[k], x_pu[k])
        pp.create_impedance(net, int(br["from_bus"].iloc[k]), int(br["to_bus"].iloc[k]), rft_pu=r, xft_pu=x,
                            sn_mva=sb, name=str(br["name"].iloc[k]), index=k)
    for j, o in enumerate(parallels):
        r, x = _series(o["r_pu"], o["x_pu"])
        pp.create_impedance(net, int(br["from_bus"].iloc[o["branch"]]), int(br["to_bus"].iloc[o["branch"]]),
                            rft_pu=r, xft_pu=x, sn_mva=sb, name=o.get("name") or
                            f"{br['name'].iloc[o['branch']]}+parallel", index=len(br) + j)
    return net, rating, parallels


#: reactance (pu) given to a branch without impedance (the virtual branch of a substation import
#: limit): it keeps the Newton-Raphson Jacobian well conditioned (1e-9 pu made a quarter of the
#: flows fail); a branch with an impedance keeps its own, however small
ZERO_IMPEDANCE_X_PU = 1e-5


def _series(r_pu: float, x_pu: float) -> tuple[float, float]:
    """The (r, x) pu a branch is replayed with: its own, unless it has no impedance at all."""
    r, x = max(float(r_pu), 0.0), float(x_pu)
    if r == 0.0 and abs(x) == 0.0:
        return 0.0, ZERO_IMPEDANCE_X_PU
    return r, x


def check_ac(folder: str | Path, write: bool = True, progress=None, detail: dict | None = None
             ) -> tuple[pd.DataFrame, dict]:
    """Replay the plan in result ``folder`` (written by :meth:`Results.write`); returns the
    per-op table and a summary, and with ``write`` puts ``ac_check.csv`` and ``ac_check.json``
    into the folder.  ``detail`` (a dict, filled in): per (bus, op) the AC and LinDistFlow
    voltages ``v_ac``, ``v_ldf`` (pu) and per (bus, op) the active and reactive losses of the
    branches ending at the bus, ``loss_p``, ``loss_q`` (MW, Mvar) — what
    :func:`flexplan.acfeasible.make_ac_feasible` corrects with."""
    from .index import deterministic_index, tree_index
    from .instance import load_instance

    folder = Path(folder)
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except FileNotFoundError as e:
        raise FlexplanError(f"{folder}: no summary.json (not a flexplan result folder)") from e
    path = summary.get("instance_path")
    if not path or not Path(path).exists():
        raise FlexplanError(f"{folder}/summary.json: the instance folder '{path}' is not there any more; the AC check "
                            "rebuilds the feeder from it")
    if not summary.get("objective_eur") and summary.get("objective_eur") != 0:
        raise FlexplanError(f"{folder}: the run has no solution to replay (status {summary.get('status')})")
    inst = load_instance(path)
    # a stochastic plan is replayed on every node of its tree (loads scaled per node)
    ix = tree_index(inst) if summary.get("stochastic") and inst.tree is not None else deterministic_index(inst)
    builds = pd.read_csv(folder / "builds.csv")
    volt = pd.read_csv(folder / "voltages.csv", dtype={"bus": str, "node": str, "day": str})
    names = inst.network.buses["name"].astype(str).tolist()
    P, Q = _withdrawals(folder, summary, inst, ix, names)
    df, out = replay(inst, ix, builds, P, Q, volt, progress=progress, detail=detail)
    if write:
        for name, text in (("ac_check.csv", df.to_csv(index=False, float_format="%.6f")),
                           ("ac_check.json", json.dumps(out, indent=2) + "\n")):
            tmp = folder / f".{name}.tmp-{os.getpid()}"
            tmp.write_text(text)
            tmp.replace(folder / name)
    return df, out


def replay(inst, ix, builds: pd.DataFrame, P: np.ndarray, Q: np.ndarray, volt: pd.DataFrame, progress=None,
           detail: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Replay a plan in pandapower's AC power flow, op by op: ``builds`` (candidate, node,
    year), the net withdrawal ``P``, ``Q`` per (bus, op) (MW, Mvar) and the model's voltages
    ``volt`` (node, year, day, hour, bus, v_pu).  Returns the per-op table and the summary of
    :func:`check_ac`; ``detail`` (a dict) is filled with per (bus, op) ``v_ac``, ``v_ldf`` (the
    model's voltage), ``loss_p``, ``loss_q``, and per element (branch or built parallel
    candidate, by name) the AC apparent power at its sending end ``s_ac`` (MVA per op)."""
    import pandapower as pp

    net0 = inst.network
    cands = inst.candidates.set_index("id") if "id" in inst.candidates else inst.candidates
    names = net0.buses["name"].astype(str).tolist()
    volt_ldf = volt.astype({"node": str, "day": str, "bus": str, "year": int, "hour": int}).set_index(
        ["node", "year", "day", "hour", "bus"])["v_pu"]
    lim_lo, lim_hi = inst.limits.v_min_pu, inst.limits.v_max_pu
    rows, cache = [], {}
    if detail is not None:
        nb = net0.n_buses
        detail.update(v_ac=np.full((nb, ix.n_ops), np.nan), v_ldf=np.full((nb, ix.n_ops), np.nan),
                      loss_p=np.zeros((nb, ix.n_ops)), loss_q=np.zeros((nb, ix.n_ops)), index=ix, s_ac={})
        to_bus = net0.branches["to_bus"].to_numpy(int)
    t0 = time.perf_counter()
    for t in range(ix.n_ops):
        node, year = ix.node_names[ix.op_node[t]], int(ix.op_year[t])
        built = builds[(builds["year"] <= year) & builds["node"].isin(ix.ancestors_incl[node])]
        key = tuple(sorted(built["candidate"]))
        if key not in cache:
            opts = [dict(kind=cands.at[c, "kind"], branch=int(cands.at[c, "branch"]), r_pu=float(cands.at[c, "r_pu"]),
                         x_pu=float(cands.at[c, "x_pu"]), rating_mva=float(cands.at[c, "rating_mva"]), name=str(c))
                    for c in key]
            cache[key] = build_pandapower(net0, opts)
            pnet = cache[key][0]
            for i in range(net0.n_buses):
                pp.create_load(pnet, bus=i, p_mw=0.0, q_mvar=0.0, index=i)
        pnet, rating, parallels = cache[key]
        pnet.load["p_mw"] = P[:, t]
        pnet.load["q_mvar"] = Q[:, t]
        try:
            pp.runpp(pnet, numba=False)
            ok = True
        except Exception:  # noqa: BLE001 - pandapower raises its own LoadflowNotConverged and others
            ok = False
        day, hour = ix.days[ix.op_day[t]], int(ix.op_hour[t])
        if not ok:
            rows.append(dict(node=node, year=year, day=day, hour=hour, converged=False))
            continue
        vm = pnet.res_bus["vm_pu"].to_numpy()
        s = np.hypot(pnet.res_impedance["p_from_mw"], pnet.res_impedance["q_from_mvar"]).to_numpy()
        rat = np.concatenate([rating, [o["rating_mva"] for o in parallels]])
        loading = 100 * s / rat
        ldf = volt_ldf.reindex(pd.MultiIndex.from_tuples([(str(node), year, str(day), hour, n)
                                                           for n in names])).to_numpy()
        dv = ldf - vm
        if detail is not None:
            detail["v_ac"][:, t] = vm
            detail["v_ldf"][:, t] = ldf
            ends = np.concatenate([to_bus, [to_bus[o["branch"]] for o in parallels]]).astype(int)
            np.add.at(detail["loss_p"][:, t], ends, pnet.res_impedance["pl_mw"].to_numpy())
            np.add.at(detail["loss_q"][:, t], ends, pnet.res_impedance["ql_mvar"].to_numpy())
            for name, sk in zip(pnet.impedance["name"].tolist(), s):
                detail["s_ac"].setdefault(name, np.full(ix.n_ops, np.nan))[t] = sk
        worst = int(np.argmin(vm))
        rows.append(dict(node=node, year=year, day=day, hour=hour, converged=True, v_min_ac_pu=float(vm.min()),
                         v_min_bus=names[worst], v_max_ac_pu=float(vm.max()), v_min_ldf_pu=float(np.nanmin(ldf)),
                         max_abs_dv_pu=float(np.nanmax(np.abs(dv))), max_loading_ac_pct=float(loading.max()),
                         losses_mw=float(pnet.res_impedance["pl_mw"].sum()),
                         undervoltage=bool(vm.min() < lim_lo - 1e-9), overvoltage=bool(vm.max() > lim_hi + 1e-9),
                         overload=bool(loading.max() > inst.limits.max_loading_pct + 1e-6)))
        if progress and (t + 1) % 500 == 0:
            progress(f"  {t + 1}/{ix.n_ops} power flows ({time.perf_counter() - t0:.0f} s)")
    df = pd.DataFrame(rows)
    conv = df[df["converged"]] if len(df) else df
    out = dict(ops=int(len(df)), converged=int(df["converged"].sum()) if len(df) else 0,
               v_min_ac_pu=float(conv["v_min_ac_pu"].min()) if len(conv) else None,
               v_max_ac_pu=float(conv["v_max_ac_pu"].max()) if len(conv) else None,
               max_loading_ac_pct=float(conv["max_loading_ac_pct"].max()) if len(conv) else None,
               max_ldf_minus_ac_pu=float(conv["max_abs_dv_pu"].max()) if len(conv) else None,
               ops_undervoltage=int(conv["undervoltage"].sum()) if len(conv) else 0,
               ops_overvoltage=int(conv["overvoltage"].sum()) if len(conv) else 0,
               ops_overloaded=int(conv["overload"].sum()) if len(conv) else 0,
               limits=dict(v_min_pu=lim_lo, v_max_pu=lim_hi, max_loading_pct=inst.limits.max_loading_pct),
               ac_feasible=bool(len(conv) == len(df) and not (conv["undervoltage"].any() or conv["overvoltage"].any()
                                                               or conv["overload"].any())),
               seconds=round(time.perf_counter() - t0, 2))
    return df, out


def _withdrawals(folder: Path, summary: dict, inst, ix, names) -> tuple[np.ndarray, np.ndarray]:
    """Net withdrawal (MW, Mvar) per (bus, op) as the plan evaluated it: ``injections.csv``
    (:func:`flexplan.results.withdrawal_table`, what every block put at every bus).  A result
    folder from before that table: the fixed loads and the EV fleets' schedules, rebuilt."""
    from .blocks.demand import load_matrices

    inj_path = folder / "injections.csv"
    if inj_path.exists():
        inj = pd.read_csv(inj_path, dtype={"bus": str, "node": str, "day": str})
        return injection_matrices(inj, ix, names, inj_path)
    P, Q = load_matrices(inst, ix)
    ev_path = folder / "ev_flexibility.csv"
    ev = pd.read_csv(ev_path, dtype={"bus": str, "node": str, "day": str}) if ev_path.exists() else None
    q_per_p = (summary.get("grid_code") or {}).get("q_per_p", 0.0) or 0.0
    if ev is not None and len(ev):
        bus, idx = _bus_op(ev, ix, names, ev_path)
        np.add.at(P, (bus, idx), ev["scheduled_mw"].to_numpy())
        np.add.at(Q, (bus, idx), -q_per_p * ev["charge_mw"].to_numpy())
    return P, Q


def _bus_op(df: pd.DataFrame, ix, names, where) -> tuple[np.ndarray, np.ndarray]:
    """Bus and op positions of the rows of a table keyed (node, year, day, hour, bus)."""
    frame = ix.op_frame()
    key = pd.MultiIndex.from_frame(frame.assign(node=frame["node"].astype(str), year=frame["year"].astype(int),
                                                day=frame["day"].astype(str), hour=frame["hour"].astype(int)))
    op_of = pd.Series(np.arange(ix.n_ops), index=key)
    bus_of = {n: i for i, n in enumerate(names)}
    idx = op_of.reindex(pd.MultiIndex.from_frame(df[["node", "year", "day", "hour"]].astype(
        {"node": str, "year": int, "day": str, "hour": int}))).to_numpy()
    bus = df["bus"].astype(str).map(bus_of).to_numpy()
    if np.isnan(idx.astype(float)).any() or np.isnan(bus.astype(float)).any():
        raise FlexplanError(f"{where}: rows that are not operating points or buses of the instance's model")
    return bus.astype(int), idx.astype(int)


def injection_matrices(inj: pd.DataFrame, ix, names, where="injections") -> tuple[np.ndarray, np.ndarray]:
    """The net withdrawal per (bus, op), MW and Mvar, of an injections table (node, year, day,
    hour, bus, p_mw, q_mvar: :func:`flexplan.results.withdrawal_table`)."""
    P = np.zeros((len(names), ix.n_ops))
    Q = np.zeros((len(names), ix.n_ops))
    if len(inj):
        bus, idx = _bus_op(inj, ix, names, where)
        np.add.at(P, (bus, idx), inj["p_mw"].to_numpy(float))
        np.add.at(Q, (bus, idx), inj["q_mvar"].to_numpy(float))
    return P, Q


def ac_corrected_plan(instance, recipe, out: str | Path, max_iter: int = 5, progress=None, **solve_kw):
    """Re-plan a recipe so that the plan holds in AC, at least cost: the recipe's network
    formulation becomes ``branchflow`` (losses inside the optimisation, cones refined by cuts;
    LinDistFlow's options are kept), the plan is replayed in AC and corrected bus by bus and hour
    by hour where it still fails (:func:`flexplan.acfeasible.make_ac_feasible`), at most
    ``max_iter`` times.  The plan is written to ``out`` with its AC check (``ac_check.json``,
    ``ac_check.csv``) and the loop's report in ``summary.json`` (``ac_check``: every iteration,
    ``ac_feasible``, the lower bound on any AC-feasible plan and the gap to it).  Returns
    (Results, report); ``report["ac_feasible"]`` False with ``message`` says why not."""
    import flexplan as fp
    from .recipe import with_formulation

    inst = instance if isinstance(instance, fp.Instance) else fp.load_instance(instance)
    rec = fp.resolve_recipe(recipe)
    if rec.formulation != "branchflow":
        rec = with_formulation(rec, "branchflow")
    res = fp.solve(fp.build_model(inst, rec), progress=progress, ac="ensure", ac_max_iter=max_iter, **solve_kw)
    report = res.extra.get("ac_check") or dict(ac_feasible=False, iterations=[],
                                               message=f"no plan to check ({res.status})")
    if res.has_solution:
        res.write(out)
    return res, report
