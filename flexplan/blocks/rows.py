"""Row families: the large constraint families kept as arrays until the hand-off.

A Pyomo constraint costs about 14 µs to create (a ``LinearExpression`` with one
``MonomialTermExpression`` per coefficient, a relational expression, a ``ConstraintData``
with its bounds checked) and 12 µs to compile into the standard form.  The network and EV
fleet blocks create hundreds of thousands of rows of a known, plain shape
``lo <= Σ coef · var <= hi``, so a family is kept as a :class:`LinearRows` registered on the
model: its nonzeros in coordinate form, over Pyomo variables and over array variables'
tokens (:mod:`.arrays`), and its bounds as arrays.  :func:`add_array_rows` takes a family
written with numpy; :func:`add_rows` one written row by row with a rule (as for
``pyo.Constraint``).  :func:`flexplan.solve.to_highs` appends them to the matrix of the
remaining Pyomo constraints with numpy.  Measured on SimBench MV x 4 stages x 12 days, LP,
load x 2.5 (``benchmarks/README.md``, "Row families" and "Array variables").

The rows are not Pyomo components, so code that hands the model to another solver (the
mpi-sppy module, :mod:`flexplan.diagnose`, ``PlanningModel.to_pyomo()``) first calls
:func:`materialize_rows`, which turns every array variable into its ``pyo.Var`` and every
family into the ``pyo.Constraint`` it stands for, with the same name and index (e.g.
``network.vdrop[3, 17]``).  ``FLEXPLAN_PYOMO_ROWS=1`` in the environment materialises every
model right after its build (for debugging, and for the test that both give the same LP).

Pyomo variables are referenced, not copied: fixing one after the build (the stochastic tools
fix first-stage decisions) is honoured at the hand-off, which moves a fixed variable's value
into the row bounds just as Pyomo's compiler does.
"""
from __future__ import annotations

import os

import numpy as np
import pyomo.environ as pyo

from .linear import lin

_ATTR = "_flexplan_rows"


class LinearRows:
    """A family of rows ``lo[i] <= Σ coef · var <= hi[i]`` (±inf for a missing side) owned by
    ``block`` under ``name`` (a plain attribute of the block until :func:`materialize_rows`),
    its nonzeros in coordinate form: Pyomo variables (``p_row``, ``p_coef``, ``p_var``) and
    array variables' tokens (``t_row``, ``t_coef``, ``t_tok``, :mod:`.arrays`).  ``keys``
    (the index of each row) may be computed on first use."""

    __slots__ = ("block", "name", "n", "_keys", "_keyfn", "lo", "hi", "p_row", "p_coef", "p_var", "t_row",
                 "t_coef", "t_tok")

    def __init__(self, block, name: str):
        self.block, self.name = block, name
        self.n = 0
        self._keys, self._keyfn = [], None
        self.lo = self.hi = np.empty(0)
        self.p_row, self.p_coef, self.p_var = np.empty(0, dtype=np.int64), np.empty(0), []
        self.t_row, self.t_coef, self.t_tok = np.empty(0, dtype=np.int64), np.empty(0), np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return self.n

    @property
    def keys(self) -> list:
        if self._keys is None:
            self._keys = list(self._keyfn())
            self._keyfn = None
        return self._keys

    @property
    def nnz(self) -> int:
        return len(self.p_row) + len(self.t_row)

    @property
    def family(self) -> str:
        """``block.name`` as Pyomo would print the constraint (``network.vdrop``)."""
        return f"{self.block.name}.{self.name}"

    def active(self) -> bool:
        """False once the family is materialised or its block (or a parent) deactivated."""
        blk = self.block
        while blk is not None:
            if not blk.active:
                return False
            blk = blk.parent_block()
        return True


def _pyomo_rows() -> bool:
    return os.environ.get("FLEXPLAN_PYOMO_ROWS", "") not in ("", "0")


def _relation(coefs, vars_, lo, hi):
    body = lin(coefs, vars_)
    if lo is not None and hi is not None:
        return body == lo if lo == hi else pyo.inequality(lo, body, hi)
    return body >= lo if lo is not None else body <= hi


def _register(block, fam: LinearRows) -> LinearRows:
    setattr(block, fam.name, fam)  # a plain attribute (not a Pyomo component): len(block.<name>) counts the rows
    model = block.model()
    registry = model.__dict__.get(_ATTR)
    if registry is None:
        registry = []
        object.__setattr__(model, _ATTR, registry)
        _add_guard(model)
    registry.append(fam)
    return fam


def _split(fam: LinearRows, rows: list, coefs: list, vars_: list) -> None:
    """Store nonzeros given as parallel lists (row, coefficient, Pyomo variable or Col)."""
    from .arrays import Col

    is_col = np.fromiter((type(v) is Col for v in vars_), dtype=bool, count=len(vars_))
    rows = np.asarray(rows, dtype=np.int64)
    coefs = np.asarray(coefs, dtype=float)
    if is_col.any():
        fam.t_row = np.concatenate([fam.t_row, rows[is_col]])
        fam.t_coef = np.concatenate([fam.t_coef, coefs[is_col]])
        fam.t_tok = np.concatenate([fam.t_tok, np.fromiter((v.tok for v in vars_ if type(v) is Col), dtype=np.int64,
                                                          count=int(is_col.sum()))])
        keep = ~is_col
        fam.p_row = np.concatenate([fam.p_row, rows[keep]])
        fam.p_coef = np.concatenate([fam.p_coef, coefs[keep]])
        fam.p_var = fam.p_var + [v for v in vars_ if type(v) is not Col]
    else:
        fam.p_row = np.concatenate([fam.p_row, rows])
        fam.p_coef = np.concatenate([fam.p_coef, coefs])
        fam.p_var = fam.p_var + list(vars_)


def add_rows(block, name: str, keys, rule) -> LinearRows:
    """Add the family ``block.<name>``: for each key of ``keys`` (tuples are unpacked into
    the rule's arguments, as for ``pyo.Constraint``) ``rule(*key)`` returns
    ``(coefs, vars, lo, hi)``, ``lo``/``hi`` a number or ``None``; a variable is a Pyomo
    variable or an element of an array variable (``var[key]``, :mod:`.arrays`)."""
    keys = list(keys)
    fam = LinearRows(block, name)
    row, coef, var, lo, hi = [], [], [], [], []
    for i, key in enumerate(keys):
        c, v, low, high = rule(*key) if isinstance(key, tuple) else rule(key)
        if low is None and high is None:
            raise ValueError(f"row {name}[{key}] has neither a lower nor an upper bound")
        coef.extend(c)
        var.extend(v)
        row.extend([i] * (len(var) - len(row)))
        lo.append(-np.inf if low is None else low)
        hi.append(np.inf if high is None else high)
    fam.n, fam._keys = len(keys), keys
    fam.lo, fam.hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    _split(fam, row, coef, var)
    return _register(block, fam)


def add_array_rows(block, name: str, n: int, keys, t_row, t_tok, t_coef, lo, hi, extra=None) -> LinearRows:
    """Add the family ``block.<name>`` of ``n`` rows given as arrays: nonzeros over array
    variables' tokens (``t_row``, ``t_tok``, ``t_coef``, equal-length arrays; a row may name a
    token more than once: the coefficients add up), bounds ``lo``/``hi`` (arrays or numbers;
    ±inf for a missing side), ``keys`` the row index (a list, or a function that makes it on
    first use), and ``extra`` = (rows, coefs, variables) nonzeros written element by element
    (Pyomo variables or :class:`Col`)."""
    fam = LinearRows(block, name)
    fam.n = int(n)
    if callable(keys):
        fam._keys, fam._keyfn = None, keys
    else:
        fam._keys = list(keys)
        if len(fam._keys) != fam.n:
            raise ValueError(f"{len(fam._keys)} keys for {fam.n} rows of {name}")
    fam.lo = np.broadcast_to(np.asarray(lo, dtype=float), (fam.n,)).copy()
    fam.hi = np.broadcast_to(np.asarray(hi, dtype=float), (fam.n,)).copy()
    if np.any(np.isinf(fam.lo) & (fam.lo > 0)) or np.any(np.isinf(fam.hi) & (fam.hi < 0)):
        raise ValueError(f"rows {name}: a lower bound of +inf or an upper bound of -inf")
    if np.any(np.isneginf(fam.lo) & np.isposinf(fam.hi)):
        i = int(np.flatnonzero(np.isneginf(fam.lo) & np.isposinf(fam.hi))[0])
        raise ValueError(f"row {name}[{fam.keys[i]}] has neither a lower nor an upper bound")
    fam.t_row = np.asarray(t_row, dtype=np.int32).reshape(-1)
    fam.t_tok = np.asarray(t_tok, dtype=np.int32).reshape(-1)
    fam.t_coef = np.asarray(t_coef, dtype=float).reshape(-1)
    if not len(fam.t_row) == len(fam.t_tok) == len(fam.t_coef):
        raise ValueError(f"rows {name}: rows, tokens and coefficients of different lengths")
    if extra is not None and len(extra[0]):
        _split(fam, *extra)
    return _register(block, fam)


#: the name of the guard row (see :func:`_add_guard`)
GUARD = "ROWS_OUTSIDE_PYOMO_call_PlanningModel_to_pyomo"


def _add_guard(model) -> None:
    """While row families stand outside Pyomo, the model holds one row that cannot hold
    (a variable fixed to 0 must be >= 1) under a name that says what to do: a Pyomo solver or
    writer handed ``pm.model`` directly reports the model infeasible at that row instead of
    solving it without its families (which gave 0 EUR as "optimal").  flexplan's hand-off
    leaves the guard out; :func:`materialize_rows` (``pm.to_pyomo()``) removes it."""
    if model.component(GUARD) is not None:
        return
    model.add_component(GUARD + "_var", pyo.Var(bounds=(0.0, 0.0)))
    model.add_component(GUARD, pyo.Constraint(expr=getattr(model, GUARD + "_var") >= 1.0))


def guard(model):
    """The guard row of ``model``, or None."""
    return model.component(GUARD)


def row_families(model) -> list[LinearRows]:
    """The model's row families that are still to be handed over (active, not materialised)."""
    return [f for f in model.__dict__.get(_ATTR, ()) if f.active()]


def materialize_rows(model) -> int:
    """Turn every row family of ``model`` into the ``pyo.Constraint`` it stands for (same
    block, name and index), and every array variable into its ``pyo.Var``
    (:func:`.arrays.materialize_arrays`); returns the number of rows created.  Idempotent."""
    from .arrays import materialize_arrays, registry

    materialize_arrays(model)
    reg = registry(model, create=False)
    registry = model.__dict__.get(_ATTR, [])
    n = 0
    for fam in registry:
        per_row_c = [[] for _ in range(fam.n)]
        per_row_v = [[] for _ in range(fam.n)]
        for r, c, v in zip(fam.p_row.tolist(), fam.p_coef.tolist(), fam.p_var):
            per_row_c[r].append(c)
            per_row_v[r].append(v)
        if len(fam.t_row):
            for r, c, v in zip(fam.t_row.tolist(), fam.t_coef.tolist(), reg.pyomo_vars(fam.t_tok)):
                per_row_c[r].append(c)
                per_row_v[r].append(v)
        keys = fam.keys
        pos = {k: i for i, k in enumerate(keys)}
        lo = [None if np.isinf(x) else x for x in fam.lo.tolist()]
        hi = [None if np.isinf(x) else x for x in fam.hi.tolist()]

        def rule(_, *k, pos=pos, pc=per_row_c, pv=per_row_v, lo=lo, hi=hi):
            i = pos[k[0] if len(k) == 1 else k]
            return _relation(pc[i], pv[i], lo[i], hi[i])

        if fam.block.__dict__.get(fam.name) is fam:
            delattr(fam.block, fam.name)
        fam.block.add_component(fam.name, pyo.Constraint(keys, rule=rule))
        n += len(fam)
    registry.clear()
    if reg is not None and reg.objective:
        obj = next(model.component_data_objects(pyo.Objective, active=True), None)
        extra = sum(w * e.expr() for w, e in reg.objective)
        if obj is None:
            model.add_component("objective", pyo.Objective(expr=extra, sense=pyo.minimize))
        else:
            obj.set_value(obj.expr + extra)
        reg.objective = []
    if model.component(GUARD) is not None:
        model.del_component(GUARD)
        model.del_component(GUARD + "_var")
    return n
