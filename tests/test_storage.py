"""Stationary battery block: sizing against a hand-computed peak shave, deferral of a line build
when (and only when) the battery costs less than the deferral is worth, the daily cycle, the
instance section and the recipe."""
from __future__ import annotations

import math

import numpy as np
import pytest

import flexplan as fp
from conftest import CABLE, EVENING, write_feeder
from flexplan.assemble import check_recipe
from flexplan.economics import annuity_pv_factor
from flexplan.errors import InstanceError, RecipeError

pytestmark = pytest.mark.unit

RATING = 0.95  # MVA: the 1 MW evening load (factor 1.0 at 17-19 h) overloads it by 50 kW for three hours
ETA = math.sqrt(0.85)  # one-way efficiency of the default 85 % round trip
P_HAND = 0.05  # MW: the overload of each peak hour
E_HAND = 3 * P_HAND / ETA  # MWh stored to give 3 h x 50 kW at the grid side
CABLE_EUR = 150_000.0  # 1 km of the CABLE catalogue


def _feeder(folder, growth="annual_rate = 0.0", stages="[2025]", storage=""):
    f = write_feeder(folder, lines=[("l1", "b0", "b1", 0.2, 0.1, RATING, 1.0)], loads=[("b1", 1.0, 0.0)],
                     profile=[("day", 365, EVENING)], reinforcement=CABLE, growth=growth,
                     economics=f"base_year = 2025\nend_year = 2034\nstages = {stages}\ndiscount_rate = 0.035")
    if storage:
        with open(f / "instance.toml", "a") as fh:
            fh.write(storage)
    return f


@pytest.fixture(scope="module")
def one_stage(tmp_path_factory):
    return fp.load_instance(_feeder(tmp_path_factory.mktemp("st") / "one"))


@pytest.fixture(scope="module")
def two_stages(tmp_path_factory):
    """Stage 2030 with 1.5 x the load: the line must be rebuilt then (the battery cannot charge
    when the load exceeds the rating from 6 h to 22 h), so a battery can only defer it 5 years."""
    folder = tmp_path_factory.mktemp("st") / "two"
    folder.mkdir(parents=True)
    (folder / "growth.csv").write_text("year,factor\n" + "".join(f"{y},{1.0 if y < 2030 else 1.5}\n"
                                                               for y in range(2025, 2035)))
    return fp.load_instance(_feeder(folder, growth='file = "growth.csv"', stages="[2025, 2030]"))


def _storage_cost(eur_per_kwh, eur_per_kw, first=2025):
    f = annuity_pv_factor(first, 2034, 2025, 0.035, 15)
    return (eur_per_kwh * 1000 * E_HAND + eur_per_kw * 1000 * P_HAND) * f


def test_battery_shaves_the_peak_by_hand_values(one_stage):
    """One stage: the battery (50 kW, 150 kWh at the grid side / sqrt(0.85)) replaces the cable;
    the objective is its annuities."""
    base = fp.solve(fp.build_model(one_stage, {"blocks": ["demand", "reinforcement"]}), mip_gap=0.0)
    pm = fp.build_model(one_stage, {"blocks": ["demand", "reinforcement", "storage"], "storage": {"sites": ["b1"]}})
    res = fp.solve(pm, mip_gap=0.0)
    assert base.status == res.status == "optimal"
    assert base.objective_eur == pytest.approx(CABLE_EUR * annuity_pv_factor(2025, 2034, 2025, 0.035, 40), rel=1e-9)
    b = res.tables["storage_builds"].iloc[0]
    assert b["kw_built"] / 1000 == pytest.approx(P_HAND, abs=1e-6)
    assert b["kwh_built"] / 1000 == pytest.approx(E_HAND, abs=1e-6)
    assert res.builds.empty
    hand = _storage_cost(250.0, 250.0)
    assert hand < base.objective_eur
    assert res.objective_eur == pytest.approx(hand, rel=1e-7)
    assert res.cost_breakdown_eur["storage_investment"] == pytest.approx(hand, rel=1e-7)
    # the line stays within its rating; the daily cycle closes
    assert res.line_loading["loading_pct"].max() <= 100 + 1e-6
    op = res.tables["storage_operation"]
    day = op[op["year"] == 2025].sort_values("hour")
    e, ch, dis = (day[c].to_numpy() for c in ("energy_mwh", "charge_mw", "discharge_mw"))
    nxt = np.roll(e, -1)
    np.testing.assert_allclose(nxt, e + ETA * ch - dis / ETA, atol=1e-9)  # e[23 -> 0] wraps
    np.testing.assert_allclose(dis[17:20] - ch[17:20], P_HAND, atol=1e-7)


@pytest.mark.parametrize("eur_per_kwh, eur_per_kw", [(150.0, 150.0), (250.0, 250.0)])
def test_battery_defers_the_build_iff_cheaper_than_the_deferral(two_stages, eur_per_kwh, eur_per_kw):
    """Deferral value: the cable's annuities of 2025-2029 saved by building it in 2030.  At 150
    EUR/kWh and EUR/kW the battery costs less than that and defers the build by one stage; at
    250 it costs more and the cable is built in 2025, exactly as without storage."""
    base = fp.solve(fp.build_model(two_stages, {"blocks": ["demand", "reinforcement"]}), mip_gap=0.0)
    assert base.builds["year"].tolist() == [2025]
    deferral = CABLE_EUR * (annuity_pv_factor(2025, 2034, 2025, 0.035, 40)
                            - annuity_pv_factor(2030, 2034, 2025, 0.035, 40))
    hand = _storage_cost(eur_per_kwh, eur_per_kw)
    rec = {"blocks": ["demand", "reinforcement", "storage"],
           "storage": {"sites": ["b1"], "capex_eur_per_kwh": eur_per_kwh, "capex_eur_per_kw": eur_per_kw}}
    res = fp.solve(fp.build_model(two_stages, rec), mip_gap=0.0)
    assert res.status == "optimal"
    sb = res.tables["storage_builds"].set_index("node")
    if hand < deferral:
        assert res.builds["year"].tolist() == [2030]
        assert sb.at["n2025", "kw_built"] / 1000 == pytest.approx(P_HAND, abs=1e-6)
        assert sb.at["n2025", "kwh_built"] / 1000 == pytest.approx(E_HAND, abs=1e-6)
        assert sb.at["n2030", "kw_built"] == pytest.approx(0.0, abs=1e-6)
        assert res.objective_eur == pytest.approx(base.objective_eur - deferral + hand, rel=1e-7)
    else:
        assert eur_per_kwh == 250.0  # the case is chosen so that the battery loses
        assert res.builds["year"].tolist() == [2025]
        assert sb["kw_built"].abs().max() == pytest.approx(0.0, abs=1e-6)
        assert res.objective_eur == pytest.approx(base.objective_eur, rel=1e-7)


def test_ageing_adds_a_calendar_and_cycling_cost(one_stage):
    """With ageing the battery still wins here; the cost is positive and equals the calendar
    envelope plus the throughput cost recomputed from the solution."""
    rec = {"blocks": ["demand", "reinforcement", "storage"], "storage": {"sites": ["b1"], "ageing": True}}
    pm = fp.build_model(one_stage, rec)
    res = fp.solve(pm, mip_gap=0.0)
    assert res.status == "optimal" and res.builds.empty
    blk = pm.model.storage
    info = blk._storage
    model = info["model"]
    op = res.tables["storage_operation"]
    cap = res.tables["storage_builds"]["kwh_installed"].iloc[0] / 1000
    hours = 365.0  # one step of 1 h per day, 365 days
    cal = sum(model.calendar_rate(e, cap) for e in op["energy_mwh"]) * hours * model.eur_per_mwh_lost
    cyc = (op["discharge_mw"] / ETA).sum() * hours * info["cycle_eur_per_mwh"]
    w = sum(1.035 ** -k for k in range(10))  # the years are identical: discount weights
    assert res.cost_breakdown_eur["storage_ageing"] == pytest.approx((cal + cyc) / 10 * w, rel=1e-6)
    assert cal > 0 and cyc > 0


def test_storage_section_and_recipe(tmp_path):
    """Sites from ``[storage]`` with per-site limits; the shipped recipe solves, passes
    check_recipe and gives the same objective in reversed block order."""
    inst = fp.load_instance(_feeder(tmp_path / "sec", storage='\n[storage]\nsites = [{bus = "b1", max_kw = 40}]\n'))
    assert [(s.name, s.max_mw, s.max_mwh) for s in inst.sections["storage"]] == [("b1", 0.04, None)]
    rec = fp.resolve_recipe("storage_vs_reinforce")
    check_recipe(rec)
    objs = []
    for blocks in (list(rec.blocks), list(reversed(rec.blocks))):
        rec.blocks = blocks
        r = fp.solve(fp.build_model(inst, rec), mip_gap=0.0)
        assert r.status == "optimal"
        objs.append(r.objective_eur)
    assert objs[1] == pytest.approx(objs[0], rel=1e-9)
    # 40 kW cannot shave the 50 kW overload: the cable is built, the battery left out
    assert not r.builds.empty
    assert r.tables["storage_builds"]["kw_built"].max() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(RecipeError, match="keep one of them"):
        fp.build_model(inst, {"blocks": ["demand", "storage"], "storage": {"sites": ["b1"]}})


@pytest.mark.parametrize("section, message", [
    ('[storage]\nsites = ["b9"]\n', "unknown bus 'b9'"),
    ('[storage]\nsites = [{bus = "b1", max_kw = -3}]\n', "max_kw.*> 0"),
    ('[storage]\nsite = ["b1"]\n', "unknown key"),
    ('[[storage]]\nbus = "b1"\n[[storage]]\nbus = "b1"\n', "listed twice"),
])
def test_bad_storage_sections_are_refused(tmp_path, section, message):
    with pytest.raises(InstanceError, match=message):
        fp.load_instance(_feeder(tmp_path / "bad", storage="\n" + section))


def test_bad_options_and_no_sites(one_stage):
    with pytest.raises(RecipeError, match="round_trip_efficiency"):
        fp.build_model(one_stage, {"blocks": ["demand", "storage"], "storage": {"round_trip_efficiency": 1.2}})
    # no [storage] table and no sites: nothing to build (as the EV fleet without fleets), same plan as without
    base = fp.solve(fp.build_model(one_stage, {"blocks": ["demand", "reinforcement"]}), mip_gap=0.0)
    res = fp.solve(fp.build_model(one_stage, {"blocks": ["demand", "reinforcement", "storage"]}), mip_gap=0.0)
    assert res.objective_eur == pytest.approx(base.objective_eur, rel=1e-9)
    assert res.tables["storage_builds"].empty and res.extra["storage"]["sites"] == []
    with pytest.raises(RecipeError, match="unknown bus"):
        fp.build_model(one_stage, {"blocks": ["demand", "storage"], "storage": {"sites": ["b7"]}})


def test_day_screening_gives_the_full_plan(tmp_path):
    """Two days, only the evening one overloads the line: screening on the peak day sizes the
    same battery, and its evaluation on both days is the full plan."""
    from flexplan.screening import solve_screened

    f = write_feeder(tmp_path / "two", lines=[("l1", "b0", "b1", 0.2, 0.1, RATING, 1.0)], loads=[("b1", 1.0, 0.0)],
                     profile=[("peak", 100, EVENING), ("low", 265, [0.5] * 24)], reinforcement=CABLE,
                     economics="base_year = 2025\nend_year = 2029\nstages = [2025]")
    inst = fp.load_instance(f)
    rec = {"blocks": ["demand", "reinforcement", "storage"], "storage": {"sites": ["b1"]}}
    full = fp.solve(fp.build_model(inst, rec), mip_gap=0.0)
    scr = solve_screened(inst, rec, mip_gap=1e-9)
    assert scr.objective_eur == pytest.approx(full.objective_eur, rel=1e-7)
    sc = scr.extra["screening"]
    assert sc["converged"] and sc["rounds"][0]["days"] == ["peak"] and len(sc["rounds"]) == 1
    b = full.tables["storage_builds"].iloc[0]
    assert (b["kw_built"] / 1000, b["kwh_built"] / 1000) == pytest.approx((P_HAND, E_HAND), abs=1e-6)


def test_the_new_blocks_compose_in_any_order(tmp_path):
    """Battery, PV and heat pumps on one feeder: every order of the blocks gives the same plan."""
    import itertools

    sun = [0.0] * 6 + [0.1, 0.3, 0.5, 0.7, 0.9, 1.0, 1.0, 0.9, 0.7, 0.5, 0.3, 0.1] + [0.0] * 6
    f = _feeder(tmp_path / "all", storage='\n[storage]\nsites = ["b1"]\n[pv]\nfile = "pv.csv"\nhourly = '
                f'{sun}\n[heat_pumps]\nbus = "b1"\nunits = 20\nheat_kwh_per_day = 48\ncop = 3\n')
    (f / "pv.csv").write_text("bus,p_mw\nb1,0.2\n")
    inst = fp.load_instance(f)
    blocks = ["demand", "reinforcement", "storage", "pv", "heat_pumps"]
    objs = []
    for perm in itertools.permutations(blocks[2:]):
        res = fp.solve(fp.build_model(inst, {"blocks": blocks[:2] + list(perm)}), mip_gap=0.0)
        assert res.status == "optimal"
        objs.append(res.objective_eur)
    assert objs == pytest.approx([objs[0]] * len(objs), rel=1e-7)
    assert {"storage_builds", "pv", "heat_pumps"} <= set(res.tables)


def test_a_battery_past_its_life_is_rebuilt(tmp_path):
    """Lifetime 5 years, stages 2025 and 2030: the 2025 battery retires before 2030 and the
    same battery is built again; each pays its own 5 years of annuities."""
    inst = fp.load_instance(_feeder(tmp_path / "life", stages="[2025, 2030]"))
    rec = {"blocks": ["demand", "reinforcement", "storage"],
           "storage": {"sites": ["b1"], "lifetime_years": 5, "capex_eur_per_kwh": 100.0, "capex_eur_per_kw": 100.0}}
    res = fp.solve(fp.build_model(inst, rec), mip_gap=0.0)
    assert res.status == "optimal" and res.builds.empty
    sb = res.tables["storage_builds"].set_index("node")
    for n in ("n2025", "n2030"):
        assert sb.at[n, "kw_built"] / 1000 == pytest.approx(P_HAND, abs=1e-6)
        assert sb.at[n, "kwh_built"] / 1000 == pytest.approx(E_HAND, abs=1e-6)
        assert sb.at[n, "kw_installed"] / 1000 == pytest.approx(P_HAND, abs=1e-6)  # the old one is gone
    capex = 100 * 1000 * (E_HAND + P_HAND)
    hand = capex * (annuity_pv_factor(2025, 2034, 2025, 0.035, 5) + annuity_pv_factor(2030, 2034, 2025, 0.035, 5))
    assert res.objective_eur == pytest.approx(hand, rel=1e-7)


@pytest.mark.integration
def test_frameworks_add_dso_storage_where_the_instance_has_sites(tmp_path):
    """``flexplan frameworks`` on a feeder with [storage] sites and EVs adds a dso_storage row:
    reinforce-only with the DSO's batteries; a battery (50 kW, 0.163 MWh by hand, at the
    recipe's 250 EUR/kWh and kW) is cheaper than the cable here, so that row builds no line and
    costs less, and its DSO investment is the battery's annuities."""
    from conftest import add_fleet
    from flexplan.frameworks import FRAMEWORKS, compare_frameworks

    f = _feeder(tmp_path / "fw", storage='\n[storage]\nsites = ["b1"]\n')
    add_fleet(f, "b1", 1)  # the frameworks differ in how EVs charge: one EV, next to nothing
    inst = fp.load_instance(f)
    df = compare_frameworks(inst, frameworks=[FRAMEWORKS[0]], mip_gap=0.0).set_index("framework")
    assert list(df.index) == ["reinforce_only", "dso_storage"]
    ref, st = df.loc["reinforce_only"], df.loc["dso_storage"]
    assert ref.builds and not st.builds
    assert st.total_system_cost_eur < ref.total_system_cost_eur
    assert st.dso_investment_eur == pytest.approx(_storage_cost(250.0, 250.0), rel=0.02)  # the EV adds a little


def test_decisions_table_lists_what_the_battery_decides(one_stage):
    """The stochastic decisions table names what blocks other than reinforcement and contracts
    decide at a node (here the battery's power and energy at the hand values), without knowing
    the storage block."""
    from flexplan.stochastic import _other_decisions

    rec = {"blocks": ["demand", "reinforcement", "storage"], "storage": {"sites": ["b1"]}}
    pm = fp.build_model(one_stage, rec)
    res = fp.solve(pm, mip_gap=0.0)
    assert res.builds.empty
    text = _other_decisions(pm, pm.index.node_names[0])
    values = sorted(float(part.split("=")[1]) for part in text.split("; "))
    assert all(part.startswith("storage.") for part in text.split("; "))
    assert values == pytest.approx(sorted([P_HAND, E_HAND]), rel=1e-6)


@pytest.mark.integration
def test_frameworks_started_from_the_reinforce_only_plan_skip_highs_sub_mip_heuristics(tmp_path, monkeypatch):
    """The frameworks after the first start from its plan and run without HiGHS's root
    reduced-cost heuristic, RINS and RENS (on ieee33_ev's market MIP: 1 % in 35.7 s instead of
    174.5 s, benchmarks/market_mip.py); the first, cold, keeps HiGHS's defaults; the caller's
    options reach both."""
    from conftest import add_fleet
    from flexplan.frameworks import FRAMEWORK_HIGHS, FRAMEWORKS, compare_frameworks

    calls = []
    real = fp.solve

    def spy(pm, **kw):
        calls.append(kw)
        return real(pm, **kw)

    monkeypatch.setattr(fp, "solve", spy)
    f = _feeder(tmp_path / "fw", storage='\n[storage]\nsites = ["b1"]\n')
    add_fleet(f, "b1", 1)
    df = compare_frameworks(fp.load_instance(f), frameworks=[FRAMEWORKS[0]], mip_gap=0.0)
    assert list(df["framework"]) == ["reinforce_only", "dso_storage"]
    assert len(calls) == 2
    assert calls[0].get("start") is None and not set(FRAMEWORK_HIGHS) & set(calls[0])
    assert calls[0]["mip_gap"] == 0.0
    assert calls[1]["start"] and all(calls[1][k] is False for k in FRAMEWORK_HIGHS)
    assert calls[1]["mip_gap"] == 0.0  # the caller's options are kept
