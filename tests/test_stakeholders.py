"""The EV owners' accounts (flexplan.stakeholders): the bills recomputed from the schedules add
up to the model's own cost categories, and on one bus with a flat tariff the bill is the price
times the energy of an independent step-by-step simulation of the sessions."""
from __future__ import annotations

import numpy as np
import pytest

import flexplan as fp
from conftest import CABLE, EVENING, add_fleet, simulate_uncontrolled, write_feeder
from flexplan.stakeholders import distribution, owner_accounts

pytestmark = pytest.mark.component


@pytest.fixture(scope="module")
def two_fleets(tmp_path_factory):
    """b0 - b1 - b2, two fleets (home EVs at b1 and at b2), two stages over ten years."""
    f = write_feeder(tmp_path_factory.mktemp("owners") / "f",
                     lines=[("l1", "b0", "b1", 0.2, 0.1, 0.6, 1.0), ("l2", "b1", "b2", 0.2, 0.1, 0.35, 1.0)],
                     loads=[("b1", 0.2, 0.0), ("b2", 0.15, 0.0)], profile=[("d1", 200, EVENING),
                                                                        ("d2", 165, [0.8] * 24)],
                     economics="base_year = 2025\nend_year = 2034\nstages = [2025, 2030]\ndiscount_rate = 0.05",
                     reinforcement=CABLE, operation='years_per_stage = "last"')
    add_fleet(f, "b1", 120, name="a")
    return fp.load_instance(add_fleet(f, "b2", 150, name="b"))


RECIPE = {"name": "owners", "blocks": ["demand", "tariffs", "ev_fleet", "reinforcement"],
          "tariffs": {"energy_eur_per_mwh": 250.0, "offpeak_eur_per_mwh": 180.0, "offpeak_hours": 8,
                      "network_eur_per_mwh": 40.0, "network_eur_per_kw_year": 40.0,
                      "bus_hourly_eur_per_mwh": {"b2": [15.0] * 12 + [30.0] * 12}},
          "ev_fleet": {"mode": "smart", "flex_price_eur_per_mwh": 60.0}, "reinforcement": {"binary": True}}


def test_owner_accounts_add_up_to_the_cost_categories(two_fleets):
    pm = fp.build_model(two_fleets, RECIPE)
    res = fp.solve(pm)
    assert res.status == "optimal"
    acc = owner_accounts(pm, res)
    cb = res.cost_breakdown_eur
    assert sorted(zip(acc["fleet"], acc["bus"])) == [("a", "b1"), ("b", "b2")]
    assert cb["ev_energy"] > 0 and cb["ev_network_capacity"] > 0 and cb["ev_flexibility"] > 0
    assert acc["energy_bill_eur"].sum() == pytest.approx(cb["ev_energy"], rel=1e-7)
    assert acc["network_capacity_eur"].sum() == pytest.approx(cb["ev_network_capacity"], rel=1e-6)
    assert acc["flexibility_income_eur"].sum() == pytest.approx(cb["ev_flexibility"], rel=1e-6)
    # the network part of the bill: 40 EUR/MWh everywhere, and the nodal adder at b2 (15 or 30 EUR/MWh)
    a, b = acc.iloc[0], acc.iloc[1]
    ev = res.tables["ev_flexibility"]
    ev_a = ev[ev["bus"] == "b1"]
    hours = ev_a["day"].map({"d1": 200.0, "d2": 165.0})
    w = [pm.index.year_weight[(n, int(y))] for n, y in zip(ev_a["node"], ev_a["year"])]  # one scenario: p = 1
    assert a.network_volume_eur == pytest.approx(float((40.0 * ev_a["scheduled_mw"] * hours * w).sum()), rel=1e-9)
    assert b.network_volume_eur > 40.0 / 250.0 * b.energy_bill_eur  # the adder on top
    # the nodal adder makes b2's MWh dearer than b1's
    per_mwh = acc["energy_bill_eur"] / acc["energy_mwh"]
    assert per_mwh.iloc[1] > per_mwh.iloc[0]
    d = distribution(acc)
    assert d["min"] <= d["p10"] <= d["median"] <= d["p90"] <= d["max"]
    assert d["min"] == pytest.approx(acc["per_ev_year_eur"].min())
    assert d["mean"] == pytest.approx(np.average(acc["per_ev_year_eur"], weights=acc["evs"]))


def test_flat_bill_is_price_times_simulated_energy(tmp_path):
    """One bus, 80 uncontrolled EVs, flat 200 EUR/MWh, one year: the bill is 200 × 365 × the
    energy the sessions draw in a step-by-step simulation, per EV-day of the sample."""
    f = write_feeder(tmp_path / "flat", lines=[("l1", "b0", "b1", 0.1, 0.05, 5.0, 1.0)], loads=[("b1", 0.1, 0.0)],
                     economics="base_year = 2025\nend_year = 2025\nstages = [2025]",
                     profile=[("d", 365, [1.0] * 24)])
    inst = fp.load_instance(add_fleet(f, "b1", 80))
    pm = fp.build_model(inst, {"name": "flat", "blocks": ["demand", "tariffs", "ev_fleet"],
                               "tariffs": {"energy_eur_per_mwh": 200.0}, "ev_fleet": {"mode": "uncontrolled"}})
    res = fp.solve(pm)
    acc = owner_accounts(pm, res)
    fleet = inst.ev_fleets[0]
    kw = simulate_uncontrolled(fleet.sessions)[0]
    mwh_per_year = kw.sum() / 1000.0 * 80 / fleet.ev_days * 365
    assert acc["energy_mwh"].iloc[0] == pytest.approx(mwh_per_year, rel=1e-9)
    assert acc["energy_bill_eur"].iloc[0] == pytest.approx(200.0 * mwh_per_year, rel=1e-9)
    assert acc["per_ev_year_eur"].iloc[0] == pytest.approx(200.0 * mwh_per_year / 80, rel=1e-9)
    assert acc["soc_deficit_kwh_h_per_ev_day"].iloc[0] == pytest.approx(0.0, abs=1e-9)
    assert acc["shortfall_mwh"].iloc[0] == pytest.approx(0.0, abs=1e-9)


def test_contract_payments_reach_the_owners_who_contracted(tmp_path):
    """Secure contracts with two fleets at the overloaded bus (the contracts tests' feeder):
    the owners' income is the contracts' availability and utilisation payments, split by what
    each fleet contracted and delivered."""
    f = write_feeder(tmp_path / "c", lines=[("l1", "b0", "b1", 0.2, 0.1, 0.45, 1.0)], loads=[("b1", 0.3, 0.05)],
                     profile=[("day", 365, EVENING)], economics="base_year = 2025\nend_year = 2027\nstages = [2025]",
                     reinforcement=CABLE)
    add_fleet(f, "b1", 120, name="a")
    inst = fp.load_instance(add_fleet(f, "b1", 80, name="b"))
    pm = fp.build_model(inst, {"name": "market", "blocks": ["demand", "ev_fleet", "reinforcement", "contracts"],
                               "ev_fleet": {"mode": "smart", "flex_price_eur_per_mwh": 0.0},
                               "contracts": {"window_start_h": 16, "window_hours": 6, "product": "secure",
                                             "availability_eur_per_mw_h": 2.0, "utilisation_eur_per_mwh": 30.0}})
    res = fp.solve(pm)
    assert res.status == "optimal"
    cb = res.cost_breakdown_eur
    paid = cb.get("contract_availability", 0.0) + cb.get("contract_utilisation", 0.0)
    assert paid > 0, cb
    acc = owner_accounts(pm, res)
    assert acc["flexibility_income_eur"].sum() == pytest.approx(paid, rel=1e-9)
    # by hand: availability pro rata to the MW each fleet contracted, utilisation to its MWh
    t = res.tables["contracts"].groupby("fleet").agg(mw=("contracted_mw", "first"), mwh=("activated_mwh", "sum"))
    hand = cb.get("contract_availability", 0.0) * t["mw"] / t["mw"].sum() \
        + cb.get("contract_utilisation", 0.0) * t["mwh"] / t["mwh"].sum()
    assert acc.set_index("fleet")["flexibility_income_eur"].to_numpy() == pytest.approx(hand.loc[["a", "b"]]
                                                                                          .to_numpy(), rel=1e-9)
    assert acc["soc_deficit_kwh_h_per_ev_day"].max() > 0  # moved out of the window: later than uncontrolled


def test_market_value_lost_to_a_connection_agreement_is_the_capped_arbitrage(tmp_path):
    """On a line that never binds, the aggregator's stacked optimum with and without the DSO's
    network is each session's cheapest charging (the greedy reference of test_wholesale.py);
    a connection agreement capping chargers at 3 kW over 11:00-15:00 (the cheapest, negative-
    price hours) costs exactly what the greedy loses with the charger power capped there."""
    from test_wholesale import N_EVS, PRICE, SESSIONS, fleet_feeder, greedy_arbitrage

    from flexplan.stakeholders import market_value

    inst = fleet_feeder(tmp_path / "free", SESSIONS, N_EVS)
    rec = fp.resolve_recipe("aggregator_stacking")
    rec.options["wholesale"] = {"day_ahead_eur_per_mwh": PRICE, "reserve_eur_per_mw_h": 0.0}
    df = market_value(inst, rec, connection={"peak_cap_kw": 3.0, "peak_start_h": 11, "peak_hours": 4},
                      mip_gap=0.0).set_index("case")
    free = greedy_arbitrage(SESSIONS, PRICE, N_EVS)
    assert df.loc["no_dso_need", "market_cost_eur"] == pytest.approx(free, rel=1e-6)
    assert df.loc["dso_need", "lost_vs_no_dso_need_eur"] == pytest.approx(0.0, abs=1e-6 * abs(free))
    # the capped greedy: each session's charger limited to 3 kW in hours 11..14
    lost = greedy_capped(SESSIONS, PRICE, N_EVS, cap_kw=3.0, hours=range(11, 15)) - free
    print(f"connection agreement precludes {lost:,.2f} EUR/yr of market value (greedy), model "
          f"{df.loc['connection_agreement', 'lost_vs_no_dso_need_eur']:,.2f}")
    assert lost > 1.0
    assert df.loc["connection_agreement", "lost_vs_no_dso_need_eur"] == pytest.approx(lost, rel=1e-6)
    # the uncontrolled EVs pay more than the aggregator at every step
    assert df.loc["uncontrolled", "market_cost_eur"] > df.loc["connection_agreement", "market_cost_eur"]
    assert (df["value_vs_uncontrolled_eur"].drop("uncontrolled") > 0).all()


def greedy_capped(sessions, price, evs, cap_kw, hours, eta=0.95) -> float:
    """test_wholesale's greedy with each charger's power capped at ``cap_kw`` in ``hours``."""
    price = np.asarray(price)
    capped = set(hours)
    total = 0.0
    for r in sessions.itertuples():
        a, d = r.arrival_h, r.departure_h if r.departure_h > r.arrival_h else r.departure_h + 24
        window = np.arange(int(np.ceil(a)), int(np.floor(d))) % 24
        need = r.energy_required_kwh - r.energy_arrival_kwh
        room = max(r.battery_kwh, r.energy_arrival_kwh) - r.energy_arrival_kwh
        stored = 0.0
        for h in window[np.argsort(price[window], kind="stable")]:
            kw = min(r.charger_kw, cap_kw) if h in capped else r.charger_kw
            goal = room if price[h] < 0 else need
            e = min(eta * kw, max(goal - stored, 0.0))
            total += price[h] * e / eta / 1000.0
            stored += e
    return total * 365.0 * evs / sessions["ev"].nunique()


@pytest.mark.parametrize("mode", ["uncontrolled", "smart"])
def test_cohort_bills_add_up_and_follow_the_time_of_use(two_fleets, mode):
    """Per cohort, what the owners pay per MWh under a time-of-use tariff: the cohorts' bills add
    up to ev_energy; uncontrolled, each cohort pays its own uncontrolled charging (the cohort's
    baseline envelope, §4.2) at the tariff's prices, computed here from the envelopes."""
    from flexplan.blocks.ev_fleet import fleet_envelopes
    from flexplan.stakeholders import cohort_prices

    rec = {**RECIPE, "tariffs": {"energy_eur_per_mwh": 250.0, "offpeak_eur_per_mwh": 180.0, "offpeak_hours": 8},
           "ev_fleet": {"mode": mode, "flex_price_eur_per_mwh": 0.0}}
    pm = fp.build_model(two_fleets, rec)
    res = fp.solve(pm)
    cp = cohort_prices(pm, res)
    assert cp["bill_eur"].sum() == pytest.approx(res.cost_breakdown_eur["ev_energy"], rel=1e-7)
    assert cp["eur_per_mwh"].between(180.0 - 1e-6, 250.0 + 1e-6).all()
    if mode == "uncontrolled":
        spec, blk = pm.blocks["ev_fleet"]
        price = blk._flex["tariff"].price
        for f, fleet in enumerate(two_fleets.ev_fleets):
            env = fleet_envelopes(fleet, pm.index, blk._flex["cfg"])
            for k, c in enumerate(env.cohorts):
                steps = c.clock_steps(pm.index.hours)
                hand = float((price[steps] * c.baseline_mw).sum() / c.baseline_mw.sum())
                got = cp[(cp["fleet"] == fleet.name) & (cp["cohort"] == k)]["eur_per_mwh"].iloc[0]
                assert got == pytest.approx(hand, rel=1e-9)
        assert cp["eur_per_mwh"].max() - cp["eur_per_mwh"].min() > 10.0  # evening arrivals pay the peak
    else:  # the DSO's smart charging (no flexibility price) is free to charge at peak prices or not
        assert cp["sessions_per_year"].gt(0).all()
