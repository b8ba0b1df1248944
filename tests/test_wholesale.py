"""The wholesale block (the aggregator's value stacking) against references computed without
the model: each session's cheapest charging by a greedy fill, and a reserve case on paper."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import flexplan as fp
from conftest import CABLE, write_feeder
from flexplan.errors import RecipeError

pytestmark = pytest.mark.component

ETA = 0.95  # the fleets' default charging efficiency (docs/formulation.md §4.7)
DAYS = 365.0
#: EUR/MWh per hour: cheap nights, negative prices at midday (solar), a high evening peak
PRICE = [40.0, 35.0, 30.0, 28.0, 30.0, 38.0, 55.0, 70.0, 65.0, 50.0, 30.0, 10.0,
         -5.0, -10.0, -2.0, 15.0, 45.0, 90.0, 120.0, 110.0, 85.0, 60.0, 50.0, 45.0]
#: four sessions with distinct windows (so every cohort is one session: the aggregate is exact):
#: home overnight, at work across the negative-price hours, home late evening, a midday stop
SESSIONS = pd.DataFrame({
    "ev": [1, 2, 3, 4],
    "arrival_h": [18.0, 8.0, 20.0, 11.0],
    "departure_h": [7.0, 17.0, 6.0, 15.0],
    "energy_arrival_kwh": [20.0, 30.0, 10.0, 30.0],
    "energy_required_kwh": [40.0, 50.0, 36.0, 40.0],
    "battery_kwh": [50.0, 60.0, 40.0, 40.0],
    "charger_kw": [7.0, 11.0, 3.7, 7.0]})
N_EVS = 40  # EVs at the bus; the sample covers 4 EV-days, so each session stands for 10 EVs
ONE_YEAR = "base_year = 2025\nend_year = 2025\nstages = [2025]"
#: a cable far dearer than any market value lost, so that a binding line stays as it is
DEAR_CABLE = CABLE.replace("capex_eur_per_km = 150000", "capex_eur_per_km = 1e9")


def fleet_feeder(folder, sessions, evs, rating_mva=10.0, load_mw=0.05):
    """b0 - b1 with a flat load and a fleet of ``evs`` EVs from ``sessions`` at b1, one day of 24 h."""
    f = write_feeder(folder, lines=[("l1", "b0", "b1", 0.2, 0.1, rating_mva, 1.0)], loads=[("b1", load_mw, 0.0)],
                     profile=[("day", 365, [1.0] * 24)], economics=ONE_YEAR, reinforcement=DEAR_CABLE,
                     limits="v_min_pu = 0.8\nv_max_pu = 1.2")
    sessions.to_csv(f / "sessions.csv", index=False)
    with open(f / "instance.toml", "a") as fh:
        fh.write(f'\n[[ev_fleets]]\nname = "fleet"\nbus = "b1"\nsessions = "sessions.csv"\n'
                 f'ev_days = {sessions["ev"].nunique()}\nevs = {{2025 = {evs}}}\n')
    return fp.load_instance(f)


def stacking(**wholesale):
    """The shipped recipe with these wholesale options."""
    rec = fp.resolve_recipe("aggregator_stacking")
    rec.options["wholesale"] = dict(wholesale)
    return rec


def solve(inst, rec):
    pm = fp.build_model(inst, rec)
    res = fp.solve(pm, mip_gap=0.0)
    assert res.status == "optimal"
    return pm, res


def cost(res, category) -> float:
    c = res.costs[res.costs["category"] == category]
    return float(c["cost_eur"].sum())


def greedy_arbitrage(sessions, price, evs, soc_max=1.0) -> float:
    """Each session on its own (EUR per year for the fleet): charge at the charger's full
    power in its plugged-in hours, cheapest first, until it has what it needs at departure;
    where the price is negative keep charging until the battery is full (each such MWh earns
    money).  The optimum of one session: a continuous knapsack over its hours."""
    price = np.asarray(price)
    total = 0.0
    for r in sessions.itertuples():
        a, d = r.arrival_h, r.departure_h if r.departure_h > r.arrival_h else r.departure_h + 24
        hours = np.arange(int(np.ceil(a)), int(np.floor(d))) % 24
        need = r.energy_required_kwh - r.energy_arrival_kwh  # kWh into the battery, at least
        room = max(soc_max * r.battery_kwh, r.energy_arrival_kwh) - r.energy_arrival_kwh  # at most
        stored = 0.0
        for h in hours[np.argsort(price[hours], kind="stable")]:
            goal = room if price[h] < 0 else need
            e = min(ETA * r.charger_kw * 1.0, max(goal - stored, 0.0))
            total += price[h] * e / ETA / 1000.0  # EUR for the MWh drawn from the grid
            stored += e
    return total * DAYS * evs / sessions["ev"].nunique()


@pytest.fixture(scope="module")
def free(tmp_path_factory):
    return fleet_feeder(tmp_path_factory.mktemp("wholesale") / "free", SESSIONS, N_EVS)


def test_stacked_value_without_a_dso_need_is_the_standalone_arbitrage(free, tmp_path):
    """A 10 MVA line never binds: the fleet's market cost is the sum of its sessions' own
    cheapest charging (negative-price hours filled to a full battery).  With the line rated
    0.17 MVA (the 0.05 MW load and 0.12 MW of charging, below the arbitrage's peak), the DSO's
    need moves charging to dearer hours (no reinforcement: the cable costs 1e9 EUR/km, and no
    overload): the market value lost is positive."""
    reference = greedy_arbitrage(SESSIONS, PRICE, N_EVS)
    pm, res = solve(free, stacking(day_ahead_eur_per_mwh=PRICE, reserve_eur_per_mw_h=0.0))
    model = cost(res, "market_energy")
    print(f"market_energy: reference {reference:.6f} EUR/yr, model {model:.6f} EUR/yr")
    assert model == pytest.approx(reference, rel=1e-6)
    assert res.cost_breakdown_eur["market_energy"] == pytest.approx(reference, rel=1e-6)  # one year at the base year
    assert "market_reserve" not in res.cost_breakdown_eur
    assert not hasattr(pm.blocks["wholesale"][1], "reserve")  # no reserve price, no reserve variables
    # the table and the summary agree with the cost
    t = res.tables["market"]
    assert (t["reserve_mw"] == 0).all() and (t["discharge_mw"] == 0).all()
    assert float((t["price_eur_per_mwh"] * t["charge_mw"]).sum() * DAYS) == pytest.approx(reference, rel=1e-6)
    years = res.extra["market"]["years"]
    assert years[0]["energy_cost_eur_per_year"] == pytest.approx(reference, rel=1e-6)
    # the energy the EVs get: at least their needs, and in the negative hours as much as the batteries take
    assert years[0]["charged_mwh_per_year"] >= float(
        (SESSIONS.energy_required_kwh - SESSIONS.energy_arrival_kwh).sum()) / ETA / 1e3 * DAYS * N_EVS / 4 - 1e-6

    peak = float(t.groupby("hour")["charge_mw"].sum().max())
    assert peak > 0.12 + 0.05  # the arbitrage lines the fleet's charging up in the cheapest hours
    bound = fleet_feeder(tmp_path / "bound", SESSIONS, N_EVS, rating_mva=0.05 + 0.12)
    _, tight = solve(bound, stacking(day_ahead_eur_per_mwh=PRICE, reserve_eur_per_mw_h=0.0))
    assert tight.builds.empty
    assert tight.cost_breakdown_eur.get("penalty_overload", 0.0) == pytest.approx(0.0, abs=1e-6)
    loading = tight.line_loading
    assert loading["loading_pct"].max() == pytest.approx(100.0, abs=1e-4)  # the line binds
    lost = cost(tight, "market_energy") - model
    print(f"market value lost to the DSO's need (line 0.17 MVA): {lost:.2f} EUR/yr "
          f"({cost(tight, 'market_energy'):.2f} vs {model:.2f})")
    assert lost > 1.0


#: hours 0..3: 60, 20, 30, 80 EUR/MWh; the EVs charge in two of them, everything else is dear
PAPER_PRICE = [60.0, 20.0, 30.0, 80.0] + [200.0] * 20
P_KW, N_PAPER = 7.0, 10
#: one session, plugged in 0:00-4:00, needing exactly two hours at full power to be full
PAPER = pd.DataFrame({"ev": [1], "arrival_h": [0.0], "departure_h": [4.0],
                      "energy_arrival_kwh": [40.0 - ETA * P_KW * 2], "energy_required_kwh": [40.0],
                      "battery_kwh": [40.0], "charger_kw": [P_KW]})


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    return fleet_feeder(tmp_path_factory.mktemp("wholesale") / "paper", PAPER, N_PAPER)


@pytest.mark.parametrize("rho", [45.0, 55.0])
def test_reserve_holds_charge_where_it_pays(paper, rho):
    """10 EVs of 7 kW (0.07 MW) must charge two full hours out of 0..3 (prices 60, 20, 30, 80);
    reserve may be sold only in hour 3.  Without reserve they charge in hours 1 and 2
    (20 + 30).  Selling ρ per MW in hour 3 means charging there instead of in hour 2: it
    costs 80 − 30 = 50 EUR/MWh more and earns ρ.  So ρ = 45: no reserve, energy
    (20 + 30) · 0.07 · 365; ρ = 55: reserve 0.07 MW in hour 3, energy (20 + 80) · 0.07 · 365
    and revenue 55 · 0.07 · 365."""
    mw = N_PAPER * P_KW / 1000.0
    pm, res = solve(paper, stacking(day_ahead_eur_per_mwh=PAPER_PRICE, reserve_eur_per_mw_h=rho, reserve_hours=[3]))
    t = res.tables["market"].set_index("hour")
    held = rho > 50.0
    assert t.loc[3, "reserve_mw"] == pytest.approx(mw if held else 0.0, abs=1e-9)
    assert t.drop(index=3)["reserve_mw"].abs().max() == 0.0  # only hour 3 is offered
    charging = [1, 3] if held else [1, 2]
    for h in range(4):
        assert t.loc[h, "charge_mw"] == pytest.approx(mw if h in charging else 0.0, abs=1e-9)
    energy = sum(PAPER_PRICE[h] for h in charging) * mw * DAYS
    assert cost(res, "market_energy") == pytest.approx(energy, rel=1e-9)
    assert cost(res, "market_reserve") == pytest.approx(-rho * mw * DAYS if held else 0.0, abs=1e-6)
    year = res.extra["market"]["years"][0]
    assert year["reserve_mwh_per_year"] == pytest.approx(mw * DAYS if held else 0.0, abs=1e-9)
    assert year["reserve_revenue_eur_per_year"] == pytest.approx(-cost(res, "market_reserve"), abs=1e-6)
    b = pm.blocks["wholesale"][1]
    assert len(b.reserve) == 1  # one variable: the fleet's one bus in hour 3
    print(f"rho {rho}: reserve {t.loc[3, 'reserve_mw']:.4f} MW, energy {cost(res, 'market_energy'):.2f} EUR/yr, "
          f"reserve {cost(res, 'market_reserve'):.2f} EUR/yr")


def test_uncontrolled_charging_is_priced_and_bounds_the_reserve(paper):
    """Uncontrolled, the EVs charge at full power from arrival: hours 0 and 1 (60 + 20).  Its
    charge is a number: the energy is priced, and the reserve in hour 1 is that number."""
    mw = N_PAPER * P_KW / 1000.0
    rec = stacking(day_ahead_eur_per_mwh=PAPER_PRICE, reserve_eur_per_mw_h=10.0, reserve_hours=[1, 3])
    rec.options["ev_fleet"] = {"mode": "uncontrolled", "flex_price_eur_per_mwh": 0.0}
    _, res = solve(paper, rec)
    t = res.tables["market"].set_index("hour")
    assert cost(res, "market_energy") == pytest.approx((60.0 + 20.0) * mw * DAYS, rel=1e-6)
    assert t.loc[1, "reserve_mw"] == pytest.approx(mw, rel=1e-6)
    assert t.loc[3, "reserve_mw"] == 0.0  # nothing charges in hour 3
    assert cost(res, "market_reserve") == pytest.approx(-10.0 * mw * DAYS, rel=1e-6)


@pytest.mark.parametrize("options, message", [
    ({"reserve_eur_per_mw_h": -1.0}, r"wholesale\.reserve_eur_per_mw_h must be a number >= 0"),
    ({"day_ahead_eur_per_mwh": [50.0] * 23}, r"wholesale\.day_ahead_eur_per_mwh has 23 prices.*24 steps"),
    ({"reserve_hours": [24]}, r"wholesale\.reserve_hours: 24 is not a step"),
    ({"reserve_hours": [-1]}, r"wholesale\.reserve_hours must be steps"),
    ({"day_ahead_eur_per_mwh": [50.0] * 23 + ["x"]}, r"option 'day_ahead_eur_per_mwh' of 'wholesale'.*item 23"),
    ({"day_ahead_eur_per_mwh": [50.0] * 23 + [float("nan")]}, r"day_ahead_eur_per_mwh must be finite numbers"),
])
def test_bad_options_are_refused_naming_them(paper, options, message):
    with pytest.raises(RecipeError, match=message):
        fp.build_model(paper, stacking(**options))


def test_default_prices_need_an_hourly_day(tmp_path):
    """The default series is 24 hourly prices: a day of 12 two-hour steps must give its own."""
    f = write_feeder(tmp_path / "half", lines=[("l1", "b0", "b1", 0.2, 0.1, 10.0, 1.0)], loads=[("b1", 0.05, 0.0)],
                     profile=[("day", 365, [1.0] * 12)], economics=ONE_YEAR)
    inst = fp.load_instance(f)
    with pytest.raises(RecipeError, match=r"wholesale\.day_ahead_eur_per_mwh: the default series has 24 .* 12 steps"):
        fp.build_model(inst, {"blocks": ["demand", "wholesale", "ev_fleet"]})
