"""AC replay of solved plans against pandapower's own power flow."""
import json

import pandapower as pp
import pandapower.networks as pn
import pytest

import flexplan as fp
from conftest import CABLE, EVENING, add_fleet, case33_snapshot, write_feeder
from flexplan.acpf import check_ac

pytestmark = pytest.mark.validation


def test_replay_of_case33bw_is_pandapowers_runpp(tmp_path):
    """case33bw at nominal load, no EVs: the replay reproduces pandapower's own runpp on the
    original network (min voltage 0.91309 pu at bus 17, losses 202.68 kW)."""
    inst = fp.load_instance(case33_snapshot(tmp_path / "c33"))
    res = fp.solve(fp.build_model(inst, "reinforce_only"))
    out = res.write(tmp_path / "out", plots=False)
    df, summary = check_ac(out)
    ref = pn.case33bw()
    pp.runpp(ref, numba=False)
    assert len(df) == 1 and df["converged"].all()
    row = df.iloc[0]
    assert row.v_min_bus == "17" and row.v_min_ac_pu == pytest.approx(ref.res_bus.vm_pu.min(), abs=1e-6)
    assert row.v_min_ac_pu == pytest.approx(0.91309, abs=1e-5)
    assert row.losses_mw * 1000 == pytest.approx(ref.res_line.pl_mw.sum() * 1000, rel=1e-4)
    assert row.losses_mw * 1000 == pytest.approx(202.68, abs=0.05)
    # LinDistFlow is lossless: optimistic by at most ~0.0028 pu here
    assert summary["max_ldf_minus_ac_pu"] == pytest.approx(0.0028, abs=5e-4)
    written = json.loads((out / "ac_check.json").read_text())
    assert written["ops"] == 1 and (out / "ac_check.csv").exists()
    # the snapshot's band starts at 0.85 pu, so 0.913 pu is no violation
    assert summary["limits"]["v_min_pu"] == inst.limits.v_min_pu == 0.85
    assert summary["ops_undervoltage"] == 0 and summary["ac_feasible"]


def test_replay_applies_builds_and_ev_schedules(tmp_path):
    """Two-line feeder with 200 EVs: reinforce-only replaces l2; the replay uses the new
    cable (loading below 100 %) and the EVs' charging (losses above those without EVs)."""
    f = write_feeder(tmp_path / "f", lines=[("l1", "b0", "b1", 0.2, 0.1, 20.0, 1.0),
                                            ("l2", "b1", "b2", 0.2, 0.1, 0.45, 1.0)],
                     loads=[("b2", 0.3, 0.05)], profile=[("day", 365, EVENING)],
                     economics="base_year = 2025\nend_year = 2026\nstages = [2025]", reinforcement=CABLE)
    inst = fp.load_instance(add_fleet(f, "b2", 200))
    res = fp.solve(fp.build_model(inst, "reinforce_only"))
    assert res.builds["asset"].tolist() == ["l2"]
    df, summary = check_ac(res.write(tmp_path / "out", plots=False))
    assert summary["converged"] == summary["ops"] == 48
    assert summary["max_loading_ac_pct"] < 100  # on the new cable; on the old one the evening would overload
    evening = df[df["hour"] == 19]["losses_mw"].max()
    night = df[df["hour"] == 3]["losses_mw"].max()
    assert evening > night
    assert summary["ac_feasible"]


def test_ac_correction_replans_with_losses_at_least_cost(tmp_path):
    """case33bw at nominal load with v_min = 0.915 pu: LinDistFlow (0.9167 pu at bus 17) sees
    no problem and builds nothing, pandapower's AC power flow gives 0.91309 pu: the plan fails
    in AC.  The branch-flow model sees the AC voltages itself: it builds the cheapest parallel
    cable that lifts bus 17 above 0.915 pu in AC, the plan holds in AC without a correction,
    and it costs the same as the cheapest AC-feasible plan found by trying every cable alone
    (its cost is at least the lower bound).  Through the CLI the same."""
    from conftest import case33_snapshot

    from flexplan.acpf import ac_corrected_plan
    from flexplan.cli import main

    cands = ('generate = ["parallel"]\n[[reinforcement.line_types]]\nname = "cable"\nr_ohm_per_km = 0.2\n'
             'x_ohm_per_km = 0.2\nmax_i_ka = 0.4\ncapex_eur_per_km = 100000\nlifetime_years = 40\n')
    f = case33_snapshot(tmp_path / "c33", candidates=cands)
    (f / "instance.toml").write_text((f / "instance.toml").read_text().replace("v_min_pu = 0.85", "v_min_pu = 0.915"))
    inst = fp.load_instance(f)
    BRANCHFLOW = {"name": "bf", "blocks": ["demand", "reinforcement"], "network": {"formulation": "branchflow"}}
    res, rep = ac_corrected_plan(f, "reinforce_only", tmp_path / "out", mip_gap=0.0)
    assert rep["ac_feasible"] and rep["iterations"][-1]["v_min_ac_pu"] >= 0.915
    assert len(res.builds) == 1 and (tmp_path / "out" / "ac_check.json").exists()
    assert rep["lower_bound_eur"] <= res.objective_eur * (1 + 1e-9)
    # brute force: every single parallel cable, its operation optimised, checked in AC
    cands_ids = inst.candidates["id"].tolist()
    best = None
    for chosen in cands_ids:
        def fix(pm, chosen=chosen):
            for (c, n), var in pm.model.reinforcement.build.items():
                var.fix(1 if cands_ids[c] == chosen else 0)
        r = fp.solve(fp.build_model(inst, BRANCHFLOW, extra_functionality=fix), ac="check")
        if r.extra["ac_check"]["ac_feasible"] and (best is None or r.objective_eur < best[0]):
            best = (r.objective_eur, chosen)
    assert best is not None and res.builds["candidate"].iloc[0] == best[1]
    assert res.objective_eur == pytest.approx(best[0], rel=1e-6)
    # the CLI: check-ac fails the lossless plan (exit 4), --correct re-plans it (exit 0)
    first = fp.solve(fp.build_model(inst, "reinforce_only")).write(tmp_path / "plan")
    assert main(["check-ac", str(first)]) == 4
    assert main(["check-ac", str(first), "--correct"]) == 0
    summary = json.loads((tmp_path / "plan-ac" / "summary.json").read_text())
    assert summary["ac_check"]["ac_feasible"] and summary["ac_check"]["formulation"] == "branchflow"


def test_replay_takes_every_blocks_injection_from_the_plan(tmp_path):
    """A block the AC replay knows nothing about (a toy generator registered here) injects at
    b1: the replay takes the plan's evaluated net withdrawal (injections.csv), so its voltage at
    b1 is pandapower's for load minus generation, computed here on a net of our own."""
    from dataclasses import dataclass

    import pyomo.environ as pyo

    from flexplan.blocks import BLOCKS, BlockSpec, register_block

    @dataclass
    class Cfg:
        mw: float = 0.2

    def add(b, inst, ix, hub, cfg):
        b.p = pyo.Var(range(ix.n_ops), bounds=(cfg.mw, cfg.mw))  # a must-run unit at b1
        for t in range(ix.n_ops):
            hub.inject(1, t, p=b.p[t])
        hub.bound_injection(1, cfg.mw)

    register_block(BlockSpec("toy_must_run", add, Cfg))
    try:
        f = write_feeder(tmp_path / "f", lines=[("l1", "b0", "b1", 2.0, 1.0, 20.0, 1.0)], loads=[("b1", 0.9, 0.3)],
                         economics="base_year = 2025\nend_year = 2025\nstages = [2025]")
        inst = fp.load_instance(f)
        res = fp.solve(fp.build_model(inst, {"blocks": ["demand", "toy_must_run"]}))
        inj = res.tables["injections"].set_index("bus")
        assert inj.loc["b1", "p_mw"] == pytest.approx(0.9 - 0.2, abs=1e-9)
        assert inj.loc["b1", "q_mvar"] == pytest.approx(0.3, abs=1e-9)
        df, _ = check_ac(res.write(tmp_path / "out", plots=False))
        ref = pp.create_empty_network(sn_mva=float(inst.network.s_base_mva))
        for i in range(2):
            pp.create_bus(ref, vn_kv=20.0)
        pp.create_ext_grid(ref, 0, vm_pu=float(inst.network.slack["vm_pu"].iloc[0]))
        pp.create_line_from_parameters(ref, 0, 1, length_km=1.0, r_ohm_per_km=2.0, x_ohm_per_km=1.0, c_nf_per_km=0.0,
                                       max_i_ka=1.0)
        pp.create_load(ref, 1, p_mw=0.7, q_mvar=0.3)
        pp.runpp(ref, numba=False)
        assert df.iloc[0].v_min_ac_pu == pytest.approx(float(ref.res_bus.vm_pu.min()), abs=1e-7)
        assert df.iloc[0].losses_mw == pytest.approx(float(ref.res_line.pl_mw.sum()), rel=1e-5)
    finally:
        BLOCKS.pop("toy_must_run")
