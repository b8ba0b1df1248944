"""Prices from duals: nodal prices (DLMP) against hand values on a two-bus feeder and against
finite differences of the objective on ieee33 (LP, builds fixed)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import flexplan as fp
from conftest import CABLE, EVENING, write_feeder
from flexplan.blocks import BLOCKS, BlockSpec, register_block
from flexplan.screening import peak_day, with_days

pytestmark = pytest.mark.component

CONGESTED = [16, 17, 18, 19, 20, 21]  # 0.6 MW x EVENING above the 0.45 MVA rating


def two_bus(tmp, penalties="", reinforcement=""):
    f = write_feeder(tmp / "f", lines=[("l1", "b0", "b1", 0.2, 0.1, 0.45, 1.0)], loads=[("b1", 0.6, 0.0)],
                     profile=[("day", 365, EVENING)], reinforcement=reinforcement,
                     economics="base_year = 2025\nend_year = 2025\nstages = [2025]")
    if penalties:
        with open(f / "instance.toml", "a") as fh:
            fh.write(f"\n[penalties]\n{penalties}\n")
    return fp.load_instance(f)


@pytest.mark.parametrize("penalties, price", [("", 10000.0),  # overload 10,000 EUR/MVAh = VOLL
                                              ("overload_eur_per_mvah = 3000.0", 3000.0),
                                              ("voll_eur_per_mwh = 2000.0", 2000.0)])
def test_two_bus_nodal_price_is_the_cheaper_penalty_in_congested_hours(tmp_path, penalties, price):
    """A unity-power-factor load over the line's rating: one more MW at b1 either overloads the
    line (a flow on the polygon's P vertex pays exactly its excess MVA) or is shed at VOLL,
    whichever is cheaper; in the other hours it costs nothing; b0 (the slack) is free."""
    res = fp.solve(fp.build_model(two_bus(tmp_path, penalties), {"blocks": ["demand"]}), prices=True)
    t = res.tables["nodal_prices"]
    b1 = t[t.bus == "b1"].set_index("hour")["dlmp_p_eur_per_mwh"]
    assert b1.loc[CONGESTED].to_numpy() == pytest.approx([price] * 6, rel=1e-9)
    assert b1.drop(CONGESTED).abs().max() == pytest.approx(0.0, abs=1e-9)
    assert t[t.bus == "b0"]["dlmp_p_eur_per_mwh"].abs().max() == 0.0
    line = res.tables["line_prices"].set_index("hour")["shadow_eur_per_mwh"]
    # the line carries its rating (shedding or overloading the rest): a MW more of rating is
    # worth the whole price difference between its ends
    assert line.loc[CONGESTED].to_numpy() == pytest.approx([price] * 6, rel=1e-9)
    assert line.drop(CONGESTED).abs().max() == pytest.approx(0.0, abs=1e-9)
    # a MW less at b1 in every hour saves the price in 6 hours of 365 days (one year, undiscounted)
    assert res.extra["prices"]["flex_value_eur_per_mw"]["b1"] == pytest.approx(price * 6 * 365, rel=1e-9)


def test_mip_prices_come_from_the_lp_with_builds_fixed(tmp_path):
    """With a cable to build the plan is a MIP: prices need the LP with the build fixed, whose
    objective equals the plan's; once built, the cable (6.9 MVA) leaves no congestion."""
    inst = two_bus(tmp_path, reinforcement=CABLE)
    res = fp.solve(fp.build_model(inst, {"blocks": ["demand", "reinforcement"]}), mip_gap=0.0, prices=True)
    assert not res.builds.empty
    p = res.extra["prices"]
    assert p["integer_decisions_fixed"] >= 1
    assert p["lp_objective_eur"] == pytest.approx(res.objective_eur, rel=1e-9)
    assert res.tables["nodal_prices"]["dlmp_p_eur_per_mwh"].abs().max() == pytest.approx(0.0, abs=1e-6)
    # without prices=True no extra solve
    assert "nodal_prices" not in fp.solve(fp.build_model(inst, {"blocks": ["demand", "reinforcement"]})).tables


@dataclass
class _Extra:
    bus: int = 0
    op: int = 0
    mw: float = 0.0


def _add_extra_load(b, inst, ix, hub, cfg):
    p = np.zeros(ix.n_ops)
    p[cfg.op] = cfg.mw
    hub.withdraw(cfg.bus, p, np.zeros(ix.n_ops), sheddable=False)


@pytest.fixture(scope="module")
def extra_load_block():
    register_block(BlockSpec("extra_load", _add_extra_load, _Extra))
    yield
    BLOCKS.pop("extra_load")


@pytest.mark.integration
@pytest.mark.validation
def test_ieee33_nodal_prices_equal_finite_differences(extra_load_block):
    """ieee33 on its peak day, load x 1.6, reinforcement relaxed (an LP, so builds are
    continuous and the plan is priced as it stands): the price at a bus and hour lies between
    the left and right difference quotients of the objective for 1e-3 MW of extra firm load
    there (equal to them where the LP is not degenerate)."""
    inst = fp.load_instance("instances/ieee33")
    inst = with_days(inst, [peak_day(inst)])
    rec = {"blocks": ["demand", "reinforcement", "extra_load"], "demand": {"scale": 1.6},
           "reinforcement": {"binary": False}}
    base = fp.solve(fp.build_model(inst, rec), prices=True)
    assert base.status == "optimal"
    t = base.tables["nodal_prices"]
    names = list(inst.network.buses["name"])
    ix = fp.build_model(inst, rec).index
    t = t.assign(op=np.tile(np.arange(ix.n_ops), len(names)), bus_i=np.repeat(np.arange(len(names)), ix.n_ops))
    hot = t.reindex(t["marginal_p_eur_per_mw"].abs().sort_values(ascending=False).index)
    picks = [hot.iloc[0], hot.iloc[len(hot) // 3], hot[hot.marginal_p_eur_per_mw.abs() < 1e-9].iloc[0]]
    assert abs(picks[0].marginal_p_eur_per_mw) > 1.0  # something binds: the test means something
    d = 1e-3
    for row in picks:
        quot = []
        for mw in (-d, d):
            r = fp.solve(fp.build_model(inst, {**rec, "extra_load": {"bus": int(row.bus_i), "op": int(row.op), "mw": mw}}))
            assert r.status == "optimal"
            quot.append((r.objective_eur - base.objective_eur) / mw)
        left, right = quot
        # HiGHS's objective is exact to ~1e-9 relative: that, over the step, is the quotients' noise
        tol = 1e-6 * abs(row.marginal_p_eur_per_mw) + 2e-9 * abs(base.objective_eur) / d
        assert left - tol <= row.marginal_p_eur_per_mw <= right + tol, (row.bus, row.op, left, right)
        assert right - left <= 1e-3 * abs(right) + 2 * tol  # not degenerate here: the price is the derivative


def test_two_bus_voltage_price_is_the_penalty_times_the_drop(tmp_path):
    """The load (rating ample) pulls b1 below v_min: one more MW lowers v1² by 2 r/S_base pu²
    (LinDistFlow), which pays the voltage penalty per pu² and hour; the price is all voltage."""
    f = write_feeder(tmp_path / "v", lines=[("l1", "b0", "b1", 2.0, 1.0, 20.0, 1.0)], loads=[("b1", 4.0, 0.0)],
                     economics="base_year = 2025\nend_year = 2025\nstages = [2025]", limits="v_min_pu = 0.99")
    with open(f / "instance.toml", "a") as fh:
        fh.write("\n[penalties]\nvoltage_eur_per_pu2h = 500000.0\n")
    inst = fp.load_instance(f)
    res = fp.solve(fp.build_model(inst, {"blocks": ["demand"]}), prices=True)
    assert res.violations["max_voltage_deviation_pu"] > 0  # the limit binds (softly)
    r_pu = float(inst.network.branches["r_pu"].iloc[0])
    assert r_pu == pytest.approx(2.0 / (20.0 ** 2 / inst.network.s_base_mva))
    hand = 500000.0 * 2 * r_pu / inst.network.s_base_mva  # EUR/MWh
    b1 = res.tables["nodal_prices"].set_index("bus").loc["b1"]
    assert b1["dlmp_p_eur_per_mwh"] == pytest.approx(hand, rel=1e-9)
    assert b1["voltage_eur_per_mwh"] == pytest.approx(hand, rel=1e-9)
    assert b1["congestion_eur_per_mwh"] == pytest.approx(0.0, abs=1e-9)
    assert b1["other_eur_per_mwh"] == pytest.approx(0.0, abs=1e-9)


def test_congestion_part_in_the_two_bus_case(tmp_path):
    res = fp.solve(fp.build_model(two_bus(tmp_path), {"blocks": ["demand"]}), prices=True)
    t = res.tables["nodal_prices"]
    b1 = t[t.bus == "b1"].set_index("hour")
    assert b1.loc[CONGESTED, "congestion_eur_per_mwh"].to_numpy() == pytest.approx([10000.0] * 6, rel=1e-9)
    assert b1[["voltage_eur_per_mwh", "other_eur_per_mwh"]].abs().max().max() == pytest.approx(0.0, abs=1e-9)


@pytest.mark.integration
def test_ieee33_prices_split_into_congestion_and_voltage_without_remainder():
    """ieee33 at 1.6 x load on its peak day, nothing to build: every bus's price is the sum of
    the path's line and voltage-drop terms (the stationarity of each branch flow), nothing
    left over, and the voltage part is what carries the prices (its limits bind)."""
    inst = fp.load_instance("instances/ieee33")
    inst = with_days(inst, [peak_day(inst)])
    res = fp.solve(fp.build_model(inst, {"blocks": ["demand"], "demand": {"scale": 1.6}}), prices=True)
    t = res.tables["nodal_prices"]
    scale = t["dlmp_p_eur_per_mwh"].abs().max()
    assert scale > 1.0
    assert t["other_eur_per_mwh"].abs().max() <= 1e-6 * scale
    assert t["voltage_eur_per_mwh"].abs().max() >= 0.5 * scale


def test_solve_command_writes_prices_and_their_plot(tmp_path):
    """``flexplan solve`` prices the plan by default: nodal_prices.csv, line_prices.csv, the
    heat map and the summary's prices section; ``--no-prices`` skips them."""
    import json

    from flexplan.cli import main

    inst_dir = two_bus(tmp_path).path
    out = tmp_path / "out"
    # the plan sheds load by design (no candidate): it cannot hold in AC, which the default AC
    # loop says with exit 4; prices are the subject here, so without it
    assert main(["solve", str(inst_dir), "--model", "reinforce_only", "--out", str(out), "--no-reference",
                 "--ac", "off"]) == 0
    t = pd.read_csv(out / "nodal_prices.csv", dtype={"bus": str})
    assert t.loc[t.bus == "b1", "dlmp_p_eur_per_mwh"].max() == pytest.approx(10000.0, rel=1e-9)
    assert (out / "line_prices.csv").exists() and (out / "nodal_prices.png").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prices"]["flex_value_eur_per_mw"]["b1"] == pytest.approx(10000.0 * 6 * 365, rel=1e-9)
    out2 = tmp_path / "out2"
    assert main(["solve", str(inst_dir), "--model", "reinforce_only", "--out", str(out2), "--no-reference",
                 "--no-prices"]) == 4
    ac = json.loads((out2 / "summary.json").read_text())["ac_check"]
    assert ac["checked"] and not ac["ac_feasible"] and "no plan within the candidates" in ac["message"]
    assert not (out2 / "nodal_prices.csv").exists()
