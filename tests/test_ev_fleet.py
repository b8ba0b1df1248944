"""The EV fleet block against independent references: greedy per-EV optima, brute-force
(one EV per cohort) models, step-by-step simulation and energy balances."""
from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
import pytest

from conftest import simulate_uncontrolled
from flexplan.blocks.ev_fleet import EVFleetConfig, add_ev_fleet, extract_ev_fleet
from flexplan.errors import RecipeError
from flexplan.ev.generator import GeneratorOptions, generate_sessions
from flexplan.hub import Hub
from flexplan.index import deterministic_index
from flexplan.instance import load_instance
from flexplan.solve import solve_model

#: EUR/MWh per hour of the day: cheap nights, expensive evenings (a test signal)
PRICE = np.array([30, 25, 20, 20, 25, 40, 60, 80, 70, 60, 50, 40, 40, 45, 50, 60, 90, 120, 110, 90, 70, 50, 40, 35.0])
N_EVS = 150


@pytest.fixture(scope="module")
def fleet_instance(tmp_path_factory):
    """One bus, one year, one day of 24 h; a home fleet of N_EVS EVs from generated sessions
    (half of them V2G-capable) written as a session CSV."""
    from conftest import write_feeder

    folder = tmp_path_factory.mktemp("fleet")
    f = write_feeder(folder / "f", lines=[("l1", "b0", "b1", 0.5, 0.4, 5.0, 1.0)], loads=[("b1", 0.1, 0.0)],
                     profile=[("day", 365, [1.0] * 24)],
                     economics="base_year = 2025\nend_year = 2025\nstages = [2025]")
    s, st = generate_sessions("home", N_EVS, 3, seed=4, options=GeneratorOptions(v2g_share=0.5))
    s.drop(columns=["day"]).to_csv(f / "sessions.csv", index=False)
    with open(f / "instance.toml", "a") as fh:
        fh.write(f'\n[[ev_fleets]]\nname = "home"\nbus = "b1"\nsessions = "sessions.csv"\nev_days = {st["ev_days"]}\n'
                 f'evs = {{2025 = {N_EVS}}}\n')
    return load_instance(f)


def fleet_model(inst, objective="cost", **cfg):
    """The block alone on a model; objective ``cost`` (charging at PRICE) or ``peak``."""
    ix = deterministic_index(inst)
    m = pyo.ConcreteModel()
    m.ev = pyo.Block()
    hub = Hub(inst.network.n_buses, ix.n_ops)
    add_ev_fleet(m.ev, inst, ix, hub, EVFleetConfig(flex_price_eur_per_mwh=0.0, **cfg))
    load = {t: -sum(hub.p_terms.get((1, t), [])) for t in range(ix.n_ops)}  # MW drawn by the fleet
    if objective == "cost":
        m.obj = pyo.Objective(expr=sum(float(PRICE[t]) * load[t] for t in range(ix.n_ops)))
    else:
        m.z = pyo.Var()
        m.peak = pyo.Constraint(range(ix.n_ops), rule=lambda _, t: m.z >= load[t])
        m.obj = pyo.Objective(expr=m.z)
    out = solve_model(m)
    assert out.status == "optimal"
    return m, ix, out.objective


def greedy_cost(inst) -> float:
    """Each EV on its own, charging in its cheapest plugged-in hours first (the optimum of a
    single EV without V2G when prices are positive), summed and scaled to the fleet."""
    fleet = inst.ev_fleets[0]
    total = 0.0
    for r in fleet.sessions.itertuples():
        need = r.energy_required_kwh - r.energy_arrival_kwh  # kWh into the battery
        hours = (r.start + np.arange(r.length)) % 24
        for h in hours[np.argsort(PRICE[hours], kind="stable")]:
            e = min(need, fleet.eta_charge * r.charger_kw * 1.0)
            total += PRICE[h] * e / fleet.eta_charge / 1000.0  # EUR for MWh from the grid
            need -= e
            if need <= 1e-12:
                break
    return total * N_EVS / fleet.ev_days


pytestmark = pytest.mark.validation


def test_exact_model_equals_greedy_individual_optima(fleet_instance):
    _, _, cost = fleet_model(fleet_instance, per_session=True)
    assert cost == pytest.approx(greedy_cost(fleet_instance), rel=1e-7)


@pytest.mark.parametrize("objective", ["cost", "peak"])
def test_aggregate_never_worse_and_gap_shrinks_with_cohorts(fleet_instance, objective):
    _, _, exact = fleet_model(fleet_instance, objective, per_session=True)
    gaps = {}
    for k in (1, 4, 16, 0):  # 0: one cohort per (window, charger)
        m, _, agg = fleet_model(fleet_instance, objective, max_cohorts=k)
        n = m.ev._flex["envs"][0].n_cohorts
        gaps[n] = (exact - agg) / abs(exact)
        assert agg <= exact + 1e-9 * abs(exact), "the aggregate is a relaxation of the per-EV model"
    print(f"{objective}: relative gap by number of cohorts", {k: f"{100 * v:.3f} %" for k, v in gaps.items()})
    counts = sorted(gaps)
    assert gaps[counts[-1]] <= gaps[counts[0]] + 1e-12
    assert gaps[counts[-1]] < 0.02  # the finest aggregate is within 2 % of the exact model


@pytest.mark.parametrize("mode", ["smart", "v2g"])
def test_every_ev_leaves_with_its_energy_and_energy_is_conserved(fleet_instance, mode):
    """Per-session model: rebuild each EV's battery trajectory from the optimal powers and
    check it against its own session data; and the day's energy balance with losses."""
    m, ix, _ = fleet_model(fleet_instance, "cost" if mode == "smart" else "peak", mode=mode, per_session=True)
    b, fleet = m.ev, fleet_instance.ev_fleets[0]
    env = b._flex["envs"][0]
    s = fleet.sessions
    scale = fleet.ev_days / N_EVS * 1e3  # fleet MW (MWh) -> kW (kWh) of the one sample session
    j = 0
    for i, c in enumerate(env.cohorts):  # one cohort per session, in session order
        r = s.iloc[i]
        ch = np.array([pyo.value(b.p_ch[j + t]) for t in range(c.width)])
        dis = np.array([pyo.value(b.p_dis[j + t]) if (j + t) in b.p_dis else 0.0 for t in range(c.width)])
        e = r.energy_arrival_kwh + np.cumsum(fleet.eta_charge * ch - dis / fleet.eta_discharge) * scale
        assert e[-1] >= r.energy_required_kwh - 1e-6
        assert np.all(e <= max(r.battery_kwh, r.energy_arrival_kwh) + 1e-6)
        floor = min(fleet.soc_min * r.battery_kwh, r.energy_arrival_kwh) if (mode == "v2g" and r.v2g) \
            else r.energy_arrival_kwh
        assert np.all(e >= floor - 1e-6)
        assert np.all(ch <= r.charger_kw / scale + 1e-12)
        if mode == "smart" or not r.v2g:
            assert not dis.any()
        j += c.width
    # the balance of the whole day: in = out + losses
    ch = sum(pyo.value(v) for v in b.p_ch.values())
    dis = sum(pyo.value(v) for v in b.p_dis.values()) if len(b.p_dis) else 0.0
    dep = sum(pyo.value(v) for v in b.dep.values())
    arr = sum(c.arrivals_mwh.sum() for c in env.cohorts) * N_EVS
    assert fleet.eta_charge * ch - dis / fleet.eta_discharge == pytest.approx(dep - arr, rel=1e-9)


def test_smart_mode_never_discharges(fleet_instance):
    m, ix, _ = fleet_model(fleet_instance, "peak", mode="smart")
    assert len(m.ev.p_dis) == 0
    df = extract_ev_fleet(m.ev, fleet_instance, ix)["ev_flexibility"]
    assert (df["discharge_mw"] == 0).all()
    # smart charging cannot change how much energy the EVs get, only when
    assert df["charge_mw"].sum() == pytest.approx(df["baseline_mw"].sum(), rel=1e-6)
    assert df["flex_down_mw"].sum() == pytest.approx(df["flex_up_mw"].sum(), rel=1e-6)


def test_v2g_lowers_the_peak_further(fleet_instance):
    m, _, smart = fleet_model(fleet_instance, "peak", mode="smart", max_cohorts=0)
    _, _, v2g = fleet_model(fleet_instance, "peak", mode="v2g", max_cohorts=0)
    uncontrolled = N_EVS * m.ev._flex["envs"][0].baseline_profile_mw().max()
    print(f"fleet peak: uncontrolled {uncontrolled:.4f} MW, smart {smart:.4f} MW, v2g {v2g:.4f} MW")
    assert v2g <= smart + 1e-9
    assert smart < 0.5 * uncontrolled


def test_uncontrolled_load_is_the_simulated_charging(fleet_instance):
    """The uncontrolled fleet is a fixed load: the step-by-step simulation, scaled."""
    ix = deterministic_index(fleet_instance)
    hub = Hub(fleet_instance.network.n_buses, ix.n_ops)
    add_ev_fleet(pyo.Block(concrete=True), fleet_instance, ix, hub, EVFleetConfig(mode="uncontrolled"))
    fleet = fleet_instance.ev_fleets[0]
    ref = simulate_uncontrolled(fleet.sessions)[0] * N_EVS / fleet.ev_days / 1000
    assert np.allclose(hub.p_withdraw[1], ref, atol=1e-12)
    assert not hub.p_terms


def test_build_size_does_not_depend_on_ev_count(fleet_instance):
    import dataclasses

    import pandas as pd

    sizes = []
    for n in (1_000, 100_000):
        fleet = dataclasses.replace(fleet_instance.ev_fleets[0], evs=pd.Series({2025: float(n)}))
        inst = dataclasses.replace(fleet_instance, ev_fleets=(fleet,))
        ix = deterministic_index(inst)
        b = pyo.Block(concrete=True)
        add_ev_fleet(b, inst, ix, Hub(inst.network.n_buses, ix.n_ops), EVFleetConfig())
        sizes.append((len(b.p_ch), len(b.e), len(b.dep), len(b.energy)))
        bound = max(v.ub for v in b.p_ch.values())
        assert bound == pytest.approx(n * max(max(c.p_max_mw) for c in b._flex["envs"][0].cohorts))
    assert sizes[0] == sizes[1]


def test_reactive_power_within_charger_rating(fleet_instance):
    ix = deterministic_index(fleet_instance)
    m = pyo.ConcreteModel()
    m.ev = pyo.Block()
    hub = Hub(fleet_instance.network.n_buses, ix.n_ops)
    add_ev_fleet(m.ev, fleet_instance, ix, hub, EVFleetConfig(reactive=True, charger_kva_per_kw=1.2,
                                                              flex_price_eur_per_mwh=0.0))
    # push for as much reactive power absorption as possible in hour 19
    q19 = sum(hub.q_terms[(1, 19)])
    m.obj = pyo.Objective(expr=q19)
    assert solve_model(m).status == "optimal"
    p19 = pyo.value(sum(hub.p_terms[(1, 19)]))
    s_max = 1.2 * sum(m.ev.p_ch[j].ub for j in m.ev._at[(0, 19)])  # unit 0, op 19
    assert pyo.value(q19) < 0
    assert np.hypot(p19, pyo.value(q19)) <= s_max + 1e-9
    assert np.hypot(p19, pyo.value(q19)) >= np.cos(np.pi / 12) * s_max - 1e-9  # on the polygon


def test_recipe_without_fleet_block_is_refused(fleet_instance):
    from flexplan.assemble import build_model

    with pytest.raises(RecipeError, match="has EV fleets"):
        build_model(fleet_instance, {"name": "x", "blocks": ["demand"]})
