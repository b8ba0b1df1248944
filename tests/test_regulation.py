"""The regulated DSO's view (flexplan.regulation): the remuneration arithmetic against closed
forms, and on a one-line feeder the plan a CAPEX- or TOTEX-remunerated DSO picks, and its
profit, against a hand computation over the feeder's two possible plans (reinforce the line,
or pay the EVs to move the overload)."""
from __future__ import annotations

import numpy as np
import pytest

import flexplan as fp
from conftest import CABLE, EVENING, add_fleet, write_feeder
from flexplan.economics import annuity
from flexplan.errors import RecipeError
from flexplan.regulation import Regulation, compare_regulated, group_of, regulated_profit

pytestmark = pytest.mark.component

R = 0.035
RATING = 0.45  # MVA, the line b0 - b1
BASE_MW = 0.3  # evening-shaped load at b1 (EVENING factors), no reactive power


@pytest.mark.parametrize("rate,life", [(0.035, 45), (0.07, 10), (0.0, 20)])
def test_rab_revenue_is_worth_one_eur_at_the_cost_of_capital(rate, life):
    """Depreciation plus a return equal to the cost of capital on the opening RAB has a present
    value of exactly the EUR invested, whatever the life."""
    assert Regulation(depreciation_years=life).rab_pv(rate) == pytest.approx(1.0, abs=1e-12)


def test_rab_revenue_two_year_asset_by_hand():
    """D = 2, w = 6 %, r = 4 %: year 1 pays 0.5 + 0.06, year 2 pays 0.5 + 0.03."""
    reg = Regulation(depreciation_years=2, allowed_return=0.06)
    hand = 0.56 / 1.04 + 0.53 / 1.04 ** 2
    assert reg.rab_pv(0.04) == pytest.approx(hand, rel=1e-12)
    k = reg.private_cost(0.04)
    assert k["capex"] == pytest.approx(1 - hand)  # negative: the DSO gains from building
    assert k["opex"] == 1.0
    t = Regulation(regime="totex", depreciation_years=2, allowed_return=0.06, totex_sharing=0.5,
                   capitalisation_rate=0.8).private_cost(0.04)
    assert t["capex"] == t["opex"] == pytest.approx(1 - 0.5 * (0.2 + 0.8 * hand))


def test_categories_are_grouped_by_who_pays():
    assert [group_of(c) for c in ("investment", "contract_availability", "penalty_unserved", "ev_energy",
                                  "battery_ageing", "losses")] == ["capex", "opex", "quality", "others", "others",
                                                                    "others"]


@pytest.mark.parametrize("bad,match", [(dict(regime="rab"), "regime"), (dict(totex_sharing=1.5), "totex_sharing"),
                                       (dict(depreciation_years=0), "depreciation_years"),
                                       (dict(quality_incentive=-1), "quality_incentive")])
def test_bad_regulation_is_refused(bad, match):
    with pytest.raises(RecipeError, match=match):
        Regulation(**bad)


@pytest.fixture(scope="module")
def one_line(tmp_path_factory):
    """b0 - b1 rated 0.45 MVA: 0.3 MW of evening load and 200 home EVs overload it in the
    evening; one modelled year (2025), so the reinforcement costs one annuity."""
    f = write_feeder(tmp_path_factory.mktemp("regulation") / "f", lines=[("l1", "b0", "b1", 0.2, 0.1, RATING, 1.0)],
                     loads=[("b1", BASE_MW, 0.0)], profile=[("day", 365, EVENING)],
                     economics="base_year = 2025\nend_year = 2025\nstages = [2025]", reinforcement=CABLE)
    return fp.load_instance(add_fleet(f, "b1", 200))


def recipe(flex_price):
    return {"name": "flex", "blocks": ["demand", "ev_fleet", "reinforcement"],
            "ev_fleet": {"mode": "smart", "flex_price_eur_per_mwh": flex_price}, "reinforcement": {"binary": True}}


@pytest.fixture(scope="module")
def overload_mwh(one_line):
    """MWh a day above the rating with the EVs uncontrolled: the least downward flexibility
    that keeps the line within its rating (from the fleet's uncontrolled profile, no solve)."""
    res = fp.solve(fp.build_model(one_line, {"name": "uncontrolled", "blocks": ["demand", "ev_fleet"],
                                              "ev_fleet": {"mode": "uncontrolled"}}))
    base = res.tables["ev_flexibility"].groupby("hour")["baseline_mw"].sum().to_numpy()
    return float(np.maximum(BASE_MW * np.array(EVENING) + base - RATING, 0.0).sum())


def hand_choice(reg: Regulation, build_eur: float, flex_eur: float):
    """The plan (``build`` or ``flex``) of least cost to the DSO, and its profit."""
    k = reg.private_cost(R)
    dso = {"build": (k["capex"] + reg.tie_break) * build_eur, "flex": (k["opex"] + reg.tie_break) * flex_eur}
    choice = min(dso, key=dso.get)
    profit = -k["capex"] * build_eur if choice == "build" else -k["opex"] * flex_eur
    return choice, profit


CASES = [  # (flex price EUR/MWh, regulation, social plan, regulated plan) -- the plans checked by hand below
    (5.0, Regulation(), "flex", "build"),  # the fit-and-forget bias: capex free to the DSO, opex not
    (5.0, Regulation(regime="totex"), "flex", "flex"),  # TOTEX: capex and opex alike
    (5.0, Regulation(opex_passthrough=1.0), "flex", "flex"),  # opex passed through: indifferent, tie-break
    (150.0, Regulation(), "build", "build"),  # flexibility dearer than the line: both build
    (5.0, Regulation(allowed_return=0.05), "flex", "build"),  # return above the cost of capital: a gain
]


@pytest.mark.parametrize("price,reg,social_plan,regulated_plan", CASES)
def test_regulated_plan_and_profit_match_the_hand_computation(one_line, overload_mwh, price, reg, social_plan,
                                                              regulated_plan):
    build_eur = annuity(150_000.0, R, 40)  # the cable replacing l1 (1 km), one year
    flex_eur = price * 365 * overload_mwh
    assert ("flex" if flex_eur < build_eur else "build") == social_plan
    choice, profit = hand_choice(reg, build_eur, flex_eur)
    assert choice == regulated_plan
    out = compare_regulated(one_line, recipe(price), reg)
    got = {k: "build" if out[k]["builds"] else "flex" for k in ("social", "regulated")}
    assert got == {"social": social_plan, "regulated": regulated_plan}
    expected_cost = {"build": build_eur, "flex": flex_eur}
    assert out["social"]["social_cost_eur"] == pytest.approx(expected_cost[social_plan], rel=1e-6)
    assert out["regulated"]["social_cost_eur"] == pytest.approx(expected_cost[regulated_plan], rel=1e-6)
    assert out["regulated"]["dso_profit_eur"] == pytest.approx(profit, rel=1e-6, abs=1e-6)
    assert out["bias_eur"] == pytest.approx(expected_cost[regulated_plan] - expected_cost[social_plan], rel=1e-6,
                                            abs=1e-6 * build_eur)  # two solves of one plan agree to ~1e-6
    assert out["bias_mva"] == pytest.approx(6.9282 if (regulated_plan, social_plan) == ("build", "flex") else 0.0,
                                            abs=1e-3)
    print(f"price {price}: social {social_plan} {expected_cost[social_plan]:,.2f} EUR, regulated "
          f"({reg.regime}) {regulated_plan} {expected_cost[regulated_plan]:,.2f} EUR, profit {profit:,.2f} EUR")


def test_profit_of_a_given_plan(one_line, overload_mwh):
    """The social plan's profit under a CAPEX regime is minus its flexibility spend; under TOTEX
    minus the sharing factor times it (w = r)."""
    res = fp.solve(fp.build_model(one_line, recipe(5.0)))
    flex_eur = 5.0 * 365 * overload_mwh
    assert regulated_profit(res, Regulation(), R)["profit_eur"] == pytest.approx(-flex_eur, rel=1e-6)
    assert regulated_profit(res, Regulation(regime="totex", totex_sharing=0.4), R)["profit_eur"] == \
        pytest.approx(-0.4 * flex_eur, rel=1e-6)
