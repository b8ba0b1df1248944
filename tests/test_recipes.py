"""Recipes: assembly from models/*.toml, refusal of impossible recipes, formulation swap."""
from dataclasses import dataclass

import numpy as np
import pytest

import flexplan as fp
from flexplan.blocks import BLOCKS, BlockSpec, register_block
from flexplan.errors import RecipeError

pytestmark = pytest.mark.unit

TWO_LINES = [("l1", "b0", "b1", 0.4, 0.2, 3.0, 1.0), ("l2", "b1", "b2", 4.0, 2.0, 1.0, 1.0)]
SUBST = """substation_mva = 2.0"""
REINF = """
[[reinforcement.line_types]]
name = "cable"
r_ohm_per_km = 0.2
x_ohm_per_km = 0.1
max_i_ka = 0.2
capex_eur_per_km = 50000
lifetime_years = 40
[[reinforcement.transformer_types]]
name = "T5"
sn_mva = 5.0
vk_percent = 6.0
vkr_percent = 0.5
capex_eur = 300000
lifetime_years = 40
"""


def small(feeder, name="small"):
    return fp.load_instance(feeder(name, lines=TWO_LINES, loads=[("b1", 0.9, 0.3), ("b2", 1.5, 0.5)],
                                   reinforcement=REINF, extra_network=SUBST, limits="v_min_pu = 0.95",
                                   economics="base_year = 2025\nend_year = 2029\nstages = [2025]"))


def test_unknown_block_refused():
    from flexplan.assemble import check_recipe
    with pytest.raises(RecipeError, match="unknown block.*ev_flet.*available: .*demand, ev_fleet"):
        check_recipe(fp.resolve_recipe({"blocks": ["demand", "ev_flet"]}))


def test_missing_requirement_refused():
    @dataclass
    class Cfg:
        pass

    register_block(BlockSpec("needs_fleet", lambda *a: None, Cfg, requires=("ev_storage",)))
    try:
        from flexplan.assemble import check_recipe
        check_recipe(fp.resolve_recipe({"blocks": ["demand", "ev_fleet", "needs_fleet"]}))
        with pytest.raises(RecipeError, match="'needs_fleet' requires ev_storage.*ev_fleet"):
            check_recipe(fp.resolve_recipe({"blocks": ["demand", "needs_fleet"]}))
    finally:
        BLOCKS.pop("needs_fleet")


def test_bad_options_refused(feeder):
    inst = small(feeder)
    with pytest.raises(RecipeError, match="unknown option.*polygon_side"):
        fp.build_model(inst, {"blocks": ["demand"], "network": {"polygon_side": 8}})
    with pytest.raises(RecipeError, match="multiple of 4"):
        fp.build_model(inst, {"blocks": ["demand"], "network": {"polygon_sides": 6}})
    with pytest.raises(RecipeError, match="binary.*true or false"):
        fp.build_model(inst, {"blocks": ["demand", "reinforcement"], "reinforcement": {"binary": "yes"}})
    with pytest.raises(RecipeError, match="unknown network formulation 'dc'"):
        fp.build_model(inst, {"blocks": ["demand"], "network": {"formulation": "dc"}})
    with pytest.raises(RecipeError, match="not found"):
        fp.build_model(inst, "no_such_recipe")


def test_copperplate_changes_only_what_it_should(feeder):
    """Same demand and investment options; copperplate drops lines and voltages, so it builds
    only the substation, never costs more, and imports exactly the load."""
    inst = small(feeder)
    ldf = fp.solve(fp.build_model(inst, "reinforce_only"))
    cp = fp.solve(fp.build_model(inst, "reinforce_copperplate"))
    assert ldf.status == cp.status == "optimal"
    # LinDistFlow needs the weak line l2 (1 MVA, 1.58 MVA of load behind it) and the substation
    assert set(ldf.builds["asset"]) == {"l2", "substation"}
    assert set(cp.builds["asset"]) == {"substation"}
    assert cp.objective_eur <= ldf.objective_eur + 1e-6
    # copperplate's cost is the substation alone: 300 kEUR as annuities for 2025-2029
    a = 300_000 * 0.035 / (1 - 1.035 ** -40)
    assert cp.objective_eur == pytest.approx(sum(a * 1.035 ** -k for k in range(5)), rel=1e-9)
    assert cp.voltages.empty and not ldf.voltages.empty
    imp = cp.line_loading.set_index("line")["p_mw"]
    assert np.allclose(imp.to_numpy(), 0.9 + 1.5)
    assert cp.violations["unserved_mwh"] == ldf.violations["unserved_mwh"] == 0.0


def test_without_reinforcement_violations_are_reported(feeder):
    """Soft limits: the same feeder without investment options still solves; it sheds load
    (VOLL) rather than break the far cheaper-to-respect limits, and reports it."""
    inst = small(feeder)
    res = fp.solve(fp.build_model(inst, {"name": "no_reinf", "blocks": ["demand"]}))
    assert res.status == "optimal"
    shed_mw = res.violations["unserved_mwh"] / (5 * 8760)
    assert shed_mw > 0.1
    # what is still served respects the limits
    assert res.line_loading["loading_pct"].max() <= 100 + 1e-6
    assert res.voltages["v_pu"].min() >= 0.95 - 1e-9
    # the penalty is VOLL x the discounted shed energy
    pv_hours = sum(8760 * 1.035 ** -k for k in range(5))
    assert res.cost_breakdown_eur["penalty_unserved"] == pytest.approx(10_000 * shed_mw * pv_hours, rel=1e-6)
