"""Plans that hold in AC: the branch-flow model's cone refined by cuts, then the plan replayed in
pandapower's AC power flow and corrected where it fails (docs/formulation.md §2.11).

**Cuts** (:func:`refine_cones`).  The ``branchflow`` formulation states the cone
``(P² + Q²) / S_base² <= v·l`` of every branch and op by a few tangent planes.  After a solve,
every cone whose solution lies outside it by more than ``cone_tol`` (relative to ``l``) gets
the tangent plane at that solution (it cuts the solution off and no point of the cone), in the
same HiGHS model, which is re-solved warm (Kelley's cutting planes).  For a MIP: rounds on the
LP relaxation first (cheap, warm: :func:`solve_branchflow`), then the MIP with every plane found
so far, then rounds with the MIP's integer decisions fixed (the plan's exact operation); if those
moved the plan's cost by more than half the MIP gap, the MIP is solved again from the plan (up
to three MIP solves: :func:`refine_cones`).
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

from .errors import SolverError
from .solve import HighsSession, SolveOutcome

#: what a corrected bound keeps beyond the measured error (pu of voltage): above the AC power
#: flow's tolerance (pandapower's default 1e-8 MVA mismatch) and the cones' (1e-4 of l, about
#: 1e-6 pu of voltage), small against any planning margin
AC_MARGIN_PU = 1e-5
#: a current below this (pu²) is too small for its relative cone gap to matter
L_FLOOR = 1e-8
#: the smallest voltage term (pu², squared and state-weighted) at which a cone gets a tangent
#: plane: an alternative mostly switched off in a relaxation has a tiny one, and a plane there
#: would have coefficients of 1/v (an assumption: 0.2 is well below any operating voltage²)
V_CUT_MIN = 0.2
#: a cone gap that moves the squared voltage drop of its branch by less than this (pu²; 5e-9 pu
#: of voltage) is left alone: below the LP's feasibility tolerance on the scaled rows
DROP_FLOOR = 1e-8


def renew_time_limit(session) -> None:
    """HiGHS counts its time limit from the first solve of a model: give the next solve the
    user's whole limit again (each solve of the refinement and correction loops has it)."""
    limit = session.options.time_limit
    if limit is not None:
        session.h.setOptionValue("time_limit", float(session.h.getRunTime() + limit))


class ConeColumns:
    """The cones of a ``branchflow`` network block as HiGHS column positions."""

    def __init__(self, blk, session):
        cone = blk._cones

        def cols(vs):  # -1: a slack bus's voltage, or a variable the compiler left out (value 0)
            vs = list(vs)
            out = np.full(len(vs), -1, dtype=np.int64)
            at = [i for i, v in enumerate(vs) if v is not None]
            if at:
                out[at] = session.columns_of([vs[i] for i in at])
            return out

        self.l, self.P, self.Q, self.v = (cols(cone[k]) for k in ("l", "P", "Q", "v"))
        self.vs = np.asarray(cone["vs"], dtype=float)
        self.scale = np.asarray(cone["scale"], dtype=float)  # the model holds w = scale · l
        self.sb = float(blk._sb)
        self.blk = blk

    def point(self, x: np.ndarray):
        """(P/S_base, Q/S_base, v_from, l) of every cone at the solution ``x``."""
        def val(c):
            return np.where(c >= 0, x[np.maximum(c, 0)], 0.0)

        v = np.where(self.v >= 0, x[np.maximum(self.v, 0)], self.vs)
        return val(self.P) / self.sb, val(self.Q) / self.sb, np.maximum(v, 1e-6), val(self.l) / self.scale

    def gaps(self, x: np.ndarray):
        """Relative gap ``(|S|²/v - l) / max(|S|²/v, floor)`` per cone, and the tangent point.
        A cone whose voltage term is below ``V_CUT_MIN`` (an alternative mostly switched off in
        a relaxation) gets no plane: its tangent point would be ill-conditioned."""
        p, q, v, ell = self.point(x)
        true = (p * p + q * q) / v
        gap = (true - ell) / np.maximum(true, L_FLOOR)
        # a gap whose effect on the voltage drop, |z|² (l* - l), is below DROP_FLOOR does not count
        matters = (v >= V_CUT_MIN) & (self.scale ** 2 * (true - ell) > DROP_FLOOR)
        gap = np.where(matters, gap, np.minimum(gap, 0.0))
        return gap, p / v, q / v

    def add_cuts(self, session, which: np.ndarray, a: np.ndarray, b: np.ndarray) -> int:
        """Tangent planes ``l - 2a P/S_base - 2b Q/S_base + (a² + b²) v >= 0`` of the cones
        ``which`` at (a, b), times each cone's scale, added to the HiGHS model as rows."""
        if not len(which):
            return 0
        a, b, sc = a[which], b[which], self.scale[which]
        n2 = (a * a + b * b) * sc
        starts, index, value, lower = [], [], [], []
        nz = 0
        for i, ai, bi, ni, si in zip(which.tolist(), a.tolist(), b.tolist(), n2.tolist(), sc.tolist()):
            starts.append(nz)
            lo = 0.0
            for c, coef in ((self.l[i], 1.0), (self.P[i], -2.0 * ai * si / self.sb),
                            (self.Q[i], -2.0 * bi * si / self.sb)):
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
        out = run(session, write_back=False)
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


def run(session, write_back: bool = True):
    """``session.run`` with a second, cold try (presolve and scaling afresh) when HiGHS fails
    numerically from the last basis (seen: "dual simplex ratio test failed due to excessive
    dual values" after the integers were fixed); a second failure raises."""
    renew_time_limit(session)
    try:
        return session.run(write_back=write_back)
    except SolverError:
        # cold, with the objective scaled down by 2^10 as HiGHS advises for its 1e8-size penalty
        # costs (the solution and its objective are reported unscaled)
        session.h.clearSolver()
        session.h.setOptionValue("user_objective_scale", -10)
        renew_time_limit(session)
        try:
            return session.run(write_back=write_back)
        finally:
            session.h.setOptionValue("user_objective_scale", 0)


def zero_fixed_costs(session) -> int:
    """Zero the objective coefficients of columns bounded at 0 on both sides (hard limits'
    slacks): their cost changes nothing and their 1e8-size coefficients trouble the simplex."""
    lp = session.h.getLp()
    lo, hi, cost = (np.asarray(a, dtype=float) for a in (lp.col_lower_, lp.col_upper_, lp.col_cost_))
    idx = np.flatnonzero((lo == 0.0) & (hi == 0.0) & (cost != 0.0)).astype(np.int32)
    if len(idx):
        session.h.changeColsCost(len(idx), idx, np.zeros(len(idx)))
    return len(idx)


def set_hard_limits(pm, hard: bool) -> int:
    """Bound the network's soft-limit slacks (voltage, overload, load shed) at 0 (``hard``) or
    give them back their bounds; returns how many variables.  An AC-feasible plan is what
    ``ac="ensure"`` asks for: a model with soft limits can buy a violation of 1e-4 pu for a few
    hundred EUR rather than build."""
    from .blocks.arrays import ArrayVar

    blk = pm.blocks.get("network", (None, None))[1]
    if blk is None:
        return 0
    n = 0
    saved = blk.__dict__.setdefault("_soft_ub", {})
    for name in Corrections.SLACKS:
        var = getattr(blk, name, None)
        if var is None:
            continue
        if isinstance(var, ArrayVar):  # the bounds are an array: one assignment
            if hard:
                saved.setdefault(name, var.ub.copy())
                var.ub[:] = 0.0
            elif name in saved:
                var.ub[:] = saved[name]
            n += len(var)
            continue
        for v in var.values():
            if hard:
                saved.setdefault(id(v), v.ub)
                v.setub(0.0)
            else:
                v.setub(saved.get(id(v), None))
            n += 1
    return n


def solve_branchflow(pm, options, progress=None, start: dict | None = None):
    """The first solve of a branch-flow MIP: its LP relaxation refined by cut rounds first
    (cheap, warm), so that branch and bound starts with the planes it needs, then the MIP.
    Returns the outcome (its session holds the planes); :func:`refine_cones` follows."""
    blk = network_block(pm)
    session = HighsSession(pm.model, options, progress)
    log = progress or (lambda _m: None)
    zero_fixed_costs(session)
    if session.n_int and blk is not None:
        cc = ConeColumns(blk, session)
        saved = session.progress
        session.progress = None
        session.relax_integers()
        lp, r1, _ = _lp_rounds(session, cc, float(blk._cfg.cone_tol), int(blk._cfg.max_cut_rounds), log,
                               "LP relaxation")
        # a lower bound only where solved to optimality (a limit's incumbent is none)
        blk._lp_relaxation = lp.objective if lp is not None and lp.has_solution and lp.status == "optimal" else None
        session.restore_integers()
        session.progress = saved
        session.h.clearSolver()  # the MIP presolves afresh, with every plane so far
    if start:
        n = session.set_start(start)
        log(f"MIP start: {n} of the model's columns given")
    return run(session)


def refine_cones(pm, outcome, progress=None, mip_gap: float = 1e-4):
    """Refine the outer approximation of the branch-flow cones of a solved model (module
    docstring; the LP relaxation's rounds come before the first MIP solve, in
    :func:`solve_branchflow`).  Returns (outcome, report); the outcome's objective is the plan's cost with its
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
    blk._lb_source = None
    report = dict(cone_tol=tol, planes_initial=len(blk.cone) if hasattr(blk, "cone") else None, mip_solves=1,
                  lp_relaxation_eur=getattr(blk, "_lp_relaxation", None))
    if outcome.status != "optimal":  # a limit or an interrupt: refine the plan's operation only
        report["note"] = f"stopped at '{outcome.status}': the operation of the plan found is refined, not the plan"
    saved_progress = session.progress
    session.progress = None  # the rounds report themselves, in one line each
    first, x0 = outcome, _x(session)

    relax = report["lp_relaxation_eur"]

    def above(a: float, b: float) -> bool:
        """a > b beyond HiGHS's tolerances (1e-6 relative)."""
        return a > b + 1e-6 * max(abs(b), 1.0)

    def trouble_status(cost, status: str) -> str:
        """A plan cheaper than the LP relaxation of its own model is no plan: HiGHS accepted a
        point that breaks rows or bounds by more than their (tiny) values (seen on sb_mv_rural in an
        experiment that held the currents as l / l_peak: -748 EUR against a relaxation of 15 EUR).
        Returns ``numerical_trouble`` (noted in the report) for such a plan, else ``status``."""
        if relax is None or cost is None or not above(relax, cost):
            return status
        report["numerical_trouble"] = (f"numerical trouble: HiGHS's plan costs {cost:,.2f} EUR, less than the LP "
                                       f"relaxation of the same model ({relax:,.2f} EUR), so it breaks rows or "
                                       "bounds; do not use it")
        log(f"  cones: {report['numerical_trouble']}")
        return "numerical_trouble"

    def keep_first(why: str):
        """A re-solve failed (a limit, an interrupt): the first solve's plan stands, unrefined."""
        import dataclasses

        session.write_values(x0)
        report["note"] = f"refinement stopped ({why}): the first solve's plan, with its cones unrefined"
        report["refined"] = False
        log(f"  cones: {report['note']}")
        # the session no longer holds this plan
        return dataclasses.replace(first, session=None, status=trouble_status(first.objective, first.status)), report

    try:
        gap0, _, _ = cc.gaps(_x(session))
        report["gap_first_solve"] = float(gap0.max()) if len(gap0) else 0.0
        lb = outcome.dual_bound if session.n_int else outcome.objective
        if session.n_int and outcome.status == "optimal":
            plan = None
            for k in range(3):
                # the MIP again with every plane so far, started from the last plan
                if k:
                    session.start_integers(plan)
                    log(f"  cones: MIP solve {k + 1} with {getattr(blk, '_cuts_added', 0)} added plane(s)")
                    session.progress = saved_progress
                    mip = run(session, write_back=False)
                    session.progress = None
                    report["mip_solves"] += 1
                    if not mip.has_solution:
                        return keep_first(f"MIP re-solve: {mip.status}")
                    outcome = mip
                lb = outcome.dual_bound
                mip_obj = outcome.objective
                plan = session.integer_values()
                # the plan's operation, refined with its decisions fixed
                session.fix_integers()
                fixed, r3, g3 = _lp_rounds(session, cc, tol, max_rounds, log, "plan fixed")
                if not fixed.has_solution or fixed.status != "optimal":
                    return keep_first(f"LP with the plan fixed: {fixed.status}")
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
            if not fixed.has_solution or fixed.status != "optimal":
                return keep_first(f"LP: {fixed.status}")
            cost = fixed.objective
            if not session.n_int:
                lb = cost
        session.write_back()
        blk._cone_gap = report.get("max_gap")
        if lb is not None and cost is not None and above(lb, cost):
            # not a valid bound (numerical trouble in branch and bound); the LP relaxation solved
            # before the MIP (every cone outer-approximated, integrality dropped) still is one
            if relax is not None and not above(relax, cost):
                report["note"] = (f"HiGHS reported a MIP dual bound ({lb:,.2f} EUR) above the plan's cost: not a "
                                  f"valid bound (numerical trouble); the lower bound is the LP relaxation's "
                                  f"optimum ({relax:,.2f} EUR)")
                lb = relax
            else:
                report["note"] = (f"HiGHS reported a dual bound ({lb:,.2f} EUR) above the plan's cost: not a valid "
                                  "bound (numerical trouble), so no lower bound is given")
                lb = None
            blk._lb_source = "lp_relaxation" if lb is not None else None
            log(f"  cones: {report['note']}")
        if lb is not None and cost is not None and lb > cost:
            lb = cost  # above the cost within HiGHS's tolerances (1e-6): the cost is its own bound
        gap = (cost - lb) / abs(cost) if lb is not None and cost else None
        report.update(cost_eur=cost, lower_bound_eur=lb, gap_to_lower_bound=gap,
                      planes_added=int(getattr(blk, "_cuts_added", 0)), seconds=round(time.perf_counter() - t0, 2))
        status = trouble_status(cost, outcome.status)
        timings = dict(outcome.timings)
        timings["cones"] = report["seconds"]
        out = SolveOutcome(status=status, highs_status=outcome.highs_status, has_solution=True, objective=cost,
                           mip_gap=gap if session.n_int else (0.0 if status == "optimal" else None), dual_bound=lb,
                           size=outcome.size, timings=timings, session=session)
        log(f"  cones refined: {report['planes_added']} plane(s) added, largest gap {100 * (report['max_gap'] or 0):.2g} %"
            f"; plan {cost:,.0f} EUR" + (f", lower bound {lb:,.0f} EUR" if lb is not None else ""))
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
    """What the AC replays measured, kept from round to round and written into the rows of a
    HiGHS model (their original bounds changed, nothing rebuilt): per (bus, op) voltage
    margins and per (element, op) capacity cuts where AC broke a limit (:meth:`measure`,
    :meth:`push`); :meth:`rebind` carries them over to a model built again; :meth:`harden`
    forbids the soft limits' slacks (when the model prefers paying penalties to a plan that
    holds)."""

    SLACKS = ("s_vlo", "s_vhi", "s_over", "s_over_par", "shed")

    def __init__(self, pm, session):
        nb, T = pm.instance.network.n_buses, pm.index.n_ops
        self.lo = np.zeros((nb, T))
        self.hi = np.zeros((nb, T))
        self.cut = {}  # (family, element index, op) -> MVA taken off the capacity
        self.edges = None
        self.rebind(pm, session)

    def rebind(self, pm, session) -> None:
        self.pm, self.session = pm, session
        blk = pm.blocks["network"][1]
        self.blk = blk
        self.rows = {name: _Bounds(session, blk, name) for name in ("v_min", "v_max", "thermal", "thermal_par")}
        missing = [n for n in ("v_min", "v_max") if not self.rows[n].ok]
        if missing:
            raise SolverError(f"AC corrections change the bounds of the network's row families ({', '.join(missing)}), "
                              "which are Pyomo constraints here: unset FLEXPLAN_PYOMO_ROWS")
        self.thermal_keys = {}
        for fam in ("thermal", "thermal_par"):
            for key in self.rows[fam].pos:
                e, m, t = key
                self.thermal_keys.setdefault((fam, e, t), []).append(m)

    def measure(self, detail: dict, res) -> dict:
        """Update the margins and cuts from a replay of the model's plan; counts per kind."""
        lim = self.pm.instance.limits
        v_ac, v_mod = detail["v_ac"], detail["v_ldf"]
        counts = dict(undervoltage=0, overvoltage=0, overload=0)
        for kind, bad, err, store in (
                ("undervoltage", v_ac < lim.v_min_pu - 1e-9, v_mod - v_ac, self.lo),
                ("overvoltage", v_ac > lim.v_max_pu + 1e-9, v_ac - v_mod, self.hi)):
            for j, t in zip(*np.nonzero(np.nan_to_num(bad, nan=False))):
                store[j, t] = max(store[j, t] + AC_MARGIN_PU, max(float(err[j, t]), 0.0) + AC_MARGIN_PU)
                counts[kind] += 1
        counts["overload"] = self._measure_overloads(detail, res)
        return counts

    def push(self) -> None:
        """Write every margin and cut kept so far into the current model's rows."""
        lim = self.pm.instance.limits
        vm = self.pm.hub.v_margin
        idx, lo, hi = [], [], []
        rows = self.rows["v_min"]
        for j, t in zip(*np.nonzero(self.lo)):
            pos = rows.pos.get((int(j), int(t)))
            if pos is not None:
                idx.append(pos)
                lo.append((lim.v_min_pu + (vm[j, t] if vm is not None else 0.0) + self.lo[j, t]) ** 2)
                hi.append(highspy.kHighsInf)
        rows = self.rows["v_max"]
        for j, t in zip(*np.nonzero(self.hi)):
            pos = rows.pos.get((int(j), int(t)))
            if pos is not None:
                idx.append(pos)
                lo.append(-highspy.kHighsInf)
                hi.append(max(lim.v_max_pu - self.hi[j, t], 0.0) ** 2)
        if self.edges is None:
            from .blocks.network.common import polygon

            self.edges = polygon(getattr(self.blk, "_sides", 12))
        for (fam, e, t), cut in self.cut.items():
            rows = self.rows[fam]
            for m in self.thermal_keys.get((fam, e, t), ()):
                i = rows.index[(e, m, t)]
                idx.append(rows.pos[(e, m, t)])
                lo.append(-highspy.kHighsInf)
                hi.append(rows.hi[i] - self.edges[m][2] * cut)
        if idx:
            self.session.h.changeRowsBounds(len(idx), np.asarray(idx, dtype=np.int32), np.asarray(lo, dtype=float),
                                            np.asarray(hi, dtype=float))

    def harden(self) -> int:
        """Bound every soft-limit slack of the network at 0; returns how many columns."""
        from .blocks.arrays import ArrayVar

        session = self.session
        refs = []
        for name in self.SLACKS:
            var = getattr(self.blk, name, None)
            if var is not None:
                refs.extend([var] if isinstance(var, ArrayVar) else var.values())
        cols = sorted({int(c) for c in session.columns_of(refs) if c >= 0})
        if cols:
            z = np.zeros(len(cols))
            session.h.changeColsBounds(len(cols), np.asarray(cols, dtype=np.int32), z, z)
        return len(cols)

    def _measure_overloads(self, detail, res) -> int:
        """Cut an element's capacity in an op by what AC carries beyond the model there."""
        inst, ix, lim = self.pm.instance, self.pm.index, self.pm.instance.limits
        branches = {n: k for k, n in enumerate(inst.network.branches["name"].astype(str))}
        parallels = {str(o.candidate): c for c, o in enumerate(self.blk._meta["parallels"])}
        load = res.line_loading
        model_s = {}
        if len(load):
            ops = ix.op_frame()
            op_of = {(str(n), int(y), str(d), int(hh)): t for t, (n, y, d, hh) in
                     enumerate(zip(ops["node"], ops["year"], ops["day"], ops["hour"]))}
            for r in load.itertuples():
                model_s[(str(r.line), op_of[(str(r.node), int(r.year), str(r.day), int(r.hour))])] = (
                    float(np.hypot(r.p_mw, r.q_mvar)), float(r.rating_mva))
        n = 0
        for name, s_ac in detail.get("s_ac", {}).items():
            fam, e = ("thermal", branches[name]) if name in branches else ("thermal_par", parallels.get(name))
            if e is None:
                continue
            for t in range(ix.n_ops):
                s_mod, rating = model_s.get((name, t), (np.nan, np.nan))
                if not (rating > 0) or not np.isfinite(s_ac[t]) or 100 * s_ac[t] / rating <= lim.max_loading_pct + 1e-6:
                    continue
                key = (fam, e, t)
                delta = max(s_ac[t] - s_mod, 0.0) + AC_MARGIN_PU * rating
                self.cut[key] = max(self.cut.get(key, 0.0) + AC_MARGIN_PU * rating, delta)
                n += 1
        return n


def _penalties(res) -> dict:
    return {c: v for c, v in res.cost_breakdown_eur.items() if c.startswith("penalty_") and v > 1e-3}


def _resolve(session, pm, progress, mip_gap):
    """Solve the (corrected) model again, a MIP from the last plan; the branch-flow cones
    refined (and the integers left fixed at the new plan, as :func:`refine_cones` does)."""
    if session.n_int:
        start = session.integer_values()
        session.restore_integers()
        session.start_integers(start)
    out = run(session)
    if out.has_solution and network_block(pm) is not None:
        out, _ = refine_cones(pm, out, progress=progress, mip_gap=mip_gap)
    elif out.has_solution and session.n_int:
        session.fix_integers()  # as refine_cones leaves it: the plan's LP, for prices
        run(session)
    return out


def make_ac_feasible(pm, outcome, ensure: bool = True, max_iter: int = 5, progress=None, mip_gap: float = 1e-4,
                     hard: bool = False):
    """Replay the solved plan in AC; with ``ensure``, correct and re-solve until it holds and its
    cost has converged (module docstring).  Returns (outcome, results, report, per-op table of
    the replay of the plan returned)."""
    from .acpf import injection_matrices, replay
    from .results import collect

    log = progress or (lambda _m: None)
    inst, ix = pm.instance, pm.index
    names = inst.network.buses["name"].astype(str).tolist()
    session = outcome.session
    formulation = pm.recipe.formulation
    lossy = network_block(pm) is not None
    report = dict(checked=True, formulation=formulation, ensured=bool(ensure), iterations=[], ac_feasible=False,
                  message="")
    if lossy:
        report["lower_bound"] = ("the branch-flow LP relaxation's optimum (HiGHS's MIP dual bound was not valid)"
                                 if getattr(network_block(pm), "_lb_source", None) == "lp_relaxation" else
                                 "the branch-flow MIP's dual bound before any AC correction")
    else:
        report["note"] = (f"'{formulation}' is lossless: its first plan is optimistic; " +
                          ("the AC losses of each plan are put back as loads and the model solved again"
                           if ensure else "checked only (no corrections)"))
        report["lower_bound"] = ("the lossless optimum's dual bound at the same limits (a lower bound on an "
                                 "AC-feasible plan where every flow runs away from the substation)")
    lb = outcome.dual_bound if session is not None and session.n_int else outcome.objective
    corr = None
    if ensure and session is not None and "network" in pm.blocks and pm.recipe.formulation in ("branchflow",
                                                                                               "lindistflow"):
        corr = Corrections(pm, session)
    rebuild = corr is not None and not lossy
    fixes = None  # the lossless model's AC losses as loads (this plan's)
    # hard: the soft limits' slacks bounded at 0 (from the start, or once the model preferred penalties)
    best = None  # (cost, results, table, replay, plan, outcome)
    res = df = prev_plan = None
    t0 = time.perf_counter()
    for k in range(max_iter + 1):
        res = collect(pm, outcome)
        P, Q = injection_matrices(res.tables["injections"], ix, names)
        detail: dict = {}
        df, ac = replay(inst, ix, res.builds, P, Q, res.voltages, detail=detail)
        pen = _penalties(res)
        prev = report["iterations"][-1]["objective_eur"] if report["iterations"] else None
        cost = res.objective_eur
        row = dict(iteration=k, objective_eur=cost, builds=len(res.builds),
                   cost_change_rel=None if prev is None else (cost - prev) / max(abs(prev), 1e-9),
                   losses_in_model=bool(lossy or fixes is not None),
                   v_min_ac_pu=ac["v_min_ac_pu"], v_max_ac_pu=ac["v_max_ac_pu"],
                   max_loading_ac_pct=ac["max_loading_ac_pct"], max_model_minus_ac_pu=ac["max_ldf_minus_ac_pu"],
                   ops_undervoltage=ac["ops_undervoltage"], ops_overvoltage=ac["ops_overvoltage"],
                   ops_overloaded=ac["ops_overloaded"], ac_feasible=ac["ac_feasible"],
                   penalties_eur=round(sum(pen.values()), 2))
        report["iterations"].append(row)
        log(f"  AC check {k}: {cost:,.0f} EUR, {len(res.builds)} build(s); AC voltage "
            f"{ac['v_min_ac_pu']:.5f}..{ac['v_max_ac_pu']:.5f} pu, loading up to {ac['max_loading_ac_pct']:.2f} %, "
            f"model - AC up to {ac['max_ldf_minus_ac_pu']:.2g} pu: "
            f"{'holds in AC' if ac['ac_feasible'] else 'NOT AC-feasible'}")
        plan = session.integer_values() if session is not None and session.n_int else None
        if ac["ac_feasible"] and (best is None or cost < best[0] - 1e-9 * abs(cost)):
            best = (cost, res, df, ac, plan, outcome, pm)
        if corr is None:
            report["message"] = "holds in AC" if ac["ac_feasible"] else (
                "NOT AC-feasible" + ("" if lossy else ": the lossless plan is optimistic"))
            break
        if ac["ac_feasible"]:
            # settled when the model saw this plan's own losses (branch-flow: always; lossless: the
            # plan is the one whose losses were put in), or the lossless plan itself holds (no
            # correction can make a plan cheaper); else put this plan's losses in and solve again
            same = plan is not None and prev_plan is not None and np.array_equal(plan, prev_plan)
            if lossy or k == 0 or same or (plan is None and abs(row["cost_change_rel"] or 0.0) <= 1e-6):
                report["message"] = f"holds in AC after {k} correction(s)"
                break
        elif pen and hard:
            report["message"] = ("the model pays for breaking limits with its slacks at 0 (" + ", ".join(
                f"{c} {v:,.0f} EUR" for c, v in pen.items()) + "): no plan within the candidates meets them")
            break
        elif pen:
            # the penalties are cheaper than a plan that holds: from now on the limits are hard
            hard = True
            report["hardened_at"] = k
            log(f"  the model pays {sum(pen.values()):,.0f} EUR of penalties rather than build: the limits are "
                "hard from now on")
        prev_plan = plan
        if k == max_iter:
            report["message"] = (f"still not AC-feasible after {max_iter} corrections" if best is None else
                                 f"holds in AC; the cost had not settled after {max_iter} corrections")
            break
        # margins where AC breaks a limit, once the model carries losses (before, a lossless
        # model's error is mostly the losses themselves: counting them twice over-builds)
        counts = corr.measure(detail, res) if (lossy or fixes is not None) else {}
        what = [f"{counts[c]} {c} margin(s)" for c in ("undervoltage", "overvoltage", "overload") if counts.get(c)]
        if rebuild:
            fixes = dict(p_mw=detail["loss_p"].copy(), q_mvar=detail["loss_q"].copy(), v_margin_pu=None,
                         n_ops=ix.n_ops)
            what.insert(0, f"the plan's AC losses as loads at {int(np.count_nonzero(detail['loss_p']))} bus-hours")
            log(f"  correcting: {', '.join(what)}; building the model again")
            new_pm, out = _rebuild(pm, fixes, corr, hard, progress)
            if out.has_solution:
                pm, session = new_pm, out.session
        else:
            if not what and not hard:
                report["message"] = "AC breaks a limit the model has no row for: nothing to correct"
                break
            log(f"  correcting: {', '.join(what) or 'hard limits'}")
            corr.push()
            if hard:
                corr.harden()
                zero_fixed_costs(session)
            out = _resolve(session, pm, progress, mip_gap)
        if not out.has_solution:
            report["message"] = (f"with hard limits the model has no solution ({out.status}): no plan within the "
                                 "candidates meets the limits; the plan reported pays penalties" if hard else
                                 f"the corrected model has no solution ({out.status})")
            break
        outcome = out
    if best is not None and best[1] is not res:
        # an earlier plan held in AC at a lower cost: it is the answer (its LP restored for prices)
        cost, res, df, ac, plan, outcome, pm = best
        session = outcome.session
        if plan is not None and session is not None:
            session.fix_integers(plan)
            run(session)
            res = collect(pm, outcome)
    if best is not None:
        held = [r["iteration"] for r in report["iterations"] if r["ac_feasible"] and r["objective_eur"] == best[0]]
        report["stopped"] = report["message"]
        n_held = sum(r["ac_feasible"] for r in report["iterations"])
        report["message"] = (f"holds in AC: the plan of iteration {held[0]}, the cheapest of the {n_held} that held "
                             f"in {len(report['iterations'])} iteration(s)" if held and len(report["iterations"]) > 1
                             else report["message"])
        report["plan_iteration"] = held[0] if held else None
        report["ac_feasible"] = True
        report["replay"] = best[3]
    else:
        report["replay"] = ac
    cost = res.objective_eur if res is not None else None
    report.update(cost_eur=cost, lower_bound_eur=lb,
                  gap_to_lower_bound=(cost - lb) / abs(cost) if lb is not None and cost else None,
                  seconds=round(time.perf_counter() - t0, 2))
    if lb is not None and cost:
        log(f"  plan {cost:,.0f} EUR; lower bound {lb:,.0f} EUR (gap {100 * report['gap_to_lower_bound']:.2f} %)")
    report["model"] = pm  # the model that holds the plan (a lossless one is built again per correction)
    return outcome, res, report, df


def _rebuild(pm, fixes, corr, hard: bool, progress):
    """The lossless model built again with ``fixes`` (AC losses as loads: flow ranges and big-M
    follow), the kept margins and cuts written into it, solved from the last plan's decisions."""
    import flexplan as fp
    from .assemble import build_model

    start = fp.decision_values(pm)
    options = corr.session.options
    new = build_model(pm.instance, pm.recipe, index=pm.index, corrections=fixes)
    session = HighsSession(new.model, options, progress)
    session.set_start(start)
    corr.rebind(new, session)
    corr.push()
    if hard:
        corr.harden()
        zero_fixed_costs(session)
    out = run(session)
    if out.has_solution and session.n_int:
        session.fix_integers()  # the plan's LP, as after refine_cones (for prices)
        run(session)
    return new, out
