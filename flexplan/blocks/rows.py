"""Row families: the large constraint families kept as flat lists until the hand-off.

A Pyomo constraint costs about 14 µs to create (a ``LinearExpression`` with one
``MonomialTermExpression`` per coefficient, a relational expression, a ``ConstraintData``
with its bounds checked) and 12 µs to compile into the standard form.  The network and EV
fleet blocks create hundreds of thousands of rows of a known, plain shape
``lo <= Σ coef · var <= hi``, so :func:`add_rows` keeps a family as four flat lists
(coefficients, variables, row starts, bounds) in a :class:`LinearRows` registered on the
model, and :func:`flexplan.solve.to_highs` appends them to the matrix of the remaining Pyomo
constraints with numpy.  Measured on SimBench MV x 4 stages x 12 days, LP, load x 2.5
(``benchmarks/README.md``, "Row families"): build 10.3 -> 4.2 s, hand-off 9.9 -> 3.9 s,
peak memory 4.1 -> 2.6 GB; (build + hand-off + extract) / HiGHS 0.56 -> 0.23.

The rows are not Pyomo components, so code that hands the model to another solver (the
mpi-sppy module, :mod:`flexplan.diagnose`) first calls :func:`materialize_rows`, which turns
every family into the ``pyo.Constraint`` it stands for, with the same name and index (e.g.
``network.vdrop[3, 17]``).  ``FLEXPLAN_PYOMO_ROWS=1`` in the environment makes
:func:`add_rows` build Pyomo constraints from the start (for debugging, and for the test that
both paths give the same LP).

Variables are referenced, not copied: fixing one after the build (the stochastic tools fix
first-stage decisions) is honoured at the hand-off, which moves a fixed variable's value
into the row bounds just as Pyomo's compiler does.
"""
from __future__ import annotations

import os

import pyomo.environ as pyo

from .linear import lin

_ATTR = "_flexplan_rows"


class LinearRows:
    """A family of rows ``lo[i] <= Σ_{p in start[i]:start[i+1]} coef[p] · var[p] <= hi[i]``
    (``None`` for a missing side), indexed by ``keys``, owned by ``block`` under ``name``
    (a plain attribute of the block until :func:`materialize_rows`)."""

    __slots__ = ("block", "name", "keys", "start", "coef", "var", "lo", "hi")

    def __init__(self, block, name: str):
        self.block, self.name = block, name
        self.keys: list = []
        self.start: list[int] = [0]
        self.coef: list[float] = []
        self.var: list = []
        self.lo: list = []
        self.hi: list = []

    def __len__(self) -> int:
        return len(self.keys)

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


def add_rows(block, name: str, keys, rule) -> LinearRows | None:
    """Add the family ``block.<name>``: for each key of ``keys`` (tuples are unpacked into
    the rule's arguments, as for ``pyo.Constraint``) ``rule(*key)`` returns
    ``(coefs, vars, lo, hi)``, ``lo``/``hi`` a number or ``None``.  Returns the family (or
    ``None`` when ``FLEXPLAN_PYOMO_ROWS`` asks for Pyomo constraints)."""
    keys = list(keys)
    if _pyomo_rows():
        block.add_component(name, pyo.Constraint(keys, rule=lambda _, *k: _relation(*rule(*k))))
        return None
    fam = LinearRows(block, name)
    coef, var, start, lo, hi = fam.coef, fam.var, fam.start, fam.lo, fam.hi
    for key in keys:
        c, v, low, high = rule(*key) if isinstance(key, tuple) else rule(key)
        if low is None and high is None:
            raise ValueError(f"row {name}[{key}] has neither a lower nor an upper bound")
        coef.extend(c)
        var.extend(v)
        start.append(len(coef))
        lo.append(low)
        hi.append(high)
    fam.keys = keys
    setattr(block, name, fam)  # a plain attribute (not a Pyomo component): len(block.<name>) counts the rows
    model = block.model()
    registry = model.__dict__.get(_ATTR)
    if registry is None:
        registry = []
        object.__setattr__(model, _ATTR, registry)
        _add_guard(model)
    registry.append(fam)
    return fam


#: the name of the guard row (see :func:`_add_guard`)
GUARD = "ROWS_OUTSIDE_PYOMO_call_PlanningModel_to_pyomo"


def _add_guard(model) -> None:
    """While row families stand outside Pyomo, the model holds one row that cannot hold
    (a variable fixed to 0 must be >= 1) under a name that says what to do: a Pyomo solver or
    writer handed ``pm.model`` directly reports the model infeasible at that row instead of
    solving it without its families (which gave 0 EUR as "optimal").  flexplan's hand-off
    leaves the guard out; :func:`materialize_rows` (``pm.to_pyomo()``) removes it."""
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
    block, name and index); returns the number of rows created.  Idempotent."""
    registry = model.__dict__.get(_ATTR, [])
    n = 0
    for fam in registry:
        pos = {k: i for i, k in enumerate(fam.keys)}

        def rule(_, *k, fam=fam, pos=pos):
            i = pos[k[0] if len(k) == 1 else k]
            a, b = fam.start[i], fam.start[i + 1]
            return _relation(fam.coef[a:b], fam.var[a:b], fam.lo[i], fam.hi[i])

        if fam.block.__dict__.get(fam.name) is fam:
            delattr(fam.block, fam.name)
        fam.block.add_component(fam.name, pyo.Constraint(fam.keys, rule=rule))
        n += len(fam)
    registry.clear()
    if model.component(GUARD) is not None:
        model.del_component(GUARD)
        model.del_component(GUARD + "_var")
    return n
