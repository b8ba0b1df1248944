"""Heat-pump block: electrical energy per day = heat demand / COP (hand values, from outdoor
temperature), the comfort envelope at every hour, the shift out of the peak under a binding
line by a hand-checkable amount, the section forms and the recipe."""
from __future__ import annotations

import numpy as np
import pytest

import flexplan as fp
from conftest import EVENING, write_feeder
from flexplan.assemble import check_recipe
from flexplan.errors import InstanceError, RecipeError

pytestmark = pytest.mark.unit


def _feeder(folder, section, rating=5.0, profile=None, economics="base_year = 2025\nend_year = 2025\nstages = [2025]"):
    f = write_feeder(folder, lines=[("l1", "b0", "b1", 0.2, 0.1, rating, 1.0)], loads=[("b1", 1.0, 0.0)],
                     profile=profile or [("day", 365, EVENING)], economics=economics)
    with open(f / "instance.toml", "a") as fh:
        fh.write("\n" + section)
    return f


TWO_DAYS = [("winter", 182.5, EVENING), ("mild", 182.5, EVENING)]
# By hand, defaults: heat = 0.15 kW/K x (15.5 - T) x 24 h; COP = 6.81 - 0.121 dT + 0.00063 dT^2, dT = 40 - T
HAND = {"winter": dict(heat_kwh=0.15 * 15.5 * 24, cop=6.81 - 0.121 * 40 + 0.00063 * 40 ** 2),  # 55.8 kWh, 2.978
        "mild": dict(heat_kwh=0.15 * 5.5 * 24, cop=6.81 - 0.121 * 30 + 0.00063 * 30 ** 2)}  # 19.8 kWh, 3.747


def test_daily_energy_is_heat_over_cop_and_the_envelope_holds(tmp_path):
    """Two days (0 °C, 10 °C), 10 heat pumps per bus in 2025 rising to 20 in 2030 (14 in 2027):
    each day's electricity is N · heat / COP exactly, and the heat delivered stays within the
    demand ± N · 5 kWh/K · 0.5 K at every hour."""
    assert HAND["winter"]["heat_kwh"] == pytest.approx(55.8) and HAND["winter"]["cop"] == pytest.approx(2.978)
    assert HAND["mild"]["heat_kwh"] == pytest.approx(19.8) and HAND["mild"]["cop"] == pytest.approx(3.747)
    section = '[heat_pumps]\nbus = "b1"\nunits = {2025 = 10, 2030 = 20}\ntemperature_c = {winter = 0, mild = 10}\n'
    inst = fp.load_instance(_feeder(tmp_path / "t", section, profile=TWO_DAYS,
                                    economics="base_year = 2025\nend_year = 2030\nstages = [2025, 2030]"))
    res = fp.solve(fp.build_model(inst, {"blocks": ["demand", "heat_pumps"]}))
    assert res.status == "optimal"
    t = res.tables["heat_pumps"]
    assert sorted(t["year"].unique()) == list(range(2025, 2031))
    for (year, day), g in t.groupby(["year", "day"]):
        n = 10 + 2 * (year - 2025)
        assert g["n_units"].iloc[0] == pytest.approx(n)
        g = g.sort_values("hour")
        h = HAND[day]
        assert g["power_mw"].sum() * 1.0 == pytest.approx(n * h["heat_kwh"] / h["cop"] / 1000, abs=1e-9)
        assert g["cop"].iloc[0] == pytest.approx(h["cop"], rel=1e-12)
        demand = n * h["heat_kwh"] / 1000 * np.arange(1, 25) / 24  # flat heat profile
        band = n * 5.0 * 1.0 / 2 / 1000
        delivered = np.cumsum(g["power_mw"].to_numpy() * h["cop"])
        assert np.all(delivered >= np.maximum(demand - band, 0) - 1e-9)
        assert np.all(delivered <= np.minimum(demand + band, demand[-1]) + 1e-9)
        assert delivered[-1] == pytest.approx(demand[-1], abs=1e-9)
        assert np.all(g["power_mw"] <= n * 3.0 / 1000 + 1e-12)
    assert res.cost_breakdown_eur["heat_pump_flexibility"] == pytest.approx(0.0, abs=1e-6)  # no reason to shift


SHIFT = '[heat_pumps]\nbus = "b1"\nunits = 30\nheat_kwh_per_day = 72\ncop = 3\n'


@pytest.fixture(scope="module")
def binding(tmp_path_factory):
    """30 heat pumps of 72 kWh/day at COP 3: 30 kW flat.  With the 1 MW evening peak (17-19 h)
    the 1.02 MVA line is 10 kW short in those three hours."""
    return fp.load_instance(_feeder(tmp_path_factory.mktemp("hp") / "b", SHIFT, rating=1.02))


def test_consumption_leaves_the_peak_by_the_hand_amount(binding):
    res = fp.solve(fp.build_model(binding, {"blocks": ["demand", "heat_pumps"]}))
    assert res.status == "optimal"
    g = res.tables["heat_pumps"].sort_values("hour")
    p = g["power_mw"].to_numpy()
    np.testing.assert_allclose(p[17:20], 0.02, atol=1e-9)  # 30 kW - 10 kW shifted out of each peak hour
    assert p.sum() == pytest.approx(30 * 72 / 3 / 1000, abs=1e-9)  # same energy per day: 0.72 MWh
    assert np.all(p[:17] >= 0.03 - 1e-9) and np.all(p[20:] >= 0.03 - 1e-9)  # only ever more elsewhere
    assert np.all(g["delivered_mwh"] >= g["envelope_min_mwh"] - 1e-9)
    assert np.all(g["delivered_mwh"] <= g["envelope_max_mwh"] + 1e-9)
    assert res.line_loading["loading_pct"].max() <= 100 + 1e-6
    # the DSO pays 418 EUR/MWh for 3 x 10 kWh a day, 365 days
    assert res.cost_breakdown_eur["heat_pump_flexibility"] == pytest.approx(418 * 0.03 * 365, rel=1e-9)
    assert res.objective_eur == pytest.approx(418 * 0.03 * 365, rel=1e-9)
    s = res.extra["heat_pumps"]["years"][0]
    assert s["peak_baseline_mw"] == pytest.approx(0.03) and s["flex_down_mwh_per_year"] == pytest.approx(0.03 * 365)


def test_fixed_reference_overloads_the_line(binding):
    from flexplan.blocks import BLOCKS

    ref = BLOCKS["heat_pumps"].reference({})
    assert ref == {"mode": "fixed"} and BLOCKS["heat_pumps"].reference(ref) is None
    res = fp.solve(fp.build_model(binding, {"blocks": ["demand", "heat_pumps"], "heat_pumps": ref}))
    np.testing.assert_allclose(res.tables["heat_pumps"]["power_mw"], 0.03, atol=1e-9)
    assert res.cost_breakdown_eur["penalty_overload"] == pytest.approx(10_000 * 0.01 * 3 * 365, rel=1e-6)


def test_recipe_and_array_of_groups(tmp_path):
    """``[[heat_pumps]]`` with two groups; the shipped recipe passes check_recipe and solves to
    the same objective in reversed block order."""
    section = SHIFT.replace("[heat_pumps]", "[[heat_pumps]]") + \
        '[[heat_pumps]]\nname = "big"\nbuses = ["b1"]\nunits = 5\nheat_kwh_per_day = 120\ncop = 4\np_kw = 6\n' \
        'heat_profile = [' + ", ".join(["2"] * 8 + ["1"] * 16) + "]\n"
    inst = fp.load_instance(_feeder(tmp_path / "arr", section, rating=1.05))
    groups = inst.sections["heat_pumps"]
    assert [g.name for g in groups] == ["hp0", "big"]
    assert groups[1].shape[0] == pytest.approx(2 / 32) and groups[1].p_kw == 6.0
    rec = fp.resolve_recipe("heat_pump_flex")
    check_recipe(rec)
    objs = []
    for blocks in (list(rec.blocks), list(reversed(rec.blocks))):
        rec.blocks = blocks
        res = fp.solve(fp.build_model(inst, rec), mip_gap=0.0)
        assert res.status == "optimal"
        objs.append(res.objective_eur)
        t = res.tables["heat_pumps"]
        energy = t.groupby("group")["power_mw"].sum()
        assert energy["hp0"] == pytest.approx(0.72, abs=1e-9)
        assert energy["big"] == pytest.approx(5 * 0.120 / 4, abs=1e-9)
    assert objs[1] == pytest.approx(objs[0], rel=1e-9)


@pytest.mark.parametrize("section, message", [
    ('[heat_pumps]\nbus = "b9"\nunits = 3\nheat_kwh_per_day = 10\n', "unknown bus 'b9'"),
    ('[heat_pumps]\nbus = "b1"\nunits = 3\n', "give heat_kwh_per_day or temperature_c"),
    ('[heat_pumps]\nbus = "b1"\nunits = -1\nheat_kwh_per_day = 10\n', "units"),
    ('[heat_pumps]\nbus = "b1"\nunits = 3\nheat_kwh_per_day = 10\nheat_profile = [1, 2]\n', "24 weights"),
    ('[heat_pumps]\nbus = "b1"\nunits = 3\ntemperature_c = {winter = 0}\n', "missing day"),
    ('[heat_pumps]\nbus = "b1"\nunits = 3\nheat_kwh_per_day = 10\ncolour = "red"\n', "unknown key"),
])
def test_bad_heat_pump_sections_are_refused(tmp_path, section, message):
    with pytest.raises(InstanceError, match=message):
        fp.load_instance(_feeder(tmp_path / "bad", section))


def test_power_limit_and_options_checked(tmp_path):
    inst = fp.load_instance(_feeder(tmp_path / "p", '[heat_pumps]\nbus = "b1"\nunits = 3\nheat_kwh_per_day = 200\n'))
    with pytest.raises(RecipeError, match="above p_kw = 3"):  # at COP 2: 200 kWh / 2 / 24 h = 4.2 kW per heat pump
        fp.build_model(inst, {"blocks": ["demand", "heat_pumps"], "heat_pumps": {"cop": 2.0}})
    with pytest.raises(RecipeError, match="mode must be one of"):
        fp.build_model(inst, {"blocks": ["demand", "heat_pumps"], "heat_pumps": {"mode": "smart"}})
    plain = fp.load_instance(_feeder(tmp_path / "n", ""))  # no [heat_pumps] table: nothing modelled
    res = fp.solve(fp.build_model(plain, {"blocks": ["demand", "heat_pumps"]}))
    assert res.status == "optimal" and res.tables["heat_pumps"].empty and res.extra["heat_pumps"]["groups"] == []


def test_day_screening_keeps_each_days_data(tmp_path):
    """Per-day data are kept by day name: with only the mild day left (as day screening does)
    the energy is the mild day's hand value, and the screened plan equals the full one."""
    from flexplan.screening import solve_screened, with_days

    section = '[heat_pumps]\nbus = "b1"\nunits = 10\ntemperature_c = {winter = 0, mild = 10}\n'
    inst = fp.load_instance(_feeder(tmp_path / "s", section, profile=TWO_DAYS, rating=1.05))
    mild = with_days(inst, ["mild"])
    res = fp.solve(fp.build_model(mild, {"blocks": ["demand", "heat_pumps"]}))
    t = res.tables["heat_pumps"]
    assert set(t["day"]) == {"mild"}
    assert t["power_mw"].sum() == pytest.approx(10 * HAND["mild"]["heat_kwh"] / HAND["mild"]["cop"] / 1000, abs=1e-9)
    rec = {"blocks": ["demand", "reinforcement", "heat_pumps"]}
    full = fp.solve(fp.build_model(inst, rec), mip_gap=0.0)
    scr = solve_screened(inst, rec, mip_gap=1e-9)
    assert scr.objective_eur == pytest.approx(full.objective_eur, rel=1e-7, abs=1e-6)


def test_a_scenario_tree_scales_the_heat_pumps_per_branch(tmp_path):
    """The block's ``uncertain`` trait: ``[tree] factors = {heat_pumps = [...]}`` multiplies the
    heat-pump count per node; each node's daily electricity is its N x heat / COP (by hand), and
    a factor no block declares is refused naming the key."""
    from flexplan.index import tree_index
    from flexplan.errors import InstanceError

    tree = ('[tree]\nbranches = ["few", "many"]\nprobabilities = [0.5, 0.5]\n'
            'factors = {heat_pumps = [0.5, 2.0]}\n')
    econ = "base_year = 2025\nend_year = 2030\nstages = [2025, 2030]"
    inst = fp.load_instance(_feeder(tmp_path / "t", SHIFT + tree, economics=econ))
    ix = tree_index(inst)
    pm = fp.build_model(inst, {"blocks": ["demand", "heat_pumps"]}, index=ix)
    res = fp.solve(pm)
    assert res.status == "optimal"
    t = res.tables["heat_pumps"]
    for node, factor in (("n2025", 1.0), ("n2030_few", 0.5), ("n2030_many", 2.0)):
        g = t[t.node == node]
        assert g["n_units"].unique().tolist() == [pytest.approx(30 * factor)]
        for _, day in g.groupby(["year", "day"]):
            assert day["power_mw"].sum() == pytest.approx(30 * factor * 72 / 3 / 1000, rel=1e-9)
    bad = tree.replace("heat_pumps = [0.5, 2.0]", "heatpumps = [0.5, 2.0]")
    with pytest.raises(InstanceError, match=r"tree\.factors\.heatpumps.*no block declares.*known: heat_pumps"):
        fp.load_instance(_feeder(tmp_path / "bad", SHIFT + bad, economics=econ))
