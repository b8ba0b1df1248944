"""The deferral arithmetic on a one-line feeder (docs/formulation.md §1, §3): the load outgrows the
line in a known year; the model must build exactly then, at the hand-computed cost."""
import math

import pytest

import flexplan as fp
from flexplan.economics import annuity

pytestmark = pytest.mark.component

R = 0.035
CAPEX = 100_000.0
LIFE = 40
REINF = f"""
[[reinforcement.line_types]]
name = "big"
r_ohm_per_km = 0.1
x_ohm_per_km = 0.05
max_i_ka = {2.0 / (math.sqrt(3) * 20.0):.12f}
capex_eur_per_km = {CAPEX}
lifetime_years = {LIFE}
"""
ECON = ("base_year = 2025\nend_year = 2034\nstages = [2025, 2026, 2027, 2028, 2029, 2030, 2031, 2032, 2033, 2034]\n"
        "discount_rate = 0.035\ninvestment_cost = \"{method}\"")


def one_line(feeder, method="annuity", name="one_line"):
    # 0.8 MW grows 5 %/yr: 0.8 * 1.05^k > 1.0 MVA first at k = 5 (2030: 1.0210 MW)
    return feeder(name, lines=[("l1", "b0", "b1", 0.1, 0.05, 1.0, 1.0)], loads=[("b1", 0.8, 0.0)],
                  growth="annual_rate = 0.05", reinforcement=REINF, economics=ECON.format(method=method),
                  limits="v_min_pu = 0.5\nv_max_pu = 1.5")


@pytest.mark.parametrize("method", ["annuity", "lump_sum"])
def test_builds_exactly_when_outgrown_at_annuity_cost(feeder, method):
    res = fp.solve(fp.build_model(fp.load_instance(one_line(feeder, method, f"ol_{method}")), "reinforce_only"))
    assert res.status == "optimal"
    assert res.builds[["asset", "year"]].values.tolist() == [["l1", 2030]]
    a = annuity(CAPEX, R, LIFE)
    expected = sum(a * (1 + R) ** -(y - 2025) for y in range(2030, 2035))
    assert res.objective_eur == pytest.approx(expected, rel=1e-9)
    assert res.cost_breakdown_eur["investment"] == pytest.approx(expected, rel=1e-9)
    assert res.violations["max_overload_pct"] == 0.0
    # the line in place is loaded at most 100 % of what is in place each year
    assert res.line_loading["loading_pct"].max() <= 100.0 + 1e-6


def test_deferral_value_equals_annuity_stream_difference(feeder):
    """Build forced in 2025 (load already too big) vs the optimum in 2030: the saving is the
    annuities of 2025-2029."""
    inst = fp.load_instance(one_line(feeder))
    late = fp.solve(fp.build_model(inst, "reinforce_only"))
    early_inst = fp.load_instance(feeder("early", lines=[("l1", "b0", "b1", 0.1, 0.05, 1.0, 1.0)],
                                         loads=[("b1", 1.2, 0.0)], growth="annual_rate = 0.0", reinforcement=REINF,
                                         economics=ECON.format(method="annuity"), limits="v_min_pu = 0.5"))
    early = fp.solve(fp.build_model(early_inst, "reinforce_only"))
    assert early.builds["year"].tolist() == [2025]
    a = annuity(CAPEX, R, LIFE)
    saving = sum(a * (1 + R) ** -(y - 2025) for y in range(2025, 2030))
    assert early.objective_eur - late.objective_eur == pytest.approx(saving, rel=1e-9)


def test_replacement_changes_impedance_in_voltage_drop(feeder):
    """Voltage forces a replacement; afterwards the voltage must follow the new impedance
    (the big-M disjunction picks the right equation)."""
    reinf = ('generate = ["replace"]\n[[reinforcement.line_types]]\nname = "low_r"\nr_ohm_per_km = 0.1\n'
             'x_ohm_per_km = 0.05\nmax_i_ka = 2.0\ncapex_eur_per_km = 1000.0\nlifetime_years = 40\n')
    folder = feeder("vdrop", lines=[("l1", "b0", "b1", 2.0, 1.0, 50.0, 1.0)], loads=[("b1", 2.0, 1.0)],
                    reinforcement=reinf, limits="v_min_pu = 0.99\nv_max_pu = 1.1",
                    economics="base_year = 2025\nend_year = 2025\nstages = [2025]")
    res = fp.solve(fp.build_model(fp.load_instance(folder), "reinforce_only"))
    assert res.builds[["asset", "kind"]].values.tolist() == [["l1", "replace"]]
    zb = 20.0 ** 2  # S_base 1 MVA
    v_old = math.sqrt(1 - 2 * (2.0 / zb * 2.0 + 1.0 / zb * 1.0))
    v_new = math.sqrt(1 - 2 * (0.1 / zb * 2.0 + 0.05 / zb * 1.0))
    assert v_old < 0.99 < v_new
    got = res.voltages.set_index("bus").loc["b1", "v_pu"]
    assert got == pytest.approx(v_new, abs=1e-9)


def test_parallel_line_halves_the_drop(feeder):
    """A parallel line with the same r/x ratio: the drop follows the parallel impedance
    r1 r2 / (r1 + r2)."""
    reinf = ('generate = ["parallel"]\n[[reinforcement.line_types]]\nname = "twin"\nr_ohm_per_km = 1.0\n'
             'x_ohm_per_km = 0.5\nmax_i_ka = 2.0\ncapex_eur_per_km = 1000.0\nlifetime_years = 40\n')
    folder = feeder("par", lines=[("l1", "b0", "b1", 2.0, 1.0, 50.0, 1.0)], loads=[("b1", 2.0, 1.0)],
                    reinforcement=reinf, limits="v_min_pu = 0.99\nv_max_pu = 1.1",
                    economics="base_year = 2025\nend_year = 2025\nstages = [2025]")
    res = fp.solve(fp.build_model(fp.load_instance(folder), "reinforce_only"))
    assert res.builds[["asset", "kind"]].values.tolist() == [["l1", "parallel"]]
    zb = 400.0
    r_eq, x_eq = 2.0 * 1.0 / 3.0, 1.0 * 0.5 / 1.5
    v = math.sqrt(1 - 2 * (r_eq / zb * 2.0 + x_eq / zb * 1.0))
    assert res.voltages.set_index("bus").loc["b1", "v_pu"] == pytest.approx(v, abs=1e-9)
    # LinDistFlow fixes the weighted split r P + x Q on each line (with equal r/x ratios the
    # separate P and Q splits are not unique), and the parts add up to the load
    ll = res.line_loading.set_index("line")
    p1, q1 = ll.loc["l1", ["p_mw", "q_mvar"]]
    p2, q2 = ll.loc["l1:parallel:twin", ["p_mw", "q_mvar"]]
    assert p1 + p2 == pytest.approx(2.0, abs=1e-6) and q1 + q2 == pytest.approx(1.0, abs=1e-6)
    assert 2.0 * p1 + 1.0 * q1 == pytest.approx(r_eq * 2.0 + x_eq * 1.0, abs=1e-6)
    assert 1.0 * p2 + 0.5 * q2 == pytest.approx(r_eq * 2.0 + x_eq * 1.0, abs=1e-6)
