"""Array variables: the large variable families of a block as numpy arrays, not Pyomo objects.

A Pyomo variable costs about 2 µs to create and another 2 µs to hand over (its bounds and
domain read one by one) and to read back; the LinDistFlow network of a 4-stage,
12-day SimBench MV plan has 664,000 of them.  :class:`ArrayVar` keeps such a family as a
range of *tokens* (consecutive integers, one per element, numbered model-wide) with its
bounds as arrays; rows refer to the tokens with numpy (:func:`flexplan.blocks.rows.add_array_rows`),
costs with an :class:`ArrayExpr`, and :func:`flexplan.solve.to_highs` gives the tokens the
last columns of the HiGHS model in one block (column = offset + token).  After a solve the
values come back as one array (:meth:`ArrayVar.value_array`).

Rows written element by element (:func:`flexplan.blocks.rows.add_rows`) refer to an element
through ``var[key]``, a :class:`Col`; code that reads a solved model can keep using
``var[key].value``, ``var.items()``, ``lb`` and ``ub`` as with a Pyomo variable.

``PlanningModel.to_pyomo()`` (:func:`materialize_arrays`) turns every array variable into the
``pyo.Var`` it stands for, with the same block, name, index, bounds and value, and every
:class:`ArrayExpr` can then give its Pyomo expression (:meth:`ArrayExpr.expr`): Pyomo
solvers, writers, mpi-sppy and ``flexplan diagnose`` see an ordinary Pyomo model.
"""
from __future__ import annotations

from itertools import product

import numpy as np
import pyomo.environ as pyo

_ATTR = "_flexplan_arrays"


class Registry:
    """The array variables of one model, their tokens and (after a solve) their values."""

    def __init__(self):
        self.vars: list[ArrayVar] = []
        self.n = 0  # tokens handed out
        self.values: np.ndarray | None = None
        self.objective: list[tuple[float, ArrayExpr]] = []  # (weight, expression) not in the Pyomo objective
        self.materialized = False
        self._bases: np.ndarray | None = None

    def owner(self, toks: np.ndarray) -> np.ndarray:
        """Index in ``vars`` of the array variable of each token."""
        if self._bases is None or len(self._bases) != len(self.vars):
            self._bases = np.array([v.base for v in self.vars], dtype=np.int64)
        return np.searchsorted(self._bases, toks, side="right") - 1

    def pyomo_vars(self, toks) -> list:
        """The Pyomo variable of each token (after :func:`materialize_arrays`)."""
        toks = np.asarray(toks, dtype=np.int64)
        own = self.owner(toks)
        return [self.vars[o].pyomo[t - self.vars[o].base] for o, t in zip(own.tolist(), toks.tolist())]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.vars:
            return np.empty(0), np.empty(0)
        return np.concatenate([v.lb for v in self.vars]), np.concatenate([v.ub for v in self.vars])

    def value_of(self, toks) -> np.ndarray:
        toks = np.asarray(toks, dtype=np.int64)
        if self.materialized:
            return np.array([v.value if v.value is not None else np.nan for v in self.pyomo_vars(toks)], dtype=float)
        if self.values is None:
            return np.full(len(toks), np.nan)
        return self.values[toks]


def registry(model, create: bool = True) -> Registry | None:
    reg = model.__dict__.get(_ATTR)
    if reg is None and create:
        from .rows import _add_guard

        reg = Registry()
        object.__setattr__(model, _ATTR, reg)
        _add_guard(model)  # a Pyomo solver handed the model directly must not solve it without its arrays
    return reg


def _bound_array(b, n: int, default: float) -> np.ndarray:
    if b is None:
        return np.full(n, default)
    a = np.asarray(b, dtype=float)
    if a.ndim == 0:
        return np.full(n, float(a))
    a = a.reshape(-1)
    if len(a) != n:
        raise ValueError(f"{len(a)} bounds for {n} elements")
    return np.where(np.isnan(a), default, a)


class ArrayVar:
    """A continuous variable family indexed by the product of ``axes`` (each a list of
    distinct non-negative ints, e.g. buses x ops) or by an explicit list of ``keys``
    (tuples), with bounds ``lb``/``ub`` (a number, an array in index order, or None for
    unbounded).  Elements are numbered ``base + position`` (position in row-major order)."""

    def __init__(self, block, name: str, axes=None, keys=None, lb=None, ub=None):
        if (axes is None) == (keys is None):
            raise ValueError("give the axes or the keys of an array variable")
        self.block, self.name = block, name
        if axes is not None:
            self.axes = [list(a) for a in axes]
            self.shape = tuple(len(a) for a in self.axes)
            self._keys = None
            self._where = []
            for a in self.axes:  # label -> position along the axis
                lut = np.full((max(a) + 1) if a else 0, -1, dtype=np.int64)
                lut[np.asarray(a, dtype=np.int64)] = np.arange(len(a))
                self._where.append(lut)
        else:
            self.axes = None
            self._keys = list(keys)
            self.shape = (len(self._keys),)
            self._where = None
        self.n = int(np.prod(self.shape)) if self.shape else 0
        self.lb = _bound_array(lb, self.n, -np.inf)
        self.ub = _bound_array(ub, self.n, np.inf)
        self._pos: dict | None = None
        self._wl = None
        self.pyomo: list | None = None
        model = block.model()
        self.registry = registry(model)
        self.base = self.registry.n
        self.registry.n += self.n
        self.registry.vars.append(self)
        setattr(block, name, self)  # a plain attribute until materialised

    # -- index ---------------------------------------------------------------------------
    @property
    def keys(self) -> list:
        if self._keys is None:
            self._keys = list(product(*self.axes)) if len(self.axes) > 1 else list(self.axes[0])
        return self._keys

    def position(self, key) -> int:
        if self.axes is not None and len(self.axes) > 1:
            if self._wl is None:
                self._wl = [w.tolist() for w in self._where]
            if len(self.shape) == 2:
                i, j = self._wl[0][key[0]], self._wl[1][key[1]]
                if i < 0 or j < 0:
                    raise KeyError(key)
                return i * self.shape[1] + j
            return int(np.ravel_multi_index(tuple(int(w[k]) for w, k in zip(self._where, key)), self.shape))
        if self._pos is None:
            self._pos = {k: i for i, k in enumerate(self.keys)}
        return self._pos[key]

    def tokens(self, *labels) -> np.ndarray:
        """Tokens of the elements at ``labels`` (one int array per axis, broadcast together;
        for a keyed variable: the positions).  Without labels: all, shaped like the index."""
        if not labels:
            return (self.base + np.arange(self.n, dtype=np.int64)).reshape(self.shape)
        if self.axes is None:
            return self.base + np.asarray(labels[0], dtype=np.int64)
        pos = [w[np.asarray(lab, dtype=np.int64)] for w, lab in zip(self._where, labels)]
        return self.base + np.ravel_multi_index(tuple(np.broadcast_arrays(*pos)), self.shape)

    # -- Pyomo-like access ---------------------------------------------------------------
    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key) -> Col:
        return Col(self, self.position(key))

    def __contains__(self, key) -> bool:
        try:
            self.position(key)
            return True
        except (KeyError, IndexError, ValueError, TypeError):
            return False

    def items(self):
        for i, k in enumerate(self.keys):
            yield k, Col(self, i)

    def values(self):
        return [Col(self, i) for i in range(self.n)]

    def value_array(self) -> np.ndarray:
        """The solution, shaped like the index (nan before a solve)."""
        return self.registry.value_of(self.tokens().reshape(-1)).reshape(self.shape)

    @property
    def family(self) -> str:
        return f"{self.block.name}.{self.name}"

    def element_name(self, key) -> str:
        """The name Pyomo gives the element at ``key`` (``network.P[3,17]``)."""
        return f"{self.family}[{','.join(map(str, key)) if isinstance(key, tuple) else key}]"


class Col:
    """One element of an :class:`ArrayVar` (what ``var[key]`` gives): its token for rows
    written element by element, and ``value``/``lb``/``ub`` for code that reads a solution."""

    __slots__ = ("av", "pos")

    def __init__(self, av: ArrayVar, pos: int):
        self.av, self.pos = av, pos

    @property
    def tok(self) -> int:
        return self.av.base + self.pos

    @property
    def value(self):
        v = float(self.av.registry.value_of([self.tok])[0])
        return None if np.isnan(v) else v

    @property
    def lb(self):
        v = float(self.av.lb[self.pos])
        return None if np.isinf(v) else v

    @property
    def ub(self):
        v = float(self.av.ub[self.pos])
        return None if np.isinf(v) else v

    def index(self):
        return self.av.keys[self.pos]

    @property
    def name(self) -> str:
        return self.av.element_name(self.index())

    def __repr__(self) -> str:
        return self.name


class ArrayExpr:
    """``const + Σ coefs · x[toks]`` over array variables' tokens: a cost (``hub.cost``) or an
    expression of a row that Pyomo should not see element by element."""

    __slots__ = ("const", "coefs", "toks", "reg")

    def __init__(self, reg: Registry, coefs, toks, const: float = 0.0):
        self.reg = reg
        self.coefs = np.asarray(coefs, dtype=float).reshape(-1)
        self.toks = np.asarray(toks, dtype=np.int64).reshape(-1)
        self.const = float(const)

    def value(self) -> float:
        if not len(self.toks):
            return self.const
        x = self.reg.value_of(self.toks)
        return self.const + float(self.coefs @ np.nan_to_num(x))

    def expr(self):
        """The Pyomo expression (after :func:`materialize_arrays`)."""
        from .linear import lin

        if not self.reg.materialized:
            raise RuntimeError("an array expression becomes a Pyomo expression after PlanningModel.to_pyomo()")
        return lin(self.coefs.tolist(), self.reg.pyomo_vars(self.toks), self.const)

    @staticmethod
    def total(reg: Registry, parts) -> ArrayExpr:
        parts = list(parts)
        if not parts:
            return ArrayExpr(reg, [], [])
        return ArrayExpr(reg, np.concatenate([p.coefs for p in parts]), np.concatenate([p.toks for p in parts]),
                         sum(p.const for p in parts))


def as_pyomo(expr):
    """``expr`` as something Pyomo can use (an :class:`ArrayExpr` after materialisation)."""
    return expr.expr() if isinstance(expr, ArrayExpr) else expr


def value(expr) -> float:
    """The value of a cost expression (an :class:`ArrayExpr`, a Pyomo expression or a number)."""
    if isinstance(expr, ArrayExpr):
        return expr.value()
    if isinstance(expr, (int, float)):
        return float(expr)
    return float(pyo.value(expr, exception=False) or 0.0)


def materialize_arrays(model) -> int:
    """Turn every array variable of ``model`` into the ``pyo.Var`` it stands for (same block,
    name, index, bounds and value); returns the number of variables created.  Idempotent.
    Row families and expressions that refer to tokens resolve them through the registry."""
    reg = registry(model, create=False)
    if reg is None or reg.materialized:
        return 0
    n = 0
    for av in reg.vars:
        keys = av.keys
        lb, ub = av.lb, av.ub
        vals = reg.values[av.base:av.base + av.n] if reg.values is not None else None
        pos = {k: i for i, k in enumerate(keys)}

        def bounds(_, *k, lb=lb, ub=ub, pos=pos):
            i = pos[k[0] if len(k) == 1 else k]
            lo, hi = float(lb[i]), float(ub[i])
            return (None if np.isinf(lo) else lo, None if np.isinf(hi) else hi)

        if av.block.__dict__.get(av.name) is av:
            delattr(av.block, av.name)
        var = pyo.Var(keys, bounds=bounds, dense=True)
        av.block.add_component(av.name, var)
        av.pyomo = [var[k] for k in keys]
        if vals is not None:
            for vd, x in zip(av.pyomo, vals.tolist()):
                vd.set_value(x, skip_validation=True)
        n += av.n
    reg.materialized = True
    return n
