"""flexplan against linopy on the same LP: build, hand-off and extract over HiGHS's solve time.

    PYTHONPATH=. python benchmarks/linopy_side_by_side.py [--days 12] [--scale 2.5] [--rounds 3]
                                                        [--out benchmarks/results/linopy.json]

The LP is the large benchmark's (``large_cases.py``: SimBench MV rural, 4 stages x ``--days``
tsam days x 24 h, loads x ``--scale``, LinDistFlow with a 12-sided polygon, the LP
relaxation of the builds).  flexplan builds it through its blocks; the linopy model below
writes the same rows from the same data (flow ranges, big-M of the replaced branches'
alternatives, polygon edges that can bind, annuity factors) with linopy's labelled arrays.
Both are solved by HiGHS 1.x through highspy with the same options (one thread per core,
simplex); the objectives must agree to 1e-9 (the run fails otherwise).

Every round runs both tools in fresh processes, one after the other, and records per tool:
build (model written), hand-off (matrix to a ``highspy.Highs``), HiGHS's solve, extract
(solution into the tool's variables and tables) and peak memory; the table gives medians.
linopy is an optional benchmark dependency: ``pip install linopy``.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import warnings

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _instance(days: int, scale: float):
    from large_cases import _instance as inst

    return inst(scale, days)


def _highs_options(h):
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 0.01)


# -- flexplan ------------------------------------------------------------------------------------
def run_flexplan(days: int, scale: float) -> dict:
    import flexplan as fp
    from large_cases import LP_RECIPE

    inst = _instance(days, scale)
    pm = fp.build_model(inst, LP_RECIPE)
    res = fp.solve(pm, mip_gap=0.01)
    t = res.timings_s
    return dict(tool="flexplan", build_s=t["build"], handoff_s=t["handoff"], solve_s=t["solve"], extract_s=t["extract"],
                objective_eur=res.objective_eur, status=res.status, **res.size)


# -- linopy --------------------------------------------------------------------------------------
def build_linopy(inst):
    """The LP of ``large_cases.LP_RECIPE`` written with linopy (same rows as flexplan's
    lindistflow + demand + reinforcement with ``binary = false``, lead time 0)."""
    import linopy
    import xarray as xr

    # the model relies on linopy's (default) legacy semantics: a masked term adds nothing to the
    # sum it is in (the objective check of main() would catch a change)
    warnings.filterwarnings("ignore", category=getattr(linopy, "LinopySemanticsWarning", Warning))

    from flexplan.blocks.demand import load_matrices
    from flexplan.blocks.network.common import UNLIMITED_MVA, flow_ranges, polygon
    from flexplan.economics import INVESTMENT_COST_METHODS
    from flexplan.hub import Hub
    from flexplan.index import deterministic_index

    net, econ, lim, pen = inst.network, inst.economics, inst.limits, inst.penalties
    ix = deterministic_index(inst)
    T, nT = range(ix.n_ops), ix.n_ops
    hub = Hub(net.n_buses, nT)
    pw, qw = load_matrices(inst, ix)
    hub.p_withdraw += pw
    hub.q_withdraw += qw
    ps, qs = hub.sheddable()
    sb = float(net.s_base_mva)
    br = net.branches
    frm, to = br["from_bus"].to_numpy(int), br["to_bus"].to_numpy(int)
    r, x = br["r_pu"].to_numpy(float), br["x_pu"].to_numpy(float)
    rating = br["rating_mva"].to_numpy(float)
    nK = net.n_branches
    slack_v = {int(b): float(vm) ** 2 for b, vm in zip(net.slack["bus"], net.slack["vm_pu"])}
    buses = np.array([j for j in range(net.n_buses) if j not in slack_v])
    bpos = np.full(net.n_buses, -1)
    bpos[buses] = np.arange(len(buses))
    parent = np.asarray(net.parent_branch())
    nodes = ix.node_names
    opnode = np.asarray(ix.op_node)
    cands = inst.candidates
    C = len(cands)
    kind = cands["kind"].tolist()
    cbranch = cands["branch"].to_numpy(int)
    Pmin, Pmax, Qmin, Qmax = flow_ranges(net, hub)
    Pabs, Qabs = np.maximum(np.abs(Pmin), np.abs(Pmax)), np.maximum(np.abs(Qmin), np.abs(Qmax))
    par = [c for c in range(C) if kind[c] == "parallel"]
    for k in {int(cbranch[c]) for c in par}:
        Pmin[k], Pmax[k], Qmin[k], Qmax[k] = -Pabs[k], Pabs[k], -Qabs[k], Qabs[k]
    anc = np.zeros((len(nodes), len(nodes)))  # anc[n, m] = 1: m is n or an ancestor
    for i, n in enumerate(nodes):
        for m in ix.ancestors_incl[n]:
            anc[i, nodes.index(m)] = 1.0

    m = linopy.Model()
    kd, td, jd = ("k", np.arange(nK)), ("t", np.arange(nT)), ("j", buses)

    def da(a, *dims):
        return xr.DataArray(np.asarray(a), coords=[d for d in dims])

    build = m.add_variables(lower=0, upper=1, coords=[("c", np.arange(C)), ("n", np.arange(len(nodes)))], name="build")
    P = m.add_variables(lower=da(Pmin, kd, td), upper=da(Pmax, kd, td), name="P")
    Q = m.add_variables(lower=da(Qmin, kd, td), upper=da(Qmax, kd, td), name="Q")
    vh_lo, vh_hi = 0.8 ** 2, 1.2 ** 2
    v = m.add_variables(lower=vh_lo, upper=vh_hi, coords=[jd, td], name="v")
    s_vlo = m.add_variables(lower=0, coords=[jd, td], name="s_vlo")
    s_vhi = m.add_variables(lower=0, coords=[jd, td], name="s_vhi")
    shed_mask = da(ps[buses] > 0, jd, td)
    shed = m.add_variables(lower=0, upper=da(ps[buses], jd, td), mask=shed_mask, name="shed")
    npar = len(par)
    pb = np.array([int(cbranch[c]) for c in par], dtype=int)
    cd = ("p", np.arange(npar))
    Pp = m.add_variables(lower=da(-Pabs[pb], cd, td), upper=da(Pabs[pb], cd, td), name="Pp")
    Qp = m.add_variables(lower=da(-Qabs[pb], cd, td), upper=da(Qabs[pb], cd, td), name="Qp")

    # state z[c, n] = Σ_{m <= n} build[c, m]
    state = (build.rename(n="m") * da(anc, ("n", np.arange(len(nodes))), ("m", np.arange(len(nodes))))).sum("m")

    # balances at the non-slack buses
    def sel(var, dim, idx, mask=None):
        idx = np.asarray(idx)
        out = var.isel({dim: xr.DataArray(np.where(idx >= 0, idx, 0), dims="j", coords={"j": buses})})
        return out.where(xr.DataArray(idx >= 0, dims="j", coords={"j": buses})) if mask is None or (idx < 0).any() \
            else out

    children = [[k for k in range(nK) if frm[k] == j] for j in buses]
    width = max([len(c) for c in children] + [1])
    par_in = [[i for i, c in enumerate(par) if to[cbranch[c]] == j] for j in buses]
    par_out = [[i for i, c in enumerate(par) if frm[cbranch[c]] == j] for j in buses]
    q_ratio = np.divide(qs, ps, out=np.zeros_like(ps), where=ps > 0)
    for name, F, Fp, fixed, shed_coef in (("balance_p", P, Pp, pw, 1.0), ("balance_q", Q, Qp, qw, q_ratio[buses])):
        e = sel(F, "k", parent[buses], mask=True)
        for s in range(width):
            e = e - sel(F, "k", [c[s] if s < len(c) else -1 for c in children], mask=True)
        for s in range(max([len(p) for p in par_in] + [0])):
            e = e + sel(Fp, "p", [p[s] if s < len(p) else -1 for p in par_in], mask=True)
        for s in range(max([len(p) for p in par_out] + [0])):
            e = e - sel(Fp, "p", [p[s] if s < len(p) else -1 for p in par_out], mask=True)
        e = e + shed * (shed_coef if np.isscalar(shed_coef) else da(shed_coef, jd, td))
        m.add_constraints(e == da(fixed[buses], jd, td), name=name)

    # voltage drops: plain branches, alternatives of replaced branches (big-M), parallels (big-M)
    def vterm(bus_idx, dim):
        """v at each element's bus (labels), and the slack's squared voltage as a constant."""
        bus_idx = np.asarray(bus_idx)
        pos = bpos[bus_idx]
        ex = v.isel(j=xr.DataArray(np.where(pos >= 0, pos, 0), dims=dim[0], coords=[dim]))
        ex = ex.where(xr.DataArray(pos >= 0, dims=dim[0], coords=[dim]))
        const = np.array([slack_v.get(int(b), 0.0) for b in bus_idx])
        return ex, const

    replaced = {}
    for c in range(C):
        if kind[c] == "replace":
            replaced.setdefault(int(cbranch[c]), []).append(c)
    plain = np.array([k for k in range(nK) if k not in replaced])
    pd_ = ("k", plain)
    vf, cf = vterm(frm[plain], pd_)
    vt, ct = vterm(to[plain], pd_)
    e = vf - vt - 2.0 * (P.sel(k=plain) * da(r[plain], pd_) + Q.sel(k=plain) * da(x[plain], pd_)) / sb
    m.add_constraints(e == da(np.repeat((ct - cf)[:, None], nT, axis=1), pd_, td), name="vdrop")

    # alternatives: (branch, r, x, state as (const, coefs over candidates), M per op)
    alt_k, alt_r, alt_x, alt_c0, alt_cc, alt_M = [], [], [], [], [], []
    for k, cs in replaced.items():
        rx = [(r[k], x[k], 1.0, {c: -1.0 for c in cs})] + [(cands.at[c, "r_pu"], cands.at[c, "x_pu"], 0.0, {c: 1.0})
                                                           for c in cs]
        for ra, xa, c0, cc in rx:
            M = np.max([2.0 * (abs(rb - ra) * Pabs[k] + abs(xb - xa) * Qabs[k]) / sb for rb, xb, _, _ in rx], axis=0)
            alt_k.append(k)
            alt_r.append(float(ra))
            alt_x.append(float(xa))
            alt_c0.append(c0)
            alt_cc.append(cc)
            alt_M.append(M)
    nA = len(alt_k)
    ad = ("a", np.arange(nA))
    alt_k = np.array(alt_k)
    Mat = da(np.array(alt_M), ad, td)
    # the alternative's state as c0 + Σ_s coef[a, s] · z[cand[a, s], node(t)] over its branch's
    # candidates (slot s; unused slots masked)
    width = max([len(cc) for cc in alt_cc] + [1])
    cand = np.full((nA, width), -1)
    coef = np.zeros((nA, width))
    for i, cc in enumerate(alt_cc):
        for s_, (c, a_) in enumerate(cc.items()):
            cand[i, s_], coef[i, s_] = c, a_
    sd = ("s", np.arange(width))
    z = state.isel(c=xr.DataArray(np.maximum(cand, 0), coords=[ad, sd]), n=xr.DataArray(opnode, coords=[td]))
    z = z.where(xr.DataArray(cand >= 0, coords=[ad, sd]))
    st_at = (z * da(coef, ad, sd)).sum("s")
    vf, cf = vterm(frm[alt_k], ad)
    vt, ct = vterm(to[alt_k], ad)
    Pk, Qk = P.isel(k=xr.DataArray(alt_k, dims="a", coords=[ad])), Q.isel(k=xr.DataArray(alt_k, dims="a", coords=[ad]))
    drop = vf - vt - 2.0 * (Pk * da(alt_r, ad) + Qk * da(alt_x, ad)) / sb
    const = da(cf - ct, ad)
    c0 = da(alt_c0, ad)
    for name, sign in (("vdrop_alt_up", 1.0), ("vdrop_alt_dn", -1.0)):
        # sign (drop + const) <= M (1 - state)
        m.add_constraints(sign * drop + Mat * st_at <= Mat * (1.0 - c0) - sign * const, name=name)
    if npar:
        rmax = np.array([max([r[k]] + [cands.at[c, "r_pu"] for c in replaced.get(k, [])]) for k in pb])
        xmax = np.array([max([x[k]] + [cands.at[c, "x_pu"] for c in replaced.get(k, [])]) for k in pb])
        Mp = da(2.0 * (rmax[:, None] * Pabs[pb] + xmax[:, None] * Qabs[pb]) / sb, cd, td)
        zp = state.isel(c=xr.DataArray(np.array(par), dims="p", coords=[cd]))
        zp = zp.isel(n=xr.DataArray(opnode, dims="t", coords=[td]))
        vf, cf = vterm(frm[pb], cd)
        vt, ct = vterm(to[pb], cd)
        rp = da([cands.at[c, "r_pu"] for c in par], cd)
        xp = da([cands.at[c, "x_pu"] for c in par], cd)
        drop = vf - vt - 2.0 * (Pp * rp + Qp * xp) / sb
        const = da(cf - ct, cd)
        for name, sign in (("vdrop_par_up", 1.0), ("vdrop_par_dn", -1.0)):
            m.add_constraints(sign * drop + Mp * zp <= Mp - sign * const, name=name)
        for name, F, bound in (("par_p_on", Pp, Pabs[pb]), ("par_q_on", Qp, Qabs[pb])):
            m.add_constraints(F - da(bound, cd, td) * zp <= 0, name=name + "_up")
            m.add_constraints(-F - da(bound, cd, td) * zp <= 0, name=name + "_dn")

    # voltage band
    m.add_constraints(v + s_vlo >= lim.v_min_pu ** 2, name="v_min")
    m.add_constraints(v - s_vhi <= lim.v_max_pu ** 2, name="v_max")

    # thermal polygon edges that can bind (as flexplan's binding())
    E = np.asarray(polygon(12))
    ea, eb, ec = E[:, 0], E[:, 1], E[:, 2]
    frac = lim.max_loading_pct / 100.0
    limited = [k for k in range(nK) if rating[k] < UNLIMITED_MVA or k in replaced]
    th_rows = []
    for k in limited:
        base = rating[k] if rating[k] < UNLIMITED_MVA else 0.0
        cap = frac * min([base] + [cands.at[c, "rating_mva"] for c in replaced.get(k, [])])
        p0, p1, q0, q1 = Pmin[k][:, None], Pmax[k][:, None], Qmin[k][:, None], Qmax[k][:, None]
        skip = (((ea < 0) & (p0 >= 0)) | ((ea > 0) & (p1 <= 0) & (p0 < 0))
                | ((eb < 0) & (q0 >= 0)) | ((eb > 0) & (q1 <= 0) & (q0 < 0)))
        top = np.maximum(ea * p0, ea * p1) + np.maximum(eb * q0, eb * q1)
        tt, mm = np.nonzero(~skip & (top > ec * cap))
        th_rows += [(k, int(mi), int(ti)) for ti, mi in zip(tt, mm)]
    if th_rows:
        raise NotImplementedError("thermal rows bind on this instance: the linopy model does not write them yet")
    if npar:
        for i, c in enumerate(par):
            p0 = -Pabs[pb[i]][:, None]
            top = np.maximum(ea * p0, -ea * p0) + np.maximum(eb * -Qabs[pb[i]][:, None], eb * Qabs[pb[i]][:, None])
            if (top > ec * frac * cands.at[c, "rating_mva"]).any():
                raise NotImplementedError("thermal rows of a parallel bind: not written in the linopy model yet")

    # one replacement per asset, a parallel built once
    rows = list(replaced.items())
    if rows:
        sel_ = np.zeros((len(rows), C))
        for i, (_, cs) in enumerate(rows):
            sel_[i, cs] = 1.0
        m.add_constraints((state * da(sel_, ("g", np.arange(len(rows))), ("c", np.arange(C)))).sum("c") <= 1,
                          name="one_replacement")
    multi = [i for i, n in enumerate(nodes) if len(ix.ancestors_incl[n]) > 1]
    if par and multi:
        m.add_constraints(state.isel(c=par, n=multi) <= 1, name="one_parallel")

    # objective: investment (annuity PV), penalties weighted by probability x year weight x hours
    pv = INVESTMENT_COST_METHODS[econ.investment_cost]
    inv = np.zeros((C, len(nodes)))
    for i, n in enumerate(nodes):
        node = ix.nodes[n]
        f = [pv(econ.stages[node.stage], econ.end_year, econ.base_year, econ.discount_rate,
                int(cands.at[c, "lifetime_years"])) for c in range(C)]
        inv[:, i] = cands["capex_eur"].to_numpy(float) * np.array(f) * node.prob
    w = np.array([ix.nodes[nodes[opnode[t]]].prob * ix.year_weight[(nodes[opnode[t]], int(ix.op_year[t]))]
                  for t in T]) * ix.op_hours()
    wt = da(w, td)
    obj = (build * da(inv, ("c", np.arange(C)), ("n", np.arange(len(nodes))))).sum() \
        + (shed * (pen.voll_eur_per_mwh * wt)).sum() + ((s_vlo + s_vhi) * (pen.voltage_eur_per_pu2h * wt)).sum()
    m.add_objective(obj)
    return m


def run_linopy(days: int, scale: float) -> dict:
    import highspy

    import linopy  # noqa: F401 (imported before the clock starts, as flexplan is)
    import xarray  # noqa: F401

    inst = _instance(days, scale)
    t0 = time.perf_counter()
    m = build_linopy(inst)
    t1 = time.perf_counter()
    h = m.to_highspy()
    _highs_options(h)
    vlabels = np.asarray(m.matrices.vlabels)  # the variable label of each HiGHS column
    t2 = time.perf_counter()
    h.run()
    t3 = time.perf_counter()
    # extract as linopy's Model.assign_result does after a solve: the primal values onto every
    # variable as a labelled array
    import xarray as xr

    primal = np.full(m._xCounter, np.nan)
    primal[vlabels] = np.asarray(h.getSolution().col_value)
    for _, var in m.variables.items():
        start, end = var.range
        var.solution = xr.DataArray(primal[start:end].reshape(var.shape), var.coords, dims=var.dims)
    t4 = time.perf_counter()
    info = h.getInfo()
    status = h.modelStatusToString(h.getModelStatus())
    return dict(tool="linopy", build_s=t1 - t0, handoff_s=t2 - t1, solve_s=t3 - t2, extract_s=t4 - t3,
                objective_eur=float(info.objective_function_value), status=status, variables=h.getNumCol(),
                constraints=h.getNumRow(), nonzeros=h.getNumNz())


def _worker(tool: str, days: int, scale: float) -> dict:
    out = run_flexplan(days, scale) if tool == "flexplan" else run_linopy(days, scale)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out["ratio"] = (out["build_s"] + out["handoff_s"] + out["extract_s"]) / out["solve_s"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=12)
    ap.add_argument("--scale", type=float, default=2.5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tools", default="flexplan,linopy")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "linopy.json"))
    ap.add_argument("--_worker", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._worker:
        tool, days, scale = a._worker
        print(json.dumps(_worker(tool, int(days), float(scale))))
        return 0
    rows = []
    for rnd in range(a.rounds):
        for tool in a.tools.split(","):
            p = subprocess.run([sys.executable, __file__, "--_worker", tool, str(a.days), str(a.scale)],
                               capture_output=True, text=True)
            if p.returncode:
                print(p.stderr[-3000:], file=sys.stderr)
                return 1
            row = json.loads(p.stdout.strip().splitlines()[-1])
            row.update(round=rnd, days=a.days, scale=a.scale)
            rows.append(row)
            print(f"[linopy-bench] round {rnd} {json.dumps(row)}", file=sys.stderr, flush=True)
    import pandas as pd

    df = pd.DataFrame(rows)
    objs = df.groupby("tool")["objective_eur"].median()
    if len(objs) == 2 and abs(objs["flexplan"] - objs["linopy"]) > 1e-9 * max(abs(objs["flexplan"]), 1.0):
        print(f"objectives differ: {objs.to_dict()}", file=sys.stderr)
        return 1
    med = df.groupby("tool")[["build_s", "handoff_s", "extract_s", "solve_s", "ratio", "peak_mb"]].median()
    print(med.to_string())
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(rows=rows, median=med.reset_index().to_dict(orient="records")), indent=1))
    df.to_csv(out.with_suffix(".csv"), index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
