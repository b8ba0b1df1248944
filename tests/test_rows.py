"""Row families (flexplan/blocks/rows.py): kept as flat lists and appended to the matrix at
the hand-off, they must give HiGHS exactly the LP that the same rows as Pyomo constraints
give (``FLEXPLAN_PYOMO_ROWS=1``), honour variables fixed after the build, disappear with a
deactivated block, and turn into the Pyomo constraints they stand for."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pyomo.environ as pyo
import pytest

from conftest import CABLE, EVENING, add_fleet, write_feeder
from flexplan.assemble import build_model
from flexplan.blocks.rows import add_rows, materialize_rows, row_families
from flexplan.instance import load_instance
from flexplan.solve import solve_model, to_highs

pytestmark = pytest.mark.component

RECIPE = {"name": "t", "blocks": ["demand", "ev_fleet", "reinforcement"],
          "network": {"formulation": "lindistflow"}, "ev_fleet": {"mode": "smart", "flex_price_eur_per_mwh": 50.0,
                                                                  "reactive": True},
          "reinforcement": {"binary": True}}


@pytest.fixture(scope="module")
def feeder(tmp_path_factory):
    root = tmp_path_factory.mktemp("rows")
    f = write_feeder(root / "f", lines=[("l1", "b0", "b1", 0.4, 0.3, 1.2, 1.0), ("l2", "b1", "b2", 0.6, 0.4, 1.0, 1.0),
                                        ("l3", "b1", "b3", 0.5, 0.3, 1.0, 1.0)],
                     loads=[("b2", 0.6, 0.2), ("b3", 0.5, 0.1)], profile=[("wd", 365, EVENING)], reinforcement=CABLE)
    add_fleet(f, "b2", 80)
    return load_instance(f)


def _rows(lp, names):
    """The LP as a multiset of rows (sorted (column name, coefficient) pairs and bounds),
    independent of the order of rows and columns."""
    a = lp.a_matrix_
    start, index, value = np.asarray(a.start_), np.asarray(a.index_), np.asarray(a.value_)
    per_row = [[] for _ in range(lp.num_row_)]
    for j in range(lp.num_col_):
        for p in range(start[j], start[j + 1]):
            per_row[index[p]].append((names[j], round(float(value[p]), 12)))
    lo, hi = np.asarray(lp.row_lower_), np.asarray(lp.row_upper_)
    return Counter((tuple(sorted(r)), round(float(lo[i]), 12), round(float(hi[i]), 12)) for i, r in enumerate(per_row))


def _columns(lp, names):
    return {n: (float(lp.col_cost_[j]), float(lp.col_lower_[j]), float(lp.col_upper_[j])) for j, n in enumerate(names)}


def test_families_give_the_same_lp_as_pyomo_constraints(feeder, monkeypatch):
    pm = build_model(feeder, RECIPE)
    fams = {f.family for f in row_families(pm.model)}
    assert {"network.balance_p", "network.vdrop_alt_up", "network.v_min", "network.thermal",
            "ev_fleet.energy", "ev_fleet.flex_down_def", "ev_fleet.kva"} <= fams
    lp, form, n_int, nnz = to_highs(pm.model)
    monkeypatch.setenv("FLEXPLAN_PYOMO_ROWS", "1")
    ref = build_model(feeder, RECIPE)
    assert not row_families(ref.model)
    lp_ref, form_ref, n_int_ref, nnz_ref = to_highs(ref.model)
    names = form.names()
    names_ref = form_ref.names()
    assert sorted(names) == sorted(names_ref) and n_int == n_int_ref > 0 and nnz == nnz_ref
    assert _columns(lp, names) == _columns(lp_ref, names_ref)
    assert _rows(lp, names) == _rows(lp_ref, names_ref)
    a, b = solve_model(pm.model), solve_model(ref.model)
    assert a.status == b.status == "optimal"
    assert a.objective == pytest.approx(b.objective, rel=1e-9)


def test_fixed_variables_move_into_the_row_bounds():
    """x + 2 y >= 4, x + y <= 3 as a family, y fixed at 1.5 after the build: the hand-off
    must see x >= 1 and x <= 1.5 (min x -> 1, max x -> 1.5; unfixed, max x -> 2)."""
    m = pyo.ConcreteModel()
    m.b = pyo.Block()
    m.x = pyo.Var(bounds=(0, 10))
    m.y = pyo.Var(bounds=(0, 10))
    add_rows(m.b, "r", [0, 1], lambda i: (([1.0, 2.0], [m.x, m.y], 4.0, None) if i == 0
                                          else ([1.0, 1.0], [m.x, m.y], None, 3.0)))
    m.y.fix(1.5)
    m.obj = pyo.Objective(expr=m.x)
    assert solve_model(m).objective == pytest.approx(1.0)
    assert m.y.value == 1.5
    m.obj.deactivate()
    m.top = pyo.Objective(expr=-m.x)
    assert solve_model(m).objective == pytest.approx(-1.5)
    m.y.unfix()  # free again: x + 2y >= 4, x + y <= 3, y <= 10 -> max x = 2 (y = 1)
    assert solve_model(m).objective == pytest.approx(-2.0)


def test_deactivated_block_drops_its_rows_and_materialize_restores_pyomo_constraints():
    m = pyo.ConcreteModel()
    m.b = pyo.Block()
    m.x = pyo.Var(bounds=(0, 10))
    add_rows(m.b, "floor", [(1, "a"), (2, "b")], lambda k, s: ([1.0], [m.x], float(k), None))
    m.obj = pyo.Objective(expr=m.x)
    assert solve_model(m).objective == pytest.approx(2.0)
    m.b.deactivate()
    assert solve_model(m).objective == pytest.approx(0.0)
    m.b.activate()
    assert materialize_rows(m) == 2 and not row_families(m)
    con = m.b.floor
    assert isinstance(con, pyo.Constraint) and set(con) == {(1, "a"), (2, "b")}
    assert pyo.value(con[2, "b"].lower) == 2.0 and con[2, "b"].upper is None
    assert solve_model(m).objective == pytest.approx(2.0)
    assert materialize_rows(m) == 0  # idempotent


def test_materialized_model_solves_to_the_same_plan(feeder):
    pm = build_model(feeder, RECIPE)
    direct = solve_model(pm.model)
    n = materialize_rows(pm.model)
    assert n > 0 and not row_families(pm.model)
    again = solve_model(pm.model)
    assert again.objective == pytest.approx(direct.objective, rel=1e-9)


def test_a_row_without_bounds_is_refused():
    m = pyo.ConcreteModel()
    m.x = pyo.Var()
    with pytest.raises(ValueError, match="neither a lower nor an upper bound"):
        add_rows(m, "r", [0], lambda i: ([1.0], [m.x], None, None))
