"""A region (an MV feeder with two LV grids behind 20/0.4 kV transformers) planned by
decomposition (flexplan.region) against the same region solved as one model, in process and on
a local Dask cluster, and resumed from its checkpoints."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

import flexplan as fp
from conftest import EVENING, write_feeder
from flexplan.errors import InstanceError
from flexplan.region import plan_monolithic, plan_region, split_region

pytestmark = pytest.mark.integration


def write_region(folder: Path, mv_rating: float = 1.35, mv_capex: float = 3_000_000, tree: bool = False) -> Path:
    """b0 (slack, 20 kV) - m1 - m2; transformer ta at m1 feeds a0 - a1 (0.4 kV), tc at m2 feeds
    c0 - c1; loads at m2 (MV), a1, c1; 60 and 80 home EVs at a1 and c1 (smart charging).  The MV
    line m01 (``mv_rating`` MVA) is overloaded at the evening peak; c1 sits at the voltage limit."""
    f = write_feeder(folder, lines=[("m01", "b0", "m1", 0.4, 0.3, mv_rating, 1.0), ("m12", "m1", "m2", 0.4, 0.3, 6.0, 1.0),
                                    ("la", "a0", "a1", 0.05, 0.02, 0.4, 0.2), ("lc", "c0", "c1", 0.05, 0.02, 0.4, 0.2)],
                     loads=[("m2", 1.0, 0.2), ("a1", 0.15, 0.03), ("c1", 0.2, 0.04)],
                     profile=[("wd", 365, EVENING)], extra_network='transformers = "trafos.csv"',
                     reinforcement='generate = ["replace"]',
                     **(dict(economics="base_year = 2025\nend_year = 2034\nstages = [2025, 2030]\ndiscount_rate = 0.035",
                             operation='years_per_stage = "last"') if tree else {}))
    (f / "buses.csv").write_text("name,vn_kv\nb0,20\nm1,20\nm2,20\na0,0.4\na1,0.4\nc0,0.4\nc1,0.4\n")
    (f / "trafos.csv").write_text("name,hv_bus,lv_bus,sn_mva,vk_percent,vkr_percent\nta,m1,a0,0.63,6,1\n"
                                  "tc,m2,c0,0.63,6,1\n")
    with open(f / "instance.toml", "a") as fh:
        fh.write(textwrap.dedent(f"""
            [[reinforcement.line_types]]
            name = "mv_cable"
            r_ohm_per_km = 0.2
            x_ohm_per_km = 0.1
            max_i_ka = 0.2
            capex_eur_per_km = {mv_capex}
            lifetime_years = 40
            vn_kv_min = 1.0
            vn_kv_max = 36.0
            [[ev_fleets]]
            name = "home_a"
            bus = "a1"
            behaviour = "home"
            evs = {{2025 = 60, 2034 = 60}}
            seed = 7
            [[ev_fleets]]
            name = "home_c"
            bus = "c1"
            behaviour = "home"
            evs = {{2025 = 80, 2034 = 80}}
            seed = 8
            """))
        if tree:
            fh.write(textwrap.dedent("""
                [tree]
                branches = ["low", "high"]
                probabilities = [0.5, 0.5]
                ev_factor = [0.5, 1.5]
                """))
    return f


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    return write_region(tmp_path_factory.mktemp("region") / "region")


@pytest.fixture(scope="module")
def monolithic(region):
    return plan_monolithic(fp.load_instance(region), "flex_vs_reinforce")


@pytest.fixture(scope="module")
def decomposed(region):
    return plan_region(fp.load_instance(region), "flex_vs_reinforce")


def test_split_keeps_every_load_fleet_and_candidate(region):
    inst = fp.load_instance(region)
    s = split_region(inst)
    assert [g.name for g in s.lv] == ["ta", "tc"]
    assert s.mv.network.buses["name"].tolist() == ["b0", "m1", "m2"]
    # every bus once (the LV grids' supply buses are copies of MV buses and carry nothing)
    lv_own = [n for g in s.lv for n in g.instance.network.buses["name"].iloc[1:]]
    assert sorted(s.mv.network.buses["name"].tolist() + lv_own) == sorted(inst.network.buses["name"])
    for g in s.lv:
        assert g.instance.network.buses["name"].iloc[0] == s.mv.network.buses["name"].iloc[g.mv_bus]
        assert 0 not in set(g.instance.network.loads["bus"])
    total = s.mv.network.loads["p_mw"].sum() + sum(g.instance.network.loads["p_mw"].sum() for g in s.lv)
    assert total == pytest.approx(inst.network.loads["p_mw"].sum())
    assert [f.name for g in s.lv for f in g.instance.ev_fleets] == ["home_a", "home_c"]
    assert sorted(s.mv.candidates["asset"]) == ["m01", "m12"]
    assert all(len(g.instance.candidates) == 0 for g in s.lv)


def test_a_feeder_without_lv_transformer_is_refused(tmp_path):
    f = write_feeder(tmp_path / "plain", lines=[("l1", "b0", "b1", 0.5, 0.3, 2.0, 1.0)], loads=[("b1", 1.0, 0.0)])
    with pytest.raises(InstanceError, match="no MV/LV transformer"):
        split_region(fp.load_instance(f))


def test_region_plan_equals_the_region_as_one_model(monolithic, decomposed):
    """The decomposition's plan costs what the monolithic optimum costs (to 0.1 %: the LV grids
    are planned at the MV plan's voltages, a fixed point, where the monolithic model moves both
    together), builds the same MV cable, and its lower bound is below the optimum; the MV
    congestion made the LV grids offer more than their first plans."""
    assert monolithic.status == "optimal" and decomposed.status == "optimal"
    print(f"monolithic {monolithic.objective_eur:,.2f}, region {decomposed.objective_eur:,.2f}, "
          f"bound {decomposed.bound_eur:,.2f}")
    assert decomposed.objective_eur == pytest.approx(monolithic.objective_eur, rel=1e-3)
    assert decomposed.bound_eur <= monolithic.objective_eur * (1 + 1e-6)
    assert sorted(decomposed.mv.builds["asset"]) == sorted(monolithic.builds["asset"]) == ["m01"]
    assert decomposed.grids["columns"].max() > 1
    assert decomposed.voltage_moved_pu <= 1e-4
    # the LV plans' costs are what the master paid for them
    assert decomposed.grids["cost_eur"].sum() == pytest.approx(decomposed.mv.cost_breakdown_eur["lv_grids"], rel=1e-9)
    flex_mono = monolithic.cost_breakdown_eur["ev_flexibility"]
    assert decomposed.grids["cost_eur"].sum() == pytest.approx(flex_mono, rel=5e-3)


def test_without_mv_congestion_the_lv_grids_plan_at_the_mv_voltage(tmp_path):
    """A strong MV line: no column beyond the first is needed, but the LV grid at the voltage limit
    spends more on flexibility once it is supplied at the MV plan's voltage instead of the slack's,
    as in the monolithic model."""
    inst = fp.load_instance(write_region(tmp_path / "strong", mv_rating=6.0))
    mono = plan_monolithic(inst, "flex_vs_reinforce")
    msgs = []
    reg = plan_region(inst, "flex_vs_reinforce", progress=msgs.append)
    assert reg.objective_eur == pytest.approx(mono.objective_eur, rel=5e-3)
    first = reg.iterations[reg.iterations["round"] == 1]["master_lp_eur"].iloc[0]
    assert first < 0.7 * mono.objective_eur  # at the slack's voltage the LV grid is much cheaper
    assert any("voltage round 2" in m for m in msgs)


def test_dask_and_checkpoints(region, decomposed, tmp_path):
    """On a local Dask cluster of 2 workers, and on a process pool, the plan is the in-process one;
    a rerun takes every pricing solve from the checkpoints; a lost checkpoint (a killed worker) is solved again and
    nothing else; a changed instance reuses none."""
    pytest.importorskip("distributed")
    inst = fp.load_instance(region)
    out = tmp_path / "ckpt"
    dask = plan_region(inst, "flex_vs_reinforce", scheduler="local", workers=2, out=out)
    assert dask.objective_eur == pytest.approx(decomposed.objective_eur, rel=1e-9)
    pool = plan_region(inst, "flex_vs_reinforce", workers=2)  # a local process pool, without Dask
    assert pool.objective_eur == pytest.approx(decomposed.objective_eur, rel=1e-9)
    files = sorted((out / "columns").glob("*.pkl"))
    calls = int(decomposed.iterations.shape[0] + decomposed.iterations["round"].nunique()) * 2
    assert sum(dask.pricing.values()) == calls and dask.pricing["checkpoints"] == 0
    assert len(files) == dask.pricing["solved"] + dask.pricing["no_solve_needed"] < calls  # zero prices: not again
    again = plan_region(inst, "flex_vs_reinforce", out=out)
    assert again.pricing["checkpoints"] == len(files)
    assert again.objective_eur == pytest.approx(dask.objective_eur, rel=1e-12)
    for f in files[::3]:
        f.unlink()
    resumed = plan_region(inst, "flex_vs_reinforce", out=out)
    assert resumed.pricing["checkpoints"] == len(files) - len(files[::3])
    assert resumed.objective_eur == pytest.approx(dask.objective_eur, rel=1e-12)
    import dataclasses

    changed = dataclasses.replace(inst, ev_fleets=tuple(dataclasses.replace(f, evs=f.evs * 1.1, _cache={})
                                                        for f in inst.ev_fleets))
    other = plan_region(changed, "flex_vs_reinforce", out=out, max_voltage_rounds=1, max_iterations=1)
    assert other.pricing["checkpoints"] == 0
    assert np.isfinite(other.objective_eur)


def test_a_plan_kept_at_a_lower_supply_voltage_is_what_a_solve_gives(region):
    """Runner reuses an LV plan when the supply voltage drops by less than the plan's margin to
    v_min (flexplan.region._shifted): solving the grid at that voltage gives the same cost; a drop
    beyond the margin, or a rise, is solved again."""
    from flexplan.region import _shifted, price_grid

    ta = split_region(fp.load_instance(region)).lv[0].instance
    alone = price_grid(ta, "flex_vs_reinforce")
    assert 0 < alone["v2_margin"] < 1
    small = np.full(len(alone["dv"]), -0.4 * alone["v2_margin"])
    kept = _shifted(alone, small)
    assert kept is not None and np.array_equal(kept["dv"], small)
    solved = price_grid(ta, "flex_vs_reinforce", dv=small, shortcut=False)  # a real solve at that voltage
    assert solved["cost"] == pytest.approx(kept["cost"], rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(solved["p"], kept["p"], atol=1e-7)
    assert _shifted(alone, np.full(len(alone["dv"]), -0.6 * alone["v2_margin"])) is None
    assert _shifted(alone, np.full(len(alone["dv"]), 1e-4)) is None
    # the grid at its voltage limit has no margin: any drop is solved again, and costs more
    tc = split_region(fp.load_instance(region)).lv[1].instance
    at_limit = price_grid(tc, "flex_vs_reinforce")
    assert at_limit["v2_margin"] == pytest.approx(0.0, abs=1e-9)
    assert _shifted(at_limit, np.full(len(at_limit["dv"]), -1e-4)) is None
    assert price_grid(tc, "flex_vs_reinforce", dv=np.full(len(at_limit["dv"]), -1e-3))["cost"] > at_limit["cost"] + 1


def test_cli_region_writes_the_study_and_resumes(region, decomposed, tmp_path):
    """`flexplan region` at two EV scales with and without flexibility: uptake.csv, grids.csv and
    the plots; at scale 1 with flexibility the region costs what plan_region gives; a rerun takes
    every LV solve from the checkpoints beside the result folder."""
    import json

    import pandas as pd

    from flexplan.cli import main

    out = tmp_path / "study"
    args = [str(region), "--ev-scale", "0.5,1", "--out", str(out), "--mip-gap", "0.0001"]
    assert main(["region", *args]) == 0
    up = pd.read_csv(out / "uptake.csv")
    assert list(up["ev_scale"]) == [0.5, 1.0]
    assert up.loc[1, "region_cost_eur"] == pytest.approx(decomposed.objective_eur, rel=1e-6)
    assert (up["region_cost_no_flex_eur"] >= up["region_cost_eur"] - 1e-6).all()
    assert up.loc[1, "value_of_flexibility_eur"] == pytest.approx(
        up.loc[1, "region_cost_no_flex_eur"] - up.loc[1, "region_cost_eur"])
    grids = pd.read_csv(out / "grids.csv")
    assert set(grids["grid"]) == {"ta", "tc"} and "value_of_flexibility_eur" in grids
    for f in ("uptake.png", "value_by_grid.png", "summary.json", "iterations.csv", "mv/summary.json"):
        assert (out / f).is_file(), f
    assert main(["region", *args]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert all(p["pricing"]["solved"] == p["pricing"]["no_solve_needed"] == 0 for p in summary["plans"].values())


def test_cli_region_refuses_what_is_neither_instance_nor_simbench_code(tmp_path, capsys):
    from flexplan.cli import main

    assert main(["region", "no/such/place", "--out", str(tmp_path / "x")]) == 2
    assert "SimBench code" in capsys.readouterr().err


def test_a_killed_run_resumes_to_the_same_plan(region, decomposed, tmp_path):
    """A region run in another process is killed (SIGKILL) once it has checkpointed a few LV solves;
    the rerun takes those from the checkpoints, solves the rest and ends with the same plan."""
    import subprocess
    import sys
    import time

    out = tmp_path / "ckpt"
    script = (f"import flexplan as fp\nfrom flexplan.region import plan_region\n"
              f"plan_region(fp.load_instance({str(region)!r}), 'flex_vs_reinforce', out={str(out)!r})\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and len(list((out / "columns").glob("*.pkl"))) < 3:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    kept = len(list((out / "columns").glob("*.pkl")))
    assert kept >= 3
    resumed = plan_region(fp.load_instance(region), "flex_vs_reinforce", out=out)
    assert resumed.pricing["checkpoints"] >= 3
    assert resumed.objective_eur == pytest.approx(decomposed.objective_eur, rel=1e-9)


def test_an_lv_grid_that_needs_nothing_is_not_solved(region):
    """LV grid ta breaks no limit with its EVs uncontrolled: baseline_column evaluates LinDistFlow
    directly and gives the plan the full solve gives (cost 0, the same import in every op, the same
    margin to v_min); tc, at its voltage limit, gets no shortcut."""
    from flexplan.region import baseline_column, price_grid

    ta, tc = (g.instance for g in split_region(fp.load_instance(region)).lv)
    fast = baseline_column(ta, "flex_vs_reinforce")
    full = price_grid(ta, "flex_vs_reinforce", shortcut=False)
    assert fast is not None and full["cost"] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(fast["p"], full["p"], atol=1e-7)
    np.testing.assert_allclose(fast["q"], full["q"], atol=1e-7)
    assert fast["v2_margin"] == pytest.approx(full["v2_margin"], abs=1e-7)
    low = np.full(len(fast["p"]), -0.9 * fast["v2_margin"] - 0.05)  # a supply low enough to break v_min
    assert baseline_column(ta, "flex_vs_reinforce", dv=low) is None
    assert baseline_column(tc, "flex_vs_reinforce") is None
    assert baseline_column(ta, "v2g_ageing") is None  # a recipe with blocks that may cost at the baseline


def test_a_failing_lv_grid_is_named_and_the_others_are_kept(region, tmp_path, monkeypatch):
    """One LV grid's solve raises: the others finish and are checkpointed, then the run stops with
    an error naming the grid and the cause."""
    import flexplan.region as reg
    from flexplan.errors import RecipeError

    real = reg.price_grid

    def flaky(inst, *args, **kw):
        if inst.name.endswith("/tc"):
            raise RuntimeError("disk on fire")
        return real(inst, *args, **kw)

    monkeypatch.setattr(reg, "price_grid", flaky)
    msgs = []
    with pytest.raises(RecipeError, match=r"1 of 2 LV grid solves failed.*tc: RuntimeError: disk on fire"):
        plan_region(fp.load_instance(region), "flex_vs_reinforce", out=tmp_path / "ck", progress=msgs.append)
    assert len(list((tmp_path / "ck" / "columns").glob("*.pkl"))) == 1
    assert any("tc: FAILED" in m for m in msgs) and any("1 failed" in m or "0 failed" in m for m in msgs)


def test_a_region_on_a_scenario_tree_equals_its_extensive_form(tmp_path):
    """The same region over two stages with EV uptake branching low/high (x0.5 / x1.5) at 2030: the
    decomposition (every part on the tree's operating points) gives the monolithic extensive form's
    cost to 0.5 %, and the MV cable is decided at the root as there."""
    inst = fp.load_instance(write_region(tmp_path / "tree", tree=True))
    assert inst.tree is not None
    mono = plan_monolithic(inst, "flex_vs_reinforce")
    reg = plan_region(inst, "flex_vs_reinforce")
    print(f"tree: monolithic {mono.objective_eur:,.2f}, region {reg.objective_eur:,.2f}")
    assert mono.status == "optimal" and reg.status == "optimal"
    assert reg.objective_eur == pytest.approx(mono.objective_eur, rel=5e-3)
    assert sorted(zip(reg.mv.builds["asset"], reg.mv.builds["node"])) == \
        sorted(zip(mono.builds["asset"], mono.builds["node"]))


def test_an_lv_grid_under_the_slack_is_a_region_of_one(tmp_path):
    """sb_lv_rural: the MV/LV transformer hangs from the slack, so the MV grid is that bus alone;
    the region is the LV grid's own plan (the same cost as solving the instance)."""
    from flexplan.paths import resolve_instance_path

    inst = fp.load_instance(resolve_instance_path("sb_lv_rural"))
    s = split_region(inst)
    assert s.mv.network.n_buses == 1 and s.mv.network.n_branches == 0 and len(s.lv) == 1
    reg = plan_region(inst, "reinforce_only", mip_gap=1e-3)
    mono = plan_monolithic(inst, "reinforce_only", mip_gap=1e-3)
    assert reg.objective_eur == pytest.approx(mono.objective_eur, rel=2e-3, abs=1e-6)


def test_a_killed_dask_worker_loses_nothing(region, decomposed, tmp_path):
    """A Dask worker is SIGKILLed while the region is planned on its cluster: the lost task is
    submitted again (every grid's data is on every worker) and the run ends with the in-process
    plan."""
    import os
    import signal
    import threading
    import time

    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = distributed.Client(cluster)
    try:
        pids = list(client.run(os.getpid).values())
        out, box = tmp_path / "ck", {}
        inst = fp.load_instance(region)

        def run():
            try:
                box["res"] = plan_region(inst, "flex_vs_reinforce", scheduler=cluster.scheduler_address, out=out)
            except Exception as e:  # noqa: BLE001 - shown by the assertion below
                box["err"] = e

        th = threading.Thread(target=run)
        th.start()
        while th.is_alive() and len(list((out / "columns").glob("*.pkl"))) < 2:
            time.sleep(0.02)
        os.kill(pids[0], signal.SIGKILL)
        th.join(600)
        assert not th.is_alive()
        assert "res" in box, box.get("err")  # the lost task ran again on the other worker
        res = box["res"]
        assert res.objective_eur == pytest.approx(decomposed.objective_eur, rel=1e-9)
        with pytest.raises(ProcessLookupError):
            os.kill(pids[0], 0)  # the worker was killed
    finally:
        client.close()
        cluster.close()
