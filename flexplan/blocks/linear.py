"""Flat linear expressions for the constraints built in the hot path.

Pyomo's standard-form compiler (the hand-off to HiGHS, :mod:`flexplan.solve`) walks every
constraint body node by node.  A body written with operators — ``c * (a * x + s)``,
``(r * P + x * Q) / S``, ``M * (1 - z)`` — is a tree of product, division and sum nodes; a
body given as one :class:`~pyomo.core.expr.numeric_expr.LinearExpression` (constant,
coefficients, variables) is read in one step.  Measured on 100 000 rows of the thermal
polygon's shape (``benchmarks/README.md``, "Flat expressions"): build 4.2 s -> 1.5 s,
compile 6.7 s -> 0.9 s.

:func:`affine` takes an expression apart once (states of investments, EV injections) so
that rows can combine its terms with plain list operations; :func:`lin` puts a row's terms
back together.  Fixed variables stay variables: the compiler substitutes their value when
the model is handed to HiGHS, so fixing a decision after the build (as the stochastic tools
do) still takes effect.
"""
from __future__ import annotations

from numbers import Number

from pyomo.core.base.var import VarData
from pyomo.core.expr.numeric_expr import (DivisionExpression, LinearExpression, MonomialTermExpression,
                                          NegationExpression, ProductExpression, SumExpression)


class Affine:
    """``const + Σ coefs[i] · vars[i]`` as plain lists (a variable may appear twice)."""

    __slots__ = ("const", "coefs", "vars")

    def __init__(self, const: float = 0.0, coefs=None, vars_=None):
        self.const = float(const)
        self.coefs = [] if coefs is None else coefs
        self.vars = [] if vars_ is None else vars_

    def add(self, other: Affine, scale: float = 1.0) -> Affine:
        """In place: ``self += scale · other``."""
        self.const += scale * other.const
        if scale == 1.0:
            self.coefs.extend(other.coefs)
        else:
            self.coefs.extend(scale * c for c in other.coefs)
        self.vars.extend(other.vars)
        return self

    def term(self, coef: float, var) -> Affine:
        """In place: ``self += coef · var`` (``var`` a Pyomo variable or a number)."""
        if isinstance(var, Number):
            self.const += coef * var
        else:
            self.coefs.append(coef)
            self.vars.append(var)
        return self

    def expr(self) -> LinearExpression:
        return lin(self.coefs, self.vars, self.const)


def lin(coefs, vars_, const: float = 0.0) -> LinearExpression:
    """One flat Pyomo expression ``const + Σ coefs · vars``."""
    return LinearExpression(constant=float(const), linear_coefs=list(coefs), linear_vars=list(vars_))


def affine(expr, scale: float = 1.0, out: Affine | None = None) -> Affine:
    """``scale · expr`` as an :class:`Affine`: numbers, variables and the linear shapes
    Pyomo's operators make (sums, monomials, products and quotients by constants,
    negation).  Anything else (a nonlinear expression) raises ``TypeError``."""
    out = Affine() if out is None else out
    if isinstance(expr, Number):
        out.const += scale * float(expr)
    elif isinstance(expr, VarData):
        out.coefs.append(scale)
        out.vars.append(expr)
    elif isinstance(expr, MonomialTermExpression):
        coef, var = expr.args
        out.coefs.append(scale * float(coef))
        out.vars.append(var)
    elif isinstance(expr, (LinearExpression, SumExpression)):
        for arg in expr.args:
            affine(arg, scale, out)
    elif isinstance(expr, NegationExpression):
        affine(expr.args[0], -scale, out)
    elif isinstance(expr, ProductExpression):
        a, b = expr.args
        if isinstance(a, Number):
            affine(b, scale * float(a), out)
        elif isinstance(b, Number):
            affine(a, scale * float(b), out)
        else:
            raise TypeError(f"not a linear expression: {expr}")
    elif isinstance(expr, DivisionExpression) and isinstance(expr.args[1], Number):
        affine(expr.args[0], scale / float(expr.args[1]), out)
    else:
        raise TypeError(f"not a linear expression (or not a shape flexplan builds): {expr!r}")
    return out
