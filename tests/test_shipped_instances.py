"""Shipped instances end to end (the issue's "done means")."""
import pytest

import flexplan as fp
from flexplan.paths import shipped_instances

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ieee33():
    inst = fp.load_instance(shipped_instances() / "ieee33")
    return inst, fp.solve(fp.build_model(inst, "reinforce_only"), mip_gap=0.01, time_limit=900)


def test_ieee33_builds_within_horizon_and_respects_limits(ieee33):
    inst, res = ieee33
    assert res.status == "optimal" and res.mip_gap <= 0.01
    assert len(res.builds) > 0
    assert res.builds["year"].between(inst.economics.base_year, inst.economics.end_year).all()
    assert res.violations == {"max_voltage_deviation_pu": 0.0, "max_overload_pct": 0.0, "unserved_mwh": 0.0}
    assert res.voltages["v_pu"].min() >= inst.limits.v_min_pu - 1e-6
    assert res.line_loading["loading_pct"].max() <= inst.limits.max_loading_pct + 1e-4
    # nothing needs building at base-year load: the first build comes later
    assert res.builds["year"].min() > inst.economics.base_year


def test_ieee33_without_reinforcement_violates(ieee33):
    """The builds are needed: with demand only, the limits cannot be kept."""
    inst, _ = ieee33
    res = fp.solve(fp.build_model(inst, {"name": "demand_only", "blocks": ["demand"]}))
    assert res.violations["unserved_mwh"] > 0 or res.violations["max_voltage_deviation_pu"] > 0


def test_cigre_mv_loads_and_is_radial():
    inst = fp.load_instance(shipped_instances() / "cigre_mv")
    net = inst.network
    assert net.n_buses == 15 and net.n_branches == 14  # 12 closed lines + 2 transformers
    assert net.loads["p_mw"].sum() == pytest.approx(44.74215, rel=1e-6)
    assert set(net.branches["kind"]) == {"line", "transformer"}


@pytest.mark.slow
def test_cigre_mv_solves():
    inst = fp.load_instance(shipped_instances() / "cigre_mv")
    res = fp.solve(fp.build_model(inst, "reinforce_only"), mip_gap=0.01, time_limit=1800)
    assert res.has_solution
    assert res.violations["unserved_mwh"] == 0.0


def test_time_limit_reports_status_and_incumbent(tmp_path):
    """A time limit far below what branch and bound needs: the status says so, the
    incumbent (if HiGHS found one) comes back with its gap, and the CLI exit code and the
    written summary agree."""
    import json

    from flexplan.cli import EXIT_LIMIT, EXIT_NO_SOLUTION, main

    inst = fp.load_instance(shipped_instances() / "ieee33")
    res = fp.solve(fp.build_model(inst, "reinforce_only"), time_limit=0.5, mip_gap=0.0)
    assert res.status == "time_limit" and res.highs_status == "Time limit reached"
    if res.has_solution:
        assert res.objective_eur is not None and res.mip_gap is not None and res.mip_gap > 0
    else:
        assert res.objective_eur is None and res.builds.empty
    code = main(["solve", "ieee33", "--time-limit", "0.5", "--mip-gap", "0", "--out", str(tmp_path / "o"),
                 "--no-plots"])
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["status"] == "time_limit"
    assert code == (EXIT_LIMIT if summary["objective_eur"] is not None else EXIT_NO_SOLUTION)


def test_ieee33_ev_uncontrolled_peak_is_coincident_evs_times_chargers():
    """ieee33_ev, last year, under reinforce_only: the feeder's peak rises above the base
    load's peak by about the EVs charging at that hour times their charger power, counted
    session by session in each fleet's sample (no solve needed: the EVs are fixed loads)."""
    import numpy as np
    import pyomo.environ as pyo

    from conftest import simulate_uncontrolled
    from flexplan.blocks.demand import load_matrices
    from flexplan.blocks.ev_fleet import EVFleetConfig, add_ev_fleet
    from flexplan.hub import Hub
    from flexplan.index import deterministic_index

    inst = fp.load_instance(shipped_instances() / "ieee33_ev")
    ix = deterministic_index(inst)
    hub = Hub(inst.network.n_buses, ix.n_ops)
    add_ev_fleet(pyo.Block(concrete=True), inst, ix, hub, EVFleetConfig(mode="uncontrolled"))  # as reinforce_only
    last = ix.op_year == ix.op_year.max()
    base = load_matrices(inst, ix)[0][:, last].sum(axis=0)  # MW per op
    total = base + hub.p_withdraw[:, last].sum(axis=0)  # base + uncontrolled EVs
    year = int(ix.op_year.max())
    ev_kw, coincident = np.zeros(ix.hours), np.zeros(ix.hours)
    for fleet in inst.ev_fleets:
        n = float(fleet.evs[year]) * len(fleet.buses)
        kw, count = simulate_uncontrolled(fleet.sessions, ix.hours, ix.dt_h, fleet.eta_charge)
        ev_kw += kw * n / fleet.ev_days
        coincident += count * n / fleet.ev_days
    rise = total.max() - base.max()
    expected = (base.reshape(-1, ix.hours) + ev_kw / 1000).max() - base.max()
    h = int(np.argmax((base.reshape(-1, ix.hours) + ev_kw / 1000).max(axis=0)))
    print(f"peak rise {rise:.3f} MW: {coincident[h]:.0f} EVs charging at {h}:00 with "
          f"{ev_kw[h] / coincident[h]:.2f} kW on average")
    assert rise == pytest.approx(expected, rel=1e-6)
    assert rise > 0.5  # MW: the EVs matter on this feeder


@pytest.mark.slow
def test_ieee33_ev_smart_charging_lowers_reinforcement_cost():
    inst = fp.load_instance(shipped_instances() / "ieee33_ev")
    ref = fp.solve(fp.build_model(inst, "reinforce_only"), mip_gap=0.01, time_limit=1800)
    flex = fp.solve(fp.build_model(inst, "flex_vs_reinforce"), mip_gap=0.01, time_limit=1800)
    assert ref.has_solution and flex.has_solution
    inv_ref = ref.cost_breakdown_eur["investment"]
    inv_flex = flex.cost_breakdown_eur["investment"]
    print(f"investment: uncontrolled {inv_ref:,.0f} EUR, smart {inv_flex:,.0f} EUR; total {ref.objective_eur:,.0f} "
          f"vs {flex.objective_eur:,.0f} EUR")
    assert inv_flex < inv_ref
    # the value of flexibility is positive beyond both MIP gaps
    assert flex.extra["dual_bound_eur"] is not None
    assert ref.extra["dual_bound_eur"] - flex.objective_eur > 0
    assert flex.violations["unserved_mwh"] == 0.0 and ref.violations["unserved_mwh"] == 0.0


@pytest.mark.slow
def test_ieee33_ev_v2g_ageing_monotone_in_battery_cost():
    """ieee33_ev with V2G (reinforcement relaxed to an LP, so that the four solves take
    about 20 s each): pricing cycling wear never raises V2G discharge as the battery gets
    dearer, and a zero ageing cost reproduces the schedule of the V2G plan without the block."""
    inst = fp.load_instance(shipped_instances() / "ieee33_ev")
    base = {"name": "v2g", "blocks": ["demand", "ev_fleet", "reinforcement"],
            "ev_fleet": {"mode": "v2g"}, "reinforcement": {"binary": False}}
    plain = fp.solve(fp.build_model(inst, base))
    assert plain.status == "optimal"
    discharged = []
    for cost in (0.0, 2.0, 20.0, 150.0):
        rec = {**base, "blocks": base["blocks"] + ["ageing"],
               "ageing": {"replacement_eur_per_kwh": cost, "calendar": False}}
        res = fp.solve(fp.build_model(inst, rec))
        assert res.status == "optimal"
        ev = res.tables["ev_flexibility"]
        discharged.append(ev["discharge_mw"].sum())
        if cost == 0.0:
            assert ev.equals(plain.tables["ev_flexibility"])
            assert res.objective_eur == pytest.approx(plain.objective_eur, rel=1e-9)
    print("ieee33_ev V2G discharge by battery cost 0 / 2 / 20 / 150 EUR/kWh:", [round(d, 3) for d in discharged])
    assert discharged[0] > 0
    assert all(b <= a + 1e-6 for a, b in zip(discharged, discharged[1:]))
    assert discharged[-1] < discharged[0]
