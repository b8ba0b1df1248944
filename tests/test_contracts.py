"""Market-based contracts: payment arithmetic, activation within the contract, undeliverable
activations reported, and the switch to reinforcement at the analytical deferral value."""
from __future__ import annotations

import json

import pyomo.environ as pyo
import pytest

import flexplan as fp
from conftest import CABLE, EVENING, add_fleet, write_feeder

pytestmark = pytest.mark.integration

WINDOW = {"window_start_h": 16, "window_hours": 6}


@pytest.fixture(scope="module")
def one_line(tmp_path_factory):
    """b0 - b1: 0.3 MW of evening load and 200 home EVs; the line is rated 0.45 MVA, below the
    uncontrolled evening peak (~0.53 MW)."""
    f = write_feeder(tmp_path_factory.mktemp("contracts") / "f", lines=[("l1", "b0", "b1", 0.2, 0.1, 0.45, 1.0)],
                     loads=[("b1", 0.3, 0.05)], profile=[("day", 365, EVENING)],
                     economics="base_year = 2025\nend_year = 2034\nstages = [2025]", reinforcement=CABLE)
    return fp.load_instance(add_fleet(f, "b1", 200))


def solve(inst, **contract):
    rec = {"name": "market", "blocks": ["demand", "ev_fleet", "reinforcement", "contracts"],
           "ev_fleet": {"mode": "smart", "flex_price_eur_per_mwh": 0.0}, "contracts": {**WINDOW, **contract}}
    pm = fp.build_model(inst, rec)
    res = fp.solve(pm)
    assert res.status == "optimal"
    return pm, res


def test_payments_are_fee_times_quantity(one_line):
    fee_a, fee_u = 5.0, 10.0
    pm, res = solve(one_line, product="secure", availability_eur_per_mw_h=fee_a, utilisation_eur_per_mwh=fee_u)
    assert res.builds.empty
    c = res.tables["contracts"]
    mw = c["contracted_mw"].iloc[0]
    assert mw > 0
    costs = res.costs.set_index(["category", "year"])["cost_eur"]
    for row in c.itertuples():
        # availability = fee x contracted MW x window hours x days
        assert costs[("contract_availability", row.year)] == pytest.approx(fee_a * mw * 6 * 365, rel=1e-9)
        # utilisation = fee x activated MWh
        assert costs[("contract_utilisation", row.year)] == pytest.approx(fee_u * row.activated_mwh, rel=1e-9)
    # activation never exceeds the contract, in any hour
    b = pm.blocks["contracts"][1]
    for i in b.activated:
        assert pyo.value(b.activated[i]) <= pyo.value(b.contracted[b._contracts["gid"][i]]) + 1e-9
    # the line stays within its rating without reinforcement
    assert res.line_loading["loading_pct"].max() <= 100 + 1e-6


def test_undeliverable_contract_is_reported(one_line):
    """A 1 MW contract signed beforehand, far above what 200 EVs charge in the window: the
    fleet delivers what it can, the rest is reported as undelivered."""
    _, res = solve(one_line, product="sustain", contracted_mw=1.0)
    c = res.tables["contracts"]
    assert (c["undelivered_mwh"] > 100).all()
    assert res.extra["contracts"]["undelivered_mwh"] == pytest.approx(c["undelivered_mwh"].sum())
    assert res.cost_breakdown_eur["contract_penalty"] > 0
    assert c["reliable_limit_mw"].iloc[0] < 1.0


def test_switch_to_reinforcement_at_the_deferral_value(one_line):
    """Secure availability fee F (no utilisation fee): contracts cost F x C x 6 h x 365 d a year,
    the reinforcement its annuities; the plan switches where they are equal."""
    _, cheap = solve(one_line, product="secure", availability_eur_per_mw_h=1.0, utilisation_eur_per_mwh=0.0)
    need = cheap.tables["contracts"]["contracted_mw"].iloc[0]
    r = 0.035
    a = 150_000 * r / (1 - (1 + r) ** -40)
    pv_reinforce = sum(a / (1 + r) ** k for k in range(10))
    pv_hours = sum(6 * 365 / (1 + r) ** k for k in range(10))
    analytical = pv_reinforce / (need * pv_hours)
    lo, hi = 1.0, 10 * analytical
    for _ in range(12):  # bisection on the fee: does the plan still contract?
        mid = (lo + hi) / 2
        _, res = solve(one_line, product="secure", availability_eur_per_mw_h=mid, utilisation_eur_per_mwh=0.0)
        if res.builds.empty:
            lo = mid
        else:
            hi = mid
    print(f"contracted {need:.4f} MW; switching fee {lo:.2f}..{hi:.2f} EUR/MW/h, analytical {analytical:.2f}")
    assert (lo + hi) / 2 == pytest.approx(analytical, rel=0.02)


def test_frameworks_command_writes_the_comparison(tmp_path):
    """`flexplan frameworks` on a two-line feeder: one row per framework, the columns the
    issue names, costs that add up, and the plot."""
    import pandas as pd

    from flexplan.cli import main

    f = write_feeder(tmp_path / "fw", lines=[("l1", "b0", "b1", 0.2, 0.1, 20.0, 1.0),
                                             ("l2", "b1", "b2", 0.2, 0.1, 0.45, 1.0)],
                     loads=[("b2", 0.3, 0.05)], profile=[("day", 365, EVENING)],
                     economics="base_year = 2025\nend_year = 2029\nstages = [2025]", reinforcement=CABLE)
    add_fleet(f, "b2", 200)
    out = tmp_path / "out"
    assert main(["frameworks", str(f), "--out", str(out), "--regulation", "capex", "--stacking"]) == 0
    df = pd.read_csv(out / "frameworks.csv")
    assert df["framework"].tolist() == ["reinforce_only", "rule_based", "network_tariff", "connection_agreement",
                                        "market", "dlmp_tariff"]
    for col in ("dso_investment_eur", "dso_flexibility_payments_eur", "ev_owner_energy_cost_eur",
                "ev_owner_ageing_eur", "total_system_cost_eur", "peak_mw", "min_voltage_pu", "unserved_mwh"):
        assert df[col].notna().all(), col
    parts = df[["dso_investment_eur", "dso_flexibility_payments_eur", "ev_owner_energy_cost_eur",
                "ev_owner_ageing_eur", "penalties_eur"]].sum(axis=1)
    assert parts.to_numpy() == pytest.approx(df["total_system_cost_eur"].to_numpy(), rel=1e-6)
    # the staggered time-of-use tariff moves charging into the night: lower peak, no line
    tou = df.set_index("framework").loc["network_tariff"]
    ref = df.set_index("framework").loc["reinforce_only"]
    assert tou.peak_mw < ref.peak_mw and tou.dso_investment_eur < ref.dso_investment_eur
    # the nodal tariff prices l2's evening congestion at b2 (the existing feeder's nodal prices
    # under uncontrolled charging): the owners leave exactly the priced hours; one-shot, it
    # moves the peak to the first unpriced hour (a rebound, as an unstaggered time of use)
    assert json.loads((out / "dlmp_tariff" / "summary.json").read_text())["model"] == "framework_dlmp_tariff"
    ev = {k: pd.read_csv(out / k / "ev_flexibility.csv").groupby("hour")["scheduled_mw"].sum()
          for k in ("reinforce_only", "dlmp_tariff")}
    evening = list(range(17, 22))
    assert ev["dlmp_tariff"].loc[evening].sum() < 0.5 * ev["reinforce_only"].loc[evening].sum()
    assert (out / "frameworks.png").stat().st_size > 20_000
    assert (out / "market" / "summary.json").exists()
    # who pays and who gains: the owners' table adds up to each framework's owner energy bill;
    # the DSO's CAPEX-regime profit is minus its flexibility spend (its line earns the cost of
    # capital: no profit); the regulated plans are never cheaper for society than the social ones
    owners = pd.read_csv(out / "owners.csv")
    bills = owners.groupby("framework", sort=False)[["energy_bill_eur", "network_capacity_eur"]].sum().sum(axis=1)
    assert bills.to_numpy() == pytest.approx(df.set_index("framework").loc[bills.index, "ev_owner_energy_cost_eur"]
                                             .to_numpy(), rel=1e-6)
    flex = df["dso_flexibility_payments_eur"] + df["penalties_eur"]
    assert df["dso_profit_capex_eur"].to_numpy() == pytest.approx(-flex.to_numpy(), rel=1e-6, abs=1e-6)
    assert (df["fit_and_forget_eur"] >= -0.01 * df["total_system_cost_eur"]).all()  # within the 1 % gap
    # the DSO's plan is at least as profitable for it as the social plan (it starts from it)
    assert (df["regulated_dso_profit_eur"] >= df["dso_profit_capex_eur"] - 1e-6 * df["total_system_cost_eur"]).all()
    # no PV or heat pumps here: everything the DSO pays for flexibility goes to the EV owners
    assert df["owner_flexibility_income_eur"].to_numpy() == pytest.approx(df["dso_flexibility_payments_eur"]
                                                                          .to_numpy(), rel=1e-6, abs=1e-6)
    assert df["owner_net_p10_eur_per_ev_year"].le(df["owner_net_p90_eur_per_ev_year"] + 1e-9).all()
    assert (out / "stakeholders.png").stat().st_size > 20_000
    # what the cohorts pay per MWh: the flat 270 EUR/MWh everywhere but under the time of use
    cohorts = pd.read_csv(out / "cohorts.csv")
    flat = cohorts[cohorts["framework"] == "market"]["eur_per_mwh"]
    assert flat.to_numpy() == pytest.approx(270.0, rel=1e-9)
    tou = df.set_index("framework").loc["network_tariff"]
    assert 207.0 - 1e-6 <= tou.owner_price_p10_eur_per_mwh <= tou.owner_price_p90_eur_per_mwh <= 270.0 + 1e-6
    stack = pd.read_csv(out / "stacking.csv").set_index("case")
    assert stack.index.tolist() == ["uncontrolled", "no_dso_need", "dso_need", "connection_agreement"]
    assert (stack["lost_vs_no_dso_need_eur"] >= -0.01 * stack["market_cost_eur"].abs()).all()  # within the 1 % gap
    # an instance without EVs is refused with a clear message
    no_ev = write_feeder(tmp_path / "noev", lines=[("l1", "b0", "b1", 0.2, 0.1, 20.0, 1.0)], loads=[("b1", 0.3, 0.05)])
    assert main(["frameworks", str(no_ev), "--out", str(tmp_path / "o2")]) == 2


def test_shortfall_within_tolerance_is_free(one_line):
    """WPD's rule: the first 5 % of a scheduled contract may go undelivered without penalty."""
    _, res = solve(one_line, product="sustain", contracted_mw=1.0)
    c = res.tables["contracts"]
    pm, strict = solve(one_line, product="sustain", contracted_mw=1.0, tolerance=0.0)
    assert strict.cost_breakdown_eur["contract_penalty"] > res.cost_breakdown_eur["contract_penalty"]
    # the difference is the penalty on 5 % of 1 MW over the window hours, every day
    sustain_per_mwh = 47.58 * 1.16 * 1000 / (6 * 365)
    r = 0.035
    years = sum(1 / (1 + r) ** k for k in range(10))
    tolerated = 3 * sustain_per_mwh * 0.05 * 1.0 * 6 * 365 * years
    assert strict.cost_breakdown_eur["contract_penalty"] - res.cost_breakdown_eur["contract_penalty"] == \
        pytest.approx(tolerated, rel=1e-6)
    assert c["undelivered_mwh"].iloc[0] == pytest.approx(strict.tables["contracts"]["undelivered_mwh"].iloc[0])
