"""Array variables (flexplan/blocks/arrays.py): columns handed to HiGHS as numpy arrays must
give the LP their Pyomo twins give, read back the solution, and turn into Pyomo variables
(``to_pyomo``) that any Pyomo solver can use."""
from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
import pytest

from flexplan.blocks.arrays import ArrayExpr, ArrayVar, registry
from flexplan.blocks.rows import GUARD, add_array_rows, add_rows, materialize_rows
from flexplan.solve import solve_model, to_highs

pytestmark = pytest.mark.component


def _transport():
    """min Σ c_ij x_ij + 20 y  s.t. Σ_j x_ij <= supply_i, Σ_i x_ij >= demand_j, x >= 0, and a
    Pyomo variable y (a fee for using supplier 0: x_0j <= 10 y).  Supplies 5 and 6, demands 3
    and 4, costs [[1, 3], [2, 1]].  By hand: supplier 1 serves demand 1 (x11 = 4, 1 EUR/unit)
    and with the rest of its 6 units demand 0 (x10 = 2, 2 EUR/unit); the last unit comes from
    supplier 0 at 1 + 20/10 = 3 EUR/unit (x00 = 1, y = 0.1): 4 + 4 + 1 + 2 = 11 EUR, unique."""
    m = pyo.ConcreteModel()
    m.b = pyo.Block()
    m.y = pyo.Var(bounds=(0, 1))
    cost = np.array([[1.0, 3.0], [2.0, 1.0]])
    x = ArrayVar(m.b, "x", axes=([0, 1], [0, 1]), lb=0.0, ub=np.full((2, 2), 100.0))
    tok = x.tokens()
    add_array_rows(m.b, "supply", 2, [0, 1], np.repeat([0, 1], 2), tok.reshape(-1), np.ones(4), -np.inf, [5.0, 6.0])
    add_array_rows(m.b, "demand", 2, [0, 1], np.tile([0, 1], 2), tok.reshape(-1), np.ones(4), [3.0, 4.0], np.inf)
    # x_0j - 10 y <= 0, written element by element with Col and a Pyomo variable
    add_rows(m.b, "fee_on", [0, 1], lambda j: ([1.0, -10.0], [x[0, j], m.y], None, 0.0))
    m.objective = pyo.Objective(expr=20.0 * m.y)
    registry(m).objective.append((1.0, ArrayExpr(registry(m), cost.reshape(-1), tok.reshape(-1))))
    return m, x


def test_array_columns_solve_to_the_hand_computed_optimum():
    m, x = _transport()
    out = solve_model(m)
    assert out.status == "optimal" and out.objective == pytest.approx(11.0)
    np.testing.assert_allclose(x.value_array(), [[1.0, 0.0], [2.0, 4.0]], atol=1e-9)
    assert x[1, 0].value == pytest.approx(2.0) and m.y.value == pytest.approx(0.1)
    assert [k for k, _ in x.items()] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_to_pyomo_gives_the_same_lp_and_a_pyomo_solver_the_same_optimum():
    m, x = _transport()
    lp, form, _, nnz = to_highs(m)
    names = form.names()
    assert names[-4:] == ["b.x[0,0]", "b.x[0,1]", "b.x[1,0]", "b.x[1,1]"] and form.n_array == 4
    ref, _ = _transport()
    materialize_rows(ref)
    assert isinstance(ref.b.x, pyo.Var) and isinstance(ref.b.supply, pyo.Constraint)
    assert ref.component(GUARD) is None
    lp2, form2, _, nnz2 = to_highs(ref)
    assert nnz == nnz2 and sorted(names) == sorted(form2.names())
    out = pyo.SolverFactory("appsi_highs").solve(ref)
    assert str(out.solver.termination_condition) == "optimal"
    assert pyo.value(ref.objective) == pytest.approx(11.0)
    assert pyo.value(ref.b.x[1, 1]) == pytest.approx(4.0)


def test_a_pyomo_solver_handed_the_model_directly_finds_the_guard_not_a_wrong_optimum():
    """Without ``to_pyomo()`` the array columns are invisible to Pyomo: its guard row makes a
    Pyomo solver report the model infeasible (not 'optimal' at 0 EUR)."""
    m, _ = _transport()
    out = pyo.SolverFactory("appsi_highs").solve(m, load_solutions=False)
    assert str(out.solver.termination_condition) == "infeasible"
    assert m.component(GUARD) is not None


def test_array_rows_are_checked():
    m = pyo.ConcreteModel()
    x = ArrayVar(m, "x", keys=[("a", 1), ("b", 2)], lb=0.0)
    with pytest.raises(ValueError, match="neither a lower nor an upper bound"):
        add_array_rows(m, "r", 1, [0], [0], x.tokens([0]), [1.0], -np.inf, np.inf)
    with pytest.raises(ValueError, match="different lengths"):
        add_array_rows(m, "r", 1, [0], [0, 0], x.tokens([0]), [1.0], 0.0, np.inf)
    assert x.position(("b", 2)) == 1 and ("c", 3) not in x
