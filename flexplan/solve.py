"""Hand the model to HiGHS as matrices and map the answer back.

Pyomo's ``LinearStandardFormCompiler`` (mixed form: each row keeps its sense) turns the
model into ``c, A, b``; the columns' bounds and integrality come from the variables; the
whole LP/MIP goes to ``highspy.Highs.passModel`` in one call.  Measured (DESIGN.md) this
is ~10x faster than Pyomo's persistent HiGHS interface at 1M variables.

Statuses are reported as HiGHS gives them.  On a time limit the best incumbent (if any)
and its gap come back with ``status = "time_limit"``; a run without a feasible point
comes back with ``has_solution = False`` and the solver's own status text.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import highspy
import numpy as np
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from .errors import SolverError

#: HiGHS model status -> flexplan status
STATUS = {
    "Optimal": "optimal",
    "Time limit reached": "time_limit",
    "Infeasible": "infeasible",
    "Unbounded": "unbounded",
    "Primal infeasible or unbounded": "infeasible_or_unbounded",
    "Iteration limit reached": "iteration_limit",
    "Interrupted by user": "interrupted",
    "Solution limit reached": "solution_limit",
    "Memory limit reached": "memory_limit",
}


@dataclass
class SolveOptions:
    """``time_limit`` (s, default none), ``mip_gap`` (relative, default 1e-4 = HiGHS's own
    default), ``threads`` (default 0: HiGHS decides), ``verbose`` (HiGHS log on stderr),
    ``seed`` (HiGHS random_seed, default 0 for reproducible runs)."""

    time_limit: float | None = None
    mip_gap: float = 1e-4
    threads: int = 0
    verbose: bool = False
    seed: int = 0
    extra: dict = field(default_factory=dict)


@dataclass
class SolveOutcome:
    status: str
    highs_status: str
    has_solution: bool
    objective: float | None
    mip_gap: float | None
    dual_bound: float | None
    size: dict
    timings: dict


def to_highs(model):
    """Compile ``model`` to a ``highspy.HighsLp``; returns (lp, standard-form info)."""
    repn = LinearStandardFormCompiler().write(model, mixed_form=True)
    A = repn.A.tocsc()
    ncol, nrow = A.shape[1], A.shape[0]
    lp = highspy.HighsLp()
    lp.num_col_ = ncol
    lp.num_row_ = nrow
    c = repn.c.toarray().ravel() if repn.c.shape[0] else np.zeros(ncol)
    lp.col_cost_ = c
    lp.offset_ = float(repn.c_offset[0]) if len(repn.c_offset) else 0.0
    lb = np.empty(ncol)
    ub = np.empty(ncol)
    integer = np.zeros(ncol, dtype=bool)
    inf = highspy.kHighsInf
    for i, v in enumerate(repn.columns):
        lo, hi = v.bounds
        lb[i] = -inf if lo is None else lo
        ub[i] = inf if hi is None else hi
        integer[i] = v.is_integer()
    lp.col_lower_ = lb
    lp.col_upper_ = ub
    rhs = np.asarray(repn.rhs, dtype=float)
    mult = np.array([r[1] for r in repn.rows], dtype=int)
    lp.row_lower_ = np.where(mult <= 0, rhs, -inf)
    lp.row_upper_ = np.where(mult >= 0, rhs, inf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr
    lp.a_matrix_.index_ = A.indices
    lp.a_matrix_.value_ = A.data
    if integer.any():
        lp.integrality_ = [highspy.HighsVarType.kInteger if f else highspy.HighsVarType.kContinuous for f in integer]
    return lp, repn, int(integer.sum()), int(A.nnz)


def _report_mip_progress(h, progress, every_s: float = 15.0) -> None:
    """Branch-and-bound progress through ``progress`` at most every ``every_s`` seconds
    (and at every improving solution): elapsed time, incumbent, bound, gap, nodes."""
    last = [-every_s]

    def report(event, improved=False):
        d = event.data_out
        if not improved and d.running_time - last[0] < every_s:
            return
        last[0] = d.running_time
        parts = [f"{'new incumbent' if improved else 'incumbent'} {d.mip_primal_bound:,.0f} EUR"
                 if math.isfinite(d.mip_primal_bound) else "no incumbent yet"]
        if math.isfinite(d.mip_dual_bound):
            parts.append(f"bound {d.mip_dual_bound:,.0f} EUR")
        if math.isfinite(d.mip_gap):
            parts.append(f"gap {100 * d.mip_gap:.2f} %")
        parts.append(f"{int(d.mip_node_count)} nodes")
        progress(f"  {d.running_time:6.1f} s: " + ", ".join(parts))

    h.cbMipInterrupt.subscribe(lambda e: report(e))  # called often; throttled above
    h.cbMipImprovingSolution.subscribe(lambda e: report(e, improved=True))


def solve_model(model, options: SolveOptions | None = None, progress=None) -> SolveOutcome:
    """Solve a Pyomo model with HiGHS; on success the variables hold the solution."""
    options = options or SolveOptions()
    timings = {}
    t0 = time.perf_counter()
    lp, repn, n_int, nnz = to_highs(model)
    h = highspy.Highs()
    h.setOptionValue("output_flag", bool(options.verbose))
    if options.verbose:
        h.setOptionValue("log_to_console", True)
    h.setOptionValue("random_seed", int(options.seed))
    if options.time_limit is not None:
        h.setOptionValue("time_limit", float(options.time_limit))
    h.setOptionValue("mip_rel_gap", float(options.mip_gap))
    if options.threads:
        h.setOptionValue("threads", int(options.threads))
    for k, v in options.extra.items():
        if h.setOptionValue(k, v) != highspy.HighsStatus.kOk:
            raise SolverError(f"HiGHS refused option {k}={v!r}")
    status = h.passModel(lp)
    if status == highspy.HighsStatus.kError:
        raise SolverError("HiGHS refused the model (passModel returned an error)")
    timings["handoff"] = time.perf_counter() - t0
    size = dict(variables=lp.num_col_, constraints=lp.num_row_, binaries=n_int, nonzeros=nnz)
    if progress:
        progress(f"solving with HiGHS {h.version()}: {size['variables']} variables, "
                 f"{size['constraints']} constraints, {n_int} integer")
    if progress and n_int:
        _report_mip_progress(h, progress)
    t1 = time.perf_counter()
    h.run()
    timings["solve"] = time.perf_counter() - t1
    ms = h.getModelStatus()
    text = h.modelStatusToString(ms)
    info = h.getInfo()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    status = STATUS.get(text, text.lower().replace(" ", "_"))
    objective = gap = bound = None
    if has_solution:
        x = np.asarray(h.getSolution().col_value)
        for v, val in zip(repn.columns, x):
            v.set_value(float(val), skip_validation=True)
        for v, expr in repn.eliminated_vars:
            v.set_value(float(expr() if callable(expr) else expr), skip_validation=True)
        objective = float(info.objective_function_value)
        if n_int:
            gap = float(info.mip_gap) if math.isfinite(info.mip_gap) else None
            bound = float(info.mip_dual_bound)
        else:
            gap = 0.0 if status == "optimal" else None
    return SolveOutcome(status=status, highs_status=text, has_solution=has_solution, objective=objective,
                        mip_gap=gap, dual_bound=bound, size=size, timings=timings)

