"""Smart charging defers a reinforcement: the value of flexibility on a two-line feeder,
checked against a hand-computed annuity and the reported flexibility volumes."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import flexplan as fp
from conftest import CABLE, EVENING, add_fleet, simulate_uncontrolled, write_feeder
from flexplan.value import reference_recipe, value_of_flexibility

pytestmark = pytest.mark.integration

PRICE = 20.0  # EUR/MWh of downward flexibility, low enough for flexibility to win here
RECIPE = {"name": "flex", "blocks": ["demand", "ev_fleet", "reinforcement"],
          "ev_fleet": {"mode": "smart", "flex_price_eur_per_mwh": PRICE}}


@pytest.fixture(scope="module")
def feeder_ev(tmp_path_factory):
    """b0 - b1 - b2; 0.3 MW of evening-peaking load and 200 home EVs at b2.  Line l2 is
    rated 0.45 MVA: base + uncontrolled EVs peak at ~0.53 MW, above it; the EVs' daily
    energy fits below it if charging moves into the night."""
    folder = tmp_path_factory.mktemp("ev_value") / "f"
    f = write_feeder(folder, lines=[("l1", "b0", "b1", 0.2, 0.1, 20.0, 1.0), ("l2", "b1", "b2", 0.2, 0.1, 0.45, 1.0)],
                     loads=[("b2", 0.3, 0.05)], profile=[("day", 365, EVENING)],
                     economics="base_year = 2025\nend_year = 2034\nstages = [2025]", reinforcement=CABLE)
    return add_fleet(f, "b2", 200)


def test_smart_charging_avoids_the_reinforcement(feeder_ev):
    inst = fp.load_instance(feeder_ev)
    res = fp.solve(fp.build_model(inst, RECIPE))
    ref = fp.solve(fp.build_model(inst, reference_recipe(RECIPE)))
    assert res.status == ref.status == "optimal"
    # uncontrolled: l2 is replaced in 2025; its cost is the annuity stream inside the horizon
    assert ref.builds["asset"].tolist() == ["l2"]
    r = 0.035
    a = 150_000 * r / (1 - (1 + r) ** -40)
    assert ref.objective_eur == pytest.approx(sum(a / (1 + r) ** k for k in range(10)), rel=1e-6)
    # smart: nothing built, the line stays within its rating, the DSO pays for flexibility
    assert res.builds.empty
    assert res.line_loading["loading_pct"].max() <= 100.0 + 1e-6
    ev = res.tables["ev_flexibility"]
    disc = ev["year"].map(lambda y: (1 + r) ** -(y - 2025))
    paid = PRICE * (ev["flex_down_mw"] * 365 * 1.0 * disc).sum()
    assert res.objective_eur == pytest.approx(paid, rel=1e-6)
    assert res.cost_breakdown_eur["ev_flexibility"] == pytest.approx(paid, rel=1e-6)
    # every EV still gets its energy: charged energy equals the uncontrolled energy
    assert ev["charge_mw"].sum() == pytest.approx(ev["baseline_mw"].sum(), rel=1e-6)
    vof = value_of_flexibility(res, ref)
    assert vof["value_eur"] == pytest.approx(ref.objective_eur - paid, rel=1e-6)
    assert vof["value_eur"] > 0


def test_uncontrolled_peak_is_coincident_evs_times_chargers(feeder_ev):
    """The uncontrolled plan's peak flow on l2 minus the base load's peak is the EVs
    charging at that hour times their charger power, from a step-by-step count of the
    sample's sessions (LinDistFlow is lossless, so the flow is the load below)."""
    inst = fp.load_instance(feeder_ev)
    ref = fp.solve(fp.build_model(inst, reference_recipe(RECIPE)))
    flow = ref.line_loading[(ref.line_loading["line"] == "l2") & (ref.line_loading["year"] == 2025)]
    fleet = inst.ev_fleets[0]
    charging_kw, _ = simulate_uncontrolled(fleet.sessions, eta=fleet.eta_charge)  # kW, whole sample
    ev_mw = charging_kw / fleet.ev_days * 200 / 1000
    base = 0.3 * np.array(EVENING)
    assert flow["p_mw"].max() == pytest.approx((base + ev_mw).max(), rel=1e-6)
    h = int(np.argmax(base + ev_mw))
    print(f"peak hour {h}: base {base[h]:.3f} MW + EVs {ev_mw[h]:.3f} MW "
          f"(= {ev_mw[h] * 1000 / 200:.2f} kW per EV of the fleet)")
    assert ev_mw[h] > 0.5 * ev_mw.max()  # the EV peak coincides with the evening peak


def test_cli_writes_ev_results_and_value(feeder_ev, tmp_path):
    from flexplan.cli import main

    recipe = tmp_path / "flex.toml"
    recipe.write_text('name = "flex"\nblocks = ["demand", "ev_fleet", "reinforcement"]\n[ev_fleet]\n'
                      f'mode = "smart"\nflex_price_eur_per_mwh = {PRICE}\n')
    out = tmp_path / "out"
    assert main(["solve", str(feeder_ev), "--model", str(recipe), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    vof = summary["value_of_flexibility"]
    assert vof["value_eur"] == pytest.approx(vof["reference_objective_eur"] - summary["objective_eur"])
    assert vof["reference_builds"][0]["asset"] == "l2"
    (fleet,) = summary["ev"]["fleets"]
    assert fleet["name"] == "home" and fleet["years"][0]["evs"] == 200
    assert fleet["years"][0]["peak_scheduled_mw"] < fleet["years"][0]["peak_baseline_mw"]
    table = pd.read_csv(out / "ev_flexibility.csv")
    need = ["node", "year", "day", "hour", "fleet", "baseline_mw", "scheduled_mw", "flex_down_mw", "flex_up_mw",
            "energy_mwh"]
    assert all(c in table.columns for c in need) and len(table) == 10 * 24
    assert (out / "ev_peak_day.png").stat().st_size > 10_000 and (out / "ev_envelope.png").stat().st_size > 10_000
    assert "Value of flexibility" in (out / "report.md").read_text()
    # and without the reference: no value, but the rest is there
    assert main(["solve", str(feeder_ev), "--model", str(recipe), "--out", str(out), "--no-reference",
                 "--no-plots"]) == 0
    assert "value_of_flexibility" not in json.loads((out / "summary.json").read_text())


def test_mip_progress_is_reported(feeder_ev):
    lines = []
    fp.solve(fp.build_model(fp.load_instance(feeder_ev), reference_recipe(RECIPE)), progress=lines.append)
    assert lines[0].startswith("solving with HiGHS") and "1 integer" in lines[0]
    assert any("new incumbent 60,461 EUR" in ln for ln in lines), lines
