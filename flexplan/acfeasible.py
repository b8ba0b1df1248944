"""Plans that hold in AC: the branch-flow model's cone refined by cuts, then the plan replayed in
pandapower's AC power flow and corrected where it fails (docs/formulation.md §2.11).

**Cuts** (:func:`refine_cones`).  The ``branchflow`` formulation states the cone
``(P² + Q²) / S_base² <= v·l`` of every branch and op by a few tangent planes.  After a solve,
every cone whose solution lies outside it by more than ``cone_tol`` (relative to ``l``) gets
the tangent plane at that solution (it cuts the solution off and no point of the cone), in the
same HiGHS model, which is re-solved warm (Kelley's cutting planes).  For a MIP: rounds on the
LP relaxation first (cheap, warm), then the MIP with every plane found so far, then rounds with
the MIP's integer decisions fixed (the plan's exact operation); if those moved the plan's cost
by more than half the MIP gap, the MIP is solved again from the plan (up to three MIP solves).
Every plane is valid for every AC power flow, so the MIP's dual bound is a **lower bound** on
the cost of any plan that holds in AC (within the candidates, limits and objective).

**AC replay and corrections** (:func:`make_ac_feasible`).  The plan (its builds and its net
withdrawal per bus and op) is replayed in pandapower; where AC breaks a limit the model's bound
at that bus (branch) and op is tightened by the measured error there (model voltage minus AC
voltage, plus ``AC_MARGIN_PU``; AC minus model apparent power for an overload), the MIP is
solved again from the plan, refined, replayed — until the plan holds in AC (and the cost has
converged: corrections only tighten, so once it holds there is nothing left to correct), or the
model itself pays for breaking a limit (then no plan within the candidates meets it), or
``max_iter`` is reached.  Each iteration is reported.
"""
from __future__ import annotations

import time

import highspy
import numpy as np

#: what a corrected bound keeps beyond the measured error (pu of voltage): above the AC power
#: flow's tolerance (pandapower's default 1e-8 MVA mismatch) and the cones' (1e-4 of l, about
#: 1e-6 pu of voltage), small against any planning margin
AC_MARGIN_PU = 1e-5
#: a current below this (pu²) is too small for its relative cone gap to matter
L_FLOOR = 1e-8


class ConeColumns:
    """The cones of a ``branchflow`` network block as HiGHS column positions."""

    def __init__(self, blk, session):
        cone = blk._cones
        if session._col_of is None:
            session._col_of = {id(v): i for i, v in enumerate(session.form.columns)}
        col = session._col_of

        def cols(vs):
            out = np.array([col.get(id(v), -1) if v is not None else -1 for v in vs], dtype=np.int64)
            return out

        self.l, self.P, self.Q = cols(cone["l"]), cols(cone["P"]), cols(cone["Q"])
        self.v = cols(cone["v"])
        self.vs = np.asarray(cone["vs"], dtype=float)
        self.sb = float(blk._sb)
        self.where = cone["where"]
        self.blk = blk
        # a variable the compiler left out (it is in no row) has value 0 here
        self.n = len(self.l)

    def point(self, x: np.ndarray):
        """(P/S_base, Q/S_base, v_from, l) of every cone at the solution ``x``."""
        def val(c):
            return np.where(c >= 0, x[np.maximum(c, 0)], 0.0)

        v = np.where(self.v >= 0, x[np.maximum(self.v, 0)], self.vs)
        return val(self.P) / self.sb, val(self.Q) / self.sb, np.maximum(v, 1e-6), val(self.l)

    def gaps(self, x: np.ndarray):
        """Relative gap ``(|S|²/v - l) / max(|S|²/v, floor)`` per cone, and the tangent point."""
        p, q, v, ell = self.point(x)
        true = (p * p + q * q) / v
        gap = (true - ell) / np.maximum(true, L_FLOOR)
        return gap, p / v, q / v

    def add_cuts(self, session, which: np.ndarray, a: np.ndarray, b: np.ndarray) -> int:
        """Tangent planes ``l - 2a P/S_base - 2b Q/S_base + (a² + b²) v >= 0`` of the cones
        ``which`` at (a, b), added to the HiGHS model as rows."""
        if not len(which):
            return 0
        a, b = a[which], b[which]
        n2 = a * a + b * b
        starts, index, value, lower = [], [], [], []
        nz = 0
        for i, ai, bi, ni in zip(which.tolist(), a.tolist(), b.tolist(), n2.tolist()):
            starts.append(nz)
            lo = 0.0
            for c, coef in ((self.l[i], 1.0), (self.P[i], -2.0 * ai / self.sb), (self.Q[i], -2.0 * bi / self.sb)):
                if c >= 0 and coef != 0.0:
                    index.append(c)
                    value.append(coef)
                    nz += 1
            if self.v[i] >= 0:
                index.append(self.v[i])
                value.append(ni)
                nz += 1
            else:
                lo = -ni * self.vs[i]
            lower.append(lo)
        m = len(which)
        session.h.addRows(m, np.asarray(lower, dtype=float), np.full(m, highspy.kHighsInf),
                          nz, np.asarray(starts, dtype=np.int32), np.asarray(index, dtype=np.int32),
                          np.asarray(value, dtype=float))
        self.blk._cuts_added = getattr(self.blk, "_cuts_added", 0) + m
        return m


def network_block(pm):
    spec, blk = pm.blocks.get("network", (None, None))
    return blk if blk is not None and getattr(blk, "_cones", None) is not None else None


def _x(session) -> np.ndarray:
    return np.asarray(session.h.getSolution().col_value, dtype=float)


def _lp_rounds(session, cc: ConeColumns, tol: float, max_rounds: int, log, label: str) -> tuple[object, int, float]:
    """Cut rounds on the current (LP) model until every cone is within ``tol``; returns the
    last outcome, the rounds run and the largest gap left."""
    out = None
    gap_max = np.inf
    rounds = 0
    for rounds in range(max_rounds + 1):
        out = session.run(write_back=False)
        if not out.has_solution or out.status not in ("optimal",):
            return out, rounds, gap_max
        gap, a, b = cc.gaps(_x(session))
        gap_max = float(gap.max()) if len(gap) else 0.0
        which = np.flatnonzero(gap > tol)
        if not len(which) or rounds == max_rounds:
            break
        n = cc.add_cuts(session, which, a, b)
        log(f"  cones ({label}) round {rounds + 1}: {out.objective:,.0f} EUR, largest gap {100 * gap_max:.3g} %, "
            f"{n} plane(s) added")
    return out, rounds, gap_max


def refine_cones(pm, outcome, progress=None, mip_gap: float = 1e-4, relaxation: bool = True):
    """Refine the outer approximation of the branch-flow cones of a solved model (module
    docstring).  Returns (outcome, report); the outcome's objective is the plan's cost with its
    operation refined, its ``dual_bound`` the MIP's (or LP's) lower bound, and the session's
    integer columns are left fixed at the plan (as :meth:`HighsSession.fix_integers`)."""
    blk = network_block(pm)
    session = outcome.session
    if blk is None or session is None or not outcome.has_solution:
        return outcome, None
    log = progress or (lambda _m: None)
    t0 = time.perf_counter()
    cfg = blk._cfg
    tol, max_rounds = float(cfg.cone_tol), int(cfg.max_cut_rounds)
    cc = ConeColumns(blk, session)
    report = dict(cone_tol=tol, planes_initial=len(blk.cone) if hasattr(blk, "cone") else None, mip_solves=1)
    if outcome.status != "optimal":  # a limit or an interrupt: refine the plan's operation only
        report["note"] = f"stopped at '{outcome.status}': the operation of the plan found is refined, not the plan"
    saved_progress = session.progress
    session.progress = None  # the rounds report themselves, in one line each
    try:
        gap0, _, _ = cc.gaps(_x(session))
        report["gap_first_solve"] = float(gap0.max()) if len(gap0) else 0.0
        lb = outcome.dual_bound if session.n_int else outcome.objective
        if session.n_int and outcome.status == "optimal":
            r1 = 0
            if relaxation:
                # 1. the LP relaxation, refined (its optimum is the cone relaxation's bound)
                plan0 = session.integer_values()
                session.relax_integers()
                lp, r1, g1 = _lp_rounds(session, cc, tol, max_rounds, log, "LP relaxation")
                report.update(lp_relaxation_eur=lp.objective if lp is not None and lp.has_solution else None,
                              lp_rounds=r1)
                session.restore_integers()
                session.start_integers(plan0)
            plan = None
            for k in range(3):
                # 2. the MIP with every plane so far (started from the last plan)
                if k or r1:
                    if plan is not None:
                        session.start_integers(plan)
                    log(f"  cones: MIP solve {k + 2 if r1 else k + 1} with {getattr(blk, '_cuts_added', 0)} added "
                        "plane(s)")
                    session.progress = saved_progress
                    mip = session.run(write_back=False)
                    session.progress = None
                    report["mip_solves"] += 1
                    if not mip.has_solution:
                        return mip, report
                    outcome = mip
                lb = outcome.dual_bound
                mip_obj = outcome.objective
                plan = session.integer_values()
                # 3. the plan's operation, refined with its decisions fixed
                session.fix_integers()
                fixed, r3, g3 = _lp_rounds(session, cc, tol, max_rounds, log, "plan fixed")
                if not fixed.has_solution:
                    return fixed, report
                moved = (fixed.objective - mip_obj) / max(abs(fixed.objective), 1e-9)
                report.update(plan_rounds=r3, max_gap=g3)
                if moved <= max(mip_gap, 1e-6) / 2 or k == 2:
                    break
                log(f"  cones: the planes moved the plan's cost by {100 * moved:.3g} %: solving the MIP again")
                session.restore_integers()
            cost = fixed.objective
        else:
            if session.n_int:
                session.fix_integers()
            fixed, r3, g3 = _lp_rounds(session, cc, tol, max_rounds, log, "plan fixed" if session.n_int else "LP")
            report.update(plan_rounds=r3, max_gap=g3)
            if not fixed.has_solution:
                return fixed, report
            cost = fixed.objective
            if not session.n_int:
                lb = cost
        session.write_back()
        blk._cone_gap = report.get("max_gap")
        gap = (cost - lb) / abs(cost) if lb is not None and cost else None
        report.update(cost_eur=cost, lower_bound_eur=lb, gap_to_lower_bound=gap,
                      planes_added=int(getattr(blk, "_cuts_added", 0)), seconds=round(time.perf_counter() - t0, 2))
        status = outcome.status
        timings = dict(outcome.timings)
        timings["cones"] = report["seconds"]
        from .solve import SolveOutcome

        out = SolveOutcome(status=status, highs_status=outcome.highs_status, has_solution=True, objective=cost,
                           mip_gap=gap if session.n_int else (0.0 if status == "optimal" else None), dual_bound=lb,
                           size=outcome.size, timings=timings, session=session)
        log(f"  cones refined: {report['planes_added']} plane(s) added, largest gap {100 * (report['max_gap'] or 0):.2g} %"
            f"; plan {cost:,.0f} EUR, lower bound {lb:,.0f} EUR" if lb is not None else "")
        return out, report
    finally:
        session.progress = saved_progress


class _Bounds:
    """Rows of a network block's families by key, for tightening their bounds in HiGHS."""

    def __init__(self, session, blk, name: str):
        from .blocks.rows import LinearRows

        fam = getattr(blk, name, None)
        self.ok = isinstance(fam, LinearRows)
        if not self.ok:
            self.pos = {}
            return
        start = session.family_slice(fam).start
        self.pos = {key: start + i for i, key in enumerate(fam.keys)}
        self.lo, self.hi = fam.lo, fam.hi
        self.index = {key: i for i, key in enumerate(fam.keys)}


class Corrections:
    """Per (bus, op) voltage margins and per (element, op) capacity cuts measured in AC, applied
    to the rows of the HiGHS model (their original bounds tightened)."""

    def __init__(self, pm, session):
        self.pm, self.session = pm, session
        blk = pm.blocks["network"][1]
        self.blk = blk
        inst, ix = pm.instance, pm.index
        nb, T = inst.network.n_buses, ix.n_ops
        self.lo = np.zeros((nb, T))
        self.hi = np.zeros((nb, T))
        self.cut = {}  # (family, element index, op) -> MVA taken off the capacity
        self.rows = {name: _Bounds(session, blk, name) for name in ("v_min", "v_max", "thermal", "thermal_par")}
        self.thermal_keys = {}
        for fam in ("thermal", "thermal_par"):
            for key in self.rows[fam].pos:
                e, m, t = key
                self.thermal_keys.setdefault((fam, e, t), []).append(m)
        self.edges = None

    def apply(self, detail: dict, res) -> dict:
        """Tighten the bounds where the replay broke a limit; returns counts per kind."""
        from .blocks.network.common import polygon

        inst, ix = self.pm.instance, self.pm.index
        lim = inst.limits
        meta = self.blk._meta
        v_ac, v_mod = detail["v_ac"], detail["v_ldf"]
        counts = dict(undervoltage=0, overvoltage=0, overload=0)
        h = self.session.h
        idx, lo, hi = [], [], []
        for name, bad, err, store in (
                ("v_min", v_ac < lim.v_min_pu - 1e-9, v_mod - v_ac, self.lo),
                ("v_max", v_ac > lim.v_max_pu + 1e-9, v_ac - v_mod, self.hi)):
            rows = self.rows[name]
            for j, t in zip(*np.nonzero(np.nan_to_num(bad, nan=False))):
                key = (int(j), int(t))
                if key not in rows.pos:
                    continue
                store[j, t] = max(store[j, t] + AC_MARGIN_PU, max(float(err[j, t]), 0.0) + AC_MARGIN_PU)
                if name == "v_min":
                    base = lim.v_min_pu + (self.pm.hub.v_margin[j, t] if self.pm.hub.v_margin is not None else 0.0)
                    idx.append(rows.pos[key])
                    lo.append((base + store[j, t]) ** 2)
                    hi.append(highspy.kHighsInf)
                    counts["undervoltage"] += 1
                else:
                    idx.append(rows.pos[key])
                    lo.append(-highspy.kHighsInf)
                    hi.append(max(lim.v_max_pu - store[j, t], 0.0) ** 2)
                    counts["overvoltage"] += 1
        # overloads: the element's capacity in that op, less what AC carries beyond the model
        if self.edges is None:
            self.edges = polygon(getattr(self.blk, "_sides", 12))
        branches = {n: k for k, n in enumerate(inst.network.branches["name"].astype(str))}
        parallels = {str(o.candidate): c for c, o in enumerate(meta["parallels"])}
        load = res.line_loading
        model_s = {}
        if len(load):
            ops = ix.op_frame()
            op_of = {(str(n), int(y), str(d), int(hh)): t for t, (n, y, d, hh) in
                     enumerate(zip(ops["node"], ops["year"], ops["day"], ops["hour"]))}
            for r in load.itertuples():
                model_s[(str(r.line), op_of[(str(r.node), int(r.year), str(r.day), int(r.hour))])] = (
                    float(np.hypot(r.p_mw, r.q_mvar)), float(r.rating_mva))
        limit = lim.max_loading_pct
        for name, s_ac in detail.get("s_ac", {}).items():
            fam, e = ("thermal", branches[name]) if name in branches else ("thermal_par", parallels.get(name))
            if e is None:
                continue
            for t in range(ix.n_ops):
                s_mod, rating = model_s.get((name, t), (np.nan, np.nan))
                if not (rating > 0) or not np.isfinite(s_ac[t]) or 100 * s_ac[t] / rating <= limit + 1e-6:
                    continue
                ms = self.thermal_keys.get((fam, e, t))
                if not ms:
                    continue
                delta = max(s_ac[t] - s_mod, 0.0) + AC_MARGIN_PU * rating
                key = (fam, e, t)
                self.cut[key] = max(self.cut.get(key, 0.0) + AC_MARGIN_PU * rating, delta)
                rows = self.rows[fam]
                for m in ms:
                    i = rows.index[(e, m, t)]
                    idx.append(rows.pos[(e, m, t)])
                    lo.append(-highspy.kHighsInf)
                    hi.append(rows.hi[i] - self.edges[m][2] * self.cut[key])
                counts["overload"] += 1
        if idx:
            h.changeRowsBounds(len(idx), np.asarray(idx, dtype=np.int32), np.asarray(lo, dtype=float),
                               np.asarray(hi, dtype=float))
        return counts


def _penalties(res) -> dict:
    return {c: v for c, v in res.cost_breakdown_eur.items() if c.startswith("penalty_") and v > 1e-3}


def make_ac_feasible(pm, outcome, ensure: bool = True, max_iter: int = 5, progress=None, mip_gap: float = 1e-4):
    """Replay the solved plan in AC; with ``ensure``, correct and re-solve until it holds
    (module docstring).  Returns (outcome, results, report, per-op table of the last replay)."""
    from .acpf import injection_matrices, replay
    from .results import collect

    log = progress or (lambda _m: None)
    inst, ix = pm.instance, pm.index
    names = inst.network.buses["name"].astype(str).tolist()
    session = outcome.session
    formulation = pm.recipe.formulation
    lossy = network_block(pm) is not None
    lb = outcome.dual_bound if lossy else None
    report = dict(checked=True, formulation=formulation, ensured=bool(ensure and lossy), iterations=[],
                  ac_feasible=False, message="")
    if not lossy:
        report["note"] = (f"'{formulation}' leaves the losses out: its voltages are optimistic and its flows low; "
                          "the plan is only checked here (formulation 'branchflow' plans with the losses)")
    corr = Corrections(pm, session) if ensure and lossy else None
    res = df = None
    first_cost = outcome.objective
    t0 = time.perf_counter()
    for k in range(max_iter + 1):
        res = collect(pm, outcome)
        P, Q = injection_matrices(res.tables["injections"], ix, names)
        detail: dict = {}
        df, ac = replay(inst, ix, res.builds, P, Q, res.voltages, detail=detail)
        pen = _penalties(res)
        prev = report["iterations"][-1]["objective_eur"] if report["iterations"] else None
        row = dict(iteration=k, objective_eur=res.objective_eur, builds=len(res.builds),
                   cost_change_rel=None if prev is None else (res.objective_eur - prev) / max(abs(prev), 1e-9),
                   v_min_ac_pu=ac["v_min_ac_pu"], v_max_ac_pu=ac["v_max_ac_pu"],
                   max_loading_ac_pct=ac["max_loading_ac_pct"], max_model_minus_ac_pu=ac["max_ldf_minus_ac_pu"],
                   ops_undervoltage=ac["ops_undervoltage"], ops_overvoltage=ac["ops_overvoltage"],
                   ops_overloaded=ac["ops_overloaded"], ac_feasible=ac["ac_feasible"],
                   penalties_eur=round(sum(pen.values()), 2))
        report["iterations"].append(row)
        log(f"  AC check {k}: {res.objective_eur:,.0f} EUR, {len(res.builds)} build(s); AC voltage "
            f"{ac['v_min_ac_pu']:.5f}..{ac['v_max_ac_pu']:.5f} pu, loading up to {ac['max_loading_ac_pct']:.2f} %, "
            f"model - AC up to {ac['max_ldf_minus_ac_pu']:.2g} pu: "
            f"{'holds in AC' if ac['ac_feasible'] else 'NOT AC-feasible'}")
        report["replay"] = ac
        if ac["ac_feasible"]:
            report["ac_feasible"] = True
            report["message"] = f"holds in AC after {k} correction(s)"
            break
        if corr is None:
            report["message"] = "not AC-feasible" + ("" if lossy else " (the lossless plan is optimistic)")
            break
        if pen:
            report["message"] = ("the model itself pays for breaking limits (" + ", ".join(
                f"{c} {v:,.0f} EUR" for c, v in pen.items()) + "): no plan within the candidates meets them")
            break
        if k == max_iter:
            report["message"] = f"still not AC-feasible after {max_iter} corrections"
            break
        counts = corr.apply(detail, res)
        if not sum(counts.values()):
            report["message"] = "AC breaks a limit the model has no row for: nothing to correct"
            break
        log(f"  correcting where AC breaks the limits: {counts['undervoltage']} bus-hour(s) under, "
            f"{counts['overvoltage']} over voltage, {counts['overload']} branch-hour(s) overloaded")
        if session.n_int:
            plan = session.integer_values()
            session.restore_integers()
            session.start_integers(plan)
        out = session.run(write_back=True)
        if not out.has_solution:
            report["message"] = f"the corrected model has no solution ({out.status})"
            break
        outcome, _ = refine_cones(pm, out, progress=progress, mip_gap=mip_gap, relaxation=False)
    cost = res.objective_eur if res is not None else None
    report.update(cost_eur=cost, first_plan_cost_eur=first_cost, lower_bound_eur=lb,
                  gap_to_lower_bound=(cost - lb) / abs(cost) if lb is not None and cost else None,
                  seconds=round(time.perf_counter() - t0, 2))
    if lb is not None and cost:
        log(f"  plan {cost:,.0f} EUR; lower bound on any AC-feasible plan {lb:,.0f} EUR "
            f"(gap {100 * report['gap_to_lower_bound']:.2f} %)")
    return outcome, res, report, df
