"""Sweeps and the break-even flexibility price."""
import pandas as pd
import pytest

import flexplan as fp
from conftest import CABLE, EVENING, add_fleet, write_feeder
from flexplan.sensitivity import breakeven, sweep, value_curve

pytestmark = pytest.mark.integration

RECIPE = {"name": "flex", "blocks": ["demand", "ev_fleet", "reinforcement"], "ev_fleet": {"mode": "smart"}}


@pytest.fixture(scope="module")
def one_line(tmp_path_factory):
    f = write_feeder(tmp_path_factory.mktemp("sens") / "f", lines=[("l1", "b0", "b1", 0.2, 0.1, 0.45, 1.0)],
                     loads=[("b1", 0.3, 0.05)], profile=[("day", 365, EVENING)],
                     economics="base_year = 2025\nend_year = 2034\nstages = [2025]", reinforcement=CABLE)
    return fp.load_instance(add_fleet(f, "b1", 200))


def test_breakeven_price_is_the_deferral_value(one_line):
    """Flexibility at price p costs p x V a year (V: the turn-down needed, MWh/yr, from a
    cheap-flexibility solve); reinforcing costs the annuities: they are equal at p*."""
    cheap = fp.solve(fp.build_model(one_line, {**RECIPE, "ev_fleet": {"mode": "smart",
                                                                    "flex_price_eur_per_mwh": 1.0}}))
    assert cheap.builds.empty
    v = cheap.extra["ev"]["fleets"][0]["years"][0]["flex_down_mwh_per_year"]
    r = 0.035
    a = 150_000 * r / (1 - (1 + r) ** -40)
    analytical = sum(a / (1 + r) ** k for k in range(10)) / (v * sum(1 / (1 + r) ** k for k in range(10)))
    got = breakeven(one_line, RECIPE, lo=1.0, hi=5000.0, rel_tol=0.005)
    print(f"break-even {got['breakeven']:.2f} EUR/MWh in [{got['lower']:.2f}, {got['upper']:.2f}], "
          f"analytical {analytical:.2f} ({got['steps']} bisection steps)")
    assert got["lower"] <= analytical * 1.005 and got["upper"] >= analytical * 0.995


def test_sweep_pool_equals_serial_and_records_failures(one_line, tmp_path):
    grid = {"ev_fleet.flex_price_eur_per_mwh": [10.0, 100.0, 1000.0], "demand.scale": [1.0, -1.0]}
    serial = sweep(one_line, RECIPE, grid, workers=1)
    pooled = sweep(one_line, RECIPE, grid, workers=2)
    cols = ["param:ev_fleet.flex_price_eur_per_mwh", "param:demand.scale", "status", "objective_eur", "builds"]
    pd.testing.assert_frame_equal(serial[cols], pooled[cols])
    failed = serial[serial["status"] == "error"]
    assert len(failed) == 1 and "demand.scale must be >= 0" in failed["error"].iloc[0]
    assert (serial["status"] != "error").sum() == 5  # the base case and four points
    # the dearer the flexibility, the higher the cost (never lower)
    ok = serial[serial["param:ev_fleet.flex_price_eur_per_mwh"].notna()].sort_values(
        "param:ev_fleet.flex_price_eur_per_mwh")
    assert ok["objective_eur"].is_monotonic_increasing


def test_sweep_resumes_from_its_table(one_line, tmp_path):
    out = tmp_path / "sweep.csv"
    grid = {"ev_fleet.flex_price_eur_per_mwh": [10.0, 100.0]}
    first = sweep(one_line, RECIPE, grid, out=out)
    assert len(first) == 3 and out.exists()  # the base case and two points
    assert out.with_suffix(".png").stat().st_size > 10_000  # the tornado chart
    again = sweep(one_line, RECIPE, {"ev_fleet.flex_price_eur_per_mwh": [10.0, 100.0, 1000.0]}, out=out)
    assert len(again) == 4  # only the new point ran
    assert again["seconds"].iloc[:3].tolist() == first["seconds"].tolist()


def test_resume_treats_integer_valued_points_as_one(one_line, tmp_path, monkeypatch):
    """``1`` (the command line's integer), ``1.0`` and the 1.0 pandas reads back from the
    table are the same point: a resume runs nothing again and adds no duplicate rows."""
    import flexplan.sensitivity as sens

    out = tmp_path / "sweep.csv"
    first = sweep(one_line, RECIPE, {"demand.scale": [1, 1.5]}, out=out)
    assert len(first) == 3
    calls = []
    real = sens.run_one
    monkeypatch.setattr(sens, "run_one", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    for values in ([1, 1.5], [1.0, 1.5], ["1", "1.50"]):
        again = sweep(one_line, RECIPE, {"demand.scale": values}, out=out)
        assert calls == [] and len(again) == 3 and len(pd.read_csv(out)) == 3
    again = sweep(one_line, RECIPE, {"demand.scale": [1, 2]}, out=out)
    assert calls == [{"demand.scale": 2}] and len(again) == 4


def test_resume_refuses_a_table_of_another_instance_recipe_or_options(one_line, tmp_path):
    import dataclasses

    from flexplan.errors import OutputError

    out = tmp_path / "sweep.csv"
    grid = {"ev_fleet.flex_price_eur_per_mwh": [10.0]}
    sweep(one_line, RECIPE, grid, out=out, mip_gap=0.01)
    table = out.read_bytes()
    other_instance = dataclasses.replace(one_line, limits=dataclasses.replace(one_line.limits, v_min_pu=0.93))
    other_recipe = {**RECIPE, "ev_fleet": {"mode": "smart", "flex_price_eur_per_mwh": 50.0}}
    for inst, rec, kw in ((other_instance, RECIPE, dict(mip_gap=0.01)), (one_line, other_recipe, dict(mip_gap=0.01)),
                          (one_line, RECIPE, dict(mip_gap=0.001)), (one_line, RECIPE, dict(mip_gap=0.01,
                                                                                          time_limit=60))):
        with pytest.raises(OutputError, match="holds runs of another instance, recipe or solver options"):
            sweep(inst, rec, grid, out=out, **kw)
        assert out.read_bytes() == table
    assert len(sweep(one_line, RECIPE, grid, out=out, mip_gap=0.01)) == 2  # the same: resumed


@pytest.mark.parametrize("digits", ["0123456789012345", "1e12345678901234"])
def test_resume_reads_a_run_key_of_digits_as_text(one_line, tmp_path, monkeypatch, digits):
    """A hash that looks like a number (leading zero, exponent) is read back as written."""
    import flexplan.sensitivity as sens

    monkeypatch.setattr(sens, "run_key", lambda *a, **k: digits)
    out = tmp_path / "sweep.csv"
    assert len(sweep(one_line, RECIPE, {"demand.scale": [1.5]}, out=out)) == 2
    assert len(sweep(one_line, RECIPE, {"demand.scale": [1.5]}, out=out)) == 2  # resumed, not refused


def test_unknown_parameter_is_named(one_line):
    df = sweep(one_line, RECIPE, {"tarifs.energy_eur_per_mwh": [1.0]})
    bad = df[df["param:tarifs.energy_eur_per_mwh"].notna()]
    assert bad["status"].iloc[0] == "error" and "'tarifs' is neither a block" in bad["error"].iloc[0]


def test_value_curve_over_uptake(one_line, tmp_path):
    """No EVs, no congestion, no value; with the EVs the line needs help, and the value is
    the reference's annuities minus the flexibility bought (checked by its definition).  At
    the default 418 EUR/MWh flexibility is dearer than the cable here (both plans build it and
    the value is 0); at 20 EUR/MWh it defers the cable."""
    cheap = {**RECIPE, "ev_fleet": {"mode": "smart", "flex_price_eur_per_mwh": 20.0}}
    df = value_curve(one_line, cheap, scales=(0.0, 1.0), out=tmp_path / "curve.csv")
    assert df["evs_last_year"].tolist() == [0.0, 200.0]
    assert df["value_eur"].iloc[0] == pytest.approx(0.0, abs=1e-6)
    assert df["builds"].iloc[1] == "" and df["reference_builds"].iloc[1] == "2025 l1"
    assert df["value_eur"].iloc[1] > 1000.0
    assert df["value_eur"].iloc[1] == pytest.approx(df["reference_cost_eur"].iloc[1] - df["cost_eur"].iloc[1])
    assert (tmp_path / "curve.png").stat().st_size > 10_000


def test_warm_resolve_equals_fresh_build(one_line):
    """A price that only moves objective coefficients: the warm re-solves of one kept HiGHS
    model give the objectives of fresh builds and solves; the times of both are printed."""
    import time

    from flexplan.errors import RecipeError
    from flexplan.sensitivity import WarmCostSweep

    lp = {"name": "flex_only", "blocks": ["demand", "ev_fleet"], "ev_fleet": {"mode": "smart"}}  # an LP
    warm = WarmCostSweep(one_line, lp, "ev_fleet.flex_price_eur_per_mwh", 10.0, 20.0)
    objectives = []
    for price in (5.0, 50.0, 200.0):
        t0 = time.perf_counter()
        cold = fp.solve(fp.build_model(one_line, {**lp, "ev_fleet": {"mode": "smart",
                                                                   "flex_price_eur_per_mwh": price}}))
        cold_s = time.perf_counter() - t0
        w = warm.solve(price)
        print(f"price {price}: cold {cold_s:.2f} s, warm {w['seconds']:.3f} s; objective {cold.objective_eur:.4f}")
        assert w["status"] == "optimal"
        assert w["objective_eur"] == pytest.approx(cold.objective_eur, rel=1e-7, abs=1e-6)
        objectives.append(w["objective_eur"])
    assert objectives[0] < objectives[1] < objectives[2]  # the price matters here
    with pytest.raises(RecipeError, match="changes more than the objective"):
        WarmCostSweep(one_line, lp, "ev_fleets.scale", 1.0, 1.5)


def test_sweep_on_a_dask_cluster_equals_serial(one_line):
    """The same sweep through a Dask distributed scheduler (a local cluster of 2 worker
    processes on the loopback interface) gives the serial table."""
    from distributed import LocalCluster

    grid = {"ev_fleet.flex_price_eur_per_mwh": [10.0, 1000.0], "demand.scale": [-1.0]}
    serial = sweep(one_line, RECIPE, grid, workers=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                      processes=True) as cluster:
        dask = sweep(one_line, RECIPE, grid, scheduler=cluster.scheduler_address)
    cols = ["param:ev_fleet.flex_price_eur_per_mwh", "param:demand.scale", "status", "objective_eur", "builds"]
    pd.testing.assert_frame_equal(serial[cols], dask[cols])
    assert (dask["status"] == "error").sum() == 1


def test_cli_sweep_and_breakeven_write_their_reports(one_line, tmp_path):
    """flexplan sweep writes the table, the tornado and an HTML report embedding it;
    flexplan breakeven writes every price it tried, the result, the curve and a report."""
    import json
    import re

    from flexplan.cli import main

    folder = tmp_path / "inst"
    folder.mkdir()
    src = one_line.path
    for f in src.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    rec = tmp_path / "flex.toml"
    rec.write_text('name = "flex"\nblocks = ["demand", "ev_fleet", "reinforcement"]\n[ev_fleet]\nmode = "smart"\n')
    out = tmp_path / "sw.csv"
    assert main(["sweep", str(folder), "--model", str(rec), "--param", "ev_fleet.flex_price_eur_per_mwh=10,1000",
                 "--out", str(out)]) == 0
    page = out.with_suffix(".html").read_text()
    assert len(re.findall(r"src='data:image/png;base64,", page)) == 1 and "<table" in page
    be = tmp_path / "be.csv"
    assert main(["breakeven", str(folder), "--model", str(rec), "--lo", "1", "--hi", "5000", "--tol", "0.05",
                 "--out", str(be)]) == 0
    got = json.loads(be.with_suffix(".json").read_text())
    pts = pd.read_csv(be)
    assert len(pts) == got["steps"] + 2  # both ends of the bracket and every bisection step
    assert got["lower"] <= got["breakeven"] <= got["upper"]
    assert not pts[pts["value"] <= got["lower"]]["reinforces_as_reference"].any()
    assert pts[pts["value"] >= got["upper"]]["reinforces_as_reference"].all()
    page = be.with_suffix(".html").read_text()
    assert "Break-even flexibility price" in page and len(re.findall(r"data:image/png;base64,", page)) == 1
