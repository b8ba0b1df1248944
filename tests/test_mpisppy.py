"""The same scenario tree through mpi-sppy: its extensive form equals flexplan's, every
scenario copy of a node's decisions agrees (non-anticipativity), and progressive hedging with
a Lagrangian and an xhat-shuffle bound cylinder under ``mpiexec -n 3`` closes to 1 %.

The instance: the two-branch feeder of test_stochastic.py over three stages (2025, 2030,
2035; horizon 2039), uptake branching low/high at 2030 and again at 2035 (4 scenarios), EVs
uncontrolled and a one-stage lead time, so that the 2025 and 2030 nodes must decide cables
before they know the next branch.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import CABLE, EVENING, write_feeder
from flexplan.stochastic import solve_stochastic

pytestmark = pytest.mark.integration

RECIPE = textwrap.dedent("""\
    name = "uncontrolled_lead"
    blocks = ["demand", "ev_fleet", "reinforcement"]
    [network]
    formulation = "lindistflow"
    [ev_fleet]
    mode = "uncontrolled"
    [reinforcement]
    binary = true
    lead_time_stages = 1
    """)


@pytest.fixture(scope="module")
def three_stage(tmp_path_factory):
    root = tmp_path_factory.mktemp("mpi")
    f = write_feeder(root / "inst", lines=[("l1", "b0", "b1", 0.5, 0.3, 2.07, 1.0)], loads=[("b1", 2.0, 0.0)],
                     profile=[("wd", 365, EVENING)], reinforcement=CABLE, operation='years_per_stage = "last"',
                     economics="base_year = 2025\nend_year = 2039\nstages = [2025, 2030, 2035]\ndiscount_rate = 0.035")
    with open(f / "instance.toml", "a") as fh:
        fh.write(textwrap.dedent("""
            [[ev_fleets]]
            name = "home"
            bus = "b1"
            behaviour = "home"
            evs = {2025 = 0, 2029 = 0, 2030 = 100, 2039 = 140}
            seed = 7
            [tree]
            branches = ["low", "high"]
            probabilities = [0.6, 0.4]
            ev_factor = [0.2, 1.0]
            """))
    (root / "recipe.toml").write_text(RECIPE)
    return f, root / "recipe.toml"


@pytest.fixture(scope="module")
def flexplan_ef(three_stage):
    inst, recipe = three_stage
    return solve_stochastic(inst, recipe, metrics=())


def _cmd(*args):
    return [sys.executable, "-m", "mpisppy.generic_cylinders", "--module-name", "flexplan.mpisppy_model", *args]


def _run_ph(args, timeout, env=None):
    """Progressive hedging under ``mpiexec -n 3`` with the flexplan module and ``args``;
    returns (iterations, best bound, best incumbent) from mpi-sppy's final statistics."""
    mpiexec = shutil.which("mpiexec") or shutil.which("mpiexec", path=os.path.dirname(sys.executable))
    assert mpiexec, "mpiexec not found: install the mpi extra (pip install -e '.[mpi]'), which ships MPICH"
    cmd = [mpiexec, "-n", "3", sys.executable, "-m", "mpi4py", "-m", "mpisppy.generic_cylinders",
           "--module-name", "flexplan.mpisppy_model", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    final = text.split("Statistics at termination")[-1]
    row = re.search(r"\n\[\s*[\d.]+\]\s+(\d+)\s+\S*\s*\S*\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)%", final)
    assert row, final[-2000:]
    return int(row.group(1)), float(row.group(2)), float(row.group(3))


def test_flexplan_plan_is_not_trivial(flexplan_ef):
    """Cables are decided before the branch is known (otherwise the comparison is empty)."""
    assert flexplan_ef.status == "optimal"
    assert len(flexplan_ef.builds) >= 1
    assert set(flexplan_ef.builds["decided_year"]) <= {2025, 2030}


def test_mpisppy_extensive_form_equals_flexplan_and_is_nonanticipative(three_stage, flexplan_ef):
    """mpi-sppy's EF (in this process, one rank), built from flexplan.mpisppy_model: the same
    objective; each node's decisions equal in every scenario through it and equal to the
    node's decisions in flexplan's extensive form."""
    import pyomo.environ as pyo
    from mpisppy.opt.ef import ExtensiveForm

    from flexplan import mpisppy_model as mod

    inst, recipe = three_stage
    kw = dict(instance=str(inst), model=str(recipe))
    tree = mod._instance(str(inst)).tree
    names = mod.scenario_names_creator(len(tree.leaves))
    from mpisppy.utils.sputils import create_nodenames_from_branching_factors

    ef = ExtensiveForm({"solver": "highs"}, names, mod.scenario_creator, scenario_creator_kwargs=kw,
                       all_nodenames=create_nodenames_from_branching_factors(list(tree.branching)))
    results = ef.solve_extensive_form()
    assert pyo.check_optimal_termination(results)
    assert ef.get_objective_value() == pytest.approx(flexplan_ef.objective_eur, rel=1e-6)
    # per node: the values of its decisions in every scenario through it
    seen: dict[str, list[tuple]] = {}
    for s in names:
        scen = getattr(ef.ef, s)
        for node in scen._mpisppy_node_list:
            vals = tuple(round(float(pyo.value(v)), 6) for v in node.nonant_vardata_list)
            seen.setdefault(node.name, []).append(vals)
    assert set(seen) == {"ROOT", "ROOT_0", "ROOT_1"}
    for node, copies in seen.items():
        assert len(set(copies)) == 1, (node, copies)
    # and they are flexplan's: the builds decided at each node
    inv = {v: k for k, v in tree.mpisppy_names().items()}
    for node, copies in seen.items():
        built = flexplan_ef.builds[flexplan_ef.builds["node"] == inv[node]]
        assert sum(copies[0]) == pytest.approx(len(built))


def test_generic_cylinders_ef_matches(three_stage, flexplan_ef):
    inst, recipe = three_stage
    out = subprocess.run(_cmd("--instance", str(inst), "--model", str(recipe), "--EF", "--EF-solver-name", "highs"),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    obj = float(re.search(r"EF objective: ([-\d.eE+]+)", out.stdout + out.stderr).group(1))
    assert obj == pytest.approx(flexplan_ef.objective_eur, rel=1e-6)


def test_progressive_hedging_under_mpiexec_closes_to_one_percent(three_stage, flexplan_ef):
    inst, recipe = three_stage
    _, bound, incumbent = _run_ph(["--instance", str(inst), "--model", str(recipe), "--solver-name", "highs",
                                   "--default-rho", "1", "--max-iterations", "100", "--lagrangian", "--xhatshuffle",
                                   "--rel-gap", "0.01", "--intra-hub-conv-thresh", "-1",
                                   "--linearize-binary-proximal-terms", "--linearize-proximal-terms"], timeout=900)
    ef = flexplan_ef.objective_eur
    print(f"PH: bound {bound:,.2f}, incumbent {incumbent:,.2f}, flexplan EF {ef:,.2f}")
    assert bound <= ef * (1 + 1e-6) + 1e-6
    assert incumbent >= ef * (1 - 1e-6) - 1e-6
    assert incumbent <= ef * 1.01 and bound >= ef * 0.99


@pytest.mark.slow
def test_progressive_hedging_closes_on_the_shipped_tree():
    """ieee33_ev_tree (7 nodes, 4 scenarios, one-stage lead time) under the LP recipe
    flex_lead_time_relaxed: flexplan's in-process extensive form and progressive hedging under
    ``mpiexec -n 3`` (Lagrangian outer bound; xhat-shuffle inner bound that fixes the root's
    decisions and solves each second-stage subtree as an extensive form) agree within 1 %,
    with the EF objective between PH's bounds.  MPICH's asynchronous progress thread lets a
    cylinder read a busy rank's window without waiting for that rank's next MPI call (without
    it an iteration waits for the slowest solve of every spoke)."""
    ef = solve_stochastic("ieee33_ev_tree", "flex_lead_time_relaxed", metrics=())
    assert ef.status == "optimal"
    iterations, bound, incumbent = _run_ph(
        ["--instance", "ieee33_ev_tree", "--model", "flex_lead_time_relaxed", "--solver-name", "highs",
         "--default-rho", "1", "--rho-factor", "1", "--max-iterations", "100", "--rel-gap", "0.01", "--lagrangian",
         "--xhatshuffle", "--stage2-ef-solver-name", "highs", "--intra-hub-conv-thresh", "-1",
         "--linearize-proximal-terms", "--proximal-linearization-tolerance", "1e-6"],
        timeout=2400, env={**os.environ, "MPIR_CVAR_ASYNC_PROGRESS": "1"})
    print(f"PH: {iterations} iterations, bound {bound:,.2f}, incumbent {incumbent:,.2f}, "
          f"flexplan EF {ef.objective_eur:,.2f}")
    assert bound <= ef.objective_eur * (1 + 1e-6)
    assert incumbent >= ef.objective_eur * (1 - 1e-6)
    assert incumbent <= ef.objective_eur * 1.01 and bound >= ef.objective_eur * 0.99


@pytest.mark.slow
def test_progressive_hedging_closes_on_the_mip_recipe():
    """ieee33_ev_tree under the MIP recipe flex_lead_time (binary builds): progressive hedging
    under ``mpiexec -n 3`` with a subgradient outer bound (its own multipliers: PH's agree at
    the root from iteration 0, and a Lagrangian bound on PH's W stalls 1.1-1.5 % below the
    optimum) and an xhat-xbar inner bound closes to 1 % of flexplan's extensive form: PH's
    incumbent at least the EF's dual bound and within 1 % above its incumbent, PH's bound at
    most the EF's incumbent and within 1 % below it.  MPICH's progress threads yield (heavy
    yield, throttled polling) so that they leave the cores to HiGHS."""
    ef = solve_stochastic("ieee33_ev_tree", "flex_lead_time", metrics=())
    assert ef.has_solution, ef.status
    dual = ef.extra.get("dual_bound_eur")
    dual = ef.objective_eur if dual is None else dual
    env = {**os.environ, "MPIR_CVAR_ASYNC_PROGRESS": "1", "MPIR_CVAR_ENABLE_HEAVY_YIELD": "1",
           "MPIR_CVAR_CH4_PROGRESS_THROTTLE": "1", "MPIR_CVAR_CH4_PROGRESS_THROTTLE_NO_PROGRESS_COUNT": "1"}
    iterations, bound, incumbent = _run_ph(
        ["--instance", "ieee33_ev_tree", "--model", "flex_lead_time", "--solver-name", "highs",
         "--default-rho", "1", "--rho-factor", "1", "--max-iterations", "100", "--rel-gap", "0.01",
         "--subgradient", "--subgradient-rho-multiplier", "0.5", "--xhatxbar", "--intra-hub-conv-thresh", "-1",
         "--linearize-binary-proximal-terms", "--linearize-proximal-terms", "--proximal-linearization-tolerance",
         "1e-6", "--solver-options", "mip_rel_gap=0.005", "--subgradient-solver-options", "mip_rel_gap=0.001",
         "--time-limit", "2400"],
        timeout=3600, env=env)
    print(f"PH: {iterations} iterations, bound {bound:,.2f}, incumbent {incumbent:,.2f}, flexplan EF "
          f"{ef.objective_eur:,.2f} (dual bound {dual:,.2f}, gap {ef.mip_gap})")
    assert bound <= ef.objective_eur * (1 + 1e-6)
    assert incumbent >= dual * (1 - 1e-6)
    assert incumbent <= ef.objective_eur * 1.01 and bound >= ef.objective_eur * 0.99
