"""Hand the model to HiGHS as matrices and map the answer back.

Pyomo's ``LinearStandardFormCompiler`` (mixed form: each row keeps its sense) turns the
model into ``c, A, b``; the columns' bounds and integrality come from the variables; the
whole LP/MIP goes to ``highspy.Highs.passModel`` in one call.  Measured (DESIGN.md) this
is ~10x faster than Pyomo's persistent HiGHS interface at 1M variables.

Every HiGHS model status maps to a flexplan status (:data:`STATUS`).  On a limit (time,
iterations, solutions, memory, objective bound/target) or an interrupt the best incumbent
(if any) and its gap come back with that status; a run without a feasible point comes back
with ``has_solution = False`` and the solver's own status text; an error of HiGHS itself
(load/model/presolve/solve/postsolve error, unknown) without a solution raises
:class:`SolverError` with HiGHS's status text.

Ctrl-C (and SIGTERM alike): HiGHS runs in a worker thread while the main thread waits; the first SIGINT asks
HiGHS to stop at its next interrupt check (simplex, IPM and MIP interrupt callbacks), and
the solve returns ``status = "interrupted"`` with the incumbent, if any; a second SIGINT
raises ``KeyboardInterrupt`` at once (the command line then exits hard with code 130).
"""
from __future__ import annotations

import math
import signal
import os
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

import highspy
import numpy as np
import scipy.sparse as sp
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from .errors import OptionError, SolverError

#: HiGHS model status (``Highs.modelStatusToString``) -> flexplan status
STATUS = {
    "Not Set": "not_set",
    "Load error": "load_error",
    "Model error": "model_error",
    "Presolve error": "presolve_error",
    "Solve error": "solve_error",
    "Postsolve error": "postsolve_error",
    "Empty": "optimal",  # a model without columns: nothing to decide, trivially optimal
    "Optimal": "optimal",
    "Infeasible": "infeasible",
    "Primal infeasible or unbounded": "infeasible_or_unbounded",
    "Unbounded": "unbounded",
    "Bound on objective reached": "objective_bound",
    "Objective bound": "objective_bound",
    "Target for objective reached": "objective_target",
    "Objective target": "objective_target",
    "Time limit reached": "time_limit",
    "Iteration limit reached": "iteration_limit",
    "Unknown": "unknown",
    "Solution limit reached": "solution_limit",
    "Interrupted by user": "interrupted",
    "Memory limit reached": "memory_limit",
    "Interrupted by HiGHS": "stopped_by_highs",
}
#: statuses that mean HiGHS itself failed: without a solution they raise :class:`SolverError`
ERROR_STATUSES = frozenset({"not_set", "load_error", "model_error", "presolve_error", "solve_error",
                            "postsolve_error", "unknown"})
#: statuses that prove there is no (bounded) plan
NO_PLAN_STATUSES = frozenset({"infeasible", "unbounded", "infeasible_or_unbounded"})
#: statuses of a run stopped early: the incumbent (if any) and its gap are reported
LIMIT_STATUSES = frozenset({"time_limit", "iteration_limit", "solution_limit", "memory_limit", "objective_bound",
                            "objective_target", "interrupted", "stopped_by_highs"})


def flexplan_status(highs_text: str) -> str:
    """The flexplan status of a HiGHS model status text (unknown texts: snake_case)."""
    return STATUS.get(highs_text, highs_text.lower().replace(" ", "_"))


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

    def __post_init__(self):
        self.validate()

    def validate(self) -> "SolveOptions":
        """Raise :class:`OptionError` naming the option when a value is out of range (nan,
        infinite, negative, not a whole number); returns the options."""
        def number(v):
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        def whole(v):
            return isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer()

        if self.time_limit is not None and not (number(self.time_limit) and self.time_limit > 0):
            raise OptionError(f"time_limit must be a finite number of seconds > 0 (got {self.time_limit!r})")
        if not (number(self.mip_gap) and self.mip_gap >= 0):
            raise OptionError(f"mip_gap must be a finite relative gap >= 0, e.g. 0.01 (got {self.mip_gap!r})")
        if not (whole(self.threads) and self.threads >= 0):
            raise OptionError(f"threads must be a whole number >= 0 (0: HiGHS decides; got {self.threads!r})")
        if not (whole(self.seed) and self.seed >= 0):
            raise OptionError(f"seed must be a whole number >= 0 (got {self.seed!r})")
        if not isinstance(self.extra, dict):
            raise OptionError(f"extra must be a dict of HiGHS options (got {type(self.extra).__name__})")
        return self


def _set_option(h, name: str, value) -> None:
    """Set a HiGHS option; HiGHS refusing it (unknown name, value out of its range) is a
    :class:`SolverError` naming both, never ignored."""
    if h.setOptionValue(name, value) != highspy.HighsStatus.kOk:
        raise SolverError(f"HiGHS refused option {name}={value!r} (unknown option or value out of its range)")


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
    session: object = field(default=None, repr=False)  # the HighsSession that solved it (re-solves, duals)


@dataclass
class StandardForm:
    """What :func:`to_highs` handed over: ``columns`` (the Pyomo variable of each of the first
    HiGHS columns; array variables' tokens follow from column ``array_offset`` on, token
    ``i`` at column ``array_offset + i``), ``rows`` (per Pyomo row its ``ConstraintData`` and
    sense; the rows of ``families`` follow them, family by family, in their order), the
    variables Pyomo's compiler eliminated, and the families."""

    columns: list
    rows: list
    eliminated_vars: list
    families: list
    array_offset: int = 0
    n_array: int = 0
    arrays: object = None  # the model's array registry (flexplan.blocks.arrays), or None

    @property
    def n_columns(self) -> int:
        return self.array_offset + self.n_array

    def names(self) -> list[str]:
        """Every column's name (``network.P[3,17]``), in HiGHS's order (slow on large models)."""
        names = [v.name for v in self.columns]
        if self.n_array:
            for av in self.arrays.vars:
                names.extend(av.element_name(k) for k in av.keys)
        return names


def _family_matrix(fams, columns: list, reg):
    """The rows of the row families (:mod:`flexplan.blocks.rows`) in coordinate form over the
    columns: Pyomo variables that no Pyomo constraint used get a column appended (in the order
    of their first appearance), a fixed one's value moves into the row bounds; array tokens
    are returned as tokens (their columns follow every Pyomo column).  Returns (rows, Pyomo
    columns, Pyomo coefficients, per family with tokens (rows, tokens, coefficients, its first
    row), row lower, row upper).

    Variables are matched to columns by ``id`` with numpy (sort + ``searchsorted``) rather
    than a dict lookup per nonzero: on SimBench MV x 4 stages x 4 days (1.3 M family
    nonzeros) that lookup alone took 0.7-1.1 s."""
    offsets = np.cumsum([0] + [len(f) for f in fams])
    p_vars = [v for f in fams for v in f.p_var]
    p_rows = np.concatenate([f.p_row + o for f, o in zip(fams, offsets)]) if fams else np.empty(0, np.int64)
    p_coef = np.concatenate([f.p_coef for f in fams]) if fams else np.empty(0)
    t_parts = [(f.t_row, f.t_tok, f.t_coef, int(o)) for f, o in zip(fams, offsets) if len(f.t_row)]
    if reg is not None and reg.materialized and t_parts:  # tokens are Pyomo variables now
        p_vars = p_vars + reg.pyomo_vars(np.concatenate([t for _, t, _, _ in t_parts]))
        p_rows = np.concatenate([p_rows] + [r + o for r, _, _, o in t_parts])
        p_coef = np.concatenate([p_coef] + [c for _, _, c, _ in t_parts])
        t_parts = []
    lo = np.concatenate([f.lo for f in fams]) if fams else np.empty(0)
    hi = np.concatenate([f.hi for f in fams]) if fams else np.empty(0)
    known = np.fromiter(map(id, columns), dtype=np.int64, count=len(columns))
    flat = np.fromiter(map(id, p_vars), dtype=np.int64, count=len(p_vars))
    uniq, first = np.unique(flat, return_index=True)
    new = ~np.isin(uniq, known, assume_unique=True)
    new_ids, new_first = uniq[new], first[new]
    order = np.argsort(new_first, kind="stable")
    new_ids, new_first = new_ids[order], new_first[order]
    code = np.empty(len(new_ids), dtype=np.int64)  # column, or -1 for a fixed variable
    for j, p in enumerate(new_first.tolist()):
        v = p_vars[p]
        if v.fixed:
            code[j] = -1
        else:
            code[j] = len(columns)
            columns.append(v)
    all_ids = np.concatenate([known, new_ids])
    srt = np.argsort(all_ids, kind="stable")
    sorted_ids = all_ids[srt]
    sorted_code = np.concatenate([np.arange(len(known), dtype=np.int64), code])[srt]
    p_cols = sorted_code[np.searchsorted(sorted_ids, flat)] if len(flat) else np.empty(0, np.int64)
    fixed = np.flatnonzero(p_cols < 0)
    if len(fixed):
        shift = np.zeros(len(lo))
        np.add.at(shift, p_rows[fixed], p_coef[fixed] * np.array([p_vars[p].value for p in fixed.tolist()], dtype=float))
        lo, hi = lo - shift, hi - shift
        keep = p_cols >= 0
        p_rows, p_cols, p_coef = p_rows[keep], p_cols[keep], p_coef[keep]
    return p_rows, p_cols, p_coef, t_parts, lo, hi


class ArrayLp:
    """The LP/MIP :func:`to_highs` compiled, as numpy arrays under ``highspy.HighsLp``'s
    attribute names (``num_col_``, ``col_cost_``, ``a_matrix_.start_``...), handed to HiGHS
    in one call that takes the arrays' buffers (:meth:`pass_to`): assigning them to a
    ``HighsLp`` converted them element by element (0.11 s per million nonzeros)."""

    def __init__(self, cost, offset, col_lower, col_upper, row_lower, row_upper, start, index, value, integer):
        from types import SimpleNamespace

        self.num_col_, self.num_row_ = len(cost), len(row_lower)
        self.col_cost_, self.offset_ = cost, float(offset)
        self.col_lower_, self.col_upper_ = col_lower, col_upper
        self.row_lower_, self.row_upper_ = row_lower, row_upper
        self.a_matrix_ = SimpleNamespace(format_=highspy.MatrixFormat.kColwise, start_=start, index_=index,
                                         value_=value)
        self.integer = integer  # bool per column

    @property
    def integrality_(self) -> list:
        return [highspy.HighsVarType.kInteger if f else highspy.HighsVarType.kContinuous for f in self.integer] \
            if self.integer.any() else []

    def pass_to(self, h):
        """``h.passModel`` with the arrays (returns HiGHS's status)."""
        a = self.a_matrix_
        integrality = self.integer.astype(np.int32)  # one per column (an empty array is read past its end)
        return h.passModel(self.num_col_, self.num_row_, len(a.value_), int(highspy.MatrixFormat.kColwise),
                           int(highspy.ObjSense.kMinimize), self.offset_, self.col_cost_, self.col_lower_,
                           self.col_upper_, self.row_lower_, self.row_upper_, a.start_, a.index_, a.value_,
                           integrality)


def pass_model(h, lp):
    """Hand ``lp`` (an :class:`ArrayLp` or a ``highspy.HighsLp``) to the ``Highs`` object ``h``."""
    return lp.pass_to(h) if isinstance(lp, ArrayLp) else h.passModel(lp)


def to_highs(model):
    """Compile ``model`` to a ``highspy.HighsLp``: its Pyomo constraints through Pyomo's
    standard-form compiler, its row families (:mod:`flexplan.blocks.rows`) and array variables
    (:mod:`flexplan.blocks.arrays`: the last columns, with their costs) appended with numpy.
    Returns (lp, :class:`StandardForm`, number of integer columns, nonzeros)."""
    from .blocks.arrays import registry
    from .blocks.rows import guard, row_families

    g = guard(model)
    if g is not None and g.active:  # the reminder for other solvers, not a row of the model
        g.deactivate()
        try:
            repn = LinearStandardFormCompiler().write(model, mixed_form=True)
        finally:
            g.activate()
    else:
        repn = LinearStandardFormCompiler().write(model, mixed_form=True)
    reg = registry(model, create=False)
    fams = row_families(model)
    columns = list(repn.columns)
    rows = list(repn.rows)
    inf = highspy.kHighsInf
    rhs = np.asarray(repn.rhs, dtype=float)
    mult = np.array([r[1] for r in repn.rows], dtype=int)
    row_lo = [np.where(mult <= 0, rhs, -inf)]
    row_hi = [np.where(mult >= 0, rhs, inf)]
    A = sp.coo_matrix(repn.A) if repn.A.shape[0] else None
    n_py_rows = len(rows)
    arrays = reg is not None and not reg.materialized and reg.n > 0
    n_arr = reg.n if arrays else 0
    if fams:
        p_rows, p_cols, p_coef, t_parts, lo, hi = _family_matrix(fams, columns, reg)
        row_lo.append(np.where(np.isneginf(lo), -inf, lo))
        row_hi.append(np.where(np.isposinf(hi), inf, hi))
    else:
        p_rows = p_cols = np.empty(0, np.int64)
        p_coef = np.empty(0)
        t_parts = []
    n_py = len(columns)
    ncol = n_py + n_arr
    lo_all, hi_all = np.concatenate(row_lo), np.concatenate(row_hi)
    nrow = len(lo_all)
    # the matrix in coordinate form, written once into int32 arrays (scipy then builds the
    # column-wise form without converting its indices: half the time of int64)
    n_a = A.nnz if A is not None else 0
    total = n_a + len(p_rows) + sum(len(r) for r, _, _, _ in t_parts)
    R, Cc, V = np.empty(total, np.int32), np.empty(total, np.int32), np.empty(total)
    pos = 0
    if n_a:
        R[:n_a], Cc[:n_a], V[:n_a] = A.row, A.col, A.data
        pos = n_a
    if len(p_rows):
        k = len(p_rows)
        np.add(p_rows, n_py_rows, out=R[pos:pos + k], casting="unsafe")
        Cc[pos:pos + k], V[pos:pos + k] = p_cols, p_coef
        pos += k
    for rows_, toks, coefs, first in t_parts:
        k = len(rows_)
        np.add(rows_, n_py_rows + first, out=R[pos:pos + k], casting="unsafe")
        np.add(toks, n_py, out=Cc[pos:pos + k], casting="unsafe")
        V[pos:pos + k] = coefs
        pos += k
    M = sp.csc_matrix((V, (R, Cc)), shape=(nrow, ncol))  # duplicates summed
    del R, Cc, V
    M.eliminate_zeros()
    c = np.zeros(ncol)
    if repn.c.shape[0]:
        c0 = repn.c.toarray().ravel()
        c[:len(c0)] = c0
    offset = float(repn.c_offset[0]) if len(repn.c_offset) else 0.0
    if arrays:
        for w, e in reg.objective:
            np.add.at(c, n_py + e.toks, w * e.coefs)
            offset += w * e.const
    lb = np.empty(ncol)
    ub = np.empty(ncol)
    integer = np.zeros(ncol, dtype=bool)
    for i, v in enumerate(columns):
        lo, hi = v.bounds
        lb[i] = -inf if lo is None else lo
        ub[i] = inf if hi is None else hi
        integer[i] = v.is_integer()
    if arrays:
        alb, aub = reg.bounds()
        lb[n_py:] = np.where(np.isneginf(alb), -inf, alb)
        ub[n_py:] = np.where(np.isposinf(aub), inf, aub)
    lp = ArrayLp(c, offset, lb, ub, np.ascontiguousarray(lo_all, dtype=float), np.ascontiguousarray(hi_all, dtype=float),
                 M.indptr.astype(np.int32), M.indices.astype(np.int32), np.ascontiguousarray(M.data, dtype=float),
                 integer)
    form = StandardForm(columns=columns, rows=rows, eliminated_vars=list(repn.eliminated_vars), families=fams,
                        array_offset=n_py, n_array=n_arr, arrays=reg if arrays else None)
    return lp, form, int(integer.sum()), int(M.nnz)


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


class _StopRequest:
    """What SIGINT (Ctrl-C) and SIGTERM (``kill``, a batch system's stop) do during a
    solve: the first signal sets ``stop`` (HiGHS stops at its next interrupt check and the
    incumbent is kept), the second raises ``KeyboardInterrupt``."""

    def __init__(self, progress=None):
        self.stop = threading.Event()
        self.progress = progress
        self.presses = 0
        self.signals: list[str] = []

    def __call__(self, signum, frame):
        self.presses += 1
        self.stop.set()
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        self.signals.append(name)
        if self.presses == 1:
            msg = (f"interrupt ({name}): asking HiGHS to stop and keep its best plan ({name} again to abort at "
                   "once)")
            if self.progress:
                self.progress(msg)
            else:
                print(f"[flexplan] {msg}", file=sys.stderr, flush=True)
            return
        _aborted[0] = True
        raise KeyboardInterrupt


#: set once a second Ctrl-C or SIGTERM aborted a solve (the command line then exits at once: HiGHS's
#: threads may still be winding down, and a normal interpreter exit can abort in C++)
_aborted = [False]


def aborted() -> bool:
    return _aborted[0]


#: the signals that ask a running solve to stop with its incumbent
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _sigint_asks_to_stop(request: _StopRequest):
    """Route SIGINT and SIGTERM to ``request`` while the block runs (main thread only; a
    signal that is ignored stays ignored); the previous handlers are restored afterwards."""
    installed = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            previous = signal.getsignal(sig)
            if previous is not signal.SIG_IGN:
                signal.signal(sig, request)
                installed[sig] = previous
    try:
        yield
    finally:
        for sig, previous in installed.items():
            if previous is None:  # set outside Python: the default
                previous = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
            signal.signal(sig, previous)


#: solver threads still running (a second Ctrl-C leaves one behind until HiGHS stops)
_running: set[threading.Thread] = set()
#: solves of this process stopped by Ctrl-C, and what happens on the next one
_interrupts = [0]
_policy = ["return"]
POLICIES = ("return", "skip_after", "raise")


def interrupt_policy(policy: str | None = None) -> str:
    """Get or set what a Ctrl-C during a solve does (the previous policy is returned):

    * ``"return"`` (default): the solve returns ``status = "interrupted"`` with its incumbent;
      later solves run normally;
    * ``"skip_after"``: the same, and every later solve of the process returns at once with
      ``status = "interrupted"`` and no solution (a run of several solves winds up quickly);
    * ``"raise"``: once HiGHS has stopped, ``KeyboardInterrupt`` is raised, and so are later
      solves (a loop over many solves stops; what it wrote so far stays).

    Setting a policy starts afresh: earlier interrupts no longer count."""
    old = _policy[0]
    if policy is not None:
        if policy not in POLICIES:
            raise ValueError(f"interrupt policy must be one of {POLICIES}, got {policy!r}")
        _policy[0] = policy
        _interrupts[0] = 0
    return old


def interrupt_count() -> int:
    """How many solves of this process were stopped by Ctrl-C."""
    return _interrupts[0]


def solver_running() -> bool:
    """Whether a HiGHS solve abandoned by a second Ctrl-C is still running in this process."""
    return any(t.is_alive() for t in _running)


#: malloc arenas of this process once HiGHS runs in its worker thread (see :func:`_one_malloc_arena`)
MALLOC_ARENAS_ENV = "FLEXPLAN_MALLOC_ARENAS"
_arenas_set = [False]


def _one_malloc_arena() -> None:
    """On glibc, let every thread allocate from one malloc arena (``mallopt(M_ARENA_MAX, 1)``),
    once per process, before HiGHS first runs in its worker thread.  A thread gets an arena
    of its own by default, and HiGHS's allocations there are not returned for reuse as in the
    main arena: on the large benchmark LP (664k columns) the solve's peak memory was 2,326 MB
    in a thread against 1,993 MB in the main thread, 2,007 MB in a thread with one arena, at the
    same solve time (``benchmarks/README.md``, "Array variables").  ``FLEXPLAN_MALLOC_ARENAS=N``
    sets another number (0: leave glibc's default); glibc's own ``MALLOC_ARENA_MAX`` wins."""
    if _arenas_set[0]:
        return
    _arenas_set[0] = True
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    try:
        n = int(os.environ.get(MALLOC_ARENAS_ENV, "1"))
    except ValueError:
        return
    if n <= 0:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        if hasattr(libc, "mallopt"):
            libc.mallopt(-8, n)  # M_ARENA_MAX (malloc.h)
    except OSError:  # not glibc: nothing to tune
        pass


def _run_interruptible(h, request: _StopRequest):
    """``h.run()`` in a worker thread (HiGHS releases the GIL) while the main thread waits
    and can take SIGINT; the interrupt callbacks stop HiGHS once ``request.stop`` is set."""
    def check(event):
        if request.stop.is_set():
            event.interrupt()

    for cb in (h.cbSimplexInterrupt, h.cbIpmInterrupt, h.cbMipInterrupt):
        cb.subscribe(check)
    box = {}

    def target():
        try:
            box["status"] = h.run()
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
            box["error"] = e

    _one_malloc_arena()
    worker = threading.Thread(target=target, name="flexplan-highs", daemon=True)
    _running.add(worker)
    try:
        with _sigint_asks_to_stop(request):
            worker.start()
            while worker.is_alive():
                worker.join(0.1)
    except BaseException:
        request.stop.set()  # a second Ctrl-C (or any exception): HiGHS stops soon on its own
        raise
    _running.discard(worker)
    if "error" in box:
        raise box["error"]
    return box.get("status")


class HighsSession:
    """One HiGHS model of a flexplan model, kept for every solve of it: the first solve, warm
    re-solves after a change of costs (sweeps), the LP with the integer decisions fixed (for
    dual prices), and the mapping of primal and dual values back to the Pyomo rows and the row
    families.  Solve, day screening (through :func:`solve_model`) and the warm cost sweep use
    it; options, status mapping and Ctrl-C handling live here once.

    ``model``: a Pyomo model (its row families included, :func:`to_highs`); or pass an already
    compiled ``lp`` with its :class:`StandardForm` ``form``."""

    def __init__(self, model=None, options: SolveOptions | None = None, progress=None, lp=None, form=None,
                 n_int: int | None = None, nnz: int | None = None):
        self.options = options or SolveOptions()
        self.progress = progress
        self.timings: dict = {}
        t0 = time.perf_counter()
        if lp is None:
            try:
                lp, form, n_int, nnz = to_highs(model)
            except MemoryError:
                raise SolverError("out of memory while compiling the model into matrices for HiGHS: reduce the "
                                  "representative days, stages or EV cohorts, or use a machine with more "
                                  "memory") from None
        self.form = form
        integer = lp.integer if isinstance(lp, ArrayLp) else \
            np.array([v != highspy.HighsVarType.kContinuous for v in lp.integrality_], dtype=bool)
        self.n_int = int(integer.sum()) if n_int is None else int(n_int)
        self.nnz = len(lp.a_matrix_.value_) if nnz is None else int(nnz)
        self.n_col, self.n_row = lp.num_col_, lp.num_row_
        self.size = dict(variables=lp.num_col_, constraints=lp.num_row_, binaries=self.n_int, nonzeros=self.nnz)
        self.h = h = highspy.Highs()
        self._apply_options()
        try:
            status = pass_model(h, lp)
        except MemoryError:
            raise SolverError(f"out of memory while handing the model to HiGHS ({self.size['variables']:,} variables, "
                              f"{self.size['constraints']:,} constraints, {self.nnz:,} nonzeros): reduce the model or "
                              "use a machine with more memory") from None
        if status == highspy.HighsStatus.kError:
            raise SolverError("HiGHS refused the model (passModel returned an error)")
        self.integer_cols = np.flatnonzero(integer)
        self._int_bounds = (np.asarray(lp.col_lower_, dtype=float)[self.integer_cols],
                            np.asarray(lp.col_upper_, dtype=float)[self.integer_cols])
        self.fixed_integers = False
        self.timings["handoff"] = time.perf_counter() - t0
        self._row_of = None
        self._col_of = None
        self._y = None  # the row duals of the last solve, read once (row_duals)

    def _apply_options(self) -> None:
        h, o = self.h, self.options
        _set_option(h, "output_flag", bool(o.verbose))
        if o.verbose:
            _set_option(h, "log_to_console", True)
        _set_option(h, "random_seed", int(o.seed))
        if o.time_limit is not None:
            _set_option(h, "time_limit", float(o.time_limit))
        _set_option(h, "mip_rel_gap", float(o.mip_gap))
        if o.threads:
            _set_option(h, "threads", int(o.threads))
        for k, v in o.extra.items():
            _set_option(h, k, v)

    # -- solving -----------------------------------------------------------------------------
    def run(self, write_back: bool = True, cold: bool = False) -> SolveOutcome:
        """Solve (warm if solved before, unless ``cold``: then HiGHS forgets its basis and
        presolves afresh); on a solution the model's variables hold it (unless
        ``write_back`` is false).  Returns the outcome whatever the status; raises
        :class:`SolverError` when HiGHS fails without a solution."""
        h, size, n_int = self.h, self.size, self.n_int if not self.fixed_integers else 0
        timings = {"handoff": self.timings.pop("handoff", 0.0)}
        if self.progress:
            self.progress(f"solving with HiGHS {h.version()}: {size['variables']} variables, "
                          f"{size['constraints']} constraints, {n_int} integer")
        if self.progress and n_int and not getattr(self, "_progress_on", False):
            _report_mip_progress(h, self.progress)
            self._progress_on = True
        if cold:
            h.clearSolver()
        t1 = time.perf_counter()
        request = _StopRequest(self.progress)
        self._y = None  # the row duals of the previous solve are stale
        try:
            run_status = _run_interruptible(h, request)
        except MemoryError:
            raise SolverError(f"HiGHS ran out of memory during the solve ({size['variables']:,} variables, "
                              f"{size['constraints']:,} constraints): set a time limit, reduce the model or use a "
                              "machine with more memory") from None
        timings["solve"] = time.perf_counter() - t1
        text = h.modelStatusToString(h.getModelStatus())
        info = h.getInfo()
        has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
        status = flexplan_status(text)
        if request.stop.is_set() and status not in NO_PLAN_STATUSES and status != "optimal":
            status = "interrupted"  # stopped by the user's Ctrl-C, whatever HiGHS calls the stop
        if status == "interrupted":
            _interrupts[0] += 1
            if _policy[0] == "raise":
                raise KeyboardInterrupt("HiGHS stopped by Ctrl-C")
        if not has_solution and (status in ERROR_STATUSES or run_status == highspy.HighsStatus.kError) \
                and status not in NO_PLAN_STATUSES | LIMIT_STATUSES:
            err = SolverError(f"HiGHS stopped with model status '{text}' and no feasible solution (run status "
                              f"{getattr(run_status, 'name', run_status)}): numerical trouble or an error in HiGHS; "
                              "try another random seed, a looser tolerance or --verbose for the HiGHS log")
            err.highs_status, err.status = text, status
            raise err
        objective = gap = bound = None
        if n_int and math.isfinite(info.mip_dual_bound):
            bound = float(info.mip_dual_bound)
        if has_solution:
            if write_back and self.form is not None:
                self.write_back()
            objective = float(info.objective_function_value)
            if n_int:
                gap = float(info.mip_gap) if math.isfinite(info.mip_gap) else None
            else:
                gap = 0.0 if status == "optimal" else None
        return SolveOutcome(status=status, highs_status=text, has_solution=has_solution, objective=objective,
                            mip_gap=gap, dual_bound=bound, size=dict(size), timings=timings, session=self)

    def write_back(self) -> None:
        """Put HiGHS's primal solution into the model's variables."""
        self.write_values(np.asarray(self.h.getSolution().col_value))

    def write_values(self, x: np.ndarray) -> None:
        """Put the column values ``x`` (one per HiGHS column) into the model's variables."""
        x = np.asarray(x, dtype=float)
        form = self.form
        for v, val in zip(form.columns, x[:form.array_offset].tolist()):
            v.set_value(val, skip_validation=True)
        if form.arrays is not None:
            form.arrays.values = x[form.array_offset:form.array_offset + form.n_array].copy()
        for v, expr in self.form.eliminated_vars:
            v.set_value(float(expr() if callable(expr) else expr), skip_validation=True)

    def set_costs(self, cost: np.ndarray, offset: float = 0.0) -> None:
        """Replace the objective's column costs and constant (a warm re-solve follows)."""
        self.h.changeColsCost(self.n_col, np.arange(self.n_col, dtype=np.int32), np.asarray(cost, dtype=float))
        self.h.changeObjectiveOffset(float(offset))

    def fix_integers(self, values: np.ndarray | None = None) -> int:
        """Fix every integer column at its (rounded) value in the current solution, or at
        ``values`` (an earlier plan, :meth:`integer_values`; integer columns relaxed or fixed
        before are restored first), and make it continuous: what remains is the LP whose duals
        price the plan's operation.  Returns the number of columns fixed."""
        if values is not None:
            self.restore_integers()
        if not len(self.integer_cols) or self.fixed_integers:
            return 0
        vals = np.round(np.asarray(self.h.getSolution().col_value)[self.integer_cols] if values is None
                        else np.asarray(values, dtype=float))
        idx = self.integer_cols.astype(np.int32)
        self.h.changeColsIntegrality(len(idx), idx, np.array([highspy.HighsVarType.kContinuous] * len(idx)))
        self.h.changeColsBounds(len(idx), idx, vals, vals)
        self.fixed_integers = True
        return len(idx)

    def free_columns(self, variables) -> int:
        """Remove the bounds of the columns of ``variables`` (bounds that are implied by the
        rows, such as a network's flow ranges: active at the optimum, they would absorb the
        prices in their reduced costs).  Returns the number of columns freed."""
        idx = np.array(sorted({c for c in self.columns_of(variables) if c >= 0}), dtype=np.int32)
        if len(idx):
            inf = np.full(len(idx), highspy.kHighsInf)
            self.h.changeColsBounds(len(idx), idx, -inf, inf)
        return len(idx)

    def relax_integers(self) -> int:
        """Make every integer column continuous (the LP relaxation); returns how many."""
        if not len(self.integer_cols) or self.fixed_integers:
            return 0
        idx = self.integer_cols.astype(np.int32)
        self.h.changeColsIntegrality(len(idx), idx, np.array([highspy.HighsVarType.kContinuous] * len(idx)))
        self.fixed_integers = True  # no integer column left: later runs report as an LP
        return len(idx)

    def restore_integers(self) -> int:
        """Undo :meth:`fix_integers` or :meth:`relax_integers`: the integer columns are integer
        again, within their original bounds (the MIP, with any rows added since).  Returns how
        many."""
        if not len(self.integer_cols) or not self.fixed_integers:
            return 0
        idx = self.integer_cols.astype(np.int32)
        self.h.changeColsIntegrality(len(idx), idx, np.array([highspy.HighsVarType.kInteger] * len(idx)))
        self.h.changeColsBounds(len(idx), idx, self._int_bounds[0], self._int_bounds[1])
        self.fixed_integers = False
        return len(idx)

    def integer_values(self) -> np.ndarray:
        """The current solution's integer columns, rounded (a MIP start for :meth:`start_integers`)."""
        return np.round(np.asarray(self.h.getSolution().col_value)[self.integer_cols])

    def start_integers(self, values: np.ndarray) -> None:
        """A MIP start giving only the integer columns; HiGHS completes the rest."""
        idx = self.integer_cols.astype(np.int32)
        self.h.setSolution(len(idx), idx, np.asarray(values, dtype=float))

    def set_start(self, values: dict) -> int:
        """A MIP start: ``values`` maps variables of the model (or their names) to values; HiGHS
        completes a partial start (the continuous part) itself.  Returns the columns set."""
        by_name = None
        idx, val = [], []
        for key, x in values.items():
            if isinstance(key, str):
                if by_name is None:
                    by_name = {n: i for i, n in enumerate(self.form.names())}
                col = by_name.get(key)
            else:
                col = self.column_of(key)
                col = None if col < 0 else col
            if col is not None and x is not None:
                idx.append(col)
                val.append(float(x))
        if idx:
            self.h.setSolution(len(idx), np.asarray(idx, dtype=np.int32), np.asarray(val, dtype=float))
        return len(idx)

    # -- columns ----------------------------------------------------------------------------
    def column_of(self, ref) -> int:
        """The HiGHS column of a Pyomo variable or an array variable's element (``var[key]``, a
        :class:`flexplan.blocks.arrays.Col`), or -1 when it is not a column of this model."""
        return int(self.columns_of([ref])[0])

    def columns_of(self, refs) -> np.ndarray:
        """:meth:`column_of` of each reference (an ArrayVar stands for all its elements)."""
        from .blocks.arrays import ArrayVar, Col

        form = self.form
        out = []
        for ref in refs:
            if isinstance(ref, ArrayVar):
                if form.arrays is not None:
                    out.extend((form.array_offset + ref.tokens().reshape(-1)).tolist())
                    continue
                ref = ref.pyomo if ref.pyomo is not None else []
                out.extend(self.columns_of(ref).tolist())
                continue
            if type(ref) is Col:
                if form.arrays is not None:
                    out.append(form.array_offset + ref.tok)
                    continue
                if ref.av.pyomo is None:
                    out.append(-1)
                    continue
                ref = ref.av.pyomo[ref.pos]
            if self._col_of is None:
                self._col_of = {id(v): i for i, v in enumerate(form.columns)}
            out.append(self._col_of.get(id(ref), -1))
        return np.asarray(out, dtype=np.int64)

    # -- duals ------------------------------------------------------------------------------
    def row_duals(self) -> np.ndarray:
        """HiGHS's dual value of every row: the change of the objective (EUR, as weighted in
        the objective) per unit increase of the row's bound(s).  Valid after an LP solve (with
        integers fixed, :meth:`fix_integers`)."""
        if self._y is not None:  # one copy per solve: constraint_dual is called per row
            return self._y
        sol = self.h.getSolution()
        if not sol.dual_valid:
            raise SolverError("HiGHS has no dual values for this solve: duals exist for an LP (fix the integer "
                              "decisions first, HighsSession.fix_integers) solved to optimality")
        self._y = np.asarray(sol.row_dual, dtype=float)
        self._y.flags.writeable = False
        return self._y

    def reduced_costs(self) -> np.ndarray:
        return np.asarray(self.h.getSolution().col_dual, dtype=float)

    def family_slice(self, fam) -> slice:
        """The rows of a row family (:class:`flexplan.blocks.rows.LinearRows`) in HiGHS's order."""
        start = len(self.form.rows)
        for f in self.form.families:
            if f is fam:
                return slice(start, start + len(f))
            start += len(f)
        raise KeyError(f"row family {fam.family} was not handed to this HiGHS model")

    def family_duals(self, fam) -> np.ndarray:
        """Dual value per row of a row family, in the order of its ``keys``."""
        return self.row_duals()[self.family_slice(fam)]

    def constraint_dual(self, con) -> float:
        """Dual value of a Pyomo constraint (the sum over its rows: a ranged constraint may be two)."""
        if self._row_of is None:
            self._row_of = defaultdict(list)
            for i, (c, _sense) in enumerate(self.form.rows):
                self._row_of[id(c)].append(i)
        rows = self._row_of.get(id(con))
        if not rows:
            raise KeyError(f"constraint {con.name} is not a row of this HiGHS model")
        y = self.row_duals()
        return float(sum(y[i] for i in rows))


def solve_model(model, options: SolveOptions | None = None, progress=None, start: dict | None = None) -> SolveOutcome:
    """Solve a Pyomo model with HiGHS (one :class:`HighsSession`, kept on the outcome as
    ``outcome.session`` for re-solves and duals); on success the variables hold the solution.

    Returns the outcome whatever the status (``has_solution`` says whether the variables
    hold a plan); raises :class:`SolverError` when HiGHS fails without a solution or memory
    runs out while the model is handed over."""
    options = options or SolveOptions()
    if _interrupts[0] and _policy[0] == "raise":
        raise KeyboardInterrupt("a solve of this run was interrupted")
    if _interrupts[0] and _policy[0] == "skip_after":
        return SolveOutcome(status="interrupted", highs_status="Not run (an earlier solve was interrupted)",
                            has_solution=False, objective=None, mip_gap=None, dual_bound=None, size={},
                            timings=dict(handoff=0.0, solve=0.0))
    session = HighsSession(model, options, progress)
    if start:
        n = session.set_start(start)
        if progress:
            progress(f"MIP start: {n} of the model's columns given")
    return session.run()
