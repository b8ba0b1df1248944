"""Scenario trees and the stochastic extensive form (issue: multi-stage stochastic planning).

The two-branch feeder: one 20 kV line (rating R MVA) to a 2 MW evening-peaking load and a
home fleet of 100 EVs; stages 2025 and 2030, horizon 2034.  The root (2025-29) has no EVs;
in 2030 uptake branches to 'low' (no EVs, p = 0.5) or 'high' (100 EVs, p = 0.5).  With the
EVs charging uncontrolled the evening peak exceeds R in 'high' only; smart charging can move
it into the night.  Every expected value below is computed by hand from the annuity of the
one cable candidate (150 kEUR, 40 years, 3.5 %) and, where flexibility or overload is paid
for, from the load profile plus the fleet's uncontrolled charging profile.
"""
from __future__ import annotations

import numpy as np
import pytest

import flexplan as fp
from flexplan.errors import InstanceError
from flexplan.index import tree_index
from flexplan.instance.tree import parse_tree, uptake_tree
from flexplan.stochastic import solve_stochastic

from conftest import CABLE, EVENING, add_fleet, write_feeder

R = 0.035
ANNUITY = 150_000 * R / (1 - (1 + R) ** -40)  # EUR/yr, the cable's annuity
PV_FROM_2030 = ANNUITY * sum((1 + R) ** -(y - 2025) for y in range(2030, 2035))  # EUR, in service 2030-2034

TWO_BRANCH = """
[[tree.nodes]]
name = "n2025"
ev_factor = 0.0
[[tree.nodes]]
name = "n2030_low"
parent = "n2025"
probability = 0.5
ev_factor = 0.0
[[tree.nodes]]
name = "n2030_high"
parent = "n2025"
probability = 0.5
ev_factor = 1.0
"""


def two_branch(folder, rating):
    write_feeder(folder, lines=[("l1", "b0", "b1", 0.5, 0.3, rating, 1.0)], loads=[("b1", 2.0, 0.0)],
                 profile=[("wd", 365, EVENING)], reinforcement=CABLE,
                 economics="base_year = 2025\nend_year = 2034\nstages = [2025, 2030]\ndiscount_rate = 0.035")
    add_fleet(folder, "b1", 100)
    with open(folder / "instance.toml", "a") as fh:
        fh.write(TWO_BRANCH)
    return folder


def recipe(mode="smart", price=0.0, lead=0):
    return dict(name="t", blocks=["demand", "ev_fleet", "reinforcement"], network={"formulation": "lindistflow"},
                ev_fleet={"mode": mode, "flex_price_eur_per_mwh": price},
                reinforcement={"binary": True, "lead_time_stages": lead})


def excess_mwh_pv(res, rating):
    """Σ_y δ(y) · 365 · Σ_h max(0, load_h + EV baseline_h − rating): the present value of the
    energy above the rating in branch 'high' (MWh), from the load profile and the fleet's
    uncontrolled profile."""
    ev = res.tables["ev_flexibility"]
    base = ev[ev.node == "n2030_high"].groupby(["year", "hour"])["baseline_mw"].sum()
    load = 2.0 * np.array(EVENING)
    return sum((1 + R) ** -(y - 2025) * 365 * np.clip(load + base.loc[y].to_numpy() - rating, 0, None).sum()
               for y in range(2030, 2035))


@pytest.fixture(scope="module")
def tree_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("tree")


def test_option_value_matches_the_avoided_expected_reinforcement(tree_folder):
    """Free flexibility (price 0): without it 'high' must reinforce in 2030, with it nobody
    reinforces, so option value = p_high · PV(annuities 2030-34)."""
    f = two_branch(tree_folder / "free", rating=2.05)
    res = solve_stochastic(f, recipe(price=0.0), metrics=("option",))
    st = res.extra["stochastic"]
    assert st["expected_cost_eur"] == pytest.approx(0.0, abs=1e-6)
    assert st["option_value_of_flexibility_eur"] == pytest.approx(0.5 * PV_FROM_2030, rel=1e-9)
    assert res.tables["scenarios"].set_index("scenario").loc["n2030_high", "no_flexibility_cost_eur"] \
        == pytest.approx(PV_FROM_2030, rel=1e-9)


def test_option_value_with_a_priced_flexibility(tree_folder):
    """At 50 EUR/MWh the DSO buys exactly the excess energy above the rating in 'high':
    option value = 0.5 · (PV build − 50 · PV excess MWh)."""
    f = two_branch(tree_folder / "priced", rating=2.05)
    res = solve_stochastic(f, recipe(price=50.0), metrics=("option",))
    excess = excess_mwh_pv(res, 2.05)
    assert excess > 1.0  # the case is not degenerate
    st = res.extra["stochastic"]
    assert st["option_value_of_flexibility_eur"] == pytest.approx(0.5 * (PV_FROM_2030 - 50.0 * excess), rel=1e-7)
    assert st["expected_cost_eur"] == pytest.approx(0.5 * 50.0 * excess, rel=1e-7)


def test_lead_time_flexibility_lets_the_dso_wait(tree_folder):
    """With a one-stage lead time a cable for 2030 must be decided in 2025, before the branch
    is known.  Uncontrolled: the plan builds it at the root (RP = PV build, in both branches);
    wait-and-see builds only in 'high' (EVPI = 0.5 PV build); the expected-value plan (50 EVs:
    no overload) builds nothing and 'high' then pays the overload penalty (VSS by hand).
    Smart charging lets the DSO wait: nothing is built, option value = PV build."""
    rating = 2.07
    f = two_branch(tree_folder / "lead", rating=rating)
    unc = solve_stochastic(f, recipe(mode="uncontrolled", lead=1), metrics=("vss", "evpi"))
    st = unc.extra["stochastic"]
    assert st["first_stage_builds"] == ["l1 (cable)"]
    assert list(unc.builds["year"]) == [2030] and list(unc.builds["decided_year"]) == [2025]
    assert st["expected_cost_eur"] == pytest.approx(PV_FROM_2030, rel=1e-9)
    assert st["evpi_eur"] == pytest.approx(0.5 * PV_FROM_2030, rel=1e-9)
    assert st["expected_value_first_stage_builds"] == []
    overload_eur_per_mvah = 10_000.0  # the default penalty
    assert st["vss_eur"] == pytest.approx(0.5 * overload_eur_per_mvah * excess_mwh_pv(unc, rating) - PV_FROM_2030,
                                          rel=1e-7)
    smart = solve_stochastic(f, recipe(mode="smart", lead=1), metrics=("vss", "evpi", "option"))
    st = smart.extra["stochastic"]
    assert st["first_stage_builds"] == []
    assert st["option_value_of_flexibility_eur"] == pytest.approx(PV_FROM_2030, rel=1e-9)
    assert st["vss_eur"] >= -1e-6 and st["evpi_eur"] >= -1e-6


def test_one_scenario_tree_is_the_deterministic_plan(feeder):
    """A chain written as a tree (one branch per stage, probability 1, factors 1) gives the
    deterministic objective and builds exactly."""
    f = feeder(lines=[("l1", "b0", "b1", 0.5, 0.3, 2.3, 1.0), ("l2", "b1", "b2", 0.5, 0.3, 1.2, 2.0)],
               loads=[("b1", 1.0, 0.2), ("b2", 1.0, 0.3)], growth="annual_rate = 0.03", reinforcement=CABLE,
               economics="base_year = 2025\nend_year = 2039\nstages = [2025, 2030, 2035]\ndiscount_rate = 0.035")
    det = fp.solve(fp.build_model(fp.load_instance(f), "reinforce_only"))
    assert len(det.builds) >= 1  # growth forces a reinforcement: the comparison means something
    with open(f / "instance.toml", "a") as fh:
        fh.write("\n[[tree.nodes]]\nname = \"a\"\n[[tree.nodes]]\nname = \"b\"\nparent = \"a\"\nprobability = 1.0\n"
                 "[[tree.nodes]]\nname = \"c\"\nparent = \"b\"\nprobability = 1.0\n")
    sto = solve_stochastic(f, "reinforce_only", metrics=("vss", "evpi"))
    assert sto.objective_eur == pytest.approx(det.objective_eur, rel=1e-9)
    assert list(sto.builds["asset"]) == list(det.builds["asset"])
    assert list(sto.builds["year"]) == list(det.builds["year"])
    st = sto.extra["stochastic"]
    assert st["vss_eur"] == pytest.approx(0.0, abs=1e-6) and st["evpi_eur"] == pytest.approx(0.0, abs=1e-6)


def test_generated_tree_names_probabilities_and_factors():
    t = uptake_tree([2025, 2030, 2035], probabilities=(0.2, 0.5, 0.3), ev_factor=(0.5, 1.0, {"home": 2.0}))
    assert [n.name for n in t.nodes][:4] == ["n2025", "n2030_low", "n2030_medium", "n2030_high"]
    assert len(t.nodes) == 13 and len(t.leaves) == 9 and t.branching == (3, 3)
    assert sum(p for _, p in t.scenarios()) == pytest.approx(1.0)
    assert t.prob("n2035_high_low") == pytest.approx(0.3 * 0.2)
    n = t.by_name["n2035_high_low"]
    assert n.ev("home") == 0.5 and t.by_name["n2030_high"].ev("home") == 2.0 and t.by_name["n2030_high"].ev("x") == 1.0
    names = t.mpisppy_names()
    assert names["n2025"] == "ROOT" and names["n2035_high_low"] == "ROOT_2_0"


def test_tree_index_probabilities_and_node_data(tmp_path):
    f = two_branch(tmp_path / "ix", rating=2.05)
    inst = fp.load_instance(f)
    ix = tree_index(inst)
    assert ix.node_names == ["n2025", "n2030_low", "n2030_high"]
    assert ix.ancestors_incl["n2030_high"] == ["n2025", "n2030_high"]
    assert ix.nodes["n2030_high"].prob == 0.5 and ix.ev_factor("n2030_high", "home") == 1.0
    assert ix.ev_factor("n2025", "home") == 0.0
    path = tree_index(inst, nodes=inst.tree.path("n2030_high"), unit_probability=True)
    assert path.node_names == ["n2025", "n2030_high"] and all(n.prob == 1.0 for n in path.nodes.values())


@pytest.mark.parametrize("body, fields", [
    ('branches = ["lo", "hi"]\nprobabilities = [0.5, 0.6]', ["tree.probabilities"]),
    ('branches = ["lo", "hi"]\nprobabilities = [0.5, 0.5]\nev_factor = [1.0]', ["tree.ev_factor"]),
    ('branches = ["lo", "hi"]\nprobabilities = [0.5, 0.5]\nev_factor = [{nofleet = 1.0}, -1.0]',
     ["tree.ev_factor[0].nofleet", "tree.ev_factor[1]"]),
    ('branches = ["lo", "lo"]\nprobabilities = [0.5, 0.5]\ncolour = 1', ["tree.colour", "tree.branches"]),
])
def test_generated_tree_errors_name_every_field(body, fields):
    with pytest.raises(InstanceError) as e:
        parse_tree(__import__("tomllib").loads(body), [2025, 2030], "x.toml", fleets=["home"])
    got = {p.field for p in e.value.problems}
    assert set(fields) <= got, (fields, got, str(e.value))
    assert "x.toml" in str(e.value)


def test_explicit_tree_errors_are_collected():
    nodes = [dict(name="r"), dict(name="a", parent="r", probability=0.7), dict(name="b", parent="r", probability=0.2),
             dict(name="c", parent="zz", probability=1.0), dict(name="a", parent="r", probability=0.1)]
    with pytest.raises(InstanceError) as e:
        parse_tree({"nodes": nodes}, [2025, 2030], "x.toml")
    msg = str(e.value)
    assert "unique" in msg and "'zz' is not a node" in msg
    nodes = [dict(name="r"), dict(name="a", parent="r", probability=0.7), dict(name="b", parent="r", probability=0.2),
             dict(name="c", parent="a", probability=1.0)]
    with pytest.raises(InstanceError) as e:
        parse_tree({"nodes": nodes}, [2025, 2030], "x.toml")
    msg = str(e.value)
    assert "sum to 0.9" in msg and "beyond the 2 stages" in msg and "leaf 'b'" not in msg


def test_instance_tree_is_validated_with_the_instance(tmp_path):
    f = two_branch(tmp_path / "bad", rating=2.05)
    text = (f / "instance.toml").read_text().replace('probability = 0.5\nev_factor = 1.0', 'probability = 0.4\nev_factor = 1.0')
    (f / "instance.toml").write_text(text)
    with pytest.raises(InstanceError, match="children of 'n2025' sum to 0.9"):
        fp.load_instance(f)


def test_cli_stochastic_writes_tree_outputs(tree_folder, tmp_path):
    """``flexplan solve --stochastic``: exit 0, the decisions and scenarios tables, the two
    figures, the stochastic section; an instance without a tree is refused with exit 2."""
    import json

    from flexplan.cli import main

    f = two_branch(tree_folder / "cli", rating=2.07)
    rec = tmp_path / "r.toml"
    rec.write_text('name = "lead"\nblocks = ["demand", "ev_fleet", "reinforcement"]\n[ev_fleet]\nmode = "smart"\n'
                   'flex_price_eur_per_mwh = 0.0\n[reinforcement]\nlead_time_stages = 1\n')
    out = tmp_path / "out"
    assert main(["solve", str(f), "--model", str(rec), "--stochastic", "--out", str(out)]) == 0
    st = json.loads((out / "summary.json").read_text())["stochastic"]
    assert st["option_value_of_flexibility_eur"] == pytest.approx(PV_FROM_2030, rel=1e-9)
    assert {"vss_eur", "evpi_eur", "expected_cost_eur", "scenario_cost_eur"} <= set(st)
    for name in ("decisions.csv", "scenarios.csv", "decision_tree.png", "scenario_costs.png", "report.html"):
        assert (out / name).stat().st_size > 200, name
    assert "Stochastic plan" in (out / "report.md").read_text()
    plain = tmp_path / "plain"
    write_feeder(plain, lines=[("l1", "b0", "b1", 0.5, 0.3, 3.0, 1.0)], loads=[("b1", 1.0, 0.0)])
    assert main(["solve", str(plain), "--stochastic", "--out", str(tmp_path / "o2")]) == 2
    assert main(["solve", str(f), "--model", str(rec), "--stochastic", "--metrics", "vss,bogus"]) == 2


@pytest.mark.slow
def test_shipped_tree_metrics_relaxed_are_nonnegative():
    """ieee33_ev_tree under the LP relaxation (flex_lead_time_relaxed): VSS and EVPI are
    differences of exact LP optima of the same formulation, so VSS ≥ 0 (EEV adds constraints
    to RP) and EVPI ≥ 0 (each wait-and-see problem drops its scenario's non-anticipativity)
    hold to round-off; the expected cost is the probability-weighted scenario cost.  (The
    option value compares two different formulations, whose LP relaxations are not ordered:
    it is checked on the binary model, in the slow test below.)"""
    res = solve_stochastic("ieee33_ev_tree", "flex_lead_time_relaxed", metrics=("vss", "evpi"))
    st = res.extra["stochastic"]
    print({k: st.get(k) for k in ("expected_cost_eur", "vss_eur", "evpi_eur", "wall_s")})
    tol = 1e-6 * st["expected_cost_eur"]
    assert st["vss_eur"] >= -tol and st["evpi_eur"] >= -tol
    assert st["vss_eur"] > 0.01 * st["expected_cost_eur"]  # the lead time makes the first stage matter
    sc = res.tables["scenarios"]
    assert float((sc["probability"] * sc["cost_eur"]).sum()) == pytest.approx(st["expected_cost_eur"], rel=1e-9)
    assert float((sc["probability"] * sc["wait_and_see_cost_eur"]).sum()) == pytest.approx(st["wait_and_see_eur"])


@pytest.mark.slow
def test_shipped_tree_metrics_are_nonnegative(tmp_path):
    """ieee33_ev_tree under flex_lead_time (binary investments): VSS ≥ 0, EVPI ≥ 0 and option
    value ≥ 0 within the solves' MIP gaps (each metric is a difference of two objectives known
    to 1 %)."""
    res = solve_stochastic("ieee33_ev_tree", "flex_lead_time", mip_gap=0.01)
    st = res.extra["stochastic"]
    print({k: st.get(k) for k in ("expected_cost_eur", "vss_eur", "evpi_eur", "option_value_of_flexibility_eur",
                                  "wall_s")})
    tol = 0.01 * st["expected_cost_eur"]
    assert st["vss_eur"] >= -tol and st["evpi_eur"] >= -tol and st["option_value_of_flexibility_eur"] >= -tol
