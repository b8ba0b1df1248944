"""Tariffs: the owners' own charging under time-of-use and dynamic prices, the rebound peak
at the off-peak start, staggering, and the bill."""
from __future__ import annotations

import numpy as np
import pytest

import flexplan as fp
from conftest import EVENING, add_fleet, write_feeder
from flexplan.errors import RecipeError

pytestmark = pytest.mark.integration

N_EVS = 200


@pytest.fixture(scope="module")
def feeder(tmp_path_factory):
    f = write_feeder(tmp_path_factory.mktemp("tariffs") / "f",
                     lines=[("l1", "b0", "b1", 0.2, 0.1, 20.0, 1.0), ("l2", "b1", "b2", 0.2, 0.1, 5.0, 1.0)],
                     loads=[("b2", 0.3, 0.05)], profile=[("day", 365, EVENING)],
                     economics="base_year = 2025\nend_year = 2025\nstages = [2025]")
    return fp.load_instance(add_fleet(f, "b2", N_EVS))


def fleet_load(inst, mode, tariffs=None, **ev):
    blocks = ["demand"] + (["tariffs"] if tariffs is not None else []) + ["ev_fleet"]
    rec = {"name": mode, "blocks": blocks, "ev_fleet": {"mode": mode, "flex_price_eur_per_mwh": 0.0, **ev}}
    if tariffs is not None:
        rec["tariffs"] = tariffs
    res = fp.solve(fp.build_model(inst, rec))
    assert res.status == "optimal"
    return res, res.tables["ev_flexibility"].set_index("hour")["scheduled_mw"]


def test_time_of_use_rebound_and_staggering(feeder):
    _, uncontrolled = fleet_load(feeder, "uncontrolled")
    _, tou = fleet_load(feeder, "tariff", {"offpeak_hours": 8, "offpeak_start_h": 22})
    _, staggered = fleet_load(feeder, "tariff", {"offpeak_hours": 8, "offpeak_start_h": 22,
                                                 "stagger_h": [0, 1, 2, 3, 4, 5]})
    print(f"EV peak: uncontrolled {uncontrolled.max():.3f} MW at {uncontrolled.idxmax()}:00, ToU "
          f"{tou.max():.3f} MW at {tou.idxmax()}:00, staggered {staggered.max():.3f} MW at {staggered.idxmax()}:00")
    assert tou.idxmax() in (22, 23)  # the timers start when the cheap window opens
    assert tou.max() > 1.5 * uncontrolled.max()  # the rebound is higher than the evening peak
    assert staggered.max() < 0.6 * tou.max()
    # the energy is the same, only moved
    assert tou.sum() == pytest.approx(uncontrolled.sum(), rel=1e-6)
    assert staggered.sum() == pytest.approx(uncontrolled.sum(), rel=1e-6)


def test_bill_is_price_times_energy(feeder):
    prices = {"offpeak_hours": 8, "offpeak_start_h": 22, "energy_eur_per_mwh": 300.0, "offpeak_eur_per_mwh": 100.0}
    res, load = fleet_load(feeder, "tariff", prices)
    hourly = np.where((np.arange(24) >= 22) | (np.arange(24) < 6), 100.0, 300.0)
    assert res.cost_breakdown_eur["ev_energy"] == pytest.approx((hourly * load.sort_index().to_numpy()).sum() * 365,
                                                                rel=1e-9)
    # the owners' response pays less than charging on arrival at the same prices
    rec = {"name": "u", "blocks": ["demand", "tariffs", "ev_fleet"], "tariffs": prices,
           "ev_fleet": {"mode": "uncontrolled"}}
    bill_unc = fp.solve(fp.build_model(feeder, rec)).cost_breakdown_eur["ev_energy"]
    assert res.cost_breakdown_eur["ev_energy"] < bill_unc


def test_dynamic_prices_response_is_each_evs_cheapest_hours(feeder):
    """With one cohort per session the owners' response is exact: every EV charges in its
    cheapest plugged-in hours (greedy, computed here session by session)."""
    price = [30, 25, 20, 20, 25, 40, 60, 80, 70, 60, 50, 40, 40, 45, 50, 60, 90, 120, 110, 90, 70, 50, 40, 35.0]
    res, load = fleet_load(feeder, "tariff", {"hourly_eur_per_mwh": price}, per_session=True)
    fleet = feeder.ev_fleets[0]
    p = np.asarray(price)
    bill = 0.0
    for r in fleet.sessions.itertuples():
        need = r.energy_required_kwh - r.energy_arrival_kwh
        hours = (r.start + np.arange(r.length)) % 24
        for h in hours[np.argsort(p[hours], kind="stable")]:
            e = min(need, fleet.eta_charge * r.charger_kw)
            bill += p[h] * e / fleet.eta_charge / 1000.0
            need -= e
            if need <= 1e-12:
                break
    greedy = bill * N_EVS / fleet.ev_days * 365
    assert res.cost_breakdown_eur["ev_energy"] == pytest.approx(greedy, rel=1e-4)


def test_tariff_mode_needs_the_tariffs_block(feeder):
    with pytest.raises(RecipeError, match="needs the 'tariffs' block"):
        fp.build_model(feeder, {"name": "x", "blocks": ["demand", "ev_fleet"], "ev_fleet": {"mode": "tariff"}})
    with pytest.raises(RecipeError, match="stagger_h"):
        fp.build_model(feeder, {"name": "x", "blocks": ["demand", "tariffs", "ev_fleet"],
                                "tariffs": {"stagger_h": [30]}})


# ------------------------------------------------------------------ connection agreements, grid code
def test_connection_caps_hold_every_hour(feeder):
    cap_kw = 3.7
    for mode in ("uncontrolled", "smart"):
        rec = {"name": "c", "blocks": ["demand", "connection", "ev_fleet"], "connection": {"peak_cap_kw": cap_kw},
               "ev_fleet": {"mode": mode, "flex_price_eur_per_mwh": 1.0}}
        pm = fp.build_model(feeder, rec)
        res = fp.solve(pm)
        load = res.tables["ev_flexibility"].set_index("hour")["charge_mw"]
        env = pm.blocks["ev_fleet"][1]._flex["envs"][0]
        plugged = env.per_clock_step(lambda c: c.plugged) * N_EVS  # EVs plugged in per hour
        for h in (18, 19, 20):
            assert load[h] <= cap_kw / 1000 * plugged[h] + 1e-9
        _, free = fleet_load(feeder, mode)
        assert load.sum() == pytest.approx(free.sum(), rel=1e-6)  # the energy still arrives
        if mode == "uncontrolled":  # and the cap bites in the evening
            assert load.sort_index().loc[18:20].sum() < free.sort_index().loc[18:20].sum() - 0.05


def test_connection_caps_that_starve_evs_are_refused(feeder):
    rec = {"name": "c", "blocks": ["demand", "connection", "ev_fleet"], "connection": {"cap_kw_by_hour": [0.5] * 24},
           "ev_fleet": {"mode": "uncontrolled"}}
    with pytest.raises(RecipeError, match="fleet 'home'.*cannot charge the energy"):
        fp.build_model(feeder, rec)


def test_grid_code_reactive_power_raises_the_minimum_voltage(tmp_path):
    f = write_feeder(tmp_path / "weak", lines=[("l1", "b0", "b1", 3.0, 3.0, 20.0, 5.0)], loads=[("b1", 0.5, 0.1)],
                     profile=[("day", 365, EVENING)], economics="base_year = 2025\nend_year = 2025\nstages = [2025]")
    inst = fp.load_instance(add_fleet(f, "b1", 300))
    unity = fp.solve(fp.build_model(inst, {"name": "u", "blocks": ["demand", "ev_fleet"],
                                           "ev_fleet": {"mode": "uncontrolled"}}))
    coded = fp.solve(fp.build_model(inst, {"name": "g", "blocks": ["demand", "grid_code", "ev_fleet"],
                                           "ev_fleet": {"mode": "uncontrolled"}, "grid_code": {"power_factor": 0.9}}))
    v0, v1 = unity.voltages["v_pu"].min(), coded.voltages["v_pu"].min()
    print(f"minimum voltage: unity power factor {v0:.4f} pu, cos phi 0.9 capacitive {v1:.4f} pu")
    assert v1 > v0 + 1e-3
    # the raise is what LinDistFlow gives for the extra reactive injection x Q at the EV peak hour
    ev = coded.tables["ev_flexibility"].set_index("hour")["charge_mw"]
    h = int(unity.voltages.loc[unity.voltages["v_pu"].idxmin(), "hour"])
    x_pu = 3.0 / 20.0 ** 2  # ohm -> pu on 1 MVA at 20 kV
    q = np.tan(np.arccos(0.9)) * ev[h]
    vu = unity.voltages.set_index("hour").query("bus == 'b1'")["v_pu"][h]
    vc = coded.voltages.set_index("hour").query("bus == 'b1'")["v_pu"][h]
    assert vc ** 2 - vu ** 2 == pytest.approx(2 * x_pu * q, rel=1e-6)


def test_capacity_tariff_charges_the_fleet_peak(feeder):
    fee = 40.0  # EUR/kW-year
    prices = {"energy_eur_per_mwh": 100.0, "network_eur_per_kw_year": fee}
    for mode in ("uncontrolled", "smart"):
        rec = {"name": "c", "blocks": ["demand", "tariffs", "ev_fleet"], "tariffs": prices,
               "ev_fleet": {"mode": mode, "flex_price_eur_per_mwh": 0.0}}
        res = fp.solve(fp.build_model(feeder, rec))
        peak = res.tables["ev_flexibility"]["charge_mw"].max()
        assert res.cost_breakdown_eur["ev_network_capacity"] == pytest.approx(fee * 1000 * peak, rel=1e-6)
        if mode == "uncontrolled":
            unc_peak = peak
    assert peak < unc_peak  # under a capacity tariff the smart fleet flattens its charging


def test_nodal_tariff_moves_only_its_bus_and_bills_at_its_price(tmp_path):
    """A nodal adder of 1000 EUR/MWh in 17:00-22:00 at b2 only: the fleet there charges less in
    those hours (what remains is EVs that arrive and leave inside them), the fleet at b1 (flat
    price) charges as before; each owner's bill is its charging
    times the price at its own bus (hand sum over the schedule)."""
    f = write_feeder(tmp_path / "f", lines=[("l1", "b0", "b1", 0.2, 0.1, 20.0, 1.0), ("l2", "b1", "b2", 0.2, 0.1, 20.0, 1.0)],
                     loads=[("b2", 0.3, 0.05)], profile=[("day", 365, EVENING)],
                     economics="base_year = 2025\nend_year = 2025\nstages = [2025]")
    add_fleet(f, "b1", 100, name="near")
    inst = fp.load_instance(add_fleet(f, "b2", 100, name="far"))
    adder = [1000.0 if 17 <= h < 22 else 0.0 for h in range(24)]
    flat = {"energy_eur_per_mwh": 200.0}
    res = {}
    for name, tariffs in (("flat", flat), ("nodal", {**flat, "bus_hourly_eur_per_mwh": {"b2": adder}})):
        rec = {"name": name, "blocks": ["demand", "tariffs", "ev_fleet"], "tariffs": tariffs,
               "ev_fleet": {"mode": "tariff", "flex_price_eur_per_mwh": 0.0}}
        r = fp.solve(fp.build_model(inst, rec))
        assert r.status == "optimal"
        res[name] = r
    ev = {k: r.tables["ev_flexibility"] for k, r in res.items()}
    near = {k: e[e.fleet == "near"].set_index("hour")["scheduled_mw"] for k, e in ev.items()}
    far = {k: e[e.fleet == "far"].set_index("hour")["scheduled_mw"] for k, e in ev.items()}
    np.testing.assert_allclose(near["nodal"].to_numpy(), near["flat"].to_numpy(), atol=1e-12)
    assert far["nodal"].loc[17:21].sum() < 0.5 * far["flat"].loc[17:21].sum()
    price = 200.0 + np.array(adder)
    hand = 365 * (near["nodal"].sort_index().to_numpy() * 200.0 + far["nodal"].sort_index().to_numpy() * price).sum()
    assert res["nodal"].cost_breakdown_eur["ev_energy"] == pytest.approx(hand, rel=1e-9)
    with pytest.raises(RecipeError, match="bus 'b9' is not a bus"):
        fp.build_model(inst, {"blocks": ["demand", "tariffs", "ev_fleet"], "ev_fleet": {"mode": "tariff"},
                              "tariffs": {"bus_hourly_eur_per_mwh": {"b9": adder}}})
