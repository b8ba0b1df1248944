"""The benchmark's linopy model (benchmarks/linopy_side_by_side.py) and flexplan's array-built
LinDistFlow planning LP are the same LP: written independently (linopy's labelled arrays
against flexplan's blocks), they must have the same size and the same optimum.  An
independent check of the array path (flows, voltages, big-M drops of replaced branches,
parallels, penalties as cost vectors) on SimBench MV rural with its loads x 2.5."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

pytestmark = pytest.mark.component


def test_flexplan_and_linopy_write_the_same_lp():
    import highspy
    import linopy_side_by_side as side

    import flexplan as fp
    from large_cases import LP_RECIPE

    inst = side._instance(2, 2.5)
    res = fp.solve(fp.build_model(inst, LP_RECIPE), mip_gap=0.0)
    m = side.build_linopy(inst)
    h = m.to_highspy()
    h.setOptionValue("output_flag", False)
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal and res.status == "optimal"
    assert (h.getNumCol(), h.getNumRow(), h.getNumNz()) == (res.size["variables"], res.size["constraints"],
                                                           res.size["nonzeros"])
    assert res.objective_eur > 1000.0  # something is built or shed: not a trivial 0 = 0
    assert h.getInfo().objective_function_value == pytest.approx(res.objective_eur, rel=1e-9)
